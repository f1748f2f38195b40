<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{csrf}}">
<meta name="hive-topic" content="{{topic}}">
<meta name="server-time" content="{{server_time}}">
<title>{{title}} · hyperhive</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/hive.css">
<script src="/static/hive.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/">◆ hyperh1ve</a>
  <nav>
    <a href="/#approvals">appr0vals <span class="count" data-count="approvals">{{counts['approvals']}}</span></a>
    <a href="/#questions">quest1ons <span class="count" data-count="questions">{{counts['questions']}}</span></a>
    <a href="/agents">ag3nts</a>
    <a href="/waiting">w41ting <span class="count" data-count="waiting">{{counts['waiting']}}</span></a>
    <a href="/history">h1story</a>
  </nav>
  <span class="spacer"></span>
  <button type="button" class="ghost" id="notify-allow" hidden>⚑ allow notifications</button>
  <span class="live" id="live" data-state="connecting" title="live updates">◌ connecting</span>
  <form method="post" action="/logout" class="signout">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" class="ghost" title="end this dashboard session">s1gn 0ut</button>
  </form>
</header>
<section class="notes" aria-label="notifications">
  <span class="notes-head">◆ n0tes</span>
  <div class="notes-list" data-section="notes" data-empty="nothing new">{{!sections['notes']}}</div>
  <button type="button" class="ghost" id="notes-seen">mark seen</button>
</section>
% if banner:
<div class="banner">{{banner}}</div>
% end
<main>
{{!base}}
</main>
<div class="toasts" id="toasts" aria-live="polite"></div>
</body>
</html>
