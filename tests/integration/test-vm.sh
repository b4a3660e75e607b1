#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VMs through vmgrd end to end: vmgrd's private libvirtd and real QEMU under
# TCG booting the default guest, all inside this test's namespaces.
#   - "vmgrctl group create g --vm a --vm b:ipv4,vcpus=2" returns with both QEMUs
#     running; properties, TAPs and consoles match the derivation recomputed
#     in bash; each VM answers ping on its SLAAC address, sent from the
#     group's management address; b's DHCPv4 lease is its IPv4 property, is
#     in dnsmasq's leases with b's MAC4, and answers ping;
#   - a VM with an extra disk (group h): Kill and Start keep its console log
#     (appended to) and its disk overlay (the same file);
#   - deleting g with its VMs running leaves no QEMU, TAP, bridge, file or
#     libvirt domain, and h is untouched; SIGTERM to vmgrd with h and its VM
#     running, a network-only group n and a group e being created leaves
#     nothing at all (libvirtd included);
#   - DeleteGroup while CreateGroup with a VM is under way: both answer, and
#     nothing is left.
# Prints the times: create with two VMs, create to ready, start to ready, delete.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

# Timings, printed at the end.
timings=()

# --- create g with two VMs --------------------------------------------------

vmgr_load_expected EG g
t0=$(vmgr_now_ms)
out=$(vmgrctl_as_user group create g --vm a --vm b:ipv4,vcpus=2 2>&1) && rc=0 || rc=$?
t_create=$(($(vmgr_now_ms) - t0))
timings+=("create g with 2 VMs (returns once QEMU runs): $t_create ms")
check_eq "vmgrctl group create g --vm a --vm b:ipv4,vcpus=2 ($t_create ms)" 0 "$rc"
if [ "$rc" -ne 0 ]; then
        vmgr_not_ok "nothing else can be checked without the group" "$out"
        vmgr_finish
fi

gpath=$(vmgr_group_path g)
check_eq "group g is running" running "$(vmgr_group_prop "$gpath" State)"
declare -A vpath
for vm in a b; do
        vpath[$vm]=$(vmgr_vm_path g "$vm")
done
check_eq "Group.VMs lists a and b, in spec order" "ao 2 \"${vpath[a]}\" \"${vpath[b]}\"" \
        "$(busctl_as_user get-property org.vmgr1 "$gpath" org.vmgr1.Group VMs 2>&1)"

# Right after CreateGroup returned: QEMU runs, state says so, libvirt has the domain.
for vm in a b; do
        check_eq "VM $vm: state running when CreateGroup returns" running "$(vmgr_vm_prop "${vpath[$vm]}" State)"
        check_eq "VM $vm: one QEMU runs it" 1 "$(vmgr_qemu_pids g "$vm" | wc -l)"
        check_eq "VM $vm: libvirt domain g:$vm is running" running "$(vmgr_virsh domstate "g:$vm" 2>&1)"
done
list=$(vmgrctl_as_user vm list g 2>&1) || true
check_match "vmgrctl vm list g shows a and b running" \
        "(^|"$'\n'")a +running .*"$'\n'"b +running " "$list"

# The guest kernel's command line: noreplace-smp always, nolapic_timer only
# with one vCPU (a, not b: docs/guest.md, "Boot").
for vm in a b; do
        cmdline=$(vmgr_virsh dumpxml "g:$vm" 2>&1 | sed -n 's:.*<cmdline>\(.*\)</cmdline>.*:\1:p')
        check_match "VM $vm: the kernel command line has noreplace-smp" '(^| )noreplace-smp( |$)' "$cmdline"
        if [ "$vm" = a ]; then
                check_match "VM a (1 vCPU): the kernel command line has nolapic_timer" '(^| )nolapic_timer( |$)' "$cmdline"
        else
                check_eq "VM b (2 vCPUs): the kernel command line has no nolapic_timer" "" \
                        "$(grep -ow nolapic_timer <<<"$cmdline")"
        fi
done

