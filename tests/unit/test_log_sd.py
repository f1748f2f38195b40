"""The journald helper's fields and stderr fallback; sd_notify helpers in and out of systemd."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hyperhive.hive import log, sd


def test_message_ids_are_unique_128_bit_ids() -> None:
    ids = list(log.MESSAGE_IDS.values())
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_fields_are_upper_case_and_namespaced() -> None:
    f = log.fields_for("message_sent", "alice", {"sender": "bob", "approval": 3, "skip": None})
    assert f == {
        "HIVE_EVENT": "message_sent",
        "MESSAGE_ID": log.MESSAGE_IDS["message_sent"],
        "HIVE_AGENT": "alice",
        "HIVE_SENDER": "bob",
        "HIVE_APPROVAL": "3",
    }


def test_stderr_fallback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIVE_LOG", "stderr")
    log.log("two\nlines", kind="lifecycle", agent="alice", priority=log.WARNING)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "two\\nlines" in err and "HIVE_AGENT='alice'" in err and err.startswith("<4>")


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS"):
        monkeypatch.delenv(var, raising=False)
    assert sd.notify("READY=1") is False
    assert sd.watchdog_interval() is None
    assert sd.listen_fds_by_name() == {}


def test_notify_reaches_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        sd.ready("all good")
        assert s.recv(4096) == b"READY=1\nSTATUS=all good"


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sd.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sd.watchdog_interval() is None


def test_listen_fds_by_name_in_a_socket_activated_process(tmp_path: Path) -> None:
    a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    code = (
        "import os, sys\n"
        "os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4)\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2',"
        " LISTEN_FDNAMES='admin:manager')\n"
        "from hyperhive.hive import sd\n"
        "print(sorted(sd.listen_fds_by_name().items()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(a.fileno()), str(b.fileno())],
        pass_fds=(a.fileno(), b.fileno()),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    a.close()
    b.close()
    assert out.strip() == "[('admin', 3), ('manager', 4)]"
