"""Action links for hive-notify: one per notice and channel, asked of the coordinator over the
admin socket (`action_link`), kept in memory so a retry carries the same link.

The secret of a link exists only in the coordinator's reply, this cache and the message
sent; SQLite keeps its hash. A coordinator that does not answer costs the message its link,
never the message itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..hive.client import HiveClient, Refused, Unreachable
from ..hive.db import OutboxItem
from ..hive.protocol import BadReply
from ..hive.vocab import Code, Notice

ACTOR = "hive-notify"
TIMEOUT = 10.0


class ItemClosed(Exception):
    """The item was resolved (or went away) since its notice was queued: nothing to link."""


@dataclass(frozen=True)
class Link:
    url: str
    valid_seconds: float


class LinkMaker:
    def __init__(self, admin_socket: Path, timeout: float = TIMEOUT) -> None:
        self.admin_socket = admin_socket
        self.timeout = timeout
        self._cache: dict[tuple[int, str], Link] = {}

    def link(self, item: OutboxItem, channel_key: str, label: str) -> Link:
        """The link of `item` on a channel; raises `ItemClosed` when the item is resolved and
        `Unreachable` (with the reason) when the coordinator does not answer."""
        key = (int(item.id), channel_key)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        what = Notice(item.kind).item
        assert what is not None and item.item_id is not None
        try:
            with HiveClient(self.admin_socket, timeout=self.timeout) as admin:
                reply = admin.call(
                    "action_link", item=str(what), id=int(item.item_id), channel=label, actor=ACTOR
                )
        except Refused as e:
            if e.code in (Code.CONFLICT, Code.NOT_FOUND, Code.STALE):
                raise ItemClosed(str(e)) from None
            raise Unreachable(f"the coordinator refused a link: {e}") from None
        except (OSError, BadReply) as e:
            raise Unreachable(f"the coordinator did not answer ({e})") from None
        made = Link(str(reply["url"]), float(reply["valid_seconds"]))
        self._cache[key] = made
        return made

    def forget(self, item_ids: list[int]) -> None:
        """The notices are done: their links are not needed for a retry any more."""
        gone = set(item_ids)
        for key in [k for k in self._cache if k[0] in gone]:
            del self._cache[key]
