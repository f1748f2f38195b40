"""Test stand-ins for what the harness talks to: the Anthropic Messages API, and the
harness itself as a subprocess wired to a test hive.

`server` is the fake API (see its docstring: it is a stand-in, not the real service);
`harness` starts `python -m hyperhive.agent` against a running test coordinator.
"""

from tests.fakeapi.server import (
    API_KEY,
    ApiError,
    FakeAnthropic,
    Held,
    Reply,
    Request,
    Stall,
    StreamError,
    Text,
    ToolUse,
    text,
    tool,
)

__all__ = [
    "API_KEY",
    "ApiError",
    "FakeAnthropic",
    "Held",
    "Reply",
    "Request",
    "Stall",
    "StreamError",
    "Text",
    "ToolUse",
    "text",
    "tool",
]
