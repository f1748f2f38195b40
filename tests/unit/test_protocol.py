"""The JSON-lines framing, refusals and typed getters."""

from __future__ import annotations

import json

import pytest

from services.hive import protocol as p


def feed_all(framer: p.LineFramer, *chunks: bytes) -> list[bytes | p.Oversize]:
    out: list[bytes | p.Oversize] = []
    for c in chunks:
        out.extend(framer.feed(c))
    return out


def test_lines_split_across_chunks() -> None:
    f = p.LineFramer()
    assert feed_all(f, b'{"a"', b':1}\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert f.pending == 4
    assert feed_all(f, b":3}\n") == [b'{"c":3}']


def test_oversized_line_without_newline_is_one_refusal_then_recovers() -> None:
    f = p.LineFramer(limit=10)
    out = feed_all(f, b"x" * 8, b"y" * 8, b"z" * 100, b"tail\nok\n")
    assert len(out) == 2
    assert isinstance(out[0], p.Oversize) and out[0].size == 120
    assert out[1] == b"ok"


def test_oversized_complete_line() -> None:
    f = p.LineFramer(limit=4)
    out = feed_all(f, b"12345\n1234\n")
    assert isinstance(out[0], p.Oversize)
    assert out[1] == b"1234"


def test_real_limit_is_one_mebibyte() -> None:
    f = p.LineFramer()
    line = b"a" * p.MAX_LINE
    assert feed_all(f, line + b"\n") == [line]
    out = feed_all(f, line + b"b\n")
    assert isinstance(out[0], p.Oversize)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b"[1,2]", "JSON object"),
        (b'"cmd"', "JSON object"),
        (b"{}", "no 'cmd'"),
        (b'{"cmd": 3}', "no 'cmd'"),
        (b'{"cmd": ""}', "no 'cmd'"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    ],
)
def test_decode_refusals(line: bytes, fragment: str) -> None:
    with pytest.raises(p.ProtocolError, match=fragment):
        p.decode_request(line)


def test_decode_oversize() -> None:
    with pytest.raises(p.ProtocolError, match="over the"):
        p.decode_request(p.Oversize(p.MAX_LINE + 1))


def test_encode_is_one_ascii_line() -> None:
    line = p.encode({"body": "héllo\nworld"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"body": "héllo\nworld"}
    assert p.ok(x=1) == {"ok": True, "version": 1, "x": 1}
    assert p.refusal("no") == {"ok": False, "version": 1, "error": "no"}


def test_getters() -> None:
    req = {"s": "x", "i": 3, "f": 1.5, "b": True, "l": ["a"], "n": None}
    assert p.get_str(req, "s") == "x"
    assert p.get_str(req, "missing", None) is None
    assert p.get_str(req, "n", "d") == "d"
    assert p.get_int(req, "i", minimum=0, maximum=3) == 3
    assert p.get_number(req, "f") == 1.5
    assert p.get_number(req, "i") == 3
    assert p.get_bool(req, "b") is True
    assert p.get_str_list(req, "l") == ["a"]


@pytest.mark.parametrize(
    ("getter", "value", "fragment"),
    [
        (p.get_str, 3, "must be a string"),
        (p.get_str, "", "must not be empty"),
        (p.get_str, "a\x00", "NUL"),
        (p.get_int, "3", "must be an integer"),
        (p.get_int, True, "must be an integer"),
        (p.get_int, 1.5, "must be an integer"),
        (p.get_number, "1", "must be a number"),
        (p.get_number, False, "must be a number"),
        (p.get_number, float("nan"), "must be a number"),
        (p.get_number, float("inf"), "finite"),
        (p.get_bool, 1, "true or false"),
        (p.get_str_list, "a", "list of non-empty strings"),
        (p.get_str_list, [1], "list of non-empty strings"),
        (p.get_str_list, [""], "list of non-empty strings"),
    ],
)
def test_getters_name_the_field(getter: object, value: object, fragment: str) -> None:
    with pytest.raises(p.ProtocolError, match=fragment) as e:
        getter({"f": value}, "f")  # type: ignore[operator]
    assert "'f'" in str(e.value)


def test_required_and_bounds() -> None:
    with pytest.raises(p.ProtocolError, match="'x' is required"):
        p.get_int({}, "x")
    with pytest.raises(p.ProtocolError, match="from 0 to 180"):
        p.get_number({"x": 181}, "x", minimum=0, maximum=180)
    with pytest.raises(p.ProtocolError, match="longer than 3"):
        p.get_str({"x": "abcd"}, "x", max_len=3)
