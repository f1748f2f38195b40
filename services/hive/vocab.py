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
    """The model gateway has no usable API key: the harness waits, its inbox untouched."""
    OVER_BUDGET = "over_budget"
    """The agent reached a spending cap: its turn waits, open, until the cap is raised or
    reset (or its period ends)."""

    @property
    def busy(self) -> bool:
        """A turn is under way (or stopped in error) while the harness says this."""
        return self in (TurnPhase.THINKING, TurnPhase.TOOL, TurnPhase.WAITING, TurnPhase.ERROR)

    @property
    def blocked(self) -> bool:
        """The harness waits for the operator (a key, a higher cap) before it reads its inbox."""
        return self in (TurnPhase.NEEDS_LOGIN, TurnPhase.OVER_BUDGET)


class Period(StrEnum):
    """What a spending cap counts over (`[budget]` in agent.toml, `hivectl budget`)."""

    DAILY = "daily"
    MONTHLY = "monthly"
    TOTAL = "total"
    """Since the agent was made."""

    @property
    def config_key(self) -> str:
        """Its key in agent.toml's `[budget]` table and on the wire (`daily_usd`, …)."""
        return f"{self.value}_usd"

    @property
    def setting(self) -> str:
        """The hive-wide default in hive.env (`HIVE_BUDGET_DAILY_USD`, …)."""
        return f"HIVE_BUDGET_{self.name}_USD"

    @property
    def noun(self) -> str:
        """How a sentence names the stretch of time: "today", "this month", "in total"."""
        return {"daily": "today", "monthly": "this month", "total": "in total"}[self.value]


class CapSource(StrEnum):
    """Where the cap in force for a period comes from, first that has one wins."""

    OPERATOR = "operator"
    """Set by the operator (`hivectl budget`, the dashboard, a notification's link)."""
    CONFIG = "agent.toml"
    """The agent's approved `[budget]`."""
    DEFAULT = "hive default"
    """HIVE_BUDGET_<PERIOD>_USD in hive.env."""
    NONE = "none"


class GatewayRefusal(StrEnum):
    """Why the model gateway answered a request itself instead of forwarding it: the
    `hive_refusal` of its Anthropic-shaped error body, which the harness branches on."""

    NO_KEY = "no_key"
    """The gateway holds no API key."""
    OVER_BUDGET = "over_budget"
    """The agent has spent a cap of its budget (`[budget]`, or the operator's)."""
    NOT_FORWARDED = "not_forwarded"
    """A method or path the gateway does not forward."""
    TOO_LARGE = "too_large"
    """The request body is over the gateway's limit."""
    BUSY = "busy"
    """Too many requests or connections of this agent at once."""
    BAD_REQUEST = "bad_request"
    """Not HTTP the gateway can read."""
    UPSTREAM_DOWN = "upstream_down"
    """The API could not be reached, or did not answer in time."""
    UNAVAILABLE = "unavailable"
    """The gateway cannot meter now (its database failed), so it forwards nothing."""

    @property
    def http_status(self) -> int:
        return {
            GatewayRefusal.NO_KEY: 401,
            GatewayRefusal.OVER_BUDGET: 403,
            GatewayRefusal.NOT_FORWARDED: 404,
            GatewayRefusal.TOO_LARGE: 413,
            GatewayRefusal.BUSY: 429,
            GatewayRefusal.BAD_REQUEST: 400,
            GatewayRefusal.UPSTREAM_DOWN: 502,
            GatewayRefusal.UNAVAILABLE: 503,
        }[self]

    @property
    def error_type(self) -> str:
        """The Anthropic API's error type for the same status, so SDKs read it natively."""
        return {
            GatewayRefusal.NO_KEY: "authentication_error",
            GatewayRefusal.OVER_BUDGET: "permission_error",
            GatewayRefusal.NOT_FORWARDED: "not_found_error",
            GatewayRefusal.TOO_LARGE: "request_too_large",
            GatewayRefusal.BUSY: "rate_limit_error",
            GatewayRefusal.BAD_REQUEST: "invalid_request_error",
            GatewayRefusal.UPSTREAM_DOWN: "api_error",
            GatewayRefusal.UNAVAILABLE: "overloaded_error",
        }[self]

    @property
    def code(self) -> Code:
        """The hive's refusal code for it (docs, logs, clients that know the hive)."""
        return {
            GatewayRefusal.NO_KEY: Code.UNAVAILABLE,
            GatewayRefusal.OVER_BUDGET: Code.FORBIDDEN,
            GatewayRefusal.NOT_FORWARDED: Code.NOT_FOUND,
            GatewayRefusal.TOO_LARGE: Code.INVALID,
            GatewayRefusal.BUSY: Code.UNAVAILABLE,
            GatewayRefusal.BAD_REQUEST: Code.INVALID,
            GatewayRefusal.UPSTREAM_DOWN: Code.UNAVAILABLE,
            GatewayRefusal.UNAVAILABLE: Code.UNAVAILABLE,
        }[self]

    @classmethod
    def of(cls, value: object) -> GatewayRefusal | None:
        """The refusal an error body names; None for an error that came from upstream."""
        try:
            return cls(str(value))
        except ValueError:
            return None


