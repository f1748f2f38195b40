"""The crash decision: which container removals are crashes; each reported once, durable first.

It knows the host only through `Host` (machines up, unit status, journal), so tests drive it
without D-Bus. It never writes the agents table: the coordinator turns the container_crash
event into the agent's `failed` state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from ..hive import log as hlog
from ..hive.db import Agent, Event, TransientState, write_tx
from ..hive.events import ContainerCrash
from ..hive.inbox import notify_manager, ring_doorbell
from ..hive.names import MANAGER, InvalidName, machine_name, validate_agent_name
from ..hive.vocab import AgentState
from .units import UnitStatus, unit_of

SETTLE_TIMEOUT = 3.0
"""How long a removed machine's unit may take to finish stopping before it is judged."""


class Host(Protocol):
    """What the watcher asks the host. Bus failures propagate; other errors read as unknown."""

    def machines(self) -> set[str]:
        """Names of the machines registered now."""
        ...

    def unit_status(self, unit: str) -> UnitStatus: ...

    def journal_tail(self, unit: str, invocation_id: str) -> list[str]: ...


class Verdict(StrEnum):
    CRASH = "crash"
    UNMANAGED = "not a hive container"
    UNSEEN = "was not seen up (already handled)"
    NO_AGENT = "no agent of that name"
    NOT_RUNNING = "the agent was not meant to be running"
    TRANSIENT = "an operator action is under way"
    BACK = "it is back up (restarted)"
    REPORTED = "this run's crash was already reported"


@dataclass(frozen=True)
class Seen:
    """A managed container the watcher saw up."""

    agent: str
    invocation_id: str
    """The unit's run when the machine appeared ("" when it could not be read)."""


def agent_of(machine: str) -> str | None:
    """The agent a machine name belongs to (`h-<name>`, `hm1nd`), None if none can."""
    if machine == MANAGER:
        return MANAGER
    if not machine.startswith("h-"):
        return None
    try:
        name = validate_agent_name(machine[2:], allow_manager=False)
    except InvalidName:
        return None
    return name if machine_name(name) == machine else None


def db_verdict(agent: str) -> Verdict | None:
    """What the database says about `agent` going away; None means it should be running."""
    row = Agent.get_or_none(Agent.name == agent)
    if row is None:
        return Verdict.NO_AGENT
    if TransientState.get_or_none(TransientState.agent == agent) is not None:
        return Verdict.TRANSIENT
    if row.state != AgentState.RUNNING:
        return Verdict.NOT_RUNNING
    return None


def already_reported(agent: str, invocation_id: str) -> bool:
    """A container_crash for this run of the unit is already in the events table."""
    if not invocation_id:
        return False
    query = Event.select(Event.id).where(
        (Event.kind == ContainerCrash.event)
        & (Event.agent == agent)
        & (Event.payload.contains(invocation_id))
    )
    return bool(query.exists())


def crash_note(status: UnitStatus, lines: list[str], *, found_late: bool = False) -> str:
    """The note of a ContainerCrash: result, exit status, where to look, the last lines."""
    note = status.describe()
    if status.invocation_id:
        note += f"; journalctl _SYSTEMD_INVOCATION_ID={status.invocation_id}"
    if found_late:
        note += " (found on a later check: nobody saw it go)"
    if lines:
        note += "\nlast lines:\n" + "\n".join(lines)
    else:
        note += "\nno journal lines"
    return note


