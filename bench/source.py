"""Running the hive's processes from another checkout, to compare commits.

`environ(source)` gives PYTHONPATH a shim directory whose `hyperhive` is that checkout's
`services/`, ahead of the installed (editable) package; the benchmark's own code, and the
test helpers it uses, stay this checkout's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def environ(env: dict[str, str], source: Path | None) -> dict[str, str]:
    """`env` for a process that imports `hyperhive` from `source` (unchanged when None)."""
    if source is None:
        return env
    shim = Path(tempfile.mkdtemp(prefix="hive-bench-source-"))
    (shim / "hyperhive").symlink_to(source.resolve() / "services")
    paths = [str(shim), env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
