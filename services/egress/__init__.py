"""hive-egress: sets up an egress agent's link and the host's firewall before its proxy runs."""
