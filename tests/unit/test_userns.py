"""Uid ranges: where an id written without a user namespace lands, and how ranges are given
out (one per name, for good, none shared with a host user or another name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperhive.hive import db, userns
from hyperhive.hive.userns import FIRST_BASE, SIZE, IdRange


def test_an_id_moves_into_the_range_as_nspawn_would_move_it() -> None:
    r = IdRange(FIRST_BASE)
    assert r.root == (FIRST_BASE, FIRST_BASE)
    assert [r.shift(i) for i in (0, 1000, 65534, 65535)] == [
        FIRST_BASE,
        FIRST_BASE + 1000,
        FIRST_BASE + 65534,
        FIRST_BASE + 65535,
    ]
    assert r.shift(FIRST_BASE + 7) == FIRST_BASE + 7  # already the container's
    assert r.shift(65536) is None and r.shift(FIRST_BASE + SIZE) is None  # foreign
    assert r.nspawn_args() == [
        f"--private-users={FIRST_BASE}:65536",
        "--private-users-ownership=off",
    ]


def test_each_name_gets_its_own_range_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.open_db(tmp_path / "hive.db")
    taken = {FIRST_BASE + SIZE}  # a host user already has this id
    monkeypatch.setattr(userns, "_taken_on_host", lambda base: base in taken)
    assert userns.range_of("hm1nd") is None
    first = userns.allocate("hm1nd")
    second = userns.allocate("alice")
    assert first == IdRange(FIRST_BASE) and second == IdRange(FIRST_BASE + 2 * SIZE)
    assert userns.allocate("alice") == second == userns.range_of("alice")
    rows = {r.agent: r.base for r in db.UidRange.select()}
    assert rows == {"hm1nd": FIRST_BASE, "alice": FIRST_BASE + 2 * SIZE}


def test_no_range_left_is_a_refusal_that_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.open_db(tmp_path / "hive.db")
    monkeypatch.setattr(userns, "_taken_on_host", lambda base: True)
    with pytest.raises(userns.NoRangeLeft, match="no host uid range is left for alice"):
        userns.allocate("alice")
