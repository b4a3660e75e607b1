# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmgr's D-Bus API (docs/dbus-api.md) as Python objects.

:class:`Client` is ``org.vmgr1.Manager``, :class:`Group` and :class:`VM` its
objects, :class:`Process` a command started with ``Exec``. Calls block until
vmgrd answers; errors are the exceptions of :mod:`vmgr.errors`.
"""

from __future__ import annotations

import ctypes
import io
import os
import selectors
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, Union

from . import _bus
from ._bus import Bus, Subscription
from .errors import Error, FileNotFound, NoSuchGroup, NoSuchSnapshot, NoSuchVM
from .spec import Spec, check_file_name, check_name, group_spec_json, vm_spec_json

__all__ = ["Client", "Group", "VM", "Process", "Snapshot", "SnapshotInfo", "ServedFile",
           "Forward", "usec"]

StrPath = Union[str, "os.PathLike[str]"]

_UINT64_MAX = 2**64 - 1
# How long past a call's own timeout_usec to wait for vmgrd's answer: its
# timer fires first and the reply says what was missing.
_REPLY_GRACE = 10.0


def usec(seconds: float | None) -> int:
    """``timeout_usec`` for a timeout in seconds: 0 (no limit) for None or 0."""
    if seconds is None or seconds <= 0:
        return 0
    return min(int(seconds * 1_000_000), _UINT64_MAX)


def _reply_timeout(seconds: float | None) -> float | None:
    return None if seconds is None or seconds <= 0 else seconds + _REPLY_GRACE


@dataclass(frozen=True)
class SnapshotInfo:
    """One entry of ``ListSnapshots``."""
    name: str
    kind: str  # "template" or "user"
    shape: str
    size_bytes: int
    created_usec: int
    last_used_usec: int
    source: str  # "GROUP/VM"


@dataclass(frozen=True)
class ServedFile:
    """A file a group's file server serves."""
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Forward:
    """A port forward: where it listens and where it leads. The one
    :meth:`Group.forward` returns is a context manager that removes it."""
    vm: str
    protocol: str
    guest_port: int
    host_address: str
    host_port: int
    group: "Group | None" = field(default=None, compare=False, repr=False)

    def remove(self) -> None:
        """Stop this forward (:class:`vmgr.FileNotFound` if it is gone)."""
        if self.group is None:
            raise TypeError("this Forward came from Group.forwards: use Group.remove_forward()")
        self.group.remove_forward(self)

    def __enter__(self) -> "Forward":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.remove()
        except (FileNotFound, NoSuchGroup):
            pass  # gone with its VM or group already


