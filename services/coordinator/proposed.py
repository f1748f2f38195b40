"""Reading a proposed repo (the manager's to write) without trusting anything in it.

What git needs — HEAD, refs/, packed-refs, loose objects and packs — is copied through
`safefs` (regular files and directories only, within a file and byte budget) into a private
root-only dir; refs are resolved here in Python and objects read from the copy with gitdb.
No git library ever opens a file in the manager's repo, and nothing reads its config,
alternates or hooks. Reads run on their own threads under a timeout: one that overruns is
reported as a refusal and abandoned, never waited for. Refusals never quote file contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from git.objects.fun import tree_entries_from_data
from gitdb import GitDB
from gitdb.exc import AmbiguousObjectName, BadObject
from gitdb.util import mman

from ..hive import log as hlog
from ..hive import safefs
from ..hive.agentconfig import CONFIG_FILE, MAX_CONFIG_BYTES
from ..hive.paths import Paths
from ..hive.protocol import Refusal
from ..hive.vocab import Code
from . import agentfiles
from .repos import RepoError

T = TypeVar("T")
MiB = 1024 * 1024

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 64 * MiB
DEFAULT_MAX_FILES = 20_000
MAX_REF_BYTES = 4096
MAX_OBJECT_BYTES = 4 * MiB
"""Largest commit, tree or tag object read (checked from its header before it is inflated)."""
MAX_REF_DEPTH = 16
MAX_PEEL = 8

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_SHORT = re.compile(r"[0-9a-fA-F]{4,39}")
_SYMREF = re.compile(r"ref: (refs/[A-Za-z0-9._/-]{1,200})")
_LOOSE_DIR = re.compile(r"[0-9a-f]{2}")
_LOOSE = re.compile(r"[0-9a-f]{38}")
_PACK = re.compile(r"pack-[0-9a-f]{40}\.(?:pack|idx)")
_TREE = re.compile(rb"tree ([0-9a-f]{40})\n")
_TAG_OBJECT = re.compile(rb"object ([0-9a-f]{40})\n")
_AUTHOR = re.compile(rb"^author (.{1,400}?) \d+ [+-]\d{4}$", re.MULTILINE)
DWIM = ("{}", "refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}", "refs/remotes/{}/HEAD")
"""Where a short ref name is looked for, in git's order (gitrevisions(7))."""

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="proposed-read")
"""Reads of proposed repos have their own threads: a slow one cannot starve the backends."""


@dataclass(frozen=True)
class ReadLimits:
    """How much of a proposed repo the coordinator copies, and for how long it waits."""

    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    max_files: int = DEFAULT_MAX_FILES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReadLimits:
        e = os.environ if env is None else env
        try:
            limits = cls(
                timeout=float(e.get("HIVE_REPO_READ_TIMEOUT") or DEFAULT_TIMEOUT),
                max_bytes=int(e.get("HIVE_REPO_READ_MAX_BYTES") or DEFAULT_MAX_BYTES),
                max_files=int(e.get("HIVE_REPO_READ_MAX_FILES") or DEFAULT_MAX_FILES),
            )
        except ValueError:
            limits = cls(timeout=0)
        if limits.timeout <= 0 or limits.max_bytes <= 0 or limits.max_files <= 0:
            raise ValueError(
                "HIVE_REPO_READ_TIMEOUT (seconds), HIVE_REPO_READ_MAX_BYTES and "
                "HIVE_REPO_READ_MAX_FILES must be positive numbers: fix them in hive.env"
            )
        return limits


@dataclass(frozen=True)
class ConfigAtCommit:
    sha: str
    blob: bytes
    author: str = ""
    """`Name <email>` of the commit's author, as committed (agent-written: shown, escaped)."""


class NoRepo(RepoError):
    """The agent has no proposed repo (as opposed to one that is refused)."""

    code = Code.NOT_FOUND


class _Abandoned(Exception):
    """The caller stopped waiting: stop copying."""


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


def _parse_packed(data: bytes) -> dict[str, str]:
    refs: dict[str, str] = {}
    for line in data.decode("ascii", errors="replace").splitlines():
        if line.startswith(("#", "^")):
            continue
        sha, _, name = line.partition(" ")
        if _HEX40.fullmatch(sha) and name:
            refs.setdefault(name, sha.lower())
    return refs