# Derived names and addresses: properties and links.
for vm in a b; do
        vmgr_load_expected E g "$vm"
        p=${vpath[$vm]}
        check_eq "VM $vm: Name" "$vm" "$(vmgr_vm_prop "$p" Name)"
        check_eq "VM $vm: Group" "$gpath" "$(vmgr_vm_prop "$p" Group)"
        for prop in MAC:mac IPv6:ipv6 Tap:tap; do
                check_eq "VM $vm: ${prop%%:*} equals the derivation" "${E[${prop#*:}]}" \
                        "$(vmgr_vm_prop "$p" "${prop%%:*}")"
        done
        if [ "$vm" = b ]; then
                check_eq "VM b: MAC4 equals the derivation" "${E[mac4]}" "$(vmgr_vm_prop "$p" MAC4)"
                check_eq "VM b: Tap4 equals the derivation" "${E[tap4]}" "$(vmgr_vm_prop "$p" Tap4)"
                taps=("${E[tap]}" "${E[tap4]}")
        else
                check_eq "VM a (no ipv4): MAC4, Tap4 and IPv4 are empty" "||" \
                        "$(vmgr_vm_prop "$p" MAC4)|$(vmgr_vm_prop "$p" Tap4)|$(vmgr_vm_prop "$p" IPv4)"
                taps=("${E[tap]}")
                check_empty "VM a (no ipv4): no second TAP" "$(vmgr_netns_exec ip -o link show dev "${E[tap4]}" 2>/dev/null || true)"
        fi
        for tap in "${taps[@]}"; do
                check_match "VM $vm: TAP $tap is a port of bridge ${EG[bridge]}" " master ${EG[bridge]} " \
                        "$(vmgr_netns_exec ip -o link show dev "$tap" 2>&1)"
        done
        check_match "VM $vm: libvirt has the MAC(s) on those TAPs" \
                "${taps[0]} +ethernet +[^ ]+ +virtio +${E[mac]}" "$(vmgr_virsh domiflist "g:$vm" 2>&1)"
done

# --- consoles: ready, with the derived SLAAC address -------------------------

for vm in a b; do
        vmgr_load_expected E g "$vm"
        p=${vpath[$vm]}
        console=$(vmgr_vm_prop "$p" ConsoleLog)
        check_eq "VM $vm: ConsoleLog is in the VM's state directory" \
                "$VMGR_TMP/state/vmgr/groups/g/vms/$vm" "$(dirname "$console")"
        if vmgr_wait_console "$console" '^vmgr-guest: ready' 1 90; then
                t_ready=$(($(vmgr_now_ms) - t0))
                timings+=("VM $vm: CreateGroup call to 'vmgr-guest: ready' (2 VMs booting): $t_ready ms, guest uptime $(vmgr_console_value "$console" uptime) s")
                vmgr_ok "VM $vm: console shows 'vmgr-guest: ready' ($t_ready ms after the create call)"
        else
                vmgr_not_ok "VM $vm: console shows 'vmgr-guest: ready'" "$(vmgr_console_tail "$console")"
        fi
        check_eq "VM $vm: console has enp1s0's SLAAC address, the derived one" "${E[ipv6]}/64" \
                "$(vmgr_console_value "$console" 'enp1s0 ipv6')"
        check_eq "VM $vm: ... which is the IPv6 property" "$(vmgr_vm_prop "$p" IPv6)/64" \
                "$(vmgr_console_value "$console" 'enp1s0 ipv6')"
        check_eq "VM $vm: console says hostname $vm" "$vm" "$(vmgr_console_value "$console" hostname)"
done
out=$(vmgrctl_as_user console g a 2>&1) || true
check_match "vmgrctl console g a prints the console log" "vmgr-guest: ready" "$out"

# --- ping from where the groups live, from the management address --------------------

for vm in a b; do
        vmgr_load_expected E g "$vm"
        check "VM $vm answers ping on ${E[ipv6]}" vmgr_netns_exec ping -6 -n -q -c 1 -w 10 "${E[ipv6]}"
        check_match "VM $vm: echo requests leave from the group's management address" \
                "^${E[ipv6]} from :: dev ${EG[bridge]} proto kernel src ${EG[management6]} " \
                "$(vmgr_netns_exec ip -6 route get "${E[ipv6]}" 2>&1)"
done

# --- b's IPv4 address ---------------------------------------------------------

vmgr_load_expected E g b
pb=${vpath[b]}
has_ipv4() {
        [ -n "$(vmgr_vm_prop "$pb" IPv4)" ]
}
vmgr_wait_until 30 has_ipv4 || true
ipv4=$(vmgr_vm_prop "$pb" IPv4)
net4=${EG[subnet4]%.0/24}
check_match "VM b: IPv4 property is an address in ${EG[subnet4]}" \
        "^${net4//./\\.}\\.([2-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])$" "$ipv4"
