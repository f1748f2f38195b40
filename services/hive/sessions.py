"""Dashboard sessions as both sides see them: secrets, their hashes, and when a session counts.

The coordinator creates and revokes sessions (`web_sessions`, `login_links`); hive-web
only reads them to check a cookie. Only a SHA-256 of each secret is ever stored, so the
database holds nothing that signs anyone in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from .db import WebSession, now

LINK_TTL = 120.0
"""Seconds a `hivectl login` link stays usable (once)."""

DEFAULT_IDLE = 12 * 3600.0
"""A session unused this long is over (HIVE_WEB_SESSION_IDLE overrides, in seconds)."""

DEFAULT_MAX_AGE = 7 * 24 * 3600.0
"""A session is over this long after it opened, used or not (HIVE_WEB_SESSION_MAX_AGE)."""

SECRET_CHARS = 43
"""Length of a secret from `new_secret()` (32 random bytes, URL-safe base64)."""


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a secret."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def plausible(secret: str | None) -> bool:
    """Shaped like a secret from `new_secret()` (checked before any lookup)."""
    return (
        secret is not None
        and len(secret) == SECRET_CHARS
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in secret)
    )


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose secret is `secret`: bound to it, useless alone."""
    return hmac.new(secret.encode(), b"hyperhive csrf", hashlib.sha256).hexdigest()


def live(session: WebSession, at: float | None = None) -> bool:
    """Not revoked, not past its end, and used within its idle time."""
    t = now() if at is None else at
    return (
        session.revoked_at is None
        and t < session.expires_at
        and t - session.last_seen < session.idle_seconds
    )


def find(secret: str | None) -> WebSession | None:
    """The live session whose secret this is, or None (a bad, old or revoked secret)."""
    if not plausible(secret):
        return None
    assert secret is not None
    session: WebSession | None = WebSession.get_or_none(WebSession.token_hash == digest(secret))
    if session is None or not live(session):
        return None
    return session


def web_url(env: Mapping[str, str]) -> str:
    """Where operators open the dashboard: HIVE_WEB_PUBLIC_URL, else http://HIVE_WEB_LISTEN."""
    public = (env.get("HIVE_WEB_PUBLIC_URL") or "").strip().rstrip("/")
    if public:
        return public
    listen = (env.get("HIVE_WEB_LISTEN") or "127.0.0.1:7800").strip()
    if listen.isdigit():
        listen = f"127.0.0.1:{listen}"
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"
