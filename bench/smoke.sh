#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench-smoke: tools/bench runs end to end. Two rounds of every comparison,
# at their smoke sizes (scale: N = 1 only; exec: fewer runs per round),
# against the build under test (already installed into its destdir, as for
# the integration tests) into a temp file; checks that every table came out
# with numbers, that the samples were kept beside it and the figures drawn
# (--plots) as PNG files, and that docs/benchmarks.md was left alone. Boots about
# fifteen TCG guests (warm-start: four of them cold, the rest restored) and
# two of vmgr's Debian image: five to seven minutes. Prints TAP-style lines.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
        echo "# skipped: tools/bench needs root (namespaces, test users)"
        exit 77
fi

src=${VMGR_SOURCE_DIR:?}
build=${VMGR_BUILD_DIR:?}
doc=$src/docs/benchmarks.md
out=$(mktemp /tmp/vmgr-bench-smoke.XXXXXX)
plots=$(mktemp -d /tmp/vmgr-bench-smoke-plots.XXXXXX)
trap 'rm -rf "$out" "$out.data" "$plots"' EXIT

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
"$src/tools/bench" --smoke --runs 2 --build-dir "$build" --output "$out" --plots "$plots" \
        --plot-note "bench-smoke" || rc=$?
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
has "RSS with 16 groups" '^\| holding 16 groups \(created at once\) \| [0-9]+ \| [0-9]+ \+ [0-9]+ \|$'
has "row: vmgr cycle, namespace mode" "^\| \*\*vmgr, namespace mode\*\*: CreateGroup \+ DeleteGroup $row"
has "row: vmgrd start, namespace mode" "^\| vmgrd start → ready on the bus, namespace mode $row"
has "row: vmgr to ready, namespace mode" "^\| \*\*vmgr, namespace mode\*\*: CreateGroup with one VM → Group.WaitReady returns $row"
has "concurrent creation timing" "^\| CreateGroup, 16 calls at once, each \| $num \| $num \| $num \| 16 \|$"

# VM start to ready: both contenders, the stages, the target.
has "section vm-ready" '^## VM start to ready$'
has "row: vmgr to ready" "^\| \*\*vmgr\*\*: CreateGroup with one VM → Group.WaitReady returns $row"
has "row: raw QEMU to ready" "^\| \*\*raw QEMU\*\*: \`qemu-system-x86_64\` started → agent reports the address $row"
has "row: agent's first message" "^\| &nbsp;&nbsp;the agent's first message \(its HELLO\) $row"
has "row: libvirt alone" "^\| &nbsp;&nbsp;of which libvirt alone: .* \| $num \| – \| – \|$"
has "stages: ready" "^\| ready \| $num \| $num \| $num \|$"
has "target: within 1.15×" '^\| vmgr within 1\.15× of raw QEMU \(medians\) \| [0-9.]+× \| '
has "header: the accelerator" '^\| accelerator \| (tcg|kvm) '

# Exec: latencies with p99, rates, the target.
lat="\| $num \| $num \| $num \| $num \| [0-9]+ \|$"
has "section exec" '^## Exec: VM\.Run round trip and rate$'
has "row: Run one at a time" "^\| \*\*vmgr\*\*: \`VM\.Run\(\[\"true\"\], \[\], 30 s\)\`, direct sd-bus client, one at a time $lat"
has "row: agent alone" "^\| agent alone: EXEC → EXIT on the virtio-serial socket, one at a time $lat"
has "row: busctl" "^\| \`busctl --user call … Run asayt 1 true 0 30000000\`, a process per call $lat"
has "row: rate in flight" "^\| \*\*vmgr\*\*, 20 in flight \([0-9]+ runs per round\) \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 2 \|$"
has "target: Run ≤ 10 ms" '^\| `VM\.Run` median ≤ 10 ms under TCG \| [0-9.]+ ms \(p99 [0-9.]+ ms\) \| '

