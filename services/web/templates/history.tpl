% rebase('layout', title='history')
<section class="panel" id="history">
  <h2>◆ h1story <span class="dim">every decision and lifecycle action, newest first · hivectl history</span></h2>
  <div class="list" data-section="history" data-empty="nothing decided yet">{{!sections['history']}}</div>
</section>
