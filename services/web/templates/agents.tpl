% rebase('layout', title='agents')
<section class="panel" id="agents">
  <h2>◆ ag3nts <span class="dim">every agent of the hive · hivectl list</span></h2>
  <div data-section="updatebar">{{!sections['updatebar']}}</div>
  <div class="list agents" data-section="allagents" data-empty="no agents yet">{{!sections['allagents']}}</div>
</section>
