"""Test support: the real coordinator inside the test process, driven through its dispatcher.

`InProcessHive` runs a `Coordinator` on the process backend in a temp state dir, on an
event loop of its own thread; its peers send requests to `registry.run` without the wire.
It owns that loop, the coordinator and its agents' processes: `stop()` ends them all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload

from hyperhive.coordinator import agents, registry
from hyperhive.coordinator.backends.process import ProcessBackend
from hyperhive.coordinator.connection import Caller, Connection
from hyperhive.coordinator.limits import ADMIN_KEY
from hyperhive.coordinator.proposed import ReadLimits
from hyperhive.coordinator.service import FALLBACK_POLL_SECONDS, Coordinator
from hyperhive.hive.client import Refused, Unreachable
from hyperhive.hive.db import database
from hyperhive.hive.names import MANAGER, OPERATOR
from hyperhive.hive.paths import Paths
from hyperhive.hive.protocol import (
    Refusal,
    decode_reply,
    decode_request,
    encode,
    encode_reply,
    refusal,
)
from hyperhive.hive.vocab import Code, Role

T = TypeVar("T")

REPLY_TIMEOUT = 30.0
"""Seconds a request may take beyond its own `wait_seconds` before the test fails."""


class Peer:
    """One connection of the admin, the manager or an agent, as a `HiveClient` without the wire.

    Its requests are JSON-encoded and decoded as on the wire, then run by `registry.run` on a
    real `Connection` (whose transport is one end of a socketpair, so `peer_listening`, the
    peer's uid and a hang-up behave as on a socket). One request at a time, as on one
    connection: a second waits for the first. Open one with `InProcessHive.admin()` etc.
    """

    def __init__(self, hive: InProcessHive, conn: Connection, end: socket.socket) -> None:
        self.hive = hive
        self.conn = conn
        self._end = end  # the peer's end of the socketpair; closing it is the hang-up
        self._turn = asyncio.Lock()

    def __enter__(self) -> Peer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Run one request; return the reply as the wire would carry it (ok or not)."""
        return self.hive.run(self._request(obj), _timeout(obj))

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Run one command; return the reply, or raise `Refused` (with its `code`), as
        `HiveClient.call` does."""
        return _checked(self.request({"cmd": cmd, **fields}))

    def submit(self, cmd: str, **fields: Any) -> concurrent.futures.Future[dict[str, Any]]:
        """Start one command and return at once: the future's result is what `call` returns.
        For a request that waits (`recv`, `watch`) while the test does something else."""
        obj = {"cmd": cmd, **fields}

        async def checked() -> dict[str, Any]:
            return _checked(await self._request(obj))

        return self.hive.submit(checked())

    def close(self) -> None:
        """Hang up: the coordinator sees the peer go, as when a client closes its socket."""
        if self._end.fileno() != -1:
            self.hive.run(self._hang_up(), REPLY_TIMEOUT)

    async def _hang_up(self) -> None:
        self._end.close()
        while not self.conn.closed:  # eof, then connection_lost: the coordinator's own path
            await asyncio.sleep(0.001)

    async def _request(self, obj: dict[str, Any]) -> dict[str, Any]:
        line = encode(obj)  # a lone surrogate is refused here, as a client refuses to send it
        async with self._turn:
            if self.conn.closed:
                raise Unreachable("this in-process connection was closed")
            cmd = "?"
            undo = None
            try:
                req = decode_request(line)
                cmd = req["cmd"]
                reply = await registry.run(self.hive.coordinator, self.conn, req)
                body, undo = reply.body, reply.undo
            except Refusal as e:
                body = refusal(str(e), e.code)
            out, whole = encode_reply(body, cmd)
            if (not whole or self.conn.closed) and undo is not None:
                undo()  # what the coordinator does with a reply it cannot hand over
            return decode_reply(out)


class InProcessHive:
    """The real `Coordinator` on the process backend, in this process, for flow tests.

    `env` is a `hive_env()`: its state and runtime dirs, and the agents' payload
    (`HIVE_AGENT_COMMAND`, `sleep infinity` there). While it runs, `os.environ` is `env`,
    as the coordinator process would see it. `admin()`, `manager()` and `agent(name)` open a
    `Peer` (use it in `with`); with a command they run it on a connection of its own and
    return the reply: `hive.admin("spawn", name="alice")`. A refusal raises `Refused`, as
    `HiveClient.call` does; `Peer.request` returns it as the `ok: false` reply instead. An
    exception that is not a refusal (a bug in a handler, a database error) is raised in the
    test with its own traceback, where the wire would answer `code: internal`/`unavailable`.
    Another `InProcessHive` may follow on the same `env` (a graceful restart).

    It covers what the coordinator does with a request once it is read: commands, flows,
    the broker (a waiting `recv` is woken, a hang-up releases leases), timers, agents'
    processes and their crashes, git and SQLite. It does not cover the wire (framing, line
    limits on requests, backpressure), the process around the coordinator (`serve()`: the
    state-dir lock, signals, sd_notify, socket activation) or its restart after a kill, nor
    socket permissions: those tests keep `RunningHive`. `start()` binds the coordinator's
    sockets as in production (so `hivectl` could reach it), but no peer uses them; the
    database is open in this process, so a test reads it through the models, never
    `open_db()` (which would rebind them).
    """

    def __init__(
        self,
        env: dict[str, str],
        *,
        fallback_poll: float = FALLBACK_POLL_SECONDS,
        repo_limits: ReadLimits | None = None,
    ) -> None:
        self.env = env
        self.paths = Paths.from_env(env)
        self.backend = ProcessBackend(self.paths, env.get("HIVE_AGENT_COMMAND") or "sleep infinity")
        self._fallback_poll = fallback_poll
        self._repo_limits = repo_limits
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="in-process coordinator", daemon=True
        )
        self._saved_environ: dict[str, str] | None = None
        self._coordinator: Coordinator | None = None
        self._peers: list[Peer] = []

    # lifetime ------------------------------------------------------------------------------
    def __enter__(self) -> InProcessHive:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def coordinator(self) -> Coordinator:
        assert self._coordinator is not None, "the in-process hive is not started"
        return self._coordinator

    def start(self) -> None:
        """Start the coordinator (and so hm1nd) as `serve()` does, minus the process around it."""
        self._saved_environ = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        self._thread.start()
        try:
            self._coordinator = self.run(self._build(), 60)
            self.run(self.coordinator.start(), 60)
        except BaseException:
            self.stop()
            raise

    async def _build(self) -> Coordinator:
        # The one piece of module state a coordinator keeps, its cache of the agents' names,
        # belongs to the database it opens: forget what an earlier one in this process saw.
        agents._forget()
        return Coordinator(
            self.paths,
            self.backend,
            fallback_poll=self._fallback_poll,
            repo_limits=self._repo_limits,
        )

    def stop(self) -> None:
        """Stop the coordinator and every agent process it started, then the loop; idempotent.

        Raises if an agent's process outlived the coordinator's stop (it is killed first).
        """
        try:
            if self._thread.is_alive():
                try:
                    if self._coordinator is not None:
                        self.run(self._coordinator.stop(), 60)
                finally:
                    for peer in self._peers:
                        peer.close()
                    self.run(self._finish_tasks(), 30)
                    # everything on the loop's own thread: this thread may be running a loop
                    # of its own (a browser test's driver), so it never runs this one
                    self.run(self._loop.shutdown_default_executor(), 30)
                    self._loop.call_soon_threadsafe(self._loop.stop)
                    self._thread.join(30)
                    self._loop.close()
        finally:
            if self._saved_environ is not None:
                os.environ.clear()
                os.environ.update(self._saved_environ)
                self._saved_environ = None
        survivors = self._kill_survivors()
        assert not survivors, f"agent processes outlived the coordinator's stop: {survivors}"

    async def _finish_tasks(self) -> None:
        """Cancel what the coordinator left running and close this thread's database handle."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if database.obj is not None and not database.is_closed():
            database.close()

    def _kill_survivors(self) -> list[str]:
        """Kill, by the PID in its pidfile, any agent process still running; their names."""
        survivors = []
        for pidfile in sorted((self.paths.runtime_dir / "process").glob("*.pid")):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pidfile.read_text())
                if f"HIVE_AGENT={pidfile.stem}".encode() in _environ_of(pid):
                    os.killpg(pid, signal.SIGKILL)
                    survivors.append(f"{pidfile.stem} (pid {pid})")
        return survivors

    # the loop ------------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T], timeout: float = REPLY_TIMEOUT) -> T:
        """Run `coro` on the coordinator's loop and wait for its result (raises on timeout)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(
                f"no result from the in-process coordinator in {timeout}s"
            ) from None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `coro` on the coordinator's loop; its future, for a test that waits later."""
        if not self._thread.is_alive():
            coro.close()
            raise Unreachable("the in-process coordinator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # peers ---------------------------------------------------------------------------------
    def connect(self, caller: Caller) -> Peer:
        """A new connection for `caller`, counted in its socket's caps as a real one is."""
        return self.run(self._connect(caller))

    async def _connect(self, caller: Caller) -> Peer:
        keys = {registry.ADMIN: ADMIN_KEY, registry.MANAGER_ROLE: "manager"}  # as in `start()`
        key = keys.get(Role(caller.role), f"agent:{caller.name}")
        protocol = self.coordinator.accept(key, caller)
        if not isinstance(protocol, Connection):
            raise Refused(getattr(protocol, "why", "connection refused"), Code.UNAVAILABLE)
        coordinator_end, peer_end = socket.socketpair()
        await asyncio.get_running_loop().connect_accepted_socket(
            lambda: protocol, sock=coordinator_end
        )
        peer = Peer(self, protocol, peer_end)
        self._peers.append(peer)
        return peer

    @overload
    def admin(self, /) -> Peer: ...
    @overload
    def admin(self, cmd: str, /, **fields: Any) -> dict[str, Any]: ...
    def admin(self, cmd: str | None = None, /, **fields: Any) -> Peer | dict[str, Any]:
        """The operator's connection; with a command, that command's reply (see the class)."""
        return self._open(Caller(registry.ADMIN, OPERATOR), cmd, fields)

    @overload
    def manager(self, /) -> Peer: ...
    @overload
    def manager(self, cmd: str, /, **fields: Any) -> dict[str, Any]: ...
    def manager(self, cmd: str | None = None, /, **fields: Any) -> Peer | dict[str, Any]:
        """hm1nd's connection; with a command, that command's reply."""
        return self._open(Caller(registry.MANAGER_ROLE, MANAGER), cmd, fields)

    @overload
    def agent(self, name: str, /) -> Peer: ...
    @overload
    def agent(self, name: str, cmd: str, /, **fields: Any) -> dict[str, Any]: ...
    def agent(self, name: str, cmd: str | None = None, /, **fields: Any) -> Peer | dict[str, Any]:
        """An agent's connection (hm1nd's for the manager); with a command, its reply. As on
        the wire, only an agent whose socket the coordinator serves can be reached."""
        if not self.paths.socket_of(name).exists():
            raise Unreachable(f"the coordinator serves no socket for {name!r}")
        role = registry.MANAGER_ROLE if name == MANAGER else registry.AGENT
        return self._open(Caller(role, name), cmd, fields)

    def _open(
        self, caller: Caller, cmd: str | None, fields: dict[str, Any]
    ) -> Peer | dict[str, Any]:
        if cmd is None:
            return self.connect(caller)
        with self.connect(caller) as peer:
            return peer.call(cmd, **fields)


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    if not reply.get("ok"):
        error = str(reply.get("error", "refused without a reason"))
        raise Refused(error, Code.of(reply.get("code")))
    return reply


def _timeout(obj: dict[str, Any]) -> float:
    wait = obj.get("wait_seconds")
    return REPLY_TIMEOUT + (float(wait) if isinstance(wait, int | float) else 0.0)


def _environ_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""
