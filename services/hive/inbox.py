"""Durable inbox writes shared by every service: a message row first, then the doorbell.

The coordinator's broker and any other process (the crash watcher) enqueue through here,
so a message exists in SQLite before anyone is woken; the doorbell is only a hint.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from . import outbox
from .db import Event, Message, Notification, now, write_tx
from .events import HelperEvent, OperatorAnswered
from .log import log
from .names import MANAGER, SYSTEM


def insert_message(
    sender: str, recipient: str, body: str, *, delivered: bool = False, claimed: bool = False
) -> Message:
    """Insert one message; call inside the caller's write transaction."""
    t = now()
    msg: Message = Message.create(
        sender=sender,
        recipient=recipient,
        body=body,
        created_at=t,
        claimed_at=t if claimed else None,
        delivered_at=t if delivered else None,
    )
    return msg


def ring_doorbell(doorbell: Path) -> bool:
    """Tell the coordinator that SQLite changed; best effort, never blocks, never raises."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(b"ring", str(doorbell))
        return True
    except OSError:
        return False


NOTIFY_TEXT = {
    "approval_resolved": "approval #{id} for {agent}: {status}",
    "spawned": "spawn of {agent}: {outcome}",
    "rebuilt": "rebuild of {agent}: {outcome}",
    "killed": "{agent} was killed",
    "destroyed": "{agent} was destroyed",
    "container_crash": "{agent} crashed: {note}",
    "operator_answered": "question #{id} {resolution}",
    "budget_reached": "{agent} reached its {period} cap: ${spent_usd:.2f} of ${cap_usd:.2f}",
}


def notify_manager(
    event: HelperEvent, doorbell: Path | None = None, notify_doorbell: Path | None = None
) -> int:
    """Enqueue a helper event in hm1nd's inbox (durable), note it for the dashboard and, for
    a crash, in the outbox for the operator's channels; then ring.

    Returns the message id. The manager's harness gets it as a message from `system`.
    """
    data = event.to_dict()
    outcome = "ok" if data.get("ok") else f"failed ({data.get('note') or 'no reason given'})"
    resolution = event.resolution if isinstance(event, OperatorAnswered) else ""
    text = NOTIFY_TEXT[event.event].format(outcome=outcome, resolution=resolution, **data)
    with write_tx():
        msg = insert_message(SYSTEM, MANAGER, event.to_json())
        Notification.create(kind=event.event, agent=event.agent_name, text=text)
        row = Event.create(kind=event.event, agent=event.agent_name, payload=json.dumps(data))
        outbox.from_helper_event(event, int(row.id))
    log(f"helper event {event.event}: {text}", kind="helper_event", agent=event.agent_name)
    if doorbell is not None:
        ring_doorbell(doorbell)
    if notify_doorbell is not None:
        ring_doorbell(notify_doorbell)
    return int(msg.id)
