"""One Messages API request, streamed with the anthropic SDK, retried, and cancellable.

Requests go to the model gateway over its unix socket, with no key (the gateway adds its
own) and the turn's id as `X-Hive-Turn`. The stream runs in a worker thread so a cancel
returns at once: the abort shuts the connection down and the worker's result is dropped.
Overloaded, rate-limited, 5xx and network failures are retried here with backoff (the
SDK's own retries are off); any other failure is raised as one of this module's exceptions.

The SDK is imported by an `Api`'s first request, inside a turn (after it reported itself
thinking): a harness waiting for messages never loads it (docs/BENCHMARKS.md, harness memory).
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx2

from ..hive.pricing import Usage
from ..hive.vocab import GatewayRefusal
from .cancel import Cancelled, CancelToken
from .gateway import BASE_URL

if TYPE_CHECKING:
    import anthropic

TRANSIENT_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error", "timeout_error"})
TURN_HEADER = "X-Hive-Turn"


def no_key_headers() -> dict[str, str]:
    """The SDK sends no key at all: the harness has none, and the gateway adds its own."""
    import anthropic

    return cast(dict[str, str], {"X-Api-Key": anthropic.omit, "Authorization": anthropic.omit})


CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0
"""Seconds without a byte from the API (it sends pings while it thinks) before a retry."""


class AuthFailed(Exception):
    """The API refused the key (401): the harness needs a new one."""


class ContextTooLong(Exception):
    """The request is over the model's context window: compact, then try again."""


class OverBudget(Exception):
    """The gateway refused: this agent has spent its cap. The turn waits, open."""


class ApiFailure(Exception):
    """A failure retrying will not fix (bad request, permission, retries exhausted)."""


@dataclass
class Response:
    content: list[dict[str, Any]]
    stop_reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def context_tokens(self) -> int:
        """Everything the request and its answer occupy in the context window."""
        return (
            self.input_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
            + self.output_tokens
        )

    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text").strip()

    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]

    def count(self, usage: Usage, model: str) -> None:
        usage.add(
            model,
            input=self.input_tokens,
            output=self.output_tokens,
            cache_write=self.cache_write_tokens,
            cache_read=self.cache_read_tokens,
        )


def block_param(block: Any) -> dict[str, Any] | None:
    """An SDK content block as the request param it round-trips as (None: not kept)."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return None


def to_response(message: Any) -> Response:
    usage = message.usage
    content = [p for p in (block_param(b) for b in message.content) if p is not None]
    return Response(
        content=content,
        stop_reason=message.stop_reason,
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
    )


def _error_type(e: anthropic.APIStatusError) -> str | None:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            return str(err["type"])
    return None


def hive_refusal(e: BaseException) -> GatewayRefusal | None:
    """The gateway's own refusal in an error, None for one that came from the API."""
    import anthropic

    if isinstance(e, anthropic.APIStatusError) and isinstance(e.body, dict):
        err = e.body.get("error")
        if isinstance(err, dict):
            return GatewayRefusal.of(err.get("hive_refusal"))
    return None


def classify(e: BaseException) -> str:
    """'over_budget', 'auth', 'too_long', 'transient' or 'fatal' for an exception from one
    request."""
    import anthropic

    if hive_refusal(e) is GatewayRefusal.OVER_BUDGET:
        return "over_budget"
    if isinstance(e, anthropic.AuthenticationError):
        return "auth"
    if isinstance(e, anthropic.APIStatusError):
        kind = _error_type(e)
        if kind in TRANSIENT_TYPES or e.status_code in (408, 409, 429) or e.status_code >= 500:
            return "transient"
        if "prompt is too long" in str(e).lower():
            return "too_long"
        return "fatal"
    if isinstance(e, anthropic.APIConnectionError | httpx2.TransportError):
        return "transient"
    return "fatal"


def describe(e: BaseException) -> str:
    import anthropic

    if isinstance(e, anthropic.APIStatusError):
        kind = _error_type(e) or "error"
        message = ""
        body = e.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message", ""))
        return f"{kind} ({e.status_code}){': ' + message if message else ''}"
    return f"{type(e).__name__}: {e}"


