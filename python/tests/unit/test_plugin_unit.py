# SPDX-License-Identifier: LGPL-2.1-or-later
"""The plugin's pure parts: group names, the report of a bundle."""

import types

import pytest

from vmgr.pytest_plugin import _describe_bundle, unique_group_name
from vmgr.spec import check_name


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
