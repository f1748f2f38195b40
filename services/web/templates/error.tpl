% rebase('bare', title='error')
<section class="panel">
  <h2>◆ {{status}}</h2>
  <p class="prose error">{{message}}</p>
  <p><a href="/">← back to the hive</a></p>
</section>
