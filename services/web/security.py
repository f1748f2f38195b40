"""Which requests the dashboard refuses: CSRF, origin and host checks, and its security headers.

Pure functions over header values, so every rule is unit-tested without a server. Never
relaxes a check because a header is missing: a missing Origin is allowed only together
with a valid CSRF token, which a cross-site page cannot read.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from .settings import is_loopback

CSRF_COOKIE = "hive_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"

SAME_SITE_FETCH = frozenset({"same-origin", "none"})

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Forbidden(Exception):
    """A request the dashboard refuses; the message is shown to the operator."""


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets; False when either is missing."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def _host_only(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_host(host_header: str | None, public_host: str | None) -> None:
    """Only loopback names and the public URL's host are served (no DNS rebinding)."""
    host = _host_only(host_header or "")
    if not is_loopback(host) and (public_host is None or host != public_host.lower()):
        raise Forbidden(
            f"host {host_header!r} is not a loopback name: open the dashboard at "
            "http://127.0.0.1, or set HIVE_WEB_PUBLIC_URL to the address operators use"
        )


def check_same_origin(headers: Mapping[str, str]) -> None:
    """Refuse a state-changing request sent by another site (Sec-Fetch-Site, Origin)."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in SAME_SITE_FETCH:
        raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = headers.get("Origin")
    if origin is not None:
        host = (headers.get("Host") or "").lower()
        netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
        if netloc != host:
            raise Forbidden(f"cross-site request refused (Origin {origin} is not {host})")


def check_csrf(expected: str | None, submitted: str | None) -> None:
    """`submitted` must equal `expected` (the session's token, or before sign-in the cookie's)."""
    if not same(expected, submitted):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page and retry")
