"""The auto-updater: rebuild containers built from an older platform rev (systemd issue)."""
