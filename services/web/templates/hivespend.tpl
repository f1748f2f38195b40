<p class="hivespend" id="hive-spend"><span class="dim">the hive spent</span>
  % for p in h:
  <span class="chip spend" data-period="{{p['period']}}" title="every agent's metered model requests {{p['noun']}}{{'; each agent is capped at ' + p['default'] + ' ' + p['period'] + ' where nothing else sets a cap (' + p['setting'] + ')' if p['default'] else ''}}">{{p['spent']}} {{p['noun']}}{{' · default cap ' + p['default'] + ' per agent' if p['default'] else ''}}</span>
  % end
</p>
