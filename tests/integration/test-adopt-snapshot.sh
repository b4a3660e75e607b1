#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrd killed with SIGKILL while QEMU is paused for a snapshot: the next
# vmgrd mends what it finds paused (daemon/adopt.c, vm_snapshot_paused_mend),
# with real libvirtd and QEMU (TCG), the default guest, warm start on:
#   1. a template's save cut short (the first VM of its shape, paused for
#      its save before it is ready): the VM is adopted with the same QEMU,
#      resumed, and gets ready; no half-built template is listed or left in
#      the store, and the next VM of the shape builds it;
#   2. a user snapshot of a clone cut short: the clone runs on (same QEMU,
#      Run works) and the snapshot does not exist; a snapshot of a clone
#      made without a kill starts a clone of its own;
#   3. an AddVM of a clone cut short in its restore (QEMU paused, waiting
#      for the stream that went with the killed vmgrd): the VM is removed,
#      its domain and QEMU gone, the others untouched.
# Each kill comes as soon as libvirt reports the domain paused (its
# lifecycle events, `virsh event`), and the test checks that QEMU was
# still paused when vmgrd died (asked on its monitor socket),
# or the round proved nothing.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

store=$VMGR_TMP/home/.cache/vmgr/snapshots
events=$VMGR_TMP/events
watcher=

ctl() {
        vmgrctl_as_user "$@"
}

# Libvirt's lifecycle events of every domain, into $events, from now on.
watch_events() {
        local i
        : >"$events"
        vmgr_as_argv "$VMGR_USER"
        "${VMGR_AS_ARGV[@]}" stdbuf -oL virsh -c "qemu:///session?socket=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/libvirt-sock" \
                event --event lifecycle --loop --timestamp --timeout 600 >"$events" 2>&1 </dev/null &
        watcher=$!
        # virsh has registered once it answers; give it a moment more.
        for ((i = 0; i < 50; i++)); do
                vmgr_virsh list >/dev/null 2>&1 && break
                sleep 0.1
        done
        sleep 0.5
}

stop_watching() {
        [ -n "$watcher" ] || return 0
        kill "$watcher" 2>/dev/null || true
        wait "$watcher" 2>/dev/null || true
        watcher=
}

# kill_at DOMAIN EVENT PID: kill -9 vmgrd as soon as libvirt reports
# lifecycle event EVENT (Suspended, Started) of DOMAIN; false (vmgrd lives
# on) if the client PID that asked for the operation ends first, or after
# 180 s.
kill_at() {
        local i
        for ((i = 0; i < 18000; i++)); do
                if grep -F -q "domain '$1': $2" "$events"; then
                        vmgr_stop_vmgrd KILL
                        echo "# vmgrd killed at $(date +%T.%N); libvirt's events:"
                        sed 's/^/#   /' "$events"
                        stop_watching
                        return 0
                fi
                kill -0 "$3" 2>/dev/null || break
                sleep 0.01
        done
        stop_watching
        echo "# no event '$2' of $1 came; the client said: $(cat "$VMGR_TMP"/*.out 2>/dev/null)"
        echo "# libvirt's events:"
        sed 's/^/#   /' "$events"
        return 1
}

