"""An agent's files on the host: its state dir (`agent-state/<name>`), its entry in the agents
dir and the first install of its proposed repo, who owns them under a user namespace, the
model marker, the one-time moves of old-layout state dirs and of root-owned trees into a
container's uid range, purge, and the coordinator's private scratch dirs.

Everything is reached through `safefs` from the hive's state dir. Nothing here follows a
link an agent could have planted, opens a special file, or writes into an existing entry.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..hive import log as hlog
from ..hive import safefs
from ..hive.names import InvalidName, validate_agent_name
from ..hive.paths import Paths
from ..hive.protocol import Refusal
from ..hive.userns import IdRange
from ..hive.vocab import Code

AGENTS = "agents"
AGENT_STATE = "agent-state"
PRIVATE_TMP = "tmp"
CONFIG = "config"
LEGACY_STATE = "state"
MODEL_FILE = "hyperhive-model"
MIGRATED = ".migrated"
"""Marker in agent-state/: the old layout was moved once; later entries there are ignored."""

STATE_MODE = 0o700
AGENTS_MODE = 0o751
AGENT_DIR_MODE = 0o750


class AlreadyProposed(Refusal):
    """The agent already has something at its proposed repo's path."""


def _owned_private(parent: safefs.Dir, name: str, what: str) -> safefs.Dir:
    """A root-only directory of the coordinator's (made if missing): real, ours, mode 0700."""
    d = parent.subdir(name, create=STATE_MODE)
    try:
        d.require_owner(os.geteuid(), what)
        d.chmod(STATE_MODE)
    except BaseException:
        d.close()
        raise
    return d


@contextlib.contextmanager
def state_dir(
    paths: Paths, name: str, ids: IdRange | None = None, *, migrate: bool = False
) -> Iterator[safefs.Dir]:
    """The agent's state dir, opened without following anything, made if missing (mode 0700).

    It belongs to its container's root: `ids.root` under a user namespace, the coordinator's
    own uid without one (`ids` None). A dir the coordinator owns where a range is expected
    (made just now, or by a hive from before user namespaces) is accepted, and with `migrate`
    given to the range, its whole tree at once (`give_tree`). A link, a special file or any
    other owner (a dir swapped for another agent's, or a host user's) is refused."""
    name = validate_agent_name(name)
    what = f"{name}'s state dir"
    with (
        safefs.root(paths.state_dir) as root,
        _owned_private(root, AGENT_STATE, "the agents' state root") as parent,
        parent.subdir(name, create=STATE_MODE) as d,
    ):
        if ids is None:
            d.require_owner(os.geteuid(), what)
        elif d.stat().st_uid != ids.base:
            if d.stat().st_uid != os.geteuid():
                d.require_owner(ids.base, what)
            if migrate:
                give_tree(d, ids, what, name)
        d.chmod(STATE_MODE)
        yield d


def ensure_state_dir(paths: Paths, name: str, ids: IdRange | None = None) -> None:
    """What both backends call before a container is created or started: with a user
    namespace (`ids`), this is where a root-owned state dir moves into the range, once."""
    with state_dir(paths, name, ids, migrate=True):
        pass


def write_model(paths: Paths, name: str, model: str | None, ids: IdRange | None = None) -> None:
    """Mirror the operator's model override to the agent's /state/hyperhive-model: a new file
    (its container's root's, under a user namespace) renamed over whatever is there (a planted
    link is replaced, never written through)."""
    with state_dir(paths, name, ids) as d:
        if model is None:
            d.unlink(MODEL_FILE)
        else:
            owner = ids.root if ids is not None else None
            d.write_replace(MODEL_FILE, (model + "\n").encode(), 0o644, owner=owner)


# ownership under a user namespace ------------------------------------------------------------


def give_tree(d: safefs.Dir, ids: IdRange, what: str, agent: str) -> None:
    """Move a tree the coordinator owns (written by a container that ran as host root, before
    user namespaces) into the container's uid range: every id 0…65535 moves up by the range's
    base, as `systemd-nspawn --private-users-ownership=chown` would, so each file keeps the
    owner the container saw. Links are changed themselves; device nodes and ids from outside
    0…65535 keep theirs and are logged. The top goes last, so an interrupted move is finished
    by the next start."""
    left = d.chown_tree(ids.shifted)
    d.chown(*ids.root)  # the top is the container root's, whatever group the hive gave it
    last = ids.base + ids.size - 1
    text = f"{what} {d.label} now belongs to its container's uids {ids.base}…{last}"
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        text += f"; kept their owner (device nodes, or ids from outside 0…65535): {shown}"
    hlog.log(text, kind="lifecycle", agent=agent, priority=hlog.WARNING if left else hlog.INFO)


