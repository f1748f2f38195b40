"""The agent harness that runs inside each container: the turn loop (harness issue)."""
