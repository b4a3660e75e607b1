#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Namespace mode: the namespace holder (vmgrd-netns) outlives a vmgrd that
# dies, and is found again (daemon/netns.c; the next vmgrd's adoption of
# the groups is not what this test is about).
#   - kill -9 of vmgrd with a group (no VM): the holder, the group's
#     dnsmasq and bridge stay, in the same network namespace; the holder
#     lets go of vmgrd's lock and listens on RUNTIME/netns.sock, the user's
#     alone;
#   - vmgr-netns-attach (netns_attach(), as the next vmgrd) attaches to the
#     same network namespace, makes a socket and runs a command there that
#     sees the bridge, turns dnsmasq's pid file (a pid of the holder's PID
#     namespace) into dnsmasq's real pid, and a second attach meanwhile is
#     refused; another user cannot attach; after a release the holder still
#     keeps everything; a clean end (netns_free()) then ends it all and
#     empties the runtime directory but for the lock;
#   - a killed vmgrd with no group: its holder has nothing to keep and ends
#     by itself, leaving nothing;
#   - SIGTERM still deletes every group and ends the holder.

export VMGR_NET_MODE=namespace
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_enter_netns "$@"

ATTACH=$VMGR_BUILD_DIR/tests/vmgr-netns-attach
RUN=$VMGR_TMP/run/vmgr
LOCK=$RUN/vmgrd.lock
timings=()

vmgr_start_bus

# Run vmgr-netns-attach as the test user with the runtime dir and args $@;
# fill the associative array A with its "key value" lines.
declare -A A
attach() {
        local k v out
        A=()
        out=$(vmgr_as_user "$ATTACH" "$RUN" "$@" 2>&1) || A[status]=$?
        A[out]=$out
        while read -r k v; do
                [ -n "$k" ] && A[$k]=$v
        done <<<"$out"
        return 0
}

lock_is_free() {
        flock -n "$LOCK" true
}
process_alive() {
        [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]
}
process_gone() {
        ! process_alive "$1"
}
# The user's processes but the bus.
user_procs() {
        ps -u "$VMGR_USER" -o pid=,stat=,comm= | awk -v bus="$VMGR_BUS_PID" '$1 != bus && $2 !~ /^Z/'
}
nothing_left() {
        [ -z "$(user_procs)" ]
}

# --- kill -9 with a group: the holder keeps it -----------------------------------

vmgr_start_vmgrd
holder=$(vmgr_holder_pid) || holder=0
netns=$(readlink "/proc/$holder/ns/net")
check "CreateGroup g (no VM)" vmgrctl_as_user -q group create g
vmgr_load_expected E g
check "g's bridge ${E[bridge]} is in the holder's namespace" vmgr_netns_exec ip -o link show dev "${E[bridge]}"
dnsmasq=$(pgrep -u "$VMGR_USER" -x dnsmasq | head -n 1) || dnsmasq=
check_match "g's dnsmasq runs" '^[0-9]+$' "$dnsmasq"
check_eq "dnsmasq is in the holder's network namespace" "$netns" "$(readlink "/proc/${dnsmasq:-0}/ns/net" 2>&1)"
check_fails "vmgrd holds its lock" lock_is_free
check_eq "the holder listens on RUNTIME/netns.sock, mode 0600, the user's" "socket 600 $VMGR_USER" \
        "$(stat -c '%F %a %U' "$RUN/netns.sock" 2>&1)"
pidfile=$(find "$RUN/groups" -name dnsmasq.pid | head -n 1)
check "dnsmasq's pid file is in the runtime dir" test -n "$pidfile"
check "... and holds a pid of the holder's PID namespace, not ours" test "$(cat "$pidfile" 2>&1)" != "$dnsmasq"

t0=$(vmgr_now_ms)
vmgr_stop_vmgrd KILL
check_eq "vmgrd killed by SIGKILL" 137 "$VMGRD_STATUS"
vmgr_wait_until 5 lock_is_free || true
timings+=("kill -9 of vmgrd to its lock free: $(($(vmgr_now_ms) - t0)) ms")
check "the holder let go of vmgrd's lock" lock_is_free
sleep 1
check "the holder (pid $holder) is still there a second later" process_alive "$holder"
check_eq "... still vmgrd-netns" vmgrd-netns "$(cat "/proc/$holder/comm" 2>&1)"
check_eq "... with the same network namespace" "$netns" "$(readlink "/proc/$holder/ns/net" 2>&1)"
check "g's dnsmasq (pid $dnsmasq) is still there" process_alive "$dnsmasq"
# dnsmasq is vmgrd's child (the helper clones it with CLONE_PARENT), so the
# kernel hands it to vmgrd's own reaper, as in host mode; it stays in the
# holder's namespaces, where the next vmgrd finds it through the holder.
check_eq "... still in the holder's PID namespace" "$(readlink "/proc/$holder/ns/pid" 2>&1)" \
        "$(readlink "/proc/${dnsmasq:-0}/ns/pid" 2>&1)"