def retry_after(e: BaseException) -> float | None:
    import anthropic

    if isinstance(e, anthropic.APIStatusError):
        raw = e.response.headers.get("retry-after")
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None
    return None


@dataclass
class _Exchange:
    """One streamed request in its worker thread; the turn's thread only reads it."""

    done: threading.Event = field(default_factory=threading.Event)
    stream: Any = None
    message: Any = None
    error: BaseException | None = None

    def abort(self) -> None:
        self.done.set()
        stream = self.stream
        if stream is None:
            return
        try:
            net = stream.response.extensions.get("network_stream")
            sock = net.get_extra_info("socket") if net is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass


class Api:
    def __init__(
        self,
        gateway_socket: Path,
        *,
        retry_base: float,
        retry_cap: float,
        max_retries: int,
    ) -> None:
        self.gateway_socket = gateway_socket
        self._client: anthropic.Anthropic | None = None
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_retries = max_retries

    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK's client, made (and the SDK imported) by the first request: a turn has
        already reported itself thinking by then, so the import never looks like idle."""
        if self._client is None:
            import anthropic  # here, not at the top: a harness waiting never needs it

            timeout = httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
            self._client = anthropic.Anthropic(
                api_key="",  # explicit, so the SDK looks for no credentials of its own
                base_url=BASE_URL,
                default_headers=no_key_headers(),
                max_retries=0,
                timeout=timeout,
                http_client=httpx2.Client(
                    transport=httpx2.HTTPTransport(uds=str(self.gateway_socket)),
                    trust_env=False,  # never a proxy from the environment: only the socket
                    timeout=timeout,
                ),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def backoff(self, attempt: int, e: BaseException) -> float:
        hinted = retry_after(e)
        if hinted is not None:
            return min(max(hinted, 0.0), self.retry_cap)
        delay = min(self.retry_base * 2.0 ** (attempt - 1), self.retry_cap)
        return float(delay * random.uniform(0.8, 1.0))

    def request(
        self,
        params: dict[str, Any],
        cancel: CancelToken,
        *,
        on_attempt: Callable[[int], None],
        on_retry: Callable[[str], None],
        turn: str | None = None,
    ) -> Response:
        """Stream one request to its end, retrying transient failures; honours `cancel`.
        `turn` goes to the gateway as X-Hive-Turn (it groups the usage it meters)."""
        attempt = 0
        while True:
            attempt += 1
            cancel.check()
            on_attempt(attempt)
            try:
                return self._stream_once(params, cancel, turn)
            except Cancelled:
                raise
            except Exception as e:
                kind = classify(e)
                if kind == "over_budget":
                    raise OverBudget(describe(e)) from None
                if kind == "auth":
                    raise AuthFailed(describe(e)) from None
                if kind == "too_long":
                    raise ContextTooLong(describe(e)) from None
                if kind == "fatal":
                    raise ApiFailure(describe(e)) from None
                if self.max_retries and attempt > self.max_retries:
                    raise ApiFailure(f"{describe(e)}; gave up after {attempt} attempts") from None
                delay = self.backoff(attempt, e)
                on_retry(f"retrying: {describe(e)}; attempt {attempt + 1} in {delay:.1f} s")
                cancel.sleep(delay)

    def _stream_once(
        self, params: dict[str, Any], cancel: CancelToken, turn: str | None
    ) -> Response:
        ex = _Exchange()
        headers = {TURN_HEADER: turn} if turn else None

        def work() -> None:
            try:
                with self.client.messages.stream(**params, extra_headers=headers) as stream:
                    ex.stream = stream
                    if not ex.done.is_set():
                        ex.message = stream.get_final_message()
            except BaseException as e:
                ex.error = e
            finally:
                ex.done.set()

        worker = threading.Thread(target=work, name="api-stream", daemon=True)
        with cancel.on_cancel(ex.abort):
            worker.start()
            ex.done.wait()
        cancel.check()
        if ex.error is not None:
            raise ex.error
        return to_response(ex.message)
