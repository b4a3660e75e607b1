# SPDX-License-Identifier: LGPL-2.1-or-later
"""The plugin's pure parts: group names, the report of a bundle."""

import types
from pathlib import Path

import pytest

import vmgr

from vmgr.pytest_plugin import _describe_bundle, unique_group_name
from vmgr.spec import check_name

pytest_plugins = ["pytester"]


def fake_config(workerinput=None):
    config = types.SimpleNamespace(stash=pytest.Stash())
    if workerinput is not None:
        config.workerinput = workerinput
    return config


def test_names_are_valid_and_unique_within_a_run():
    config = fake_config()
    names = [unique_group_name(config) for _ in range(50)]
    assert len(set(names)) == 50
    run = names[0].split("-")[1]
    for name in names:
        assert check_name(name) == name
        assert name.startswith(f"t-{run}-m-")


def test_runs_differ():
    assert unique_group_name(fake_config()).split("-")[1] != unique_group_name(fake_config()).split("-")[1]


def test_xdist_workers_differ_and_share_the_run():
    a = unique_group_name(fake_config({"workerid": "gw0", "testrunuid": "abcdef0123"}))
    b = unique_group_name(fake_config({"workerid": "gw1", "testrunuid": "abcdef0123"}))
    assert a.startswith("t-abcdef-gw0-")
    assert b.startswith("t-abcdef-gw1-")
    assert len(a) < 20  # short: it ends up in socket paths


def test_bundle_description(tmp_path):
    (tmp_path / "vms" / "a").mkdir(parents=True)
    (tmp_path / "vms" / "a" / "console.log").write_text("boot\n")
    (tmp_path / "group.json").write_text("{}")
    (tmp_path / "group.log").write_text("".join(f"line {i}\n" for i in range(10)))
    text = _describe_bundle(tmp_path, 3)
    assert f"vmgr collect: {tmp_path}\n" in text
    assert "files: group.json group.log vms/a/console.log\n" in text
    assert text.endswith("line 7\nline 8\nline 9\n")
    assert "line 6" not in text


@pytest.fixture
def plugin_importable(monkeypatch):
    """pytester's subprocesses find the package being tested."""
    monkeypatch.setenv("PYTHONPATH", str(Path(vmgr.__file__).resolve().parents[1]))


def test_plugin_registers_marker_and_options(pytester, plugin_importable):
    result = pytester.runpytest_subprocess("-p", "vmgr.pytest_plugin", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.vmgr_group(spec, *, ready_timeout=None, wait_ready=True):*"])
    result = pytester.runpytest_subprocess("-p", "vmgr.pytest_plugin", "--help")
    result.stdout.fnmatch_lines(["*--vmgr-ready-timeout=SECONDS*", "*--vmgr-collect-dir=DIR*",
                                 "*--vmgr-log-lines=N*"])


def test_no_bus_is_the_fixture_s_error(pytester, plugin_importable, monkeypatch):
    # Without vmgrd the test errors at setup with the reason; under
    # --strict-markers the marker is known.
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.vmgr_group({"vms": [{"name": "a"}]})
        def test_x(vmgr_group):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "vmgr.pytest_plugin", "--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Unreachable: no session bus*"])
