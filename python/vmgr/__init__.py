# SPDX-License-Identifier: LGPL-2.1-or-later
"""A Python client for vmgr's D-Bus API (``org.vmgr1``).

    import vmgr

    with vmgr.Client() as client:
        with client.create_group("web", {"vms": [{"name": "a"}, {"name": "b"}]}) as group:
            group.wait_ready(timeout=120)
            a = group.vms["a"]
            print(a.run(["uname", "-r"]).stdout)

See docs/python.md.
"""

from .client import VM, Client, Forward, Group, Process, ServedFile, Snapshot, SnapshotInfo, usec
from ._bus import Signal, Subscription
from .errors import (ERROR_CLASSES, AddressConflict, Busy, Error, Failed, FileExists,
                     FileNotFound, GroupExists, HelperFailed, InvalidArgs, InvalidName,
                     InvalidSpec, LimitExceeded, MissingStage, NoSuchGroup, NoSuchSnapshot,
                     NoSuchVM, NotReady, NotSupported, PermissionDenied, SnapshotExists,
                     Timeout, Unreachable, VMExists)

__version__ = "0.1"

__all__ = [
    "Client", "Group", "VM", "Process", "Forward", "ServedFile", "Snapshot", "SnapshotInfo",
    "Signal", "Subscription", "usec",
    "Error", "Unreachable", "InvalidName", "InvalidSpec", "GroupExists", "NoSuchGroup",
    "VMExists", "NoSuchVM", "AddressConflict", "PermissionDenied", "HelperFailed",
    "LimitExceeded", "NoSuchSnapshot", "SnapshotExists", "Busy", "Timeout", "NotReady",
    "MissingStage", "Failed", "InvalidArgs", "FileExists", "FileNotFound", "NotSupported",
    "ERROR_CLASSES",
]
