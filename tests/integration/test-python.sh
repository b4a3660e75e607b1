#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgr's Python client and pytest plugin (python/, docs/python.md) against a
# real vmgrd, libvirtd and QEMU (TCG), as the unprivileged test user, run
# from the source tree (PYTHONPATH=python, the plugin loaded with
# -p vmgr.pytest_plugin since it is not installed):
#   - the package's unit tests (no daemon);
#   - the client's own tests and examples/ under pytest-xdist (two workers:
#     group names must not collide), every call of the API used at least once;
#   - a test that fails on purpose, and one whose group never becomes ready:
#     each group's Collect bundle must appear in pytest's report (path,
#     files, the end of the group's log), the groups must be gone
#     afterwards, and the passing test beside them has no section;
#   - nothing is left behind.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools
if ! /usr/bin/python3 -c 'import jeepney, pytest, xdist' 2>/dev/null; then
        echo "# skipped: python3-jeepney, python3-pytest or python3-pytest-xdist missing (tools/deps installs them)"
        exit 77
fi
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

src=$(realpath "$VMGR_SOURCE_DIR")
work=$VMGR_TMP/py
install -d -o "$VMGR_USER" "$work"

# pytest as the test user: no cache or bytecode written into the source
# tree (its rootdir), its temporary directory under the test's.
pytest_as_user() {
        # From the source tree: test ids in the report are relative to it.
        cd "$src" || return
        vmgr_as_user env PYTHONPATH="$src/python" PYTHONDONTWRITEBYTECODE=1 VMGR_PYTHON_INTEGRATION=1 \
                /usr/bin/python3 -m pytest -p no:cacheprovider --rootdir "$src" \
                --basetemp "$work/tmp-$1" "${@:2}"
}

out=$(pytest_as_user unit -q "$src/python/tests/unit" 2>&1) && rc=0 || rc=$?
check_eq "the unit tests pass" 0 "$rc"
check_match "the unit tests ran" '[0-9]+ passed' "$out"
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -40 | sed 's/^/#   /'

# --- the client's tests and the example, two workers at once ------------------------

out=$(pytest_as_user client -p vmgr.pytest_plugin -n 2 -rA --vmgr-ready-timeout 240 \
        "$src/python/tests/integration/test_client.py" "$src/examples" 2>&1) && rc=0 || rc=$?
check_eq "the client's tests and the example pass" 0 "$rc"
check_match "all of them ran (none skipped)" '(^|[^0-9])6 passed' "$out"
check_match "the example ran" 'PASSED examples/test_http_between_vms.py::test_client_fetches_from_server' "$out"
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -150 | sed 's/^/#   /'
check_match "two workers ran the tests" 'gw0 \[6\] / gw1 \[6\]' "$out"
# Each worker named its groups itself, t-RUN-WORKER-N, with the run's id.
names=$(grep -oE '\[t-[^]/]*\] Group is running' "$VMGR_TMP/vmgrd.log" | sed 's/^\[//; s/\].*//' | sort -u)
check_eq "three groups, one per test with vmgr_group" 3 "$(printf '%s\n' "$names" | grep -c .)"
check_empty "named t-RUN-gw0-N or t-RUN-gw1-N" "$(printf '%s\n' "$names" | grep -vE '^t-[0-9a-f]{6}-gw[01]-[0-9]+$')"
check_eq "with one run id" 1 "$(printf '%s\n' "$names" | cut -d- -f2 | sort -u | wc -l)"
check_match "no group is left" '^a\(so\) 0$' "$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups)"

# --- a failing test: its evidence in the report -------------------------------------

out=$(pytest_as_user failing -p vmgr.pytest_plugin --vmgr-ready-timeout 240 \
        "$src/python/tests/integration/must_fail.py" 2>&1) && rc=0 || rc=$?
check_eq "pytest reports the failure (exit 1)" 1 "$rc"
check_match "one failed, one passed, one error" '1 failed, 1 passed, 1 error' "$out"
check_match "the failure is the test's" 'FAILED python/tests/integration/must_fail.py::test_fails_on_purpose' "$out"
check_match "the report has the group's section" \
        '-+ vmgr group t-[0-9a-f]{6}-m-1 \(test failed\) -+' "$out"
bundle=$(printf '%s\n' "$out" | sed -n 's/^vmgr collect: \(.*-m-1\)$/\1/p')
check_match "the section names the bundle's directory" "^$work/tmp-failing/vmgr-collect/t-[0-9a-f]{6}-m-1\$" "$bundle"
check_match "the section lists the bundle's files" \
        'files: dnsmasq.leases dnsmasq.log group.json group.log timings.json vmgrd.log vms/lonely/console.log vms/lonely/console.raw vms/lonely/domain.xml vms/lonely/guest.log' "$out"
check_match "the section shows the group's log with the test's console line" \
        $'\n\\[vm=lonely console\\] MUST-FAIL-MARK\n' "$out"
check_match "the failure itself is reported" 'AssertionError: failing on purpose' "$out"
check "the bundle is on disk" test -s "$bundle/vms/lonely/console.log"
check "its console log has the line" grep -qx 'MUST-FAIL-MARK' "$bundle/vms/lonely/console.log"
check_eq "the report has two such sections (none for the passing test)" 2 \
        "$(printf '%s\n' "$out" | grep -c '^-* vmgr group ')"
# A group that never became ready: the fixture's setup error, with evidence.
check_match "the setup error names the VM and its stage" \
        "NotReady: group 't-[0-9a-f]{6}-m-2' was not ready within 3.0 s: not ready: stuck \((agent_connected|probe_passed)\)" "$out"
check_match "the setup error's report has the group's section" \
        '-+ vmgr group t-[0-9a-f]{6}-m-2 \(not ready\) -+' "$out"
check_match "its files include the stuck VM's console" 'files: .* vms/stuck/console.log ' "$out"
check_match "the failed tests' groups are gone" '^a\(so\) 0$' \
        "$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups)"
[ "$rc" -eq 1 ] || printf '%s\n' "$out" | tail -80 | sed 's/^/#   /'

check_empty "nothing left behind (but vmgrd's libvirtd, which runs until vmgrd exits)" "$(vmgr_leftovers | grep -v ' libvirtd$')"
vmgr_finish
