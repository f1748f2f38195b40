<div class="msg {{'in' if m['incoming'] else 'out'}}{{' operator' if m['from_operator'] else ''}}{{' event' if m['event'] else ''}} {{m['status']}}" id="msg-{{m['id']}}">
  <div class="meta"><span class="who">#{{m['id']}} {{m['sender']}} → {{m['recipient']}}</span> <time data-ts="{{m['created_at']}}">{{m['created_clock']}}</time>{{' · ' + m['status'].replace('_', ' ') if m['status'] != 'delivered' else ''}}{{': ' + m['reason'] if m['reason'] else ''}}
  % if m['can_drop']:
  <form class="inline drop" method="post" action="/drop/{{m['id']}}" data-post><button type="submit" class="ghost danger" data-confirm="sure? DR0P" title="remove this message from the inbox; it is never delivered">✗ dr0p</button></form>
  % end
  </div>
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
