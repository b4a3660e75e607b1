#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Many clients at once: 20 groups created by 20 concurrent vmgrctl calls,
# all running, then deleted concurrently, nothing left. And two groups whose
# derived IPv4 subnets collide: the second is refused with AddressConflict
# naming the first.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

# The test is only meaningful if the names can coexist: the /24 space has
# just 65536 subnets, and the derivation depends on vmgrd's uid (which
# differs between the modes' users and between machines), so take the first
# 20 of c01, c02, ... whose networks do not collide with an earlier one's.
n=20
names=()
declare -A seen=()
for ((i = 1; ${#names[@]} < n && i <= 99; i++)); do
        g=$(printf 'c%02d' "$i")
        vmgr_load_expected exp "$g"
        clash=
        for k in bridge prefix6 subnet4; do
                [ -n "${seen[$k ${exp[$k]}]:-}" ] && clash="${seen[$k ${exp[$k]}]} $k ${exp[$k]}"
        done
        if [ -n "$clash" ]; then
                echo "# $g left out: it shares with $clash"
                continue
        fi
        for k in bridge prefix6 subnet4; do
                seen[$k ${exp[$k]}]=$g
        done
        names+=("$g")
done

vmgr_start_bus
vmgr_start_vmgrd

# run_all VERB: "vmgrctl group VERB NAME" for every name at once; prints
# "NAME STATUS OUTPUT" for each call that failed.
run_all() {
        local verb=$1 g pids=() i rc
        for g in "${names[@]}"; do
                vmgrctl_as_user -q group "$verb" "$g" >"$VMGR_TMP/$verb-$g.out" 2>&1 &
                pids+=($!)
        done
        for i in "${!names[@]}"; do
                rc=0
                wait "${pids[i]}" || rc=$?
                [ "$rc" -eq 0 ] || echo "${names[i]} exit $rc: $(cat "$VMGR_TMP/$verb-${names[i]}.out")"
        done
        return 0
}

start=$(date +%s%N)
check_empty "$n concurrent creates all succeed" "$(run_all create)"
echo "# $n concurrent creates took $(( ($(date +%s%N) - start) / 1000000 )) ms"

list=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups 2>&1 || true)
check_match "ListGroups has $n groups" "^a\\(so\\) $n " "$list"
not_running=
for g in "${names[@]}"; do
        state=$(vmgr_group_prop "$(vmgr_group_path "$g")" State)
        [ "$state" = running ] || not_running+="$g: '$state' "
done
check_empty "all $n groups are running" "$not_running"
check_eq "$n bridges exist" "$n" "$(vmgr_netns_exec ip -o link show type bridge | grep -c ' vbr-')"

start=$(date +%s%N)
check_empty "$n concurrent deletes all succeed" "$(run_all delete)"
echo "# $n concurrent deletes took $(( ($(date +%s%N) - start) / 1000000 )) ms"
check_eq "ListGroups is empty" "a(so) 0" \
        "$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups 2>&1 || true)"
check_empty "nothing left after the concurrent deletes" "$(vmgr_leftovers)"

# --- colliding IPv4 subnets -------------------------------------------------
# The /24 derives from vmgrd's uid too (docs/addressing.md), which differs
# between machines: find two "pairN" names that collide for it, by brute
# force with the same derivation (among 1500 names there are about 17 pairs).
uid=$(id -u "$VMGR_USER")
read -r first second < <(for i in $(seq 0 1499); do
        printf '%s pair%d\n' "$(printf 'ipv4/%s/pair%d' "$uid" "$i" | sha256sum | cut -c1-4)" "$i"
done | sort | awk '$1 == prev { print prevname, $2; exit } { prev = $1; prevname = $2 }')
vmgr_load_expected e1 "$first"
vmgr_load_expected e2 "$second"
check_eq "$first and $second derive the same /24 (test precondition)" "${e1[subnet4]}" "${e2[subnet4]}"

check "create $first" vmgrctl_as_user -q group create "$first"
check_eq "$second: AddressConflict" org.vmgr1.Error.AddressConflict "$(vmgr_call_error CreateGroup "$second" "")"
out=$(vmgrctl_as_user group create "$second" 2>&1 >/dev/null) && rc=0 || rc=$?
check_eq "vmgrctl create $second fails" 1 "$rc"
check_match "... naming $first in one line" "^vmgrctl: [^"$'\n'"]*$first[^"$'\n'"]*$" "$out"
check_eq "$second left nothing: only $first's bridge exists" "${e1[bridge]}" \
        "$(vmgr_netns_exec ip -o link show type bridge | awk -F': ' '{ print $2 }')"
check "delete $first" vmgrctl_as_user group delete "$first"
check "$second can be created once $first is gone" vmgrctl_as_user -q group create "$second"
check "delete $second" vmgrctl_as_user group delete "$second"
check_empty "nothing left" "$(vmgr_leftovers)"

vmgr_finish
