"""The coordinator's listening sockets: from systemd by name, or bound with the design's modes.

Directories are 0751, the admin socket 0660 (group hive-admin where that group exists),
agent and manager sockets 0660. A live socket at a path is never stolen: binding refuses.
It also makes each agent's gateway socket dir before its container starts (the gateway
binds the socket in it), and rings the gateway's doorbell when the agents table changed.
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import stat
from pathlib import Path

from ..hive import doorbell
from ..hive.paths import Paths

DIR_MODE = 0o751
GATEWAY_DIR_MODE = 0o755
"""An agent's gateway dir: bound read-only into its container, traversed by its root."""
SOCKET_MODE = 0o660
ADMIN_GROUP = "hive-admin"


class SocketInUse(RuntimeError):
    """Another process already serves this socket path."""


def ensure_dir(path: Path, mode: int = DIR_MODE) -> None:
    """Create `path` (and parents) and set its mode; parents keep theirs if they exist."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)


def _clear_stale(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketInUse(f"{path} exists and is not a socket: move it away and start again")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a leftover from a crash
        return
    finally:
        probe.close()
    raise SocketInUse(
        f"another process is serving {path}: stop it first (is a coordinator running?)"
    )


def bind_unix(path: Path, *, mode: int = SOCKET_MODE, group: str | None = None) -> socket.socket:
    """Bind and listen on a unix stream socket at `path` with exactly `mode` from the start."""
    ensure_dir(path.parent)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    # no chmod by path: the umask gave the mode, and a path an agent can reach (its own
    # socket dir is its /run/hive) may be a link by now
    if group is not None:
        with contextlib.suppress(KeyError, PermissionError):
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def from_fd(fd: int) -> socket.socket:
    """Adopt a listening socket systemd passed us."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def bind_doorbell(path: Path) -> socket.socket:
    """The datagram socket other services ring after writing to SQLite."""
    ensure_dir(path.parent)
    return doorbell.bind(path, mode=SOCKET_MODE, group=ADMIN_GROUP)


def ensure_gateway_dir(paths: Paths, name: str) -> Path:
    """`name`'s gateway socket dir, made if missing and given to whoever owns the gateway's
    own dir (hive-gateway under systemd), so the gateway can bind its socket there. It must
    exist before the container starts: nspawn binds it."""
    root = paths.gateway_dir
    root.mkdir(parents=True, exist_ok=True)
    path = paths.gateway_socket_dir(name)
    try:
        os.mkdir(path, GATEWAY_DIR_MODE)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise SocketInUse(
                f"{path} is not a directory: remove it so {name}'s gateway socket can live there"
            ) from None
        return path
    os.chmod(path, GATEWAY_DIR_MODE)  # not the umask's (the coordinator's is 0007)
    owner = os.stat(root)
    with contextlib.suppress(PermissionError):
        os.chown(path, owner.st_uid, owner.st_gid)
    return path


def remove_gateway_dir(paths: Paths, name: str) -> None:
    """`name` is destroyed: its gateway dir goes, with whatever socket is in it (its
    container is gone; the gateway stops listening when it reads the agents table)."""
    path = paths.gateway_socket_dir(name)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(path):
            if not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(path)
