"""The dashboard's request checks and settings, as pure functions."""

from __future__ import annotations

import pytest
from hyperhive.hive import sessions
from hyperhive.web import security
from hyperhive.web.settings import Listen, SettingsError, WebSettings, is_loopback, parse_listen

HOST = {"Host": "127.0.0.1:7800"}


def test_same_origin_posts_pass() -> None:
    security.check_same_origin({**HOST, "Origin": "http://127.0.0.1:7800"})
    security.check_same_origin({**HOST, "Sec-Fetch-Site": "same-origin"})
    security.check_same_origin({**HOST, "Sec-Fetch-Site": "none"})
    security.check_same_origin(HOST)  # curl: no Origin; the CSRF token still has to match


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1:7800", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_posts_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(security.Forbidden, match="cross-site request refused"):
        security.check_same_origin({**HOST, **headers})


def test_csrf_token_must_match_the_cookie() -> None:
    token = security.new_csrf_token()
    security.check_csrf(token, token)
    for cookie, given in ((token, None), (None, token), (token, token + "x"), ("", "")):
        with pytest.raises(security.Forbidden, match="CSRF"):
            security.check_csrf(cookie, given)


def test_host_names_are_loopback_or_the_public_url() -> None:
    for host in ("127.0.0.1:7800", "localhost:7800", "[::1]:7800", "127.0.0.2", "LOCALHOST"):
        security.check_host(host, None)
    for host in ("evil.example:7800", "192.168.1.5:7800", "", None, "dashboard.example"):
        with pytest.raises(security.Forbidden, match="loopback"):
            security.check_host(host, None)
    security.check_host("dashboard.example", "dashboard.example")
    security.check_host("Dashboard.Example:443", "dashboard.example")
    with pytest.raises(security.Forbidden):
        security.check_host("evil.example", "dashboard.example")


def test_a_sessions_csrf_token_is_its_own() -> None:
    a, b = sessions.new_secret(), sessions.new_secret()
    assert sessions.plausible(a) and len(sessions.csrf_token(a)) == 64
    security.check_csrf(sessions.csrf_token(a), sessions.csrf_token(a))
    with pytest.raises(security.Forbidden, match="CSRF"):
        security.check_csrf(sessions.csrf_token(a), sessions.csrf_token(b))
    with pytest.raises(security.Forbidden, match="CSRF"):
        security.check_csrf(sessions.csrf_token(a), a)  # the secret is not the token
    for bad in (None, "", "x" * 43 + "!", "a" * 42, "é" * 43, "a" * 44):
        assert not sessions.plausible(bad)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:7800") == Listen("127.0.0.1", 7800)
    assert parse_listen("[::1]:8000") == Listen("::1", 8000)
    assert parse_listen("7801") == Listen("127.0.0.1", 7801)
    assert str(Listen("::1", 1)) == "[::1]:1"
    for bad in ("", "host:", "host:0", "host:70000", "host:port"):
        with pytest.raises(SettingsError, match="HIVE_WEB_LISTEN"):
            parse_listen(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_settings_refuse_a_public_bind_without_a_public_url() -> None:
    settings = WebSettings.from_env({"HIVE_WEB_LISTEN": "0.0.0.0:7800"})
    with pytest.raises(SettingsError, match="HIVE_WEB_PUBLIC_URL"):
        settings.require_public_url_for(settings.listen.host)
    behind_tls = WebSettings.from_env(
        {"HIVE_WEB_LISTEN": "0.0.0.0:7800", "HIVE_WEB_PUBLIC_URL": "https://hive.example.org/"}
    )
    behind_tls.require_public_url_for("0.0.0.0")
    assert behind_tls.public_host == "hive.example.org" and behind_tls.https
    for bad in ("hive.example.org", "ftp://x", "https://", "https://h/path"):
        with pytest.raises(SettingsError, match="HIVE_WEB_PUBLIC_URL"):
            WebSettings.from_env({"HIVE_WEB_PUBLIC_URL": bad})
    with pytest.raises(SettingsError, match="HIVE_WEB_REQUEST_TIMEOUT"):
        WebSettings.from_env({"HIVE_WEB_REQUEST_TIMEOUT": "soon"})
    defaults = WebSettings.from_env({})
    assert defaults.listen == Listen("127.0.0.1", 7800) and defaults.public_url is None
    assert not defaults.https and defaults.streams_per_session == 6
