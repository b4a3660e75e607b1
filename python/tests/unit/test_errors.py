# SPDX-License-Identifier: LGPL-2.1-or-later
"""Error mapping: every D-Bus error name vmgrd documents has its class."""

import re
from pathlib import Path

import pytest

import vmgr
from vmgr.errors import STAGES, error_from_dbus, parse_missing_stages

API_DOC = Path(__file__).resolve().parents[3] / "docs" / "dbus-api.md"


def documented_error_names() -> set[str]:
    """The names in the error table of docs/dbus-api.md."""
    text = API_DOC.read_text()
    table = text[text.index("\n## Errors"):]
    return set(re.findall(r"^\| `(org\.[A-Za-z0-9.]+)` \|", table, re.M))


def test_every_documented_error_has_its_class():
    names = documented_error_names()
    assert len(names) >= 18, names
    for name in names:
        cls = vmgr.ERROR_CLASSES.get(name)
        assert cls is not None, f"{name} has no class"
        assert issubclass(cls, vmgr.Error)
        assert cls.dbus_name == name
        assert cls.__name__ == name.rsplit(".", 1)[1]


def test_not_supported_has_its_class():
    # Not in the table, but OpenNamespaces and Run answer with it.
    e = error_from_dbus("org.freedesktop.DBus.Error.NotSupported", "no agent")
    assert type(e) is vmgr.NotSupported


@pytest.mark.parametrize("name, cls", [
    ("org.vmgr1.Error.NoSuchGroup", vmgr.NoSuchGroup),
    ("org.vmgr1.Error.InvalidSpec", vmgr.InvalidSpec),
    ("org.vmgr1.Error.Busy", vmgr.Busy),
    ("org.vmgr1.Error.Timeout", vmgr.Timeout),
    ("org.freedesktop.DBus.Error.InvalidArgs", vmgr.InvalidArgs),
    ("org.freedesktop.DBus.Error.FileNotFound", vmgr.FileNotFound),
    ("org.freedesktop.DBus.Error.ServiceUnknown", vmgr.Unreachable),
    ("org.freedesktop.DBus.Error.NoReply", vmgr.Unreachable),
])
def test_names_map_to_classes(name, cls):
    e = error_from_dbus(name, "a sentence")
    assert type(e) is cls
    assert e.name == name
    assert e.message == "a sentence"
    assert str(e) == "a sentence"
    with pytest.raises(vmgr.Error):
        raise e


def test_unknown_name_is_the_base_class_with_its_name():
    e = error_from_dbus("org.example.Error.Odd", "odd")
    assert type(e) is vmgr.Error
    assert e.name == "org.example.Error.Odd"


def test_timeout_while_waiting_ready_is_not_ready():
    msg = "VM 'a' was not ready within 5.0 s: stage agent_connected did not complete"
    e = error_from_dbus("org.vmgr1.Error.Timeout", msg, waiting_ready=True)
    assert type(e) is vmgr.NotReady
    assert isinstance(e, vmgr.Timeout)
    assert e.missing == {"a": vmgr.MissingStage("a", "agent_connected", "")}
    # Other timeouts (Run's) stay plain.
    assert type(error_from_dbus("org.vmgr1.Error.Timeout", msg)) is vmgr.Timeout


def test_vm_message_with_probe_detail():
    msg = ("VM 'd' was not ready within 60.0 s: stage host_probe_passed did not complete "
           "(tcp port 8080: connection refused)")
    assert parse_missing_stages(msg) == {
        "d": vmgr.MissingStage("d", "host_probe_passed", "tcp port 8080: connection refused")}


def test_group_message_lists_every_vm():
    msg = ("group 'web.1' was not ready within 120.0 s: not ready: a (agent_connected), "
           "b-2 (host_probe_passed: http port 80 GET /ready: HTTP 404, not 200), "
           "c.x (ipv6_configured: tcp port 9: no answer within 1.0 s (x)), d (ready)")
    assert parse_missing_stages(msg) == {
        "a": vmgr.MissingStage("a", "agent_connected"),
        "b-2": vmgr.MissingStage("b-2", "host_probe_passed", "http port 80 GET /ready: HTTP 404, not 200"),
        "c.x": vmgr.MissingStage("c.x", "ipv6_configured", "tcp port 9: no answer within 1.0 s (x)"),
        "d": vmgr.MissingStage("d", "ready"),
    }


def test_stage_names_match_the_documentation():
    text = API_DOC.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `Timings` | `a{st}` | emits | when each stage towards"))
    order = row.split("in this order:")[1].split("; a stage not")[0]
    # The stage names, without what follows each in parentheses ("(with `ipv4`)").
    order = re.sub(r"\([^()]*(?:\([^()]*\)[^()]*)*\)", "", order)
    assert tuple(re.findall(r"`([a-z0-9_]+)`", order)) == STAGES


def test_other_messages_name_no_stage():
    assert parse_missing_stages("VM 'a' crashed: guest kernel panicked: x") == {}


def test_no_bus_is_unreachable(monkeypatch, tmp_path):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    with pytest.raises(vmgr.Unreachable, match="DBUS_SESSION_BUS_ADDRESS"):
        vmgr.Client()
    with pytest.raises(vmgr.Unreachable, match="cannot connect"):
        vmgr.Client(f"unix:path={tmp_path}/no-bus")
