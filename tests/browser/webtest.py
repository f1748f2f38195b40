"""Test support for the dashboard: a real hive-web process, an HTTP client, a private journald.

Every process started here is stopped by its PID in `stop()` / the context manager's exit.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hyperhive.hive.client import HiveClient
from hyperhive.hive.paths import Paths

from tests.hivetest import REPO, RunningHive, free_port

JOURNALD = Path("/lib/systemd/systemd-journald")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class RunningWeb(RunningHive):
    """A `python -m hyperhive.web` process on a loopback port; `stop()` ends it by its PID."""

    def __init__(
        self,
        env: dict[str, str],
        port: int | None = None,
        *,
        wait: bool = True,
        **extra: str,
    ) -> None:
        self.port = port or free_port()
        self.env = {"HIVE_WEB_LISTEN": f"127.0.0.1:{self.port}", **env, **extra}
        self.paths = Paths.from_env(self.env)
        self.log_path = Path(env["HIVE_STATE_DIR"]).parent / f"web-{time.time_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive.web"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            cwd=REPO,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until a static file is served; fail with the log if hive-web exits or stalls."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"hive-web exited {self.proc.returncode}: {self.log()}")
            try:
                if self.anonymous().get("/static/favicon.svg").status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"hive-web not ready: {self.log()}")
            time.sleep(0.05)

    def anonymous(self) -> WebClient:
        """A browser stand-in that has not signed in."""
        return WebClient("127.0.0.1", self.port)

    def login_url(self) -> str:
        """A fresh one-time sign-in link, as `hivectl login` asks for it."""
        with HiveClient(self.paths.admin_socket) as admin:
            return str(admin.call("login_link", actor="test")["url"])

    def path_of(self, url: str) -> str:
        """The path of a sign-in link (it names the configured address, not this test's port)."""
        return "/" + url.split("://", 1)[-1].split("/", 1)[1]

    def sign_in(self, page: Any, url: str | None = None) -> None:
        """Sign a real browser page in with a one-time link, as the operator would."""
        page.goto(self.base + self.path_of(url or self.login_url()))
        page.wait_for_url(self.base + "/")  # the signed-in page moves on by itself

    def client(self) -> WebClient:
        """A browser stand-in signed in with a one-time link (its own session)."""
        c = self.anonymous()
        c.login(self.login_url())
        return c


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class WebClient:
    """A same-origin browser stand-in: keeps cookies, sends the CSRF token like the page does."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def login(self, url: str) -> Reply:
        """Open a sign-in link (only its path: the link names the configured address)."""
        path = "/" + url.split("://", 1)[-1].split("/", 1)[1]
        reply = self.get(path)
        assert reply.status == 200, (reply.status, reply.text[:300])
        self.get("/")  # the page's CSRF token
        return reply

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            h.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        for key, value in resp.getheaders():
            if key.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0].strip()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def get(self, path: str, **headers: str) -> Reply:
        reply = self.request("GET", path, headers=headers)
        marker = '<meta name="csrf-token" content="'
        if marker in reply.text:
            self.csrf = reply.text.split(marker, 1)[1].split('"', 1)[0]
        return reply

    def post(
        self,
        path: str,
        fields: dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        csrf: bool = True,
        origin: str | None = "same",
        **headers: str,
    ) -> Reply:
        if not self.csrf:
            self.get("/")
        h = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            **headers,
        }
        if csrf:
            h["X-CSRF-Token"] = self.csrf
        if origin == "same":
            h["Origin"] = self.origin
        elif origin is not None:
            h["Origin"] = origin
        return self.request("POST", path, urlencode(fields or {}).encode(), h)


class SSEReader:
    """Reads server-sent events from one stream with a deadline per event."""

    def __init__(self, host: str, port: int, path: str, cookies: dict[str, str] | None = None):
        self.sock = socket.create_connection((host, port), timeout=10)
        cookie = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
        req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        if cookie:
            req += f"Cookie: {cookie}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        self.text = ""

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("stream closed")
            self.buf += data
        out, self.buf = self.buf.split(sep, 1)
        return out

    def _more(self) -> None:
        if not self.chunked:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("stream closed")
            self.text += data.decode()
            return
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        while len(self.buf) < size + 2:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("stream closed")
            self.buf += data
        self.text += self.buf[:size].decode()
        self.buf = self.buf[size + 2 :]

    def event(self, timeout: float = 10.0) -> tuple[str, str]:
        """The next (event, data) pair, skipping comments; raises TimeoutError."""
        self.sock.settimeout(timeout)
        while True:
            while "\n\n" not in self.text:
                self._more()
            frame, self.text = self.text.split("\n\n", 1)
            event, data = "message", []
            for line in frame.split("\n"):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
            if data:
                return event, "\n".join(data)

    def close(self) -> None:
        self.sock.close()


class PrivateJournal:
    """A real systemd-journald in its own namespace; lines are sent to it over its socket.

    The namespace keeps it apart from any system journal: its socket is
    /run/systemd/journal.<ns>/socket and its files live under /var/log/journal/<machine>.<ns>.
    """

    def __init__(self) -> None:
        self.namespace = f"hivetest{uuid.uuid4().hex[:10]}"
        self.socket_path = Path(f"/run/systemd/journal.{self.namespace}/socket")
        self.proc = subprocess.Popen(
            [str(JOURNALD), self.namespace],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"systemd-journald {self.namespace} did not start")
            time.sleep(0.02)

    @staticmethod
    def unavailable() -> str | None:
        """Why a private journald cannot run here, or None when it can."""
        if not JOURNALD.exists():
            return f"{JOURNALD} is not installed (Debian package systemd)"
        if os.geteuid() != 0:
            return "systemd-journald needs root to create /run/systemd/journal.<namespace>"
        return None

    def send(self, message: str, **fields: str) -> None:
        """One entry through journald's native protocol (what sd_journal_send writes)."""
        payload = {"MESSAGE": message, "PRIORITY": "6", **fields}
        lines = []
        for key, value in payload.items():
            raw = value.encode()
            if b"\n" in raw:
                lines.append(key.encode() + b"\n" + len(raw).to_bytes(8, "little") + raw)
            else:
                lines.append(key.encode() + b"=" + raw)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"\n".join(lines) + b"\n", str(self.socket_path))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)
        machine = (
            Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
        )
        for base in (Path("/var/log/journal"), Path("/run/log/journal")):
            shutil.rmtree(base / f"{machine}.{self.namespace}", ignore_errors=True)


@pytest.fixture
def private_journal() -> Iterator[PrivateJournal]:
    """A private journald for one test; skipped (with the reason) where it cannot run."""
    why = PrivateJournal.unavailable()
    if why is not None:
        pytest.skip(why)
    journal = PrivateJournal()
    yield journal
    journal.stop()


def launch_chromium(pw: Any, profile: str, **kw: Any) -> Any:
    """Debian's chromium with a fresh profile; Playwright never downloads a browser."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    return pw.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, **kw
    )
