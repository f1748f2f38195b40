% rebase('layout', title='dashboard')
<section class="panel" id="approvals">
  <h2>◆ appr0vals <span class="dim">waiting: <span data-count="approvals_total">{{counts['approvals_total']}}</span></span></h2>
  <div class="list" data-section="approvals" data-empty="nothing waiting for you">{{!sections['approvals']}}</div>
</section>
<section class="panel" id="questions">
  <h2>◆ quest1ons <span class="dim">open: <span data-count="questions_total">{{counts['questions_total']}}</span></span></h2>
  <div class="list" data-section="questions" data-empty="no agent is asking anything">{{!sections['questions']}}</div>
</section>
<section class="panel" id="agents">
  <h2>◆ ag3nts</h2>
  <div data-section="hivespend">{{!sections['hivespend']}}</div>
  <div data-section="updatebar">{{!sections['updatebar']}}</div>
  <div class="list agents" data-section="agents" data-empty="no agents yet">{{!sections['agents']}}</div>
  <form class="inline spawn" method="post" action="/spawn" data-post>
    <input name="name" placeholder="new agent name" autocomplete="off" spellcheck="false" required pattern="[a-z][a-z0-9\-]{0,30}">
    <button type="submit">✦ SP4WN</button>
    <span class="dim">operator spawn, no approval</span>
  </form>
</section>
<section class="panel" id="decisions">
  <h2>◆ rec3nt decisions</h2>
  <div class="list" data-section="decisions" data-empty="no decisions yet">{{!sections['decisions']}}</div>
</section>
