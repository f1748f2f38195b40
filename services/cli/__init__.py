"""hivectl (alias hive-c0re): the operator's command line over the admin socket."""
