#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgr-netadm dying in the middle of CreateGroup leaks nothing. Each try
# starts a CreateGroup of a group without VMs, kills the helper with SIGKILL
# 0-12 ms later (while it makes the bridge or starts dnsmasq, or between the
# two), then deletes the group if it exists, and checks that nothing of it
# is left: no link of vmgr's, no address on lo, no dnsmasq, no state or
# runtime file. A CreateGroup that succeeded (on a helper vmgrd started
# again) must have made a group that is really running; one that failed
# must have said why and left no group behind. vmgrd must never take a
# reply of the new helper for an unexpected one. About 30 s for 60 tries
# (VMGR_HELPER_DEATH_TRIES).

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

TRIES=${VMGR_HELPER_DEATH_TRIES:-60}

# Print the pids of vmgrd's helpers: children of vmgrd (in namespace mode
# too: the helper is cloned as vmgrd's child into its PID namespace) or of
# its namespace holder.
helper_pids() {
        local parents=$VMGRD_PID holder
        holder=$(vmgr_holder_pid) && parents+=,$holder
        pgrep -x -P "$parents" vmgr-netadm || true
}

# Kill the helper now; if there is none yet (vmgrd starts one for its next
# call), wait up to 50 ms for one. Prints the pid killed, nothing if none.
kill_helper() {
        local i pid
        for ((i = 0; i < 25; i++)); do
                pid=$(helper_pids | head -n 1)
                if [ -n "$pid" ]; then
                        kill -KILL "$pid" 2>/dev/null && echo "$pid"
                        return 0
                fi
                sleep 0.002
        done
}

# vmgr_leftovers, again for up to 1 s while it finds something: a dnsmasq
# stopped at this moment may still be on its way out.
leftovers_settled() {
        local left i
        left=$(vmgr_leftovers)
        for ((i = 0; i < 50 && ${#left} > 0; i++)); do
                sleep 0.02
                left=$(vmgr_leftovers)
        done
        echo "$left"
}

# Remove what vmgr_leftovers printed ($1) by hand: links, lo addresses,
# processes (by pid), files.
remove_by_hand() {
        local kind a b
        while read -r kind a b; do
                case $kind in
                link) vmgr_netns_exec ip link delete "$a" 2>/dev/null || ip link delete "$a" 2>/dev/null || true ;;
                lo) b=${b%% *}
                    vmgr_netns_exec ip addr delete "$b" dev lo 2>/dev/null || ip addr delete "$b" dev lo 2>/dev/null || true ;;
                process) kill -KILL "$a" 2>/dev/null || true ;;
                file) rm -rf "$a" ;;
                esac
        done <<<"$1"
}

problems=()
n_created=0 n_failed=0 n_killed=0
for ((t = 0; t < TRIES; t++)); do
        name=hd$t
        out=$VMGR_TMP/create-$t
        delay=$(printf '0.%03d' $((RANDOM % 13)))
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss "$name" \
                '{"accelerator":"tcg"}' >"$out" 2>&1 &
        creator=$!
        sleep "$delay"
        killed=$(kill_helper)
        [ -n "$killed" ] && n_killed=$((n_killed + 1))
        rc=0
        wait "$creator" || rc=$?

        path=$(vmgr_group_path "$name") || path=
        if [ "$rc" -eq 0 ]; then
                n_created=$((n_created + 1))
                state=$(vmgr_group_prop "$path" State) || state="(unreadable)"
                [ "$state" = running ] ||
                        problems+=("try $t: CreateGroup succeeded but the group is $state")
                what="created ($state)"
        else
                n_failed=$((n_failed + 1))
                [ -s "$out" ] || problems+=("try $t: CreateGroup failed without saying why")
                [ -z "$path" ] ||
                        problems+=("try $t: a failed CreateGroup left group $name ($(vmgr_group_prop "$path" State))")
                what="failed: $(head -n 1 "$out")"
        fi
        echo "# try $t: killed ${killed:-no helper} after ${delay}s; $what"

        if [ -n "$path" ]; then
                err=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s "$name" 2>&1) ||
                        problems+=("try $t: DeleteGroup failed: $err")
        fi
        left=$(leftovers_settled)
        if [ -n "$left" ]; then
                problems+=("try $t: left behind:" "$left")
                # So that one leak is reported once and the next tries count.
                remove_by_hand "$left"
        fi
done

echo "# $TRIES tries: $n_created created, $n_failed failed ($(grep -c 'could not start dnsmasq' "$VMGR_TMP/vmgrd.log" || true)" \
        "of them while starting dnsmasq), the helper killed in $n_killed"
check_empty "nothing left after any try" "$(printf '%s\n' "${problems[@]}" | sed '/^$/d')"
check "the helper was killed during most tries" test "$n_killed" -ge $((TRIES * 3 / 4))
check_empty "no reply of a new helper was taken for an unexpected one" \
        "$(grep -F 'unexpected reply' "$VMGR_TMP/vmgrd.log" || true)"

# The helper vmgrd starts after all this works.
check "a group can be created afterwards" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager \
        CreateGroup ss after '{"accelerator":"tcg"}'
check_eq "it is running" running "$(vmgr_group_prop "$(vmgr_group_path after)" State)"
check "and deleted" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s after
check_empty "nothing left at the end" "$(leftovers_settled)"

vmgr_finish
