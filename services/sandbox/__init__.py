"""The sandbox host: a real systemd booted in an nspawn container, for hosts whose PID 1 is
not systemd (the demo) and for the system tests."""
