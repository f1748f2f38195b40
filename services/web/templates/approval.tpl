<article class="card approval{{' applying' if a['applying'] else ''}}" id="approval-{{a['id']}}">
  <header>
    % if a['spawn']:
    <span class="kind spawn">✦ spawn</span> <a class="name" href="/agent/{{a['agent']}}">{{a['agent']}}</a>
    % else:
    <span class="kind">◆ apply</span> <a class="name" href="/agent/{{a['agent']}}">{{a['agent']}}</a> <code class="sha">{{a['commit']}}</code>
    % end
    <span class="dim">#{{a['id']}} · requested <time data-ts="{{a['requested_at']}}">{{a['requested_clock']}}</time></span>
  </header>
  % if a['spawn']:
  <p class="prose">hm1nd asks to create a new agent named <strong>{{a['agent']}}</strong>.</p>
  <details><summary>its config</summary>
  % include('diff', lines=a['diff'])
  </details>
  % else:
  % include('diff', lines=a['diff'])
  % end
  % if a['applying']:
  <div class="pending-line"><span class="spinner"></span> {{'spawning ' + a['agent'] if a['spawn'] else 'applying to ' + a['agent']}}…</div>
  % else:
  <div class="decide">
    <form class="inline" method="post" action="/approve/{{a['id']}}" data-post><button type="submit" class="approve">◆ APPR0VE</button></form>
    <form class="inline deny" method="post" action="/deny/{{a['id']}}" data-post>
      <input name="note" placeholder="why not (optional, sent to hm1nd)" autocomplete="off" maxlength="4000">
      <button type="submit" class="danger">DENY</button>
    </form>
  </div>
  % end
</article>
