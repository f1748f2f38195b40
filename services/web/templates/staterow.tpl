% if a is None:
<div class="row agent gone"><span class="badge badge-stopped">gone</span> <span class="dim">this agent does not exist (any more)</span></div>
% else:
<div class="row agent state" id="state-{{a['name']}}" data-status="{{a['status']}}">
  <span class="badge badge-{{a['status']}}{{' busy' if a['busy'] else ''}}" title="{{a['note'] or a['label']}}">{{a['label']}}</span>
  % include('chips', a=a)
  <span class="actions">
    % include('agent_actions', a=a)
  </span>
  % if a['note'] and a['status'] in ('failed', 'stopped'):
  <div class="note">{{a['note']}}</div>
  % end
</div>
% end
