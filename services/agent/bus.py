"""The harness's connection to its hive socket: typed calls, reconnecting after a restart.

It owns one main connection (used by the turn loop's thread only) and opens extra ones
on request for the cancel watcher and the recv tool. It never retries a refusal, and
never retries a reply it could not read: the message in it is set aside instead.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
from pathlib import Path
from typing import Any

from ..hive.client import BadReply, HiveClient, Refused, Unreachable
from ..hive.log import WARNING, log
from ..hive.wire import MessageRow, message_row

MAX_RECV_WAIT = 180
RECONNECT_FIRST = 0.2
RECONNECT_CAP = 5.0
MAX_REASON = 500

__all__ = ["MAX_RECV_WAIT", "BadReply", "Bus", "BusDown", "Refused", "message_id_in"]

_MESSAGE_ID = re.compile(rb'"message"\s*:\s*\{\s*"id"\s*:\s*(\d{1,18})\b')


def message_id_in(head: bytes) -> int | None:
    """The id of the message a reply carried, from its first bytes (None if not there)."""
    found = _MESSAGE_ID.search(head)
    return int(found.group(1)) if found else None


class BusDown(Exception):
    """The hive socket does not answer (the coordinator is down or restarting)."""


class Bus:
    def __init__(self, path: Path, agent: str, stop: threading.Event | None = None) -> None:
        self.path = path
        self.agent = agent
        self.stop = stop or threading.Event()
        self._client: HiveClient | None = None

    def open(self, timeout: float | None = 30.0) -> HiveClient:
        """A new connection of its own (the caller closes it); raises `BusDown`."""
        try:
            return HiveClient(self.path, timeout=timeout)
        except Unreachable as e:
            raise BusDown(str(e)) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def interrupt(self) -> None:
        """Wake the main connection's blocked call (from a signal handler or a thread)."""
        client = self._client
        if client is not None:
            interrupt(client)

    def _connected(self) -> HiveClient:
        """The main connection, reopened first if the hive closed it (a restart)."""
        if self._client is not None and _peer_closed(self._client):
            self.close()
        if self._client is None:
            self._client = self.open()
        return self._client

    def call(
        self, cmd: str, *, persistent: bool = False, repeatable: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """Run one command on the main connection; a refusal raises `Refused`.

        A hive that cannot be reached is tried again once, and with `persistent` with a
        growing pause until it answers or `stop` is set (then `BusDown`). A connection
        that breaks after the request went out is retried only if the command is
        `repeatable` (doing it twice does no harm).
        """
        delay = RECONNECT_FIRST
        attempts = 0
        while True:
            attempts += 1
            if self.stop.is_set():
                raise BusDown("the harness is stopping")
            try:
                client = self._connected()
                return client.call(cmd, **fields)
            except Refused:
                raise
            except (BusDown, Unreachable, OSError, ValueError) as e:
                if isinstance(e, BadReply) and cmd == "recv":
                    self.close()  # the same message would come back: the caller sets it aside
                    raise
                # ValueError: a garbled reply line; the connection is not trusted after it.
                sent = self._client is not None
                self.close()
                if sent and not repeatable:
                    raise BusDown(
                        f"the hive connection broke during {cmd}: it may or may not have "
                        f"been done ({e})"
                    ) from None
                if attempts == 1:
                    continue
                if not persistent or self.stop.is_set():
                    raise BusDown(f"the hive socket {self.path} does not answer: {e}") from None
                if attempts == 3:
                    log(
                        f"hive socket unreachable, retrying: {e}",
                        kind="turn",
                        agent=self.agent,
                        priority=WARNING,
                    )
                if self.stop.wait(delay):
                    raise BusDown("stopping") from None
                delay = min(delay * 2, RECONNECT_CAP)

    def recv(self, wait_seconds: float) -> MessageRow | None:
        """The next inbox message, leased until `ack`, or None on timeout or kick.

        Waits out outages. A message not acked before this connection ends goes back to
        the inbox, so a crash between receiving and saving it loses nothing. A reply it
        cannot read (cut at the line limit, not UTF-8, not JSON) would come back on every
        retry: the message in it is set aside, and None returned.
        """
        wait = max(0.0, min(float(wait_seconds), MAX_RECV_WAIT))
        try:
            reply = self.call("recv", persistent=True, wait_seconds=wait, ack=True)
        except BadReply as e:
            self.set_aside(message_id_in(e.head), f"its recv reply could not be read: {e}")
            return None
        return message_row(reply.get("message"))

    def set_aside(self, message_id: int | None, reason: str) -> int | None:
        """Ask the hive to set aside a message of this agent's inbox that the harness cannot
        use (None: the head of the inbox); its id, or None if the hive did not. Logged."""
        fields: dict[str, Any] = {"reason": reason[:MAX_REASON]}
        if message_id is not None:
            fields["id"] = message_id
        which = f"inbox message #{message_id}" if message_id is not None else "the inbox's head"
        try:
            # Without an id it must not run twice: a retry would set aside the next message.
            got = self.call(
                "set_aside", persistent=True, repeatable=message_id is not None, **fields
            )
        except (Refused, BusDown) as e:
            log(
                f"could not set aside {which}: {e}", kind="turn", agent=self.agent, priority=WARNING
            )
            return None
        chosen = got.get("id")
        log(
            f"inbox message #{chosen} set aside, the operator can see it in "
            f"`hivectl inbox {self.agent}`: {reason}",
            kind="turn",
            agent=self.agent,
            priority=WARNING,
            message_no=chosen,
        )
        return chosen if isinstance(chosen, int) else None

    def ack(self, message_id: int) -> None:
        """The message is saved in the conversation: the hive may forget it (idempotent)."""
        self.call("ack", persistent=True, id=message_id)


def interrupt(client: HiveClient) -> None:
    """Wake a thread blocked on `client` (from another thread): its read returns at once."""
    with contextlib.suppress(OSError):
        client.sock.shutdown(socket.SHUT_RDWR)


def _peer_closed(client: HiveClient) -> bool:
    """Whether the hive closed this idle connection (or left stray bytes on it)."""
    try:
        readable, _, _ = select.select([client.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # an idle connection has nothing to read unless it ended
