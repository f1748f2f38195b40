"""Fault injection under load, in a booted sandbox host with the hive installed as units.

A driver inside the sandbox (`python -m bench.faults drive`, run as a transient unit)
sends messages between a few agents through their own sockets, with `recv {ack: true}` +
`ack` receivers that record every id they get, and creates and resolves approvals and
operator questions through the manager and admin sockets. Meanwhile the orchestrator
`kill -9`s each service in turn (coordinator, crash watcher, web, the auto-update oneshot,
an agent container's payload) and restarts systemd-machined. Afterwards it checks, from the
driver's records and the database: no message lost or delivered twice, no approval left
`applying`, no question resolved twice, every container crash reported exactly once.

    sudo .venv/bin/python -m bench.faults --messages 10000 --seconds 300 --rounds 12

The system test `tests/system/test_faults.py` runs a smaller size of the same thing.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperhive.hive.client import HiveClient, Unreachable

from bench.host import db_value

if TYPE_CHECKING:
    from tests.system.hivehost import HiveHost

RUN = Path("/run/hyperhive")
ADMIN = RUN / "host.sock"
MANAGER = RUN / "manager" / "hive.sock"
DB = Path("/var/lib/hyperhive/hive.db")
TALKERS = ("alice", "bob", "carol")  # exchange messages; alice's payload is also killed
APPLIER = "dora"  # its config is changed by approved commits
VICTIM = "alice"
DRIVER_UNIT = "fault-driver"
REPORT = Path("/run/fault-driver.json")


# --- the driver (runs inside the sandbox) ---------------------------------------------------


class Lost(Exception):
    """The request may have reached the hive, but its reply never came back."""


class Link:
    """A reconnecting client: `Unreachable` before sending is retried; after, it is `Lost`."""

    def __init__(self, path: Path, stop: threading.Event) -> None:
        self.path = path
        self.stop = stop
        self.client: HiveClient | None = None
        self.reconnects = 0

    def _connect(self) -> HiveClient:
        while self.client is None:
            try:
                self.client = HiveClient(self.path, timeout=30)
            except Unreachable:
                self.reconnects += 1
                time.sleep(0.05)
        return self.client

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        client = self._connect()
        try:
            return client.request(req)
        except (Unreachable, OSError, ValueError) as e:
            client.close()
            self.client = None
            raise Lost(str(e)) from None

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        """Retry until an ok reply; a `database unavailable` refusal is retried too."""
        while True:
            reply = self.request(req)
            if reply.get("ok") or "database is unavailable" not in str(reply.get("error")):
                return reply
            time.sleep(0.1)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _lookup(sql: str, *args: Any) -> Any:
    """One read from the hive's database (to learn whether a lost request was stored)."""
    return db_value(DB, sql, *args)


def _status(table: str, row_id: int) -> Any:
    return _lookup(f"SELECT status FROM {table} WHERE id = ?", row_id)


@dataclass
class Tally:
    sent: dict[int, str] = field(default_factory=dict)  # id -> recipient
    resent: int = 0  # sends retried because the message was not stored
    lost_replies: int = 0  # sends whose reply was lost but the row was found
    received: dict[str, list[int]] = field(default_factory=dict)  # every delivery, in order
    acked: dict[str, set[int]] = field(default_factory=dict)
    dup_after_ack: list[int] = field(default_factory=list)
    wrong_recipient: list[int] = field(default_factory=list)
    approvals: dict[int, str] = field(default_factory=dict)  # id -> what we did
    questions: dict[int, str] = field(default_factory=dict)
    question_refusals: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _sender(
    me: str, seqs: list[int], tag: str, rate: float, t: Tally, stop: threading.Event
) -> None:
    link = Link(RUN / "agents" / me / "hive.sock", stop)
    start = time.monotonic()
    for n, seq in enumerate(seqs):
        if stop.is_set():
            break
        lag = start + n / rate - time.monotonic()
        if lag > 0:
            time.sleep(lag)
        to = TALKERS[(TALKERS.index(me) + 1) % len(TALKERS)]
        body = f"{tag}-{seq}"
        while True:
            try:
                reply = link.call({"cmd": "send", "to": to, "body": body})
            except Lost:
                found = _lookup("SELECT id FROM messages WHERE body = ?", body)
                if found is None:
                    t.resent += 1
                    continue
                t.lost_replies += 1
                reply = {"ok": True, "id": found}
            if not reply.get("ok"):
                t.errors.append(f"send {body}: {reply}")
                break
            with t.lock:
                t.sent[int(reply["id"])] = to
            break
    link.close()


