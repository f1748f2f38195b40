"""Test support for notifications: a local HTTP receiver that apprise's `json://` and `ntfy://`
send to (it can refuse a number of messages, then recover), and a real hive-notify process.

Every process and thread started here is stopped in `stop()` / the context manager's exit.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hyperhive.hive.paths import Paths

from tests.hivetest import REPO, RunningHive

LINK = re.compile(r"https?://\S+/act/([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Got:
    """One message the receiver took (or refused)."""

    path: str
    title: str
    message: str
    topic: str | None
    at: float

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.message}"

    def links(self) -> list[str]:
        """The action-link URLs in the message, in order."""
        return [m.group(0) for m in LINK.finditer(self.message)]

    def link_of(self, text: str) -> str:
        """The action link of the notice that says `text` (alone, or one of a burst)."""
        if text in self.title:
            (only,) = self.links()
            return only
        blocks = [b for b in self.message.split("\n\n") if b.startswith("• ") and text in b]
        assert len(blocks) == 1, (text, self.message)
        (link,) = [m.group(0) for m in LINK.finditer(blocks[0])]
        return link


class Receiver:
    """A local notification service: JSON webhooks (apprise `json://`) and ntfy's JSON publish
    (apprise `ntfy://host:port/topic`), on a loopback port the kernel picks."""

    def __init__(self) -> None:
        self.messages: list[Got] = []
        self.refused: list[Got] = []
        self._fail = 0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size) or b"{}")
                got = Got(
                    path=self.path,
                    title=str(body.get("title", "")),
                    message=str(body.get("message", "")),
                    topic=body.get("topic"),
                    at=time.time(),
                )
                with receiver.cond:
                    refuse = receiver._fail > 0
                    if refuse:
                        receiver._fail -= 1
                        receiver.refused.append(got)
                    else:
                        receiver.messages.append(got)
                    receiver.cond.notify_all()
                self.send_response(500 if refuse else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": "down for a test"}' if refuse else b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def json_url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def ntfy_url(self, topic: str = "hive") -> str:
        return f"ntfy://127.0.0.1:{self.port}/{topic}"

    def fail_next(self, n: int) -> None:
        """Answer the next `n` messages with HTTP 500."""
        with self.cond:
            self._fail = n

    def wait_for(
        self, pred: Callable[[list[Got]], bool], timeout: float = 30.0, what: str = ""
    ) -> list[Got]:
        """Until `pred(messages)` holds; fails with what arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver never got {what or 'what was expected'}: "
                        f"{[m.text for m in self.messages]} (refused {len(self.refused)})"
                    )
                self.cond.wait(left)
            return list(self.messages)

    def having(self, text: str, timeout: float = 30.0, path: str | None = None) -> Got:
        """The first message (on `path`, if given) whose title or body has `text`."""

        def match(ms: list[Got]) -> list[Got]:
            return [m for m in ms if text in m.text and (path is None or m.path == path)]

        self.wait_for(lambda ms: bool(match(ms)), timeout, repr(text))
        return match(self.messages)[0]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


class RunningNotify(RunningHive):
    """A `python -m hyperhive.notify` process; `stop()` ends it by its PID."""

    def __init__(self, env: dict[str, str], **extra: str) -> None:
        self.env = {**env, **extra}
        self.paths = Paths.from_env(self.env)
        state = Path(env["HIVE_STATE_DIR"]).parent
        self.log_path = state / f"notify-{time.time_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive.notify"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
        )
        self._wait_ready(marker=b"hive-notify is running", what="hive-notify")


@contextmanager
def running_notify(env: dict[str, str], **extra: str) -> Iterator[RunningNotify]:
    n = RunningNotify(env, **extra)
    try:
        yield n
    finally:
        n.stop()


FAST = {
    "HIVE_NOTIFY_QUIET": "0.3",
    "HIVE_NOTIFY_GATHER_MAX": "3",
    "HIVE_NOTIFY_RETRY_FIRST": "0.2",
    "HIVE_NOTIFY_RETRY_MAX": "1",
}
"""Settings that keep a test's waits short (a burst still ends 0.3 s after its last notice)."""
