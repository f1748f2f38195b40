<div class="row decision" id="decision-{{a['id']}}">
  <span class="badge badge-{{a['status']}}">{{a['status']}}</span>
  <span>#{{a['id']}} {{'spawn' if a['spawn'] else 'apply ' + a['commit']}} · <a href="/agent/{{a['agent']}}">{{a['agent']}}</a></span>
  % if a['note']:
  <span class="dim note-inline">{{a['note']}}</span>
  % end
  <time class="dim" data-ts="{{a['resolved_at']}}"></time>
</div>
