"""A blocking client for the hive's JSON-lines sockets (CLI, web UI, auto-updater, tests).

It owns its connection: open with `HiveClient(path)`, close with `close()` or `with`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from services.hive.protocol import MAX_LINE, decode_reply, encode


class Refused(Exception):
    """The hive answered `ok: false`; the message is its one-sentence error."""


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
                "running? start it with `hivectl serve` or `systemctl start hyperhive.target`"
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
        """Send one request object, return the reply object as it came (ok or not)."""
        wait = obj.get("wait_seconds")
        if isinstance(wait, int | float) and self.timeout is not None:
            self.sock.settimeout(self.timeout + float(wait))
        try:
            self.sock.sendall(encode(obj))
            line = self._rfile.readline(MAX_LINE + 2)
        finally:
            self.sock.settimeout(self.timeout)
        if not line:
            raise Unreachable(f"the hive at {self.path} closed the connection")
        return decode_reply(line)

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Run one command; return the reply, or raise `Refused` with the hive's error."""
        reply = self.request({"cmd": cmd, **fields})
        if not reply.get("ok"):
            raise Refused(str(reply.get("error", "refused without a reason")))
        return reply