class KeyState(StrEnum):
    """What the model gateway knows of its API key (its status endpoint's `key`)."""

    OK = "ok"
    MISSING = "missing"
    REFUSED = "refused"
    """The API answered 401 to it since the gateway started: a new key and a restart."""


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


class Notice(StrEnum):
    """What the operator is told of away from the dashboard (`outbox`, HIVE_NOTIFY_EVENTS)."""

    APPROVAL_WAITING = "approval_waiting"
    QUESTION_ASKED = "question_asked"
    QUESTION_DEADLINE = "question_deadline"
    CONTAINER_CRASH = "container_crash"
    BUDGET_REACHED = "budget_reached"

    @property
    def item(self) -> LinkItem | None:
        """What an action link in this notice acts on (None: nothing to act on)."""
        if self is Notice.APPROVAL_WAITING:
            return LinkItem.APPROVAL
        if self in (Notice.QUESTION_ASKED, Notice.QUESTION_DEADLINE):
            return LinkItem.QUESTION
        if self is Notice.BUDGET_REACHED:
            return LinkItem.BUDGET
        return None

    @property
    def urgent(self) -> bool:
        """Shown as a warning by channels that have levels (a crash, a cap, a deadline)."""
        return self in (Notice.CONTAINER_CRASH, Notice.BUDGET_REACHED, Notice.QUESTION_DEADLINE)


class OutboxState(StrEnum):
    """Where a notice is in the `outbox`: queued until every channel took it, or set aside."""

    QUEUED = "queued"
    SENT = "sent"
    MOOT = "moot"
    """Resolved on the dashboard (or by its deadline) before it could be sent."""
    SKIPPED = "skipped"
    """Its kind is not in HIVE_NOTIFY_EVENTS."""
    EXPIRED = "expired"
    """Not delivered within HIVE_NOTIFY_GIVE_UP of being due: given up, logged."""


class LinkItem(StrEnum):
    """What an action link is bound to."""

    APPROVAL = "approval"
    QUESTION = "question"
    BUDGET = "budget"
    """One agent's period at its cap: the `budget_reached` event's id, bound to the window."""

    @property
    def actions(self) -> tuple[LinkAction, ...]:
        if self is LinkItem.APPROVAL:
            return (LinkAction.APPROVE, LinkAction.DENY)
        if self is LinkItem.BUDGET:
            return (LinkAction.RAISE, LinkAction.RESET)
        return (LinkAction.ANSWER,)

    @property
    def offer(self) -> str:
        """What a notification says its link does."""
        return {
            LinkItem.APPROVAL: "approve or deny",
            LinkItem.QUESTION: "answer",
            LinkItem.BUDGET: "raise the cap or reset the count",
        }[self]


class LinkAction(StrEnum):
    """What the confirming POST of an action link does (`action_redeem {action}`)."""

    APPROVE = "approve"
    DENY = "deny"
    ANSWER = "answer"
    RAISE = "raise"
    """A budget link: the operator's cap for the period, to `usd`."""
    RESET = "reset"
    """A budget link: the period's count restarts from now."""

    @property
    def done(self) -> str:
        return {
            LinkAction.APPROVE: "approved",
            LinkAction.DENY: "denied",
            LinkAction.ANSWER: "answered",
            LinkAction.RAISE: "raised",
            LinkAction.RESET: "reset",
        }[self]


class LinkState(StrEnum):
    """What an action link may still do (its page says it; `action_redeem` refuses by it)."""

    OPEN = "open"
    STALE = "stale"
    """An approval whose applied config moved: denying works, approving is refused."""
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    RESOLVED = "resolved"
    CHANGED = "changed"
    """The approval no longer shows the diff the link was made for."""
    GONE = "gone"

    @property
    def usable(self) -> bool:
        return self in (LinkState.OPEN, LinkState.STALE)

    @property
    def code(self) -> Code:
        """The refusal's code when the link is used in this state."""
        return {
            LinkState.UNKNOWN: Code.FORBIDDEN,
            LinkState.EXPIRED: Code.FORBIDDEN,
            LinkState.CHANGED: Code.STALE,
            LinkState.STALE: Code.STALE,
            LinkState.GONE: Code.NOT_FOUND,
        }.get(self, Code.CONFLICT)


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
