"""The dashboard's only way to change anything: one admin-socket command per call.

Each call opens its own connection (so any thread may call) and closes it; it never
retries a command, because a lifecycle verb must not run twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..hive.client import HiveClient, Refused, Unreachable

__all__ = ["Admin", "Refused", "Unreachable"]

QUICK = 30.0
"""Seconds to wait for a listing or a decision."""

SLOW = 600.0
"""Seconds to wait for a lifecycle verb (a rebuild can take minutes on a real host)."""


class Admin:
    def __init__(self, socket_path: Path) -> None:
        self.path = socket_path

    def call(self, cmd: str, *, timeout: float = QUICK, **fields: Any) -> dict[str, Any]:
        """Run `cmd`; raise `Refused` with the hive's sentence or `Unreachable`."""
        try:
            with HiveClient(self.path, timeout=timeout) as client:
                return client.call(cmd, **fields)
        except TimeoutError:
            raise Unreachable(
                f"the coordinator did not answer {cmd!r} within {timeout:.0f} s: "
                "see journalctl -u hive-coordinator"
            ) from None
        except ConnectionError as e:
            raise Unreachable(
                f"the connection to the coordinator broke during {cmd!r}: {e}"
            ) from None
