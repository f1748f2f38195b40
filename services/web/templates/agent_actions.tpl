% if a['can_cancel']:
<form class="inline" method="post" action="/cancel-turn/{{a['name']}}" data-post><button type="submit" class="warn" title="cancel the running turn">✗ cancel</button></form>
% end
% if a['can_start']:
<form class="inline" method="post" action="/start/{{a['name']}}" data-post><button type="submit">▶ st4rt</button></form>
% end
% if a['can_stop']:
<form class="inline" method="post" action="/stop/{{a['name']}}" data-post><button type="submit" data-confirm="sure? st0p">■ st0p</button></form>
<form class="inline" method="post" action="/restart/{{a['name']}}" data-post><button type="submit" data-confirm="sure? r3start">↺ r3start</button></form>
<form class="inline" method="post" action="/kill/{{a['name']}}" data-post><button type="submit" class="danger" data-confirm="sure? K1LL">✗ k1ll</button></form>
% end
% if a['can_destroy']:
<form class="inline" method="post" action="/destroy/{{a['name']}}" data-post><button type="submit" class="danger" data-confirm="sure? D3STR0Y">⌫ d3str0y</button></form>
% end
