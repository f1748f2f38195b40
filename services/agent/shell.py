"""The bash tool (Anthropic's `bash_20250124`): commands run in the agent's container.

Each command runs in a fresh `bash` in its own process group, with stdin from /dev/null;
the working directory and exported variables carry over between commands (the session),
`restart` resets them. A command that outlives its timeout, or whose turn is cancelled,
is killed with its whole process group. Output is capped, keeping its head and tail.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .cancel import CancelToken

MAX_OUTPUT = 30_000
"""Characters of output the model sees; the middle of longer output is cut."""
KILL_GRACE = 0.3
"""Seconds between SIGTERM and SIGKILL of a process group."""
SESSION_DIR = ".bash-session"

# The command arrives as $1 (never exported, so it cannot leak into the saved session);
# $2 is the session directory, $3 the first working directory. The EXIT trap saves the
# cwd and the exported variables.
_WRAPPER = r"""
__hive_session=$2
if [ -f "$__hive_session/env" ]; then . "$__hive_session/env" 2>/dev/null; fi
cd "$(cat "$__hive_session/cwd" 2>/dev/null || echo "$3")" 2>/dev/null
trap 'pwd > "$__hive_session/cwd"; export -p > "$__hive_session/env"' EXIT
eval "$1"
"""


@dataclass(frozen=True)
class ShellResult:
    output: str
    exit_code: int | None
    timed_out: bool = False

    def for_model(self, timeout: float) -> tuple[str, bool]:
        """The tool_result text and whether it is an error."""
        text = self.output
        if self.timed_out:
            note = (
                f"[the command timed out after {timeout:g} s; it and its process group were killed]"
            )
            return (text + "\n" + note).strip(), True
        if self.exit_code:
            text = (text + f"\n[exit status {self.exit_code}]").strip()
        return text or "(no output)", bool(self.exit_code)


class OutputCap:
    """Keeps the head and the tail of a command's output, counting what was cut."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self.head_limit = limit // 3
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.tail_limit:
            del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        cut = self.total - len(self.head) - len(self.tail)
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if not cut:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        return f"{head}\n[... {cut} bytes of output cut ...]\n{tail}"


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class BashSession:
    def __init__(self, state_dir: Path, env: dict[str, str], *, keep: bool = False) -> None:
        """`keep`: carry on the session left in the state dir (the harness started again in
        place, so the working directory and variables stay); otherwise a fresh one."""
        self.dir = state_dir / SESSION_DIR
        self.start_dir = state_dir
        self.env = {**env, "PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb"}
        if keep and self.dir.is_dir():
            return
        self.restart()

    def restart(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)

    def run(self, command: str, timeout: float, cancel: CancelToken) -> ShellResult:
        proc = subprocess.Popen(
            [
                *("bash", "--noprofile", "--norc", "-c", _WRAPPER, "bash"),
                *(command, str(self.dir), str(self.start_dir)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        output = OutputCap()
        deadline = time.monotonic() + timeout
        timed_out = False
        with cancel.on_cancel(lambda: kill_group(proc) if proc.poll() is None else None):
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        timed_out = True
                        kill_group(proc)
                        break
                    # The pipe may stay open after bash exits (a background job holds it):
                    # once bash is gone, stop at the first quiet moment.
                    quiet = 0.05 if proc.poll() is not None else min(left, 0.5)
                    ready, _, _ = select.select([fd], [], [], quiet)
                    if not ready:
                        if proc.poll() is not None:
                            break
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    output.add(chunk)
            except BaseException:
                kill_group(proc)  # the harness is stopping: leave nothing running
                raise
            finally:
                proc.stdout.close()
        cancel.check()
        code = proc.wait() if not timed_out else None
        return ShellResult(output.text(), code, timed_out)
