#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Chaos, one piece at a time: while two groups with a VM each run (real
# libvirtd, QEMU under TCG), kill -9 in turn
#   - the helper (vmgr-netadm): vmgrd starts a new one at its next request
#     (a group is made and deleted);
#   - one group's dnsmasq: vmgrd starts it again (a new pid, Dnsmasq
#     running, DnsmasqRestarts one more);
#   - vmgrd's libvirtd: vmgrd starts it again and reconnects; no VM is
#     lost (the same QEMU pids, every domain listed);
#   - one VM's QEMU: the VM becomes crashed (or stopped) with a LastError
#     that says what happened, and vm start brings it back.
# After each: vmgrd still runs (the same pid, on the bus), both groups
# work (every VM ready, a VM.Run in each, a download from each group's
# file server by its VM) and nothing is left that no group owns
# (vmgr_leaks, lib-leaks.sh). About two minutes.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
source "$(dirname "$0")/lib-chaos.sh"
vmgr_require_root
vmgr_vm_require_tools
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

files=$VMGR_TMP/files
mkdir -m 0755 "$files"
head -c $((1024 * 1024)) /dev/urandom >"$files/base"
chmod 0644 "$files/base"
# shellcheck disable=SC2034 # read by chaos_group_works (lib-chaos.sh)
declare -A CHAOS_SHA=([base]="$(sha256sum <"$files/base" | cut -d' ' -f1)")

check "create p1 with VM a" vmgrctl_as_user -q group create p1 --vm a
check "create p2 with VM a" vmgrctl_as_user -q group create p2 --vm a
for g in p1 p2; do
        check "serve base in $g" vmgrctl_as_user serve "$g" "$files/base" --name base
done
check "both groups get ready" vmgrctl_as_user wait p1 --timeout 150
check "both groups get ready (p2)" vmgrctl_as_user wait p2 --timeout 150
vmgrd_pid=$(vmgr_vmgrd_bus_pid)
check_eq "the bus names the vmgrd the test started" "$VMGRD_PID" "$vmgrd_pid"

# outcome WHAT: after WHAT was killed, vmgrd still runs, p1 and p2 work
# and nothing leaked.
outcome() {
        check_eq "$1: vmgrd still owns its bus name, the same pid" "$vmgrd_pid" "$(vmgr_vmgrd_bus_pid)"
        check_empty "$1: p1 works (ready, VM.Run, download)" "$(chaos_group_problems p1 base)"
        check_empty "$1: p2 works (ready, VM.Run, download)" "$(chaos_group_problems p2 base)"
        check_no_leaks "$1: nothing leaked" p1 p2
}
outcome "before any kill"

# Pids of the QEMUs of both VMs, as "p1:PID p2:PID".
qemus() {
        echo "p1:$(chaos_qemu_pid p1 a) p2:$(chaos_qemu_pid p2 a)"
}

# --- the helper --------------------------------------------------------------

helper=$(pgrep -P "$vmgrd_pid" -x vmgr-netadm || true)
check_match "the helper runs (one, a child of vmgrd)" '^[0-9]+$' "$helper"
[ -n "$helper" ] && kill -KILL "$helper"
sleep 0.5
check "after the helper's death: a group is made (a new helper)" vmgrctl_as_user -q group create pq
check "... and deleted" vmgrctl_as_user group delete pq
new_helper=$(pgrep -P "$vmgrd_pid" -x vmgr-netadm || true)
check_match "a new helper runs" '^[0-9]+$' "$new_helper"
check "... with another pid" test "$new_helper" != "$helper"
outcome "helper killed"

# --- one dnsmasq -------------------------------------------------------------

g1=$(vmgr_group_path p1)
old=$(chaos_dnsmasq_pid p1)
restarts=$(vmgr_group_prop "$g1" DnsmasqRestarts)
check_match "p1's dnsmasq runs" '^[0-9]+$' "$old"
qemu_before=$(qemus)
[ -n "$old" ] && kill -KILL "$old"
dnsmasq_back() {
        local now
        now=$(chaos_dnsmasq_pid p1)
        [ -n "$now" ] && [ "$now" != "$old" ] && [ "$(vmgr_group_prop "$g1" Dnsmasq)" = running ]
}
check "p1's dnsmasq is started again within 20 s" vmgr_wait_until 20 dnsmasq_back
check_eq "DnsmasqRestarts counts it" "$((restarts + 1))" "$(vmgr_group_prop "$g1" DnsmasqRestarts)"
check_eq "p2's dnsmasq is the same" 1 "$(chaos_dnsmasq_pid p2 | wc -w)"
check_eq "no QEMU was touched" "$qemu_before" "$(qemus)"
outcome "dnsmasq killed"

# --- libvirtd ------------------------------------------------------------------

old=$(pgrep -u "$VMGR_USER" -x libvirtd || true)
check_match "vmgrd's libvirtd runs (one)" '^[0-9]+$' "$old"
qemu_before=$(qemus)
[ -n "$old" ] && kill -KILL "$old"
libvirtd_back() {
        local now
        now=$(pgrep -u "$VMGR_USER" -x libvirtd) || return 1
        [ "$now" != "$old" ] && vmgr_virsh list --name | grep -x p1:a >/dev/null
}
check "libvirtd is started again and lists the domains within 30 s" vmgr_wait_until 30 libvirtd_back
check_eq "libvirtd lists both domains, running" "p1:a running|p2:a running" \
        "$(vmgr_virsh list --all | awk '{ print $2, $3 }' | sort | paste -sd'|')"
check_eq "no QEMU was lost or replaced" "$qemu_before" "$(qemus)"
grep -E 'libvirtd|Restarting' "$VMGR_TMP/vmgrd.log" | tail -n 4 | sed 's/^/# log: /'
outcome "libvirtd killed"
# A VM operation through the new libvirtd.
check "vm restart p2 a through the new libvirtd" vmgrctl_as_user -q vm restart p2 a
check "p2 gets ready again" vmgrctl_as_user wait p2 --timeout 150

# --- one QEMU --------------------------------------------------------------------

a2=$(vmgr_vm_path p2 a)
old=$(chaos_qemu_pid p2 a)
p1_qemu=$(chaos_qemu_pid p1 a)
check_match "p2/a's QEMU runs (one)" '^[0-9]+$' "$old"
[ -n "$old" ] && kill -KILL "$old"
vm_down() {
        [[ $(vmgr_vm_prop "$a2" State) =~ ^(crashed|stopped)$ ]]
}
check "p2/a is crashed or stopped within 15 s" vmgr_wait_until 15 vm_down
state=$(vmgr_vm_prop "$a2" State)
err=$(vmgr_vm_prop "$a2" LastError)
echo "# p2/a: state $state, LastError: $err"
# Not only that it failed: that QEMU ended, and how.
check_match "LastError says what happened (QEMU killed, by which signal, or exited)" \
        '(killed|signal|SIGKILL|exited|died)' "$err"
check_eq "p1's QEMU is the same" "$p1_qemu" "$(chaos_qemu_pid p1 a)"
check_no_leaks "with p2/a down: nothing leaked" p1 p2
check "vm start p2 a" vmgrctl_as_user -q vm start p2 a
check "p2/a gets ready again" vmgrctl_as_user wait p2 a --timeout 150
check_match "p2/a runs in a new QEMU" '^[0-9]+$' "$(chaos_qemu_pid p2 a)"
outcome "QEMU killed"

check "delete p1" vmgrctl_as_user group delete p1
check "delete p2" vmgrctl_as_user group delete p2
check_no_leaks "nothing left once both are deleted"
vmgr_finish
