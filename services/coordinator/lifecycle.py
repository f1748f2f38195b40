"""Container lifecycle, one path for the manager and every sub-agent: create, start, stop,
restart, kill, destroy, rebuild, and applying an approved config.

Each operator action writes its transient state to SQLite before it acts and clears it
after, so an exit during it is never taken for a crash. Backend calls, git and other file
work run on the lifecycle's own threads, never on the event loop; actions on one agent are
serialised, and at most `STARTS_AT_ONCE` agents are built or started at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..hive import log as hlog
from ..hive.agentconfig import CONFIG_FILE, AgentConfig, check_bind_sources, parse, template
from ..hive.db import Agent, Event, TransientState, now, write_tx
from ..hive.events import ContainerCrash, Destroyed, Killed, Rebuilt, Spawned
from ..hive.names import MANAGER
from ..hive.paths import Paths
from ..hive.platform import (
    REBUILDABLE,
    current_rev,
    platform_rev,
    read_marker,
    stale_agents,
    write_marker,
)
from ..hive.protocol import Refusal
from ..hive.userns import IdRange, allocate
from ..hive.vocab import AgentState, Transient
from . import agentfiles, agents, proposed, repos, stale
from .backends import AgentSpec, Backend
from .effects import AgentSockets, Effects
from .proposed import ReadLimits

TRANSIENT_STATES = tuple(Transient)
STARTS_AT_ONCE = 8
"""Agents built (create) or started (start, resume) at the same time; more wait their turn."""
THREADS = 16
"""The lifecycle's threads: room for the starts and for stops and kills beside them."""
T = TypeVar("T")


class LifecycleError(Refusal):
    pass


class ConfigMoved(LifecycleError):
    """The applied config is no longer the one an approval's diff was computed against."""


