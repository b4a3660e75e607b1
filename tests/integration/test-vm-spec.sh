#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Bad VM specs leave nothing behind, through vmgrd with real libvirt and QEMU:
#   - CreateGroup and AddVM with specs the parser refuses (a value out of
#     range, unknown keys, a VM name used twice, a bad extra disk, not JSON)
#     fail with org.vmgr1.Error.InvalidSpec naming the JSON path, and no group
#     object, link, file or process appears;
#   - a kernel that does not exist passes parsing and fails when the VM
#     starts: CreateGroup fails with InvalidSpec naming vms[0].kernel and the
#     path, and everything made for the group (bridge, TAP, dnsmasq, files,
#     libvirt domain) is undone; AddVM of such a VM to a running group fails
#     the same way and leaves the group as it was;
#   - vmgrctl names the --vm argument that was wrong.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

# What is left in the namespace other than vmgrd's own libvirtd (started with
# the first VM, it stays): vmgr_leftovers plus any libvirt domain.
leftovers() {
        local libvirtd
        local holder=
        # In namespace mode libvirtd may be a child of the namespace holder.
        [ "$VMGR_NET_MODE" = namespace ] && holder=$(vmgr_holder_pid)
        libvirtd=$(pgrep -u "$VMGR_USER" -P "$VMGRD_PID${holder:+,$holder}" -x libvirtd || true)
        vmgr_leftovers | grep -v -x -e "process ${libvirtd:-none} libvirtd" || true
        if [ -n "$libvirtd" ]; then
                vmgr_virsh list --all --name 2>&1 | sed '/^$/d; s/^/libvirt domain /'
        fi
}

# spec_refused NAME SPEC PATH-REGEX: CreateGroup x SPEC fails with InvalidSpec
# whose message names PATH-REGEX, and nothing is left.
spec_refused() {
        local name=$1 spec=$2 path=$3 out
        out=$(vmgr_dbus_error /org/vmgr1 org.vmgr1.Manager.CreateGroup string:x "string:$spec")
        check_match "$name: InvalidSpec naming $path" "^org\\.vmgr1\\.Error\\.InvalidSpec: (.*: )?$path: " "$out"
        check_eq "$name: no group object" "" "$(vmgr_group_path x)"
        check_empty "$name: nothing left" "$(leftovers)"
}

# --- refused by the parser -----------------------------------------------------

spec_refused "memory_mib 1" '{"vms":[{"name":"a","memory_mib":1}]}' 'vms\[0\]\.memory_mib'
spec_refused "unknown VM key" '{"vms":[{"name":"a","colour":"red"}]}' 'vms\[0\]\.colour'
spec_refused "unknown top-level key" '{"vms":[],"networks":1}' 'networks'
spec_refused "VM name used twice" '{"vms":[{"name":"a"},{"name":"a"}]}' 'vms\[1\](\.name)?'
spec_refused "second VM's vcpus 0" '{"vms":[{"name":"a"},{"name":"b","vcpus":0}]}' 'vms\[1\]\.vcpus'
spec_refused "extra disk with path and size" \
        '{"vms":[{"name":"a","extra_disks":[{"size_mib":16,"path":"/dev/null"}]}]}' 'vms\[0\]\.extra_disks\[0\]'
spec_refused "invalid VM name" '{"vms":[{"name":"a b"}]}' 'vms\[0\]\.name'
spec_refused "not JSON" '{"vms":[' '\.'

out=$(vmgrctl_as_user group create x --vm a --vm b:memory=1 2>&1 >/dev/null) && rc=0 || rc=$?
check "vmgrctl with a bad --vm fails" test "$rc" -ne 0
check_match "... and names the --vm and the JSON path" \
        "^vmgrctl: [^"$'\n'"]*'b:memory=1'[^"$'\n'"]*vms\\[1\\]\\.memory_mib: " "$out"
check_empty "... and leaves nothing" "$(leftovers)"

# --- a kernel that does not exist: refused at start, undone --------------------