class _Reader:
    """One read of one proposed repo. Refs are copied into memory, packs copied whole, loose
    objects one by one as they are needed; all through safefs and within the budget, into a
    private dir that gitdb then reads."""

    def __init__(
        self, agent: str, git_dir: safefs.Dir, dest: Path, limits: ReadLimits, ev: threading.Event
    ) -> None:
        self.agent = agent
        self.git_dir = git_dir
        self.limits = limits
        self.abandoned = ev
        self.refs: dict[str, bytes] = {}
        self.packed: dict[str, str] = {}
        self.files = 0
        self.bytes = 0
        self.objects = dest / "objects"
        self.source: safefs.Dir | None = None
        self.odb: GitDB | None = None
        self.had_packs = False

    # copying ---------------------------------------------------------------------------------
    def _count(self, files: int, size: int) -> None:
        if self.abandoned.is_set():
            raise _Abandoned
        self.files += files
        self.bytes += size
        if self.files > self.limits.max_files:
            raise RepoError(
                f"{self.agent}'s proposed repo has more than {self.limits.max_files} files in "
                ".git: pack it (git gc) and try again"
            )
        if self.bytes > self.limits.max_bytes:
            raise RepoError(
                f"{self.agent}'s proposed repo holds more than {_size(self.limits.max_bytes)} "
                "in .git: prune it (git gc --prune=now) and try again"
            )

    def _read_ref(self, d: safefs.Dir, name: str, limit: int = MAX_REF_BYTES) -> bytes | None:
        try:
            data = d.read_bytes(name, limit)
        except FileNotFoundError:
            return None
        except safefs.TooLarge:
            if limit != MAX_REF_BYTES:  # packed-refs, limited by what is left of the budget
                self._count(0, limit + 1)
            raise RepoError(
                f"{d.path(name)} is larger than {limit} bytes, too large for a ref: "
                "remove it and try again"
            ) from None
        self._count(1, len(data))
        return data

    def _refs(self, d: safefs.Dir, prefix: str, depth: int) -> None:
        if depth > MAX_REF_DEPTH:
            raise RepoError(f"{d.label} is nested too deep for refs: remove it and try again")
        for name in sorted(d.names()):
            st = d.lstat(name)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                self._count(1, 0)
                with d.subdir(name) as sub:
                    self._refs(sub, f"{prefix}/{name}", depth + 1)
                continue
            data = self._read_ref(d, name)  # refuses links and special files, naming them
            if data is not None:
                self.refs[f"{prefix}/{name}"] = data

    def _file(self, d: safefs.Dir, name: str, dest: Path) -> bool:
        try:
            src, _ = d.open_regular(name)
        except FileNotFoundError:
            return False
        self._count(1, 0)
        try:
            out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                while chunk := os.read(src, safefs.CHUNK):
                    self._count(0, len(chunk))
                    os.write(out, chunk)
            finally:
                os.close(out)
        finally:
            os.close(src)
        return True

    def open(self) -> None:
        head = self._read_ref(self.git_dir, "HEAD")
        if head is None:
            raise RepoError(f"{self.agent}'s proposed config repo has no HEAD: re-create it")
        self.refs["HEAD"] = head
        room = max(self.limits.max_bytes - self.bytes, 0)
        packed = self._read_ref(self.git_dir, "packed-refs", room)
        if packed is not None:
            self.packed = _parse_packed(packed)
        try:
            refs = self.git_dir.subdir("refs")
        except FileNotFoundError:
            refs = None
        if refs is not None:
            with refs:
                self._refs(refs, "refs", 0)
        try:
            self.source = self.git_dir.subdir("objects")
        except FileNotFoundError:
            raise RepoError(
                f"{self.agent}'s proposed config repo has no objects dir: re-create it"
            ) from None
        (self.objects / "pack").mkdir(mode=0o700, parents=True)
        try:
            packs = self.source.subdir("pack")
        except FileNotFoundError:
            packs = None
        if packs is not None:
            with packs:
                for name in sorted(packs.names()):
                    if _PACK.fullmatch(name):
                        self.had_packs |= self._file(packs, name, self.objects / "pack" / name)
        # nothing else under objects/ is ever opened: not info/alternates, not tmp files
        self.odb = GitDB(str(self.objects))

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
        self.odb = None
        if self.had_packs:  # gitdb's pack maps sit in reference cycles: free them now
            gc.collect()
        mman.collect()

    def _loose_dir(self, sha: str) -> safefs.Dir | None:
        assert self.source is not None
        try:
            return self.source.subdir(sha[:2])
        except FileNotFoundError:
            return None

    def fetch(self, sha: str) -> None:
        """Copy the loose object `sha` (if the repo has one) before gitdb looks for it."""
        dest = self.objects / sha[:2] / sha[2:]
        if dest.exists():
            return
        d = self._loose_dir(sha)
        if d is None:
            return
        with d:
            dest.parent.mkdir(mode=0o700, exist_ok=True)
            self._file(d, sha[2:], dest)

    def fetch_prefix(self, prefix: str) -> None:
        """Copy the loose objects whose sha starts with `prefix` (at least 4 hex digits)."""
        d = self._loose_dir(prefix)
        if d is None:
            return
        with d:
            (self.objects / prefix[:2]).mkdir(mode=0o700, exist_ok=True)
            for name in d.names():
                if _LOOSE.fullmatch(name) and name.startswith(prefix[2:]):
                    dest = self.objects / prefix[:2] / name
                    if not dest.exists():
                        self._file(d, name, dest)

    # refs and objects ------------------------------------------------------------------------
    def _ref_value(self, name: str) -> str | None:
        """The sha a ref names (symbolic refs followed within the copy), or None."""
        for _ in range(MAX_PEEL):
            raw = self.refs.get(name)
            if raw is None:
                return self.packed.get(name)
            text = raw.decode("ascii", errors="replace").strip()
            symbolic = _SYMREF.fullmatch(text)
            if symbolic is not None and ".." not in symbolic.group(1):
                name = symbolic.group(1)
                continue
            return text.lower() if _HEX40.fullmatch(text) else None
        return None

    def resolve(self, ref: str) -> str | None:
        """The full sha `ref` names, in git's order (gitrevisions(7)), or None."""
        assert self.odb is not None
        if _HEX40.fullmatch(ref):
            return ref.lower()
        for pattern in DWIM:
            sha = self._ref_value(pattern.format(ref))
            if sha is not None:
                return sha
        if _SHORT.fullmatch(ref):
            self.fetch_prefix(ref.lower())
            try:
                return bytes(self.odb.partial_to_complete_sha_hex(ref.lower())).hex()
            except AmbiguousObjectName:
                raise RepoError(
                    f"commit {ref!r} is ambiguous in {self.agent}'s proposed repo: give more digits"
                ) from None
            except BadObject:
                return None
        return None

    def exists(self, sha: str) -> bool:
        assert self.odb is not None
        self.fetch(sha)
        return bool(self.odb.has_object(bytes.fromhex(sha)))

    def obj(self, sha: str, limit: int = MAX_OBJECT_BYTES) -> tuple[str, bytes]:
        """An object's type and contents; its header is checked before it is inflated."""
        assert self.odb is not None
        self.fetch(sha)
        info = self.odb.info(bytes.fromhex(sha))
        kind = info.type.decode("ascii", errors="replace")
        if info.size > limit:
            raise RepoError(
                f"the {kind} {sha[:12]} in {self.agent}'s proposed repo is {info.size} bytes, "
                f"over the {limit // 1024} KiB the hive reads: commit something smaller"
            )
        return kind, bytes(self.odb.stream(bytes.fromhex(sha)).read())

    def commit(self, sha: str) -> tuple[str, bytes]:
        """Peel tags down to the commit: its sha and its raw object."""
        for _ in range(MAX_PEEL):
            kind, data = self.obj(sha)
            if kind == "commit":
                return sha, data
            if kind != "tag" or (m := _TAG_OBJECT.match(data)) is None:
                raise RepoError(f"{sha[:12]} in {self.agent}'s proposed repo is not a commit")
            sha = m.group(1).decode()
        raise RepoError(f"{sha[:12]} in {self.agent}'s proposed repo is a chain of tags too long")

    def config(self, sha: str) -> ConfigAtCommit:
        sha, commit = self.commit(sha)
        tree = _TREE.match(commit)
        kind, data = self.obj(tree.group(1).decode()) if tree else ("", b"")
        if kind != "tree":
            raise RepoError(f"commit {sha[:12]} in {self.agent}'s proposed repo has no tree")
        entry = next((e for e in tree_entries_from_data(data) if e[2] == CONFIG_FILE), None)
        if entry is None:
            raise RepoError(f"commit {sha[:12]} has no {CONFIG_FILE}: commit the config file")
        blob_sha, mode = bytes(entry[0]).hex(), entry[1]
        if stat.S_ISLNK(mode):
            raise RepoError(f"{CONFIG_FILE} at {sha[:12]} is a symlink: commit a regular file")
        if not stat.S_ISREG(mode):
            raise RepoError(f"{CONFIG_FILE} at {sha[:12]} is not a regular file")
        assert self.odb is not None
        self.fetch(blob_sha)
        info = self.odb.info(bytes.fromhex(blob_sha))
        if info.type != b"blob":
            raise RepoError(f"{CONFIG_FILE} at {sha[:12]} is not a regular file")
        if info.size > MAX_CONFIG_BYTES:
            raise RepoError(
                f"{CONFIG_FILE} at {sha[:12]} is {info.size} bytes, "
                f"over the {MAX_CONFIG_BYTES // 1024} KiB limit"
            )
        _, blob = self.obj(blob_sha, MAX_CONFIG_BYTES)
        return ConfigAtCommit(sha=sha, blob=blob, author=author_of(commit))