check_match "VM b: dnsmasq's leases file has it with b's MAC4 ${E[mac4]}" \
        "(^|"$'\n'")[0-9]+ ${E[mac4]} ${ipv4:-none} " \
        "$(cat "$(vmgr_group_prop "$gpath" RuntimeDirectory)/dnsmasq.leases" 2>&1)"
check_eq "VM b: the console's enp2s0 address is the IPv4 property" "${ipv4:-none}/24" \
        "$(vmgr_console_value "$(vmgr_vm_prop "$pb" ConsoleLog)" 'enp2s0 ipv4')"
check "VM b answers ping on ${ipv4:-its IPv4 address}" vmgr_netns_exec ping -4 -n -q -c 1 -w 10 "${ipv4:-0.0.0.0}"

# --- Kill and Start keep the console and the disk (group h, VM c) -------------

spec='{"vms": [{"name": "c", "extra_disks": [{"size_mib": 16}]}]}'
out=$(vmgrctl_as_user group create h --spec - <<<"$spec" 2>&1) && rc=0 || rc=$?
check_eq "group h with VM c and a 16 MiB extra disk" 0 "$rc"
[ "$rc" -eq 0 ] || vmgr_not_ok "group h output" "$out"
pc=$(vmgr_vm_path h c)
console=$(vmgr_vm_prop "$pc" ConsoleLog)
vmdir=$(dirname "$console")
# libvirt's view gives the overlay's path without guessing its file name.
overlay=$(vmgr_virsh domblklist h:c --details 2>/dev/null | awk '$1 == "file" && $2 == "disk" { print $4; exit }')
check_eq "VM c: libvirt's disk is a file in the VM's directory" "$vmdir" "$(dirname "${overlay:-/none/x}")"
overlay=${overlay:-$vmdir/none}
check "VM c: the overlay is a qcow2 file" bash -c "head -c 4 '$overlay' | grep -q '^QFI'"
# A second link holds the inode: an overlay deleted and made again could not
# get the same inode number back.
ln "$overlay" "$VMGR_TMP/overlay-c" 2>/dev/null || true
inode=$(stat -c %i "$VMGR_TMP/overlay-c" 2>/dev/null) || inode=none
vda='^vmgr-guest: disk vda 32768 sectors'
if vmgr_wait_console "$console" '^vmgr-guest: ready' 1 90; then
        vmgr_ok "VM c: console shows 'vmgr-guest: ready'"
else
        vmgr_not_ok "VM c: console shows 'vmgr-guest: ready'" "$(vmgr_console_tail "$console")"
fi
check_eq "VM c: the guest sees a 16 MiB disk vda" 1 "$(vmgr_console_count "$console" "$vda")"
# The guest may still write after "ready": compare prefixes, not sizes.
cp "$console" "$VMGR_TMP/console-c-0"
bytes0=$(stat -c %s "$VMGR_TMP/console-c-0")

check "vmgrctl vm kill h c" vmgrctl_as_user vm kill h c
check_eq "VM c: stopped after Kill" stopped "$(vmgr_vm_prop "$pc" State)"
check_empty "VM c: no QEMU after Kill" "$(vmgr_qemu_pids h c)"
check "VM c: the console log is still there, all of it" cmp -n "$bytes0" "$VMGR_TMP/console-c-0" "$console"
cp "$console" "$VMGR_TMP/console-c-1"
lines1=$(wc -l <"$VMGR_TMP/console-c-1")
bytes1=$(stat -c %s "$VMGR_TMP/console-c-1")
check_eq "VM c: the overlay is still there, the same file" "$inode" "$(stat -c %i "$overlay" 2>&1)"

t1=$(vmgr_now_ms)
check "vmgrctl vm start h c" vmgrctl_as_user vm start h c
t_start=$(($(vmgr_now_ms) - t1))
check_eq "VM c: running after Start" running "$(vmgr_vm_prop "$pc" State)"
if vmgr_wait_console "$console" '^vmgr-guest: ready' 2 90; then
        t_ready=$(($(vmgr_now_ms) - t1))
        timings+=("VM c: Start call to 'vmgr-guest: ready' (one VM booting): $t_ready ms (Start returned after $t_start ms)")
        vmgr_ok "VM c: 'vmgr-guest: ready' a second time after Start ($t_ready ms)"
