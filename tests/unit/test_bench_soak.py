"""The soak's checks: what counts as a page, a live stream, a lost or duplicated message."""

from __future__ import annotations

import json

from bench.soak import message_counts, page_ok, sse_ok

INDEX = b'<meta name="hive-topic" content="index"> <a class="name" href="/agent/a01">a01</a>'
AGENT = b'<meta name="hive-topic" content="agent:a01"> <section id="agent" data-agent="a01">'
LOGIN = b"<title>sign in \xc2\xb7 hyperhive</title> <form action=/login>"


def test_a_page_counts_only_as_200_with_that_page() -> None:
    assert page_ok("index", "a01", 200, INDEX)
    assert page_ok("agent", "a01", 200, AGENT)
    assert not page_ok("index", "a01", 200, LOGIN)  # a sign-in page is not the dashboard
    assert not page_ok("agent", "a02", 200, AGENT)  # another agent's page
    assert not page_ok("agent", "a01", 404, AGENT)
    assert not page_ok("index", "a01", 303, b"")


def test_the_model_api_counts_only_as_json_naming_the_agent() -> None:
    good = json.dumps({"ok": True, "message": "a01 uses x", "name": "a01"}).encode()
    assert page_ok("model", "a01", 200, good)
    assert not page_ok("model", "a02", 200, good)
    assert not page_ok("model", "a01", 400, json.dumps({"ok": False, "message": "no"}).encode())
    assert not page_ok("model", "a01", 200, b"<html>")


def test_a_live_stream_is_200_text_event_stream() -> None:
    assert sse_ok(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8")
    assert not sse_ok(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json")
    assert not sse_ok(b"HTTP/1.1 200 OK\r\nContent-Type: text/html")


def test_messages_are_counted_by_id_not_by_reply() -> None:
    sent = {1: "a", 2: "b", 3: "c"}
    received = {1: ["a", "a"], 2: ["c"], 4: ["a"]}  # 1 twice, 2 to the wrong agent, 3 never
    counts = message_counts(sent, received, {"stored": 3, "undelivered": 1})
    assert counts == {
        "sent": 3,
        "stored": 3,
        "received": 3,
        "lost": 2,  # 2 never reached b, 3 never arrived
        "duplicated": 1,
        "misrouted": 2,  # 2 went to c; 4 was never sent
        "undelivered": 1,
    }
