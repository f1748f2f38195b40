% rebase('bare', title='sign in')
<section class="panel login">
  <h2>◆ s1gn in</h2>
  <p class="prose">only the operator may use this dashboard. on the host, run <code>hivectl login</code> and open the link it prints: it signs this browser in once, within two minutes.</p>
  % if error:
  <p class="prose error">{{error}}</p>
  % end
  <p class="prose">from elsewhere, the dashboard password (set with <code>hivectl passwd</code>):</p>
  <form method="post" action="/login">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="password" name="password" autocomplete="current-password" aria-label="dashboard password" required>
    <button type="submit">ENT3R ❯</button>
  </form>
</section>
