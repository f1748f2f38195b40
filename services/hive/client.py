"""A blocking client for the hive's JSON-lines sockets (CLI, web UI, auto-updater, tests).

It owns its connection: open with `HiveClient(path)`, close with `close()` or `with`.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from .protocol import MAX_LINE, BadReply, decode_reply, encode
from .vocab import Code

__all__ = ["BadReply", "HiveClient", "Refused", "Unreachable"]


class Refused(Exception):
    """The hive answered `ok: false`; the message is its one-sentence error, `code` why."""

    def __init__(self, message: str, code: Code = Code.CONFLICT) -> None:
        super().__init__(message)
        self.code = code


class Unreachable(Exception):
    """No coordinator answers at the socket's path."""


class HiveClient:
    def __init__(self, path: Path | str, *, timeout: float | None = 30.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            self.sock.close()
            raise Unreachable(
                f"cannot reach the hive at {self.path} ({e.strerror}): is the coordinator "
                "running? start it with `hivectl serve` or `systemctl start hyperhive.target`; "
                "if it runs elsewhere, set HIVE_RUNTIME_DIR to its runtime dir (for `make demo`: "
                ".demo/run in the checkout)"
            ) from None
        except PermissionError:
            self.sock.close()
            raise Unreachable(
                f"permission denied on {self.path}: the admin socket is for root and the "
                "hive-admin group"
            ) from None
        self._rfile = self.sock.makefile("rb")

    def __enter__(self) -> HiveClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._rfile.close()
        self.sock.close()

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Send one request object, return the reply object as it came (ok or not).

        A reply that cannot be read raises `BadReply`, and the connection is shut: what
        follows on it can no longer be told apart from the rest of that reply.
        """
        line_out = encode(obj)  # a lone surrogate is refused here, before anything is sent
        wait = obj.get("wait_seconds")
        if isinstance(wait, int | float) and self.timeout is not None:
            self.sock.settimeout(self.timeout + float(wait))
        try:
            self.sock.sendall(line_out)
            line = self._rfile.readline(MAX_LINE + 2)
        finally:
            self.sock.settimeout(self.timeout)
        if not line:
            raise Unreachable(f"the hive at {self.path} closed the connection")
        try:
            return decode_reply(line)
        except BadReply:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            raise

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Run one command; return the reply, or raise `Refused` with the hive's error."""
        reply = self.request({"cmd": cmd, **fields})
        if not reply.get("ok"):
            raise Refused(
                str(reply.get("error", "refused without a reason")), Code.of(reply.get("code"))
            )
        return reply
