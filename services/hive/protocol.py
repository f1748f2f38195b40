"""The JSON-lines wire format of every hive socket: framing, replies, typed field getters.

One JSON object per line each way; every reply carries `ok` and `version`. A bad line
becomes a `ProtocolError` (one clear sentence) and never takes the connection down.
No code reads a field of an untrusted request except through the getters here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum, auto
from typing import Any, TypeVar, overload

from .vocab import Code

VERSION = 1
MAX_LINE = 1024 * 1024
"""Longest request or reply line in bytes, newline excluded."""

MAX_BODY = 256 * 1024
"""Longest message body, in bytes of UTF-8."""

RECV_ENVELOPE = 4096
"""Bytes a `recv` reply may need around the escaped body (ids, names, timestamps, keys)."""

MAX_BODY_ESCAPED = MAX_LINE - RECV_ENVELOPE
"""Longest message body once escaped as a JSON string (a control character takes 6 bytes):
what keeps every `recv` reply within `MAX_LINE`."""


class Refusal(Exception):
    """Anything the hive refuses to do; the message is the one sentence the caller reads,
    `code` what a client branches on (a class's default, or given per refusal)."""

    code: Code = Code.CONFLICT

    def __init__(self, message: str, *, code: Code | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ProtocolError(Refusal):
    """A request that is malformed: bad framing, bad JSON, a missing or mistyped field."""

    code = Code.INVALID


class Oversize:
    """Marker the framer yields in place of a line longer than `MAX_LINE`."""

    def __init__(self, size: int) -> None:
        self.size = size


class LineFramer:
    """Splits a byte stream into lines; a line over the limit becomes one `Oversize`."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._discarding = 0  # bytes of an oversized line dropped so far, 0 = not discarding

    def feed(self, data: bytes) -> Iterator[bytes | Oversize]:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if self._discarding:
                if nl < 0:
                    self._discarding += len(self._buf)
                    self._buf.clear()
                    return
                size = self._discarding + nl
                del self._buf[: nl + 1]
                self._discarding = 0
                yield Oversize(size)
                continue
            if nl < 0:
                if len(self._buf) > self.limit:
                    self._discarding = len(self._buf)
                    self._buf.clear()
                return
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if len(line) > self.limit:
                yield Oversize(len(line))
            else:
                yield line

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a line (those of a line being discarded too)."""
        return len(self._buf) + self._discarding

    @property
    def buffered(self) -> int:
        """Bytes held in memory (a line being discarded is not held)."""
        return len(self._buf)


def encode(obj: Mapping[str, Any]) -> bytes:
    """One line of JSON in UTF-8, newline-terminated.

    UTF-8, not `\\u` escapes, so a size counted in bytes on one side is the size on the
    other. A string that is not valid Unicode (a lone surrogate) raises `ProtocolError`.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        raise ProtocolError(
            "the line holds text that is not valid Unicode (a lone surrogate such as \\ud800): "
            "send UTF-8 text"
        ) from None


def encode_reply(body: Mapping[str, Any], cmd: str = "?") -> tuple[bytes, bool]:
    """A reply line that is always within `MAX_LINE`: the reply, or a refusal naming its size.

    Returns the line and whether it is the reply asked for (False: it was replaced).
    """
    try:
        line = encode(body)
    except ProtocolError:
        return encode(
            refusal(f"the reply to {cmd!r} holds text that is not valid Unicode", Code.INTERNAL)
        ), False
    if len(line) - 1 <= MAX_LINE:
        return line, True
    why = (
        f"the reply to {cmd!r} would be {len(line) - 1} bytes, over the {MAX_LINE}-byte "
        "line limit: ask for less (e.g. without `all`)"
    )
    return encode(refusal(why, Code.INVALID)), False


def escaped_size(text: str) -> int:
    """Bytes `text` takes as a JSON string on the wire (quotes and escapes included)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates counted as 3, as SQLite would store them)."""
    return len(text.encode("utf-8", "surrogatepass"))


def fit_listing(
    key: str, items: Sequence[Mapping[str, Any]], *, age: str, **fields: Any
) -> dict[str, Any]:
    """Reply fields holding `items` under `key`, leaving out the oldest items (smallest
    `item[age]`) until the whole reply fits in `MAX_LINE`; `truncated` says whether any
    were left out and `omitted` how many. The order of the items kept is unchanged.
    """
    whole = {**fields, key: items, "truncated": False, "omitted": 0}
    if len(encode(ok(**whole))) - 1 <= MAX_LINE:
        return whole
    empty = ok(**fields, **{key: []}, truncated=True, omitted=len(items))
    total = len(encode(empty)) + sum(len(encode(item)) for item in items)  # +1 each: a comma
    left_out: set[int] = set()
    for i in sorted(range(len(items)), key=lambda i: items[i].get(age) or 0):
        if total <= MAX_LINE:
            break
        total -= len(encode(items[i]))
        left_out.add(i)
    shown = [item for i, item in enumerate(items) if i not in left_out]
    return {**fields, key: shown, "truncated": True, "omitted": len(left_out)}


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, "version": VERSION, **fields}


def refusal(error: str, code: Code = Code.CONFLICT) -> dict[str, Any]:
    return {"ok": False, "version": VERSION, "error": error, "code": str(code)}


def decode_request(line: bytes | Oversize) -> dict[str, Any]:
    """Parse one request line into a dict with a string `cmd`, or raise `ProtocolError`."""
    if isinstance(line, Oversize):
        raise ProtocolError(f"request line of {line.size} bytes is over the {MAX_LINE}-byte limit")
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("request is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise ProtocolError("request is not valid JSON: send one JSON object per line") from None
    if not isinstance(obj, dict):
        raise ProtocolError("request must be a JSON object with a 'cmd' field")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise ProtocolError("request has no 'cmd': name the command as a string")
    _utf8(cmd, "cmd")
    return obj


class BadReply(ValueError):
    """A reply line the client cannot use: cut off at the line limit, not UTF-8, not JSON.

    `head` is its first bytes, enough to find the id of a message it carried.
    """

    def __init__(self, message: str, head: bytes = b"") -> None:
        super().__init__(message)
        self.head = head


def decode_reply(line: bytes) -> dict[str, Any]:
    """Parse one reply line from a hive socket (client side); raises `BadReply`."""
    head = line[:256]
    if not line.endswith(b"\n") and len(line) > MAX_LINE:
        raise BadReply(f"the reply is longer than the {MAX_LINE}-byte line limit", head)
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadReply("the reply is not valid UTF-8", head) from None
    except (ValueError, RecursionError):
        raise BadReply("the reply is not valid JSON", head) from None
    if not isinstance(obj, dict) or "ok" not in obj:
        raise BadReply("the reply from the hive is not a JSON object with 'ok'", head)
    return obj


# typed getters -------------------------------------------------------------------------------


class _Missing(Enum):
    """The default of a required field (a sentinel whose type mypy can tell apart)."""

    MISSING = auto()


_MISSING = _Missing.MISSING
D = TypeVar("D")


def _get(req: Mapping[str, Any], name: str, default: object) -> Any:
    value = req.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise ProtocolError(f"field '{name}' is required")
        return default
    return value


def _utf8(value: str, name: str) -> int:
    """The UTF-8 size of a string field; a lone surrogate (JSON `\\ud800`) is refused."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ProtocolError(
            f"field '{name}' is not valid Unicode text (it holds a lone surrogate such as "
            "\\ud800): send UTF-8 text"
        ) from None


