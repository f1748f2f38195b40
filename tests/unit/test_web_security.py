"""The dashboard's request checks and settings, as pure functions."""

from __future__ import annotations

import pytest

from services.web import security
from services.web.settings import Listen, SettingsError, WebSettings, is_loopback, parse_listen

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


def test_host_names_without_a_token_are_loopback_only() -> None:
    for host in ("127.0.0.1:7800", "localhost:7800", "[::1]:7800", "127.0.0.2", "LOCALHOST"):
        security.check_host(host, token_required=False)
    for host in ("evil.example:7800", "192.168.1.5:7800", "", None):
        with pytest.raises(security.Forbidden, match="loopback"):
            security.check_host(host, token_required=False)
    security.check_host("dashboard.example", token_required=True)


def test_operator_token_by_cookie_or_bearer() -> None:
    token = "a" * 32
    assert security.check_operator(None, None, None)
    assert security.check_operator(token, token, None)
    assert security.check_operator(token, None, f"Bearer {token}")
    assert not security.check_operator(token, None, None)
    assert not security.check_operator(token, "b" * 32, "Bearer nope")


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


def test_settings_refuse_a_public_bind_without_a_token() -> None:
    settings = WebSettings.from_env({"HIVE_WEB_LISTEN": "0.0.0.0:7800"})
    with pytest.raises(SettingsError, match="HIVE_WEB_TOKEN"):
        settings.require_token_for(settings.listen.host)
    with_token = WebSettings.from_env(
        {"HIVE_WEB_LISTEN": "0.0.0.0:7800", "HIVE_WEB_TOKEN": "t" * 20}
    )
    with_token.require_token_for("0.0.0.0")
    with pytest.raises(SettingsError, match="shorter than 16"):
        WebSettings.from_env({"HIVE_WEB_TOKEN": "short"})
    defaults = WebSettings.from_env({})
    assert defaults.listen == Listen("127.0.0.1", 7800) and defaults.token is None
