"""A stand-in for the Anthropic Messages API, for tests: a real HTTP server on 127.0.0.1.

The real API cannot be reached from the test machines, so the tests point the model
gateway (and through it the harness's real `anthropic` client) at this server
(`ANTHROPIC_BASE_URL`). It answers `POST /v1/messages` the way the API does (and
`POST /v1/messages/count_tokens`): server-sent events for `"stream": true`
(message_start, ping, content_block_start, content_block_delta with text_delta or
input_json_delta, content_block_stop, message_delta with stop_reason and usage,
message_stop), a JSON message otherwise, and errors with the API's JSON error shape
(429 rate_limit_error, 529 overloaded_error, 500 api_error, 401 authentication_error,
400 invalid_request_error). It checks requests as strictly as the API on what the harness
could get wrong (the key, tool_use/tool_result pairing, empty text, cache breakpoints)
and records every request so tests can assert on the model, tools, cache_control and
messages, and every usage block it sent (`usages`; each request keeps its own as `usage`).
Replies are scripted in order; an unscripted request gets a plain end_turn.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "sk-ant-test-key"
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):024d}"


# scripted replies ---------------------------------------------------------------------------


@dataclass
class Text:
    text: str


@dataclass
class ToolUse:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: _id("toolu"))


Block = Text | ToolUse


@dataclass
class Reply:
    """A whole assistant message; stop_reason defaults to tool_use if it calls a tool."""

    blocks: list[Block]
    stop_reason: str | None = None
    output_tokens: int | None = None

    @property
    def stop(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"


# The API's error type and message for each status it answers with.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


@dataclass
class ApiError:
    """An HTTP error the way the API sends it (status, error type, optional retry-after)."""

    status: int
    type: str | None = None
    message: str | None = None
    retry_after: float | None = None

    @property
    def error_type(self) -> str:
        return self.type or ERRORS.get(self.status, ERRORS[500])[0]

    @property
    def error_message(self) -> str:
        return self.message or ERRORS.get(self.status, ERRORS[500])[1]


@dataclass
class StreamError:
    """A stream that starts, then ends with an `error` event (as the API does mid-stream)."""

    type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass
class Stall:
    """A stream that starts, sends `text`, then hangs until the server is closed."""

    text: str = "Let me think about this"
    before_headers: bool = False


@dataclass
class Held:
    """A stream that sends `message_start` and a ping, then holds the rest of `reply` until
    `release` is set (the test sees what a client got before the API finished)."""

    reply: Reply
    release: threading.Event
    timeout: float = 60.0


Scripted = Reply | ApiError | StreamError | Stall | Held
Responder = Callable[["Request"], Scripted]


def text(value: str) -> Reply:
    return Reply([Text(value)])


def tool(tool_name: str, /, **input: Any) -> Reply:
    return Reply([ToolUse(tool_name, input)])


# recorded requests --------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    usage: dict[str, int] | None = None
    """The usage block sent in answer, whole (None until its response is complete): which
    agent spent it is whoever sent this request."""

    @property
    def model(self) -> str:
        return str(self.body.get("model"))

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("name")) for t in self.body.get("tools", [])]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system_text(self) -> str:
        system = self.body.get("system", "")
        if isinstance(system, str):
            return system
        return "\n".join(str(b.get("text", "")) for b in system)

    def blocks(self) -> Iterator[dict[str, Any]]:
        for m in self.messages:
            content = m["content"]
            if isinstance(content, str):
                yield {"type": "text", "text": content}
            else:
                yield from content

    def text(self) -> str:
        """Every text and tool_result content of the messages, joined."""
        parts = []
        for b in self.blocks():
            if b.get("type") == "text":
                parts.append(str(b["text"]))
            elif b.get("type") == "tool_result":
                c = b.get("content")
                parts.append(c if isinstance(c, str) else json.dumps(c))
        return "\n".join(parts)

    def tool_results(self) -> list[dict[str, Any]]:
        return [b for b in self.blocks() if b.get("type") == "tool_result"]

    def cache_breakpoints(self) -> list[str]:
        """Where cache_control sits: 'tools', 'system', 'messages'."""
        where = []
        where += ["tools" for t in self.body.get("tools", []) if "cache_control" in t]
        system = self.body.get("system")
        if isinstance(system, list):
            where += ["system" for b in system if "cache_control" in b]
        where += ["messages" for b in self.blocks() if "cache_control" in b]
        return where


class Invalid(Exception):
    """A request the real API would refuse with 400 invalid_request_error."""


def validate(body: dict[str, Any]) -> None:
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            raise Invalid(f"{key}: Field required")
    messages = body["messages"]
    if not messages or messages[0].get("role") != "user":
        raise Invalid("messages: first message must use the user role")
    tools_needed = False
    breakpoints = 0
    for i, m in enumerate(messages):
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        seen_other = False
        for b in blocks:
            kind = b.get("type")
            breakpoints += "cache_control" in b
            if kind == "text" and not b.get("text"):
                raise Invalid(f"messages.{i}: text content blocks must be non-empty")
            if kind in ("tool_use", "tool_result"):
                tools_needed = True
            if kind == "tool_result":
                if m["role"] != "user" or seen_other:
                    raise Invalid(f"messages.{i}: tool_result blocks must come first")
                prev = messages[i - 1] if i else {}
                ids = [
                    c.get("id")
                    for c in prev.get("content", [])
                    if isinstance(c, dict) and c.get("type") == "tool_use"
                ]
                if b.get("tool_use_id") not in ids:
                    raise Invalid(
                        f"messages.{i}: unexpected `tool_use_id` found in `tool_result` "
                        "blocks; each tool_result block must have a corresponding tool_use "
                        "block in the previous message"
                    )
            else:
                seen_other = True
        if m.get("role") == "assistant" and i + 1 < len(messages):
            uses = [c.get("id") for c in blocks if c.get("type") == "tool_use"]
            nxt = messages[i + 1].get("content", [])
            answered = [c.get("tool_use_id") for c in nxt if isinstance(c, dict)]
            missing = [u for u in uses if u not in answered]
            if missing:
                raise Invalid(
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` "
                    f"blocks immediately after: {', '.join(missing)}"
                )
    if tools_needed and not body.get("tools"):
        raise Invalid(
            "Requests which include `tool_use` or `tool_result` blocks must define tools."
        )
    breakpoints += sum("cache_control" in t for t in body.get("tools", []))
    system = body.get("system")
    if isinstance(system, list):
        breakpoints += sum("cache_control" in b for b in system)
    if breakpoints > 4:
        raise Invalid(
            f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        )


# the server ---------------------------------------------------------------------------------


class FakeAnthropic:
    """The stand-in API. Use as a context manager; `url` is its ANTHROPIC_BASE_URL."""

    def __init__(self, api_key: str = API_KEY, default: Responder | None = None) -> None:
        self.api_key = api_key
        self.default = default
        """Answers requests once the script is used up (None: a plain end_turn text)."""
        self.requests: list[Request] = []
        self.usages: list[dict[str, int]] = []
        """Every usage block the API sent, whole (input and cache from message_start, output
        from message_delta), in the order of the responses."""
        self.unscripted = 0
        self.errors: list[BaseException] = []
        """Exceptions raised by scripted responders (re-raised by `close`)."""
        self._script: list[Scripted | Responder] = []
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._cache_prefixes: set[str] = set()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeAnthropic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        if self.errors:
            raise AssertionError(f"a scripted responder failed: {self.errors[0]!r}")

    def script(self, *replies: Scripted | Responder) -> None:
        """Queue replies, one per request, in order."""
        with self._cond:
            self._script.extend(replies)

    def wait_requests(self, n: int, timeout: float = 30.0) -> list[Request]:
        """Block until at least `n` requests arrived; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError(f"expected {n} API requests, got {len(self.requests)}")
            return list(self.requests)

    def wait_for(self, matches: Callable[[Request], bool], timeout: float = 30.0) -> Request:
        """Block until a request for which `matches` is true arrived; return it."""
        with self._cond:
            found: list[Request] = []

            def seen() -> bool:
                found[:] = [r for r in self.requests if matches(r)]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                raise AssertionError(f"no matching API request among {len(self.requests)}")
            return found[0]

    # called by the handler --------------------------------------------------------------
    def _next(self, req: Request) -> Scripted:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()
            item = self._script.pop(0) if self._script else self.default
            if item is None:
                self.unscripted += 1
        if item is None:
            return text("Nothing more to do.")
        if not callable(item):
            return item
        try:
            return item(req)
        except Exception as e:
            self.errors.append(e)
            return ApiError(400, message=f"the test's responder failed: {e!r}")

    def _used(self, req: Request, usage: dict[str, int]) -> None:
        with self._cond:
            req.usage = dict(usage)
            self.usages.append(dict(usage))
            self._cond.notify_all()

    def _usage(self, body: dict[str, Any]) -> dict[str, int]:
        """Token counts shaped like the API's: the cached prefix is tools + system."""
        total = len(json.dumps(body)) // 4 + 1
        prefix = json.dumps([body.get("tools"), body.get("system")])
        cached = 0
        written = 0
        if "cache_control" in prefix:
            size = len(prefix) // 4
            with self._cond:
                if prefix in self._cache_prefixes:
                    cached = size
                else:
                    written = size
                    self._cache_prefixes.add(prefix)
        return {
            "input_tokens": max(1, total - cached - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached,
        }


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a harness killed or cancelled mid-stream) is normal here."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # each event goes out as it is written, as the API streams them (without this, a
        # short answer's events wait for the client's delayed ACK: 40 ms on loopback)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # plumbing -----------------------------------------------------------------------------
    def _json(
        self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _id("req"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": _id("req"),
        }
        self._json(status, body, headers)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", _id("req"))
        self.end_headers()

    # the endpoint --------------------------------------------------------------------------
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        raw = self.rfile.read(length)
        path = self.path.split("?")[0]
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            self._error(404, "not_found_error", f"Not found: {self.path}")
            return
        # The API takes the key as x-api-key or as a bearer token (newer SDKs send that).
        auth = self.headers.get("authorization", "")
        key = self.headers.get("x-api-key") or (auth[7:] if auth.startswith("Bearer ") else "")
        if not key:
            self._error(401, "authentication_error", "x-api-key header is required")
            return
        if key != self.fake.api_key:
            self._error(401, "authentication_error", "invalid x-api-key")
            return
        if not self.headers.get("anthropic-version"):
            self._error(400, "invalid_request_error", "anthropic-version: header is required")
            return
        if path == "/v1/messages/count_tokens":  # free: no usage block, never scripted
            try:
                body = json.loads(raw)
            except ValueError as e:
                self._error(400, "invalid_request_error", str(e))
                return
            self._json(200, {"input_tokens": len(json.dumps(body)) // 4 + 1})
            return
        try:
            body = json.loads(raw)
            validate(body)
        except (ValueError, Invalid) as e:
            self._error(400, "invalid_request_error", str(e))
            return
        req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.fake._next(req)
        if isinstance(reply, ApiError):
            headers = (
                {"retry-after": str(reply.retry_after)} if reply.retry_after is not None else None
            )
            self._error(reply.status, reply.error_type, reply.error_message, headers)
            return
        if isinstance(reply, Stall) and reply.before_headers:
            self.fake._closing.wait()
            self.close_connection = True
            return
        usage = self.fake._usage(body)
        if not body.get("stream"):
            if isinstance(reply, Held):
                reply.release.wait(reply.timeout)
                reply = reply.reply
            if not isinstance(reply, Reply):
                self._error(500, "api_error", "Internal server error")
                return
            self._json(200, self._message(req, reply, usage))
            return
        self._stream(req, reply, usage)

    def _message(self, req: Request, reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
        body = req.body
        content: list[dict[str, Any]] = []
        for b in reply.blocks:
            if isinstance(b, Text):
                content.append({"type": "text", "text": b.text, "citations": None})
            else:
                content.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
        final = {**usage, "output_tokens": reply.output_tokens or 5 + len(json.dumps(content)) // 4}
        self.fake._used(req, final)
        return {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": reply.stop,
            "stop_sequence": None,
            "usage": final,
        }

    def _stream(
        self,
        req: Request,
        reply: Reply | StreamError | Stall | Held,
        usage: dict[str, int],
    ) -> None:
        body = req.body
        self._start_stream()
        start = {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        try:
            self._event("message_start", {"type": "message_start", "message": start})
            self._event("ping", {"type": "ping"})
            if isinstance(reply, Held):
                reply.release.wait(reply.timeout)
                reply = reply.reply
            if isinstance(reply, StreamError):
                error = {"type": "error", "error": {"type": reply.type, "message": reply.message}}
                self._event("error", error)
                self._chunk(b"")
                return
            if isinstance(reply, Stall):
                self._text_block(0, reply.text, stop=False)
                self.fake._closing.wait()
                self.close_connection = True
                return
            for index, block in enumerate(reply.blocks):
                if isinstance(block, Text):
                    self._text_block(index, block.text)
                else:
                    self._tool_block(index, block)
            output = reply.output_tokens or 5 + sum(len(str(b)) for b in reply.blocks) // 4
            self.fake._used(req, {**usage, "output_tokens": output})
            self._event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop, "stop_sequence": None},
                    "usage": {"output_tokens": output},
                },
            )
            self._event("message_stop", {"type": "message_stop"})
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _text_block(self, index: int, value: str, stop: bool = True) -> None:
        self._event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        )
        for i in range(0, len(value), 12):
            delta = {"type": "text_delta", "text": value[i : i + 12]}
            self._event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        if stop:
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _tool_block(self, index: int, block: ToolUse) -> None:
        start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
        self._event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        payload = json.dumps(block.input)
        pieces = [""] + [payload[i : i + 10] for i in range(0, len(payload), 10)]
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece}
            self._event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        self._event("content_block_stop", {"type": "content_block_stop", "index": index})
