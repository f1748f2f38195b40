"""Bad input at the dashboard: agent-written markup is shown as text on every page and in
every stream, hostile paths and bodies get a readable 4xx (never a 500 or a traceback),
nothing escapes the state dir, and oversized requests are refused while hive-web lives on."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlencode

import pytest
from hyperhive.hive import actionlinks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.browser.webtest import RunningWeb, SSEReader, WebClient
from tests.integration.flowtools import commit_file, config_text
from tests.integration.test_bad_input_sockets import Sandbox, hostile_values

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    '"><svg onload=alert(3)>',
    "'><iframe src=javascript:alert(4)>",
]
NOISE = "\x1b[31mred\x1b[0m \x07\x08\x0b\x0c\x7f \u202eevil\u202c " + "L" * 20_000
RAW = ("<script>alert(", "<img src=x", "<svg onload", "<iframe src=javascript")


def cut(text: str, size: int) -> str:
    """The longest prefix of `text` within `size` bytes of UTF-8 (the hive's limits)."""
    return text.encode()[:size].decode(errors="ignore")


class Dash:
    """A sandboxed coordinator (agents alice, bob, frank) with a hive-web in front of it."""

    def __init__(self) -> None:
        self.box = Sandbox()
        self.hive = self.box.hive
        self.web = RunningWeb(self.box.env)
        self.client = self.web.client()
        self.client.get("/")

    def close(self) -> None:
        self.web.stop()
        assert self.hive.alive(), self.hive.log()
        self.box.close()


@pytest.fixture(scope="module")
def dash() -> Iterator[Dash]:
    d = Dash()
    yield d
    d.close()


def check(reply: Any, where: str) -> None:
    """A readable answer: no 5xx (but 503 for a stream or the journal), no traceback."""
    status, body = reply.status, reply.text
    allowed_503 = where.startswith(("/api/journal/", "/api/events"))
    assert status < 500 or (status == 503 and allowed_503), (where, status, body[:300])
    assert "Traceback" not in body and 'File "/' not in body, (where, body[:300])
    if 400 <= status < 500:
        if body.lstrip().startswith("{"):
            message = json.loads(body)["message"]
            assert isinstance(message, str) and message.strip(), (where, body[:300])
        else:
            assert body.strip(), (where, status)


def no_markup(text: str, where: str) -> None:
    for raw in RAW:
        assert raw not in text, (where, raw)


# agent text everywhere it is shown ------------------------------------------------------


def test_agent_markup_is_shown_as_text_everywhere(dash: Dash) -> None:
    hive = dash.hive
    payload = " | ".join(XSS) + " " + NOISE
    repo = hive.paths.proposed_repo("alice")
    toml = config_text('# <img src=x onerror=alert(2)> "><svg onload=alert(3)>\n').replace(
        b"you test things", b"<script>alert(1)</script> \\u001b[31m \\u202e"
    )
    sha = commit_file(repo, "agent.toml", toml, "<script>alert(1)</script> commit")
    with hive.agent("alice") as alice, hive.manager() as m, hive.admin() as admin:
        alice.call("send", to="bob", body=payload)
        alice.call("send", to="operator", body=payload)
        m.call("send", to="alice", body=payload)
        alice.call("set_turn_state", state="tool", tool=XSS[0][:200], detail=cut(payload, 4000))
        alice.call("set_turn_state", state="tool", tool=XSS[1], detail=cut(payload, 4000))
        m.call(
            "set_turn_state",
            state="error",
            tool=XSS[2],
            detail=cut(payload, 4000),
            started_at=1e308,
            ended_at=1e308,
            cost_usd=1e308,
            input_tokens=2**62,
        )
        alice.call("ask_operator", question=cut(payload, 8000), options=XSS, multi=True)
        alice.call("ask_operator", question=XSS[3], options=[cut(NOISE, 500)])
        first = m.call("request_apply_commit", agent="alice", commit_ref=sha)["id"]
        admin.call("deny", id=first, note=cut(payload, 4000))
        m.call("request_apply_commit", agent="alice", commit_ref=sha)  # stays pending
    c = dash.client
    for path in ("/", "/agent/alice", "/agent/bob", "/agent/hm1nd"):
        page = c.get(path)
        assert page.status == 200, (path, page.text[:500])
        no_markup(page.text, path)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
    index = c.get("/").text
    assert "&lt;img src=x onerror=alert(2)&gt;" in index  # the diff, escaped
    assert "&quot;&gt;&lt;svg onload=alert(3)&gt;" in index  # question options
    for topic in ("index", "agent:alice", "agent:hm1nd"):
        sse = SSEReader("127.0.0.1", dash.web.port, f"/api/events?topic={topic}", c.cookies)
        try:
            assert sse.status == 200
            event, data = sse.event()
        finally:
            sse.close()
        assert event == "patch"
        no_markup(data, topic)  # the JSON text itself: every "<" is JSON-escaped or entity
        html = json.dumps(json.loads(data), ensure_ascii=False)
        no_markup(html, topic)
        assert "&lt;script&gt;" in html, topic
    model = c.get("/api/model?name=alice")
    assert model.status == 200 and model.headers["content-type"].startswith("application/json")


# hypothesis over every route ----------------------------------------------------------

SEGMENTS = st.sampled_from(
    [
        "zed",
        "hm1nd",
        "alice",
        "nobody-here",
        "..",
        "%2e%2e",
        "..%2f..%2fetc%2fpasswd",
        "..%2F..%2F..%2Fvictim",
        "%00",
        "a%00b",
        "%2Fetc%2Fpasswd",
        "%3Cscript%3E",
        "-1",
        "99999999999999999999999",
        "1.5",
        "%E2%80%AE",
        "x" * 500,
    ]
) | st.text(max_size=40).map(lambda s: quote(s, safe=""))
IDS = st.sampled_from(["1", "2", "0", "-1", "-99", "1e3", "1.0", "2" * 40, "0x10", "%00"]) | (
    st.integers().map(str)
)
GET_ROUTES = [
    "/",
    "/agent/{s}",
    "/static/{s}",
    "/static/../{s}",
    "/login",
    "/api/events?topic={s}",
    "/api/events?topic=agent:{s}",
    "/api/journal/{s}",
    "/api/journal/{s}?lines={i}",
    "/api/journal/{s}/stream?after={s}",
    "/api/model?name={s}",
    "/act/{s}",
    "/{s}",
    "/agent/{s}/{s}",
]
POST_ROUTES = [
    "/approve/{i}",
    "/deny/{i}",
    "/answer-question/{i}",
    "/cancel-question/{i}",
    "/cancel-turn/{s}",
    "/spawn",
    "/update-all",
    "/send/{s}",
    "/start/{s}",
    "/stop/{s}",
    "/restart/{s}",
    "/kill/{s}",
    "/destroy/{s}",
    "/rebuild/{s}",
    "/api/model",
    "/cap/{s}",
    "/reset-budget/{s}",
    "/login",
    "/approve/{s}",
    "/act/{s}",
    "/{s}",
]
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"),
    max_size=80,
)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "Accept",
            "Referer",
            "Last-Event-ID",
            "Cookie",
            "Range",
            "If-Modified-Since",
            "X-Forwarded-For",
            "X-Forwarded-Host",
            "Accept-Encoding",
            "Authorization",
            "Content-Language",
        ]
    ),
    HEADER_TEXT,
    max_size=4,
)
FORM_VALUES = st.sampled_from(
    ["zed", "hm1nd", "../../victim", "claude-opus-4-1", "", "daily", "1e400", "nan", "raise"]
) | st.text(max_size=60)
FORMS = st.dictionaries(
    st.sampled_from(
        ["name", "model", "body", "note", "answer", "token", "csrf", "period", "usd", "action"]
    )
    | st.text(max_size=8),
    FORM_VALUES,
    max_size=4,
)


