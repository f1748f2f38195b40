"""The admin-socket commands of action links: hive-notify asks for one per item and channel,
hive-web redeems one with the secret from its URL and the action its form confirmed.
"""

from __future__ import annotations

from typing import Any

from ..hive import budget
from ..hive import protocol as p
from ..hive.sessions import SECRET_CHARS
from ..hive.vocab import LinkAction, LinkItem
from .connection import Connection
from .context import Hive
from .registry import OPERATOR_ONLY, Result, command, operator_identity


def _choice(req: dict[str, Any], field: str, words: type[LinkItem] | type[LinkAction]) -> Any:
    value = p.get_str(req, field, max_bytes=32)
    try:
        return words(value)
    except ValueError:
        raise p.ProtocolError(
            f"field {field!r} must be one of {', '.join(str(w) for w in words)}"
        ) from None


@command(
    "action_link",
    OPERATOR_ONLY,
    "action_link {item, id, channel}: a single-use link that decides one pending approval, "
    "answers one question or raises or resets one reached cap (hive-notify)",
)
def action_link(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    item = _choice(req, "item", LinkItem)
    item_id = p.get_int(req, "id", minimum=1, maximum=2**62)
    channel = p.get_str(req, "channel", max_bytes=40)
    if not all(c.isascii() and (c.isalnum() or c in "-_#.") for c in channel):
        raise p.ProtocolError("field 'channel' must be a short name such as 'ntfy' or 'json#2'")
    return hive.links.make(item, item_id, channel, operator_identity(conn, req))


@command(
    "action_redeem",
    OPERATOR_ONLY,
    "action_redeem {secret, token, action, answer?, note?, usd?}: act once through an action "
    "link (hive-web, on the confirming POST)",
)
async def action_redeem(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    secret = p.get_str(req, "secret", max_bytes=SECRET_CHARS * 2)
    token = p.get_str(req, "token", max_bytes=128)
    action = _choice(req, "action", LinkAction)
    answer: str | list[str] | None
    if isinstance(req.get("answer"), list):
        answer = p.get_str_list(req, "answer", max_items=32, max_bytes=500)
    else:
        answer = p.get_str(req, "answer", None, max_bytes=8000)
    note = p.get_str(req, "note", None, max_bytes=4000)
    usd = None
    if req.get("usd") is not None:
        try:
            usd = budget.check_usd(req["usd"], "field 'usd'")
        except budget.BudgetError as e:
            raise p.ProtocolError(str(e)) from None
    try:
        return await hive.links.redeem(secret, token, action, answer, note, conn.peer_user(), usd)
    finally:
        hive.changed("history")  # the link's decision is in the trail, whatever it was