def author_of(commit: bytes) -> str:
    """The author line of a raw commit, printable and short (the manager wrote it)."""
    m = _AUTHOR.search(commit.split(b"\n\n", 1)[0])
    if m is None:
        return ""
    text = m.group(1).decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


@contextlib.contextmanager
def _reader(
    paths: Paths, agent: str, dest: Path, limits: ReadLimits, ev: threading.Event
) -> Iterator[_Reader]:
    missing = NoRepo(f"{agent} has no proposed config repo: call request_init_config first")
    with safefs.root(paths.state_dir) as root:
        try:
            repo = root.walk(agentfiles.AGENTS, agent, agentfiles.CONFIG)
        except FileNotFoundError:
            raise missing from None
        with repo:
            try:
                git_dir = repo.subdir(".git")
            except FileNotFoundError:
                raise missing from None
    with git_dir:
        reader = _Reader(agent, git_dir, dest, limits, ev)
        try:
            reader.open()
            yield reader
        finally:
            reader.close()


def _read(
    paths: Paths,
    agent: str,
    ref: str | None,
    limits: ReadLimits,
    abandoned: threading.Event,
) -> ConfigAtCommit | None:
    """The config at `ref` (None: at HEAD, and None back if there is no repo or no commit)."""
    with agentfiles.private_dir(paths) as tmp:
        try:
            with _reader(paths, agent, tmp, limits, abandoned) as r:
                sha = r.resolve(ref or "HEAD")
                if sha is None and ref is None:
                    return None  # a repo without a commit yet
                if sha is None or not r.exists(sha):
                    shown = ref or "HEAD"
                    raise RepoError(
                        f"commit {shown!r} does not exist in {agent}'s proposed repo",
                        code=Code.NOT_FOUND,
                    )
                return r.config(sha)
        except NoRepo:
            if ref is None:
                return None
            raise
        except (Refusal, _Abandoned):
            raise
        except Exception as e:  # a damaged object: its text may quote the repo, never shown
            hlog.log(
                f"reading {agent}'s proposed repo failed: {type(e).__name__}",
                kind="request_refused",
                agent=agent,
                priority=hlog.WARNING,
            )
            raise RepoError(
                f"{agent}'s proposed repo could not be read (damaged objects): "
                "run git fsck in it and try again"
            ) from None


