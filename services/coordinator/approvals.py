"""The approval queue: what the manager asks for, what the operator sees, what gets applied.

An approval records the exact bytes of the config file at request time; approving applies
those bytes and nothing else, whatever happened to the proposed repo since. Each approval
moves pending → applying → approved | failed | stale, or pending → denied | stale, exactly
once. An apply-commit approval whose diff was computed against an applied config that has
changed since is stale: marked as such while pending, and never applied.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..hive import log as hlog
from ..hive import outbox
from ..hive.agentconfig import check_bind_sources, parse, risks_of
from ..hive.db import Agent, Approval, Notification, now, write_tx
from ..hive.events import ApprovalResolved
from ..hive.names import validate_agent_name
from ..hive.paths import Paths
from ..hive.protocol import Refusal
from ..hive.vocab import AgentState, ApprovalKind, ApprovalStatus, Code
from ..hive.wire import ApprovalRow
from . import agents, proposed, repos, stale
from .effects import Effects
from .lifecycle import ConfigMoved, Lifecycle
from .proposed import ReadLimits


class ApprovalError(Refusal):
    pass


def is_stale(a: Approval) -> bool:
    """Stale: refused as such, or pending while the applied config moved from its base."""
    return bool(
        a.status == ApprovalStatus.STALE
        or (a.status == ApprovalStatus.PENDING and a.stale_at is not None)
    )


def approval_dict(a: Approval) -> ApprovalRow:
    return {
        "id": a.id,
        "agent": a.agent,
        "kind": a.kind,
        "commit_ref": a.commit_ref,
        "status": a.status,
        "stale": is_stale(a),
        "base_commit": a.base_commit,
        "note": a.note,
        "diff": a.diff,
        "risks": risks_of(a.blob, a.agent),
        "requested_at": a.requested_at,
        "resolved_at": a.resolved_at,
        "decided_by": a.decided_by,
    }


def listing(include_resolved: bool = False, limit: int = 200) -> list[ApprovalRow]:
    query = Approval.select().order_by(Approval.id.desc()).limit(limit)
    if not include_resolved:
        query = query.where(Approval.status.in_((ApprovalStatus.PENDING, ApprovalStatus.APPLYING)))
    return [approval_dict(a) for a in query]


def _get(approval_id: int) -> Approval:
    a: Approval | None = Approval.get_or_none(Approval.id == approval_id)
    if a is None:
        raise ApprovalError(
            f"no approval #{approval_id}: see `hivectl pending`", code=Code.NOT_FOUND
        )
    return a


def _record(
    agent: str, kind: str, sha: str | None, blob: bytes, diff: str, base: stale.Base | None = None
) -> Approval:
    with write_tx():
        a: Approval = Approval.create(
            agent=agent,
            kind=kind,
            commit_ref=sha,
            blob=blob,
            diff=diff,
            status=ApprovalStatus.PENDING,
            base_commit=base.commit if base is not None else None,
            base_hash=base.hash if base is not None else None,
        )
        what = (
            f"apply {sha[:12]} to {agent}"
            if kind == ApprovalKind.APPLY_COMMIT and sha
            else f"spawn {agent}"
        )
        Notification.create(
            kind="approval_requested", agent=agent, text=f"approval #{a.id}: {what}"
        )
        outbox.approval_waiting(a)
    hlog.log(
        f"approval #{a.id} requested: {what}", kind="approval_requested", agent=agent, approval=a.id
    )
    return a


class Approvals:
    def __init__(
        self, paths: Paths, effects: Effects, lifecycle: Lifecycle, repo_limits: ReadLimits
    ) -> None:
        self.effects = effects
        self.paths = paths
        self.lifecycle = lifecycle
        self.repo_limits = repo_limits
        lifecycle.on_applied = self.recheck

    # requests (manager) --------------------------------------------------------------------
    async def request_apply_commit(self, agent: str, commit_ref: str) -> Approval:
        name = validate_agent_name(agent)
        agents.get(name)
        got = await proposed.config_at(self.paths, name, commit_ref, self.repo_limits)
        agents.get(name)  # still there after the read
        # a config that does not validate is refused now, not at apply
        check_bind_sources(parse(got.blob), self.paths.hive_roots())
        # the diff's "before", recorded with it: read after the await, in the same step
        base = stale.base_of(self.paths.applied_repo(name))
        diff = repos.diff(base.config, got.blob, name, got.sha, got.author)
        a = _record(name, ApprovalKind.APPLY_COMMIT, got.sha, got.blob, diff, base)
        self.effects.changed("approvals", "notifications")
        return a

    def _check_spawnable(self, name: str) -> None:
        if agents.exists(name):
            raise ApprovalError(f"agent {name!r} already exists")
        pending = Approval.select().where(
            (Approval.agent == name)
            & (Approval.kind == ApprovalKind.SPAWN)
            & (Approval.status == ApprovalStatus.PENDING)
        )
        if pending.exists():
            raise ApprovalError(f"a spawn of {name!r} is already waiting for the operator")

    async def request_spawn(self, name: str) -> Approval:
        name = validate_agent_name(name, allow_manager=False)
        self._check_spawnable(name)
        blob, sha = await self.lifecycle.source_config(name)
        self._check_spawnable(name)  # again: another request may have landed during the read
        check_bind_sources(parse(blob), self.paths.hive_roots())
        a = _record(name, ApprovalKind.SPAWN, sha, blob, repos.diff(None, blob, name, sha))
        self.effects.changed("approvals", "notifications")
        return a

    async def request_init_config(self, name: str) -> dict[str, Any]:
        name = validate_agent_name(name)
        sha = await self.lifecycle.install_proposed(name, if_missing=False)
        return {"path": f"/agents/{name}/config", "commit": sha}

    # resolution (operator) -----------------------------------------------------------------
    def _claim(self, approval_id: int, to: str, by: str) -> Approval:
        """Move a pending approval to `to` for operator `by`, or refuse if it is not pending
        (exactly once)."""
        with write_tx():
            a = _get(approval_id)
            if a.status != ApprovalStatus.PENDING:
                raise ApprovalError(f"approval #{approval_id} is already {a.status}")
            Approval.update(status=to, decided_by=by).where(Approval.id == approval_id).execute()
            a.status = to
            a.decided_by = by
        self.effects.changed("approvals", "notifications")
        return a

    def _resolve(self, a: Approval, status: str, note: str | None) -> None:
        with write_tx():
            Approval.update(status=status, note=note, resolved_at=now()).where(
                Approval.id == a.id
            ).execute()
        hlog.log(
            f"approval #{a.id} for {a.agent}: {status}"
            + (f" ({note})" if note else "")
            + (f", decided by {a.decided_by}" if a.decided_by else ""),
            kind="approval_resolved",
            agent=a.agent,
            approval=a.id,
            operator=a.decided_by,
        )
        self.effects.changed("approvals", "notifications")
        self.effects.notify(
            ApprovalResolved(
                id=a.id, agent=a.agent, commit_ref=a.commit_ref, status=status, note=note
            )
        )

    # staleness ----------------------------------------------------------------------------
    def recheck(self, agent: str) -> None:
        """The applied config of `agent` may have changed: mark (or unmark) its pending
        apply-commit approvals stale, so `pending` and the dashboard show it before a click."""
        current = stale.config_hash(repos.applied_config(self.paths.applied_repo(agent)))
        marked = 0
        with write_tx():
            for a in Approval.select().where(
                (Approval.agent == agent)
                & (Approval.kind == ApprovalKind.APPLY_COMMIT)
                & (Approval.status == ApprovalStatus.PENDING)
            ):
                moved = a.base_hash != current
                if moved != (a.stale_at is not None):
                    Approval.update(stale_at=now() if moved else None).where(
                        Approval.id == a.id
                    ).execute()
                    marked += moved
        if marked:
            hlog.log(
                f"{marked} pending approval(s) for {agent} are stale: its applied config changed",
                kind="approval_resolved",
                agent=agent,
            )
        self.effects.changed("approvals")

    def _refuse_stale(self, a: Approval, by: str) -> None:
        """Resolve a pending approval as stale (the manager is told to ask again), and refuse."""
        why = stale.why_stale(a.agent, a.base_commit, self.paths.applied_repo(a.agent))
        self._claim(a.id, ApprovalStatus.STALE, by)
        self._resolve(a, ApprovalStatus.STALE, why)
        raise ApprovalError(
            f"approval #{a.id} is stale: the applied config of {a.agent} changed since it was "
            "requested, so its diff no longer shows what it would do; hm1nd was told to "
            "request it again",
            code=Code.STALE,
        )

    async def approve(self, approval_id: int, by: str, *, wait: bool = True) -> Approval:
        a = _get(approval_id)
        applied = self.paths.applied_repo(a.agent)
        if (
            a.status == ApprovalStatus.PENDING
            and a.kind == ApprovalKind.APPLY_COMMIT
            and stale.moved(a.base_hash, applied)
        ):
            self._refuse_stale(a, by)
        a = self._claim(approval_id, ApprovalStatus.APPLYING, by)
        task = self.effects.spawn_task(self.finish(a))
        if wait:
            await asyncio.shield(task)
        done = _get(approval_id)
        if done.status == ApprovalStatus.STALE:
            raise ApprovalError(f"approval #{approval_id} is stale: {done.note}", code=Code.STALE)
        return done

    async def finish(self, a: Approval) -> None:
        """Carry an approval in state applying to its end (also after a coordinator restart)."""
        blob = bytes(a.blob or b"")
        if a.kind == ApprovalKind.SPAWN:
            existing = Agent.get_or_none(Agent.name == a.agent)
            if existing is None:
                agents.create(a.agent, state=AgentState.SPAWNING)
            elif existing.state != AgentState.SPAWNING:
                self._resolve(a, ApprovalStatus.FAILED, f"agent {a.agent!r} already exists")
                return
            ok = await self.lifecycle.create(a.agent, blob, a.commit_ref, f"approval #{a.id}")
            note = None if ok else agents.get(a.agent).note
            self._resolve(a, ApprovalStatus.APPROVED if ok else ApprovalStatus.FAILED, note)
            return
        try:
            parse(blob)
            agents.get(a.agent)
            if a.commit_ref is None:
                raise ApprovalError(f"approval #{a.id} has no commit to apply", code=Code.INVALID)
        except Refusal as e:
            self._resolve(a, ApprovalStatus.FAILED, str(e))
            return
        try:
            ok, note = await self.lifecycle.apply_config(
                a.agent, blob, a.commit_ref, a.id, a.base_hash
            )
        except ConfigMoved:  # another approval was applied while this one waited its turn
            why = stale.why_stale(a.agent, a.base_commit, self.paths.applied_repo(a.agent))
            self._resolve(a, ApprovalStatus.STALE, why)
            return
        except (Refusal, OSError) as e:
            self._resolve(a, ApprovalStatus.FAILED, f"could not apply: {e}")
            return
        self._resolve(
            a, ApprovalStatus.APPROVED, None if ok else f"applied, but the container: {note}"
        )

    def deny(self, approval_id: int, note: str | None, by: str) -> Approval:
        a = self._claim(approval_id, ApprovalStatus.DENIED, by)
        self._resolve(a, ApprovalStatus.DENIED, note)
        return _get(approval_id)

    def recover(self) -> list[str]:
        """Finish approvals a previous coordinator left in state applying; their agents.

        Pending apply-commit approvals are checked against the applied configs again (they
        may have changed while the coordinator was down, or predate the check).
        """
        waiting = Approval.select(Approval.agent).where(
            (Approval.kind == ApprovalKind.APPLY_COMMIT)
            & (Approval.status == ApprovalStatus.PENDING)
        )
        for agent in sorted({a.agent for a in waiting}):
            self.recheck(agent)
        resumed = []
        for a in (
            Approval.select()
            .where(Approval.status == ApprovalStatus.APPLYING)
            .order_by(Approval.id)
        ):
            hlog.log(
                f"finishing approval #{a.id}, interrupted by a restart",
                kind="approval_resolved",
                agent=a.agent,
                approval=a.id,
            )
            self.effects.spawn_task(self.finish(a))
            resumed.append(a.agent)
        return resumed
