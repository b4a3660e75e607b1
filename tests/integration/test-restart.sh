#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrd cleans up after itself: a vmgrd killed with SIGKILL leaves bridges,
# addresses, dnsmasq processes and state files behind, and the next vmgrd on
# the same state and runtime dirs removes all of it at start (in namespace
# mode, the killed vmgrd's namespace holder keeps them until then);
# a vmgrd stopped with SIGTERM deletes its groups and exits 0.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

vmgr_start_bus
vmgr_start_vmgrd

list_groups() {
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups 2>&1 || true
}

# Number of live dnsmasq processes of the test user.
count_dnsmasq() {
        ps -u "$VMGR_USER" -o stat=,comm= | awk '$1 !~ /^Z/ && $2 == "dnsmasq"' | wc -l
}

# --- SIGKILL, then a new vmgrd recovers ------------------------------------

for g in r1 r2 r3; do
        check "create $g" vmgrctl_as_user -q group create "$g"
done
check_eq "three dnsmasq running" 3 "$(count_dnsmasq)"

vmgr_stop_vmgrd KILL
check_eq "vmgrd killed by SIGKILL" 137 "$VMGRD_STATUS"
# The precondition of this test: the dead vmgrd left everything behind (in
# namespace mode its holder keeps its namespaces, with the groups in them).
check_eq "dnsmasq processes outlive the killed vmgrd" 3 "$(count_dnsmasq)"
if [ "$VMGR_NET_MODE" = host ]; then
        check_match "links of the killed vmgrd are still there" "link vbr-" "$(vmgr_leftovers)"
else
        check_match "the killed vmgrd's holder is still there" "process [0-9]+ vmgrd-netns" "$(vmgr_leftovers)"
fi

start=$(date +%s%N)
vmgr_start_vmgrd
left=$(vmgr_leftovers)
for ((i = 0; i < 250 && ${#left} > 0; i++)); do
        sleep 0.02
        left=$(vmgr_leftovers)
done
echo "# the new vmgrd removed what the killed one left in $(( ($(date +%s%N) - start) / 1000000 )) ms (including its start)"
check_empty "nothing left within 5 s of the new vmgrd's start" "$left"
check_eq "ListGroups is empty" "a(so) 0" "$(list_groups)"

# The recovered vmgrd works: the same names can be created again.
check "create r1 again" vmgrctl_as_user -q group create r1
check "delete r1" vmgrctl_as_user group delete r1

# --- SIGTERM deletes every group and exits 0 --------------------------------

for g in s1 s2; do
        check "create $g" vmgrctl_as_user -q group create "$g"
done
check_eq "two dnsmasq running" 2 "$(count_dnsmasq)"
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM with two groups" 0 "$VMGRD_STATUS"
check_empty "nothing left after SIGTERM" "$(vmgr_leftovers)"

vmgr_finish
