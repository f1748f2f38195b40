<article class="card question" id="question-{{q['id']}}">
  <header>
    <span class="kind">? quest1on</span> <span class="dim">#{{q['id']}} from</span> <a class="name" href="/agent/{{q['asker']}}">{{q['asker']}}</a>
    <span class="dim">· asked <time data-ts="{{q['asked_at']}}">{{q['asked_clock']}}</time></span>
    % if q['deadline']:
    <span class="chip ttl" data-deadline="{{q['deadline']}}">◷ --:--</span>
    % end
  </header>
  <p class="prose question-text">{{q['question']}}</p>
  <form class="answer" method="post" action="/answer-question/{{q['id']}}" data-post>
    % if q['options']:
    <div class="options">
      % for i, opt in enumerate(q['options']):
      <label><input type="{{'checkbox' if q['multi'] else 'radio'}}" name="answer" value="{{opt}}"{{' required' if not q['multi'] and i == 0 else ''}}> {{opt}}</label>
      % end
    </div>
    % else:
    <textarea name="answer" rows="2" placeholder="your answer" spellcheck="false" required></textarea>
    % end
    <button type="submit" class="approve">ANSW3R ❯</button>
  </form>
  <form class="inline" method="post" action="/cancel-question/{{q['id']}}" data-post><button type="submit" class="ghost" data-confirm="sure? CANC3L">✗ CANC3L</button></form>
</article>
