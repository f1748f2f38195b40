"""open_db sets the shared pragmas; IMMEDIATE transactions lose no update across processes."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from hyperhive.hive import db


def test_pragmas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVE_DB_SYNCHRONOUS", raising=False)
    conn = db.open_db(tmp_path / "hive.db")
    assert conn.pragma("journal_mode") == "wal"
    assert conn.pragma("synchronous") == 1  # NORMAL
    assert conn.pragma("foreign_keys") == 1
    assert conn.pragma("busy_timeout") == 5000
    assert conn.pragma("user_version") == db.SCHEMA_VERSION
    tables = set(conn.get_tables())
    assert {
        "agents",
        "messages",
        "approvals",
        "operator_questions",
        "turn_state",
        "transient_state",
        "notifications",
        "events",
    } <= tables
    conn.close()


def _synchronous_in_a_new_thread() -> int:
    """PRAGMA synchronous on the connection peewee opens for another thread."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(db.database.pragma("synchronous")))
    thread.start()
    thread.join(10)
    return seen[0]


def test_hive_db_synchronous_full_is_set_on_every_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_DB_SYNCHRONOUS", "full")
    conn = db.open_db(tmp_path / "hive.db")
    assert conn.pragma("synchronous") == 2  # FULL
    assert _synchronous_in_a_new_thread() == 2
    conn.close()
    monkeypatch.setenv("HIVE_DB_SYNCHRONOUS", "normal")
    conn = db.open_db(tmp_path / "hive.db", create=False)
    assert conn.pragma("synchronous") == 1  # NORMAL
    assert _synchronous_in_a_new_thread() == 1
    conn.close()


def test_hive_db_synchronous_refuses_other_levels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_DB_SYNCHRONOUS", "off")
    with pytest.raises(ValueError, match=r"HIVE_DB_SYNCHRONOUS='off' .* use normal or full"):
        db.open_db(tmp_path / "hive.db")
    assert not (tmp_path / "hive.db").exists()
    assert db.synchronous_from_env({}) is db.Synchronous.NORMAL
    assert db.synchronous_from_env({"HIVE_DB_SYNCHRONOUS": " FULL "}) is db.Synchronous.FULL


def _bump(path: str, times: int) -> None:
    db.open_db(path)
    for _ in range(times):
        with db.write_tx():
            row = db.Agent.get(db.Agent.name == "counter")
            db.Agent.update(note=str(int(row.note) + 1)).where(db.Agent.name == "counter").execute()


def test_read_then_write_across_processes_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "hive.db")
    db.open_db(path)
    db.Agent.create(name="counter", note="0")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(path, 200)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert db.Agent.get(db.Agent.name == "counter").note == "600"


def test_an_older_database_gets_every_added_column(tmp_path: Path) -> None:
    path = tmp_path / "hive.db"
    conn = db.open_db(path)
    for index in conn.execute_sql("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall():
        if not index[0].startswith("sqlite_"):
            conn.execute_sql(f"DROP INDEX {index[0]}")
    for table, column, _ in db.ADDED_COLUMNS:
        conn.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.pragma("user_version", 1)
    conn.close()
    conn = db.open_db(path)
    for table, column, _ in db.ADDED_COLUMNS:
        assert column in {c.name for c in conn.get_columns(table)}, (table, column)
    assert conn.pragma("user_version") == db.SCHEMA_VERSION
    conn.close()