def _receiver(me: str, t: Tally, stop: threading.Event) -> None:
    link = Link(RUN / "agents" / me / "hive.sock", stop)
    got = t.received.setdefault(me, [])
    acked = t.acked.setdefault(me, set())
    while not stop.is_set():
        try:
            reply = link.call({"cmd": "recv", "wait_seconds": 1, "ack": True})
        except Lost:
            continue
        msg = reply.get("message")
        if not reply.get("ok") or msg is None:
            continue
        mid = int(msg["id"])
        with t.lock:
            if mid in acked:
                t.dup_after_ack.append(mid)
            if msg["recipient"] != me:
                t.wrong_recipient.append(mid)
            got.append(mid)
        try:
            if link.call({"cmd": "ack", "id": mid}).get("ok"):
                acked.add(mid)
        except Lost:
            pass  # the lease is void: the message comes back, or the ack did land
    # acks whose replies were lost: an ack is idempotent
    for mid in set(got) - acked:
        try:
            if link.call({"cmd": "ack", "id": mid}).get("ok"):
                acked.add(mid)
        except Lost:
            t.errors.append(f"final ack of {mid} lost")
    link.close()


def _settle(link: Link, req: dict[str, Any], check: Any) -> dict[str, Any] | None:
    """Send a resolving request until its reply arrives or `check()` says it took effect."""
    while True:
        try:
            return link.call(req)
        except Lost:
            if check():
                return None


def _as_owner_of(repo: str) -> list[str]:
    """Run as the repo's owner, as hm1nd would (its container's root owns every proposed repo):
    git refuses a repo another user owns; group hive-admin lets it through the state dir."""
    st = os.stat(repo)
    admin = grp.getgrnam("hive-admin").gr_gid
    return [
        "setpriv",
        f"--reuid={st.st_uid}",
        f"--regid={st.st_gid}",
        f"--groups={admin}",
        "env",
        "HOME=/nonexistent",
    ]


def _approvals(tag: str, t: Tally, stop: threading.Event) -> None:
    mgr, adm = Link(MANAGER, stop), Link(ADMIN, stop)
    n = 0
    while not stop.is_set():
        n += 1
        if n % 4 == 0:  # a config change of dora, approved (rebuilds its container)
            repo = f"/var/lib/hyperhive/agents/{APPLIER}/config"
            Path(repo, "agent.toml").write_text(f'system_prompt = "{tag} change {n}"\n')
            subprocess.run(
                [
                    *_as_owner_of(repo),
                    "sh",
                    "-c",
                    f"cd {repo} && git add agent.toml && git -c user.name=hm1nd "
                    f"-c user.email=hm1nd@hive commit -qm 'change {n}'",
                ],
                check=True,
            )
            sha = subprocess.check_output(
                [*_as_owner_of(repo), "git", "-C", repo, "rev-parse", "HEAD"], text=True
            )
            req = {"cmd": "request_apply_commit", "agent": APPLIER, "commit_ref": sha.strip()}
            find = ("SELECT id FROM approvals WHERE commit_ref = ?", sha.strip())
            verb = "approve"
        else:  # a spawn, denied
            name = f"{tag}-sp{n}"
            req = {"cmd": "request_spawn", "name": name}
            find = ("SELECT id FROM approvals WHERE agent = ? AND kind = 'spawn'", name)
            verb = "deny"
        reply = _settle(mgr, req, lambda f=find: _lookup(*f) is not None)
        aid = int(_lookup(*find) if reply is None else reply.get("id") or 0)
        if not aid:
            t.errors.append(f"approval request refused: {reply}")
            continue
        _settle(
            adm,
            {"cmd": verb, "id": aid, "note": "fault run"},
            lambda a=aid: _status("approvals", a) != "pending",
        )
        t.approvals[aid] = verb
    mgr.close()
    adm.close()


