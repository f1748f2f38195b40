"""The bash tool's sessions as real processes: what carries over, what is capped, what is
killed. (No coordinator: these run the tool directly.)
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from hyperhive.agent.cancel import CancelToken
from hyperhive.agent.shell import MAX_OUTPUT, BashSession

from tests.fakeapi.harness import exits_within


def session(tmp_path: Path) -> BashSession:
    return BashSession(tmp_path, {"PATH": os.environ["PATH"], "HOME": str(tmp_path)})


def test_the_working_directory_and_exports_carry_over_until_restart(tmp_path: Path) -> None:
    bash = session(tmp_path)
    token = CancelToken()
    assert bash.run("pwd", 10, token).output.strip() == str(tmp_path)
    bash.run("mkdir -p sub && cd sub && export COLOUR=amber", 10, token)
    out = bash.run('pwd; echo "$COLOUR"', 10, token).output.split()
    assert out == [str(tmp_path / "sub"), "amber"]
    bash.restart()
    assert bash.run('pwd; echo "[$COLOUR]"', 10, token).output.split() == [str(tmp_path), "[]"]


def test_exit_status_stderr_and_no_stdin(tmp_path: Path) -> None:
    bash = session(tmp_path)
    result = bash.run("echo out; echo err >&2; cat; exit 3", 10, CancelToken())
    assert result.output == "out\nerr\n" and result.exit_code == 3
    text, is_error = result.for_model(10)
    assert is_error and text.endswith("[exit status 3]")


def test_long_output_keeps_its_head_and_tail(tmp_path: Path) -> None:
    result = session(tmp_path).run("seq 1 100000", 10, CancelToken())
    assert len(result.output) < MAX_OUTPUT + 100
    assert result.output.startswith("1\n2\n3\n") and result.output.endswith("99999\n100000\n")
    assert "bytes of output cut" in result.output


def test_a_background_job_does_not_hold_the_command_open(tmp_path: Path) -> None:
    result = session(tmp_path).run("sleep 600 & echo $! > bg.pid; echo done", 60, CancelToken())
    # run returned, with the command's own result, while the job it started still runs
    job = int((tmp_path / "bg.pid").read_text())
    try:
        assert result.output == "done\n" and result.exit_code == 0 and not result.timed_out
        assert not exits_within(job, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(job, 9)


def test_a_timeout_kills_the_process_group(tmp_path: Path) -> None:
    # the group's other member runs in the background: killing bash alone would leave it
    command = "echo begun; sleep 600 & echo $! > job.pid; wait; echo never"
    result = session(tmp_path).run(command, 3, CancelToken())  # ample time to start the job
    assert result.timed_out and result.exit_code is None and result.output == "begun\n"
    assert exits_within(int((tmp_path / "job.pid").read_text()), 30)
    text, is_error = result.for_model(3)
    assert is_error and "timed out after 3 s" in text


def test_a_cancel_kills_a_running_command_and_its_group(tmp_path: Path) -> None:
    token = CancelToken()
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    got: dict[str, object] = {}

    def run() -> None:
        try:
            session(tmp_path).run("sleep 600 & echo $! > started; wait", 300, token)
        except Exception as e:
            got["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    job = int(fifo.read_text())  # the command is running
    token.cancel()
    worker.join(60)  # far sooner than the command's 300 s timeout or its 600 s sleep
    assert not worker.is_alive()
    assert type(got["error"]).__name__ == "Cancelled"
    assert exits_within(job, 30)