class Lifecycle:
    def __init__(
        self,
        paths: Paths,
        backend: Backend,
        effects: Effects,
        sockets: AgentSockets,
        *,
        kick: Callable[[str], object],
        repo_limits: ReadLimits,
        starts_at_once: int = STARTS_AT_ONCE,
    ) -> None:
        """`kick` wakes an agent's waiting receivers (the broker's)."""
        self.effects = effects
        self.sockets = sockets
        self.kick = kick
        self.repo_limits = repo_limits
        self.on_applied: Callable[[str], None] = lambda name: None
        """Told each time an agent's applied config is written (approvals re-check staleness)."""
        self.on_config: Callable[[str, AgentConfig], None] = lambda name, config: None
        """Told the config each time it is applied (the budgets take its caps)."""
        self.paths = paths
        self.backend = backend
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._configs: dict[str, tuple[int, AgentConfig]] = {}
        self._starts = asyncio.Semaphore(starts_at_once)
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="lifecycle")
        self.backend.set_exit_handler(self._exit_from_thread)

    # specs and files ---------------------------------------------------------------------
    def ids_of(self, name: str) -> IdRange | None:
        """The host uids `name`'s container runs as (allocated the first time it is asked);
        None when the backend runs agents without a user namespace."""
        return allocate(name) if self.backend.private_users else None

    def spec(self, name: str, blob: bytes | None = None) -> AgentSpec:
        applied = self.paths.applied_repo(name)
        data = blob if blob is not None else repos.applied_config(applied)
        if data is None:
            raise LifecycleError(f"{name} has no applied config yet")
        kind = "manager" if name == MANAGER else "agent"
        config = parse(data)
        check_bind_sources(config, self.paths.hive_roots())
        return AgentSpec(
            name=name,
            kind=kind,
            config=config,
            socket=self.paths.socket_of(name),
            state_dir=self.paths.agent_state(name),
            config_path=applied / CONFIG_FILE,
            agents_dir=self.paths.agents_dir if kind == "manager" else None,
            ids=self.ids_of(name),
        )

    def config_of(self, name: str) -> AgentConfig | None:
        """The applied config of `name` (cached until the file changes); None if none."""
        path = self.paths.applied_repo(name) / CONFIG_FILE
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        cached = self._configs.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            config = parse(path.read_bytes())
        except (Refusal, OSError):
            return None
        self._configs[name] = (stamp, config)
        return config

    def model_of(self, name: str) -> str | None:
        """The model in effect: the operator's override, else the config's, else None."""
        override = agents.get(name).model
        if override:
            return str(override)
        config = self.config_of(name)
        return config.model if config is not None else None

    def set_model(self, name: str, model: str | None) -> None:
        """Mirror the operator's override to the agent's /state/hyperhive-model (never through
        anything planted there), then store it."""
        agentfiles.write_model(self.paths, name, model, self.ids_of(name))
        Agent.update(model=model, updated_at=now()).where(Agent.name == name).execute()
        hlog.log(f"{name} model set to {model or 'its default'}", kind="lifecycle", agent=name)
        self.effects.changed("agents")

    async def write_applied(self, name: str, blob: bytes, message: str) -> str:
        """Commit the config and what derives from it into the applied repo."""
        spec = self.spec(name, blob)
        files = {CONFIG_FILE: blob, **self.backend.render(spec)}
        sha = await self._call(repos.apply, self.paths.applied_repo(name), files, message)
        self.on_applied(name)  # pending approvals of `name` may be stale now
        self.on_config(name, spec.config)
        return sha

    async def mark_built(self, name: str) -> None:
        marker = self.paths.rev_marker(name)
        await self._call(lambda: write_marker(marker, platform_rev()))

    # transient states --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def transient(self, name: str, state: str) -> AsyncIterator[None]:
        assert state in TRANSIENT_STATES
        with write_tx():
            TransientState.insert(
                agent=name, state=state, since=now()
            ).on_conflict_replace().execute()
        self.effects.changed("agents")
        try:
            yield
        finally:
            TransientState.delete().where(TransientState.agent == name).execute()
            self.effects.changed("agents")

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the lifecycle's threads (blocking work never runs on the loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def _run(self, fn: Callable[..., None], *args: object) -> None:
        await self._call(fn, *args)

    def close(self) -> None:
        """Let the lifecycle's threads go once the work queued on them is done."""
        self._threads.shutdown(wait=False)

    def _set(self, name: str, state: str, note: str | None = None) -> None:
        agents.set_state(name, state, note)
        self.effects.changed("agents")
        if state == AgentState.RUNNING:
            # (re)started: kick its harness so a recv already waiting reads the inbox now
            self.kick(name)

    # create --------------------------------------------------------------------------------
    async def source_config(self, name: str) -> tuple[bytes, str | None]:
        """What a new agent starts from: the proposed repo's HEAD, or the template."""
        got = await proposed.head_config(self.paths, name, self.repo_limits)
        if got is None:
            return template(name, manager=name == MANAGER).encode(), None
        return got.blob, got.sha

    async def install_proposed(self, name: str, *, if_missing: bool) -> str | None:
        """Seed `name`'s proposed repo from the template (built privately, renamed in)."""
        text = template(name, manager=name == MANAGER)
        return await asyncio.to_thread(
            agentfiles.install_proposed,
            self.paths,
            name,
            lambda path: repos.build_proposed(path, text, name),
            if_missing=if_missing,
            manager=self.ids_of(MANAGER),  # the manager writes every proposed repo
        )

    async def create(self, name: str, blob: bytes, sha: str | None, label: str) -> bool:
        """Build and start a new agent whose record is in state spawning; emits Spawned."""
        async with self._locks[name], self._starts:
            try:
                parse(blob)
                await self.install_proposed(name, if_missing=True)
                await self.write_applied(name, blob, f"apply {sha or 'template'} ({label})")
                Agent.update(applied_sha=sha, updated_at=now()).where(Agent.name == name).execute()
                await self.sockets.serve_agent(name)
                spec = self.spec(name)
                await self._run(self.backend.create, spec)
                await self._run(self.backend.start, spec)
                await self.mark_built(name)
            except (Refusal, OSError) as e:
                note = f"could not create {name}: {e}"
                self._set(name, AgentState.FAILED, note)
                hlog.log(note, kind="lifecycle", agent=name, priority=hlog.ERR)
                self.effects.notify(Spawned(agent=name, ok=False, note=note))
                return False
            self._set(name, AgentState.RUNNING)
            hlog.log(f"{name} created ({label})", kind="lifecycle", agent=name)
            self.effects.notify(Spawned(agent=name, ok=True, note=None))
            return True

    # verbs ---------------------------------------------------------------------------------
    async def start(self, name: str) -> None:
        async with self._locks[name], self._starts:
            spec = self.spec(name)
            await self._run(self.backend.create, spec)
            await self._run(self.backend.start, spec)
            self._set(name, AgentState.RUNNING)
            hlog.log(f"{name} started", kind="lifecycle", agent=name)

    async def stop(self, name: str) -> None:
        async with self._locks[name], self.transient(name, Transient.STOPPING):
            await self._run(self.backend.stop, name)
            self._set(name, AgentState.STOPPED)
            hlog.log(f"{name} stopped", kind="lifecycle", agent=name)

    async def restart(self, name: str) -> None:
        async with self._locks[name], self.transient(name, Transient.RESTARTING):
            spec = self.spec(name)
            await self._run(self.backend.stop, name)
            await self._run(self.backend.create, spec)
            await self._run(self.backend.start, spec)
            self._set(name, AgentState.RUNNING)
            hlog.log(f"{name} restarted", kind="lifecycle", agent=name)

    async def kill(self, name: str) -> None:
        async with self._locks[name], self.transient(name, Transient.STOPPING):
            await self._run(self.backend.kill, name)
            self._set(name, AgentState.STOPPED, "killed")
            hlog.log(f"{name} killed", kind="lifecycle", agent=name)
        self.effects.notify(Killed(agent=name))

    async def rebuild(self, name: str) -> tuple[bool, str | None]:
        """Regenerate from the applied config and restart if it was running; emits Rebuilt."""
        async with self._locks[name], self.transient(name, Transient.REBUILDING):
            ok, note = await self._rebuild_locked(name)
        self.effects.notify(Rebuilt(agent=name, ok=ok, note=note))
        return ok, note

    def is_stale(self, name: str) -> bool:
        """Built from a platform other than the installed one, or from files this coordinator
        would generate differently (and in a rebuildable state)."""
        row = Agent.get_or_none(Agent.name == name)
        if row is None or row.state not in REBUILDABLE:
            return False
        return read_marker(self.paths.rev_marker(name)) != current_rev() or self.drifted(name)

    def drifted(self, name: str) -> bool:
        """What this coordinator generates from `name`'s applied config (its unit drop-in)
        differs from what is applied. After an upgrade the rebuild that a new platform rev
        starts may run on the old code, before the services restart: the restarted coordinator
        then still has containers to rebuild, with what its own code renders (a user
        namespace, say), though their marker is current."""
        try:
            files = self.backend.render(self.spec(name))
        except (Refusal, OSError):
            return False  # a rebuild would fail the same way; `rebuild` says why
        applied = self.paths.applied_repo(name)
        return any(_read(applied / rel) != data for rel, data in files.items())

    async def rebuild_if_stale(self, name: str) -> tuple[bool, str | None] | None:
        """`rebuild`, unless the container is already built from the installed platform;
        None then. Checked under the agent's lock, so the coordinator's own scan at start
        and hive-autoupdate.service never rebuild one container twice."""
        async with self._locks[name]:
            if not self.is_stale(name):
                return None
            async with self.transient(name, Transient.REBUILDING):
                ok, note = await self._rebuild_locked(name)
        self.effects.notify(Rebuilt(agent=name, ok=ok, note=note))
        return ok, note

    async def update_stale(self) -> None:
        """Rebuild every stale container, the manager first (at start, as the seed asks)."""
        markers = {n: read_marker(self.paths.rev_marker(n)) for n in agents.names()}
        rows = agents.rows()
        stale = stale_agents(markers, rows, current_rev())
        stale += [
            str(r["name"])
            for r in rows
            if r["state"] in REBUILDABLE and r["name"] not in stale and self.drifted(r["name"])
        ]
        for name in sorted(stale, key=lambda n: (n != MANAGER, n)):
            hlog.log(
                f"{name} was built from another platform (or by older code): rebuilding",
                kind="rebuild",
                agent=name,
            )
            try:
                await self.rebuild_if_stale(name)
            except Refusal as e:
                hlog.log(
                    f"rebuild of {name} at start: {e}",
                    kind="rebuild",
                    agent=name,
                    priority=hlog.ERR,
                )

    async def _rebuild_locked(self, name: str) -> tuple[bool, str | None]:
        was_running = agents.get(name).state in (AgentState.RUNNING, AgentState.FAILED)
        try:
            spec = self.spec(name)
            blob = repos.applied_config(self.paths.applied_repo(name)) or b""
            files = {CONFIG_FILE: blob, **self.backend.render(spec)}
            applied = self.paths.applied_repo(name)
            if any(_read(applied / rel) != data for rel, data in files.items()) or (
                repos.tracked(applied) - set(files)
            ):
                repos.apply(self.paths.applied_repo(name), files, "regenerate (rebuild)")
            await self._run(self.backend.stop, name)
            await self._run(self.backend.create, spec)
            if was_running:
                await self._run(self.backend.start, spec)
            await self.mark_built(name)
        except (Refusal, OSError) as e:
            note = f"rebuild of {name} failed: {e}"
            self._set(name, AgentState.FAILED, note)
            hlog.log(note, kind="rebuild", agent=name, priority=hlog.ERR)
            return False, note
        self._set(name, AgentState.RUNNING if was_running else AgentState.STOPPED)
        hlog.log(f"{name} rebuilt", kind="rebuild", agent=name)
        return True, None

    async def apply_config(
        self, name: str, blob: bytes, sha: str, approval_id: int, base_hash: str | None = None
    ) -> tuple[bool, str | None]:
        """Write an approved config into the applied repo, then rebuild with it.

        With `base_hash`, refuse (`ConfigMoved`) if the applied config is no longer the one
        the approval's diff was computed against; checked under the agent's lock, so two
        approvals approved back to back cannot both apply.
        """
        message = f"apply {sha} (approval #{approval_id})"
        async with self._locks[name]:
            applied = self.paths.applied_repo(name)
            if repos.last_applied_message(applied).strip() != message:
                if base_hash is not None and stale.moved(base_hash, applied):
                    raise ConfigMoved(f"the applied config of {name} changed")
                await self.write_applied(name, blob, message)
            Agent.update(applied_sha=sha, updated_at=now()).where(Agent.name == name).execute()
            async with self.transient(name, Transient.REBUILDING):
                ok, note = await self._rebuild_locked(name)
        self.effects.notify(Rebuilt(agent=name, ok=ok, note=note))
        return ok, note

    async def destroy(self, name: str, purge: bool) -> None:
        if name == MANAGER:
            raise LifecycleError("hm1nd is required infrastructure: restart or rebuild it instead")
        async with self._locks[name]:
            async with self.transient(name, Transient.DESTROYING):
                await self._run(self.backend.destroy, name)
                await self.sockets.unserve_agent(name)
                shutil.rmtree(self.paths.applied_repo(name), ignore_errors=True)
                self.paths.rev_marker(name).unlink(missing_ok=True)
                if purge:
                    await self._run(agentfiles.purge, self.paths, name)
                agents.delete(name)
            hlog.log(
                f"{name} destroyed" + (" and purged" if purge else ""), kind="lifecycle", agent=name
            )
        self._locks.pop(name, None)
        self.effects.changed("agents")
        self.effects.notify(Destroyed(agent=name))

    # crashes -------------------------------------------------------------------------------
    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _exit_from_thread(self, name: str, note: str) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.unexpected_exit, name, note)

    def _is_crash(self, name: str) -> bool:
        if TransientState.get_or_none(TransientState.agent == name) is not None:
            return False
        agent = Agent.get_or_none(Agent.name == name)
        return agent is not None and agent.state == AgentState.RUNNING

    def crashed_elsewhere(self, name: str, note: str) -> None:
        """The crash watcher recorded a crash (and told the manager): show it as failed."""
        if self._is_crash(name):
            self._set(name, AgentState.FAILED, note)

    def unexpected_exit(self, name: str, note: str) -> None:
        """The payload went away on its own: a crash unless an operator action is under way."""
        if not self._is_crash(name):
            return
        self._set(name, AgentState.FAILED, note)
        hlog.log(f"{name} crashed: {note}", kind="container_crash", agent=name, priority=hlog.ERR)
        self.effects.notify(ContainerCrash(agent=name, note=note))

    async def resume(self, skip: list[str]) -> None:
        """After a coordinator start: agents that should run and do not are started again,
        unless the crash watcher recorded a crash while the coordinator was away (then
        they are shown failed, as if it had been here). They start together, at most
        `STARTS_AT_ONCE` at a time.

        `skip` names agents an interrupted approval is already finishing.
        """
        starts = []
        for agent in Agent.select().where(
            Agent.state.in_((AgentState.RUNNING, AgentState.SPAWNING))
        ):
            if agent.name in skip or self.backend.is_running(agent.name):
                continue
            if agent.state == AgentState.SPAWNING:
                try:
                    blob, sha = await self.source_config(agent.name)
                except Refusal as e:
                    self._set(agent.name, AgentState.FAILED, f"could not resume the spawn: {e}")
                    continue
                self.effects.spawn_task(self.create(agent.name, blob, sha, "resumed spawn"))
                continue
            crash = (
                Event.select()
                .where(
                    (Event.kind == "container_crash")
                    & (Event.agent == agent.name)
                    & (Event.created_at > agent.updated_at)
                )
                .order_by(Event.id.desc())
                .first()
            )
            if crash is not None:
                note = json.loads(crash.payload).get("note") or "crashed"
                self._set(agent.name, AgentState.FAILED, note)
                continue
            starts.append(self._start_again(agent.name))
        await asyncio.gather(*starts)

    async def _start_again(self, name: str) -> None:
        try:
            await self.start(name)
        except (Refusal, OSError) as e:
            self._set(name, AgentState.FAILED, f"could not start after a coordinator restart: {e}")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
