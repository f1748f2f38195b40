"""Who the dashboard serves: the operator's session cookie, its CSRF token, and use reports.

Sessions belong to the coordinator, which opens and ends them over the admin socket; this
module only reads them from SQLite to check a cookie and tells the coordinator, at most
once a minute per session, that a session is in use (its idle clock). A request without
a live session gets the sign-in page and nothing else.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from ..hive import sessions
from .admin import Admin, Refused, Unreachable

SESSION_COOKIE = "hive_session"
TOUCH_EVERY = 60.0


def public(path: str) -> bool:
    """Routes served without a session: sign-in, the static assets and action links (whose
    secret is the capability)."""
    return path == "/login" or path.startswith(("/login/", "/static/", "/act/"))


@dataclass(frozen=True)
class Visitor:
    """A request's live session."""

    session_id: int
    secret: str

    @property
    def csrf(self) -> str:
        return sessions.csrf_token(self.secret)

    @property
    def actor(self) -> str:
        """How the coordinator records this session's decisions."""
        return f"dashboard session #{self.session_id}"


class Doorkeeper:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self._touched: dict[int, float] = {}
        self._lock = threading.Lock()

    def visitor(self, cookie: str | None) -> Visitor | None:
        """The live session of this cookie, or None."""
        row = sessions.find(cookie)
        if row is None or cookie is None:
            return None
        self._touch(int(row.id))
        return Visitor(int(row.id), cookie)

    def live(self, visitor: Visitor) -> bool:
        """Still live (a long stream checks this now and then: a revoked session ends it)."""
        return sessions.find(visitor.secret) is not None

    def _touch(self, session_id: int) -> None:
        t = time.monotonic()
        with self._lock:
            if t - self._touched.get(session_id, float("-inf")) < TOUCH_EVERY:
                return
            self._touched[session_id] = t
            if len(self._touched) > 10_000:
                self._touched = {k: v for k, v in self._touched.items() if t - v < TOUCH_EVERY}
        # If the coordinator does not answer, the idle clock waits for the next use.
        with contextlib.suppress(Refused, Unreachable):
            self.admin.call("session_seen", id=session_id, timeout=5.0)
