# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmgr's Python client and pytest plugin against a real vmgrd."""

import os
import secrets
import socket
import time
import urllib.request

import pytest

import vmgr as api  # "vmgr" is the client fixture below


def test_manager_and_errors(vmgr):
    assert vmgr.version
    assert vmgr.network_mode in ("host", "namespace")
    assert vmgr.groups_adopted == 0

    with pytest.raises(api.NoSuchGroup) as e:
        vmgr.group("no-such-group")
    assert e.value.name == "org.vmgr1.Error.NoSuchGroup"
    assert "no-such-group" in e.value.message
    with pytest.raises(api.NoSuchGroup):
        vmgr.delete_group("no-such-group")
    # vmgrd's own spec check, for what the client does not look at.
    with pytest.raises(api.InvalidSpec, match=r"^invalid spec: vms\[0\]\.memory_mib: "):
        vmgr.create_group("bad-spec", {"vms": [{"name": "a", "memory_mib": 1}]})
    with pytest.raises(api.InvalidSpec, match=r"bogus"):
        vmgr.create_group("bad-spec", {"bogus": 1})
    with pytest.raises(api.NoSuchSnapshot):
        vmgr.delete_snapshot("no-such-snapshot")
    with pytest.raises(api.InvalidName):
        vmgr.create_group("-x")


def test_network_only_group_context_manager_and_signals(vmgr):
    name = "py-net-" + secrets.token_hex(3)
    with vmgr.subscribe() as signals:
        with vmgr.create_group(name) as group:
            assert group.name == name
            assert group.state == "running"
            assert group.vms == {}
            assert group.prefix6.endswith("::/64")
            assert group.subnet4.endswith(".0/24")
            assert group.properties()["Name"] == name
            assert name in [g.name for g in vmgr.groups()]
            assert vmgr.group(name).path == group.path
            with pytest.raises(api.GroupExists):
                vmgr.create_group(name)
            with pytest.raises(api.NoSuchVM):
                group.vm("nobody")
        assert name not in [g.name for g in vmgr.groups()]
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ("GroupRemoved", name) not in seen:
            s = signals.next(timeout=1)
            if s is not None and s.interface == "org.vmgr1.Manager":
                seen.append((s.member, s.args[0]))
        assert ("GroupNew", name) in seen
        assert seen.index(("GroupNew", name)) < seen.index(("GroupRemoved", name))
    # Leaving the context manager of a group deleted meanwhile is fine.
    with vmgr.create_group(name + "-2") as group:
        vmgr.delete_group(group.name)
        with pytest.raises(api.NoSuchGroup):
            group.state


def test_enter(vmgr):
    r = vmgr.enter(["sh", "-c", "echo here"], capture_output=True)
    assert r.returncode == 0
    assert r.stdout == b"here\n"
    if vmgr.network_mode == "host":
        with pytest.raises(api.NotSupported):
            vmgr.open_namespaces()


