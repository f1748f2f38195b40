% rebase('layout', title=name)
<section class="panel" id="agent" data-agent="{{name}}">
  <h2>◆ {{name}} <a class="dim small" href="/">← back to the hive</a></h2>
  <div data-section="staterow">{{!sections['staterow']}}</div>
</section>
<section class="panel" id="budget-panel">
  <h2>◆ sp3nd <span class="dim">caps by period: the operator's, agent.toml's [budget], or the hive default</span></h2>
  <div data-section="budget">{{!sections['budget']}}</div>
</section>
<div class="columns">
  <section class="panel" id="inbox-panel">
    <h2>◆ 1nbox <span class="dim">messages in and out</span></h2>
    <div class="list inbox" id="inbox" data-section="inbox" data-empty="no messages yet">{{!sections['inbox']}}</div>
    <form class="chat" method="post" action="/send/{{name}}" data-post data-chat="{{name}}">
      <textarea name="body" rows="2" placeholder="message {{name}} as the operator · /model NAME switches its model" spellcheck="false" required></textarea>
      <button type="submit">S3ND ❯</button>
    </form>
  </section>
  <section class="panel" id="turn-panel">
    <h2>◆ turn</h2>
    <div data-section="turn">{{!sections['turn']}}</div>
    <h2>◆ j0urnal <span class="dim">journalctl HIVE_AGENT={{name}}</span></h2>
    <div class="journal-bar"><span class="dim" id="journal-status">◌ opening the journal</span> <button type="button" class="ghost" id="journal-pause">pause</button></div>
    <pre class="journal" id="journal" data-agent="{{name}}" tabindex="0"></pre>
  </section>
</div>
