"""Safe file access in trees an agent controls: its state dir, the agents dir, proposed repos.

It walks from a trusted directory fd with openat and O_NOFOLLOW, opens a file only after an
O_PATH open and fstat showed a regular file (then reopens that very inode), and refuses
symlinks, FIFOs, devices and sockets with one sentence naming the path. It must never follow
a symlink below its trusted root, open anything but a regular file or a directory, write
through an entry it did not just create, or remove the target of a link.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from .protocol import Refusal
from .vocab import Code

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1024 * 1024
MAX_DEPTH = 64
"""Deepest directory nesting a removal or a change of owner descends into."""
_AT_EMPTY_PATH = 0x1000
_libc = ctypes.CDLL(None, use_errno=True)
_uint, _int = ctypes.c_uint, ctypes.c_int
_libc.fchownat.argtypes = [_int, ctypes.c_char_p, _uint, _uint, _int]

Owner = Callable[[os.stat_result], "tuple[int, int] | None"]
"""Who an entry should belong to, `(uid, gid)`, from its stat; None leaves it as it is."""


class UnsafePath(Refusal):
    """An entry that is not what the hive expects there (a link, a special file, a wrong owner)."""

    code = Code.INVALID


class TooLarge(Refusal):
    """A file larger than the caller allows."""

    code = Code.INVALID


def kind(mode: int) -> str:
    """What an entry is, in the words of a refusal."""
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "regular file"
    return "special file"


def unexpected(path: str, mode: int, wanted: str) -> UnsafePath:
    """The refusal for `path` being something other than `wanted`."""
    return UnsafePath(
        f"{path} is a {kind(mode)}, not a {wanted}: remove it and try again "
        "(the hive never follows links or opens special files an agent controls)"
    )


def _join(label: str, name: str) -> str:
    return f"{label}/{name}" if label else name


class Dir:
    """An open directory in an agent-controlled tree and the path it is shown as in refusals.

    Every method takes a single entry name (never a path with '/'), resolved from this fd.
    """

    def __init__(self, fd: int, label: str) -> None:
        self.fd = fd
        self.label = label

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path(self, name: str) -> str:
        return _join(self.label, name)

    def _name(self, name: str) -> str:
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"{name!r} is not a single entry name")
        return name

    # looking -------------------------------------------------------------------------------
    def lstat(self, name: str) -> os.stat_result | None:
        """The entry itself (a link is not followed), or None if there is none."""
        try:
            return os.stat(self._name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        return os.listdir(self.fd)

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def require_owner(self, uid: int, what: str) -> None:
        """Refuse a directory not owned by `uid` (something else made or took it)."""
        st = self.stat()
        if st.st_uid != uid:
            raise UnsafePath(
                f"{what} {self.label} is owned by uid {st.st_uid}, not {uid}: "
                f"move it away and try again (the hive only uses directories it made)"
            )

    def chmod(self, mode: int) -> None:
        os.fchmod(self.fd, mode)

    # owners --------------------------------------------------------------------------------
    def chown(self, uid: int, gid: int) -> None:
        """Give this very directory (its fd, not a path) to `uid`:`gid` (-1 keeps one)."""
        os.fchown(self.fd, uid, gid)

    def chown_entry(self, name: str, owner: Owner) -> os.stat_result | None:
        """Give the entry `name` itself the owner `owner(stat)` names: it is pinned with an
        O_PATH open (never followed, never opened for reading) and that very inode is changed,
        so a link is changed itself and an entry swapped meanwhile is not touched. Device
        nodes are never given away. The stat it was judged by, or None if there was none."""
        name = self._name(name)
        try:
            pfd = os.open(name, _PATH, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(pfd)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                raise unexpected(self.path(name), st.st_mode, "file, link or directory")
            ids = owner(st)
            if ids is not None and ids != (st.st_uid, st.st_gid):
                _fchown_pinned(pfd, *ids)
        finally:
            os.close(pfd)
        return st

    def chown_tree(self, owner: Owner, _depth: int = 0) -> list[str]:
        """Give everything below this directory, then the directory itself, the owner
        `owner(stat)` names. Links are changed themselves, never followed; device nodes and
        entries `owner` leaves alone keep their owner and are returned (their paths), for the
        caller to report. Children go first: the directory changes last, so a run that was
        interrupted leaves it as it was and the next run finishes the job."""
        if _depth >= MAX_DEPTH:
            raise UnsafePath(
                f"{self.label} is nested more than {MAX_DEPTH} directories deep: "
                "change its owner by hand (chown -R)"
            )
        left: list[str] = []
        for entry in sorted(self.names()):
            st = self.lstat(entry)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                try:
                    sub = self.subdir(entry)
                except (UnsafePath, FileNotFoundError):  # swapped since the lstat
                    left.append(self.path(entry))
                    continue
                with sub:
                    left += sub.chown_tree(owner, _depth + 1)
                continue
            try:
                got = self.chown_entry(entry, owner)
            except UnsafePath:
                left.append(self.path(entry))
                continue
            if got is not None and owner(got) is None:
                left.append(self.path(entry))
        st = self.stat()
        ids = owner(st)
        if ids is None:
            left.append(self.label or ".")
        elif ids != (st.st_uid, st.st_gid):
            self.chown(*ids)
        return left

    # directories ---------------------------------------------------------------------------
    def subdir(self, name: str, *, create: int | None = None) -> Dir:
        """Open the directory `name` (made with mode `create` if missing and asked to).

        Raises FileNotFoundError if it is missing, `UnsafePath` if it is anything else."""
        name = self._name(name)
        if create is not None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, create, dir_fd=self.fd)
        try:
            fd = os.open(name, _DIR, dir_fd=self.fd)  # O_DIRECTORY: no open() of anything else
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            st = self.lstat(name)
            if st is None:
                raise FileNotFoundError(errno.ENOENT, "gone", self.path(name)) from None
            raise unexpected(self.path(name), st.st_mode, "directory") from None
        return Dir(fd, self.path(name))

    def walk(self, *names: str) -> Dir:
        """Open a directory several levels down, each level checked like `subdir`."""
        current = Dir(os.dup(self.fd), self.label)
        for name in names:
            try:
                nxt = current.subdir(name)
            finally:
                current.close()
            current = nxt
        return current

    # files ---------------------------------------------------------------------------------
    def open_regular(self, name: str) -> tuple[int, os.stat_result]:
        """A read-only fd of the regular file `name`, and its stat.

        The entry is first opened with O_PATH (no open() of the file itself, so no FIFO can
        block and no device can act) and checked; then that very inode is reopened."""
        name = self._name(name)
        pfd = os.open(name, _PATH, dir_fd=self.fd)
        try:
            st = os.fstat(pfd)
            if not stat.S_ISREG(st.st_mode):
                raise unexpected(self.path(name), st.st_mode, "regular file")
            try:
                fd = os.open(f"/proc/self/fd/{pfd}", _REOPEN)
            except FileNotFoundError:
                raise RuntimeError("/proc is not mounted: safefs reopens files there") from None
        finally:
            os.close(pfd)
        return fd, st

    def read_bytes(self, name: str, limit: int) -> bytes:
        """The contents of the regular file `name`; `TooLarge` past `limit` bytes."""
        fd, _ = self.open_regular(name)
        try:
            parts: list[bytes] = []
            size = 0
            while chunk := os.read(fd, min(CHUNK, limit + 1 - size)):
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"{self.path(name)} is larger than {limit} bytes")
            return b"".join(parts)
        finally:
            os.close(fd)

    def write_replace(
        self, name: str, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None
    ) -> None:
        """Replace `name` with a new file holding `data` (owned by `owner`, uid and gid, if
        given): a fresh temp file (O_EXCL, never an existing entry) renamed over it, so
        whatever was at `name` is replaced, not written."""
        name = self._name(name)
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, _CREATE, mode, dir_fd=self.fd)
        try:
            try:
                if owner is not None:
                    os.fchown(fd, *owner)
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            st = self.lstat(name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise unexpected(self.path(name), st.st_mode, "regular file") from None
            raise

    def unlink(self, name: str) -> bool:
        """Remove the entry `name` (a link itself, never its target); False if there was none."""
        name = self._name(name)
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            raise unexpected(self.path(name), stat.S_IFDIR, "regular file") from None
        return True

    def rename(self, name: str, to: Dir, new_name: str) -> None:
        os.rename(self._name(name), to._name(new_name), src_dir_fd=self.fd, dst_dir_fd=to.fd)

    def remove_tree(self, name: str, _depth: int = 0) -> None:
        """Remove `name` and everything under it; links are removed, never followed."""
        name = self._name(name)
        st = self.lstat(name)
        if st is None:
            return
        if not stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.fd)
            return
        if _depth >= MAX_DEPTH:
            raise UnsafePath(
                f"{self.path(name)} is nested more than {MAX_DEPTH} directories deep: "
                "remove it by hand"
            )
        try:
            sub = self.subdir(name)
        except UnsafePath:  # swapped for something else since the lstat: remove that entry
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.fd)
            return
        except FileNotFoundError:
            return
        with sub:
            for entry in sub.names():
                sub.remove_tree(entry, _depth + 1)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(name, dir_fd=self.fd)


def _fchown_pinned(pfd: int, uid: int, gid: int) -> None:
    """fchownat(pfd, "", AT_EMPTY_PATH): the inode an O_PATH fd holds, whatever it is (a link
    included), with no name looked up again."""
    if _libc.fchownat(pfd, b"", uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, _AT_EMPTY_PATH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def root(path: Path, label: str = "") -> Iterator[Dir]:
    """Open a trusted directory (one the operator configured, e.g. the hive's state dir).

    Only this open may follow links in `path`: everything below is walked with O_NOFOLLOW."""
    d = Dir(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), label)
    try:
        yield d
    finally:
        d.close()
