<span class="chip model{{' override' if a['model_override'] else ''}}" title="model in effect">{{a['model']}}</span>
% t = a['turn']
% if t and t['running']:
<span class="chip turn running" title="{{t['state']}} {{t['tool'] or ''}}">◌ {{t['state']}}{{' · ' + t['tool'] if t['tool'] else ''}} · <time data-since="{{t['started_at']}}">{{t['started_clock']}}</time></span>
% elif t and t['ended_at']:
<span class="chip turn" title="last turn ended {{t['ended_clock']}}">last turn <time data-ts="{{t['ended_at']}}">{{t['ended_clock']}}</time>{{' · took ' + t['took'] if t['took'] else ''}} · {{t['tokens']}}</span>
% else:
<span class="chip turn dim">no turn yet</span>
% end
% if a['spend']['shown']:
<span class="chip spend{{' over' if a['spend']['over'] else ''}}" title="spent on the model (metered by the gateway), against its cap nearest to being reached">{{a['spend']['text']}}</span>
% end
% if a['inbox']:
<span class="chip inbox" title="undelivered messages">✉ {{a['inbox']}}</span>
% end
% if a['needs_update']:
<form class="inline" method="post" action="/rebuild/{{a['name']}}" data-post><button type="submit" class="chip stale" title="built from an older hyperhive: rebuild">needs update ↻</button></form>
% end
