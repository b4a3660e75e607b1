#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-smoke: tools/bench runs end to end. Two rounds against the build
# under test (already installed into its destdir, as for the integration
# tests) into a temp file; checks that every table came out with numbers and
# that docs/benchmarks.md was left alone. Prints TAP-style lines.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
        echo "# skipped: tools/bench needs root (namespaces, test users)"
        exit 77
fi

src=${VMGR_SOURCE_DIR:?}
build=${VMGR_BUILD_DIR:?}
doc=$src/docs/benchmarks.md
out=$(mktemp /tmp/vmgr-bench-smoke.XXXXXX)
trap 'rm -f "$out"' EXIT

passed=0
failed=0
ok() {
        passed=$((passed + 1))
        echo "ok - $1"
}
not_ok() {
        failed=$((failed + 1))
        echo "not ok - $1"
        [ $# -gt 1 ] && printf '#   %s\n' "${@:2}"
        return 0
}
# has NAME EXTENDED-REGEX: the report has a line matching it.
has() {
        if grep -E -q -- "$2" "$out"; then ok "$1"; else not_ok "$1" "no line matches: $2"; fi
}

before=$(sha256sum "$doc" 2>/dev/null || echo absent)
rc=0
"$src/tools/bench" --smoke --runs 2 --build-dir "$build" --output "$out" || rc=$?
if [ "$rc" -ne 0 ]; then
        not_ok "tools/bench exits 0" "exit status: $rc"
        echo "# $passed passed, $failed failed"
        exit 1
fi
ok "tools/bench exits 0"

num='[0-9]+\.[0-9]+'
row="\| $num \| $num \| $num \| 2 \|$"
has "header names the machine" '^\| machine \| [0-9]+ cores'
has "header names the commit" '^\| vmgr commit \| `[0-9a-f]+'
has "header says it is a smoke run" '^\*\*Smoke run'
has "section group-network" '^## Group network create \+ delete$'
has "row: vmgr cycle" "^\| \*\*vmgr\*\*: CreateGroup \+ DeleteGroup, network only $row"
has "row: CreateGroup" "^\| &nbsp;&nbsp;CreateGroup $row"
has "row: DeleteGroup" "^\| &nbsp;&nbsp;DeleteGroup $row"
has "row: TAP create" "^\| vmgr: one TAP, create \(helper request\) $row"
has "row: vmgr with TAPs" "^\| vmgr: network \+ 2 TAPs \(sum, upper bound\) $row"
has "row: script without TAPs" "^\| \*\*\(a0\)\*\* iproute2 \+ dnsmasq script, no TAPs $row"
has "row: script with TAPs" "^\| \*\*\(a\)\*\* iproute2 \+ dnsmasq script, 2 TAPs $row"
has "row: kernel floor" "^\| kernel floor: \`ip link del\` of an identical bridge $row"
has "row: bare bridge floor" "^\| &nbsp;&nbsp;the same for a bare bridge \(down, no addresses\) $row"
# libvirt either has numbers or the report says exactly why not.
if grep -E -q "^\| \*\*\(b\)\*\* libvirt net-create \+ net-destroy $row" "$out"; then
        ok "row: libvirt"
else
        has "row: libvirt, or why it is missing" '(libvirt was not measured|The isolated network \(b\) failed): .'
fi
has "targets table" '^\| ≥ 30× faster than \(b\)'
has "RSS with 16 groups" '^\| holding 16 groups \(created at once\) \| [0-9]+ \|$'
has "concurrent creation timing" "^\| CreateGroup, 16 calls at once, each \| $num \| $num \| $num \| 16 \|$"

after=$(sha256sum "$doc" 2>/dev/null || echo absent)
if [ "$before" = "$after" ]; then
        ok "docs/benchmarks.md left alone"
else
        not_ok "docs/benchmarks.md left alone"
fi

echo "# $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
        sed 's/^/#   /' "$out"
        exit 1
fi
