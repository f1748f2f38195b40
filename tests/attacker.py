"""Test support: run code as a real unprivileged user (`nobody`), as an attacker on the host would.

The code runs in Debian's own python3 with the standard library only (the attacker has
no access to the hive's checkout), and its JSON output is returned.
"""

from __future__ import annotations

import json
import os
import pwd
import selectors
import signal
import subprocess
import textwrap
from typing import IO, Any

PYTHON = "/usr/bin/python3"


def _drop_to_nobody() -> None:
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def as_nobody(code: str, *args: str, timeout: float = 120) -> Any:
    """Run `code` as uid nobody; it prints one JSON value, which is returned."""
    out = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code), *args],
        preexec_fn=_drop_to_nobody,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        env=ENV,
    )
    if out.returncode != 0:
        raise AssertionError(f"the attacker's script failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout)


class Background:
    """An attacker script as uid nobody that keeps running; it reports in JSON lines."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-c", textwrap.dedent(code), *args],
            preexec_fn=_drop_to_nobody,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
            env=ENV,
        )

    def line(self, timeout: float = 60) -> Any:
        """The script's next JSON line (its next report)."""
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                raise AssertionError(f"the attacker's script said nothing in {timeout:.0f} s")
        text = out.readline()
        if not text:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the attacker's script ended: {err}")
        return json.loads(text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


HTTP = """
import http.client, json, sys, urllib.parse

HOST, PORT = "127.0.0.1", int(sys.argv[1])
jar = {}

def req(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    h = {"Host": f"{HOST}:{PORT}", **(headers or {})}
    if jar:
        h["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read().decode("utf-8", "replace")
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            name, _, rest = v.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0].strip()
    conn.close()
    return {"status": r.status, "body": data, "location": r.getheader("Location")}

def post(path, fields):
    token = jar.get("hive_csrf", "")
    return req("POST", path, urllib.parse.urlencode({**fields, "csrf": token}).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": f"http://{HOST}:{PORT}",
        "X-CSRF-Token": token,
        "Accept": "application/json",
    })
"""
"""Prelude for attacker scripts: `req`, and `post` with whatever CSRF cookie it could get."""
