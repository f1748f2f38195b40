"""hive-notify: the notification sender (apprise), its queue reader and its wake-ups."""
