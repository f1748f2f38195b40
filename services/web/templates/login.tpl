% rebase('bare', title='sign in')
<section class="panel login">
  <h2>◆ operator token</h2>
  <p class="prose">this dashboard listens beyond loopback, so it asks for the operator token (HIVE_WEB_TOKEN).</p>
  % if error:
  <p class="error">{{error}}</p>
  % end
  <form method="post" action="/login">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="password" name="token" autocomplete="current-password" required autofocus>
    <button type="submit">ENT3R ❯</button>
  </form>
</section>
