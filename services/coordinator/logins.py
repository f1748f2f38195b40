"""Who may open a dashboard session: one-time links from `hivectl login`, the password, and
the limit on failed tries. The coordinator is the only writer of sessions and links.

Only hashes of secrets reach SQLite. A link is used at most once, within `LINK_TTL`; a
failed sign-in costs its client one try, and a client (or everyone together) out of tries
is refused before any password is checked. Password hashing runs off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hive import log as hlog
from ..hive import sessions
from ..hive.db import LoginLink, WebSession, now, write_tx
from ..hive.protocol import Refusal
from ..hive.vocab import Code
from ..hive.wire import SessionRow
from . import passwords

TOUCH_EVERY = 60.0
"""`session_seen` writes `last_seen` at most this often per session."""


class LoginRefused(Refusal):
    """A sign-in that does not open a session; the message says why and what to do."""

    code = Code.FORBIDDEN


@dataclass
class _Bucket:
    tries: float
    at: float


@dataclass
class AttemptLimiter:
    """Token buckets of failed sign-ins: one per client address, one for all together."""

    per_client: int = 5
    client_refill: float = 60.0  # seconds per try given back to a client
    overall: int = 30
    overall_refill: float = 6.0
    _clients: dict[str, _Bucket] = field(default_factory=dict)
    _all: _Bucket | None = None

    def _level(self, bucket: _Bucket, size: int, refill: float, t: float) -> float:
        bucket.tries = min(size, bucket.tries + (t - bucket.at) / refill)
        bucket.at = t
        return bucket.tries

    def _buckets(self, client: str, t: float) -> tuple[_Bucket, _Bucket]:
        if self._all is None:
            self._all = _Bucket(self.overall, t)
        if len(self._clients) > 10_000:  # forget clients that are full again
            self._clients = {
                k: b
                for k, b in self._clients.items()
                if self._level(b, self.per_client, self.client_refill, t) < self.per_client
            }
        mine = self._clients.setdefault(client, _Bucket(self.per_client, t))
        return mine, self._all

    def check(self, client: str) -> None:
        """Refuse when `client`, or everyone together, has no failed try left."""
        t = time.monotonic()
        mine, everyone = self._buckets(client, t)
        if self._level(mine, self.per_client, self.client_refill, t) < 1:
            wait = (1 - mine.tries) * self.client_refill
            raise LoginRefused(
                f"too many failed sign-ins from {client}: wait {wait:.0f} s, or run "
                "`hivectl login` on the host for a one-time link"
            )
        if self._level(everyone, self.overall, self.overall_refill, t) < 1:
            wait = (1 - everyone.tries) * self.overall_refill
            raise LoginRefused(
                f"too many failed sign-ins overall: wait {wait:.0f} s, or run "
                "`hivectl login` on the host for a one-time link"
            )

    def failed(self, client: str) -> None:
        mine, everyone = self._buckets(client, time.monotonic())
        mine.tries -= 1
        everyone.tries -= 1


def _seconds(env: Mapping[str, str], key: str, default: float) -> float:
    try:
        value = float(env.get(key) or default)
    except ValueError:
        value = default
    return value if value > 0 else default


def session_dict(s: WebSession) -> SessionRow:
    return {
        "id": s.id,
        "kind": s.kind,
        "opened_by": s.opened_by,
        "client": s.client,
        "created_at": s.created_at,
        "last_seen": s.last_seen,
        "expires_at": s.expires_at,
        "idle_seconds": s.idle_seconds,
    }


class Logins:
    def __init__(
        self,
        password_file: Path,
        ended: Callable[[], None],
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`ended` is called when sessions end, so hive-web closes their live streams."""
        e = os.environ if env is None else env
        self.password_file = password_file
        self.ended = ended
        self.url = sessions.web_url(e)
        self.idle = _seconds(e, "HIVE_WEB_SESSION_IDLE", sessions.DEFAULT_IDLE)
        self.max_age = _seconds(e, "HIVE_WEB_SESSION_MAX_AGE", sessions.DEFAULT_MAX_AGE)
        self.limiter = AttemptLimiter()
        self._hashing = asyncio.Lock()  # one scrypt at a time: tries cannot pile up CPU

    # links -------------------------------------------------------------------------------
    def link(self, by: str) -> dict[str, Any]:
        """A new one-time sign-in link for the operator `by`."""
        secret = sessions.new_secret()
        expires = now() + sessions.LINK_TTL
        LoginLink.create(token_hash=sessions.digest(secret), created_by=by, expires_at=expires)
        hlog.log(f"sign-in link made by {by}", kind="operator_login")
        return {
            "url": f"{self.url}/login/{secret}",
            "expires_at": expires,
            "valid_seconds": sessions.LINK_TTL,
        }

    # sessions ------------------------------------------------------------------------------
    def _open(self, kind: str, opened_by: str, client: str) -> tuple[str, WebSession]:
        secret = sessions.new_secret()
        t = now()
        session = WebSession.create(
            token_hash=sessions.digest(secret),
            kind=kind,
            opened_by=opened_by,
            client=client[:100],
            created_at=t,
            last_seen=t,
            idle_seconds=self.idle,
            expires_at=t + self.max_age,
        )
        return secret, session

    def _by_link(self, secret: str, client: str) -> tuple[str, WebSession]:
        with write_tx():
            link: LoginLink | None = (
                LoginLink.get_or_none(LoginLink.token_hash == sessions.digest(secret))
                if sessions.plausible(secret)
                else None
            )
            if link is None:
                raise LoginRefused(
                    "that sign-in link is not one the hive made: run `hivectl login`"
                )
            if link.used_at is not None:
                raise LoginRefused("that sign-in link was used already: run `hivectl login` again")
            if now() >= link.expires_at:
                raise LoginRefused(
                    f"that sign-in link expired ({sessions.LINK_TTL:.0f} s after it was made): "
                    "run `hivectl login` again"
                )
            opened = self._open("link", f"link from {link.created_by}", client)
            LoginLink.update(used_at=now(), session=opened[1].id).where(
                LoginLink.id == link.id
            ).execute()
        return opened

    async def _by_password(self, password: str, client: str) -> tuple[str, WebSession]:
        stored = passwords.read(self.password_file)
        if stored is None:
            raise LoginRefused(
                "no dashboard password is set: run `hivectl login` on the host for a one-time "
                "link, or `hivectl passwd` to set one"
            )
        async with self._hashing:
            ok = await asyncio.to_thread(passwords.verify, password, stored)
        if not ok:
            raise LoginRefused("that is not the dashboard password")
        with write_tx():
            return self._open("password", "password", client)

    async def open(self, *, link: str | None, password: str | None, client: str) -> dict[str, Any]:
        """A new session from a link or the password; every failure costs `client` one try."""
        self.limiter.check(client)
        try:
            if link is not None:
                secret, session = self._by_link(link, client)
            elif password is not None:
                secret, session = await self._by_password(password, client)
            else:
                raise LoginRefused("sign in with a link from `hivectl login` or the password")
        except LoginRefused as e:
            self.limiter.failed(client)
            hlog.log(
                f"dashboard sign-in from {client} refused: {e}",
                kind="operator_login",
                priority=hlog.WARNING,
            )
            raise
        hlog.log(
            f"dashboard session #{session.id} opened from {client} ({session.opened_by})",
            kind="operator_login",
            session=session.id,
        )
        return {"session": secret, **session_dict(session)}

    def seen(self, session_id: int) -> bool:
        """The session was used now; False when it is over (revoked, expired or idle)."""
        session: WebSession | None = WebSession.get_or_none(WebSession.id == session_id)
        if session is None or not sessions.live(session):
            return False
        if now() - session.last_seen >= TOUCH_EVERY:
            WebSession.update(last_seen=now()).where(WebSession.id == session_id).execute()
        return True

    def close(self, session_id: int) -> bool:
        changed = (
            WebSession.update(revoked_at=now())
            .where((WebSession.id == session_id) & WebSession.revoked_at.is_null())
            .execute()
        )
        if changed:
            hlog.log(f"dashboard session #{session_id} signed out", kind="operator_login")
            self.ended()
        return bool(changed)

    def revoke_all(self, by: str) -> int:
        """End every session and unused link; the number of sessions ended."""
        t = now()
        with write_tx():
            n = int(
                WebSession.update(revoked_at=t).where(WebSession.revoked_at.is_null()).execute()
            )
            LoginLink.update(used_at=t).where(LoginLink.used_at.is_null()).execute()
        hlog.log(f"{by} ended all {n} dashboard sessions", kind="operator_login")
        self.ended()
        return n

    def listing(self) -> list[SessionRow]:
        t = now()
        rows = WebSession.select().where(WebSession.revoked_at.is_null()).order_by(WebSession.id)
        return [session_dict(s) for s in rows if sessions.live(s, t)]

    # the password --------------------------------------------------------------------------
    @property
    def password_set(self) -> bool:
        return passwords.read(self.password_file) is not None

    async def set_password(self, password: str | None, by: str) -> bool:
        """Set (or with None, clear) the dashboard password; True if one is now set."""
        if password is None:
            passwords.write(self.password_file, None)
            hlog.log(f"{by} cleared the dashboard password", kind="operator_login")
            return False
        try:
            passwords.check_strength(password)
        except passwords.PasswordError as e:
            raise LoginRefused(str(e)) from None
        async with self._hashing:
            stored = await asyncio.to_thread(passwords.hash_password, password)
        passwords.write(self.password_file, stored)
        hlog.log(f"{by} set the dashboard password", kind="operator_login")
        return True
