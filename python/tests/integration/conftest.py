# SPDX-License-Identifier: LGPL-2.1-or-later
"""These tests need a running vmgrd on the session bus (and boot VMs):
tests/integration/test-python.sh runs them against a private one. Run by
hand, they are skipped unless VMGR_PYTHON_INTEGRATION=1."""

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("VMGR_PYTHON_INTEGRATION") == "1":
        return
    skip = pytest.mark.skip(reason="needs vmgrd: set VMGR_PYTHON_INTEGRATION=1")
    for item in items:
        item.add_marker(skip)
