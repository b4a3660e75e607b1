# SPDX-License-Identifier: LGPL-2.1-or-later
"""Two VMs of vmgr's default guest: one serves a page with busybox httpd,
the other fetches it from the first's IPv6 address.

Run it with vmgr's pytest plugin (installed: it loads itself; from a source
tree: PYTHONPATH=python python3 -m pytest -p vmgr.pytest_plugin examples/)
against a running vmgrd on your session bus.
"""

import pytest


@pytest.mark.vmgr_group({"vms": [{"name": "server"}, {"name": "client", "ipv4": True}]})
def test_client_fetches_from_server(vmgr_group):
    server = vmgr_group.vms["server"]
    client = vmgr_group.vms["client"]

    # httpd puts itself in the background; it listens on [::]:8080.
    server.run(["sh", "-c", "mkdir -p /www && echo hello from $(hostname) >/www/index.html"
                            " && httpd -p 8080 -h /www"], check=True)

    page = client.run(["wget", "-q", "-O", "-", f"http://[{server.ipv6}]:8080/index.html"],
                      timeout=30)
    assert page.returncode == 0, page.stderr
    assert page.stdout.startswith(b"hello from ")

    # The client's second NIC has its DHCPv4 lease by the time it is ready.
    assert client.ipv4.startswith(vmgr_group.subnet4.rsplit(".", 1)[0] + ".")