@st.composite
def route(draw: st.DrawFn, templates: list[str]) -> str:
    t = draw(st.sampled_from(templates))
    while "{s}" in t:
        t = t.replace("{s}", draw(SEGMENTS), 1)
    while "{i}" in t:
        t = t.replace("{i}", draw(IDS), 1)
    return t


@st.composite
def post_body(draw: st.DrawFn) -> tuple[str, bytes]:
    form = draw(FORMS)
    kind = draw(st.sampled_from(["form", "json", "multipart", "text", "garbage"]))
    if kind == "form":
        return "application/x-www-form-urlencoded", urlencode(form).encode()
    if kind == "json":
        return "application/json", json.dumps(form).encode()
    if kind == "multipart":
        return "multipart/form-data; boundary=xx", b"--xx\r\nContent-Disposition: form-data\r\n"
    if kind == "text":
        return "text/plain", urlencode(form).encode()
    return "application/x-www-form-urlencoded", draw(st.binary(max_size=200))


def fetch(c: WebClient, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    """One request; a live stream is closed as soon as its head arrives."""
    conn = http.client.HTTPConnection(c.host, c.port, timeout=30)
    h = {"Host": f"{c.host}:{c.port}", **headers}
    h.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in c.cookies.items()))
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        if (resp.getheader("Content-Type") or "").startswith("text/event-stream"):
            data = b""
        else:
            data = resp.read()
    finally:
        conn.close()

    class R:
        status = resp.status
        text = data.decode("utf-8", errors="replace")

    return R()


