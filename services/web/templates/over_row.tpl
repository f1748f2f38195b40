<div class="row agent" id="over-{{o['name']}}" data-status="over_budget">
  <span class="badge badge-over_budget">over_budget</span>
  <a class="name" href="/agent/{{o['name']}}">{{o['name']}}</a>
  <span class="chip spend over">{{o['spent']}} of {{o['cap']}} {{o['period']}}</span>
  <div class="note">{{o['sentence']}}</div>
</div>
