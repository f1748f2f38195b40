"""hive-gateway as a running service: one listening socket per agent, following the agents table.

It owns the sockets it binds (and removes them when an agent goes or it stops), the
doorbell the coordinator rings when the agents table changes, the database thread, the
key's state, and the watchdog pings. What one connection does is `proxy`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import peewee as pw

from ..hive import budget, doorbell, sd
from ..hive import log as hlog
from ..hive.db import now, open_db
from ..hive.events import BudgetReached
from ..hive.inbox import ring_doorbell
from ..hive.paths import Paths
from ..hive.statelock import DirLock
from ..hive.vocab import GatewayRefusal, KeyState
from . import http1, proxy, refusals, roster
from .metering import Metered
from .roster import MAX_CONNECTIONS, Account, Limit, Roster
from .settings import Settings
from .upstream import Upstream

T = TypeVar("T")

DIR_MODE = 0o755
"""An agent's gateway dir: bound read-only into its container, whose root must traverse it
(under a user namespace it is nobody there)."""
SOCKET_MODE = 0o666
"""The socket inside: only that agent's container can reach its dir."""
ROOT_MODE = 0o700
"""The gateway's own dir: no local user reaches an agent's socket through it (a container
reaches its own dir by the bind, never through this one)."""


class GatewayError(Exception):
    """The gateway cannot start; the message says what to do."""


