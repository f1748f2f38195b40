<article class="card approval{{' applying' if a['applying'] else ''}}{{' stale' if a['stale'] else ''}}" id="approval-{{a['id']}}">
  <header>
    % if a['spawn']:
    <span class="kind spawn">✦ spawn</span> <a class="name" href="/agent/{{a['agent']}}">{{a['agent']}}</a>
    % else:
    <span class="kind">◆ apply</span> <a class="name" href="/agent/{{a['agent']}}">{{a['agent']}}</a> <code class="sha">{{a['commit']}}</code>
    % end
    <span class="dim">#{{a['id']}} · requested <time data-ts="{{a['requested_at']}}">{{a['requested_clock']}}</time></span>
  </header>
  % for risk in a['risks']:
  <p class="risk">⚠ r1sk: {{risk}}</p>
  % end
  % if a['spawn']:
  <p class="prose">hm1nd asks to create a new agent named <strong>{{a['agent']}}</strong>.</p>
  <details><summary>its config</summary>
  % include('diff', lines=a['diff'])
  </details>
  % else:
  % include('diff', lines=a['diff'])
  % end
  % # always there (hidden unless stale): a live patch then morphs the card in place and
  % # the note the operator is typing survives the approval turning stale
  <p class="stale-note"{{!'' if a['stale'] else ' hidden'}}>⚠ st4le: the applied config of {{a['agent']}} changed after this diff was made{{' (against ' + a['base'] + ')' if a['base'] else ''}}; applying it would undo that change. approving is refused and tells hm1nd to ask again.</p>
  % if a['applying']:
  <div class="pending-line"><span class="spinner"></span> {{'spawning ' + a['agent'] if a['spawn'] else 'applying to ' + a['agent']}}…</div>
  % else:
  <div class="decide">
    <form class="inline" method="post" action="/approve/{{a['id']}}" data-post><button type="submit" class="approve"{{!' disabled title="stale: the applied config changed since this diff"' if a['stale'] else ''}}>◆ APPR0VE</button></form>
    <form class="inline deny" method="post" action="/deny/{{a['id']}}" data-post>
      <input name="note" placeholder="why not (optional, sent to hm1nd)" autocomplete="off" maxlength="4000">
      <button type="submit" class="danger">DENY</button>
    </form>
  </div>
  % end
</article>
