% rebase('layout', title='waiting')
<section class="panel" id="waiting">
  <h2>◆ w41ting on you <span class="dim"><span data-count="waiting">{{counts['waiting']}}</span> in all</span></h2>
</section>
<section class="panel" id="approvals">
  <h2>◆ appr0vals</h2>
  <div class="list" data-section="approvals" data-empty="no approval waits for you">{{!sections['approvals']}}</div>
</section>
<section class="panel" id="questions">
  <h2>◆ quest1ons <span class="dim">soonest deadline first</span></h2>
  <div class="list" data-section="questions" data-empty="no agent is asking anything">{{!sections['questions']}}</div>
</section>
<section class="panel" id="crashed">
  <h2>◆ cr4shed <span class="dim">not restarted yet</span></h2>
  <div class="list agents" data-section="crashed" data-empty="no agent is down">{{!sections['crashed']}}</div>
</section>
<section class="panel" id="overbudget">
  <h2>◆ 4t cap <span class="dim">stopped until you raise or reset a cap</span></h2>
  <div class="list agents" data-section="overbudget" data-empty="no agent is at a spending cap">{{!sections['overbudget']}}</div>
</section>