else
        vmgr_not_ok "VM c: 'vmgr-guest: ready' a second time after Start" "$(vmgr_console_tail "$console")"
fi
lines2=$(wc -l <"$console")
check "VM c: the console log grew ($lines1 -> $lines2 lines)" test "$lines2" -gt "$lines1"
check "VM c: the first boot's lines are still at its start" cmp -n "$bytes1" "$VMGR_TMP/console-c-1" "$console"
check_eq "VM c: the same overlay file after Start" "$inode" "$(stat -c %i "$overlay" 2>&1)"
check "VM c: ... and it is not empty" test -s "$overlay"
check_eq "VM c: the guest sees the disk again" 2 "$(vmgr_console_count "$console" "$vda")"
rm -f "$VMGR_TMP/overlay-c"

# --- delete g with its VMs running ------------------------------------------------

check_empty "before delete: g's VMs run" "$(for vm in a b; do
        [[ $(vmgr_vm_prop "${vpath[$vm]}" State) =~ $VMGR_VM_UP ]] || echo "VM $vm is $(vmgr_vm_prop "${vpath[$vm]}" State)"
done)"
t1=$(vmgr_now_ms)
check "vmgrctl group delete g (VMs running)" vmgrctl_as_user group delete g
t_delete=$(($(vmgr_now_ms) - t1))
timings+=("delete g with 2 running VMs: $t_delete ms")
check_empty "nothing of g is left: QEMU, TAPs, bridge, files, libvirt domains" "$(vmgr_group_leftovers g a b)"
check_eq "g is gone from the bus" "" "$(vmgr_group_path g)"
check_match "h is untouched: c still runs" '^(running|ready) 1$' "$(vmgr_vm_prop "$pc" State) $(vmgr_qemu_pids h c | wc -l)"

# --- DeleteGroup while CreateGroup with a VM is under way -------------------------

# (docs/dbus-api.md: the deletion waits for the creation, then deletes.)
group_appeared() {
        [ -n "$(vmgr_group_path "$1")" ]
}
busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss d \
        '{"vms": [{"name": "a", "ipv4": true}]}' >"$VMGR_TMP/create-d.out" 2>&1 &
create_pid=$!
vmgr_wait_until 10 group_appeared d || true
state=$(vmgr_group_prop "$(vmgr_group_path d)" State)
out=$(vmgrctl_as_user group delete d 2>&1) && rc=0 || rc=$?
check_eq "DeleteGroup d while it is being created (it was $state) succeeds" "0 " "$rc $out"
create_rc=0
wait "$create_pid" || create_rc=$?
check_eq "... and the CreateGroup call succeeded" "0 o \"/org/vmgr1/group/d\"" \
        "$create_rc $(cat "$VMGR_TMP/create-d.out")"
check_empty "... and nothing of d is left" "$(vmgr_group_leftovers d a)"

# --- SIGTERM with h (c running), n and e (being created): nothing at all left -------

check "a second group for SIGTERM to delete: n, network only" vmgrctl_as_user group create -q n
check_eq "libvirtd runs" 1 "$(pgrep -u "$VMGR_USER" -x libvirtd | wc -l)"
busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss e \
        '{"vms": [{"name": "a"}]}' >/dev/null 2>&1 &
create_pid=$!
vmgr_wait_until 10 group_appeared e || true
# libvirt's status files of running domains: h:c's is there now, none may stay.
qemu_run=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/qemu/run
check "libvirt keeps h:c's status in $qemu_run" test -e "$qemu_run/h:c.xml"
state=$(vmgr_group_prop "$(vmgr_group_path e)" State)
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM with groups h (VM c running), n and e ($state)" 0 "$VMGRD_STATUS"
wait "$create_pid" || true
# Processes vmgrd ended may take a moment to be gone from the process table.
is_clean() {
        [ -z "$(vmgr_leftovers)" ]
}
vmgr_wait_until 5 is_clean || true
check_empty "after SIGTERM: no QEMU, libvirtd, dnsmasq, helper, link or group file" "$(vmgr_leftovers)"
check_empty "after SIGTERM: h's VM directory is gone" "$(find "$vmdir" 2>/dev/null || true)"
check_empty "after SIGTERM: no domain status left in libvirt's run directory" \
        "$(find "$qemu_run" -name '*.xml' -o -name '*.pid' 2>/dev/null || true)"

for t in "${timings[@]}"; do
        echo "# timing: $t"
done
vmgr_finish
