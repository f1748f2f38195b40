"""The crash watcher: machined's signals → ContainerCrash helper events (systemd issue)."""
