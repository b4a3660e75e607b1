# SPDX-License-Identifier: LGPL-2.1-or-later
"""The D-Bus connection under vmgr's client: jeepney's blocking I/O.

One connection, no threads, no event loop: every call sends a message and
reads until its reply comes (signals arriving meanwhile go to the queues of
open subscriptions, or are dropped). File descriptors are negotiated at
connect time, since Exec, CopyFrom, FollowLogs and OpenNamespaces return fds
and CopyTo and ServeFile take one.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from jeepney import DBusAddress, HeaderFields, MatchRule, Message, MessageType, new_method_call
from jeepney.fds import FileDescriptor
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from .errors import Error, Unreachable, error_from_dbus

BUS_NAME = "org.vmgr1"
MANAGER_PATH = "/org/vmgr1"
MANAGER_IFACE = "org.vmgr1.Manager"
GROUP_IFACE = "org.vmgr1.Group"
VM_IFACE = "org.vmgr1.VM"
PROCESS_IFACE = "org.vmgr1.Process"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"

_DBUS = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                    interface="org.freedesktop.DBus")


def _take_fds(value: Any) -> Any:
    """``value`` with every received fd replaced by a plain int the caller owns."""
    if isinstance(value, FileDescriptor):
        return value.to_raw_fd()
    if isinstance(value, tuple):
        return tuple(_take_fds(v) for v in value)
    if isinstance(value, list):
        return [_take_fds(v) for v in value]
    return value


def _close_fds(value: Any) -> None:
    if isinstance(value, FileDescriptor):
        value.close()
    elif isinstance(value, (tuple, list)):
        for v in value:
            _close_fds(v)


class Bus:
    """A connection to the bus vmgrd is on, with calls that raise vmgr errors."""

    def __init__(self, address: str | None = None, *, timeout: float | None = None) -> None:
        try:
            # "SESSION": jeepney reads DBUS_SESSION_BUS_ADDRESS.
            self.conn: DBusConnection = open_dbus_connection(
                bus=address if address else "SESSION", enable_fds=True)
        except KeyError:
            raise Unreachable("no session bus: DBUS_SESSION_BUS_ADDRESS is not set") from None
        except (OSError, ValueError) as e:
            raise Unreachable(f"cannot connect to the bus: {e}") from None
        self.timeout = timeout

    def close(self) -> None:
        self.conn.close()

    def _send(self, msg: Message, member: str, timeout: float | None) -> Message:
        __tracebackhide__ = True  # noqa: F841 (pytest leaves this frame out)
        try:
            return self.conn.send_and_get_reply(
                msg, timeout=timeout if timeout is not None else self.timeout)
        except TimeoutError:
            raise Unreachable(f"no reply to {member} in time") from None
        except (OSError, EOFError) as e:
            raise Unreachable(f"the bus connection broke during {member}: {e}") from None

    def call(self, path: str, interface: str, member: str, signature: str = "",
             body: tuple[Any, ...] = (), *, timeout: float | None = None,
             waiting_ready: bool = False, destination: str = BUS_NAME) -> tuple[Any, ...]:
        """Call ``member`` and return the reply's body, fds as owned ints.

        ``timeout`` (seconds; None: the connection's default, itself None
        unless given: no limit) bounds the wait for the reply.
        """
        # pytest leaves frames with this set out of a failure's traceback:
        # a test's reader sees the test's line and vmgrd's error, not this
        # plumbing (--full-trace shows it all).
        __tracebackhide__ = True  # noqa: F841
        addr = DBusAddress(path, bus_name=destination, interface=interface)
        msg = new_method_call(addr, member, signature or None, body)
        reply = self._send(msg, member, timeout)
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "")
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else name
            _close_fds(reply.body)
            raise error_from_dbus(name, text, waiting_ready=waiting_ready)
        return tuple(_take_fds(reply.body))

    def get(self, path: str, interface: str, name: str) -> Any:
        """Property ``name`` of ``interface`` at ``path``."""
        __tracebackhide__ = True  # noqa: F841
        (variant,) = self.call(path, PROPERTIES_IFACE, "Get", "ss", (interface, name))
        return variant[1]

    def get_all(self, path: str, interface: str) -> dict[str, Any]:
        """Every property of ``interface`` at ``path``."""
        __tracebackhide__ = True  # noqa: F841
        (props,) = self.call(path, PROPERTIES_IFACE, "GetAll", "s", (interface,))
        return {k: v[1] for k, v in props.items()}

    def add_match(self, rule: MatchRule) -> None:
        self.call(_DBUS.object_path, _DBUS.interface or "", "AddMatch", "s", (rule.serialise(),),
                  destination=_DBUS.bus_name or "")

    def remove_match(self, rule: MatchRule) -> None:
        self.call(_DBUS.object_path, _DBUS.interface or "", "RemoveMatch", "s", (rule.serialise(),),
                  destination=_DBUS.bus_name or "")


class Subscription:
    """vmgrd's signals from now on, until closed: each as a :class:`Signal`.

    The bus sends only vmgrd's signals (``sender='org.vmgr1'``); they queue
    up here while other calls wait for their replies.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._rule = MatchRule(type="signal", sender=BUS_NAME, path_namespace=MANAGER_PATH)
        self._queue: deque[Message] = deque()
        # Matched locally by path only: the header names vmgrd's unique name.
        self._filter = bus.conn.filter(MatchRule(type="signal", path_namespace=MANAGER_PATH),
                                       queue=self._queue)
        try:
            bus.add_match(self._rule)
        except Error:
            self._filter.close()
            raise

    def next(self, timeout: float | None = None) -> "Signal | None":
        """The next signal, waiting up to ``timeout`` seconds (None: without
        limit); None if none came in time."""
        try:
            msg = self._bus.conn.recv_until_filtered(self._queue, timeout=timeout)
        except TimeoutError:
            return None
        except (OSError, EOFError) as e:
            raise Unreachable(f"the bus connection broke: {e}") from None
        f = msg.header.fields
        return Signal(f.get(HeaderFields.path, ""), f.get(HeaderFields.interface, ""),
                      f.get(HeaderFields.member, ""), tuple(_take_fds(msg.body)))

    def close(self) -> None:
        self._filter.close()
        try:
            self._bus.remove_match(self._rule)
        except Error:
            pass  # the connection is going away anyway

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Signal:
    """One signal: the object's path, interface, member and arguments.

    ``PropertiesChanged`` has ``args`` ``(interface, {name: value}, [invalidated])``
    with the values unwrapped.
    """

    __slots__ = ("path", "interface", "member", "args")

    def __init__(self, path: str, interface: str, member: str, args: tuple[Any, ...]) -> None:
        self.path = path
        self.interface = interface
        self.member = member
        if member == "PropertiesChanged" and len(args) == 3:
            args = (args[0], {k: v[1] for k, v in args[1].items()}, args[2])
        self.args = args

    def __repr__(self) -> str:
        return f"Signal({self.path!r}, {self.interface!r}, {self.member!r}, {self.args!r})"
