"""The skip guard: under HIVE_CI=1 a skip fails unless its reason is on the allow-list;
without the flag a skip stays a skip. Each case runs a small pytest of its own (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import skipguard

DOCS = Path(__file__).resolve().parents[2] / "docs"

HIDDEN = """
import pytest

@pytest.mark.skipif(True, reason="the coordinator has no frobnicate yet")
def test_marked():
    pass

def test_in_the_body():
    pytest.skip("needs a tool nobody installed")

@pytest.fixture
def machine():
    pytest.skip("needs root")

def test_in_a_fixture(machine):
    pass

def test_that_runs():
    assert True

@pytest.mark.xfail(reason="a known bug, not a skip")
def test_expected_to_fail():
    assert False
"""

MODULE_SKIP = """
import pytest

pytest.skip("this whole module needs chromium", allow_module_level=True)

def test_never_collected():
    pass
"""


def run(pytester: pytest.Pytester, *files: str) -> pytest.RunResult:
    for i, source in enumerate(files):
        pytester.makepyfile(**{f"test_dummy_{i}": source})
    return pytester.runpytest("-p", "tests.skipguard", "-rA")


def test_under_the_ci_flag_every_unlisted_skip_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(skipguard.ENV, "1")
    result = run(pytester, HIDDEN)
    # the skipif mark and the fixture fail at setup (errors), the skip in the body fails the
    # test; nothing is reported as skipped; the passing and the xfail test are untouched
    result.assert_outcomes(passed=1, failed=1, errors=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    for reason in (
        "the coordinator has no frobnicate yet",
        "needs a tool nobody installed",
        "needs root",
    ):
        assert f"skipped under HIVE_CI=1 (`make test`), where every test must run: {reason}" in (
            out
        )
    assert "add its reason to ALLOWED in tests/skipguard.py" in out


def test_under_the_ci_flag_a_skipped_module_stops_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(skipguard.ENV, "1")
    result = run(pytester, MODULE_SKIP)
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error, as pytest has it
    assert "where every test must run: this whole module needs chromium" in result.stdout.str()


def test_without_the_flag_a_skip_is_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(skipguard.ENV, raising=False)
    result = run(pytester, HIDDEN, MODULE_SKIP)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_an_allowed_reason_still_skips_under_the_flag(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(skipguard.ENV, "1")
    allowed = next(iter(skipguard.ALLOWED))
    source = f"""
import pytest

def test_allowed():
    pytest.skip({allowed + " 1024"!r})

def test_close_but_not_allowed():
    pytest.skip({"and " + allowed!r})
"""
    result = run(pytester, source)
    result.assert_outcomes(skipped=1, failed=1)


def test_every_allowed_skip_is_documented() -> None:
    text = (DOCS / "testing.md").read_text()
    for prefix in skipguard.ALLOWED:
        assert prefix in text, f"docs/testing.md does not say why {prefix!r} may skip in CI"
