"""The text-editor tool (text_editor_20250728): its four commands and its refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hyperhive.agent.editor import EditorError, run


def test_view_numbers_lines_and_honours_a_range(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("one\ntwo\nthree\n")
    assert run({"command": "view", "path": str(f)}).splitlines()[:3] == [
        "     1\tone",
        "     2\ttwo",
        "     3\tthree",
    ]
    assert run({"command": "view", "path": str(f), "view_range": [2, -1]}).splitlines()[0] == (
        "     2\ttwo"
    )
    with pytest.raises(EditorError, match="outside"):
        run({"command": "view", "path": str(f), "view_range": [9, 10]})


def test_view_of_a_directory_lists_two_levels_without_hidden(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "x.txt").write_text("")
    (tmp_path / ".hidden").write_text("")
    listing = run({"command": "view", "path": str(tmp_path)})
    assert str(tmp_path / "a" / "x.txt") in listing and str(tmp_path / "a" / "b") in listing
    assert ".hidden" not in listing and str(tmp_path / "a" / "b" / "c") not in listing


def test_create_never_overwrites(tmp_path: Path) -> None:
    f = tmp_path / "new.md"
    assert run({"command": "create", "path": str(f), "file_text": "hello\n"}) == f"created {f}"
    assert f.read_text() == "hello\n"
    with pytest.raises(EditorError, match="already exists"):
        run({"command": "create", "path": str(f), "file_text": "again"})


def test_str_replace_needs_exactly_one_match(tmp_path: Path) -> None:
    f = tmp_path / "f.py"
    f.write_text("a = 1\nb = 1\n")
    f.chmod(0o640)
    with pytest.raises(EditorError, match=r"occurs 2 times .*\(lines 1, 2\)"):
        run({"command": "str_replace", "path": str(f), "old_str": "= 1"})
    with pytest.raises(EditorError, match="does not occur"):
        run({"command": "str_replace", "path": str(f), "old_str": "c = 3"})
    out = run({"command": "str_replace", "path": str(f), "old_str": "b = 1", "new_str": "b = 2"})
    assert f.read_text() == "a = 1\nb = 2\n" and "b = 2" in out
    assert f.stat().st_mode & 0o777 == 0o640


def test_insert_after_a_line(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("one\nthree")
    run({"command": "insert", "path": str(f), "insert_line": 1, "insert_text": "two"})
    run({"command": "insert", "path": str(f), "insert_line": 0, "insert_text": "zero"})
    assert f.read_text() == "zero\none\ntwo\nthree"


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"command": "view", "path": "relative.txt"}, "not absolute"),
        ({"command": "delete", "path": "/tmp/x"}, "'command' must be one of"),
        ({"command": "view"}, "'path' is required"),
        ({"command": "view", "path": "/no/such/file"}, "does not exist"),
    ],
)
def test_refusals_are_one_sentence(request_: dict[str, object], error: str) -> None:
    with pytest.raises(EditorError, match=error):
        run(request_)


def test_a_fifo_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(EditorError, match="not a regular file"):
        run({"command": "view", "path": str(fifo)})