# off the event loop ---------------------------------------------------------------------------


async def bounded(agent: str, limits: ReadLimits, fn: Callable[[threading.Event], T]) -> T:
    """Run `fn(abandoned)` on a reader thread; past the timeout, set `abandoned`, refuse, and
    leave the thread to finish (and clean up) on its own."""
    abandoned = threading.Event()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_POOL, fn, abandoned)

    def abandon() -> None:
        abandoned.set()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    try:
        done, _ = await asyncio.wait({future}, timeout=limits.timeout)
    except asyncio.CancelledError:  # the request went away: so does the read
        abandon()
        raise
    if not done:
        abandon()
        hlog.log(
            f"reading {agent}'s proposed repo overran {limits.timeout:g} s and was abandoned",
            kind="request_refused",
            agent=agent,
            priority=hlog.WARNING,
        )
        raise RepoError(
            f"reading {agent}'s proposed repo took longer than {limits.timeout:g} s: "
            "make it smaller (git gc --prune=now) and remove anything git did not make"
        )
    return future.result()


def check_ref(commit_ref: str) -> str:
    if not _REF.fullmatch(commit_ref) or ".." in commit_ref:
        raise RepoError(f"commit {commit_ref[:60]!r} is not a commit sha or branch name")
    return commit_ref


async def config_at(
    paths: Paths, agent: str, commit_ref: str, limits: ReadLimits
) -> ConfigAtCommit:
    """The exact bytes of the config file at `commit_ref`, after every check the design asks."""
    ref = check_ref(commit_ref)
    got = await bounded(agent, limits, lambda ev: _read(paths, agent, ref, limits, ev))
    assert got is not None
    return got


async def head_config(paths: Paths, agent: str, limits: ReadLimits) -> ConfigAtCommit | None:
    """The config at the proposed repo's HEAD; None if there is no repo or no commit yet."""
    return await bounded(agent, limits, lambda ev: _read(paths, agent, None, limits, ev))