def _questions(tag: str, t: Tally, stop: threading.Event) -> None:
    mgr, adm = Link(MANAGER, stop), Link(ADMIN, stop)
    n = 0
    while not stop.is_set():
        n += 1
        text = f"{tag} question {n}?"
        ask: dict[str, Any] = {"cmd": "ask_operator", "question": text, "options": ["yes", "no"]}
        if n % 5 == 0:
            ask["ttl_seconds"] = 1
        find = ("SELECT id FROM operator_questions WHERE question = ?", text)
        reply = _settle(mgr, ask, lambda f=find: _lookup(*f) is not None)
        qid = int(_lookup(*find) if reply is None else reply["id"])
        if n % 5 == 0:
            time.sleep(1.0)  # race the deadline
        cmd = (
            {"cmd": "cancel_question", "id": qid}
            if n % 3 == 0
            else {
                "cmd": "answer_question",
                "id": qid,
                "answer": "yes",
            }
        )
        got = _settle(adm, cmd, lambda q=qid: _status("operator_questions", q) != "pending")
        if got is not None and not got.get("ok"):
            t.question_refusals[str(got.get("error"))[:60]] += 1
        t.questions[qid] = str(cmd["cmd"])
        time.sleep(0.1)
    mgr.close()
    adm.close()


def drive(messages: int, seconds: float, tag: str, out: Path, timeout: float) -> dict[str, Any]:
    """Run the load; write and return the driver's records."""
    t = Tally()
    stop_send, stop_recv, stop_side = threading.Event(), threading.Event(), threading.Event()
    rate = messages / seconds / len(TALKERS)
    senders = [
        threading.Thread(
            target=_sender,
            args=(me, list(range(i, messages, len(TALKERS))), tag, rate, t, stop_send),
        )
        for i, me in enumerate(TALKERS)
    ]
    receivers = [threading.Thread(target=_receiver, args=(me, t, stop_recv)) for me in TALKERS]
    side = [
        threading.Thread(target=fn, args=(tag, t, stop_side)) for fn in (_approvals, _questions)
    ]
    began = time.monotonic()
    for th in (*receivers, *senders, *side):
        th.start()
    for th in senders:
        th.join(timeout)
    stop_side.set()
    for th in side:
        th.join(120)
    deadline = began + timeout
    while time.monotonic() < deadline:
        with t.lock:
            have = {mid for got in t.received.values() for mid in got}
        if set(t.sent) <= have:
            break
        time.sleep(0.5)
    time.sleep(1.5)  # let a late duplicate show itself
    stop_recv.set()
    for th in receivers:
        th.join(60)
    report = {
        "tag": tag,
        "elapsed": round(time.monotonic() - began, 1),
        "sent": {str(k): v for k, v in t.sent.items()},
        "resent": t.resent,
        "lost_replies": t.lost_replies,
        "received": t.received,
        "acked": {k: sorted(v) for k, v in t.acked.items()},
        "dup_after_ack": t.dup_after_ack,
        "wrong_recipient": t.wrong_recipient,
        "approvals": {str(k): v for k, v in t.approvals.items()},
        "questions": {str(k): v for k, v in t.questions.items()},
        "question_refusals": dict(t.question_refusals),
        "errors": t.errors[:50],
    }
    out.write_text(json.dumps(report))
    return report


# --- the orchestrator (runs outside, drives the sandbox) -------------------------------------


RESTART_WAIT = 180.0


