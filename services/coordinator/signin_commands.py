"""The admin-socket commands of dashboard sign-in: links, sessions, the password.

Reaching the admin socket proves operator rights, so `hivectl login` asks here for a
link; hive-web (also on the admin socket) turns links and passwords into sessions.
"""

from __future__ import annotations

from typing import Any

from ..hive import protocol as p
from ..hive.sessions import SECRET_CHARS
from .connection import Connection
from .context import Hive
from .registry import OPERATOR_ONLY, Result, command, operator_identity


@command("login_link", OPERATOR_ONLY, "login_link: a one-time dashboard sign-in link (120 s)")
def login_link(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return hive.logins.link(operator_identity(conn, req))


@command(
    "session_open",
    OPERATOR_ONLY,
    "session_open {link | password, client}: open a dashboard session (hive-web)",
)
async def session_open(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return await hive.logins.open(
        link=p.get_str(req, "link", None, max_bytes=SECRET_CHARS * 2),
        password=p.get_str(req, "password", None, max_bytes=1024),
        client=p.get_str(req, "client", "unknown", max_bytes=100),
    )


@command("session_seen", OPERATOR_ONLY, "session_seen {id}: a session was used (hive-web)")
def session_seen(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"live": hive.logins.seen(p.get_int(req, "id", minimum=1, maximum=2**62))}


@command("session_close", OPERATOR_ONLY, "session_close {id}: sign one dashboard session out")
def session_close(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"closed": hive.logins.close(p.get_int(req, "id", minimum=1, maximum=2**62))}


@command("sessions", OPERATOR_ONLY, "the dashboard sessions that are open")
def list_sessions(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"sessions": hive.logins.listing(), "password_set": hive.logins.password_set}


@command("logout_all", OPERATOR_ONLY, "logout_all: end every dashboard session and unused link")
def logout_all(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"revoked": hive.logins.revoke_all(operator_identity(conn, req))}


@command(
    "set_password",
    OPERATOR_ONLY,
    "set_password {password}: the dashboard password for remote sign-in (null clears it)",
)
async def set_password(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    password = p.get_str(req, "password", None, max_bytes=1024)
    return {"password_set": await hive.logins.set_password(password, operator_identity(conn, req))}
