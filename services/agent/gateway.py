"""The model gateway as the harness sees it: its socket, and whether it can serve us now.

The harness holds no API key. The gateway, on the host, answers on the socket bound into
this container; `status()` says whether it has a usable key and whether this agent is
under its spending cap, and can wait there for that to change (no polling). While the
socket is missing (the gateway starting or restarting) the harness waits for it with
inotify on the socket's directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2

from ..hive.vocab import KeyState, TurnPhase
from .dirwatch import DirWatch

BASE_URL = "http://hive-gateway"
"""Any host name: the transport is the unix socket; the gateway ignores the name."""
CONNECT_TIMEOUT = 10.0
STATUS_PATH = "/hive/status"


class GatewayDown(Exception):
    """The gateway does not answer on the socket (not started yet, restarting, stopped)."""


@dataclass(frozen=True)
class Status:
    key: KeyState
    over_budget: bool
    state: str
    """An opaque token: the same while nothing the harness cares about changed."""
    detail: str | None
    """What stops the gateway serving this agent, in one sentence (None when nothing)."""

    @property
    def usable(self) -> bool:
        return self.key is KeyState.OK and not self.over_budget

    @property
    def phase(self) -> TurnPhase | None:
        """The turn state the harness reports while it cannot go on (None: it can)."""
        if self.key is not KeyState.OK:
            return TurnPhase.NEEDS_LOGIN
        if self.over_budget:
            return TurnPhase.OVER_BUDGET
        return None


def transport(socket: Path) -> httpx2.Client:
    """An HTTP client whose every request goes to the gateway's socket, never a proxy
    (an egress grant sets HTTPS_PROXY in the container: it must not catch these)."""
    return httpx2.Client(
        transport=httpx2.HTTPTransport(uds=str(socket)),
        trust_env=False,
        base_url=BASE_URL,
    )


def parse_status(data: Any) -> Status:
    if not isinstance(data, dict):
        raise GatewayDown("the gateway's status is not a JSON object")
    try:
        key = KeyState(str(data.get("key")))
    except ValueError:
        raise GatewayDown(
            f"the gateway's status names an unknown key state {data.get('key')!r}"
        ) from None
    detail = data.get("detail")
    return Status(
        key=key,
        over_budget=data.get("over_budget") is True,
        state=str(data.get("state", "")),
        detail=detail if isinstance(detail, str) and detail else None,
    )


class Gateway:
    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.http = transport(socket)

    def close(self) -> None:
        self.http.close()

    def status(self, *, wait: float = 0.0, seen: str = "") -> Status:
        """The gateway's word on this agent; with `wait`, held there until it differs from
        `seen` (or `wait` seconds pass)."""
        query = urlencode({"wait": f"{wait:g}", "seen": seen})
        try:
            response = self.http.get(
                f"{STATUS_PATH}?{query}",
                timeout=httpx2.Timeout(wait + 30.0, connect=CONNECT_TIMEOUT),
            )
        except httpx2.TransportError as e:
            raise GatewayDown(f"{type(e).__name__}: {e}") from None
        if response.status_code != 200:
            raise GatewayDown(f"the gateway answered {response.status_code} to its status")
        try:
            return parse_status(json.loads(response.content))
        except ValueError:
            raise GatewayDown("the gateway's status is not JSON") from None

    def wait_for_socket(self, timeout: float) -> None:
        """Wait until something changes in the socket's directory (the gateway binding it),
        at most `timeout` s; a gateway that answers already ends the wait at once."""
        with DirWatch(self.socket.parent) as watch:
            try:
                self.status()
                return
            except GatewayDown:
                pass
            watch.wait(timeout)