fuzz = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@fuzz
@given(path=route(GET_ROUTES), headers=HEADERS)
def test_fuzz_get_routes(dash: Dash, path: str, headers: dict[str, str]) -> None:
    check(fetch(dash.client, "GET", path, None, headers), path)


@fuzz
@given(path=route(POST_ROUTES), body=post_body(), headers=HEADERS)
def test_fuzz_post_routes_past_the_csrf_check(
    dash: Dash, path: str, body: tuple[str, bytes], headers: dict[str, str]
) -> None:
    c = dash.client
    headers.pop("Cookie", None)  # keep the session: these requests must reach the handlers
    h = {
        **headers,
        "Content-Type": body[0],
        "Origin": c.origin,
        "Sec-Fetch-Site": "same-origin",
        "X-CSRF-Token": c.csrf,
    }
    if path.startswith("/act/"):  # an action link's form carries the link's token instead
        with contextlib.suppress(UnicodeDecodeError):  # not UTF-8: bottle answers 400 first
            link = actionlinks.secret_of_path(unquote_to_bytes(path).decode())
            h["X-CSRF-Token"] = actionlinks.form_token(link) if link else c.csrf
    reply = fetch(c, "POST", path, body[1], h)
    check(reply, path)
    assert reply.status != 403, (path, reply.text[:300])  # it got past the guard


# path traversal through every name-taking route ---------------------------------------

TRAVERSALS = [  # the 300 KB values are oversized URLs: waitress may reset those mid-send
    quote(v, safe="")
    for v in hostile_values(Path("/tmp"))
    if isinstance(v, str) and v and len(v) < 8000
]


def test_traversal_through_name_routes_is_refused(dash: Dash) -> None:
    c = dash.client
    names = [*TRAVERSALS, "..%2F..%2Fvictim", "%2e%2e%2f%2e%2e%2fvictim", "alice%2F..%2Fbob"]
    for seg in names:
        for method, path in [
            ("GET", f"/agent/{seg}"),
            ("GET", f"/api/journal/{seg}"),
            ("GET", f"/api/model?name={seg}"),
            *[
                ("POST", f"/{verb}/{seg}")
                for verb in (
                    "start",
                    "stop",
                    "restart",
                    "kill",
                    "destroy",
                    "rebuild",
                    "cancel-turn",
                    "send",
                )
            ],
        ]:
            if method == "GET":
                reply = c.get(path, Accept="application/json")
            else:
                reply = c.post(path, {"body": "x"})
            check(reply, path)
            assert 400 <= reply.status < 500, (path, reply.status)
    for field_name, route_path in (("name", "/spawn"), ("name", "/api/model")):
        for value in hostile_values(dash.box.outer):
            if not isinstance(value, str) or not value:
                continue
            reply = c.post(route_path, {field_name: value[:100_000], "model": "claude-x"})
            check(reply, route_path)
            assert 400 <= reply.status < 500, (route_path, value[:40], reply.status)
    static = c.get("/static/..%2F..%2Fapp.py")
    assert static.status == 403 and "def build" not in static.text
    assert dash.box.tree() == dash.box.before
    assert (dash.box.victim / "keep").read_text() == "do not touch\n"


