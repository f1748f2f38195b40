"""The hive's SQLite file: the peewee models and `open_db()`, shared by every service.

WAL, a busy timeout, synchronous (normal, or full with HIVE_DB_SYNCHRONOUS=full) and
foreign keys are set on every connection. Every read-then-write goes through `write_tx()`
(BEGIN IMMEDIATE); a plain deferred transaction loses updates when several services write
at once.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import peewee as pw

from .vocab import AgentState, ApprovalStatus, CapSource, OutboxState, QuestionStatus

SCHEMA_VERSION = 5
DB_MODE = 0o660
"""hive.db and its -wal/-shm: the group (hive-admin) writes too, for the gateway's usage rows
(SQLite gives the -wal and -shm files the database file's mode)."""


class Synchronous(StrEnum):
    """How hard SQLite pushes a commit to the disk (`PRAGMA synchronous`), in WAL mode.

    NORMAL: no fsync per commit; a power cut may lose the last commits, never corrupts.
    FULL: an fsync of the WAL per commit; a commit that returned survives a power cut.
    """

    NORMAL = "normal"
    FULL = "full"


SYNCHRONOUS_SETTING = "HIVE_DB_SYNCHRONOUS"

PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 5000,
    "synchronous": Synchronous.NORMAL.value,
    "foreign_keys": 1,
}


def synchronous_from_env(env: Mapping[str, str] | None = None) -> Synchronous:
    """HIVE_DB_SYNCHRONOUS (`normal` when unset); a ValueError with a hint for anything else."""
    e = os.environ if env is None else env
    value = (e.get(SYNCHRONOUS_SETTING) or Synchronous.NORMAL.value).strip().lower()
    try:
        return Synchronous(value)
    except ValueError:
        raise ValueError(
            f"{SYNCHRONOUS_SETTING}={value!r} is not a level the hive runs SQLite at: "
            "use normal or full in hive.env"
        ) from None


database = pw.DatabaseProxy()


def now() -> float:
    """Wall-clock seconds since the epoch, the unit of every timestamp column."""
    return time.time()


