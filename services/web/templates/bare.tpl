<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · hyperhive</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/hive.css">
% if defined('robots'):
<meta name="robots" content="noindex, nofollow">
% end
% if defined('refresh'):
<meta http-equiv="refresh" content="0; url={{refresh}}">
% end
</head>
<body>
<header class="top"><a class="brand" href="/">◆ hyperh1ve</a></header>
<main>
{{!base}}
</main>
</body>
</html>
