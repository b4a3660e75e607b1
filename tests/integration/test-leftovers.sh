#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The test helpers themselves, so that a clean result means something: what
# vmgr_leftovers and vmgr_group_leftovers look for is planted by hand, one
# thing of each kind, and each must be reported (then it is removed and
# nothing may be); a property read that fails makes the next check fail
# instead of passing for an empty value. No VM, no group: seconds.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

check_empty "a fresh vmgrd leaves nothing to report" "$(vmgr_leftovers)"

# --- vmgr_leftovers: one thing of each kind it looks for ------------------

# Where vmgrd's groups live (vmgr_netns_exec) and, in namespace mode, the
# test's own namespace too: vmgr_leftovers looks in both.
where=("")
[ "$VMGR_NET_MODE" = namespace ] && where+=(" (in vmgrd-netns)")
plant_links() {
        ip link add vmgrlo-alias type bridge
        ip link set vmgrlo-alias alias vmgr:planted
        ip link add vbr-0123456789 type bridge
        ip link add tap-abcdef0123 type bridge
        ip link add ta4-abcdef0123 type bridge
        ip -6 addr add fd00:1e:f7::1/128 dev lo
}
remove_links() {
        local l
        for l in vmgrlo-alias vbr-0123456789 tap-abcdef0123 ta4-abcdef0123; do
                ip link delete "$l"
        done
        ip -6 addr delete fd00:1e:f7::1/128 dev lo
}
plant_links
[ "$VMGR_NET_MODE" = namespace ] && vmgr_netns_exec bash -c "$(declare -f plant_links); plant_links"

# Through the argv, not the function: "$!" must be sleep's own pid.
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" sleep 300 &
sleeper=$!
mkdir -p "$VMGR_TMP/state/vmgr/groups" "$VMGR_TMP/run/vmgr/groups"
touch "$VMGR_TMP/state/vmgr/groups/planted.json"
mkdir "$VMGR_TMP/run/vmgr/groups/planted"

left=$(vmgr_leftovers)
echo "# vmgr_leftovers with everything planted:"
sed 's/^/#   /' <<<"$left"
for w in "${where[@]}"; do
        check "finds a link with a vmgr alias$w" grep -qxF "link vmgrlo-alias (alias vmgr:planted)$w" <<<"$left"
        for l in vbr-0123456789 tap-abcdef0123 ta4-abcdef0123; do
                check "finds a link named like vmgr's ($l)$w" grep -qxF "link $l$w" <<<"$left"
        done
        check "finds an fd00::/8 address on lo$w" grep -qxF "lo address fd00:1e:f7::1/128$w" <<<"$left"
done
check "finds a process of $VMGR_USER" grep -qxF "process $sleeper sleep" <<<"$left"
check "finds a file in the state dir" grep -qxF "file $VMGR_TMP/state/vmgr/groups/planted.json" <<<"$left"
check "finds a group's runtime directory" grep -qxF "file $VMGR_TMP/run/vmgr/groups/planted" <<<"$left"

# --- vmgr_group_leftovers: a group's bridge, TAPs and files ----------------

# Another group's planted bridge must not count for this one.
vmgr_load_expected P planted a
vmgr_netns_exec ip link add "${P[bridge]}" type bridge
vmgr_netns_exec ip link add "${P[tap]}" type bridge
vmgr_netns_exec ip link add "${P[tap4]}" type bridge
mkdir "$VMGR_TMP/state/vmgr/groups/planted"
glef=$(vmgr_group_leftovers planted a)
echo "# vmgr_group_leftovers planted a:"
sed 's/^/#   /' <<<"$glef"
check "group: finds its bridge" grep -qxF "bridge ${P[bridge]}" <<<"$glef"
check "group: finds its VM's TAP" grep -qxF "link ${P[tap]} (VM a)" <<<"$glef"
check "group: finds its VM's IPv4 TAP" grep -qxF "link ${P[tap4]} (VM a)" <<<"$glef"
check "group: finds its state file" grep -qxF "file $VMGR_TMP/state/vmgr/groups/planted.json" <<<"$glef"
check "group: finds its state directory" grep -qxF "file $VMGR_TMP/state/vmgr/groups/planted" <<<"$glef"
check "group: finds its runtime directory" grep -qxF "file $VMGR_TMP/run/vmgr/groups/planted" <<<"$glef"
check "group: a libvirtd that does not answer is reported" grep -q "^virsh list failed" <<<"$glef"

# --- removed again: nothing ------------------------------------------------

for l in "${P[bridge]}" "${P[tap]}" "${P[tap4]}"; do
        vmgr_netns_exec ip link delete "$l"
done
remove_links
[ "$VMGR_NET_MODE" = namespace ] && vmgr_netns_exec bash -c "$(declare -f remove_links); remove_links"
kill "$sleeper"
wait "$sleeper" || true
rm -r "$VMGR_TMP/state/vmgr/groups/planted.json" "$VMGR_TMP/state/vmgr/groups/planted" \
        "$VMGR_TMP/run/vmgr/groups/planted"
check_empty "nothing to report once it is all removed" "$(vmgr_leftovers)"

# --- a failed read fails the check that uses it -----------------------------

# Run in a subshell: the check it makes fails on purpose and must not count.
out=$(check_eq "LastError is empty" "" "$(vmgr_vm_prop /org/vmgr1/group/nope/vm/nope LastError 2>/dev/null)")
check_match "a check that a VM property is empty fails when the read failed" \
        "^not ok - LastError is empty" "$out"
out=$(check_eq "State is empty" "" "$(vmgr_group_prop /org/vmgr1/group/nope State 2>/dev/null)")
check_match "a check that a group property is empty fails when the read failed" \
        "^not ok - State is empty" "$out"
check_eq "a missing group's path is empty (no failed read)" "" "$(vmgr_group_path nope)"
check_eq "a missing VM's path is empty (no failed read)" "" "$(vmgr_vm_path nope a)"
rc=0
vmgr_vm_prop /org/vmgr1/group/nope/vm/nope LastError >/dev/null 2>&1 || rc=$?
# This read failed on purpose: drop it, or the next check would fail.
failures=$(vmgr_take_read_failures)
check_eq "vmgr_vm_prop returns 1 when the read fails" 1 "$rc"
check_match "... and keeps what failed for the next check" "cannot read property LastError of VM" "$failures"

vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
out=$(check_empty "the group is gone" "$(vmgr_group_path g 2>/dev/null)")
check_match "with vmgrd gone, a check that a group's path is empty fails" "^not ok - the group is gone" "$out"

vmgr_finish
