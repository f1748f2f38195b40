"""hive-gateway: the model gateway between every agent's harness and the Anthropic API.

It holds the API key, listens on one unix socket per agent (identity is which socket),
forwards the Messages API with streaming intact, meters each response's usage per agent
and turn into SQLite, and refuses requests of an agent that has spent its cap.
"""