class Snapshot:
    """A user snapshot :meth:`VM.snapshot` made; as a context manager it is
    deleted on leaving (VMs started from it go on running)."""

    def __init__(self, client: "Client", name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<vmgr.Snapshot {self.name!r}>"

    def delete(self) -> None:
        self.client.delete_snapshot(self.name)

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.delete()
        except NoSuchSnapshot:
            pass


class Client:
    """A connection to vmgrd (``org.vmgr1`` on the session bus, or on the bus
    at ``address``). Close it, or use it as a context manager: processes
    started with :meth:`VM.exec` belong to this connection and are killed
    when it closes. Not thread-safe: give each thread its own client.
    """

    def __init__(self, address: str | None = None, *, timeout: float | None = None) -> None:
        self._bus = Bus(address, timeout=timeout)

    def close(self) -> None:
        self._bus.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, member: str, signature: str = "", body: tuple[Any, ...] = (),
              **kw: Any) -> tuple[Any, ...]:
        __tracebackhide__ = True  # noqa: F841 (see _bus.Bus.call)
        return self._bus.call(_bus.MANAGER_PATH, _bus.MANAGER_IFACE, member, signature, body, **kw)

    # -- Manager properties
    @property
    def version(self) -> str:
        """vmgrd's version."""
        return str(self._bus.get(_bus.MANAGER_PATH, _bus.MANAGER_IFACE, "Version"))

    @property
    def network_mode(self) -> str:
        """``"host"`` or ``"namespace"``: where the groups' networks live."""
        return str(self._bus.get(_bus.MANAGER_PATH, _bus.MANAGER_IFACE, "NetworkMode"))

    @property
    def groups_adopted(self) -> int:
        """Groups this vmgrd took over when it started."""
        return int(self._bus.get(_bus.MANAGER_PATH, _bus.MANAGER_IFACE, "GroupsAdopted"))

    # -- groups
    def create_group(self, name: str, spec: Spec = None) -> "Group":
        """Create group ``name`` from ``spec`` (a mapping, JSON text, or None
        for a network-only group) and return it once its network is up and
        every VM's QEMU runs (not yet ready: see :meth:`Group.wait_ready`).
        As a context manager the group is deleted on leaving."""
        check_name(name, "group name")
        (path,) = self._call("CreateGroup", "ss", (name, group_spec_json(spec)))
        return Group(self, name, path)

    def delete_group(self, name: str) -> None:
        """Delete group ``name``; returns once everything of it is gone."""
        check_name(name, "group name")
        self._call("DeleteGroup", "s", (name,))

    def group(self, name: str) -> "Group":
        """The existing group ``name`` (:class:`NoSuchGroup` if none)."""
        check_name(name, "group name")
        (path,) = self._call("GetGroup", "s", (name,))
        return Group(self, name, path)

    def groups(self) -> list["Group"]:
        """Every group, oldest first."""
        (entries,) = self._call("ListGroups")
        return [Group(self, name, path) for name, path in entries]

    # -- snapshots
    def snapshots(self) -> list[SnapshotInfo]:
        """The user's snapshots and templates, oldest first."""
        (entries,) = self._call("ListSnapshots")
        return [SnapshotInfo(*e) for e in entries]

    def delete_snapshot(self, name: str) -> None:
        """Delete user snapshot ``name``, or a template as ``"template:SHAPE"``."""
        self._call("DeleteSnapshot", "s", (name,))

    # -- the daemon
    def reexec(self) -> None:
        """Ask vmgrd to re-execute itself, keeping every group. Calls made
        right after may fail with :class:`vmgr.Unreachable` until the new
        vmgrd has claimed its name again."""
        self._call("Reexec")

    def subscribe(self) -> Subscription:
        """vmgrd's signals (GroupNew, GroupRemoved, PropertiesChanged) from
        now on; use as a context manager and read with ``.next(timeout)``."""
        return Subscription(self._bus)

    # -- namespace mode
    def open_namespaces(self) -> tuple[int, int]:
        """``(user_ns, net_ns)`` fds of vmgrd's namespaces (namespace mode;
        :class:`NotSupported` in host mode). The caller owns and closes them."""
        userns, netns = self._call("OpenNamespaces")
        return int(userns), int(netns)

    def enter(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` where the guests are reachable, like ``vmgrctl enter``:
        in namespace mode inside vmgrd's user and network namespaces (joined in
        the child, between fork and exec, where it has one thread), in host
        mode as is. ``kwargs`` go to :func:`subprocess.run`."""
        if self.network_mode != "namespace":
            return subprocess.run(argv, **kwargs)
        userns, netns = self.open_namespaces()
        try:
            return subprocess.run(argv, preexec_fn=_setns_child(userns, netns),
                                  pass_fds=tuple(kwargs.pop("pass_fds", ())) + (userns, netns),
                                  **kwargs)
        finally:
            os.close(userns)
            os.close(netns)


_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


def _setns_child(userns: int, netns: int) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)

    def join() -> None:
        # The user namespace first: its capabilities allow the other setns.
        for fd, kind in ((userns, _CLONE_NEWUSER), (netns, _CLONE_NEWNET)):
            if libc.setns(fd, kind) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns: {os.strerror(err)}")
    return join


def _gone(e: Error, cls: type[Error], message: str) -> Error:
    """``e``, or ``cls`` when it says the object is gone: the bus's answer
    for a path vmgrd no longer has, once its group or VM was deleted."""
    if e.name in ("org.freedesktop.DBus.Error.UnknownObject",
                  "org.freedesktop.DBus.Error.UnknownInterface"):
        return cls(message, cls.dbus_name)
    return e


class Group:
    """A group (``org.vmgr1.Group``). As a context manager it is deleted on
    leaving (a group gone already is fine)."""

    def __init__(self, client: Client, name: str, path: str) -> None:
        self.client = client
        self.name = name
        self.path = path

    def __repr__(self) -> str:
        return f"<vmgr.Group {self.name!r}>"

    def __enter__(self) -> "Group":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.delete()
        except NoSuchGroup:
            pass

    def _call(self, member: str, signature: str = "", body: tuple[Any, ...] = (),
              **kw: Any) -> tuple[Any, ...]:
        __tracebackhide__ = True  # noqa: F841 (see _bus.Bus.call)
        try:
            return self.client._bus.call(self.path, _bus.GROUP_IFACE, member, signature, body, **kw)
        except Error as e:
            raise _gone(e, NoSuchGroup, f"no group '{self.name}'") from None

    def _prop(self, name: str) -> Any:
        __tracebackhide__ = True  # noqa: F841 (see _bus.Bus.call)
        try:
            return self.client._bus.get(self.path, _bus.GROUP_IFACE, name)
        except Error as e:
            raise _gone(e, NoSuchGroup, f"no group '{self.name}'") from None


    def properties(self) -> dict[str, Any]:
        """Every property at once, by its D-Bus name."""
        return self.client._bus.get_all(self.path, _bus.GROUP_IFACE)

    state = property(lambda self: str(self._prop("State")),
                     doc="creating, running, deleting or failed")
    bridge = property(lambda self: str(self._prop("Bridge")))
    prefix6 = property(lambda self: str(self._prop("Prefix6")), doc="the group's IPv6 /64")
    gateway6 = property(lambda self: str(self._prop("Gateway6")))
    management6 = property(lambda self: str(self._prop("Management6")))
    logs6 = property(lambda self: str(self._prop("Logs6")))
    files6 = property(lambda self: str(self._prop("Files6")), doc="the file server's address")
    subnet4 = property(lambda self: str(self._prop("Subnet4")), doc="the group's IPv4 /24")
    gateway4 = property(lambda self: str(self._prop("Gateway4")))
    runtime_directory = property(lambda self: str(self._prop("RuntimeDirectory")))
    dnsmasq = property(lambda self: str(self._prop("Dnsmasq")), doc="dnsmasq's state")
    dnsmasq_restarts = property(lambda self: int(self._prop("DnsmasqRestarts")))

    @property
    def timings(self) -> dict[str, int]:
        """µs since CreateGroup began at which each stage completed."""
        return dict(self._prop("Timings"))

    @property
    def served_files(self) -> list[ServedFile]:
        return [ServedFile(*f) for f in self._prop("ServedFiles")]

    @property
    def forwards(self) -> list[Forward]:
        return [Forward(*f) for f in self._prop("Forwards")]

    @property
    def vms(self) -> dict[str, "VM"]:
        """The group's VMs by name, as they are now (a new dict each time)."""
        result: dict[str, VM] = {}
        for path in self._prop("VMs"):
            try:
                name = str(self.client._bus.get(path, _bus.VM_IFACE, "Name"))
            except Error as e:
                if isinstance(_gone(e, NoSuchVM, ""), NoSuchVM):
                    continue  # removed since the listing
                raise
            result[name] = VM(self, name, path)
        return result

    def vm(self, name: str) -> "VM":
        """VM ``name`` (:class:`NoSuchVM` if the group has none)."""
        check_name(name, "VM name")
        (path,) = self._call("GetVM", "s", (name,))
        return VM(self, name, path)

    def delete(self) -> None:
        """Delete the group; returns once everything of it is gone."""
        self._call("Delete")

    def add_vm(self, name: str, spec: Spec = None) -> "VM":
        """Add VM ``name`` (``spec``: one VM object, or None for the default
        VM) and start it; returns once its QEMU runs."""
        (path,) = self._call("AddVM", "ss", (name, vm_spec_json(name, spec)))
        return VM(self, name, path)

    def remove_vm(self, name: str) -> None:
        """Destroy VM ``name`` and delete its TAPs, disks and console log."""
        check_name(name, "VM name")
        self._call("RemoveVM", "s", (name,))

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return once every VM is ready. After ``timeout`` seconds (None:
        no limit) raise :class:`vmgr.NotReady`, whose ``missing`` names each
        VM that was not ready and its stage; :class:`vmgr.Failed` at once
        when a VM crashed."""
        self._call("WaitReady", "t", (usec(timeout),), timeout=_reply_timeout(timeout),
                   waiting_ready=True)

    def follow_logs(self, *, vms: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                    from_start: bool = True, skip: int = 0, follow: bool = True) -> TextIO:
        """The group's log as a text stream of lines (``[vm=a console] ...``).
        With ``follow`` it ends when the group is deleted; close it when done."""
        options: dict[str, tuple[str, Any]] = {
            "from_start": ("b", from_start), "skip": ("t", skip), "follow": ("b", follow)}
        if vms is not None:
            options["vms"] = ("as", list(vms))
        if sources is not None:
            options["sources"] = ("as", list(sources))
        (fd,) = self._call("FollowLogs", "a{sv}", (options,))
        return open(fd, "r", encoding="utf-8", errors="replace")

    def logs(self, **kwargs: Any) -> str:
        """The group's log as it is now (``follow_logs(follow=False)``, read whole)."""
        with self.follow_logs(follow=False, **kwargs) as f:
            return f.read()

    def collect(self, directory: StrPath) -> Path:
        """Write the group's evidence (group.json, group.log, consoles, ...)
        into ``directory`` (made absolute; created if missing) and return it."""
        path = Path(directory).absolute()
        self._call("Collect", "s", (str(path),))
        return path

    def serve(self, file: StrPath | IO[bytes] | int, name: str | None = None) -> str:
        """Serve a file to the guests and return its URL. ``file`` is a path,
        an open binary file or an fd; ``name`` defaults to the path's last part."""
        if name is None:
            if isinstance(file, (str, os.PathLike)):
                name = os.path.basename(os.fspath(file))
            else:
                raise TypeError("serve(): name is needed for a file object or an fd")
        check_file_name(name)
        with _readable_fd(file) as fd:
            (url,) = self._call("ServeFile", "sh", (name, fd))
        return str(url)

    def unserve(self, name: str) -> None:
        """Stop serving ``name``."""
        self._call("UnserveFile", "s", (name,))

    def forward(self, vm: str, guest_port: int, *, protocol: str = "tcp",
                host_address: str = "", host_port: int = 0) -> Forward:
        """Relay ``host_address``:``host_port`` (default 127.0.0.1, a free
        port) in vmgrd's namespace to ``guest_port`` of VM ``vm``; returns
        the forward with where it listens."""
        address, port = self._call("ForwardPort", "ssqsq",
                                   (vm, protocol, guest_port, host_address, host_port))
        return Forward(vm, protocol, guest_port, str(address), int(port), self)

    def remove_forward(self, forward: Forward | None = None, *, protocol: str = "tcp",
                       host_address: str = "", host_port: int = 0) -> None:
        """Stop a forward: the one given, or the one listening there."""
        if forward is not None:
            protocol, host_address, host_port = forward.protocol, forward.host_address, forward.host_port
        self._call("RemoveForward", "ssq", (protocol, host_address, host_port))


class VM:
    """A VM of a group (``org.vmgr1.VM``)."""

    def __init__(self, group: Group, name: str, path: str) -> None:
        self.group = group
        self.name = name
        self.path = path

    def __repr__(self) -> str:
        return f"<vmgr.VM {self.group.name!r}/{self.name!r}>"

    def _call(self, member: str, signature: str = "", body: tuple[Any, ...] = (),
              **kw: Any) -> tuple[Any, ...]:
        __tracebackhide__ = True  # noqa: F841 (see _bus.Bus.call)
        try:
            return self.group.client._bus.call(self.path, _bus.VM_IFACE, member, signature, body, **kw)
        except Error as e:
            raise _gone(e, NoSuchVM, f"group '{self.group.name}' has no VM '{self.name}'") from None

    def _prop(self, name: str) -> Any:
        __tracebackhide__ = True  # noqa: F841 (see _bus.Bus.call)
        try:
            return self.group.client._bus.get(self.path, _bus.VM_IFACE, name)
        except Error as e:
            raise _gone(e, NoSuchVM, f"group '{self.group.name}' has no VM '{self.name}'") from None

    def properties(self) -> dict[str, Any]:
        """Every property at once, by its D-Bus name."""
        return self.group.client._bus.get_all(self.path, _bus.VM_IFACE)

    state = property(lambda self: str(self._prop("State")),
                     doc="defined, starting, running, ready, stopping, stopped or crashed")
    mac = property(lambda self: str(self._prop("MAC")))
    ipv6 = property(lambda self: str(self._prop("IPv6")), doc="the VM's derived SLAAC address")
    mac4 = property(lambda self: str(self._prop("MAC4")))
    ipv4 = property(lambda self: str(self._prop("IPv4")),
                    doc='the leased IPv4 address, "" without one (yet)')
    tap = property(lambda self: str(self._prop("Tap")))
    tap4 = property(lambda self: str(self._prop("Tap4")))
    console_log = property(lambda self: str(self._prop("ConsoleLog")))
    vcpus = property(lambda self: int(self._prop("Vcpus")))
    memory_mib = property(lambda self: int(self._prop("MemoryMiB")))
    uuid = property(lambda self: str(self._prop("UUID")))
    last_error = property(lambda self: str(self._prop("LastError")))

    @property
    def timings(self) -> dict[str, int]:
        """µs since the VM was (last) started at which each stage completed."""
        return dict(self._prop("Timings"))

    # -- life cycle
    def start(self) -> None:
        """Start a defined, stopped or crashed VM; returns once QEMU runs."""
        self._call("Start")

    def kill(self) -> None:
        """Stop the VM at once (pull the plug)."""
        self._call("Kill")

    def shutdown(self, timeout: float | None = None) -> None:
        """Ask the guest to power off; stop it hard after ``timeout`` seconds
        (None: wait without limit). Returns once it is stopped."""
        self._call("Shutdown", "t", (usec(timeout),), timeout=_reply_timeout(timeout))

    def reboot(self) -> None:
        """Ask the guest to reboot (ACPI)."""
        self._call("Reboot")

    def restart(self) -> None:
        """Kill, then start again."""
        self._call("Restart")

    def remove(self) -> None:
        """Remove this VM from its group."""
        self.group.remove_vm(self.name)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the VM is ready; :class:`vmgr.NotReady` naming the
        missing stage after ``timeout`` seconds (None: no limit)."""
        self._call("WaitReady", "t", (usec(timeout),), timeout=_reply_timeout(timeout),
                   waiting_ready=True)

    def snapshot(self, name: str) -> Snapshot:
        """Save the running VM as user snapshot ``name`` (memory, devices,
        disks; the VM goes on running) and return it: ``"from_snapshot":
        name`` in a VM's spec starts a clone of it. As a context manager the
        snapshot is deleted on leaving."""
        check_name(name, "snapshot name")
        self._call("Snapshot", "s", (name,))
        return Snapshot(self.group.client, name)

    # -- commands and files through the guest agent
    def run(self, argv: Sequence[str], input: bytes = b"", timeout: float | None = None,
            check: bool = False) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` in the guest (as root), feed it ``input``, and return
        its exit status (128+N for signal N) and output, like
        :func:`subprocess.run` with ``capture_output=True``. After ``timeout``
        seconds the command is killed and :class:`vmgr.Timeout` raised; with
        ``check``, a nonzero status raises :class:`subprocess.CalledProcessError`."""
        args = list(argv)
        status, out, err = self._call("Run", "asayt", (args, bytes(input), usec(timeout)),
                                      timeout=_reply_timeout(timeout))
        result = subprocess.CompletedProcess(args, int(status), bytes(out), bytes(err))
        if check:
            result.check_returncode()
        return result

    def exec(self, argv: Sequence[str], *, env: Mapping[str, str] | Sequence[str] | None = None,
             cwd: str | None = None) -> "Process":
        """Start ``argv`` in the guest with streamed stdin, stdout and stderr
        (binary file objects). Read the output as the process writes it
        (it is flow-controlled end to end), or use :meth:`Process.communicate`."""
        options: dict[str, tuple[str, Any]] = {}
        if env is not None:
            entries = [f"{k}={v}" for k, v in env.items()] if isinstance(env, Mapping) else list(env)
            options["env"] = ("as", entries)
        if cwd is not None:
            options["cwd"] = ("s", cwd)
        stdin, stdout, stderr, path = self._call("Exec", "asa{sv}", (list(argv), options))
        return Process(self, list(argv), path, stdin, stdout, stderr)

    def copy_to(self, source: StrPath | IO[bytes] | int | bytes, guest_path: str,
                mode: int = 0o644) -> None:
        """Write ``source`` (a path, an open binary file, an fd, or bytes) to
        ``guest_path`` with permission bits ``mode``; the guest sees it
        appear whole."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            # A pipe would need a writer thread; an anonymous file needs none.
            fd = os.memfd_create("vmgr-copy", os.MFD_CLOEXEC)
            with os.fdopen(fd, "wb+") as f:
                f.write(source)
                f.seek(0)
                self._call("CopyTo", "hsu", (f.fileno(), guest_path, mode))
            return
        with _readable_fd(source) as fd:
            self._call("CopyTo", "hsu", (fd, guest_path, mode))

    def copy_from(self, guest_path: str, destination: StrPath | IO[bytes] | None = None) -> bytes | None:
        """Read ``guest_path`` from the guest: returned as bytes, or written
        to ``destination`` (a path or a binary file), returning None."""
        (fd,) = self._call("CopyFrom", "s", (guest_path,))
        with open(fd, "rb") as src:
            if destination is None:
                return src.read()
            if isinstance(destination, (str, os.PathLike)):
                with open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copyfileobj(src, destination)
        return None


class _readable_fd:
    """An fd to read ``source`` from: a path opened here (and closed after),
    or a file object's or int's own fd."""

    def __init__(self, source: StrPath | IO[bytes] | int) -> None:
        self._owned: int | None = None
        if isinstance(source, int):
            self.fd = source
        elif isinstance(source, (str, os.PathLike)):
            self._owned = self.fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        else:
            self.fd = source.fileno()

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self._owned is not None:
            os.close(self._owned)


class Process:
    """A command started with :meth:`VM.exec` (``org.vmgr1.Process``).

    ``stdin`` is a binary file to write (close it for end-of-file);
    ``stdout`` and ``stderr`` binary files to read until end-of-file.
    ``returncode`` is None until :meth:`wait` answered: the exit status, or
    ``-N`` for signal N, as in :class:`subprocess.Popen`.
    """

    def __init__(self, vm: VM, args: list[str], path: str, stdin: int, stdout: int, stderr: int) -> None:
        self.vm = vm
        self.args = args
        self.path = path
        self.stdin: BinaryIO | None = open(stdin, "wb", buffering=0)
        self.stdout: BinaryIO = open(stdout, "rb", buffering=0)
        self.stderr: BinaryIO = open(stderr, "rb", buffering=0)
        self.returncode: int | None = None

    def __repr__(self) -> str:
        return f"<vmgr.Process {self.path!r} args={self.args!r} returncode={self.returncode}>"

    def _call(self, member: str, signature: str = "", body: tuple[Any, ...] = (),
              **kw: Any) -> tuple[Any, ...]:
        __tracebackhide__ = True  # noqa: F841 (see _bus.Bus.call)
        return self.vm.group.client._bus.call(self.path, _bus.PROCESS_IFACE, member, signature, body, **kw)

    @property
    def id(self) -> int:
        return int(self.vm.group.client._bus.get(self.path, _bus.PROCESS_IFACE, "Id"))

    def kill(self, signal: int = 9) -> None:
        """Send ``signal`` to the process's process group."""
        self._call("Kill", "i", (signal,))

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit and its output to end; return
        :attr:`returncode`. Its output must be read meanwhile (or be small):
        the process blocks while nobody reads. ``timeout`` bounds the wait
        for vmgrd's answer (:class:`vmgr.Unreachable` after it)."""
        if self.returncode is None:
            if self.stdin is not None and not self.stdin.closed:
                self.stdin.close()
            status, sig = self._call("Wait", timeout=timeout)
            self.returncode = -int(sig) if int(status) == -1 else int(status)
        return self.returncode

    def communicate(self, input: bytes = b"") -> tuple[bytes, bytes]:
        """Write ``input`` and end stdin, read stdout and stderr to the end,
        wait; return ``(stdout, stderr)``."""
        out, err = bytearray(), bytearray()
        view = memoryview(bytes(input))
        sel = selectors.DefaultSelector()
        try:
            if self.stdin is not None and not self.stdin.closed:
                if view:
                    os.set_blocking(self.stdin.fileno(), False)
                    sel.register(self.stdin, selectors.EVENT_WRITE)
                else:
                    self.stdin.close()
            sel.register(self.stdout, selectors.EVENT_READ, out)
            sel.register(self.stderr, selectors.EVENT_READ, err)
            while sel.get_map():
                for key, _ in sel.select():
                    if key.fileobj is self.stdin:
                        assert self.stdin is not None
                        try:
                            n = os.write(self.stdin.fileno(), view[:65536])
                        except BrokenPipeError:
                            n, view = 0, view[:0]
                        view = view[n:]
                        if not view:
                            sel.unregister(self.stdin)
                            self.stdin.close()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data.extend(chunk)
                    else:
                        sel.unregister(key.fileobj)
        finally:
            sel.close()
        self.stdout.close()
        self.stderr.close()
        self.wait()
        return bytes(out), bytes(err)

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc: object) -> None:
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                f.close()
        if self.returncode is None:
            try:
                self.kill()
            except Exception:
                pass  # exited already
            self.wait()