def give_agents_dir(paths: Paths, manager: IdRange) -> None:
    """What the manager's /agents needs under a user namespace: `agents/` and each
    `agents/<name>` stay root's (so it cannot swap them) but readable by its group, and each
    proposed repo is its own. A repo the coordinator still owns (from before user namespaces)
    is given over once, its whole tree; one owned by anyone else is logged and left alone."""
    with safefs.root(paths.state_dir) as root, root.subdir(AGENTS, create=AGENTS_MODE) as agents:
        agents.chown(-1, manager.base)
        for name in sorted(agents.names()):
            try:
                validate_agent_name(name)
                entry = agents.subdir(name)
            except (InvalidName, FileNotFoundError):
                continue
            except safefs.UnsafePath as e:
                _warn(name, f"{e}; the manager cannot use it")
                continue
            with entry:
                entry.chown(-1, manager.base)
                entry.chmod(AGENT_DIR_MODE)
                _give_repo(entry, name, manager)


def _give_repo(entry: safefs.Dir, name: str, manager: IdRange) -> None:
    try:
        repo = entry.subdir(CONFIG)
    except FileNotFoundError:
        return
    except safefs.UnsafePath as e:
        _warn(name, f"{e}; the manager cannot use it")
        return
    with repo:
        uid = repo.stat().st_uid
        if uid == manager.base:
            return
        if uid != os.geteuid():
            _warn(
                name,
                f"{repo.label} is owned by uid {uid}, not the manager's {manager.base}: left as "
                f"it is, and the manager cannot write it (chown -R {manager.base}:"
                f"{manager.base} it if it is {name}'s repo)",
            )
            return
        give_tree(repo, manager, f"{name}'s proposed repo", name)


# the agents dir ---------------------------------------------------------------------------


@contextlib.contextmanager
def agent_entry(paths: Paths, name: str, group: int | None = None) -> Iterator[safefs.Dir]:
    """`agents/<name>`, made if missing; anything but a real directory there is refused.
    With `group` (the manager's gid), it and `agents/` are that group's to read."""
    name = validate_agent_name(name)
    with (
        safefs.root(paths.state_dir) as root,
        root.subdir(AGENTS, create=AGENTS_MODE) as agents,
        agents.subdir(name, create=AGENT_DIR_MODE) as d,
    ):
        if group is not None:
            agents.chown(-1, group)
            d.chown(-1, group)
        yield d


def install_proposed(
    paths: Paths,
    name: str,
    build: Callable[[Path], str],
    *,
    if_missing: bool,
    manager: IdRange | None = None,
) -> str | None:
    """Give `name` a proposed repo built by `build(dir)` (returns the commit) in a private dir,
    given to the manager's container (`manager`, under a user namespace), then renamed into
    `agents/<name>/config`; nothing is written where an agent could reach before the finished
    repo appears.

    If something is already there: with `if_missing` a real directory is kept as it is
    (None), anything else is refused; without it any entry is refused."""
    group = manager.base if manager is not None else None
    with agent_entry(paths, name, group) as entry:
        _check_free(entry, name, if_missing)
        if entry.lstat(CONFIG) is not None:
            return None
        with private_dir(paths) as tmp, safefs.root(tmp) as built:
            sha = build(tmp / CONFIG)
            if manager is not None:
                with built.subdir(CONFIG) as repo:
                    repo.chown_tree(lambda st: manager.root)
            if entry.lstat(CONFIG) is not None:
                raise AlreadyProposed(_already(name))
            try:
                built.rename(CONFIG, entry, CONFIG)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise AlreadyProposed(_already(name)) from None
                if e.errno == errno.EXDEV:
                    raise Refusal(
                        f"{paths.private_tmp} and {paths.agents_dir} are on different "
                        "filesystems: keep them on one so a new repo can be renamed into place",
                        code=Code.UNAVAILABLE,
                    ) from None
                raise
        return sha


def _already(name: str) -> str:
    return f"{name} already has a proposed config repo: edit and commit it"


def _check_free(entry: safefs.Dir, name: str, if_missing: bool) -> None:
    st = entry.lstat(CONFIG)
    if st is None:
        return
    if not if_missing:
        raise AlreadyProposed(_already(name))
    if not stat.S_ISDIR(st.st_mode):
        raise safefs.unexpected(entry.path(CONFIG), st.st_mode, "directory")


