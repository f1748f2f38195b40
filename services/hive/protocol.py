"""The JSON-lines wire format of every hive socket: framing, replies, typed field getters.

One JSON object per line each way; every reply carries `ok` and `version`. A bad line
becomes a `ProtocolError` (one clear sentence) and never takes the connection down.
No code reads a field of an untrusted request except through the getters here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

VERSION = 1
MAX_LINE = 1024 * 1024
"""Longest request or reply line, newline excluded."""


class Refusal(Exception):
    """Anything the hive refuses to do; the message is the one sentence the caller reads."""


class ProtocolError(Refusal):
    """A request that is malformed: bad framing, bad JSON, a missing or mistyped field."""


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
        """Bytes buffered that do not yet form a line."""
        return len(self._buf) + self._discarding


def encode(obj: Mapping[str, Any]) -> bytes:
    """One line of JSON, newline-terminated, ASCII-safe."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, "version": VERSION, **fields}


def refusal(error: str) -> dict[str, Any]:
    return {"ok": False, "version": VERSION, "error": error}


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
    return obj


def decode_reply(line: bytes) -> dict[str, Any]:
    """Parse one reply line from a hive socket (client side)."""
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict) or "ok" not in obj:
        raise ProtocolError("reply from the hive is not a JSON object with 'ok'")
    return obj


# typed getters -------------------------------------------------------------------------------

_MISSING = object()


def _get(req: Mapping[str, Any], name: str, default: Any) -> Any:
    value = req.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise ProtocolError(f"field '{name}' is required")
        return default
    return value


def get_str(
    req: Mapping[str, Any],
    name: str,
    default: Any = _MISSING,
    *,
    max_len: int | None = None,
    allow_empty: bool = False,
) -> Any:
    """A string field; `default` (which may be None) when absent, else required."""
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, str):
        raise ProtocolError(f"field '{name}' must be a string")
    if not allow_empty and not value:
        raise ProtocolError(f"field '{name}' must not be empty")
    if max_len is not None and len(value) > max_len:
        raise ProtocolError(f"field '{name}' is longer than {max_len} characters")
    if "\x00" in value:
        raise ProtocolError(f"field '{name}' must not contain NUL characters")
    return value


def get_int(
    req: Mapping[str, Any],
    name: str,
    default: Any = _MISSING,
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


def get_number(
    req: Mapping[str, Any],
    name: str,
    default: Any = _MISSING,
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


def get_bool(req: Mapping[str, Any], name: str, default: Any = _MISSING) -> Any:
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, bool):
        raise ProtocolError(f"field '{name}' must be true or false")
    return value


def get_str_list(
    req: Mapping[str, Any],
    name: str,
    default: Any = _MISSING,
    *,
    max_items: int = 64,
    max_len: int = 1000,
) -> Any:
    """A list of non-empty strings."""
    value = _get(req, name, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProtocolError(f"field '{name}' must be a list of non-empty strings")
    if len(value) > max_items:
        raise ProtocolError(f"field '{name}' has more than {max_items} items")
    if any(len(v) > max_len for v in value):
        raise ProtocolError(f"field '{name}' has an item longer than {max_len} characters")
    return list(value)