no_kernel=/nonexistent/vmlinuz-vmgr-test
spec='{"accelerator":"tcg","vms":[{"name":"a"},{"name":"k","kernel":"'$no_kernel'"}]}'
t0=$(vmgr_now_ms)
out=$(vmgr_dbus_error /org/vmgr1 org.vmgr1.Manager.CreateGroup string:x "string:$spec")
t=$(($(vmgr_now_ms) - t0))
check_match "missing kernel: CreateGroup fails with InvalidSpec ($t ms)" '^org\.vmgr1\.Error\.InvalidSpec: ' "$out"
check_match "missing kernel: the message names vms[1].kernel and the path" \
        "vms\\[1\\]\\.kernel: [^"$'\n'"]*$no_kernel" "$out"
# docs/dbus-api.md: CreateGroup "fails with everything that was made undone",
# so all of it must be gone when the error arrives.
check_eq "missing kernel: no group object when the error arrives" "" "$(vmgr_group_path x)"
check_empty "missing kernel: nothing left when the error arrives (no QEMU, link, dnsmasq, file, domain)" \
        "$(leftovers)"
check_eq "missing kernel: ListGroups is empty when the error arrives" "a(so) 0" \
        "$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups 2>&1)"
# Whether or not that held, the undo must finish (and not disturb what follows).
is_clean() {
        [ -z "$(leftovers)" ] && [ -z "$(vmgr_group_path x)" ]
}
vmgr_wait_until 15 is_clean || true
check_empty "missing kernel: nothing left a moment later either" "$(leftovers; vmgr_group_path x)"

# --- AddVM to a running group -------------------------------------------------------

check "network-only group s" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss s \
        '{"accelerator":"tcg"}'
spath=$(vmgr_group_path s)
vmgr_load_expected ES s
addvm_error() {
        vmgr_dbus_error "$spath" org.vmgr1.Group.AddVM "string:$1" "string:$2"
}
check_match "AddVM memory_mib 1: InvalidSpec naming memory_mib" \
        '^org\.vmgr1\.Error\.InvalidSpec: (.*: )?memory_mib: ' "$(addvm_error v '{"memory_mib":1}')"
check_match "AddVM unknown key: InvalidSpec naming it" \
        '^org\.vmgr1\.Error\.InvalidSpec: (.*: )?colour: ' "$(addvm_error v '{"colour":"red"}')"
check_match "AddVM with another name in the spec: InvalidSpec naming name" \
        '^org\.vmgr1\.Error\.InvalidSpec: (.*: )?name: ' "$(addvm_error v '{"name":"w"}')"
check_match "AddVM with an invalid VM name: InvalidName" '^org\.vmgr1\.Error\.InvalidName: ' \
        "$(addvm_error 'v w' '')"
out=$(addvm_error k '{"kernel":"'$no_kernel'"}')
check_match "AddVM missing kernel: InvalidSpec" '^org\.vmgr1\.Error\.InvalidSpec: ' "$out"
check_match "AddVM missing kernel: the message names kernel and the path" "kernel: [^"$'\n'"]*$no_kernel" "$out"
gone() {
        [ -z "$(vmgr_vm_path s k)" ]
}
vmgr_wait_until 10 gone || true
check_eq "AddVM missing kernel: no VM object k" "" "$(vmgr_vm_path s k)"
check_eq "AddVM missing kernel: Group.VMs is empty" "ao 0" \
        "$(busctl_as_user get-property org.vmgr1 "$spath" org.vmgr1.Group VMs 2>&1)"
check_eq "AddVM missing kernel: the group still runs" running "$(vmgr_group_prop "$spath" State)"
check_empty "AddVM missing kernel: no TAP, QEMU, domain or VM directory left" \
        "$(vmgr_group_leftovers s k | grep -v -x -e "bridge ${ES[bridge]}" -e "file $VMGR_TMP/state/vmgr/groups/s.json" \
                -e "file $VMGR_TMP/run/vmgr/groups/s" -e "file $VMGR_TMP/state/vmgr/groups/s" || true)"
check_empty "AddVM missing kernel: the group's state directory holds no VM" \
        "$(find "$VMGR_TMP/state/vmgr/groups/s" -mindepth 1 -maxdepth 2 2>/dev/null |
                grep -v -e '/vms$' -e '/s/group\.log$' || true)"

check "delete s" vmgrctl_as_user group delete s
check_empty "nothing left at the end" "$(leftovers)"

vmgr_finish
