"""A wheel that installs: build the wheel and the sdist, install the wheel into a fresh venv
in a booted sandbox host, and `hivectl install` brings the hive up from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from hyperhive.sandbox.host import SandboxHost

from tests.hivetest import REPO, free_port

PREFIX = "/opt/hyperhive"


def wheel_names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as z:
        return set(z.namelist())


def sdist_names(path: Path) -> list[str]:
    with tarfile.open(path) as t:
        return t.getnames()


def run(*argv: str, cwd: Path = REPO) -> None:
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{' '.join(argv)}: {out.stdout[-2000:]}\n{out.stderr[-2000:]}"


def test_the_wheel_installs_and_hivectl_install_runs_the_hive(tmp_path: Path) -> None:
    dist, from_sdist, deps = tmp_path / "dist", tmp_path / "from-sdist", tmp_path / "deps"
    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools reuses what it finds there
    run(sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "-o", str(dist))
    wheel = next(dist.glob("hyperhive-*.whl"))
    sdist = next(dist.glob("hyperhive-*.tar.gz"))
    names = wheel_names(wheel)
    assert any(n.endswith("share/hyperhive/units/hive-coordinator.service") for n in names)
    assert any(n.endswith("share/hyperhive/units/tmpfiles.d/hyperhive.conf") for n in names)
    assert any(n.endswith("hyperhive/web/templates/layout.tpl") for n in names)
    assert not any(n.startswith("services/") for n in names)  # the import package is hyperhive
    assert any(m.endswith("/units/hive-web.service") for m in sdist_names(sdist))
    # the sdist is whole: the wheel built from it holds the same files
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(from_sdist), str(sdist))
    assert wheel_names(next(from_sdist.glob("*.whl"))) == names
    # its dependencies as wheels, for an install without the network inside the sandbox
    run(sys.executable, "-m", "pip", "wheel", "-q", "-w", str(deps), str(wheel))
    sandbox = SandboxHost(
        f"hive-wheel-{os.getpid()}-{time.monotonic_ns() % 100000}",
        binds=[f"{dist}:/dist", f"{deps}:/deps"],
        log_path=tmp_path / "sandbox.log",
    )
    sandbox.boot()
    try:
        sandbox.run("/usr/bin/python3", "-m", "venv", PREFIX)
        sandbox.run(
            f"{PREFIX}/bin/pip", "install", "-q", "--no-index", "--find-links", "/deps",
            f"/dist/{wheel.name}",
            timeout=600,
        )  # fmt: skip
        out = sandbox.run(
            f"{PREFIX}/bin/hivectl",
            "install",
            f"--set=HIVE_WEB_LISTEN=127.0.0.1:{free_port()}",
            "--set=HIVE_AGENT_COMMAND=/bin/sleep infinity",
            check=False,
            timeout=600,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "units →" in out.stdout
        unit = sandbox.run("systemctl", "cat", "hive-coordinator.service").stdout
        assert f"ExecStart={PREFIX}/bin/hive-coordinator" in unit
        state = sandbox.run("systemctl", "is-active", "hyperhive.target", check=False).stdout
        assert state.strip() == "active"
        listing = sandbox.run(f"{PREFIX}/bin/hivectl", "list", timeout=60).stdout
        assert "hm1nd" in listing
    finally:
        sandbox.poweroff()
