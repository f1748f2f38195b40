"""The coordinator speaks systemd: READY/STATUS/WATCHDOG, sockets passed by name, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

from hyperhive.hive.client import HiveClient

from tests.hivetest import RunningHive


def test_ready_status_and_watchdog(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
        ns.bind(str(path))
        ns.settimeout(20)
        env.update(NOTIFY_SOCKET=str(path), WATCHDOG_USEC="200000")
        hive = RunningHive(env)
        try:
            states = [ns.recv(4096).decode()]
            while not states[-1].startswith("READY=1"):
                states.append(ns.recv(4096).decode())
            assert "STATUS=serving" in states[-1]
            deadline = time.monotonic() + 10
            while states.count("WATCHDOG=1") < 3 and time.monotonic() < deadline:
                states.append(ns.recv(4096).decode())
            assert states.count("WATCHDOG=1") >= 3
        finally:
            hive.proc.send_signal(signal.SIGTERM)
            for _ in range(50):
                msg = ns.recv(4096).decode()
                if msg.startswith("STOPPING=1"):
                    break
            else:
                raise AssertionError("no STOPPING=1")
            assert hive.stop() == 0


def test_socket_activation_by_name(env: dict[str, str]) -> None:
    runtime = Path(env["HIVE_RUNTIME_DIR"])
    (runtime / "manager").mkdir(parents=True)
    admin = socket.socket(socket.AF_UNIX)
    admin.bind(str(runtime / "host.sock"))
    admin.listen()
    manager = socket.socket(socket.AF_UNIX)
    manager.bind(str(runtime / "manager" / "hive.sock"))
    manager.listen()
    # Pass them in the opposite order of Sockets=: the coordinator must look them up by name.
    launcher = (
        "import os, sys\n"
        "os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4)\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2',"
        " LISTEN_FDNAMES='manager:admin')\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'hyperhive.coordinator'])\n"
    )
    hive = RunningHive(
        env,
        argv=[sys.executable, "-c", launcher, str(manager.fileno()), str(admin.fileno())],
        pass_fds=(manager.fileno(), admin.fileno()),
    )
    try:
        admin.close()
        manager.close()
        with HiveClient(runtime / "host.sock") as a:
            assert a.call("whoami")["role"] == "admin"
        with HiveClient(runtime / "manager" / "hive.sock") as m:
            assert m.call("whoami")["name"] == "hm1nd"
    finally:
        assert hive.stop() == 0
    # sockets systemd owns are not unlinked by the coordinator
    assert (runtime / "host.sock").exists()


def test_connections_queue_while_a_socket_activated_coordinator_restarts(
    env: dict[str, str],
) -> None:
    """The listening socket outlives the process (as with systemd): a client connecting in
    between is served by the next coordinator, not refused."""
    runtime = Path(env["HIVE_RUNTIME_DIR"])
    (runtime / "manager").mkdir(parents=True)
    manager = socket.socket(socket.AF_UNIX)
    manager.bind(str(runtime / "manager" / "hive.sock"))
    manager.listen(16)
    launcher = (
        "import os, sys\n"
        "os.dup2(int(sys.argv[1]), 3)\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='manager')\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'hyperhive.coordinator'])\n"
    )
    argv = [sys.executable, "-c", launcher, str(manager.fileno())]
    first = RunningHive(env, argv=argv, pass_fds=(manager.fileno(),))
    first.stop()
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(runtime / "manager" / "hive.sock"))  # queued by the kernel
    client.sendall(b'{"cmd": "whoami"}\n')
    second = RunningHive(env, argv=argv, pass_fds=(manager.fileno(),))
    try:
        client.settimeout(20)
        assert b'"name":"hm1nd"' in client.makefile("rb").readline()
    finally:
        client.close()
        manager.close()
        second.stop()
    assert os.path.exists(runtime / "manager" / "hive.sock")
