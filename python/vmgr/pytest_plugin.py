# SPDX-License-Identifier: LGPL-2.1-or-later
"""pytest plugin: a ``vmgr`` client fixture and a ``vmgr_group`` per test.

    @pytest.mark.vmgr_group({"vms": [{"name": "a"}, {"name": "b", "ipv4": True}]})
    def test_ping(vmgr_group):
        a, b = vmgr_group.vms["a"], vmgr_group.vms["b"]
        assert a.run(["ping", "-c1", b.ipv6]).returncode == 0

The group gets a name unique to the test run and to the pytest-xdist worker,
is ready before the test starts, and is deleted after it. When the test
fails (or the group did not become ready), the group's evidence bundle
(``Group.Collect``) is written first and shown in the failure's report:
where it is, its files, and the end of the group's log.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import Client, Error, Group, NoSuchGroup
from .spec import Spec

_GROUP = pytest.StashKey[Group]()
_SECTIONS = pytest.StashKey[list[tuple[str, str]]]()
_PROPERTIES = pytest.StashKey[list[tuple[str, str]]]()
_COLLECTED = pytest.StashKey[bool]()
_COLLECT_ROOT = pytest.StashKey[Path]()
_RUN_ID = pytest.StashKey[str]()
_counter = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("vmgr", "vmgr groups of VMs")
    g.addoption("--vmgr-ready-timeout", type=float, default=None, metavar="SECONDS",
                help="how long a vmgr_group may take to become ready (default: ini vmgr_ready_timeout, 180)")
    g.addoption("--vmgr-collect-dir", default=None, metavar="DIR",
                help="where failed tests' group evidence goes (default: under pytest's basetemp)")
    g.addoption("--vmgr-log-lines", type=int, default=None, metavar="N",
                help="lines of the group's log shown with a failure (default: ini vmgr_log_lines, 100)")
    parser.addini("vmgr_ready_timeout", "default for --vmgr-ready-timeout", default="180")
    parser.addini("vmgr_log_lines", "default for --vmgr-log-lines", default="100")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vmgr_group(spec, *, ready_timeout=None, wait_ready=True): the spec (docs/spec.md) of "
        "the vmgr group the vmgr_group fixture creates for this test")


def _option(config: pytest.Config, name: str, ini: str, kind: type) -> Any:
    value = config.getoption(name)
    return kind(config.getini(ini)) if value is None else value


def unique_group_name(config: pytest.Config) -> str:
    """A group name no other test of this run, on any xdist worker, uses:
    ``t-RUN-WORKER-N`` (RUN: 6 hex digits shared by the run's workers)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        run = str(workerinput.get("testrunuid", ""))[:6]
        worker = str(workerinput.get("workerid", "gw"))
    else:
        run, worker = "", "m"
    if not run:
        run = config.stash.setdefault(_RUN_ID, secrets.token_hex(3))
    worker = re.sub(r"[^A-Za-z0-9]", "", worker)[:8] or "w"
    return f"t-{run}-{worker}-{next(_counter)}"



@pytest.fixture(scope="session")
def vmgr() -> Iterator[Client]:
    """A :class:`vmgr.Client` on the session bus, for the whole session."""
    client = Client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def vmgr_group(request: pytest.FixtureRequest, vmgr: Client,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    """A group made from the test's ``vmgr_group`` marker (network-only
    without one), ready, deleted after the test."""
    marker = request.node.get_closest_marker("vmgr_group")
    spec: Spec = None
    kwargs: dict[str, Any] = {}
    if marker is not None:
        kwargs = dict(marker.kwargs)
        spec = marker.args[0] if marker.args else kwargs.pop("spec", None)
    config = request.config
    timeout = kwargs.get("ready_timeout")
    if timeout is None:
        timeout = _option(config, "vmgr_ready_timeout", "vmgr_ready_timeout", float)
    item = request.node
    given = config.getoption("vmgr_collect_dir")
    item.stash[_COLLECT_ROOT] = (Path(given).absolute() if given
                                 else tmp_path_factory.getbasetemp() / "vmgr-collect")

    group = vmgr.create_group(unique_group_name(config), spec)
    item.stash[_GROUP] = group
    try:
        if kwargs.get("wait_ready", True):
            not_ready = None
            try:
                group.wait_ready(timeout)
            except Error as e:
                # The setup report is made after this fixture gave up and
                # deleted the group: collect now, show it with that report.
                _collect(item, group, "not ready")
                not_ready = f"{type(e).__name__}: {e}"
            if not_ready is not None:
                # vmgrd's sentence says what was missing; the fixture's
                # code around it would only hide that.
                pytest.fail(not_ready, pytrace=False)
        yield group
    finally:
        try:
            group.delete()
        except NoSuchGroup:
            pass


def _collect(item: pytest.Item, group: Group, why: str) -> None:
    """Collect ``group``'s evidence once for ``item`` and keep a report
    section about it for the report being made."""
    if item.stash.get(_COLLECTED, False):
        return
    item.stash[_COLLECTED] = True
    title = f"vmgr group {group.name} ({why})"
    directory = item.stash[_COLLECT_ROOT] / group.name
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        group.collect(directory)
    except (Error, OSError) as e:
        text = f"vmgr: collecting the evidence of group {group.name} failed: {e}\n"
    else:
        text = _describe_bundle(directory, _option(item.config, "vmgr_log_lines", "vmgr_log_lines", int))
        # For junitxml and the like: the bundle's path as a test property.
        properties: list[tuple[str, str]] = item.stash.setdefault(_PROPERTIES, [])
        properties.append(("vmgr_collect", str(directory)))
    sections: list[tuple[str, str]] = item.stash.setdefault(_SECTIONS, [])
    sections.append((title, text))


def _describe_bundle(directory: Path, log_lines: int) -> str:
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    lines = [f"vmgr collect: {directory}", "files: " + " ".join(files)]
    log = directory / "group.log"
    if log_lines > 0 and log.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-log_lines:]
        lines.append(f"--- the last {len(tail)} lines of {log}")
        lines.extend(tail)
    return "\n".join(lines) + "\n"


@pytest.hookimpl(hookwrapper=True)  # type: ignore[misc]
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    group = item.stash.get(_GROUP, None)
    # A failed test: its group still exists (the fixture's teardown comes later).
    if group is not None and report.when == "call" and report.failed:
        _collect(item, group, "test failed")
    sections: list[tuple[str, str]] = item.stash.get(_SECTIONS, [])
    properties: list[tuple[str, str]] = item.stash.get(_PROPERTIES, [])
    report.sections.extend(sections)
    report.user_properties.extend(properties)
    sections.clear()
    properties.clear()
