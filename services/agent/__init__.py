"""hive-agent, the harness inside each agent's container: the turn loop on the anthropic SDK.

How it works, as built: docs/turn-loop.md.
"""
