% if t is None:
<p class="dim">no turn reported yet</p>
% else:
% if t['gone']:
<p class="dim turn-gone">the agent is {{t['gone']}}: below is what its harness last reported before that.</p>
% end
<dl class="turn-state" data-turn="{{t['state']}}">
  <dt>state</dt><dd><span class="badge turn-{{t['state']}}">{{t['state']}}</span>{{' · ' + t['tool'] if t['tool'] else ''}}</dd>
  % if t['detail']:
  <dt>detail</dt><dd class="prose">{{t['detail']}}</dd>
  % end
  <dt>started</dt><dd><time data-ts="{{t['started_at']}}">{{t['started_clock']}}</time></dd>
  % if t['running']:
  <dt>running for</dt><dd><time data-since="{{t['started_at']}}">…</time></dd>
  % else:
  <dt>ended</dt><dd><time data-ts="{{t['ended_at']}}">{{t['ended_clock']}}</time>{{' · took ' + t['took'] if t['took'] else ''}}</dd>
  % end
  <dt title="metered by the model gateway">tokens</dt><dd>{{t['input_tokens']}} in · {{t['output_tokens']}} out · {{t['cached_tokens']}} cached · {{t['cost']}}</dd>
</dl>
% end