def _text(value: str, name: str, max_bytes: int | None, what: str = "field") -> None:
    size = _utf8(value, name)
    if max_bytes is not None and size > max_bytes:
        raise ProtocolError(
            f"{what} '{name}' is {size} bytes of UTF-8, over the {max_bytes}-byte limit"
        )
    if "\x00" in value:
        raise ProtocolError(f"{what} '{name}' must not contain NUL characters")


@overload
def get_str(
    req: Mapping[str, Any],
    name: str,
    default: _Missing = _MISSING,
    *,
    max_bytes: int | None = ...,
    allow_empty: bool = ...,
) -> str: ...


@overload
def get_str(
    req: Mapping[str, Any],
    name: str,
    default: D,
    *,
    max_bytes: int | None = ...,
    allow_empty: bool = ...,
) -> str | D: ...


def get_str(
    req: Mapping[str, Any],
    name: str,
    default: object = _MISSING,
    *,
    max_bytes: int | None = None,
    allow_empty: bool = False,
) -> Any:
    """A string field; `default` (which may be None) when absent, else required.

    `max_bytes` counts the UTF-8 encoding; NUL and lone surrogates are refused.
    """
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, str):
        raise ProtocolError(f"field '{name}' must be a string")
    if not allow_empty and not value:
        raise ProtocolError(f"field '{name}' must not be empty")
    _text(value, name, max_bytes)
    return value


