"""Per-agent package layers: Debian packages unpacked into a read-only tree overlaid on /usr.

A layer is built once per package list (cached by its hash) with `apt-get download` and
`dpkg-deb -x`, dependencies the host lacks included, and reused by every agent asking
for the same list. A rebuild with another list gets another layer; the old one is
simply no longer mounted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..hive import log as hlog
from ..hive.protocol import Refusal
from ..hive.vocab import Code

APT_TIMEOUT = 600


class LayerError(Refusal):
    code = Code.UNAVAILABLE


def layer_key(packages: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(sorted(set(packages))).encode()).hexdigest()[:32]


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LayerError(f"{argv[0]} failed: {e}") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise LayerError(f"{' '.join(argv[:2])} failed: {' / '.join(tail)}")
    return out.stdout


def _installed_on_host() -> set[str]:
    out = _run(["dpkg-query", "-W", "-f=${Package}\\t${db:Status-Abbrev}\\n"])
    return {line.split("\t")[0] for line in out.splitlines() if "\tii" in line}


def _closure(packages: tuple[str, ...], cache: Path) -> list[str]:
    """The packages and their dependencies (no recommends) that the host does not have."""
    out = _run(
        [
            "apt-cache",
            "-o",
            f"Dir::Cache={cache}",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            "--no-pre-depends",
            *packages,
        ]
    )
    names = {line.strip() for line in out.splitlines() if line and not line.startswith(" ")}
    names = {n for n in names if not n.startswith("<")}
    missing = set(packages) - names
    if missing:
        raise LayerError(f"unknown Debian package(s): {', '.join(sorted(missing))}")
    have = _installed_on_host()
    return sorted(n.split(":")[0] for n in names if n.split(":")[0] not in have)


def ensure_layer(root: Path, packages: tuple[str, ...]) -> Path | None:
    """The layer directory for `packages` (its `usr/` is overlaid), building it if needed."""
    if not packages:
        return None
    final = root / layer_key(packages)
    if (final / ".complete").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    hlog.log(f"building package layer for {', '.join(packages)}", kind="rebuild")
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        work = Path(tmp)
        debs = work / "debs"
        tree = work / "tree"
        debs.mkdir()
        tree.mkdir()
        (work / "cache" / "archives" / "partial").mkdir(parents=True)
        wanted = _closure(packages, work / "cache")
        if wanted:
            _run(
                [
                    "apt-get",
                    "download",
                    "-q",
                    "-o",
                    "APT::Sandbox::User=root",
                    "-o",
                    f"Dir::Cache={work / 'cache'}",
                    *wanted,
                ],
                cwd=debs,
            )
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(tree)])
        (tree / "usr").mkdir(exist_ok=True)
        (tree / ".packages").write_text("\n".join(sorted(packages)) + "\n")
        (tree / ".complete").write_text("ok\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tree, final)
    return final
