% rebase('bare', title='signed in', refresh='/')
<section class="panel login">
  <h2>◆ s1gned in</h2>
  <p class="prose">this browser holds dashboard session #{{session}}. <a href="/">on to the hive ❯</a></p>
</section>