@pytest.mark.vmgr_group({"vms": [{"name": "a"}, {"name": "b", "ipv4": True}]})
def test_two_vms(vmgr, vmgr_group, tmp_path):
    group = vmgr_group
    assert group.name.startswith("t-")
    assert set(group.vms) == {"a", "b"}
    a, b = group.vms["a"], group.vms["b"]
    assert a.name == "a" and a.state == "ready"
    assert a.ipv6.startswith(group.prefix6.split("::")[0] + ":")
    assert a.ipv4 == ""
    assert b.ipv4.startswith(group.subnet4.rsplit(".", 1)[0] + ".")
    assert "ready" in a.timings

    # run: status, input, both outputs; a timeout; the agent's refusal.
    r = a.run(["sh", "-c", "cat; echo err >&2; exit 3"], input=b"in\n", timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (3, b"in\n", b"err\n")
    assert r.args == ["sh", "-c", "cat; echo err >&2; exit 3"]
    assert a.run(["ping", "-c1", "-W5", b.ipv6]).returncode == 0
    with pytest.raises(api.Timeout):
        a.run(["sleep", "30"], timeout=1)
    with pytest.raises(Exception) as e:
        a.run(["false"], check=True)
    assert e.value.returncode == 1

    # exec: streamed, env and cwd, exit status and signals.
    with a.exec(["sh", "-c", "pwd; echo $X; cat; exit 5"], env={"X": "ex"}, cwd="/tmp") as p:
        out, err = p.communicate(b"x" * 300000)
    assert out == b"/tmp\nex\n" + b"x" * 300000
    assert p.returncode == 5
    p = a.exec(["sleep", "60"])
    p.kill(15)
    assert p.wait() == -15

    # files both ways.
    a.copy_to(b"one\n", "/tmp/one", mode=0o600)
    assert a.copy_from("/tmp/one") == b"one\n"
    assert a.run(["stat", "-c", "%a", "/tmp/one"]).stdout == b"600\n"
    src = tmp_path / "two"
    src.write_bytes(os.urandom(200000))
    a.copy_to(src, "/tmp/two")
    a.copy_from("/tmp/two", tmp_path / "two.back")
    assert (tmp_path / "two.back").read_bytes() == src.read_bytes()
    with pytest.raises(api.Failed):
        a.copy_from("/no/such/file")

    # The file server.
    url = group.serve(src)
    assert url == f"http://[{group.files6}]:8080/two"
    assert [f.name for f in group.served_files] == ["two"]
    assert a.run(["wget", "-q", "-O", "/tmp/two.http", url], timeout=30).returncode == 0
    assert a.run(["cmp", "/tmp/one", "/tmp/two.http"]).returncode != 0
    assert a.run(["sh", "-c", "cmp /tmp/two /tmp/two.http"]).returncode == 0
    with pytest.raises(api.FileExists):
        group.serve(src)
    group.unserve("two")
    with pytest.raises(api.FileNotFound):
        group.unserve("two")

    # A port forward to a's httpd, reached from here.
    a.run(["sh", "-c", "mkdir -p /www && echo fwd >/www/f && httpd -p 8080 -h /www"], check=True)
    fwd = group.forward("a", 8080)
    assert fwd.host_address == "127.0.0.1" and fwd.host_port > 0
    assert group.forwards == [fwd]
    with urllib.request.urlopen(f"http://127.0.0.1:{fwd.host_port}/f", timeout=20) as resp:
        assert resp.read() == b"fwd\n"
    group.remove_forward(fwd)
    assert group.forwards == []
    with pytest.raises(api.FileNotFound):
        group.remove_forward(fwd)
    with group.forward("a", 8080, host_address="::1") as fwd6:
        assert fwd6.host_address == "::1"
        with urllib.request.urlopen(f"http://[::1]:{fwd6.host_port}/f", timeout=20) as resp:
            assert resp.read() == b"fwd\n"
    assert group.forwards == []

    # Logs: what is there now, and one VM's lines.
    a.run(["sh", "-c", "echo PY-MARK >/dev/console"])
    deadline = time.monotonic() + 20
    while "[vm=a console] PY-MARK" not in group.logs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "[vm=a console] PY-MARK" in group.logs()
    assert all(line.startswith("[vm=b ") for line in group.logs(vms=["b"]).splitlines())
    with group.follow_logs(sources=["console"], from_start=False) as follower:
        a.run(["sh", "-c", "echo PY-FOLLOW >/dev/console"])
        assert follower.readline() == "[vm=a console] PY-FOLLOW\n"

    # Evidence.
    bundle = group.collect(tmp_path / "bundle")
    assert (bundle / "group.json").is_file()
    assert (bundle / "vms" / "b" / "console.log").is_file()


@pytest.mark.vmgr_group({"vms": [{"name": "a"}]})
def test_vm_life_cycle_and_readiness(vmgr, vmgr_group):
    group = vmgr_group
    # A VM whose ready_probe never passes: wait_ready names the stage.
    c = group.add_vm("c", {"ready_probe": ["false"]})
    assert set(group.vms) == {"a", "c"}
    with pytest.raises(api.NotReady) as e:
        c.wait_ready(timeout=2)
    assert e.value.missing["c"].stage in ("agent_connected", "probe_passed")
    with pytest.raises(api.NotReady) as e:
        group.wait_ready(timeout=1)
    assert set(e.value.missing) == {"c"}
    with pytest.raises(api.VMExists):
        group.add_vm("c")
    c.kill()
    assert c.state == "stopped"
    c.remove()
    with pytest.raises(api.NoSuchVM):
        group.vm("c")
    group.wait_ready(timeout=5)

    # a: restart, then a user snapshot of it.
    a = group.vms["a"]
    with pytest.raises(api.Failed, match="already running"):
        a.start()
    a.restart()
    a.wait_ready(timeout=120)
    snap = "py-" + secrets.token_hex(3)
    with a.snapshot(snap) as snapshot:
        assert snapshot.name == snap
        mine = [s for s in vmgr.snapshots() if s.name == snap]
        assert len(mine) == 1 and mine[0].kind == "user"
        assert mine[0].source == f"{group.name}/a"
        with pytest.raises(api.SnapshotExists):
            a.snapshot(snap)
    assert snap not in [s.name for s in vmgr.snapshots()]
    with pytest.raises(api.NoSuchSnapshot):
        vmgr.delete_snapshot(snap)
    a.shutdown(timeout=20)
    assert a.state == "stopped"
