"""Structured logging to journald (HIVE_AGENT=, MESSAGE_ID= per event kind), stderr elsewhere.

`journalctl HIVE_AGENT=alice` and `journalctl MESSAGE_ID=<id>` work for every line a
service writes through `log()`. Without a journal the same fields go to stderr as
`key=value` pairs, so nothing is lost in a terminal or a test.
"""

from __future__ import annotations

import os
import sys
import syslog
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"

# One MESSAGE_ID per kind of event (journalctl MESSAGE_ID=...). Never reuse or change one.
MESSAGE_IDS: dict[str, str] = {
    "service_started": "de298496af764f1fa96b4fe0e847015a",
    "service_stopping": "ba7974e765c44d75bba96442f6864c77",
    "message_sent": "d8f6dcc6edec4c23be96820e307b8a40",
    "agent_created": "e435889254d94d31904feb09d420c9ec",
    "request_refused": "96679b2eb7024b9e8d1106ec06b689a6",
    "internal_error": "0d93ec10f360406f916bffb4f488533e",
    "approval_requested": "9989f89107734d13921e0245d364de0d",
    "approval_resolved": "c6178a57b195416590eaa7c1206103bc",
    "lifecycle": "fd599e4f023a4884a1986e08bf2fab0d",
    "container_crash": "a07081f5091547f09c270a38dd2235b8",
    "budget_reached": "aeeeae4f789649bcbeae5818f1d98761",
    "question_asked": "3ab1d6b0c38a4112b0b7d06630c270ad",
    "question_resolved": "5323c5dda7534879bf7c4ab764a06567",
    "helper_event": "ae26f3103bce4eb5bea09d72c97b2695",
    "rebuild": "19d3f38486d7444db9653513c6ca49a9",
    "web_request": "96854cf4c0784a32926e7663fa690a58",
    "turn": "b443d681360b46ad93abfa139376929c",
    "agent_output": "5b1f0c2e8d0a4a7e9c6f3b2d1e4a7c90",
    "message_set_aside": "2a130d0a1b3d4963b927118face44ff2",
    "message_dropped": "ee049c264c1545fb869bf558231f54fe",
    "connection_refused": "0a6a2f6b9713430db730c9a14f676a0a",
    "operator_login": "742fc312729b476c94fc40b3430c7c20",
    "operator_decision": "4d911fd4c692449980742a03800eb909",
    "operator_action": "adef47a84de14245a8f26872f91131e0",
    "gateway": "180598ed41b743b89868bd347cebab84",
    "model_usage": "d45ccb3b72cd4744bbcbd5edd73ab9a7",
    "gateway_refused": "3b753c21f51b4021a3e3aeb43527ffc4",
    "notification": "245d5793aa5e4043bdcd110e729e29a4",
}

DEBUG = syslog.LOG_DEBUG
INFO = syslog.LOG_INFO
NOTICE = syslog.LOG_NOTICE
WARNING = syslog.LOG_WARNING
ERR = syslog.LOG_ERR

_IDENTIFIER = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "hyperhive"


def set_identifier(name: str) -> None:
    """The SYSLOG_IDENTIFIER of this process's lines (the service's name)."""
    global _IDENTIFIER
    _IDENTIFIER = name


def _use_journal() -> bool:
    if os.environ.get("HIVE_LOG") == "stderr":
        return False
    return os.path.exists(JOURNAL_SOCKET)


def fields_for(kind: str | None, agent: str | None, extra: dict[str, Any]) -> dict[str, str]:
    """The structured journal fields of one line; names upper-case (journald drops others)."""
    fields: dict[str, str] = {}
    if kind is not None:
        fields["HIVE_EVENT"] = kind
        mid = MESSAGE_IDS.get(kind)
        if mid is not None:
            fields["MESSAGE_ID"] = mid
    if agent is not None:
        fields["HIVE_AGENT"] = agent
    for key, value in extra.items():
        if value is None:
            continue
        name = key.upper()
        if not name.startswith("HIVE_"):
            name = "HIVE_" + name
        fields[name] = str(value)
    return fields


def log(
    message: str,
    *,
    kind: str | None = None,
    agent: str | None = None,
    priority: int = INFO,
    **extra: Any,
) -> None:
    """Write one structured line; never raises (logging must not take a service down)."""
    fields = fields_for(kind, agent, extra)
    if _use_journal():
        try:
            from systemd import journal

            journal.send(
                message,
                PRIORITY=str(priority),
                SYSLOG_IDENTIFIER=_IDENTIFIER,
                **fields,
            )
            return
        except Exception:
            pass
    shown = " ".join(f"{k}={v!r}" for k, v in sorted(fields.items()) if k != "MESSAGE_ID")
    line = f"<{priority}>{_IDENTIFIER}: {message}" + (f" [{shown}]" if shown else "")
    try:
        sys.stderr.write(line.replace("\n", "\\n") + "\n")
        sys.stderr.flush()
    except Exception:
        pass
