"""One owner per directory: a second coordinator or demo refuses, naming the first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hyperhive.hive.statelock import DirLock, Held, LockError
from hyperhive.sandbox import __main__ as demo


def test_a_second_owner_is_refused_with_the_first_named(tmp_path: Path) -> None:
    first = DirLock(tmp_path, "a coordinator", "stop it first")
    with first:
        with pytest.raises(Held) as refused:
            DirLock(tmp_path, "a coordinator", "stop it first").acquire()
        text = str(refused.value)
        assert text.startswith(f"a coordinator already runs on {tmp_path} (pid {os.getpid()} on ")
        assert text.endswith(": stop it first")
    with DirLock(tmp_path, "a coordinator", "stop it first"):  # released with its owner
        pass


def test_the_lock_file_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".lock").symlink_to(victim)
    with pytest.raises(LockError, match="cannot take the lock"):
        DirLock(tmp_path / "d", "a coordinator", "x").acquire()
    assert victim.read_text() == "keep\n"


def test_a_second_make_demo_refuses_before_booting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    held = DirLock(demo.REPO / ".demo", "a `make demo`", "test")
    try:
        held.acquire()
    except Held:
        held = None  # type: ignore[assignment]  # a real demo runs: it holds the lock
    try:
        assert demo.main([]) == 1
        assert "a `make demo` already runs on" in capsys.readouterr().err
    finally:
        if held is not None:
            held.release()
