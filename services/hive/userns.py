"""The host uids each agent's container runs as: a user namespace of 65536 ids per agent,
recorded in `uid_ranges`, so root in a container is an unprivileged uid on the host and what
it writes belongs to its own range. A name keeps its range for good (files it wrote may
outlive it, even a purge: a writable bind), so no other agent is ever given those ids. The
coordinator allocates ranges; anyone may look one up.
Sockets are given to a container's root through `safefs`, never through a planted link.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from . import safefs
from .db import UidRange, write_tx
from .protocol import Refusal
from .vocab import Code

SIZE = 0x10000
"""Ids per container: the full 16-bit range a distribution expects (nobody is 65534)."""
FIRST_BASE = 0x70000000
"""Above systemd-nspawn's own `--private-users=pick` ranges (0x00080000…0x6FFFFFFF), so no
other container on the host is given the same ids (systemd's docs/UIDS-GIDS.md)."""
LAST_BASE = 0x7FFD0000
"""Below 2^31, which some kernel code still treats as a signed number (devpts)."""


class NoRangeLeft(Refusal):
    code = Code.UNAVAILABLE


@dataclass(frozen=True)
class IdRange:
    """Host ids `base` … `base` + `size` - 1: the container's ids 0 … `size` - 1."""

    base: int
    size: int = SIZE

    @property
    def root(self) -> tuple[int, int]:
        """The host uid and gid of the container's root."""
        return self.base, self.base

    def __contains__(self, host_id: object) -> bool:
        return isinstance(host_id, int) and self.base <= host_id < self.base + self.size

    def shift(self, host_id: int) -> int | None:
        """Where an id written by a container without a user namespace lands: 0 … size - 1
        move up by `base` (what `systemd-nspawn --private-users-ownership=chown` does), ids
        already in the range stay; any other id is foreign (None)."""
        if host_id in self:
            return host_id
        if 0 <= host_id < self.size:
            return self.base + host_id
        return None

    def shifted(self, st: os.stat_result) -> tuple[int, int] | None:
        """The owner an entry gets when its tree moves into this range (None: foreign)."""
        uid, gid = self.shift(st.st_uid), self.shift(st.st_gid)
        return None if uid is None or gid is None else (uid, gid)

    def nspawn_args(self) -> list[str]:
        """The container's user namespace; nspawn never chowns anything (`-D /` is the host)."""
        return [f"--private-users={self.base}:{self.size}", "--private-users-ownership=off"]


def range_of(name: str) -> IdRange | None:
    row = UidRange.get_or_none(UidRange.agent == name)
    return None if row is None else IdRange(int(row.base))


def _taken_on_host(base: int) -> bool:
    """A user or group with that id exists (the check systemd-nspawn makes before it picks)."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(base)
        except KeyError:
            continue
        return True
    return False


def allocate(name: str) -> IdRange:
    """`name`'s range, given the first free one the first time it is asked for."""
    found = range_of(name)
    if found is not None:
        return found
    with write_tx():
        row = UidRange.get_or_none(UidRange.agent == name)
        if row is not None:
            return IdRange(int(row.base))
        used = {int(r.base) for r in UidRange.select(UidRange.base)}
        for base in range(FIRST_BASE, LAST_BASE + 1, SIZE):
            if base not in used and not _taken_on_host(base):
                UidRange.create(agent=name, base=base)
                return IdRange(base)
    raise NoRangeLeft(
        f"no host uid range is left for {name}: every one is held by a name in uid_ranges; "
        "delete the rows of names gone for good (and chown what they left) to free theirs"
    )


def give_socket(path: Path, ids: IdRange) -> None:
    """Make the unix socket at `path` its container's to connect to: owned by the container's
    root, mode unchanged (0660). The socket's directory is opened without following a link,
    and the socket itself is pinned, never followed; anything but a socket there is refused.
    `path.parent.parent` is one of the hive's own directories."""

    def owner(st: os.stat_result) -> tuple[int, int]:
        if not stat.S_ISSOCK(st.st_mode):
            raise safefs.unexpected(str(path), st.st_mode, "socket")
        return ids.root

    with safefs.root(path.parent.parent) as top, top.subdir(path.parent.name) as d:
        if d.chown_entry(path.name, owner) is None:
            raise FileNotFoundError(2, "no socket to give", str(path))
