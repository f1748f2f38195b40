"""The harness's main loop: wait for the gateway, resume an open turn, recv, run a turn.

A message claimed from the inbox is saved as the open turn before anything else, and the
turn is closed only when it ends (done, cancelled, failed), so a crash re-runs it. A
message it cannot read or save is set aside in the hive rather than claimed again and
again. The inbox is not touched while the model gateway cannot serve this agent (it has
no usable key: needs_login; the agent is at a spending cap: over_budget); a turn that met either
stays open and runs again once the gateway can. Waiting long enough after a turn, the harness
starts again in place (`exec`, same process): the SDK a turn loaded, which Python never
unloads, is gone, and waiting costs what it costs after a start.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ..hive.log import ERR, WARNING, log
from ..hive.vocab import TurnPhase
from ..hive.wire import MessageRow
from .api import Api, ApiFailure, AuthFailed, OverBudget
from .bus import MAX_RECV_WAIT, Bus, BusDown
from .cancel import Cancelled, CancelToken, CancelWatcher
from .conversation import Conversation
from .gateway import Gateway, GatewayDown
from .settings import RESUMED, Settings
from .turn import TurnRunner
from .turnstate import TurnReporter

CANCELLED_NOTE = "[The operator cancelled this turn; I stopped here.]"
GATEWAY_GRACE = 5.0
"""Seconds the gateway may be missing (starting, restarting) before the harness says so."""


def unreadable(message: MessageRow) -> str | None:
    """What makes a `recv` message unusable for a turn, or None if it is fine."""
    mid = message.get("id")
    if not isinstance(mid, int) or isinstance(mid, bool) or mid < 1:
        return "it has no message id"
    for field in ("sender", "body"):
        if not isinstance(message.get(field), str):
            return f"its {field} is not text"
    return None


class Harness:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        conversation: Conversation,
        runner: TurnRunner,
        reporter: TurnReporter,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.conv = conversation
        self.runner = runner
        self.reporter = reporter
        self.stop = bus.stop
        self.gateway = Gateway(settings.gateway_socket)
        self.api = Api(
            settings.gateway_socket,
            retry_base=settings.retry_base,
            retry_cap=settings.retry_cap,
            max_retries=settings.max_retries,
        )
        self._critical = 0
        self._exit_requested = False
        self.last_turn = time.monotonic()

    # stopping -------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        if self._critical:
            # Waiting in recv, or saving what it claimed: end the wait, keep the save.
            self._exit_requested = True
            self.bus.interrupt()
            return
        raise SystemExit(0)  # mid-turn: every step is saved, the turn re-runs on restart

    @contextmanager
    def critical(self) -> Iterator[None]:
        """The inbox wait and the save of what it claimed: a stop signal must not cut it."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
            if not self._critical and self._exit_requested:
                self._exit_requested = False
                raise SystemExit(0)

    # the loop --------------------------------------------------------------------------
    def log(self, message: str, priority: int = 6, **fields: object) -> None:
        log(message, kind="turn", agent=self.settings.agent, priority=priority, **fields)

    def ready(self) -> bool:
        """Wait until the model gateway can serve this agent (a usable key, under its cap),
        reporting needs_login or over_budget once while it cannot; False if told to stop."""
        seen = ""
        blocked: TurnPhase | None = None
        down_since: float | None = None
        while not self.stop.is_set():
            try:
                status = self.gateway.status(
                    wait=self.settings.login_recheck if seen else 0.0, seen=seen
                )
            except GatewayDown as e:
                seen = ""
                down_since = down_since or time.monotonic()
                if (
                    blocked is not TurnPhase.ERROR
                    and time.monotonic() - down_since >= GATEWAY_GRACE
                ):
                    blocked = TurnPhase.ERROR
                    detail = (
                        f"the model gateway does not answer at {self.settings.gateway_socket} "
                        f"({e}): the operator starts hive-gateway; the harness goes on once it "
                        "answers"
                    )
                    self.reporter.blocked(TurnPhase.ERROR, detail)
                    self.log(detail, WARNING)
                wait = GATEWAY_GRACE if blocked is None else self.settings.login_recheck
                self.gateway.wait_for_socket(wait)
                continue
            down_since = None
            phase = status.phase
            if phase is None:
                if blocked is not None:
                    self.log("the model gateway can serve this agent again")
                    if not self.conv.turn_open:
                        self.reporter.idle("ready; waiting for messages")
                return True
            if phase is not blocked:
                blocked = phase
                detail = status.detail or f"the model gateway cannot serve this agent ({phase})"
                self.reporter.blocked(phase, detail)
                what = "needs login" if phase is TurnPhase.NEEDS_LOGIN else "over budget"
                self.log(f"{what}: {detail}", WARNING)
            seen = status.state
        return False

    def run(self) -> None:
        if self.settings.resumed:  # its turn state still says how the last turn ended
            self.log("harness started again in place: the last turn's memory is released")
        else:
            self.log("harness started")
            self.reporter.idle("started; waiting for messages")
        try:
            self._loop()
        finally:
            self.bus.close()
            self.api.close()
            self.gateway.close()
        self.log("harness stopping")

    def _loop(self) -> None:
        while not self.stop.is_set():
            if not self.ready():
                break
            if self.conv.turn_open:
                self.log("resuming the open turn")
                self.turn(self.api)
                continue
            try:
                with self.critical():
                    message = self.bus.recv(self.recv_wait())
                    if message is not None:
                        fresh = self.take(message)
                        if fresh is None:
                            continue  # set aside: it can never start a turn
                        self.bus.ack(int(message["id"]))
                        if not fresh:
                            continue  # saved before a crash that came ahead of the ack
            except BusDown:
                break
            if message is not None:
                self.log(
                    f"turn started by inbox #{message.get('id')} from {message.get('sender')}",
                    message_no=message.get("id"),
                    sender=message.get("sender"),
                )
                self.turn(self.api)
            elif self.shed_due():
                self.shed()

    # memory while waiting ----------------------------------------------------------------
    def sdk_loaded(self) -> bool:
        return "anthropic" in sys.modules

    def recv_wait(self) -> float:
        """How long one `recv` may wait: never past the moment to start again in place."""
        if not self.settings.shed_after or not self.sdk_loaded():
            return MAX_RECV_WAIT
        left = self.last_turn + self.settings.shed_after - time.monotonic()
        return min(float(MAX_RECV_WAIT), max(left, 0.0))

    def shed_due(self) -> bool:
        return (
            bool(self.settings.shed_after)
            and self.sdk_loaded()
            and time.monotonic() - self.last_turn >= self.settings.shed_after
        )

    def shed(self) -> None:
        """Start again in place: this process runs the harness anew (its sockets close on
        exec; the conversation, its open turn and the bash session are on disk)."""
        self.log(
            f"waiting {self.settings.shed_after:g} s since the last turn: starting again in "
            "place to release the memory the turn loaded"
        )
        try:
            os.execve(sys.executable, sys.orig_argv, {**os.environ, RESUMED: "1"})
        except OSError as e:  # carry on as it was; never try again in this process
            self.log(f"could not start again in place: {e}", WARNING)
            self.settings = dataclasses.replace(self.settings, shed_after=0.0)

    def take(self, message: MessageRow) -> bool | None:
        """Save a received message as the open turn: True if new, False if seen before,
        None if it cannot be read or saved (then it is set aside in the hive)."""
        mid = message.get("id")
        ident = mid if isinstance(mid, int) and not isinstance(mid, bool) else None
        problem = unreadable(message)
        if problem is None:
            try:
                return self.conv.open_turn(message)
            except (ValueError, TypeError) as e:  # e.g. text JSON cannot encode: not retryable
                problem = f"the harness could not save it: {e}"
        self.log(f"inbox message #{ident} cannot be used: {problem}", WARNING)
        self.bus.set_aside(ident, problem)
        return None

    def turn(self, api: Api) -> None:
        try:
            self._turn(api)
        finally:
            self.last_turn = time.monotonic()

    def _turn(self, api: Api) -> None:
        self.reporter.begin()
        started = self.reporter.started_at or 0.0
        token = CancelToken()
        with CancelWatcher(self.bus, token, since=started):
            try:
                text = self.runner.run(api, token)
            except Cancelled:
                self.conv.note(CANCELLED_NOTE)
                self.conv.close_turn()
                self.reporter.end("cancelled by the operator")
                self.log("turn cancelled by the operator")
                return
            except AuthFailed as e:
                self.log(f"the API refused the gateway's key: {e}", WARNING)
                return  # the turn stays open; it re-runs once the gateway has a key
            except OverBudget as e:
                self.log(f"the gateway refused a model request: {e}", WARNING)
                return  # the turn stays open; it re-runs once the cap is raised
            except ApiFailure as e:
                self.fail(f"the Anthropic API failed: {e}")
                return
            except Exception as e:
                self.log(f"turn failed: {e!r}\n{traceback.format_exc()}", ERR)
                self.fail(f"the harness failed: {e!r}")
                return
        self.reporter.end("turn ended")
        self.log(
            f"turn ended: {text[:500] or '(no text)'}",
            input_tokens=self.reporter.usage.input_tokens,
            output_tokens=self.reporter.usage.output_tokens,
            cached_tokens=self.reporter.usage.cached_tokens,
            cost_usd=f"{self.reporter.usage.cost_usd:.6f}",
        )

    def fail(self, detail: str) -> None:
        """End the turn as failed: the conversation says so, the message stays in it."""
        self.conv.note(f"[This turn failed and was stopped: {detail}]")
        self.conv.close_turn()
        self.reporter.end(detail, error=True)
        self.log(f"turn failed: {detail}", ERR)
