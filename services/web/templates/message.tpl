<div class="msg {{'in' if m['incoming'] else 'out'}}{{' operator' if m['from_operator'] else ''}}{{' event' if m['event'] else ''}}" id="msg-{{m['id']}}">
  <div class="meta"><span class="who">{{m['sender']}} → {{m['recipient']}}</span> <time data-ts="{{m['created_at']}}">{{m['created_clock']}}</time>{{'' if m['delivered'] else ' · queued'}}</div>
  % if m['event']:
  <div class="event"><span class="glyph">{{m['event']['glyph']}}</span> <strong>{{m['event']['name']}}</strong>
  % for k, v in m['event']['fields']:
  <span class="kv"><span class="k">{{k}}</span> {{v}}</span>
  % end
  </div>
  % else:
  <div class="body">{{m['body']}}</div>
  % end
</div>
