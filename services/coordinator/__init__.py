"""hive-c0re, the coordinator: broker, approvals, questions, helper events, lifecycle."""
