"""The two git repos of every agent: the proposed repo (manager-written) and the applied repo.

The proposed repo gets one initial commit from the coordinator, made in a private dir, and is
never written by it again; reading it is `proposed`'s job (a private copy, never gitpython on
the manager's files). The applied repo is the coordinator's alone.
"""

from __future__ import annotations

import difflib
import io
import os
import warnings
from pathlib import Path

import git
from git.index.typ import BaseIndexEntry
from gitdb.base import IStream

from ..hive.agentconfig import CONFIG_FILE
from ..hive.protocol import Refusal
from ..hive.vocab import Code

AUTHOR = git.Actor("hive-c0re", "hive-c0re@localhost")
FILE_MODE = 0o100644


def _open(path: Path) -> git.Repo:
    """The repo at `path`, its objects read in this process (gitdb), not by a `git cat-file`
    child per repo object: a burst of spawns would start hundreds of them.

    GitPython warns that gitdb is deprecated as its backend; its concern is objects from
    repos one does not control. These are the coordinator's own (applied repos, and a
    proposed repo at the moment it creates it); what an agent wrote is read from a private
    copy by `proposed`, never here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "GitDB is deprecated", DeprecationWarning)
        return git.Repo(path, odbt=git.GitDB)


def _init(path: Path) -> git.Repo:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "GitDB is deprecated", DeprecationWarning)
        return git.Repo.init(path, initial_branch="main", odbt=git.GitDB)


class RepoError(Refusal):
    """A repo, commit or file the coordinator cannot use; the message says which and why."""

    code = Code.INVALID


def _commit(repo: git.Repo, files: dict[str, bytes], message: str) -> str:
    """Write `files` into the work tree and commit them. Safe on several threads at once:
    the blobs are stored and staged as index entries, never added by path, because
    gitpython adds a path by changing the whole process's working directory."""
    work = Path(repo.working_tree_dir or ".")
    entries = []
    for rel, data in files.items():
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        blob = repo.odb.store(IStream(git.Blob.type, len(data), io.BytesIO(data)))
        entries.append(BaseIndexEntry((FILE_MODE, blob.binsha, 0, rel)))
    repo.index.add(entries)
    commit = repo.index.commit(message, author=AUTHOR, committer=AUTHOR)
    return str(commit.hexsha)


# proposed ---------------------------------------------------------------------------------


def build_proposed(path: Path, config_text: str, agent: str) -> str:
    """Make a new proposed repo at `path` (a fresh dir only the coordinator can reach; see
    `agentfiles.install_proposed`) with its initial commit; returns that commit's sha.
    Reading a proposed repo is `proposed`'s, never gitpython's on the manager's files."""
    path.mkdir(mode=0o750)
    repo = _init(path)  # no identity here: each container has its own
    return _commit(repo, {CONFIG_FILE: config_text.encode()}, f"initial config for {agent}")


# applied ----------------------------------------------------------------------------------


def applied_config(path: Path) -> bytes | None:
    """The config file as last applied, or None before the first apply."""
    try:
        return (path / CONFIG_FILE).read_bytes()
    except FileNotFoundError:
        return None


def applied_head(path: Path) -> str | None:
    if not (path / ".git").is_dir():
        return None
    try:
        return str(_open(path).head.commit.hexsha)
    except ValueError:
        return None


def last_applied_message(path: Path) -> str:
    if applied_head(path) is None:
        return ""
    return str(_open(path).head.commit.message)


def tracked(path: Path) -> set[str]:
    """The files the applied repo's index holds (none before the first apply)."""
    if not (path / ".git").is_dir():
        return set()
    return {str(p) for p, _stage in _open(path).index.entries}


def apply(path: Path, files: dict[str, bytes], message: str) -> str:
    """Make the applied repo (created on first use) hold exactly `files` — the config and
    what is generated from it now; a file no longer generated is removed — and commit."""
    if (path / ".git").is_dir():
        repo = _open(path)
    else:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o750)
        repo = _init(path)
    gone = sorted(tracked(path) - set(files))
    if gone:
        repo.index.remove(gone, working_tree=True)
    return _commit(repo, files, message)


def share_applied(path: Path) -> None:
    """Let the container read its applied config through its read-only bind when its root is
    an unprivileged uid: the repo's top dir and its files readable by all (`applied/` above
    is 0750 root, so no host user gets this far); `.git` stays the coordinator's."""
    os.chmod(path, 0o755)
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            os.chmod(entry.path, 0o644)


def diff(old: bytes | None, new: bytes, agent: str, sha: str | None, author: str = "") -> str:
    """A unified diff of the config file from what is applied to what would be; the new
    side names the commit and, when known, who authored it."""
    before = (old or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    after = new.decode("utf-8", errors="replace").splitlines(keepends=True)
    label = f"proposed/{agent}/{CONFIG_FILE}" + (f" @ {sha[:12]}" if sha else "")
    label += f" by {author}" if author else ""
    lines = difflib.unified_diff(
        before,
        after,
        fromfile=f"applied/{agent}/{CONFIG_FILE}" if old is not None else "/dev/null",
        tofile=label,
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