check_eq "... and network namespace" "$netns" "$(readlink "/proc/${dnsmasq:-0}/ns/net" 2>&1)"
check "g's bridge is still there" nsenter -t "$holder" -n ip -o link show dev "${E[bridge]}"
check "the socket is still there" test -S "$RUN/netns.sock"

# --- the next vmgrd (here vmgr-netns-attach) attaches --------------------------------

attach --pid-file "$pidfile" -- ip -o link show dev "${E[bridge]}"
check_eq "netns_attach finds the holder" 1 "${A[attach]:-}${A[status]:+ (exit ${A[status]})}"
check_eq "... the same holder" "$holder" "${A[holder]:-}"
check_eq "... the same network namespace" "${netns//[^0-9]/}" "${A[net]:-}"
check_eq "a socket made through it is in that namespace" "${netns//[^0-9]/}" "${A[socket-net]:-}"
check_eq "a command forked into it sees g's bridge" 0 "${A[cmd]:-}"
check_match "... (its output)" "${E[bridge]}" "${A[out]}"
check_eq "a second attach meanwhile is refused (EBUSY)" -16 "${A[second]:-}"
check_eq "dnsmasq's pid file, through the holder, is dnsmasq" "$dnsmasq" "${A[pid]:-}"
check "the holder keeps everything after the attacher let go" process_alive "$holder"
check "... and dnsmasq" process_alive "$dnsmasq"
check "... and lets go of the lock again" lock_is_free

# Another user: the runtime directory and the socket are not theirs, and
# the holder answers only its own user.
out=$(vmgr_as "$VMGR_USER2" "$ATTACH" "$RUN" 2>&1) || true
check "another user cannot attach" test "$out" != "attach 1"

attach
check_eq "attach again (as after another crash)" 1 "${A[attach]:-}"

# A clean end through an attached holder: everything goes.
attach --end
check_eq "attach and end (netns_free)" "1 1" "${A[attach]:-} ${A[end]:-}"
check "the holder is gone" process_gone "$holder"
check "dnsmasq is gone" process_gone "$dnsmasq"
check_empty "no process of $VMGR_USER is left (but the bus)" "$(user_procs)"
check_empty "no process has the old network namespace" \
        "$(find /proc/[0-9]*/ns/net -lname "net:\\[${netns//[^0-9]/}\\]" 2>/dev/null || true)"
check_empty "nothing in the runtime dir but the lock" \
        "$(find "$RUN" -mindepth 1 ! -path "$LOCK" -printf '%P\n' 2>/dev/null | head -n 20)"
attach
check_eq "no holder left to attach to" 0 "${A[attach]:-}"
# The group's records in the state dir stay for the next vmgrd to clean.
rm -rf "$VMGR_TMP/state/vmgr/groups"

# --- kill -9 with nothing to keep: the holder ends by itself --------------------------

vmgr_start_vmgrd
holder=$(vmgr_holder_pid) || holder=0
t0=$(vmgr_now_ms)
vmgr_stop_vmgrd KILL
check_eq "vmgrd (no group) killed by SIGKILL" 137 "$VMGRD_STATUS"
vmgr_wait_until 5 process_gone "$holder" || true
timings+=("kill -9 of an idle vmgrd to its holder gone: $(($(vmgr_now_ms) - t0)) ms")
check "its holder, with nothing to keep, ended" process_gone "$holder"
vmgr_wait_until 5 nothing_left || true
check_empty "no process of $VMGR_USER is left (but the bus)" "$(user_procs)"
check_empty "nothing in the runtime dir but the lock" \
        "$(find "$RUN" -mindepth 1 ! -path "$LOCK" -printf '%P\n' 2>/dev/null | head -n 20)"
check "the lock is free" lock_is_free

# --- SIGTERM: the clean stop, as before ------------------------------------------------

vmgr_start_vmgrd
holder=$(vmgr_holder_pid) || holder=0
check "CreateGroup g again" vmgrctl_as_user -q group create g
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM with a group" 0 "$VMGRD_STATUS"
check "its holder is gone" process_gone "$holder"
check_empty "nothing is left" "$(vmgr_leftovers)"
check_empty "nothing in the runtime dir but the lock" \
        "$(find "$RUN" -mindepth 1 ! -path "$LOCK" -printf '%P\n' 2>/dev/null | head -n 20)"

printf '# %s\n' "${timings[@]}"
vmgr_finish
