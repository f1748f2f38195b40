"""hive-c0re as a running service: wires the database, broker, sockets and systemd together.

It owns the listening sockets it binds (and unlinks them on exit), the doorbell, the
watchdog pings and the safety-net poll. Command logic lives in `commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import peewee as pw
from peewee import fn

from ..hive import doorbell, sd
from ..hive import log as hlog
from ..hive import waiting as hive_waiting
from ..hive.db import Event, TransientState, open_db
from ..hive.events import HelperEvent
from ..hive.inbox import notify_manager, ring_doorbell
from ..hive.names import MANAGER, OPERATOR, SYSTEM
from ..hive.paths import Paths
from ..hive.platform import current_rev, read_marker
from ..hive.protocol import Oversize, Refusal, decode_request, refusal
from ..hive.statelock import DirLock
from ..hive.userns import give_socket
from ..hive.vocab import AgentState, Change, Code, TurnPhase
from ..hive.wire import AgentRecord, AgentRow
from . import agentfiles, agents, network_upgrade, registry, sockets
from .approvals import Approvals
from .backends import Backend
from .broker import Broker
from .budgets import Budgets
from .changes import ChangeFeed
from .connection import SOCKET_BUDGET, Budget, Caller, Connection, Reply
from .lifecycle import Lifecycle
from .limits import (
    ADMIN_KEY,
    ConnectionCaps,
    Limits,
    RefusedConnection,
    current_nofile,
    raise_nofile,
)
from .links import ActionLinks
from .logins import Logins
from .proposed import ReadLimits
from .questions import Questions
from .turns import TurnCancels

T = TypeVar("T")

FALLBACK_POLL_SECONDS = 5.0
"""Safety net for a writer in another process whose doorbell was lost."""


class DatabaseUnusable(Exception):
    """The database cannot be opened at start; the message says what to do."""


def db_problem(e: BaseException) -> str:
    """The root SQLite error of `e`: a failed COMMIT's cleanup can hide it behind
    "cannot rollback - no transaction is active"."""
    seen: BaseException | None = e
    while seen is not None:
        text = str(seen)
        if isinstance(seen, pw.DatabaseError | sqlite3.DatabaseError) and "rollback" not in text:
            return text
        seen = seen.__context__
    return str(e)


def db_advice(why: str) -> str:
    """What the operator should do about a database error, in a few words."""
    if "full" in why:
        return "the state dir's disk is full: free space, then retry"
    if "readonly" in why or "read-only" in why or "unable to open" in why:
        return "check that the state dir exists and is writable (not full, not read-only)"
    if "locked" in why or "busy" in why:
        return "another process holds a lock on it: retry shortly"
    if "not a database" in why or "malformed" in why or "corrupt" in why:
        return "it is damaged: restore it from a backup (see docs/operations.md)"
    return "try again shortly; see journalctl -u hive-coordinator"


class Coordinator:
    def __init__(
        self,
        paths: Paths,
        backend: Backend,
        *,
        fallback_poll: float = FALLBACK_POLL_SECONDS,
        repo_limits: ReadLimits | None = None,
    ):
        registry.loaded()  # every handler module has registered its commands
        self.paths = paths
        self.backend = backend
        self.fallback_poll = fallback_poll
        self.repo_limits = repo_limits or ReadLimits()
        self.broker = Broker(lambda *kinds: self.changed(*kinds))
        self.connections: set[Connection] = set()
        self.caps = ConnectionCaps(Limits.from_nofile(current_nofile()))
        self._budgets: dict[str, Budget] = {}
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._bound: list[Path] = []  # paths we bound, unlinked on exit
        self._doorbell: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.cancels = TurnCancels()
        self.feed = ChangeFeed()
        self.lifecycle = Lifecycle(
            paths, backend, self, self, kick=self.broker.kick, repo_limits=self.repo_limits
        )
        self.approvals = Approvals(paths, self, self.lifecycle, self.repo_limits)
        self.questions = Questions(self)
        self.logins = Logins(paths.web_password, lambda: self.changed("sessions"))
        self.budgets = Budgets(self)  # a bad HIVE_BUDGET_* default stops the start, said
        self.links = ActionLinks(self.approvals, self.questions, self.budgets)
        self.lifecycle.on_config = self.budgets.apply_config
        self._last_event_id = 0

    # requests ----------------------------------------------------------------------------
    async def handle(self, conn: Connection, line: bytes | Oversize) -> Reply:
        cmd = "?"
        try:
            req = decode_request(line)
            cmd = req["cmd"]
            reply = await registry.run(self, conn, req)
            reply.cmd = cmd
            return reply
        except Refusal as e:
            hlog.log(
                f"refused {cmd!r} from {conn.caller.name}: {e}",
                kind="request_refused",
                agent=None if conn.caller.name == OPERATOR else conn.caller.name,
                priority=hlog.DEBUG,
            )
            return Reply(refusal(str(e), e.code))
        except (pw.DatabaseError, sqlite3.DatabaseError) as e:
            why = db_problem(e)
            hlog.log(f"database error in {cmd!r}: {why}", kind="internal_error", priority=hlog.ERR)
            return Reply(
                refusal(
                    f"the hive database is unavailable ({why}): {db_advice(why)}", Code.UNAVAILABLE
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            hlog.log(
                f"internal error in {cmd!r}: {e!r}\n{traceback.format_exc()}",
                kind="internal_error",
                priority=hlog.ERR,
            )
            return Reply(
                refusal(
                    f"internal error in {cmd!r}: see journalctl -u hive-coordinator", Code.INTERNAL
                )
            )

    def changed(self, *kinds: str) -> None:
        """Something the dashboard shows changed: wake `watch` (all kinds if none named).

        The gateway's doorbell is rung when it is the agents table (agents, their caps), and
        hive-notify's when notifications changed (a notice may be queued in the outbox); both
        best effort, each with its slow safety net for a lost ring."""
        self.feed.bump(*kinds)
        if not kinds or Change.AGENTS in kinds:
            ring_doorbell(self.paths.gateway_doorbell)
        if not kinds or Change.NOTIFICATIONS in kinds:
            ring_doorbell(self.paths.notify_doorbell)

    def notify(self, event: HelperEvent) -> None:
        """A helper event to hm1nd; in this process the broker wakes the manager directly."""
        notify_manager(event)
        self.broker.wake(MANAGER)
        self.changed("messages", "notifications")

    def deliver_system(self, recipient: str, body: str) -> None:
        self.broker.send(SYSTEM, recipient, body)

    def spawn_task(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `coro` in the background; its failure is logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            hlog.log(
                f"background task failed: {exc!r}\n" + "".join(traceback.format_exception(exc)),
                kind="internal_error",
                priority=hlog.ERR,
            )

    def agent_rows(self, only: str | None = None) -> list[AgentRow]:
        """`list` rows plus what the dashboard needs: transient state, model, update, login."""
        transient = {t.agent: t.state for t in TransientState.select()}
        rev = current_rev()
        wait = hive_waiting.agents_waiting()
        return [
            self._agent_row(r, transient.get(r["name"]), rev, r["name"] in wait)
            for r in agents.rows(only)
        ]

    def _agent_row(
        self, record: AgentRecord, transient: str | None, rev: str, waits: bool
    ) -> AgentRow:
        name = record["name"]
        config = self.lifecycle.config_of(name)
        turn = record["turn"]
        row = AgentRow(
            **record,
            model_override=record["model"],
            transient=transient,
            listening=self.broker.waiting(name),  # receivers blocked in recv now
            needs_update=(
                AgentState.of(record["state"]).rebuildable
                and read_marker(self.paths.rev_marker(name)) != rev
            ),
            # the agent's state comes first: a stopped agent's last turn state is history
            waiting_operator=waits,
            needs_login=(
                record["state"] == AgentState.RUNNING
                and turn is not None
                and turn["state"] == TurnPhase.NEEDS_LOGIN
            ),
        )
        row["model"] = record["model"] or (config.model if config is not None else None)
        return row

    # sockets -----------------------------------------------------------------------------
    def accept(self, key: str, caller: Caller) -> asyncio.Protocol:
        """A new connection on socket `key` from `caller`: its `Connection`, counted in the
        socket's caps and budget, or a refusal when the caps are full. The listeners use it;
        so does the in-process test harness, which hands it a transport of its own."""
        why = self.caps.admit(key, caller.name)
        if why is not None:
            return RefusedConnection(why)
        budget = None if key == ADMIN_KEY else self._budgets.setdefault(key, Budget(SOCKET_BUDGET))
        conn = Connection(caller, self.handle, lambda c: self._connection_closed(key, c), budget)
        self.connections.add(conn)
        return conn

    async def _serve(self, key: str, sock: socket.socket, caller: Caller) -> asyncio.AbstractServer:
        """Serve a listening socket; a connection over the socket's caps is refused."""
        return await asyncio.get_running_loop().create_unix_server(
            lambda: self.accept(key, caller), sock=sock
        )

    async def _listen(
        self, key: str, path: Path, caller: Caller, activated: int | None, group: str | None = None
    ) -> None:
        if activated is not None:
            sock = sockets.from_fd(activated)
        else:
            sock = sockets.bind_unix(path, group=group)
            self._bound.append(path)
        self._servers[key] = await self._serve(key, sock, caller)

    def _connection_closed(self, key: str, conn: Connection) -> None:
        self.caps.release(key)
        self.connections.discard(conn)
        if conn.leases:
            self.broker.release(conn)
            self.changed("messages")

    async def serve_agent(self, name: str) -> None:
        """Bind and serve an agent's own socket (idempotent; the manager has its own)."""
        key = f"agent:{name}"
        if key in self._servers or name == MANAGER:
            return
        path = self.paths.agent_socket(name)
        sockets.ensure_dir(self.paths.agents_socket_root)
        sockets.ensure_dir(path.parent)
        agentfiles.clear_agent_socket(self.paths, name)  # whatever the agent left there
        sock = sockets.bind_unix(path)
        self._bound.append(path)
        ids = self.lifecycle.ids_of(name)
        if ids is not None:  # its container's root is an unprivileged uid: the socket is its
            give_socket(path, ids)
        self._servers[key] = await self._serve(key, sock, Caller(registry.AGENT, name))

    async def unserve_agent(self, name: str) -> None:
        """Stop serving an agent's socket and remove it."""
        server = self._servers.pop(f"agent:{name}", None)
        if server is not None:
            server.close()
        path = self.paths.agent_socket(name)
        with contextlib.suppress(ValueError):
            self._bound.remove(path)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        sockets.remove_gateway_dir(self.paths, name)

    async def start(self) -> None:
        try:
            open_db(self.paths.db)
        except (pw.DatabaseError, sqlite3.DatabaseError) as e:
            why = db_problem(e)
            raise DatabaseUnusable(
                f"the hive database {self.paths.db} cannot be opened ({why}): {db_advice(why)}"
            ) from e
        Broker.release_all()
        self._last_event_id = Event.select(fn.MAX(Event.id)).scalar() or 0
        self.lifecycle.bind_loop(asyncio.get_running_loop())
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        agentfiles.clear_private_tmp(self.paths)
        agentfiles.migrate_legacy_state(self.paths)
        # before approvals are re-checked (an upgraded config makes its pending ones stale)
        # and before hm1nd is bootstrapped (a new hive has nothing to upgrade)
        network_upgrade.keep_host_network(self.paths)
        sockets.ensure_dir(self.paths.runtime_dir)
        activated = sd.listen_fds_by_name()
        await self._listen(
            ADMIN_KEY,
            self.paths.admin_socket,
            Caller(registry.ADMIN, OPERATOR),
            activated.get("admin"),
            group=sockets.ADMIN_GROUP,
        )
        await self._listen(
            "manager",
            self.paths.manager_socket,
            Caller(registry.MANAGER_ROLE, MANAGER),
            activated.get("manager"),
        )
        self._give_manager_socket()
        for name in agents.names():
            try:
                await self.serve_agent(name)
            except (OSError, Refusal, sockets.SocketInUse) as e:  # one agent, not the hive
                hlog.log(
                    f"cannot serve {name}'s socket: {e}",
                    kind="lifecycle",
                    agent=name,
                    priority=hlog.ERR,
                )
        self._doorbell = sockets.bind_doorbell(self.paths.doorbell)
        asyncio.get_running_loop().add_reader(self._doorbell.fileno(), self._on_doorbell)
        self._tasks.append(asyncio.get_running_loop().create_task(self._safety_poll()))
        interval = sd.watchdog_interval()
        if interval is not None:
            self._tasks.append(asyncio.get_running_loop().create_task(self._watchdog(interval)))
        self.questions.recover()
        self.budgets.sync({a: self.lifecycle.config_of(a) for a in agents.names()})
        finishing = self.approvals.recover()
        await self.lifecycle.resume(skip=finishing)
        await self.bootstrap_manager()
        self.spawn_task(self.lifecycle.update_stale())  # the seed's auto-update at start

    def _give_manager_socket(self) -> None:
        """hm1nd's container root (an unprivileged uid under a user namespace) must be able to
        connect to the manager socket, whether systemd or the coordinator made it."""
        ids = self.lifecycle.ids_of(MANAGER)
        if ids is None:
            return
        try:
            give_socket(self.paths.manager_socket, ids)
        except (OSError, Refusal) as e:
            hlog.log(
                f"cannot give {self.paths.manager_socket} to hm1nd's container: {e}",
                kind="lifecycle",
                agent=MANAGER,
                priority=hlog.ERR,
            )

    async def bootstrap_manager(self) -> None:
        """hm1nd is required infrastructure: created without approval when missing."""
        if agents.exists(MANAGER):
            return
        agents.create(MANAGER, kind="manager", state=AgentState.SPAWNING)
        hlog.log("creating the manager hm1nd", kind="agent_created", agent=MANAGER)
        try:
            blob, sha = await self.lifecycle.source_config(MANAGER)
        except Refusal as e:
            note = f"could not create {MANAGER}: {e}"
            agents.set_state(MANAGER, AgentState.FAILED, note)
            hlog.log(note, kind="lifecycle", agent=MANAGER, priority=hlog.ERR)
            return
        await self.lifecycle.create(MANAGER, blob, sha, "manager bootstrap")

    def _on_doorbell(self) -> None:
        assert self._doorbell is not None
        doorbell.drain(self._doorbell)
        self._external_changes()

    def _external_changes(self) -> None:
        """Another process wrote to SQLite: wake receivers, take in crashes it recorded."""
        if not self.broker.check_external():
            return
        self.changed("messages", "notifications")
        for event in Event.select().where(
            (Event.id > self._last_event_id) & (Event.kind == "container_crash")
        ):
            if event.agent is not None:
                note = json.loads(event.payload).get("note") or "crashed"
                self.lifecycle.crashed_elsewhere(event.agent, note)
        self._last_event_id = Event.select(fn.MAX(Event.id)).scalar() or 0

    async def _safety_poll(self) -> None:
        while True:
            await asyncio.sleep(self.fallback_poll)
            try:
                self._external_changes()
            except pw.OperationalError as e:
                hlog.log(
                    f"safety-net poll failed: {e}", kind="internal_error", priority=hlog.WARNING
                )

    async def _watchdog(self, interval: float) -> None:
        while True:
            sd.ping_watchdog()
            await asyncio.sleep(interval)

    def status_line(self) -> str:
        return (
            f"serving {len(agents.names())} agents, {len(self.connections)} connections, "
            f"{self.broker.waiting()} waiting receivers"
        )

    def limits_line(self) -> str:
        lim = self.caps.limits
        return (
            f"open-file limit {lim.nofile}: {lim.reserve} kept for the coordinator, "
            f"{lim.admin} admin connections, {lim.agents} agent connections "
            f"(at most {lim.per_socket} per socket)"
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.questions.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.to_thread(self.backend.shutdown)
        self.lifecycle.close()
        for server in self._servers.values():
            server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self._doorbell is not None:
            asyncio.get_running_loop().remove_reader(self._doorbell.fileno())
            self._doorbell.close()
            self.paths.doorbell.unlink(missing_ok=True)
        for path in self._bound:
            with contextlib.suppress(OSError):
                path.unlink()


async def serve(
    paths: Paths,
    backend: Backend,
    *,
    fallback_poll: float = FALLBACK_POLL_SECONDS,
    repo_limits: ReadLimits | None = None,
    announce: bool = True,
) -> None:
    """Run the coordinator until SIGTERM or SIGINT; refuse if another one owns the state."""
    hlog.set_identifier("hive-coordinator")
    with DirLock(
        paths.state_dir,
        "a coordinator",
        "stop it first (`systemctl stop hive-coordinator`, or Ctrl-C in the `make demo` "
        "that runs it); two coordinators on one database would undo each other",
    ):
        await _serve(paths, backend, fallback_poll, repo_limits, announce)


async def _serve(
    paths: Paths,
    backend: Backend,
    fallback_poll: float,
    repo_limits: ReadLimits | None,
    announce: bool,
) -> None:
    raise_nofile()
    hive = Coordinator(paths, backend, fallback_poll=fallback_poll, repo_limits=repo_limits)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await hive.start()
    where = (
        f"admin {paths.admin_socket}, manager {paths.manager_socket}, "
        f"agents under {paths.agents_socket_root}"
    )
    hlog.log(f"hive-c0re serving ({backend.name} backend): {where}", kind="service_started")
    hlog.log(hive.limits_line(), kind="service_started")
    if announce:
        print(f"hive-c0re is serving ({backend.name} backend)", flush=True)
        print(f"  admin socket:   {paths.admin_socket}", flush=True)
        print(f"  manager socket: {paths.manager_socket}", flush=True)
        print(f"  agent sockets:  {paths.agents_socket_root}/<name>/hive.sock", flush=True)
        print(f"  database:       {paths.db}", flush=True)
    sd.ready(hive.status_line())
    status_task = loop.create_task(_status_updates(hive))
    await stop.wait()
    status_task.cancel()
    sd.stopping("hive-c0re stopping")
    hlog.log("hive-c0re stopping", kind="service_stopping")
    await hive.stop()


async def _status_updates(hive: Coordinator) -> None:
    last = ""
    while True:
        await asyncio.sleep(30)
        line = hive.status_line()
        if line != last:
            sd.status(line)
            last = line
