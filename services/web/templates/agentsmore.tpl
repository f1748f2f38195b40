% if total > shown:
<p class="dim more">{{shown}} of {{total}} agents here, those needing you first · <a href="/agents">all {{total}} agents ›</a></p>
% end
