# SPDX-License-Identifier: LGPL-2.1-or-later
"""A test that fails on purpose: tests/integration/test-python.sh checks
that its group's evidence bundle shows in pytest's report. Not collected
by name (not test_*.py); run it by its path."""

import time

import pytest


@pytest.mark.vmgr_group({"vms": [{"name": "lonely"}]})
def test_fails_on_purpose(vmgr_group):
    vm = vmgr_group.vms["lonely"]
    vm.run(["sh", "-c", "echo MUST-FAIL-MARK >/dev/console"])
    # The console line reaches the group's log a moment later.
    deadline = time.monotonic() + 20
    while "MUST-FAIL-MARK" not in vmgr_group.logs(sources=["console"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert vm.run(["false"]).returncode == 0, "failing on purpose"


def test_passes_without_a_group():
    # No group: nothing to collect, no section.
    assert True


@pytest.mark.vmgr_group({"vms": [{"name": "stuck", "ready_probe": ["false"]}]}, ready_timeout=3)
def test_group_never_ready(vmgr_group):
    # Not reached: the fixture's wait_ready raises NotReady, a setup error.
    raise AssertionError("the group became ready")
