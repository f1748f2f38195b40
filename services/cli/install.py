"""`hivectl install`: put hyperhive's units, tmpfiles, sysusers and environment on a systemd host.

Units point at the environment hyperhive is installed in (this one, or a new venv made
with --prefix). Each step is printed as it happens; every file is written atomically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..hive.platform import PACKAGE_DIR, platform_paths, platform_rev

UNIT_FILES = (
    "hyperhive.target",
    "hive-admin.socket",
    "hive-manager.socket",
    "hive-coordinator.service",
    "hive-crashwatch.service",
    "hive-autoupdate.service",
    "hive-autoupdate.path",
    "hive-web.service",
    "hive-gateway.service",
    "hive-notify.service",
    "hive-agent@.service",
    "hive-egress@.service",
)
HARDENED = (
    "hive-coordinator",
    "hive-crashwatch",
    "hive-autoupdate",
    "hive-web",
    "hive-gateway",
    "hive-notify",
    "hive-agent@",
    "hive-egress@",
)
"""Services with PrivateTmp=/ProtectHome=: they must still see where hyperhive is installed
(the templates' drop-in holds for every instance; an agent's own drop-in adds PrivateTmp=
and binds the installation into its container)."""
HIDDEN_BY_HARDENING = ("/tmp", "/var/tmp", "/home", "/root", "/run/user")
DEFAULT_ENV = "# hyperhive settings, read by every hive-* unit\nHIVE_BACKEND=nspawn\n"


class InstallError(RuntimeError):
    pass


def units_source() -> Path:
    """units/ of a source checkout, or share/hyperhive/units of an installed wheel."""
    for candidate in (
        PACKAGE_DIR.parent / "units",
        Path(sys.prefix) / "share" / "hyperhive" / "units",
    ):
        if (candidate / "hive-coordinator.service").is_file():
            return candidate
    raise InstallError("cannot find hyperhive's unit files (units/) next to the package")


def render(text: str, bin_dir: Path) -> str:
    return text.replace("@BIN@", str(bin_dir))


def location_dropin(paths: list[Path]) -> str | None:
    """A drop-in that binds an installation living under /tmp or a home into the hardened
    services' namespaces (a checkout used for development); None for /opt, /usr and the like."""
    hidden = [p for p in paths if any(p.is_relative_to(h) for h in HIDDEN_BY_HARDENING)]
    if not hidden:
        return None
    lines = ["# hyperhive is installed where PrivateTmp=/ProtectHome= would hide it", "[Service]"]
    lines += [f"BindReadOnlyPaths={p}" for p in hidden]
    if any(p.is_relative_to(h) for p in hidden for h in ("/home", "/root", "/run/user")):
        lines.append("ProtectHome=read-only")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # never readable by more
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def make_prefix(prefix: Path, say: Callable[[str], None]) -> Path:
    """A dedicated venv at `prefix` with this hyperhive installed; its bin directory."""
    source = PACKAGE_DIR.parent
    if not (source / "pyproject.toml").is_file():
        raise InstallError("--prefix needs a source checkout to install from")
    say(f"creating {prefix} (python venv)")
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(prefix)], check=True)
    say(f"installing hyperhive from {source} into {prefix}")
    subprocess.run([str(prefix / "bin" / "pip"), "install", "-q", str(source)], check=True)
    return prefix / "bin"


def install(
    *,
    root: Path = Path("/"),
    bin_dir: Path | None = None,
    env: dict[str, str] | None = None,
    start: bool = True,
    say: Callable[[str], None] = print,
) -> None:
    bin_dir = bin_dir or Path(sys.executable).parent
    if not (bin_dir / "hive-coordinator").exists():
        raise InstallError(f"{bin_dir} has no hive-coordinator: install hyperhive there first")
    src = units_source()
    etc = root / "etc"
    for name in UNIT_FILES:
        _write(etc / "systemd/system" / name, render((src / name).read_text(), bin_dir))
    say(f"units → {etc / 'systemd/system'} (pointing at {bin_dir})")
    dropin = location_dropin([Path(bin_dir).resolve().parent, *platform_paths()])
    for unit in HARDENED:
        target = etc / "systemd/system" / f"{unit}.service.d" / "50-location.conf"
        if dropin is None:
            target.unlink(missing_ok=True)
        else:
            _write(target, dropin)
    if dropin is not None:
        say("drop-ins let the hardened services see the installation (under /tmp or a home)")
    _write(etc / "tmpfiles.d/hyperhive.conf", (src / "tmpfiles.d/hyperhive.conf").read_text())
    _write(etc / "sysusers.d/hyperhive.conf", (src / "sysusers.d/hyperhive.conf").read_text())
    say("tmpfiles.d and sysusers.d entries written")
    env_file = etc / "hyperhive/hive.env"
    lines = env_file.read_text().splitlines() if env_file.exists() else DEFAULT_ENV.splitlines()
    for key, value in (env or {}).items():
        lines = [ln for ln in lines if not ln.startswith(f"{key}=")] + [f"{key}={value}"]
    _write(env_file, "\n".join(lines) + "\n", 0o600)  # HIVE_NOTIFY_URLS hold tokens
    if env:
        os.environ.update(env)  # so the rev below is the one the services will compute
    _write(etc / "hyperhive/platform.rev", platform_rev() + "\n")
    say(f"settings in {env_file}; platform rev in {etc / 'hyperhive/platform.rev'}")
    if root != Path("/"):
        return
    for argv in (
        ["systemd-sysusers"],
        ["systemd-tmpfiles", "--create", "hyperhive.conf"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", *(["--now"] if start else []), "hyperhive.target"],
    ):
        say("$ " + " ".join(argv))
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise InstallError(
                f"{' '.join(argv)} failed: {out.stderr.strip() or out.stdout.strip()}"
            )
    say("hyperhive.target enabled" + (" and started" if start else ""))


def systemd_is_pid1() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None