# QEMU's run state (query-status) for domain $1 ("GROUP:VM") as vmgrd has
# died: through vmgrd's libvirtd while it lives (it gets SIGTERM when vmgrd
# dies, and leaves its QEMUs running), else on QEMU's monitor socket.
qemu_status() {
        local pidfile=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/libvirtd.pid sock pid out i
        for ((i = 0; i < 300; i++)); do
                if out=$(vmgr_virsh qemu-monitor-command "$1" '{"execute":"query-status"}' 2>/dev/null); then
                        python3 -c 'import json,sys; print(json.loads(sys.argv[1])["return"]["status"])' "$out"
                        return
                fi
                pid=$(cat "$pidfile" 2>/dev/null) || true
                if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
                        break
                fi
                sleep 0.1
        done
        [ "$i" -lt 300 ] || { echo "libvirtd $pid neither answers nor exits"; return 1; }
        sock=$(find "$VMGR_TMP" -name monitor.sock -path "*-$1/*" 2>/dev/null | head -n 1)
        [ -n "$sock" ] || { echo "no monitor socket of $1"; return 1; }
        python3 - "$sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for c in ("qmp_capabilities", "query-status"):
    f.write(json.dumps({"execute": c}) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            break
print(r["return"]["status"] if "return" in r else r)
PY
}

# check_kill NAME DOMAIN EVENT PID: kill_at as a check (its output shown
# either way: when the kill came matters when a later check fails).
check_kill() {
        if kill_at "$2" "$3" "$4"; then
                vmgr_ok "$1"
        else
                vmgr_not_ok "$1"
        fi
}

# vmgr_start_vmgrd as a check (not in a subshell: it sets VMGRD_PID).
check_restart() {
        if vmgr_start_vmgrd; then
                vmgr_ok "a new vmgrd starts"
        else
                vmgr_not_ok "a new vmgrd starts"
        fi
}

qemu_pid() {
        vmgr_qemu_pids "${1%%:*}" "${1#*:}" | head -n 1
}

vm_state() {
        vmgr_vm_prop "$(vmgr_vm_path "$1" "$2")" State
}

# True once group g has no VM e (Group.GetVM says no such VM).
e_gone() {
        local p
        p=$(vmgr_vm_path g e 2>/dev/null) && [ -z "$p" ]
}

builds_left() {
        find "$store" -maxdepth 2 -name '.build-*' 2>/dev/null | wc -l
}

# snapshot_names KIND: the names of the snapshots of that kind, one a line.
snapshot_names() {
        ctl snapshot list --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Kind"] == sys.argv[1]:
        print(s["Name"])' "$1"
}

templates() {
        snapshot_names template | wc -l
}

# ---------------------------------------------------------------------------
# 1. A template's save cut short
# ---------------------------------------------------------------------------
check "CreateGroup g (a)" ctl -q group create g --vm a
watch_events
ctl wait g a --timeout 120 >"$VMGR_TMP/wait.out" 2>&1 &
waiter=$!
check_kill "the kill comes when g:a is paused for its template's save" g:a Suspended "$waiter"
wait "$waiter" 2>/dev/null || true
check_match "g:a's QEMU is paused as vmgrd dies" '^(paused|finish-migrate|postmigrate)$' "$(qemu_status g:a 2>&1)"
pid_a=$(qemu_pid g:a)
check_restart
check "g/a gets ready" ctl wait g a --timeout 120
check_eq "g/a runs in the same QEMU" "$pid_a" "$(qemu_pid g:a)"
check_eq "g/a runs as libvirt sees it" running "$(vmgr_virsh domstate g:a 2>&1)"
check_eq "Run in g/a" hi "$(ctl exec g a -- echo hi </dev/null 2>&1)"
check_eq "no template is listed" 0 "$(templates)"
check_eq "no half-built snapshot is left in the store" 0 "$(builds_left)"

# The next VM of the shape builds the template; the one after is its clone.
check "vm add g b (builds the template)" ctl -q vm add g b
check "g/b gets ready" ctl wait g b --timeout 120
check_eq "one template is listed" 1 "$(templates)"
check "vm add g c (a clone)" ctl -q vm add g c
check "g/c gets ready" ctl wait g c --timeout 120
check_match "g/c was restored" 'restored' \
        "$(busctl_as_user get-property org.vmgr1 "$(vmgr_vm_path g c)" org.vmgr1.VM Timings 2>&1)"

# ---------------------------------------------------------------------------
# 2. A user snapshot of a clone cut short; one not cut short
# ---------------------------------------------------------------------------
check "a snapshot of clone c (snapc)" ctl snapshot create g c snapc
check "vm add g d from snapc" ctl -q vm add g d --spec - <<<'{"from_snapshot": "snapc"}'
check "g/d gets ready" ctl wait g d --timeout 120
check_eq "g/d has its own hostname" d "$(ctl exec g d -- hostname </dev/null 2>&1)"
check "vm remove g d" ctl vm remove g d

pid_c=$(qemu_pid g:c)
watch_events
ctl snapshot create g c cut >"$VMGR_TMP/snap.out" 2>&1 &
snapper=$!
check_kill "the kill comes when g:c is paused for snapshot 'cut'" g:c Suspended "$snapper"
wait "$snapper" 2>/dev/null || true
check_match "g:c's QEMU is paused as vmgrd dies" '^(paused|finish-migrate|postmigrate)$' "$(qemu_status g:c 2>&1)"
check_restart
check "g is ready again" ctl wait g --timeout 120
check_eq "g/c runs in the same QEMU" "$pid_c" "$(qemu_pid g:c)"
check_eq "g/c runs as libvirt sees it" running "$(vmgr_virsh domstate g:c 2>&1)"
check_eq "Run in g/c" c "$(ctl exec g c -- hostname </dev/null 2>&1)"
check_eq "the user snapshots are snapc alone ('cut' does not exist)" snapc "$(snapshot_names user 2>&1 | xargs)"
check_eq "no half-built snapshot is left in the store" 0 "$(builds_left)"

# ---------------------------------------------------------------------------
# 3. A clone's restore cut short (AddVM)
# ---------------------------------------------------------------------------
pid_a=$(qemu_pid g:a)
pid_c=$(qemu_pid g:c)
watch_events
ctl -q vm add g e >"$VMGR_TMP/add.out" 2>&1 &
adder=$!
check_kill "the kill comes when g:e is started, paused for its restore" g:e Started "$adder"
wait "$adder" 2>/dev/null || true
check_match "g:e's QEMU waits for its restore as vmgrd dies" '^(inmigrate|paused)$' "$(qemu_status g:e 2>&1)"
check_restart
# An AddVM cut short is undone: the VM goes, with its domain.
check "g/e is removed" vmgr_wait_until 30 e_gone
check_eq "g:e's domain is gone" "" "$(vmgr_virsh list --all --name 2>&1 | grep -x g:e || true)"
check_eq "no QEMU of g:e is left" "" "$(qemu_pid g:e)"
check_eq "g/a runs in the same QEMU" "$pid_a" "$(qemu_pid g:a)"
check_eq "g/c runs in the same QEMU" "$pid_c" "$(qemu_pid g:c)"
check "g is ready" ctl wait g --timeout 120
check_eq "Run in g/c" c "$(ctl exec g c -- hostname </dev/null 2>&1)"

check "group delete g" ctl group delete g
vmgr_finish
