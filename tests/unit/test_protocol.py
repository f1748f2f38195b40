"""The JSON-lines framing, refusals and typed getters."""

from __future__ import annotations

import json

import pytest
from hyperhive.hive import protocol as p
from hyperhive.hive.vocab import Code


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


def test_encode_is_one_utf8_line() -> None:
    line = p.encode({"body": "héllo\nworld"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert "héllo".encode() in line  # UTF-8 on the wire, not \u escapes: sizes agree
    assert json.loads(line) == {"body": "héllo\nworld"}
    assert p.ok(x=1) == {"ok": True, "version": 1, "x": 1}
    assert p.refusal("no") == {"ok": False, "version": 1, "error": "no", "code": "conflict"}
    assert p.refusal("bad", Code.INVALID)["code"] == "invalid"


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
    with pytest.raises(p.ProtocolError, match="4 bytes of UTF-8, over the 3-byte limit"):
        p.get_str({"x": "abcd"}, "x", max_bytes=3)


def test_sizes_are_counted_in_utf8_bytes() -> None:
    assert p.get_str({"x": "ééé"}, "x", max_bytes=6) == "ééé"
    with pytest.raises(p.ProtocolError, match="8 bytes of UTF-8, over the 6-byte limit"):
        p.get_str({"x": "éééé"}, "x", max_bytes=6)
    with pytest.raises(p.ProtocolError, match="6 bytes of UTF-8, over the 4-byte limit"):
        p.get_str_list({"x": ["ok", "ééé"]}, "x", max_bytes=4)


def test_lone_surrogates_and_nul_are_refused() -> None:
    req = json.loads('{"s": "a\\ud800b", "l": ["fine", "\\udfff"], "n": ["a\\u0000"]}')
    with pytest.raises(p.ProtocolError, match="'s' is not valid Unicode"):
        p.get_str(req, "s")
    with pytest.raises(p.ProtocolError, match="'l' is not valid Unicode"):
        p.get_str_list(req, "l")
    with pytest.raises(p.ProtocolError, match="NUL"):
        p.get_str_list(req, "n")
    with pytest.raises(p.ProtocolError, match="'cmd' is not valid Unicode"):
        p.decode_request(b'{"cmd": "\\ud800"}')
    with pytest.raises(p.ProtocolError, match="lone surrogate"):
        p.encode({"x": "\ud800"})


def test_a_body_must_fit_a_recv_reply() -> None:
    assert p.get_body({"body": "é" * (p.MAX_BODY // 2)}) == "é" * (p.MAX_BODY // 2)
    with pytest.raises(p.ProtocolError, match="524288 bytes of UTF-8, over the 262144-byte"):
        p.get_body({"body": "é" * p.MAX_BODY})
    controls = "\x01" * p.MAX_BODY  # 256 KiB, but 1.5 MiB once escaped
    with pytest.raises(p.ProtocolError, match="escaped as JSON"):
        p.get_body({"body": controls})
    biggest = "\x01" * ((p.MAX_BODY_ESCAPED - 2) // 6)
    reply = p.ok(
        message={
            "id": 2**62,
            "sender": "x" * 31,
            "recipient": "y" * 31,
            "body": p.get_body({"body": biggest}),
            "created_at": 1e12 / 3,
        }
    )
    assert len(p.encode(reply)) - 1 <= p.MAX_LINE


def test_a_reply_over_the_line_limit_becomes_a_refusal_naming_its_size() -> None:
    line, whole = p.encode_reply(p.ok(x="a" * p.MAX_LINE), "list")
    assert not whole and len(line) < 300
    error = json.loads(line)["error"]
    assert "the reply to 'list' would be" in error and f"over the {p.MAX_LINE}-byte" in error
    assert p.encode_reply(p.ok(x="a"), "list") == (p.encode(p.ok(x="a")), True)


def test_a_listing_leaves_out_its_oldest_items_to_fit() -> None:
    items = [{"id": i, "blob": "b" * 100_000} for i in range(20)]  # ~2 MB
    fitted = p.fit_listing("rows", list(reversed(items)), age="id", extra=1)
    assert fitted["truncated"] is True and fitted["extra"] == 1
    kept = [r["id"] for r in fitted["rows"]]
    assert kept == list(range(19, 19 - len(kept), -1))  # the newest, in the order given
    assert fitted["omitted"] == 20 - len(kept) and len(kept) >= 9
    assert len(p.encode(p.ok(**fitted))) - 1 <= p.MAX_LINE
    small = p.fit_listing("rows", items[:2], age="id")
    assert small == {"rows": items[:2], "truncated": False, "omitted": 0}


def test_a_reply_cut_at_the_line_limit_is_a_bad_reply() -> None:
    head = b'{"ok":true,"version":1,"message":{"id":7,"body":"' + b"x" * p.MAX_LINE
    with pytest.raises(p.BadReply, match="longer than") as e:
        p.decode_reply(head[: p.MAX_LINE + 2])
    assert e.value.head.startswith(b'{"ok":true')
    with pytest.raises(p.BadReply, match="not valid UTF-8"):
        p.decode_reply(b'{"ok":true,"x":"\xff"}\n')
