# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmgr's D-Bus errors as Python exceptions.

Every error vmgrd answers with has a name (``org.vmgr1.Error.NoSuchGroup``)
and a message that is one sentence for a person. Each name maps to one class
below, all subclasses of :class:`Error`; a name this module does not know
becomes :class:`Error` itself, with the name kept in :attr:`Error.name`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Error", "Unreachable", "InvalidName", "InvalidSpec", "GroupExists",
    "NoSuchGroup", "VMExists", "NoSuchVM", "AddressConflict",
    "PermissionDenied", "HelperFailed", "LimitExceeded", "NoSuchSnapshot",
    "SnapshotExists", "Busy", "Timeout", "NotReady", "MissingStage",
    "Failed", "InvalidArgs", "FileExists", "FileNotFound", "NotSupported",
    "error_from_dbus", "ERROR_CLASSES",
]


class Error(Exception):
    """Base of every vmgr error.

    ``name`` is the D-Bus error name, ``message`` vmgrd's sentence.
    """

    #: the D-Bus error name this class stands for ("" for the base class)
    dbus_name: str = ""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name if name is not None else self.dbus_name

    def __str__(self) -> str:
        return self.message


class Unreachable(Error):
    """The bus or vmgrd cannot be reached (vmgrctl's exit status 4)."""


class InvalidName(Error):
    """A group, VM, snapshot or served file name is not valid."""
    dbus_name = "org.vmgr1.Error.InvalidName"


class InvalidSpec(Error):
    """The spec is not valid; the message names the JSON path."""
    dbus_name = "org.vmgr1.Error.InvalidSpec"


class GroupExists(Error):
    """A group of that name exists."""
    dbus_name = "org.vmgr1.Error.GroupExists"


class NoSuchGroup(Error):
    """No group of that name."""
    dbus_name = "org.vmgr1.Error.NoSuchGroup"


class VMExists(Error):
    """The group has a VM of that name."""
    dbus_name = "org.vmgr1.Error.VMExists"


class NoSuchVM(Error):
    """The group has no VM of that name."""
    dbus_name = "org.vmgr1.Error.NoSuchVM"


class AddressConflict(Error):
    """The group's network, or a forward's host port, collides with another."""
    dbus_name = "org.vmgr1.Error.AddressConflict"


class PermissionDenied(Error):
    """The caller may not use this vmgrd, or the helper refused."""
    dbus_name = "org.vmgr1.Error.PermissionDenied"


class HelperFailed(Error):
    """vmgr-netadm could not do what was asked."""
    dbus_name = "org.vmgr1.Error.HelperFailed"


class LimitExceeded(Error):
    """A configured or built-in limit would be exceeded."""
    dbus_name = "org.vmgr1.Error.LimitExceeded"


class NoSuchSnapshot(Error):
    """The user has no snapshot (or template) of that name."""
    dbus_name = "org.vmgr1.Error.NoSuchSnapshot"


class SnapshotExists(Error):
    """The user has a snapshot of that name already."""
    dbus_name = "org.vmgr1.Error.SnapshotExists"


class Busy(Error):
    """vmgrd is shutting down, the group is being deleted, or the VM is busy."""
    dbus_name = "org.vmgr1.Error.Busy"


class Timeout(Error):
    """Something did not complete in time."""
    dbus_name = "org.vmgr1.Error.Timeout"


@dataclass(frozen=True)
class MissingStage:
    """A VM that was not ready: the first stage it did not complete, and what
    the probe deciding that stage last said ("" if nothing)."""
    vm: str
    stage: str
    detail: str = ""


class NotReady(Timeout):
    """``WaitReady`` timed out; :attr:`missing` names each VM that was not
    ready with its missing stage (``{"b": MissingStage("b", "probe_passed")}``)."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message, name)
        self.missing: dict[str, MissingStage] = parse_missing_stages(message)


class Failed(Error):
    """Anything else, with the reason (a crashed VM, a command that could not start)."""
    dbus_name = "org.vmgr1.Error.Failed"


class InvalidArgs(Error):
    """An argument is not valid."""
    dbus_name = "org.freedesktop.DBus.Error.InvalidArgs"


class FileExists(Error):
    """The group already serves a file of that name."""
    dbus_name = "org.freedesktop.DBus.Error.FileExists"


class FileNotFound(Error):
    """The group serves no file of that name, or has no such forward."""
    dbus_name = "org.freedesktop.DBus.Error.FileNotFound"


class NotSupported(Error):
    """Not in this network mode, or not for a VM without the guest agent."""
    dbus_name = "org.freedesktop.DBus.Error.NotSupported"


#: D-Bus error name -> class, for every name vmgrd answers with.
ERROR_CLASSES: dict[str, type[Error]] = {
    cls.dbus_name: cls
    for cls in (InvalidName, InvalidSpec, GroupExists, NoSuchGroup, VMExists,
                NoSuchVM, AddressConflict, PermissionDenied, HelperFailed,
                LimitExceeded, NoSuchSnapshot, SnapshotExists, Busy, Timeout,
                Failed, InvalidArgs, FileExists, FileNotFound, NotSupported)
}

# What the bus itself says when vmgrd is not there (or went away mid-call).
_UNREACHABLE_NAMES = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.NoServer",
    "org.freedesktop.DBus.Error.Spawn.ChildExited",
    "org.freedesktop.DBus.Error.Spawn.ExecFailed",
})

# The stage names of org.vmgr1.VM's Timings, in order (docs/dbus-api.md).
STAGES = ("qemu_started", "restored", "agent_connected", "identity_applied",
          "ipv6_configured", "ipv4_leased", "probe_passed", "host_probe_passed",
          "console_matched", "ready")

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_STAGE = "(?:" + "|".join(STAGES) + ")"
# Group.WaitReady: "... not ready: a (agent_connected), b (host_probe_passed: tcp
# port 8080: connection refused)". A detail may hold ", " and ")", so an entry
# ends only where the next "NAME (STAGE" begins, or at the end.
_GROUP_ENTRY = re.compile(
    r"(" + _NAME + r") \((" + _STAGE + r")(?:: (.*?))?\)(?=, " + _NAME + r" \(" + _STAGE + r"[:)]|$)")
# VM.WaitReady: "VM 'd' was not ready within 60.0 s: stage host_probe_passed did
# not complete (tcp port 8080: connection refused)".
_VM_MESSAGE = re.compile(
    r"^VM '(" + _NAME + r")' was not ready within [^:]*: stage (" + _STAGE
    + r") did not complete(?: \((.*)\))?$")


def parse_missing_stages(message: str) -> dict[str, MissingStage]:
    """The VMs a ``WaitReady`` timeout message names, each with its missing
    stage and the probe's last error; empty for a message of another form."""
    m = _VM_MESSAGE.match(message)
    if m:
        return {m[1]: MissingStage(m[1], m[2], m[3] or "")}
    marker = ": not ready: "
    at = message.find(marker)
    if at < 0:
        return {}
    rest = message[at + len(marker):]
    return {m[1]: MissingStage(m[1], m[2], m[3] or "")
            for m in _GROUP_ENTRY.finditer(rest)}


def error_from_dbus(name: str, message: str, *, waiting_ready: bool = False) -> Error:
    """The exception for D-Bus error ``name`` with ``message``. A timeout of
    ``WaitReady`` (``waiting_ready``) becomes :class:`NotReady`."""
    if name in _UNREACHABLE_NAMES:
        return Unreachable(message, name)
    if waiting_ready and name == Timeout.dbus_name:
        return NotReady(message, name)
    cls = ERROR_CLASSES.get(name, Error)
    return cls(message, name)