def get_body(req: Mapping[str, Any], name: str = "body") -> str:
    """A message body: at most `MAX_BODY` bytes of UTF-8, and small enough once escaped
    as JSON that the `recv` reply carrying it stays within `MAX_LINE`."""
    value: str = get_str(req, name, max_bytes=MAX_BODY)
    escaped = escaped_size(value)
    if escaped > MAX_BODY_ESCAPED:
        raise ProtocolError(
            f"field '{name}' takes {escaped} bytes escaped as JSON (control characters take "
            f"6 bytes each), over the {MAX_BODY_ESCAPED}-byte limit: send fewer control "
            "characters"
        )
    return value


@overload
def get_int(
    req: Mapping[str, Any],
    name: str,
    default: _Missing = _MISSING,
    *,
    minimum: int | None = ...,
    maximum: int | None = ...,
) -> int: ...


@overload
def get_int(
    req: Mapping[str, Any],
    name: str,
    default: D,
    *,
    minimum: int | None = ...,
    maximum: int | None = ...,
) -> int | D: ...


def get_int(
    req: Mapping[str, Any],
    name: str,
    default: object = _MISSING,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> Any:
    """An integer field (booleans refused), optionally bounded."""
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"field '{name}' must be an integer")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "" if minimum is None else f" from {minimum}"
        hi = "" if maximum is None else f" to {maximum}"
        raise ProtocolError(f"field '{name}' must be an integer{lo}{hi}")
    return value


@overload
def get_number(
    req: Mapping[str, Any],
    name: str,
    default: _Missing = _MISSING,
    *,
    minimum: float | None = ...,
    maximum: float | None = ...,
) -> float: ...


@overload
def get_number(
    req: Mapping[str, Any],
    name: str,
    default: D,
    *,
    minimum: float | None = ...,
    maximum: float | None = ...,
) -> float | D: ...


def get_number(
    req: Mapping[str, Any],
    name: str,
    default: object = _MISSING,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """A finite int or float field (booleans refused), optionally bounded."""
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ProtocolError(f"field '{name}' must be a number")
    if value in (float("inf"), float("-inf")):
        raise ProtocolError(f"field '{name}' must be a finite number")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "" if minimum is None else f" from {minimum}"
        hi = "" if maximum is None else f" to {maximum}"
        raise ProtocolError(f"field '{name}' must be a number{lo}{hi}")
    return value


@overload
def get_bool(req: Mapping[str, Any], name: str, default: _Missing = _MISSING) -> bool: ...


@overload
def get_bool(req: Mapping[str, Any], name: str, default: D) -> bool | D: ...


def get_bool(req: Mapping[str, Any], name: str, default: object = _MISSING) -> Any:
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, bool):
        raise ProtocolError(f"field '{name}' must be true or false")
    return value


@overload
def get_str_list(
    req: Mapping[str, Any],
    name: str,
    default: _Missing = _MISSING,
    *,
    max_items: int = ...,
    max_bytes: int = ...,
) -> list[str]: ...


@overload
def get_str_list(
    req: Mapping[str, Any], name: str, default: D, *, max_items: int = ..., max_bytes: int = ...
) -> list[str] | D: ...


def get_str_list(
    req: Mapping[str, Any],
    name: str,
    default: object = _MISSING,
    *,
    max_items: int = 64,
    max_bytes: int = 1000,
) -> Any:
    """A list of non-empty strings, each at most `max_bytes` of UTF-8, without NUL."""
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProtocolError(f"field '{name}' must be a list of non-empty strings")
    if len(value) > max_items:
        raise ProtocolError(f"field '{name}' has more than {max_items} items")
    for v in value:
        _text(v, name, max_bytes, what="an item of field")
    return list(value)