# purge --------------------------------------------------------------------------------------


def purge(paths: Paths, name: str) -> None:
    """Remove `agents/<name>` and `agent-state/<name>`: links are removed, never followed,
    so a link an agent planted there (or in place of either) leaves its target untouched."""
    name = validate_agent_name(name)
    with safefs.root(paths.state_dir) as root:
        for parent in (AGENTS, AGENT_STATE):
            try:
                d = root.subdir(parent)
            except FileNotFoundError:
                continue
            with d:
                d.remove_tree(name)


# the agent's socket dir ---------------------------------------------------------------------


def clear_agent_socket(paths: Paths, name: str) -> None:
    """Remove whatever is at the agent's socket path before it is bound again: the socket dir
    is the agent's /run/hive, so a link, file or directory there is the agent's doing (no
    other process serves an agent's socket). Never followed, never probed."""
    socket_path = paths.agent_socket(name)
    with (
        safefs.root(paths.agents_socket_root) as root,
        root.subdir(socket_path.parent.name) as d,
    ):
        d.remove_tree(socket_path.name)


# private scratch dirs ---------------------------------------------------------------------


@contextlib.contextmanager
def private_dir(paths: Paths) -> Iterator[Path]:
    """A fresh root-only directory on the state dir's filesystem, removed afterwards."""
    with safefs.root(paths.state_dir) as root, _owned_private(root, PRIVATE_TMP, "scratch dir"):
        pass
    path = Path(tempfile.mkdtemp(dir=paths.private_tmp))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clear_private_tmp(paths: Paths) -> None:
    """Remove what a killed coordinator left in its scratch dir."""
    with (
        safefs.root(paths.state_dir) as root,
        _owned_private(root, PRIVATE_TMP, "scratch dir") as d,
    ):
        for entry in d.names():
            d.remove_tree(entry)


# the move out of agents/ --------------------------------------------------------------------


def migrate_legacy_state(paths: Paths) -> list[str]:
    """Move every `agents/<name>/state` directory to `agent-state/<name>`, once per hive.

    Only real directories are moved (renameat between fds, nothing followed); a link or
    special file there is logged and left alone. After the first run a marker stops it, so
    a directory the manager plants later under `agents/` never becomes an agent's state."""
    moved: list[str] = []
    with (
        safefs.root(paths.state_dir) as root,
        _owned_private(root, AGENT_STATE, "the agents' state root") as parent,
    ):
        if parent.lstat(MIGRATED) is not None:
            return moved
        try:
            agents = root.subdir(AGENTS)
        except FileNotFoundError:
            agents = None
        if agents is not None:
            with agents:
                for name in sorted(agents.names()):
                    if _migrate_one(agents, parent, name):
                        moved.append(name)
        parent.write_replace(MIGRATED, b"state dirs moved out of agents/ (docs/persistence.md)\n")
    return moved


def _warn(name: str, text: str) -> None:
    hlog.log(text, kind="lifecycle", agent=name, priority=hlog.WARNING)


def _migrate_one(agents: safefs.Dir, parent: safefs.Dir, name: str) -> bool:
    try:
        validate_agent_name(name)
    except InvalidName:
        return False
    try:
        entry = agents.subdir(name)
    except FileNotFoundError:
        return False
    except safefs.UnsafePath as e:
        _warn(name, f"state of {name} not moved: {e}")
        return False
    with entry:
        st = entry.lstat(LEGACY_STATE)
        if st is None:
            return False
        if not stat.S_ISDIR(st.st_mode):
            why = safefs.unexpected(entry.path(LEGACY_STATE), st.st_mode, "directory")
            _warn(name, f"state of {name} not moved: {why}")
            return False
        if parent.lstat(name) is not None:
            _warn(name, f"{entry.path(LEGACY_STATE)} left in place: {name} has a state dir")
            return False
        try:
            entry.rename(LEGACY_STATE, parent, name)
        except OSError as e:
            _warn(
                name,
                f"could not move {entry.path(LEGACY_STATE)} to {parent.path(name)} "
                f"({e.strerror}): move it by hand while the hive is stopped",
            )
            return False
    moved = parent.lstat(name)
    if moved is None or not stat.S_ISDIR(moved.st_mode):  # swapped between the check and the move
        parent.unlink(name)
        _warn(name, f"state of {name} not moved: it was replaced while being moved")
        return False
    hlog.log(f"moved {name}'s state dir to {parent.path(name)}", kind="lifecycle", agent=name)
    return True
