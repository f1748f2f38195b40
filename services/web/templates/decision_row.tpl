<div class="row history{{' refused' if d['refused'] else ''}}" id="hist-{{d['id']}}">
  <time class="dim" data-ts="{{d['at']}}" title="{{d['at_clock']}}">{{d['at_clock']}}</time>
  <span class="badge badge-{{d['channel']}}">{{d['channel']}}</span>
  <strong>{{d['action']}}</strong>
  % if d['agent']:
  <a class="name" href="/agent/{{d['agent']}}">{{d['agent']}}</a>
  % else:
  <span>{{d['target']}}</span>
  % end
  <span class="dim">by {{d['actor']}}</span>
  <span class="{{'error' if d['refused'] else 'dim'}}">{{d['outcome']}}</span>
  % if d['detail']:
  <span class="dim small">{{d['detail']}}</span>
  % end
</div>
