"""Entry point of hivectl / hive-c0re: parse, make one admin-socket call, print, exit 0/1/2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..hive.client import HiveClient, Refused, Unreachable
from ..hive.names import InvalidName, validate_agent_name
from ..hive.paths import Paths
from ..hive.platform import PACKAGE
from ..hive.protocol import ProtocolError
from ..hive.vocab import Code
from . import parser as cli
from .render import reply as render


def main(argv: list[str] | None = None) -> int:
    ns = cli.build().parse_args(argv)  # exits 2 on usage errors
    if ns.command == "serve":  # the coordinator is its own program; become it
        os.execv(sys.executable, [sys.executable, "-m", f"{PACKAGE}.coordinator"])
    if ns.command == "logs":  # the journal is read by journalctl itself
        try:
            validate_agent_name(ns.name)
        except InvalidName as e:
            print(f"hivectl: {e}", file=sys.stderr)
            return 1
        argv_j = ["journalctl", f"HIVE_AGENT={ns.name}", "--no-pager", "-o", "short-iso"]
        journal_dir = os.environ.get("HIVE_JOURNAL_DIR")
        if journal_dir:  # a journal kept elsewhere, e.g. the demo's .demo/journal
            argv_j[1:1] = ["-D", journal_dir]
        if ns.follow:
            argv_j.append("-f")
        try:
            os.execvp("journalctl", argv_j)
        except OSError as e:
            print(f"hivectl: cannot run journalctl: {e}", file=sys.stderr)
            return 1
    if ns.command == "install":
        return _install(ns)
    if ns.command == "notify-test":
        from .notifytest import run as notify_test

        return notify_test(os.environ, Path(ns.env_file), print)
    if ns.command == "tour":
        from ..hive.sessions import web_url
        from . import tour

        def say(text: str) -> None:
            print(text, flush=True)

        paths = Paths.from_env()
        if ns.socket:
            paths = Paths(paths.state_dir, Path(ns.socket).parent, paths.db)
        return tour.run(paths, say, ns.step_timeout, web_url(os.environ))
    sub = cli.find(ns.command)
    assert sub.request is not None
    try:
        request = sub.request(ns)
    except cli.UsageError as e:
        print(f"hivectl: {e}", file=sys.stderr)
        return 2
    request.setdefault("actor", "hivectl")
    path = Path(ns.socket) if ns.socket else Paths.from_env().admin_socket
    try:
        with HiveClient(path) as client:
            body = client.call(request.pop("cmd"), **request)
    except (Refused, Unreachable, ProtocolError, OSError) as e:
        code = e.code if isinstance(e, Refused) else Code.UNAVAILABLE
        if ns.json:
            print(json.dumps({"ok": False, "error": str(e), "code": str(code)}))
        print(f"hivectl: {e}", file=sys.stderr)
        return code.exit_status
    if ns.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(render(ns.command, body))
    return 0


def _install(ns: argparse.Namespace) -> int:
    from . import install

    root = Path(ns.root)
    if root == Path("/") and not install.systemd_is_pid1():
        print(
            "hivectl: this host does not run systemd as PID 1; `make demo` boots a sandbox "
            "systemd host with the hive installed",
            file=sys.stderr,
        )
        return 1
    settings = {}
    for item in ns.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"hivectl: --set {item!r} must look like KEY=VALUE", file=sys.stderr)
            return 2
        settings[key] = value
    try:
        bin_dir = install.make_prefix(Path(ns.prefix), print) if ns.prefix else None
        install.install(root=root, bin_dir=bin_dir, env=settings, start=not ns.no_start)
    except (install.InstallError, OSError, subprocess.CalledProcessError) as e:
        print(f"hivectl: install failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
