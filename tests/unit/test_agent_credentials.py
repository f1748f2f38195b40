"""Where the API key comes from, and the wait for one (woken by inotify, not polling)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hyperhive.agent.credentials import KEY_FILE, find_key, wait_for_key
from hyperhive.agent.dirwatch import DirWatch


def test_the_key_file_wins_over_the_environment(tmp_path: Path) -> None:
    assert find_key(tmp_path, None) is None
    assert find_key(tmp_path, "env-key") == "env-key"
    (tmp_path / KEY_FILE).write_text("  file-key\n")
    assert find_key(tmp_path, "env-key") == "file-key"
    (tmp_path / KEY_FILE).write_text("\n")
    assert find_key(tmp_path, "env-key") == "env-key"


def test_waiting_for_a_key_wakes_when_the_file_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    told: list[str] = []
    woke: list[bool] = []  # each wait's answer: True for an inotify event, False for the recheck
    real_wait = DirWatch.wait

    def wait(watch: DirWatch, timeout: float) -> bool:
        if not woke:  # the wait is armed and about to block: now the key appears
            threading.Timer(0.2, lambda: (tmp_path / KEY_FILE).write_text("new-key")).start()
        got = real_wait(watch, timeout)
        woke.append(got)
        return got

    monkeypatch.setattr(DirWatch, "wait", wait)
    key = wait_for_key(
        tmp_path,
        None,
        recheck=60,  # the safety net would take a minute: inotify must wake it
        stop=threading.Event(),
        on_missing=lambda: told.append("needs login"),
    )
    assert key == "new-key" and told == ["needs login"]
    assert woke and all(woke), woke  # woken by the file each time, never by the recheck


def test_a_refused_key_is_not_taken_again(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    assert (
        wait_for_key(tmp_path, "bad", reject="bad", recheck=1, stop=stop, on_missing=lambda: None)
        is None
    )
    assert (
        wait_for_key(tmp_path, "good", reject="bad", recheck=1, stop=stop, on_missing=lambda: None)
        == "good"
    )


def test_a_dirwatch_times_out_quietly(tmp_path: Path) -> None:
    with DirWatch(tmp_path) as watch:
        assert watch.fd is not None
        assert watch.wait(0.05) is False
        (tmp_path / "x").write_text("y")
        assert watch.wait(5) is True
