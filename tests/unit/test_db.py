"""open_db sets the shared pragmas; IMMEDIATE transactions lose no update across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from services.hive import db


def test_pragmas(tmp_path: Path) -> None:
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
