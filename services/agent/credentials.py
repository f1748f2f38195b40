"""Where the Anthropic API key comes from, and the wait for one while it is missing.

The operator's key file in the state dir wins over the environment (it is the newer word).
This module never logs or reports a key, only where one was (not) found.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from .dirwatch import DirWatch

KEY_FILE = "anthropic-api-key"


class NoCredentials(Exception):
    """No key is available; the harness reports needs_login and waits."""


def key_file(state_dir: Path) -> Path:
    return state_dir / KEY_FILE


def find_key(state_dir: Path, env_key: str | None) -> str | None:
    """The key to use: the state dir's key file if it holds one, else the environment's."""
    try:
        text = key_file(state_dir).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if text:
        return text.splitlines()[0].strip()
    return env_key or None


def wait_for_key(
    state_dir: Path,
    env_key: str | None,
    *,
    reject: str | None = None,
    recheck: float,
    stop: threading.Event,
    on_missing: Callable[[], None],
) -> str | None:
    """Return a usable key (not `reject`), calling `on_missing` once before waiting for it.

    Woken by inotify when the key file appears or changes; `recheck` is the safety net.
    Returns None if `stop` is set first.
    """
    key = find_key(state_dir, env_key)
    if key is not None and key != reject:
        return key
    on_missing()
    with DirWatch(state_dir) as watch:
        while not stop.is_set():
            key = find_key(state_dir, env_key)
            if key is not None and key != reject:
                return key
            watch.wait(recheck)
    return None
