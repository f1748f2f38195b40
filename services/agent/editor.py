"""The file-editing tool (Anthropic's `text_editor_20250728`, `str_replace_based_edit_tool`).

Commands `view`, `create`, `str_replace` and `insert` on absolute paths inside the agent's
container. It reads only regular files and directories (never a FIFO or a device, which
could hang) and caps what it shows; every failure is one sentence the model can act on.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

MAX_VIEW_CHARS = 30_000
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_LISTING = 500


class EditorError(Exception):
    """A request the tool cannot carry out; the message goes back to the model."""


def _path(value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise EditorError("'path' is required: give an absolute path such as /state/notes.md")
    path = Path(value)
    if not path.is_absolute():
        raise EditorError(f"the path {value!r} is not absolute: start it with /")
    return path


def _str(inp: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = inp.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise EditorError(f"'{name}' must be a string for this command")
    return value


def _read(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise EditorError(f"{path} does not exist") from None
    except OSError as e:
        raise EditorError(f"cannot read {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise EditorError(f"{path} is not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise EditorError(
            f"{path} is {st.st_size} bytes, over the editor's {MAX_FILE_BYTES} limit: "
            "use the bash tool (head, sed -n, grep)"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EditorError(f"cannot read {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EditorError(f"{path} is not UTF-8 text: use the bash tool for binary files") from None


def _write(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o7777 if path.exists() else None
        path.write_text(text, encoding="utf-8")
        if mode is not None:
            os.chmod(path, mode)
    except OSError as e:
        raise EditorError(f"cannot write {path}: {e.strerror}") from None


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... cut at {limit} characters: view a smaller view_range ...]"


def _numbered(lines: list[str], first: int) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines, start=first))


def view(inp: dict[str, Any], max_chars: int = MAX_VIEW_CHARS) -> str:
    path = _path(inp.get("path"))
    if path.is_dir():
        entries: list[str] = []
        for root, dirs, files in os.walk(path):
            depth = len(Path(root).relative_to(path).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            names = dirs + sorted(f for f in files if not f.startswith("."))
            entries.extend(str(Path(root) / name) for name in names)
            if depth >= 1:
                dirs[:] = []
            if len(entries) >= MAX_LISTING:
                break
        shown = "\n".join(entries[:MAX_LISTING])
        return (
            f"files and directories up to 2 levels deep in {path} (hidden ones left out):\n{shown}"
        )
    lines = _read(path).split("\n")
    rng = inp.get("view_range")
    first = 1
    if rng is not None:
        if (
            not isinstance(rng, list)
            or len(rng) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in rng)
        ):
            raise EditorError("'view_range' must be two line numbers [start, end] (end -1 = last)")
        start, end = rng
        if not 1 <= start <= len(lines) or (end != -1 and not start <= end <= len(lines)):
            raise EditorError(f"'view_range' {rng} is outside the file's {len(lines)} lines")
        first = start
        lines = lines[start - 1 : None if end == -1 else end]
    return _cap(_numbered(lines, first), max_chars)


def create(inp: dict[str, Any]) -> str:
    path = _path(inp.get("path"))
    text = _str(inp, "file_text")
    if path.exists():
        raise EditorError(
            f"{path} already exists: edit it with str_replace or insert (create never overwrites)"
        )
    if not path.parent.is_dir():
        raise EditorError(f"the directory {path.parent} does not exist: create it with bash first")
    _write(path, text)
    return f"created {path}"


def str_replace(inp: dict[str, Any]) -> str:
    path = _path(inp.get("path"))
    old = _str(inp, "old_str")
    new = _str(inp, "new_str", required=False)
    if not old:
        raise EditorError("'old_str' must not be empty")
    text = _read(path)
    count = text.count(old)
    if count == 0:
        raise EditorError(f"'old_str' does not occur in {path}: view the file and copy it exactly")
    if count > 1:
        lines = [str(text[:m].count("\n") + 1) for m in _find_all(text, old)]
        raise EditorError(
            f"'old_str' occurs {count} times in {path} (lines {', '.join(lines)}): "
            "include more context so it is unique"
        )
    new_text = text.replace(old, new, 1)
    _write(path, new_text)
    line = text[: text.index(old)].count("\n") + 1
    lines = new_text.split("\n")
    first = max(1, line - 3)
    last = min(len(lines), line + new.count("\n") + 3)
    shown = _numbered(lines[first - 1 : last], first)
    return f"edited {path}; lines {first}-{last} now read:\n{shown}"


def insert(inp: dict[str, Any]) -> str:
    path = _path(inp.get("path"))
    at = inp.get("insert_line")
    if isinstance(at, bool) or not isinstance(at, int):
        raise EditorError("'insert_line' must be a line number (0 inserts at the top)")
    new = inp.get("insert_text", inp.get("new_str"))
    if not isinstance(new, str):
        raise EditorError("'insert_text' must be a string")
    lines = _read(path).split("\n")
    if not 0 <= at <= len(lines):
        raise EditorError(f"'insert_line' {at} is outside 0..{len(lines)}")
    lines[at:at] = new.split("\n")
    _write(path, "\n".join(lines))
    return f"inserted {new.count(chr(10)) + 1} line(s) after line {at} of {path}"


def _find_all(text: str, sub: str) -> list[int]:
    found, at = [], text.find(sub)
    while at >= 0:
        found.append(at)
        at = text.find(sub, at + 1)
    return found


COMMANDS = {"view": view, "create": create, "str_replace": str_replace, "insert": insert}


def run(inp: dict[str, Any]) -> str:
    """Carry out one editor request; raise `EditorError` with a sentence for the model."""
    command = inp.get("command")
    fn = COMMANDS.get(command) if isinstance(command, str) else None
    if fn is None:
        raise EditorError(f"'command' must be one of {', '.join(COMMANDS)}")
    return fn(inp)