class Gateway:
    def __init__(self, paths: Paths, settings: Settings, upstream: Upstream | None = None) -> None:
        self.paths = paths
        self.settings = settings
        self.upstream = upstream or Upstream(settings.base_url, settings.key)
        self.roster = Roster()
        self.key = KeyState.OK if self.upstream.has_key else KeyState.MISSING
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._clients: dict[str, set[asyncio.Task[Any]]] = {}
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-db")
        self._change = asyncio.Event()
        self._refreshing: asyncio.Task[None] | None = None
        self._again = False
        self._doorbell: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._pidfd: int | None = None
        self.stopped = asyncio.Event()
        self.context = proxy.Context(
            upstream=self.upstream,
            key_state=lambda: self.key,
            key_refused=self.key_refused,
            account=self.roster.get,
            record=self.record,
            changed=self.changed,
            reached=self.reached,
            wait_change=self.wait_change,
            key_hint=settings.key_hint,
        )

    # the database thread ---------------------------------------------------------------
    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the one database thread (its own connection), off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def record(
        self, agent: str, turn: str | None, usage: Metered, request_id: str | None, started: float
    ) -> float:
        price = await self.db(roster.record, agent, turn, usage, request_id, started)
        hlog.log(
            f"{agent} used {usage.input_tokens} in, {usage.output_tokens} out, "
            f"{usage.cache_write_tokens} cache write, {usage.cache_read_tokens} cache read "
            f"({usage.model}): ${price:.6f}",
            kind="model_usage",
            agent=agent,
            priority=hlog.DEBUG,
            turn=turn,
        )
        return price

    # changes -----------------------------------------------------------------------------
    def changed(self) -> None:
        """Wake every status request waiting for a change (key, caps, spend past a cap)."""
        self._change.set()
        self._change = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        event = self._change
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    # budgets -----------------------------------------------------------------------------
    def reached(self, account: Account, limit: Limit) -> None:
        """`account` is at `limit`'s cap: a budget_reached event for hm1nd and a notice for
        the operator, once per window (the database keeps that across restarts)."""
        told = (limit.period, limit.since)
        if told in account.told:
            return
        account.told.add(told)
        event = BudgetReached(
            agent=account.name,
            spent_usd=round(limit.spent, 6),
            cap_usd=limit.cap.cap_usd,
            period=str(limit.period),
            since=budget.iso(limit.since),
        )
        self._background(self._tell(event))

    async def _tell(self, event: BudgetReached) -> None:
        try:
            new = await self.db(roster.tell_reached, event)
        except (pw.DatabaseError, OSError) as e:
            hlog.log(
                f"could not record {event.agent}'s budget_reached: {e}",
                kind="gateway",
                agent=event.agent,
                priority=hlog.ERR,
            )
            return
        if new:
            ring_doorbell(self.paths.doorbell)  # the coordinator wakes hm1nd and hive-notify
            hlog.log(
                f"{event.agent} reached its {event.period} spending cap: "
                f"${event.spent_usd:.2f} of ${event.cap_usd:.2f}",
                kind="budget_reached",
                agent=event.agent,
                priority=hlog.WARNING,
                period=event.period,
            )

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            hlog.log(f"internal error: {e!r}", kind="gateway", priority=hlog.ERR)

    async def _rollover(self) -> None:
        """At each local midnight a day (maybe a month) ends: agents over a daily cap may
        think again, so the status requests waiting on it are woken."""
        while True:
            await asyncio.sleep(max(1.0, budget.next_rollover(now()) - now() + 1.0))
            self.changed()

    def key_refused(self) -> None:
        if self.key is KeyState.OK:
            self.key = KeyState.REFUSED
            hlog.log(
                proxy.key_sentence(KeyState.REFUSED, self.settings.key_hint) or "",
                kind="gateway",
                priority=hlog.ERR,
            )
            self.changed()

    # agents -----------------------------------------------------------------------------
    def refresh_soon(self) -> None:
        """Read the agents table again (coalesced: one read runs at a time, one more after)."""
        if self._refreshing is not None and not self._refreshing.done():
            self._again = True
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            self._again = False
            try:
                await self.refresh()
            except (pw.DatabaseError, OSError) as e:
                hlog.log(f"could not read the agents table: {e}", kind="gateway", priority=hlog.ERR)
            if not self._again:
                return

    async def refresh(self) -> None:
        rows = await self.db(roster.read_agents)
        t = now()
        spent = await self.db(roster.read_spent, self.roster.wanted(rows, t))
        added, gone, changed = self.roster.apply(rows, spent, t)
        for account in self.roster.accounts.values():
            stop = account.stop(t)
            if stop is not None:
                self.reached(account, stop)  # a cap lowered under the spend, or a restart
        for name in gone:
            await self.unserve(name)
        for row in rows:
            if row.name not in self._servers:
                try:
                    await self.serve(row.name)
                except (OSError, GatewayError) as e:  # one agent, not the gateway
                    hlog.log(
                        f"cannot serve {row.name}'s gateway socket: {e}",
                        kind="gateway",
                        agent=row.name,
                        priority=hlog.ERR,
                    )
        if added or gone or changed:
            self.changed()
        sd.status(self.status_line())

    def _agent_dir(self, name: str) -> Path:
        """The agent's socket dir, made if missing; a link or a file there is refused."""
        path = self.paths.gateway_socket_dir(name)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise GatewayError(
                    f"{path} is not a directory: remove it and restart hive-gateway"
                ) from None
        else:
            os.chmod(path, DIR_MODE)  # not the umask's
        return path

    async def serve(self, name: str) -> None:
        directory = self._agent_dir(name)
        path = directory / "api.sock"
        temp = directory / ".api.sock.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)  # never followed: unlink removes a link, not its target
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o777 & ~SOCKET_MODE)
        try:
            sock.bind(str(temp))
            sock.listen(64)
            # it appears under its name already listening: a harness woken by the rename
            # (inotify) never finds a socket that refuses it
            os.rename(temp, path)
        except OSError:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        finally:
            os.umask(old)
        sock.setblocking(False)
        clients: set[asyncio.Task[Any]] = set()
        self._clients[name] = clients

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            clients.add(task)
            try:
                await self._client(name, reader, writer)
            finally:
                clients.discard(task)

        self._servers[name] = await asyncio.start_unix_server(
            client, sock=sock, limit=http1.READ_SIZE
        )
        hlog.log(f"serving {name}'s gateway socket {path}", kind="gateway", agent=name)

    async def unserve(self, name: str) -> None:
        """Stop serving `name`'s socket and remove it. Its dir stays: the coordinator made it
        and removes it when it destroys the agent; running containers have it bound, and a
        next gateway's socket must appear in that very directory."""
        server = self._servers.pop(name, None)
        if server is not None:
            server.close()
        for task in self._clients.pop(name, set()):
            task.cancel()
        path = self.paths.gateway_socket(name)
        with contextlib.suppress(OSError):
            os.unlink(path)
        hlog.log(f"stopped serving {name}'s gateway socket", kind="gateway", agent=name)

    async def _client(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = http1.Connection(reader, writer)
        account: Account | None = self.roster.get(name)
        if account is None or account.connections >= MAX_CONNECTIONS:
            refusal = GatewayRefusal.BUSY if account else GatewayRefusal.UNAVAILABLE
            message = (
                f"{name} has {MAX_CONNECTIONS} connections open to the gateway, its most"
                if account
                else f"{name} is not an agent of this hive"
            )
            with contextlib.suppress(http1.ClientGone):
                await conn.respond(
                    refusal.http_status, refusals.headers(refusal), refusals.body(refusal, message)
                )
            await conn.close()
            return
        account.connections += 1
        try:
            await proxy.serve_connection(name, conn, self.context)
        except asyncio.CancelledError:
            await conn.close()
            raise
        except Exception as e:
            hlog.log(
                f"internal error on {name}'s connection: {e!r}\n{traceback.format_exc()}",
                kind="internal_error",
                agent=name,
                priority=hlog.ERR,
            )
            await conn.close()
        finally:
            account.connections -= 1

    # running ------------------------------------------------------------------------------
    def status_line(self) -> str:
        inflight = sum(a.inflight for a in self.roster.accounts.values())
        return (
            f"serving {len(self._servers)} agents, {inflight} requests in flight; key "
            f"{self.key.value} ({self.settings.key_source}); upstream {self.upstream.base_url}"
        )

    async def start(self) -> None:
        if not self.paths.db.exists():
            raise GatewayError(
                f"the hive database {self.paths.db} does not exist: start the coordinator "
                "first (systemctl start hive-coordinator)"
            )
        try:
            await self.db(lambda: open_db(self.paths.db, create=False))
        except (pw.DatabaseError, OSError) as e:
            raise GatewayError(
                f"cannot open the hive database {self.paths.db} ({e}): hive-gateway needs "
                "read and write access to it (group hive-admin)"
            ) from None
        root = self.paths.gateway_dir
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(root, ROOT_MODE)
        loop = asyncio.get_running_loop()
        self._doorbell = doorbell.bind(self.paths.gateway_doorbell, mode=0o600)
        loop.add_reader(self._doorbell.fileno(), self._on_doorbell)
        await self.refresh()
        self._tasks.append(loop.create_task(self._safety_net()))
        self._tasks.append(loop.create_task(self._rollover()))
        interval = sd.watchdog_interval()
        if interval is not None:
            self._tasks.append(loop.create_task(self._watchdog(interval)))
        if self.settings.exit_with is not None:
            try:
                self._pidfd = os.pidfd_open(self.settings.exit_with)
            except ProcessLookupError:
                self.stopped.set()
            else:
                loop.add_reader(self._pidfd, self.stopped.set)

    def _on_doorbell(self) -> None:
        assert self._doorbell is not None
        doorbell.drain(self._doorbell)
        self.refresh_soon()

    async def _safety_net(self) -> None:
        while True:
            await asyncio.sleep(self.settings.recheck)
            self.refresh_soon()

    async def _watchdog(self, interval: float) -> None:
        while True:
            sd.ping_watchdog()
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for task in self._tasks:
            task.cancel()
        if self._refreshing is not None:
            self._refreshing.cancel()
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
        for name in list(self._servers):
            await self.unserve(name)
        if self._doorbell is not None:
            loop.remove_reader(self._doorbell.fileno())
            self._doorbell.close()
            with contextlib.suppress(OSError):
                self.paths.gateway_doorbell.unlink()
        await self.upstream.close()
        self._db.shutdown(wait=True)


async def serve(paths: Paths, settings: Settings, *, announce: bool = True) -> None:
    """Run the gateway until SIGTERM or SIGINT (or the process it exits with ends)."""
    hlog.set_identifier("hive-gateway")
    paths.gateway_dir.mkdir(parents=True, exist_ok=True)
    with DirLock(
        paths.gateway_dir,
        "a model gateway",
        "stop it first (systemctl stop hive-gateway, or the coordinator that runs it); "
        "two gateways would take each other's sockets",
    ):
        gateway = Gateway(paths, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.stopped.set)
        try:
            await gateway.start()
        except BaseException:
            await gateway.stop()
            raise
        line = gateway.status_line()
        hlog.log(f"hive-gateway {line}", kind="service_started")
        if gateway.key is KeyState.MISSING:
            hlog.log(
                f"{proxy.key_sentence(KeyState.MISSING, settings.key_hint)} (agents report "
                "needs_login until then)",
                kind="gateway",
                priority=hlog.WARNING,
            )
        if announce:
            print(f"hive-gateway is serving: agents' sockets under {paths.gateway_dir}", flush=True)
        sd.ready(line)
        await gateway.stopped.wait()
        sd.stopping("hive-gateway stopping")
        hlog.log("hive-gateway stopping", kind="service_stopping")
        await gateway.stop()
