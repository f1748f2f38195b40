"""HelperEvent: what the hive tells the manager after something happened, and its JSON form.

Each event travels as the body of an inbox message from sender `system` to hm1nd.
To add a variant: a dataclass here, its call sites, and the manager prompt.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from .vocab import QuestionStatus


class EventError(ValueError):
    """A body that is not a well-formed helper event."""


@dataclass(frozen=True)
class HelperEvent:
    """Base of every helper event; `event` is the wire name of the variant."""

    event: ClassVar[str] = ""

    @property
    def agent_name(self) -> str | None:
        value = getattr(self, "agent", None)
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class ApprovalResolved(HelperEvent):
    event: ClassVar[str] = "approval_resolved"
    id: int
    agent: str
    commit_ref: str | None
    status: str
    note: str | None = None


@dataclass(frozen=True)
class Spawned(HelperEvent):
    event: ClassVar[str] = "spawned"
    agent: str
    ok: bool
    note: str | None = None


@dataclass(frozen=True)
class Rebuilt(HelperEvent):
    event: ClassVar[str] = "rebuilt"
    agent: str
    ok: bool
    note: str | None = None


@dataclass(frozen=True)
class Killed(HelperEvent):
    event: ClassVar[str] = "killed"
    agent: str


@dataclass(frozen=True)
class Destroyed(HelperEvent):
    event: ClassVar[str] = "destroyed"
    agent: str


@dataclass(frozen=True)
class ContainerCrash(HelperEvent):
    event: ClassVar[str] = "container_crash"
    agent: str
    note: str


@dataclass(frozen=True)
class BudgetReached(HelperEvent):
    """An agent reached a spending cap: it starts no turn until the operator raises or
    resets the cap, or the period ends. `since` is when the period's count began."""

    event: ClassVar[str] = "budget_reached"
    agent: str
    spent_usd: float
    cap_usd: float
    period: str
    since: str


CANCELLED = "[cancelled]"
"""The answer of a question the operator cancelled."""
EXPIRED = "[expired]"
"""The answer of a question whose deadline passed."""


@dataclass(frozen=True)
class OperatorAnswered(HelperEvent):
    event: ClassVar[str] = "operator_answered"
    id: int
    question: str
    answer: str

    @property
    def resolution(self) -> str:
        """answered, cancelled or expired: what became of the question."""
        done = {CANCELLED: QuestionStatus.CANCELLED, EXPIRED: QuestionStatus.EXPIRED}
        return str(done.get(self.answer, QuestionStatus.ANSWERED))


VARIANTS: dict[str, type[HelperEvent]] = {
    cls.event: cls
    for cls in (
        ApprovalResolved,
        Spawned,
        Rebuilt,
        Killed,
        Destroyed,
        ContainerCrash,
        OperatorAnswered,
        BudgetReached,
    )
}

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
    "float": (int, float),
    "str | None": (str, type(None)),
}


def from_dict(obj: dict[str, Any]) -> HelperEvent:
    """Rebuild an event from its dict form, checking the variant and every field's type."""
    name = obj.get("event")
    cls = VARIANTS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise EventError(f"unknown helper event {name!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            if f.default is dataclasses.MISSING:
                raise EventError(f"helper event {name!r} lacks field {f.name!r}")
            continue
        value = obj[f.name]
        allowed = _TYPES[str(f.type)]
        wrong_bool = isinstance(value, bool) and bool not in allowed
        if wrong_bool or not isinstance(value, allowed):
            raise EventError(f"helper event {name!r}: field {f.name!r} has the wrong type")
        kwargs[f.name] = value
    return cls(**kwargs)


def from_json(text: str) -> HelperEvent:
    try:
        obj = json.loads(text)
    except ValueError:
        raise EventError("helper event body is not JSON") from None
    if not isinstance(obj, dict):
        raise EventError("helper event body is not a JSON object")
    return from_dict(obj)