class _Model(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Agent(_Model):
    """One agent (the manager included): its lifecycle state as the coordinator sees it."""

    name = pw.CharField(primary_key=True, max_length=31)
    kind = pw.CharField(default="agent")  # "manager" | "agent"
    state = pw.CharField(default=AgentState.STOPPED)  # vocab.AgentState
    note = pw.TextField(null=True)  # why it failed, shown to the operator
    model = pw.CharField(null=True)  # the model override in effect, None = config/default
    applied_sha = pw.CharField(null=True)
    created_at = pw.FloatField(default=now)
    updated_at = pw.FloatField(default=now)

    class Meta:
        table_name = "agents"


class Message(_Model):
    """The broker: one row per message; `delivered_at` is set exactly once, by the delivery.

    A message that can never be delivered (too large for a reply line, not UTF-8, refused by
    the harness) is set aside instead; the operator may drop any undelivered one. Neither is
    ever handed to a receiver again.
    """

    id = pw.AutoField()
    sender = pw.CharField(max_length=31)
    recipient = pw.CharField(max_length=31)
    body = pw.TextField()
    created_at = pw.FloatField(default=now)
    claimed_at = pw.FloatField(null=True)  # leased to a receiver that has not acked it yet
    delivered_at = pw.FloatField(null=True)
    set_aside_at = pw.FloatField(null=True)  # undeliverable: kept for the operator to see
    set_aside_reason = pw.TextField(null=True)
    dropped_at = pw.FloatField(null=True)  # removed from the inbox by the operator
    drop_note = pw.TextField(null=True)

    class Meta:
        table_name = "messages"
        indexes = ((("recipient", "delivered_at", "claimed_at", "id"), False),)


class Approval(_Model):
    """A change to the shape of an agent waiting for (or resolved by) the operator."""

    id = pw.AutoField()
    agent = pw.CharField(max_length=31)
    kind = pw.CharField()  # vocab.ApprovalKind
    commit_ref = pw.CharField(null=True)
    blob = pw.BlobField(null=True)  # the exact bytes the operator approves
    diff = pw.TextField(null=True)
    status = pw.CharField(default=ApprovalStatus.PENDING)  # vocab.ApprovalStatus
    note = pw.TextField(null=True)
    requested_at = pw.FloatField(default=now)
    resolved_at = pw.FloatField(null=True)
    base_commit = pw.CharField(null=True)  # applied repo HEAD the diff was computed against
    base_hash = pw.CharField(null=True)  # sha256 of the applied config bytes at that time
    stale_at = pw.FloatField(null=True)  # when the applied config moved away from base_hash
    decided_by = pw.TextField(null=True)  # the operator identity that approved or denied it

    class Meta:
        table_name = "approvals"
        indexes = ((("status", "id"), False),)


class OperatorQuestion(_Model):
    """A question an agent asked the operator; resolved exactly once."""

    id = pw.AutoField()
    asker = pw.CharField(max_length=31)
    question = pw.TextField()
    options = pw.TextField(default="[]")  # JSON list of strings
    multi = pw.BooleanField(default=False)
    deadline = pw.FloatField(null=True)
    status = pw.CharField(default=QuestionStatus.PENDING)  # vocab.QuestionStatus
    answer = pw.TextField(null=True)
    asked_at = pw.FloatField(default=now)
    resolved_at = pw.FloatField(null=True)
    decided_by = pw.TextField(null=True)  # the operator identity that answered or cancelled it

    class Meta:
        table_name = "operator_questions"
        indexes = ((("status", "id"), False),)


class TurnState(_Model):
    """What an agent's harness reports it is doing, and the last turn's numbers."""

    agent = pw.CharField(primary_key=True, max_length=31)
    state = pw.CharField(default="idle")  # idle|thinking|tool|waiting|error|needs_login
    tool = pw.CharField(null=True)
    detail = pw.TextField(null=True)
    turn_started_at = pw.FloatField(null=True)
    turn_ended_at = pw.FloatField(null=True)
    input_tokens = pw.IntegerField(default=0)
    output_tokens = pw.IntegerField(default=0)
    cached_tokens = pw.IntegerField(default=0)
    cost_usd = pw.FloatField(default=0.0)
    updated_at = pw.FloatField(default=now)
    turn = pw.CharField(null=True, max_length=64)  # the harness's id of the turn (X-Hive-Turn)

    class Meta:
        table_name = "turn_state"


class Usage(_Model):
    """What one model response used and cost, metered by the gateway (one row per response).

    `agent` is the socket the request came in on, never anything the request says; `turn`
    is the harness's X-Hive-Turn header, kept for grouping only. Token columns are the API's
    own usage block: `input_tokens` is the uncached input, cache writes and reads apart.
    """

    id = pw.AutoField()
    agent = pw.CharField(max_length=31)
    turn = pw.CharField(null=True, max_length=64)
    model = pw.CharField(max_length=100)
    request_id = pw.CharField(null=True, max_length=100)  # the API's request-id header
    input_tokens = pw.IntegerField(default=0)
    output_tokens = pw.IntegerField(default=0)
    cache_write_tokens = pw.IntegerField(default=0)
    cache_read_tokens = pw.IntegerField(default=0)
    cost_usd = pw.FloatField(default=0.0)
    complete = pw.BooleanField(default=True)  # False: the response was cut off before its end
    started_at = pw.FloatField(default=now)
    created_at = pw.FloatField(default=now)

    class Meta:
        table_name = "usage"
        indexes = (
            (("agent", "created_at", "cost_usd"), False),  # covers an agent's spend
            (("agent", "turn"), False),
        )


class Budget(_Model):
    """One agent's spending cap for one period (`hive.budget`): what its approved agent.toml
    says, what the operator set, and the one in force, which the gateway enforces.

    `counted_from` is the operator's reset: spend before it does not count in this period.
    Rows go with their agent when it is destroyed (a name made again starts afresh).
    """

    id = pw.AutoField()
    agent = pw.CharField(max_length=31)
    period = pw.CharField()  # vocab.Period
    config_usd = pw.FloatField(null=True)  # the applied [budget]'s
    operator_usd = pw.FloatField(null=True)  # the operator's; wins over the config's
    cap_usd = pw.FloatField(null=True)  # in force (operator, config, hive default); None: no cap
    source = pw.CharField(default=CapSource.NONE)  # vocab.CapSource
    counted_from = pw.FloatField(default=0.0)
    updated_at = pw.FloatField(default=now)
    updated_by = pw.TextField(null=True)  # who set the operator's cap or reset last

    class Meta:
        table_name = "budgets"
        indexes = ((("agent", "period"), True),)


class TransientState(_Model):
    """An operator action in progress (stopping, restarting, destroying, rebuilding).

    The crash watcher reads it to tell an operator action from a crash.
    """

    agent = pw.CharField(primary_key=True, max_length=31)
    state = pw.CharField()
    since = pw.FloatField(default=now)

    class Meta:
        table_name = "transient_state"


class Notification(_Model):
    """Something the operator should see on the dashboard (approval, question, crash)."""

    id = pw.AutoField()
    kind = pw.CharField()
    agent = pw.CharField(null=True, max_length=31)
    text = pw.TextField()
    created_at = pw.FloatField(default=now)
    seen = pw.BooleanField(default=False)

    class Meta:
        table_name = "notifications"


class Event(_Model):
    """Append-only log of what happened, for the dashboard and for post-mortems."""

    id = pw.AutoField()
    kind = pw.CharField()
    agent = pw.CharField(null=True, max_length=31)
    payload = pw.TextField(default="{}")
    created_at = pw.FloatField(default=now)

    class Meta:
        table_name = "events"


class WebSession(_Model):
    """A dashboard session: the operator signed in with a one-time link or the password.

    Only a hash of the session's secret is stored; hive-web reads these rows to check a
    cookie, the coordinator alone writes them.
    """

    id = pw.AutoField()
    token_hash = pw.CharField(unique=True)
    kind = pw.CharField()  # "link" | "password"
    opened_by = pw.TextField()  # who made the link (uid) or where the password came from
    client = pw.CharField(default="")  # the browser's address as hive-web saw it
    created_at = pw.FloatField(default=now)
    last_seen = pw.FloatField(default=now)  # refreshed at most once a minute
    idle_seconds = pw.FloatField()  # unused this long, it is over
    expires_at = pw.FloatField()  # over at this time, used or not
    revoked_at = pw.FloatField(null=True)

    class Meta:
        table_name = "web_sessions"


class LoginLink(_Model):
    """A one-time sign-in link from `hivectl login`: used once, before it expires, or never."""

    id = pw.AutoField()
    token_hash = pw.CharField(unique=True)
    created_by = pw.TextField()
    created_at = pw.FloatField(default=now)
    expires_at = pw.FloatField()
    used_at = pw.FloatField(null=True)
    session = pw.IntegerField(null=True)  # the session it opened

    class Meta:
        table_name = "login_links"


class OutboxItem(_Model):
    """A notice for the operator's channels (apprise), queued by its producer in the same
    transaction as what it tells of; hive-notify sends it and records the outcome."""

    id = pw.AutoField()
    kind = pw.CharField()  # vocab.Notice
    key = pw.CharField(unique=True)  # one item, one notice: a second insert is a no-op
    agent = pw.CharField(null=True, max_length=31)
    item_id = pw.IntegerField(null=True)  # the approval or question it is about
    title = pw.TextField()
    body = pw.TextField(default="")
    created_at = pw.FloatField(default=now)
    due_at = pw.FloatField(default=now)  # not sent before (a deadline reminder)
    state = pw.CharField(default=OutboxState.QUEUED)  # vocab.OutboxState
    done_at = pw.FloatField(null=True)
    note = pw.TextField(null=True)  # why it was not sent (moot, skipped, expired)

    class Meta:
        table_name = "outbox"
        indexes = ((("state", "due_at"), False),)


class OutboxDelivery(_Model):
    """One outbox item on one channel (an apprise URL, known by a hash, never stored)."""

    id = pw.AutoField()
    item = pw.IntegerField()  # outbox.id
    channel = pw.CharField()  # hash of the URL
    label = pw.CharField()  # what the operator calls it: the URL's scheme (ntfy, json, …)
    attempts = pw.IntegerField(default=0)
    next_try_at = pw.FloatField(default=0.0)
    sent_at = pw.FloatField(null=True)
    last_error = pw.TextField(null=True)

    class Meta:
        table_name = "outbox_deliveries"
        indexes = ((("item", "channel"), True),)


class ActionLink(_Model):
    """A capability in a notification: one item, one use, until it expires.

    Only a SHA-256 of the secret is stored; an approval's link is bound to the hash of the
    diff it was made for.
    """

    id = pw.AutoField()
    token_hash = pw.CharField(unique=True)
    item_kind = pw.CharField()  # vocab.LinkItem
    item_id = pw.IntegerField()
    item_hash = pw.CharField(null=True)  # approvals: sha256 of the diff and bytes shown
    channel = pw.CharField()  # the notification channel it went out on (ntfy, json, …)
    created_by = pw.TextField()
    created_at = pw.FloatField(default=now)
    expires_at = pw.FloatField()
    used_at = pw.FloatField(null=True)
    used_action = pw.CharField(null=True)  # vocab.LinkAction

    class Meta:
        table_name = "action_links"


class Decision(_Model):
    """The audit trail: one row per operator decision or lifecycle action, kept for good
    (a purge of an agent never deletes its history)."""

    id = pw.AutoField()
    at = pw.FloatField(default=now)
    actor = pw.TextField()  # who: a dashboard session, an action link, hivectl's uid, hm1nd
    channel = pw.CharField()  # vocab.Channel
    action = pw.CharField()  # approve, deny, answer, spawn, start, …, login, logout
    target = pw.CharField(default="")  # the agent, or "approval #3" / "question #7"
    detail = pw.TextField(default="{}")  # JSON: ids, the diff's hash, the model, …
    outcome = pw.TextField()  # "ok", or "refused: <the sentence>"

    class Meta:
        table_name = "decisions"
        indexes = ((("target", "at"), False), (("at",), False))


class UidRange(_Model):
    """The host uids an agent's container runs as (its user namespace): container uid N is
    host uid `base` + N, for N below 65536 (`hive.userns`). Kept for good, destroy and purge
    included: files it wrote may outlive it, and no other name is ever given its ids."""

    agent = pw.CharField(primary_key=True, max_length=31)
    base = pw.IntegerField(unique=True)
    created_at = pw.FloatField(default=now)

    class Meta:
        table_name = "uid_ranges"


MODELS: list[type[_Model]] = [
    Agent,
    Message,
    Approval,
    OperatorQuestion,
    TurnState,
    Usage,
    Budget,
    TransientState,
    Notification,
    Event,
    WebSession,
    LoginLink,
    OutboxItem,
    OutboxDelivery,
    ActionLink,
    Decision,
    UidRange,
]


def open_db(
    path: Path | str, *, create: bool = True, synchronous: Synchronous | None = None
) -> pw.SqliteDatabase:
    """Open the hive's database with the shared pragmas and bind every model to it.

    `synchronous` defaults to HIVE_DB_SYNCHRONOUS (normal when unset).
    """
    level = synchronous_from_env() if synchronous is None else synchronous
    pragmas = {**PRAGMAS, "synchronous": level.value}
    p = Path(path)
    if create:
        p.parent.mkdir(parents=True, exist_ok=True)
    db = pw.SqliteDatabase(str(p), pragmas=pragmas, check_same_thread=False, timeout=5)
    database.initialize(db)
    db.connect(reuse_if_open=True)
    if create:
        with db.atomic("IMMEDIATE"):
            _migrate(db)  # first: a new index may cover an added column
            db.create_tables(MODELS, safe=True)
        _group_writable(p)
    return db


def _group_writable(path: Path) -> None:
    """Give the database files DB_MODE, where this process owns them (best effort)."""
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if f.stat().st_uid == os.geteuid() and f.stat().st_mode & 0o777 != DB_MODE:
                os.chmod(f, DB_MODE)
        except OSError:
            continue


ADDED_COLUMNS: list[tuple[str, str, str]] = [
    # (table, column, SQL type and default): columns added after a table first shipped.
    ("messages", "claimed_at", "REAL"),
    ("messages", "set_aside_at", "REAL"),
    ("messages", "set_aside_reason", "TEXT"),
    ("messages", "dropped_at", "REAL"),
    ("messages", "drop_note", "TEXT"),
    ("approvals", "base_commit", "VARCHAR(255)"),
    ("approvals", "base_hash", "VARCHAR(255)"),
    ("approvals", "stale_at", "REAL"),
    ("approvals", "decided_by", "TEXT"),
    ("operator_questions", "decided_by", "TEXT"),
    ("turn_state", "turn", "VARCHAR(64)"),
]
"""A column added to an existing table is listed here too, so older databases get it."""


def _migrate(db: pw.SqliteDatabase) -> None:
    """Bring an older database up to SCHEMA_VERSION (inside the caller's transaction)."""
    version = db.pragma("user_version")
    if version != 0:  # 0: a new file, whose tables are created whole
        tables = set(db.get_tables())
        for table, column, decl in ADDED_COLUMNS:
            if table in tables and column not in {c.name for c in db.get_columns(table)}:
                db.execute_sql(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")  # type: ignore[no-untyped-call]
    if version != SCHEMA_VERSION:
        db.pragma("user_version", SCHEMA_VERSION)


@contextmanager
def write_tx() -> Iterator[Any]:
    """A transaction that takes the write lock up front (BEGIN IMMEDIATE)."""
    with database.atomic("IMMEDIATE") as tx:
        yield tx


def raw() -> sqlite3.Connection:
    """This thread's raw connection (autocommit), for reads on hot paths."""
    conn: sqlite3.Connection = database.connection()
    return conn


@contextmanager
def raw_write_tx() -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE on the raw connection, for hot paths that skip the ORM.

    Never nest it in `write_tx()`; outside one, peewee leaves the connection in
    autocommit, so this transaction is the only one open.
    """
    conn = raw()
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite already rolled back after e.g. SQLITE_FULL
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