# oversized requests ---------------------------------------------------------------------


def test_oversized_body_and_header_are_refused_and_web_lives_on(dash: Dash) -> None:
    c = dash.client  # hm1nd: the POST fuzz above may have destroyed alice, never hm1nd
    big = c.post("/send/hm1nd", {"body": "x" * (2 * 1024 * 1024)})
    assert big.status == 413, big.status
    check(big, "/send/hm1nd")
    still = c.post("/send/hm1nd", {"body": "still here"})
    assert still.status == 200 and still.json()["ok"], still.text
    with socket.create_connection(("127.0.0.1", dash.web.port), timeout=30) as s:
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: " + b"h" * (1024 * 1024) + b"\r\n\r\n"
        )
        head = s.recv(4096)
    assert head == b"" or head.split(b" ", 2)[1][:1] == b"4", head[:200]
    assert c.get("/").status == 200
    assert dash.web.alive()


def test_header_bytes_that_are_not_utf8_get_an_answer_not_a_500(dash: Dash) -> None:
    c = dash.client
    for method, path in (("GET", "/agent/nobody-here"), ("GET", "/"), ("POST", "/send/alice")):
        for name in ("Accept", "Referer", "Origin", "X-CSRF-Token", "Last-Event-ID"):
            headers = {name: "\x80\xff caf\xe9"}
            if method == "POST":
                headers = {"Origin": c.origin, "X-CSRF-Token": c.csrf, **headers}
            reply = fetch(c, method, path, b"body=hi" if method == "POST" else None, headers)
            check(reply, f"{method} {path} {name}")


def test_a_form_body_that_is_not_utf8_is_a_400_naming_the_field(dash: Dash) -> None:
    c = dash.client
    with dash.hive.agent("frank") as frank:
        qid = frank.call("ask_operator", question="is this UTF-8?")["id"]
    repo = dash.hive.paths.proposed_repo("frank")
    sha = commit_file(repo, "agent.toml", config_text("# for a deny\n"), "a change to deny")
    with dash.hive.manager() as m:
        aid = m.call("request_apply_commit", agent="frank", commit_ref=sha)["id"]
    with dash.hive.admin() as a:
        inbox = a.call("agent_status", name="frank")["agents"][0]["inbox"]
    h = {"Origin": c.origin, "X-CSRF-Token": c.csrf, "Accept": "application/json"}
    h["Content-Type"] = "application/x-www-form-urlencoded"
    expected = {
        f"/answer-question/{qid}": "the answer is not UTF-8 text",
        "/send/frank": "field 'body' is not UTF-8 text",
        f"/deny/{aid}": "field 'note' is not UTF-8 text",
        "/api/model": "field 'name' is not UTF-8 text",
        "/spawn": "field 'name' is not UTF-8 text",
    }
    for path, message in expected.items():
        reply = fetch(c, "POST", path, b"answer=\x80&body=\xff&name=\xfe&note=\x81", h)
        check(reply, path)
        assert (reply.status, json.loads(reply.text)) == (
            400,
            {"ok": False, "message": message, "code": "invalid"},
        )
    with dash.hive.admin() as a:  # nothing was done with what could not be read
        assert qid in [q["id"] for q in a.call("questions")["questions"]]
        assert aid in [p["id"] for p in a.call("pending")["approvals"]]
        assert a.call("agent_status", name="frank")["agents"][0]["inbox"] == inbox
