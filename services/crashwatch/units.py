"""How an agent's unit ended: ActiveState, Result and exit status read from systemd over D-Bus.

Reads only (pystemd); never starts, stops or resets a unit.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from ..hive.names import machine_name

# si_code of the main process's exit (ExecMainCode), as in waitid(2)
CLD_EXITED = 1
CLD_KILLED = 2
CLD_DUMPED = 3

RUNNING_STATES = frozenset({"active", "activating", "reloading"})
"""ActiveState values of a unit whose process is (again) up."""

STOPPING_STATES = frozenset({"deactivating"})


def unit_of(agent: str) -> str:
    """The systemd unit that runs an agent's container."""
    machine_name(agent)  # validates the name
    return f"hive-agent@{agent}.service"


@dataclass(frozen=True)
class UnitStatus:
    """What systemd says about one unit, with text fields decoded."""

    unit: str
    load_state: str = "not-found"
    active_state: str = "inactive"
    sub_state: str = "dead"
    result: str = "success"
    exec_main_code: int = 0
    exec_main_status: int = 0
    invocation_id: str = ""

    @property
    def up(self) -> bool:
        return self.active_state in RUNNING_STATES

    @property
    def settled(self) -> bool:
        """The main process is gone: the result and exit status are final."""
        return self.active_state not in RUNNING_STATES | STOPPING_STATES

    def describe(self) -> str:
        """One sentence an operator reads: result and how the main process ended."""
        if self.load_state == "not-found" and not self.invocation_id:
            return f"{self.unit} is gone (no result recorded)"
        return f"{self.unit} {self.active_state} (result {self.result}, {self.exit_text()})"

    def exit_text(self) -> str:
        code, status = self.exec_main_code, self.exec_main_status
        if code == CLD_EXITED:
            return f"main process exited with status {status}"
        if code in (CLD_KILLED, CLD_DUMPED):
            verb = "killed by" if code == CLD_KILLED else "dumped core on"
            return f"main process {verb} {signal_name(status)}"
        return "main process exit not recorded"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, list | tuple):
        return bytes(int(v) & 0xFF for v in value).hex()
    return ""


UNIT_IFACE = b"org.freedesktop.systemd1.Unit"
SERVICE_IFACE = b"org.freedesktop.systemd1.Service"

# (interface, property, D-Bus type): the only properties the watcher reads
_PROPERTIES = (
    (UNIT_IFACE, "LoadState", "s"),
    (UNIT_IFACE, "ActiveState", "s"),
    (UNIT_IFACE, "SubState", "s"),
    (UNIT_IFACE, "InvocationID", "ay"),
    (SERVICE_IFACE, "Result", "s"),
    (SERVICE_IFACE, "ExecMainCode", "i"),
    (SERVICE_IFACE, "ExecMainStatus", "i"),
)


def read_unit(unit: str, bus: Any = None) -> UnitStatus:
    """`unit`'s state now, over `bus` (an open pystemd DBus; None: a connection of its own).

    pystemd's `systemd1.Unit` names the object; its properties are read one by one
    with their known types rather than through `_autoload`, whose introspection costs
    ~4 ms and about a megabyte per unit. A unit systemd no longer knows (a
    garbage-collected transient unit) reads as not-found/inactive with no invocation id.
    D-Bus errors propagate.
    """
    from pystemd.dbuslib import DBus
    from pystemd.systemd1 import Unit

    u = Unit(unit.encode(), bus=bus)
    own = bus is None
    conn = DBus() if own else bus
    if own:
        conn.open()
    try:
        values = {
            name: conn.get_property(u.destination, u.path, iface, name.encode(), rtype.encode())
            for iface, name, rtype in _PROPERTIES
        }
    finally:
        if own:
            conn.close()
    return UnitStatus(
        unit=unit,
        load_state=_text(values["LoadState"]),
        active_state=_text(values["ActiveState"]),
        sub_state=_text(values["SubState"]),
        result=_text(values["Result"]),
        exec_main_code=int(values["ExecMainCode"]),
        exec_main_status=int(values["ExecMainStatus"]),
        invocation_id=_hex(values["InvocationID"]),
    )
