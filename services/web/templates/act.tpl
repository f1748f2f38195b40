% rebase('bare', title='decide', robots=True)
<section class="panel act">
  <h2>◆ {{heading}}</h2>
  % if done:
  <p class="prose done" id="act-done">{{done}}</p>
  % end
  % if error:
  <p class="prose error" id="act-error">{{error}}</p>
  % end
  <p class="prose{{'' if v['usable'] else ' error'}}" id="act-state" data-state="{{v['state']}}">{{v['sentence']}}</p>
  % a = v['approval']
  % q = v['question']
  % if a and v['show_item']:
  <article class="card approval{{' stale' if a['stale'] else ''}}" id="act-approval-{{a['id']}}">
    <header>
      % if a['spawn']:
      <span class="kind spawn">✦ spawn</span> <span class="name">{{a['agent']}}</span>
      % else:
      <span class="kind">◆ apply</span> <span class="name">{{a['agent']}}</span> <code class="sha">{{a['commit']}}</code>
      % end
      <span class="dim">approval #{{a['id']}} · requested {{a['requested_clock']}}</span>
    </header>
    % if a['spawn']:
    <p class="prose">hm1nd asks to create a new agent named <strong>{{a['agent']}}</strong>, with this config:</p>
    % end
    % include('diff', lines=a['diff'])
    % if v['usable']:
    <div class="decide">
      <form class="inline act-approve" method="post" action="/act/{{secret}}">
        <input type="hidden" name="csrf" value="{{token}}">
        <input type="hidden" name="action" value="approve">
        <button type="submit" class="approve"{{!' disabled title="stale: the applied config changed since this diff"' if a['stale'] else ''}}>◆ APPR0VE</button>
      </form>
      <form class="inline deny act-deny" method="post" action="/act/{{secret}}">
        <input type="hidden" name="csrf" value="{{token}}">
        <input type="hidden" name="action" value="deny">
        <input name="note" placeholder="why not (optional, sent to hm1nd)" autocomplete="off" maxlength="4000">
        <button type="submit" class="danger">DENY</button>
      </form>
    </div>
    % end
  </article>
  % end
  % if q and v['show_item']:
  <article class="card question" id="act-question-{{q['id']}}">
    <header>
      <span class="kind">? quest1on</span> <span class="dim">#{{q['id']}} from</span> <span class="name">{{q['asker']}}</span>
      <span class="dim">· asked {{q['asked_clock']}}{{' · answer by ' + q['deadline_clock'] if q['deadline_clock'] else ''}}</span>
    </header>
    <p class="prose question-text">{{q['question']}}</p>
    % if v['usable']:
    <form class="answer act-answer" method="post" action="/act/{{secret}}">
      <input type="hidden" name="csrf" value="{{token}}">
      <input type="hidden" name="action" value="answer">
      % if q['options']:
      <div class="options">
        % for i, opt in enumerate(q['options']):
        <label><input type="{{'checkbox' if q['multi'] else 'radio'}}" name="answer" value="{{opt}}"{{' required' if not q['multi'] and i == 0 else ''}}> {{opt}}</label>
        % end
      </div>
      % else:
      <textarea name="answer" rows="3" placeholder="your answer" spellcheck="false" required></textarea>
      % end
      <button type="submit" class="approve">ANSW3R ❯</button>
    </form>
    % end
  </article>
  % end
  % c = v['cap']
  % if c and v['show_item']:
  <article class="card budget" id="act-budget-{{c['agent']}}-{{c['period']}}">
    <header>
      <span class="kind">$ sp3nd</span> <span class="name">{{c['agent']}}</span>
      <span class="dim">{{c['period']}} cap · counted since {{c['window']}}</span>
    </header>
    <p class="prose">spent <strong>{{c['spent']}}</strong> {{c['noun']}} of a cap of <strong>{{c['cap'] or 'none'}}</strong> ({{c['source']}}){{' · at cap' if c['over'] else ''}}</p>
    % if v['usable']:
    <div class="decide">
      <form class="inline act-raise" method="post" action="/act/{{secret}}">
        <input type="hidden" name="csrf" value="{{token}}">
        <input type="hidden" name="action" value="raise">
        <label>raise the {{c['period']}} cap to $ <input name="usd" type="number" min="0" step="0.01" inputmode="decimal" required aria-label="new {{c['period']}} cap in US dollars"></label>
        <button type="submit" class="approve">R41SE ❯</button>
      </form>
      <form class="inline act-reset" method="post" action="/act/{{secret}}">
        <input type="hidden" name="csrf" value="{{token}}">
        <input type="hidden" name="action" value="reset">
        <button type="submit" class="warn">reset this period's count</button>
      </form>
    </div>
    % end
  </article>
  % end
  <p class="prose dim">this page is an action link from a hyperhive notification: it works once, and opening it changes nothing until you confirm.</p>
</section>
