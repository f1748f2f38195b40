% if stale:
<form class="inline updatebar" method="post" action="/update-all" data-post>
  <button type="submit" class="amber">↻ UPD4TE 4LL</button>
  <span class="dim">{{len(stale)}} container{{'s' if len(stale) != 1 else ''}} built from an older hyperhive: {{', '.join(stale)}}</span>
</form>
% end
