<table class="budget" id="budget-{{name}}">
  <thead><tr><th>period</th><th>cap</th><th>from</th><th>spent</th><th>counted since</th><th></th><th>change</th></tr></thead>
  <tbody>
  % for p in periods:
  <tr class="period{{' over' if p['over'] else ''}}" id="budget-{{name}}-{{p['period']}}" data-period="{{p['period']}}" data-over="{{'yes' if p['over'] else 'no'}}">
    <td>{{p['period']}}</td>
    <td class="cap">{{p['cap'] or 'no cap'}}</td>
    <td class="dim source">{{p['source']}}</td>
    <td class="spent">{{p['spent']}}</td>
    <td><time data-ts="{{p['since']}}">{{p['since_clock']}}</time></td>
    <td>
      % if p['over']:
      <span class="chip spend over" title="{{p['sentence']}}">at cap</span>
      % end
    </td>
    <td class="change">
      <form class="inline set-cap" method="post" action="/cap/{{name}}" data-post>
        <input type="hidden" name="period" value="{{p['period']}}">
        <input name="usd" type="number" min="0" step="0.01" inputmode="decimal" placeholder="US $" aria-label="{{p['period']}} cap in US dollars" required>
        <button type="submit">s3t cap</button>
      </form>
      % if p['mine']:
      <form class="inline drop-cap" method="post" action="/cap/{{name}}" data-post>
        <input type="hidden" name="period" value="{{p['period']}}">
        <input type="hidden" name="usd" value="">
        <button type="submit" class="ghost" title="drop the operator's cap: {{'agent.toml says ' + p['config'] if p['config'] else 'the hive default or none applies'}}">back to config's</button>
      </form>
      % end
      <form class="inline reset-count" method="post" action="/reset-budget/{{name}}" data-post>
        <input type="hidden" name="period" value="{{p['period']}}">
        <button type="submit" class="warn" data-confirm="sure? r3set" title="forget what was spent {{p['noun']}}: the count restarts from now">r3set count</button>
      </form>
    </td>
  </tr>
  % end
  </tbody>
</table>
