#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# What a vmgrd that was killed with SIGKILL leaves, and what the next one
# does with it (network-only groups; test-adopt.sh has VMs):
#   - every running group is adopted (the same dnsmasq, its bridge
#     untouched, Manager.GroupsAdopted counts them; in namespace mode the
#     next vmgrd attaches to the namespaces the dead one's holder kept);
#   - a group the dead vmgrd was still creating or deleting is cleaned up;
#     a clean-up that fails (the helper cannot run) keeps the group's state
#     file and its name reserved: CreateGroup of that name is refused until
#     the clean-up succeeds, and then it works;
#   - an agent socket file of a VM that no adopted group has is removed;
#   - a vmgrd stopped with SIGTERM deletes its groups and exits 0.
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

adopted() {
        busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager GroupsAdopted
}
dnsmasq_pid() {
        cat "$VMGR_TMP/run/vmgr/groups/$1/dnsmasq.pid" 2>/dev/null || true
}
state_file() {
        echo "$VMGR_TMP/state/vmgr/groups/$1.json"
}
# set_state GROUP STATE: what a vmgrd killed in the middle of creating or
# deleting GROUP leaves in its state file.
set_state() {
        python3 - "$(state_file "$1")" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["state"] = sys.argv[2]
json.dump(d, open(sys.argv[1], "w"))
PY
}
bridge_of() {
        vmgr_load_expected _exp "$1"
        # shellcheck disable=SC2154 # filled by vmgr_load_expected
        echo "${_exp[bridge]}"
}
has_link() {
        vmgr_netns_exec ip -o link show dev "$1" >/dev/null 2>&1
}

for g in r1 r2 r3; do
        check "create $g" vmgrctl_as_user -q group create "$g"
done
check_eq "three dnsmasq running" 3 "$(count_dnsmasq)"

pids="$(dnsmasq_pid r1) $(dnsmasq_pid r2) $(dnsmasq_pid r3)"
vmgr_stop_vmgrd KILL
check_eq "vmgrd killed by SIGKILL" 137 "$VMGRD_STATUS"
# What a VM that is gone leaves: its agent socket (QEMU binds it).
agent_dir=$VMGR_TMP/run/vmgr/agent
mkdir -p "$agent_dir"
chown "$VMGR_USER" "$agent_dir"
vmgr_as_user touch "$agent_dir/tap-0123456789.sock"
start=$(date +%s%N)
vmgr_start_vmgrd
echo "# the new vmgrd adopted 3 groups and claimed its name in $(( ($(date +%s%N) - start) / 1000000 )) ms"
check_eq "the new vmgrd adopted r1, r2, r3" "r1 r2 r3" \
        "$(list_groups | grep -o '"r[0-9]"' | tr -d '"' | sort | xargs)"
check_eq "GroupsAdopted is 3" "u 3" "$(adopted)"
check "the agent socket of a VM no group has is removed" test ! -e "$agent_dir/tap-0123456789.sock"
check_eq "the same three dnsmasq" "$pids" "$(dnsmasq_pid r1) $(dnsmasq_pid r2) $(dnsmasq_pid r3)"
check_match "one adopted line per group" "\[r3\] adopted: 0 VMs, dnsmasq pid [0-9]+, 0 served files" \
        "$(cat "$VMGR_TMP/vmgrd.log")"

# r3 was being created, r2 deleted, when vmgrd died: both are cleaned
# up; but the helper cannot run, so r2's clean-up fails.
vmgr_stop_vmgrd KILL
set_state r3 creating
set_state r2 deleting
# A helper that cannot run; named like the helper, for vmgr_leftovers.
mkdir -p "$VMGR_TMP/switch"
chmod 755 "$VMGR_TMP/switch"
ln -sfn /bin/false "$VMGR_TMP/switch/vmgr-netadm"
br2=$(bridge_of r2)
br3=$(bridge_of r3)
vmgr_start_vmgrd --netadm "$VMGR_TMP/switch/vmgr-netadm"
check_eq "only r1 was adopted" 'a(so) 1 "r1" "/org/vmgr1/group/r1"' "$(list_groups)"
check_eq "GroupsAdopted is 1" "u 1" "$(adopted)"
check "r2: its clean-up failed and says so" grep -q "\[r2\] Could not delete the network of stale group" \
        "$VMGR_TMP/vmgrd.log"
check "r2: the state file stays, the only record of its network" test -e "$(state_file r2)"
check "r2: its bridge is still there" has_link "$br2"
out=$(vmgrctl_as_user group create r2 2>&1) && rc=0 || rc=$?
check_match "r2: CreateGroup is refused while the clean-up fails" \
        "^1 .*r2.* was left by a previous vmgrd" "$rc $out"
check "r2: the state file is still there" test -e "$(state_file r2)"
# The helper can run again: the next CreateGroup cleans up first.
ln -sfn "$VMGR_NETADM" "$VMGR_TMP/switch/vmgr-netadm"
check "r2: CreateGroup works once the clean-up can be done" vmgrctl_as_user -q group create r2
check "r2 is running" vmgrctl_as_user group show r2
# r3's clean-up is retried every 10 s once it failed.
left3=yes
for ((i = 0; i < 150; i++)); do
        left3=$(has_link "$br3" && echo "bridge $br3"; test -e "$(state_file r3)" && echo "state file") || true
        [ -z "$left3" ] && break
        sleep 0.1
done
check_empty "r3 (was being created): cleaned up once the helper runs again" "$left3"
check "delete r1" vmgrctl_as_user group delete r1
check "delete r2" vmgrctl_as_user group delete r2
check_empty "nothing left" "$(vmgr_leftovers)"
check "create r1 again" vmgrctl_as_user -q group create r1
check "delete r1 again" vmgrctl_as_user group delete r1

# --- SIGTERM deletes every group and exits 0 --------------------------------

for g in s1 s2; do
        check "create $g" vmgrctl_as_user -q group create "$g"
done
check_eq "two dnsmasq running" 2 "$(count_dnsmasq)"
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM with two groups" 0 "$VMGRD_STATUS"
check_empty "nothing left after SIGTERM" "$(vmgr_leftovers)"

vmgr_finish
