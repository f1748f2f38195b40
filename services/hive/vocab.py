"""The hive's vocabularies, each defined once: every service, the dashboard, the CLI and the
harness import the word from here instead of spelling it.

Each is a `StrEnum`, so a value is also the plain string on the wire and in SQLite; the
behaviour that belongs to a word (which states count as running, which verbs the manager
may use) lives on it.
"""

from __future__ import annotations

from enum import StrEnum


class AgentState(StrEnum):
    """An agent's lifecycle state as the coordinator records it (`agents.state`)."""

    SPAWNING = "spawning"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def rebuildable(self) -> bool:
        """A rebuild applies (not while it is being made)."""
        return self is not AgentState.SPAWNING

    @classmethod
    def of(cls, value: object) -> AgentState:
        """The state a stored or reported value names; anything unknown reads as stopped."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.STOPPED


class Transient(StrEnum):
    """An operator action under way on an agent (`transient_state`); never a crash."""

    STOPPING = "stopping"
    RESTARTING = "restarting"
    DESTROYING = "destroying"
    REBUILDING = "rebuilding"


class Verb(StrEnum):
    """The lifecycle verbs of the admin socket (and, for some, the manager's)."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    KILL = "kill"
    DESTROY = "destroy"
    REBUILD = "rebuild"

    @property
    def manager_may(self) -> bool:
        """hm1nd may use it on a sub-agent (the rest are the operator's alone)."""
        return self in (Verb.START, Verb.RESTART, Verb.KILL)

    @property
    def done(self) -> str:
        """The past tense the dashboard and hivectl print ("alice stopped")."""
        return {
            Verb.START: "started",
            Verb.STOP: "stopped",
            Verb.RESTART: "restarted",
            Verb.KILL: "killed",
            Verb.DESTROY: "destroyed",
            Verb.REBUILD: "rebuilt",
        }[self]

    @property
    def needs_confirmation(self) -> bool:
        """Destructive: the dashboard asks once before it does it."""
        return self in (Verb.STOP, Verb.RESTART, Verb.KILL, Verb.DESTROY)


class ApprovalKind(StrEnum):
    APPLY_COMMIT = "apply_commit"
    SPAWN = "spawn"


class ApprovalStatus(StrEnum):
    """pending → applying → approved | failed, or pending → denied | stale, exactly once."""

    PENDING = "pending"
    APPLYING = "applying"
    APPROVED = "approved"
    DENIED = "denied"
    FAILED = "failed"
    STALE = "stale"

    @property
    def open(self) -> bool:
        """Still waiting for the operator or for its apply to finish."""
        return self in (ApprovalStatus.PENDING, ApprovalStatus.APPLYING)


class Network(StrEnum):
    """An agent's network grant (`network` in agent.toml); private when the key is absent."""

    PRIVATE = "private"
    """Its own network namespace with only loopback; the model is reached through a socket."""
    EGRESS = "egress"
    """A veth whose one destination is its filtering proxy, which allows the listed domains."""
    HOST = "host"
    """The host's own network, loopback and local services included: shown as a risk."""

    @property
    def risky(self) -> bool:
        """The operator is warned before approving a config with this grant."""
        return self is Network.HOST


class QuestionStatus(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class TurnPhase(StrEnum):
    """What an agent's harness reports it is doing (`set_turn_state {state}`)."""

    IDLE = "idle"
    THINKING = "thinking"
    TOOL = "tool"
    WAITING = "waiting"
    ERROR = "error"
    NEEDS_LOGIN = "needs_login"

    @property
    def busy(self) -> bool:
        """A turn is under way (or stopped in error) while the harness says this."""
        return self in (TurnPhase.THINKING, TurnPhase.TOOL, TurnPhase.WAITING, TurnPhase.ERROR)


class Change(StrEnum):
    """What the change feed (`watch`) reports as changed, for the dashboard."""

    AGENTS = "agents"
    APPROVALS = "approvals"
    QUESTIONS = "questions"
    MESSAGES = "messages"
    NOTIFICATIONS = "notifications"
    TURNS = "turns"
    SESSIONS = "sessions"
    HISTORY = "history"


class Channel(StrEnum):
    """How an operator decision reached the hive (the audit trail's `channel`)."""

    CLI = "cli"
    DASHBOARD = "dashboard"
    LINK = "link"
    MANAGER = "manager"
    ADMIN_SOCKET = "admin_socket"

    @classmethod
    def of_actor(cls, actor: str) -> Channel:
        if actor.startswith("hivectl"):
            return cls.CLI
        if actor.startswith("dashboard"):
            return cls.DASHBOARD
        if actor.startswith("action link"):
            return cls.LINK
        if actor.startswith("hm1nd"):
            return cls.MANAGER
        return cls.ADMIN_SOCKET


class Role(StrEnum):
    """Who is on a socket: the operator (admin socket), the manager, or a sub-agent."""

    ADMIN = "admin"
    MANAGER = "manager"
    AGENT = "agent"


class Code(StrEnum):
    """Why the hive refused, beside the sentence: what clients branch on (`code` in every
    refusal). The dashboard's HTTP status and hivectl's exit status derive from it."""

    INVALID = "invalid"
    """The request is malformed or names something impossible: fix the request."""
    FORBIDDEN = "forbidden"
    """Not on this socket, or not for this caller."""
    NOT_FOUND = "not_found"
    """No such agent, approval, question, message or commit."""
    CONFLICT = "conflict"
    """The thing exists but is in another state (already resolved, already exists)."""
    STALE = "stale"
    """An approval whose diff no longer holds: ask for a new one."""
    UNAVAILABLE = "unavailable"
    """The database, systemd or the disk failed for now: retry later."""
    INTERNAL = "internal"
    """A bug: see the coordinator's journal."""

    @property
    def http_status(self) -> int:
        return {
            Code.INVALID: 400,
            Code.FORBIDDEN: 403,
            Code.NOT_FOUND: 404,
            Code.CONFLICT: 409,
            Code.STALE: 409,
            Code.UNAVAILABLE: 503,
            Code.INTERNAL: 500,
        }[self]

    @property
    def exit_status(self) -> int:
        """hivectl's exit status for this refusal: 1 for every code (2 is kept for usage
        errors, which never reach the hive); scripts tell refusals apart by `code`."""
        return 1

    @classmethod
    def of(cls, value: object) -> Code:
        """The code a reply names; one this client does not know reads as a conflict."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.CONFLICT
