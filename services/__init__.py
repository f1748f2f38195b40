"""hyperhive: the host side of a hive of Claude-driven agents (one package, many services)."""
