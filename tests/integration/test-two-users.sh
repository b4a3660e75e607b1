#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Two users' groups of the same name. Two vmgrds run side by side, one as
# lib.sh's VMGR_USER (user A) and one as its VMGR_USER2 (user B), each with
# its own bus, runtime and state directories: in host mode in one network
# namespace, in namespace mode each in namespaces of its own.
# B creates "ci-test-1" first, as if to block A's test suite; A's
# "ci-test-1" must still be created, on its own bridge, /64 and /24
# (docs/addressing.md: the names derive from the owner's uid), each with its
# own dnsmasq; deleting either group leaves the other one whole.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

GROUP=ci-test-1
USER_B=$VMGR_USER2
UID_A=$(id -u "$VMGR_USER")
UID_B=$(id -u "$USER_B")

# User B's vmgrd first (lib.sh: vmgr_start_user_b, as_b), then A's.
vmgr_start_user_b
vmgr_start_bus
vmgr_start_vmgrd

vmgr_load_expected A "$GROUP"
as_b vmgr_load_expected B "$GROUP"
for k in bridge prefix6 subnet4; do
        check "uids $UID_A and $UID_B derive different ${k}s for $GROUP (${A[$k]}, ${B[$k]})" \
                test "${A[$k]}" != "${B[$k]}"
done

# Addresses on link $1 where the groups of the vmgrd in effect live, without
# link-local ones, as "ADDR/LEN" lines.
addrs_on() {
        vmgr_netns_exec ip -o addr show dev "$1" scope global 2>/dev/null | awk '{ print $4 }' | sort
}
# Alias of link $1 (empty if it does not exist).
alias_of() {
        vmgr_netns_exec ip -o link show dev "$1" 2>/dev/null | sed -n 's/.*alias \(vmgr:[^ \\]*\).*/\1/p'
}
# vmgr_leftovers (of the user whose globals are in effect) except the group
# of the other user, whose derived values are in array $1.
leftovers_but() {
        local -n o=$1
        local p=${o[prefix6]%::/64}
        vmgr_leftovers | grep -v -e "^link ${o[bridge]} " -e "^lo address $p:" || true
}
# Pids of user $1's dnsmasq processes, one per line.
dnsmasq_of() {
        pgrep -u "$1" -x dnsmasq || true
}

# check_group_whole WHO USER EXPECTED-ARRAY [as_b]: the group of USER, as its
# vmgrd reports it and as the host has it, equals the derivation for USER.
check_group_whole() {
        local who=$1 user=$2 uid
        local -n e=$3
        local run=("${@:4}")
        uid=$(id -u "$user")
        local path
        path=$("${run[@]}" vmgr_group_path "$GROUP")
        check_eq "$who: State is running" running "$("${run[@]}" vmgr_group_prop "$path" State)"
        check_eq "$who: Bridge is ${e[bridge]}" "${e[bridge]}" "$("${run[@]}" vmgr_group_prop "$path" Bridge)"
        check_eq "$who: Prefix6 is ${e[prefix6]}" "${e[prefix6]}" "$("${run[@]}" vmgr_group_prop "$path" Prefix6)"
        check_eq "$who: Subnet4 is ${e[subnet4]}" "${e[subnet4]}" "$("${run[@]}" vmgr_group_prop "$path" Subnet4)"
        check_eq "$who: bridge ${e[bridge]} carries vmgr:$uid:$GROUP" "vmgr:$uid:$GROUP" \
                "$("${run[@]}" alias_of "${e[bridge]}")"
        check_eq "$who: the bridge has its gateways" \
                "$(printf '%s\n' "${e[gateway4]}/24" "${e[gateway6]}/64" | sort)" "$("${run[@]}" addrs_on "${e[bridge]}")"
        check_match "$who: its management address is on lo" "(^| )${e[management6]}/128( |$)" \
                "$("${run[@]}" addrs_on lo | tr '\n' ' ')"
        check_eq "$who: Dnsmasq is running" running "$("${run[@]}" vmgr_group_prop "$path" Dnsmasq)"
        check_eq "$who: one dnsmasq runs as $user" 1 "$(dnsmasq_of "$user" | wc -l)"
}

# --- the attack: B takes the name first -------------------------------------

check "B ($USER_B) creates $GROUP first" as_b vmgrctl_as_user -q group create "$GROUP"
check_eq "A ($VMGR_USER) creates $GROUP as well: no error" "" "$(vmgr_call_error CreateGroup "$GROUP" "")"
check_group_whole A "$VMGR_USER" A
check_group_whole B "$USER_B" B as_b
if [ "$VMGR_NET_MODE" = namespace ]; then
        check "namespace mode: A's namespace has no link of B's" \
                vmgr_netns_exec bash -c "! ip link show dev ${B[bridge]} 2>/dev/null"
        check "namespace mode: B's namespace has no link of A's" \
                as_b vmgr_netns_exec bash -c "! ip link show dev ${A[bridge]} 2>/dev/null"
fi
check_eq "A's vmgrctl addr (offline) names A's bridge" "${A[bridge]}" \
        "$(vmgrctl_as_user addr "$GROUP" | sed -n 's/^Bridge: *//p')"
check_eq "B's vmgrctl addr (offline) names B's bridge" "${B[bridge]}" \
        "$(as_b vmgrctl_as_user addr "$GROUP" | sed -n 's/^Bridge: *//p')"

# --- deleting one leaves the other whole --------------------------------------

check "A deletes its $GROUP" vmgrctl_as_user group delete "$GROUP"
check "A's bridge is gone" vmgr_netns_exec bash -c "! ip link show dev ${A[bridge]} 2>/dev/null"
check_empty "A left nothing (B's group aside)" "$(leftovers_but B)"
check_group_whole "B after A's delete" "$USER_B" B as_b
# B's dnsmasq still serves B's bridge: a port of it gets B's prefix.
VMGRD_PID=$VMGR_B_VMGRD_PID vmgr_peer_create "${B[bridge]}"
ra=$(vmgr_peer_ra 2>&1) || true
check_match "B's dnsmasq advertises B's prefix after A's delete" "Prefix +: ${B[prefix6]}" "$ra"
vmgr_peer_delete

check_eq "A creates $GROUP again" "" "$(vmgr_call_error CreateGroup "$GROUP" "")"
check "B deletes its $GROUP" as_b vmgrctl_as_user group delete "$GROUP"
check "B's bridge is gone" as_b vmgr_netns_exec bash -c "! ip link show dev ${B[bridge]} 2>/dev/null"
check_empty "B left nothing (A's group aside)" "$(as_b leftovers_but A)"
check_group_whole "A after B's delete" "$VMGR_USER" A
check "A deletes its $GROUP" vmgrctl_as_user group delete "$GROUP"
check_empty "nothing left of A" "$(vmgr_leftovers)"

# --- B's vmgrd ends cleanly; lib.sh checks A's --------------------------------

vmgr_stop_user_b
vmgr_finish
