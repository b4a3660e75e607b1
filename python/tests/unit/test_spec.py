# SPDX-License-Identifier: LGPL-2.1-or-later
"""Spec handling and name checks, without a daemon."""

import json

import pytest

import vmgr
from vmgr.client import usec
from vmgr.spec import check_file_name, check_name, group_spec_json, vm_names, vm_spec_json


@pytest.mark.parametrize("spec", [None, "", "  ", {}])
def test_empty_group_spec_is_network_only(spec):
    assert group_spec_json(spec) == ""


def test_group_spec_from_a_dict_and_from_json_text():
    spec = {"vms": [{"name": "a"}, {"name": "b", "ipv4": True}], "collect_on_delete": "/tmp/x"}
    text = group_spec_json(spec)
    assert json.loads(text) == spec
    assert json.loads(group_spec_json(json.dumps(spec))) == spec
    assert vm_names(spec) == ["a", "b"]


@pytest.mark.parametrize("spec, path", [
    ("{", "invalid spec: .: not valid JSON"),
    ("[]", "invalid spec: .: must be an object"),
    ({"vms": {}}, "invalid spec: vms: must be an array"),
    ({"vms": ["a"]}, "invalid spec: vms[0]: must be an object"),
    ({"vms": [{"name": "a"}, {}]}, "invalid spec: vms[1].name: missing"),
    ({"vms": [{"name": ".a"}]}, "invalid spec: vms[0].name: not a valid VM name"),
    ({"vms": [{"name": "a"}, {"name": "a"}]}, "invalid spec: vms[1].name: 'a' is used twice"),
    ({"vms": [{"name": "a", "memory_mib": float("nan")}]}, "invalid spec: .: "),
    ({"vms": [{"name": "a", "kernel": object()}]}, "invalid spec: .: "),
])
def test_bad_group_specs_name_the_json_path(spec, path):
    with pytest.raises(vmgr.InvalidSpec) as e:
        group_spec_json(spec)
    assert str(e.value).startswith(path)
    assert e.value.name == "org.vmgr1.Error.InvalidSpec"


def test_vm_spec():
    assert vm_spec_json("c", None) == ""
    assert json.loads(vm_spec_json("c", {"ipv4": True})) == {"ipv4": True}
    assert json.loads(vm_spec_json("c", {"name": "c"})) == {"name": "c"}
    with pytest.raises(vmgr.InvalidSpec, match="is not the VM's name"):
        vm_spec_json("c", {"name": "d"})
    with pytest.raises(vmgr.InvalidName):
        vm_spec_json("-c", None)


@pytest.mark.parametrize("name", ["a", "web.1", "_x", "A-b_c.9", "x" * 63])
def test_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".a", "-a", "a/b", "a b", "ä", "x" * 64, "..", 5])
def test_invalid_names(name):
    with pytest.raises(vmgr.InvalidName):
        check_name(name)


def test_file_names():
    assert check_file_name("debian+1.qcow2") == "debian+1.qcow2"
    assert check_file_name("x" * 128)
    for bad in ["", ".hidden", "-x", "a/b", "x" * 129, "%2f"]:
        with pytest.raises(vmgr.InvalidName):
            check_file_name(bad)


@pytest.mark.parametrize("seconds, expected", [
    (None, 0), (0, 0), (-1, 0), (1.5, 1_500_000), (60, 60_000_000), (1e30, 2**64 - 1)])
def test_usec(seconds, expected):
    assert usec(seconds) == expected