def _wait(pred: Any, timeout: float, what: str, why: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            detail = f":\n{why()}" if why is not None else ""
            raise AssertionError(f"timed out waiting for {what} ({timeout:.0f} s){detail}")
        time.sleep(0.2)


def _restarted(host: HiveHost, unit: str, old: str) -> bool:
    pid = host.unit_prop(unit, "MainPID")
    return pid not in ("0", old) and host.unit_prop(unit, "ActiveState") == "active"


def _db(host: HiveHost, sql: str) -> str:
    out = host.sandbox.run("sqlite3", "-cmd", ".timeout 10000", str(DB), sql, timeout=60)
    return str(out.stdout).strip()


def _crashes(host: HiveHost, agent: str) -> int:
    return int(
        _db(host, f"SELECT count(*) FROM events WHERE kind='container_crash' AND agent='{agent}'")
    )


def inject(host: HiveHost, rounds: int, pause: float) -> Counter[str]:
    """Kill each service in turn, `rounds` times; the kills that landed, per target."""
    kills: Counter[str] = Counter()
    for _ in range(rounds):
        for unit in ("hive-coordinator.service", "hive-crashwatch.service", "hive-web.service"):
            old = host.unit_prop(unit, "MainPID")
            host.sh(f"kill -9 {old}")
            kills[unit.removesuffix(".service")] += 1
            # generous: this run checks that nothing is lost, not how fast a unit restarts
            # (a busy 2-core machine took over 30 s to bring hive-web back)
            _wait(
                lambda u=unit, o=old: _restarted(host, u, o),
                RESTART_WAIT,
                f"{unit} to come back",
                why=lambda u=unit: host.sh(f"systemctl status --no-pager -n 20 {u}", check=False),
            )
            time.sleep(pause)
        out = host.sh(
            "systemctl start --no-block hive-autoupdate.service; for i in $(seq 200); do "
            "p=$(systemctl show -P MainPID hive-autoupdate.service); "
            'if [ "$p" != 0 ]; then kill -9 $p && echo killed; break; fi; sleep 0.01; done',
            check=False,
        )
        if "killed" in out:
            kills["hive-autoupdate"] += 1
        time.sleep(pause)
        before = _crashes(host, VICTIM)
        host.sh(f"kill -9 {host.payload_pid('h-' + VICTIM)}")
        kills[f"{VICTIM} payload"] += 1
        _wait(lambda b=before: _crashes(host, VICTIM) > b, 30, "the crash to be recorded")
        _wait(
            lambda: host.hivectl("status", VICTIM)["agents"][0]["state"] == "failed",
            30,
            "the coordinator to see the crash",
        )
        host.hivectl("start", VICTIM)
        time.sleep(pause)
        host.sh("systemctl restart systemd-machined.service")
        kills["systemd-machined (restart)"] += 1
        time.sleep(pause)
    return kills


def verify(host: HiveHost, rep: dict[str, Any], kills: Counter[str]) -> dict[str, Any]:
    """Check the invariants; the counts for the table. Raises AssertionError on a violation."""
    tag = rep["tag"]
    sent = {int(k): v for k, v in rep["sent"].items()}
    got = {me: Counter(ids) for me, ids in rep["received"].items()}
    acked = {me: set(ids) for me, ids in rep["acked"].items()}
    lost = [m for m, to in sent.items() if got.get(to, Counter())[m] == 0]
    redelivered = sum(n - 1 for c in got.values() for n in c.values() if n > 1)
    unacked = [m for m, to in sent.items() if m not in acked.get(to, set())]
    stored = int(_db(host, f"SELECT count(*) FROM messages WHERE body LIKE '{tag}-%'"))
    undelivered = int(
        _db(
            host,
            f"SELECT count(*) FROM messages WHERE body LIKE '{tag}-%' AND delivered_at IS NULL",
        )
    )
    _wait(
        lambda: _db(host, "SELECT count(*) FROM approvals WHERE status='applying'") == "0",
        60,
        "approvals left applying to be finished",
    )
    statuses = Counter(
        _db(
            host,
            "SELECT status FROM approvals WHERE status != 'pending' "
            f"AND id IN ({','.join(rep['approvals']) or 0})",
        ).split()
    )
    qids = ",".join(rep["questions"]) or "0"
    q_pending = int(
        _db(
            host,
            f"SELECT count(*) FROM operator_questions WHERE id IN ({qids}) AND status='pending'",
        )
    )
    q_status = Counter(
        _db(host, f"SELECT status FROM operator_questions WHERE id IN ({qids})").split()
    )
    resolutions = Counter(
        int(json.loads(body)["id"])
        for body in _db(
            host,
            "SELECT body FROM messages WHERE sender='system' AND recipient='hm1nd' "
            "AND body LIKE '%\"operator_answered\"%'",
        ).splitlines()
        if body.strip()
    )
    twice = [q for q in map(int, rep["questions"]) if resolutions[q] != 1]
    crashes = {a: _crashes(host, a) for a in (*TALKERS, APPLIER, "hm1nd")}
    crash_messages = int(
        _db(
            host,
            "SELECT count(*) FROM messages WHERE sender='system' AND recipient='hm1nd' "
            f"AND body LIKE '%\"container_crash\"%' AND body LIKE '%\"{VICTIM}\"%'",
        )
    )
    finished = host.sh(
        "journalctl -u hive-coordinator --no-pager | grep -c 'interrupted by a restart' || true"
    ).strip()
    counts = {
        "messages sent": len(sent),
        "messages stored": stored,
        "sends retried (not stored)": rep["resent"],
        "sends with a lost reply (found stored)": rep["lost_replies"],
        "messages lost": len(lost),
        "messages delivered twice after an ack": len(rep["dup_after_ack"]),
        "redeliveries of unacked leases": redelivered,
        "messages left undelivered": undelivered,
        "approvals": len(rep["approvals"]),
        **{f"approvals {s}": n for s, n in sorted(statuses.items())},
        "approvals left applying": 0,
        "approvals finished by a restarted coordinator": int(finished or 0),
        "questions": len(rep["questions"]),
        **{f"questions {s}": n for s, n in sorted(q_status.items())},
        "questions not resolved exactly once": len(twice) + q_pending,
        **{f"kills: {k}": n for k, n in sorted(kills.items())},
        f"crashes reported ({VICTIM})": crashes[VICTIM],
        f"container_crash events in hm1nd's inbox ({VICTIM})": crash_messages,
        "crashes reported (others)": sum(n for a, n in crashes.items() if a != VICTIM),
        "driver seconds": rep["elapsed"],
    }
    problems = []
    if lost:
        problems.append(f"{len(lost)} messages lost, e.g. {lost[:5]}")
    if rep["dup_after_ack"] or rep["wrong_recipient"]:
        problems.append(
            f"duplicates {rep['dup_after_ack'][:5]} misrouted {rep['wrong_recipient'][:5]}"
        )
    if stored != len(sent) or undelivered or unacked:
        problems.append(
            f"stored {stored} of {len(sent)}, undelivered {undelivered}, unacked {len(unacked)}"
        )
    if twice or q_pending:
        problems.append(f"questions resolved not exactly once: {twice[:5]}, pending {q_pending}")
    if (
        crashes[VICTIM] != kills[f"{VICTIM} payload"]
        or crash_messages != crashes[VICTIM]
        or counts["crashes reported (others)"]
    ):
        problems.append(f"crashes {crashes} for {kills[f'{VICTIM} payload']} payload kills")
    if rep["errors"]:
        problems.append(f"driver errors: {rep['errors'][:5]}")
    if problems:
        raise AssertionError("; ".join(problems) + f"\n{json.dumps(counts, indent=1)}")
    return counts


def prepare(host: HiveHost) -> None:
    for name in (*TALKERS, APPLIER):
        host.hivectl("spawn", name)


def run(host: HiveHost, messages: int, seconds: float, rounds: int, pause: float) -> dict[str, Any]:
    """Start the driver in the sandbox, inject faults while it runs, verify; the counts."""
    from tests.hivetest import REPO
    from tests.system.hivehost import PY

    tag = f"f{time.time_ns() % 10**9}"
    host.sh(f"rm -f {REPORT}; systemctl reset-failed {DRIVER_UNIT} 2>/dev/null || true")
    host.sh(
        f"systemd-run --unit={DRIVER_UNIT} --working-directory={REPO} "
        f"--setenv=PYTHONPATH={REPO} {PY} -m bench.faults drive --messages {messages} "
        f"--seconds {seconds} --tag {tag} --out {REPORT} --timeout {seconds * 2 + 120}"
    )
    kills = inject(host, rounds, pause)
    _wait(
        lambda: host.sh(f"test -e {REPORT} && echo y || true").strip() == "y",
        seconds * 2 + 180,
        "the driver to finish",
    )
    rep = json.loads(host.sh(f"cat {REPORT}"))
    return verify(host, rep, kills)


def table(counts: dict[str, Any]) -> str:
    lines = ["| what | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="mode")
    d = sub.add_parser("drive", help="(inside the sandbox) run the load")
    d.add_argument("--messages", type=int, required=True)
    d.add_argument("--seconds", type=float, required=True)
    d.add_argument("--tag", required=True)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--pause", type=float, default=2.0)
    args = ap.parse_args(argv)
    if args.mode == "drive":
        drive(args.messages, args.seconds, args.tag, args.out, args.timeout)
        return 0
    import tempfile

    from tests.system.hivehost import booted_hive

    with booted_hive(
        Path(tempfile.mkdtemp(prefix="faults-")),
        settings={"HIVE_AGENT_COMMAND": "/bin/sleep infinity"},
    ) as host:
        prepare(host)
        counts = run(host, args.messages, args.seconds, args.rounds, args.pause)
    print(
        f"python -m bench.faults --messages {args.messages} --seconds {args.seconds} "
        f"--rounds {args.rounds}"
    )
    print(table(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
