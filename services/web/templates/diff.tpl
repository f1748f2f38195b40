<pre class="diff">
% for cls, line in lines:
<span class="{{cls}}">{{line}}</span>
% end
</pre>