# Scale: N = 1 only, its leak check passed (or the run would have failed).
has "section scale" '^## Scale: N groups × 2 VMs at once$'
has "row: N = 1" '^\| 1 × 2 \| 2( \| [0-9.]+){8} \| -?[0-9.]+ \|$'
has "memory row: N = 1" '^\| 1 × 2 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \|$'
has "leak check passed" '^of it\. Every round of this report passed\.$'
# Warm start (one round): warm, cold and raw rows, the batch at N = 1, the
# targets, the template.
row1="\| $num \| $num \| $num \| 1 \|$"
has "section warm-start" '^## Warm start: clones from a template$'
has "row: warm to ready" "^\| \*\*vmgr, warm\*\*: CreateGroup with one VM → Group.WaitReady returns $row1"
has "row: warm, restored stage" "^\| &nbsp;&nbsp;Timings: restored \(migration stream read, guest resumed\) $row1"
has "row: warm, identity stage" "^\| &nbsp;&nbsp;Timings: identity_applied \(the agent's DONE\) $row1"
has "row: cold to ready" "^\| \*\*vmgr, cold\*\* \(\`\"warm\": false\`\): CreateGroup with one VM → Group.WaitReady returns $row1"
has "row: raw QEMU, warm-start section" "^\| \*\*raw QEMU\*\*, the same guest: .* $row1"
has "row: batch, warm" "^\| \*\*1 groups × 2 VMs, warm\*\*: first CreateGroup → last WaitReady returns $row1"
has "row: batch, cold" "^\| \*\*1 groups × 2 VMs, cold\*\*: first CreateGroup → last WaitReady returns $row1"
has "target: warm ≤ 1.0 s" '^\| warm → ready ≤ 1\.0 s median under TCG \| [0-9.]+ ms \| '
has "target: batch ≤ 1/5 of cold" '^\| 1 groups × 2 warm VMs all ready in ≤ 1/5 of the cold time \| 1/[0-9.]+ '
has "template size" '^\| template: state file \(memory and devices\) on disk \| [0-9.]+ MiB \([0-9.]+ MiB apparent\) \|$'
has "clone memory" '^\| a warm VM.s QEMU, RSS when all 2 are ready \(median / max\) \| [0-9.]+ / [0-9.]+ MiB \|$'
has "section real-guest" '^## A Debian image: start to ready with the agent and without$'
has "row: Debian image without the agent" "^\| \*\*without the agent\*\*: CreateGroup → WaitReady returns \| $num \| $num \| $num \| 1 \|$"
has "row: host probe stage" "^\| &nbsp;&nbsp;TCP connect to port 19531 succeeds \(Timings\) \| $num \| $num \| $num \| 1 \|$"

# The samples beside the report, and the figures drawn from them.
if [ "$(wc -l <"$out.data/vm-ready/vmgr.ready" 2>/dev/null)" = 2 ]; then
        ok "samples kept beside the report"
else
        not_ok "samples kept beside the report" "$out.data/vm-ready/vmgr.ready: $(cat "$out.data/vm-ready/vmgr.ready" 2>&1)"
fi
for fig in vm-ready warm-start scale-ready scale-vmgrd; do
        # A PNG starts with these eight bytes.
        if [ "$(head -c 8 "$plots/$fig.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
                ok "figure $fig.png is a PNG"
        else
                not_ok "figure $fig.png is a PNG" "$(ls -l "$plots" 2>&1)"
        fi
done
for fig in vm-ready warm-start scale-ready scale-vmgrd; do
        has "the report shows $fig.png" "^!\[[^]]+\]\([^)]*/$fig\.png\)\$"
done
if grep -q -P '^1\t[0-9.]+\t"vmgr, host mode"\t2$' "$plots/vm-ready.dat" 2>/dev/null; then
        ok "figure data: vm-ready.dat has every run"
else
        not_ok "figure data: vm-ready.dat has every run" "$(cat "$plots/vm-ready.dat" 2>&1)"
fi
if grep -q -P '^1\t1\t[0-9.]+\t[0-9.]+\t[0-9.]+' "$plots/scale.dat" 2>/dev/null; then
        ok "figure data: scale.dat has N = 1"
else
        not_ok "figure data: scale.dat has N = 1" "$(cat "$plots/scale.dat" 2>&1)"
fi

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