class CrashWatcher:
    """Its own view of the managed containers that are up, and the crash decision.

    Feed it `machine_new` / `machine_removed` in bus order; `reconcile` (with a fresh list
    of machines) and `catch_up` after (re)connecting and as a slow safety net.
    """

    def __init__(
        self,
        host: Host,
        doorbell: Path | None,
        *,
        notify_doorbell: Path | None = None,
        settle_timeout: float = SETTLE_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.doorbell = doorbell
        self.notify_doorbell = notify_doorbell  # hive-notify's: the crash is in its outbox
        self.settle_timeout = settle_timeout
        self._sleep = sleep
        self._clock = clock
        self.up: dict[str, Seen] = {}
        self.crashes = 0

    # the view ------------------------------------------------------------------------------
    def machine_new(self, machine: str) -> None:
        agent = agent_of(machine)
        if agent is None or machine in self.up:
            return
        status = self.host.unit_status(unit_of(agent))
        self.up[machine] = Seen(agent=agent, invocation_id=status.invocation_id)

    def machine_removed(self, machine: str) -> Verdict:
        agent = agent_of(machine)
        if agent is None:
            return Verdict.UNMANAGED
        seen = self.up.pop(machine, None)
        if seen is None:
            return Verdict.UNSEEN
        try:
            verdict = self._judge(machine, seen)
        except BaseException:
            self.up[machine] = seen  # judged again at the next reconcile
            raise
        if verdict is not Verdict.CRASH:
            hlog.log(
                f"{machine} went away, not a crash: {verdict}",
                agent=agent,
                verdict=verdict.name.lower(),
            )
        return verdict

    def reconcile(self, machines: Iterable[str]) -> list[tuple[str, Verdict]]:
        """Bring the view in line with machined's list; removals are judged as usual."""
        now_up = set(machines)
        judged = [(m, self.machine_removed(m)) for m in sorted(set(self.up) - now_up)]
        for machine in sorted(now_up - set(self.up)):
            self.machine_new(machine)
        return judged

    def watching(self) -> list[str]:
        return sorted(self.up)

    # the decision --------------------------------------------------------------------------
    def _judge(self, machine: str, seen: Seen) -> Verdict:
        early = db_verdict(seen.agent)
        if early is not None:
            return early
        unit = unit_of(seen.agent)
        status = self._settle(unit, seen.invocation_id)
        if self._back(machine, seen, status):
            return Verdict.BACK
        lines = self.host.journal_tail(unit, status.invocation_id)
        return self._report(seen.agent, status, crash_note(status, lines))

    def _settle(self, unit: str, invocation: str) -> UnitStatus:
        """The unit's status once its main process is gone (or a new run started)."""
        deadline = self._clock() + self.settle_timeout
        delay = 0.005
        while True:
            status = self.host.unit_status(unit)
            restarted = bool(invocation) and status.invocation_id not in ("", invocation)
            if status.settled or restarted or self._clock() >= deadline:
                return status
            self._sleep(delay)
            delay = min(delay * 2, 0.1)

    def _back(self, machine: str, seen: Seen, status: UnitStatus) -> bool:
        """A restart race: the machine or a new run of its unit is up again."""
        if machine in self.host.machines():
            return True
        if not status.up:
            return False
        # up with the run we saw: the machine left but the unit lingers; that is a crash
        return not seen.invocation_id or status.invocation_id != seen.invocation_id

    def _report(
        self, agent: str, status: UnitStatus, note: str, *, check: Callable[[], bool] | None = None
    ) -> Verdict:
        """Durable first (message, notification, event in one transaction), then the doorbell."""
        with write_tx():
            verdict = db_verdict(agent)
            if verdict is None and already_reported(agent, status.invocation_id):
                verdict = Verdict.REPORTED
            if verdict is None and check is not None and not check():
                verdict = Verdict.BACK
            if verdict is not None:
                return verdict
            notify_manager(ContainerCrash(agent=agent, note=note), doorbell=None)
        for bell in (self.doorbell, self.notify_doorbell):
            if bell is not None:
                ring_doorbell(bell)
        self.crashes += 1
        hlog.log(
            f"{agent} crashed: {note.splitlines()[0]}",
            kind="container_crash",
            agent=agent,
            priority=hlog.ERR,
            unit=status.unit,
            result=status.result,
            exit_code=status.exec_main_code,
            exit_status=status.exec_main_status,
            invocation_id=status.invocation_id or None,
        )
        return Verdict.CRASH

    def catch_up(self, machines: Iterable[str]) -> list[tuple[str, Verdict]]:
        """Crashes nobody saw: an agent meant to be running, no operator action, no machine,
        and its unit's last run failed and is not reported yet. That is a crash while the
        watcher was down or disconnected, or one during an operator action (a restart whose
        new run died at once) or a spawn, once the coordinator has marked the agent running.

        Run after (re)connecting and with the safety net. The unit is read again inside the
        write transaction, so an operator action that starts meanwhile is not a crash.
        """
        up = set(machines)
        found: list[tuple[str, Verdict]] = []
        for row in Agent.select(Agent.name).where(Agent.state == AgentState.RUNNING):
            agent = str(row.name)
            try:
                machine = machine_name(agent)
            except InvalidName:
                continue
            if machine in up or machine in self.up or db_verdict(agent) is not None:
                continue
            unit = unit_of(agent)
            status = self.host.unit_status(unit)
            if status.active_state != "failed" or not status.invocation_id:
                continue
            if already_reported(agent, status.invocation_id):
                continue
            note = crash_note(
                status, self.host.journal_tail(unit, status.invocation_id), found_late=True
            )

            def still_failed(unit: str = unit, run: str = status.invocation_id) -> bool:
                again = self.host.unit_status(unit)
                return again.active_state == "failed" and again.invocation_id == run

            found.append((machine, self._report(agent, status, note, check=still_failed)))
        return found
