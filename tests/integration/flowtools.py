"""Helpers for flow tests: commit to a proposed repo as the manager would, read hm1nd's inbox."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import git

from tests.hivetest import Hive


def commit_file(
    repo_dir: Path, rel: str, data: bytes | None, message: str, *, link: str | None = None
) -> str:
    """Write (or symlink, or delete with data=None) a file in a proposed repo and commit it."""
    repo = git.Repo(repo_dir)
    target = repo_dir / rel
    if target.is_symlink() or target.is_file():
        target.unlink()
    if link is not None:
        os.symlink(link, target)
        repo.index.add([rel])
    elif data is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        repo.index.add([rel])
    else:
        repo.index.remove([rel])
    return str(repo.index.commit(message).hexsha)


def config_text(extra: str = "") -> bytes:
    return (f'system_prompt = "you test things"\npackages = []\n{extra}').encode()


def manager_events(hive: Hive) -> list[dict[str, Any]]:
    """Drain hm1nd's inbox: the helper events (bodies parsed), in order."""
    out = []
    with hive.manager() as m:
        while (msg := m.call("recv", wait_seconds=0)["message"]) is not None:
            assert msg["sender"] == "system"
            out.append(json.loads(msg["body"]))
    return out


def wait_for_event(hive: Hive, event: str, timeout: float = 20) -> dict[str, Any]:
    """Block on hm1nd's socket (woken by the broker) until an event of this kind arrives."""
    deadline = time.monotonic() + timeout
    with hive.manager() as m:
        while (left := deadline - time.monotonic()) > 0:
            msg = m.call("recv", wait_seconds=left)["message"]
            if msg is None:
                break
            body = json.loads(msg["body"])
            if body["event"] == event:
                return dict(body)
    raise AssertionError(f"no {event} event within {timeout}s")


def harness_pid(hive: Hive, name: str) -> int:
    return int((hive.paths.runtime_dir / "process" / f"{name}.pid").read_text())


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )
