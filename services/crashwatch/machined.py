"""machined over D-Bus: one system bus connection subscribed to MachineNew / MachineRemoved.

Owns that connection: opens it, dispatches its signals, notices when it drops, closes it.
It only reads (signals, ListMachines); it never changes a machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DESTINATION = b"org.freedesktop.machine1"
PATH = b"/org/freedesktop/machine1"
INTERFACE = b"org.freedesktop.machine1.Manager"
NEW = "MachineNew"
REMOVED = "MachineRemoved"


class BusDown(Exception):
    """The system bus connection could not be opened or dropped, or machined did not answer."""


@dataclass(frozen=True)
class Machine:
    name: str
    machine_class: str
    service: str


SignalHandler = Callable[[str, str], None]
"""Called with (NEW or REMOVED, machine name) for each signal, in bus order."""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class MachinedBus:
    """A system bus connection with the two machined signal matches installed.

    `open()` subscribes (machined is bus-activated: this works before it runs);
    `dispatch()` delivers every queued signal to the handler and raises `BusDown`
    once the connection is gone. Select on `fileno()` between dispatches.
    """

    def __init__(self, on_signal: SignalHandler) -> None:
        self._on_signal = on_signal
        self._bus: Any = None
        self._fired = False
        self._error: BaseException | None = None
        # pystemd keeps only a borrowed pointer to each callback: hold them here.
        self._callbacks: list[Callable[..., None]] = []

    @property
    def bus(self) -> Any:
        """The open pystemd DBus, shared with method calls (unit reads, ListMachines)."""
        if self._bus is None:
            raise BusDown("the system bus is not connected")
        return self._bus

    def open(self) -> None:
        from pystemd.dbusexc import DBusBaseError
        from pystemd.dbuslib import DBus

        self.close()
        bus = DBus()
        try:
            bus.open()
            callbacks = [self._callback(member) for member in (NEW, REMOVED)]
            for member, callback in zip((NEW, REMOVED), callbacks, strict=True):
                bus.match_signal(DESTINATION, PATH, INTERFACE, member.encode(), callback)
        except DBusBaseError as e:
            _close(bus)
            raise BusDown(f"could not subscribe to machined on the system bus: {e}") from e
        self._bus = bus
        self._callbacks = callbacks

    def _callback(self, member: str) -> Callable[..., None]:
        def on_message(msg: Any, error: Any = None, userdata: Any = None) -> None:
            self._fired = True
            try:
                msg.process_reply(True)
                body = msg.body
                name = _text(body[0]) if isinstance(body, list | tuple) and body else ""
                got = _text(msg.headers.get("Member", member.encode()))
            except Exception as e:  # never raise into libsystemd
                self._error = e
                return
            if name and got == member:
                try:
                    self._on_signal(member, name)
                except Exception as e:
                    self._error = e

        return on_message

    def fileno(self) -> int:
        fd = int(self.bus.get_fd())
        if fd < 0:
            raise BusDown("the system bus connection is closed")
        return fd

    def dispatch(self) -> None:
        """Deliver every signal already received; `BusDown` if the connection dropped.

        sd_bus_process() handles one message per call and pystemd does not return its
        count, so keep calling until two calls in a row did nothing: messages already
        read into libsystemd's buffer would not make the fd readable again.
        """
        from pystemd.dbusexc import DBusBaseError

        bus = self.bus
        idle = 0
        while idle < 2:
            self._fired = False
            try:
                msg = bus.process()
            except (DBusBaseError, SystemError) as e:
                raise BusDown(f"the system bus connection dropped: {e}") from e
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if not msg.is_empty():
                idle = 0
                self._unhandled(msg)
            elif self._fired:
                idle = 0
            else:
                idle += 1
        self.fileno()

    def _unhandled(self, msg: Any) -> None:
        try:
            msg.process_reply(True)
            member = msg.headers.get("Member")
        except Exception:
            return
        if member == b"Disconnected":
            raise BusDown("the system bus connection dropped")

    def list_machines(self) -> list[Machine]:
        """machined's machines, the host itself left out (this may start machined)."""
        from pystemd.dbusexc import DBusBaseError

        try:
            reply = self.bus.call_method(DESTINATION, PATH, INTERFACE, b"ListMachines", [])
        except DBusBaseError as e:
            # dropped, or machined did not answer (restarting): either way, start over
            raise BusDown(f"machined did not list its machines: {e}") from e
        machines = []
        for row in _rows(reply.body):
            name, cls, service = (_text(v) for v in row[:3])
            if cls != "host":
                machines.append(Machine(name=name, machine_class=cls, service=service))
        return machines

    def close(self) -> None:
        if self._bus is not None:
            _close(self._bus)
        self._bus = None
        self._callbacks = []


def _rows(body: Any) -> list[Any]:
    """ListMachines' a(ssso), however pystemd wrapped it."""
    if isinstance(body, tuple) and len(body) == 1:
        body = body[0]
    if not isinstance(body, list):
        return []
    return [row for row in body if isinstance(row, list | tuple) and len(row) >= 3]


def _close(bus: Any) -> None:
    """Close and free a pystemd DBus; call once per connection (close() also unrefs)."""
    with contextlib.suppress(Exception):
        bus.close()
