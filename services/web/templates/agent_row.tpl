<div class="row agent" id="agent-{{a['name']}}" data-status="{{a['status']}}">
  <span class="badge badge-{{a['status']}}{{' busy' if a['busy'] else ''}}" title="{{a['note'] or a['label']}}">{{a['label']}}</span>
  <a class="name" href="/agent/{{a['name']}}">{{a['name']}}</a>
  % include('chips', a=a)
  <span class="actions">
    % include('agent_actions', a=a)
  </span>
  % if a['note'] and a['status'] in ('failed', 'stopped'):
  <div class="note">{{a['note']}}</div>
  % end
</div>
