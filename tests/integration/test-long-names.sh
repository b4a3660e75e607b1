#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Long paths and names: vmgrd with a runtime directory of 120 characters
# and a group and a VM whose names have 63 characters each (the longest
# valid ones) boots a real VM (libvirtd, QEMU under TCG, the default guest)
# and runs a command in it. QEMU's monitor socket, the agent's socket and
# libvirtd's own would be longer than a unix socket's 108 bytes below such a
# runtime directory ("UNIX socket path ... too long" from libvirt before):
#   - a runtime directory too long for the helper's dnsmasq directory of a
#     group with a 63-character name (154 characters) is refused at start;
#   - vmgrd makes a short directory /tmp/vmgrd-XXXXXX of its user, mode
#     0700, whose "r" leads to the runtime directory, and records it in
#     RUNTIME/sockdir; the sockets live in the runtime directory;
#   - the group becomes ready; exec works;
#   - with that VM: VM.Run with a timeout of 2^64-1 (no limit) runs;
#     VM.Start of the running VM fails saying it runs already (vmgrctl
#     exits 1); vmgrctl cp of a directory fails saying so (exit 2) and
#     leaves no file, temporary or not, in the guest;
#   - host mode: after kill -9 the next vmgrd uses the same short
#     directory (the paths of QEMUs it may adopt stay valid);
#   - SIGTERM removes the short directory and the record.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools
vmgr_enter_netns "$@"
vmgr_start_bus

RUN=$VMGR_TMP/run/long-runtime-directory-
RUN=$RUN$(printf 'd%.0s' $(seq $((120 - ${#RUN}))))
G=long-group-$(printf 'g%.0s' $(seq 52))
V=long-vm-$(printf 'v%.0s' $(seq 55))
check_eq "the runtime directory has 120 characters, the names 63" "120 63 63" "${#RUN} ${#G} ${#V}"

# The helper takes a group's dnsmasq directory of at most 224 bytes:
# RUNTIME/groups/ and a 63-character name leave 153 for RUNTIME.
vmgr_as_argv "$VMGR_USER"
out=$("${VMGR_AS_ARGV[@]}" "$VMGRD" --netadm "$VMGR_NETADM" --state-dir "$VMGR_TMP/state/vmgr" \
        --runtime-dir "$RUN$(printf 'x%.0s' $(seq 34))" </dev/null 2>&1) && rc=0 || rc=$?
check_match "vmgrd refuses a 154-character runtime directory at start, saying what to do" \
        "^1 .*too long; pass another --runtime-dir" "$rc $out"

vmgr_start_vmgrd --runtime-dir "$RUN"
standin=$(readlink "$RUN/sockdir" 2>&1) || true
check_match "vmgrd made a short directory for its sockets ($standin)" '^/tmp/vmgrd-[A-Za-z0-9]{6}$' "$standin"
check_eq "... of its user, mode 0700, leading to the runtime directory" "$VMGR_USER 700 $RUN" \
        "$(stat -c '%U %a' "$standin" 2>&1) $(readlink "$standin/r" 2>&1)"

t0=$(vmgr_now_ms)
out=$(vmgrctl_as_user group create "$G" -q --vm "$V" 2>&1) && rc=0 || rc=$?
check_eq "vmgrctl group create (63-character names) with a VM" 0 "$rc${out:+ $out}"
gpath=$(vmgr_group_path "$G")
vpath=$(vmgr_vm_path "$G" "$V")
out=$(busctl_as_user --timeout=200 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 180000000 2>&1) &&
        rc=0 || rc=$?
check_eq "Group.WaitReady succeeds ($(($(vmgr_now_ms) - t0)) ms after CreateGroup)" 0 "$rc${out:+ $out}"
monitor=$(find "$RUN/libvirt" -name monitor.sock 2>&1)
check_match "QEMU's monitor socket lies in the runtime directory" "/domain-[0-9]+-[^/]{20}/monitor\.sock$" "$monitor"
check "... at a path too long for a unix socket (${#monitor} bytes)" test "${#monitor}" -ge 108
out=$(vmgrctl_as_user exec "$G" "$V" -- uname -r 2>&1) && rc=0 || rc=$?
check_match "vmgrctl exec runs a command in the VM" "^0 .*cloud-amd64" "$rc $out"

# Issue 13's small bugs, with a VM at hand.
out=$(busctl_as_user call org.vmgr1 "$vpath" org.vmgr1.VM Run asayt 2 echo hi 0 18446744073709551615 2>&1) || true
check_eq "VM.Run with timeout 2^64-1 (no limit) runs the command" "iayay 0 3 104 105 10 0" "$out"
out=$(vmgrctl_as_user vm start "$G" "$V" 2>&1) && rc=0 || rc=$?
check_match "vmgrctl vm start of the running VM exits 1 saying it runs already" "^1 .*is already running" "$rc $out"
check_eq "... and the VM still runs" ready "$(vmgr_vm_prop "$vpath" State)"
out=$(vmgrctl_as_user cp "$VMGR_TMP" "$G/$V:/tmp/copied" 2>&1) && rc=0 || rc=$?
check_match "vmgrctl cp of a directory exits 2 saying so" "^2 .*is a directory" "$rc $out"
out=$(vmgrctl_as_user exec "$G" "$V" -- sh -c 'ls -a /tmp | grep -e copied -e vmgr-agent || true' 2>&1) || true
check_eq "... and leaves no file in the guest" "" "$out"

if [ "$VMGR_NET_MODE" = host ]; then
        vmgr_stop_vmgrd KILL
        vmgr_start_vmgrd --runtime-dir "$RUN"
        check_eq "after kill -9, the next vmgrd uses the same short directory" "$standin" \
                "$(readlink "$RUN/sockdir" 2>&1)"
fi

vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
check "SIGTERM removes the short directory" test ! -e "$standin"
check "... and its record" test ! -L "$RUN/sockdir"
vmgr_finish
