#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Chaos: vmgrd killed with SIGKILL in the middle of things, 50 times
# (VMGR_CHAOS_ROUNDS), with real libvirtd and QEMU (TCG). Each round
# starts a random operation (CreateGroup with 0-2 VMs, DeleteGroup, AddVM,
# a VM restart, ServeFile), kills vmgrd after a random delay (0-300 ms,
# one round in four 0-1.5 s) and starts a new vmgrd on the same
# directories. Then:
#   - every group that was running before the round is there again,
#     running, adopted: its dnsmasq and the QEMU of each VM the operation
#     did not touch have the same pids; each VM gets ready (its agent
#     reconnects), answers a VM.Run, and one VM downloads the group's
#     files from its file server (a group without VMs: the server
#     listens); its port forward (127.0.0.1 to an echo server in its
#     first VM) is listed and echoes; vmgrd logged "[GROUP] adopted: N
#     VMs, dnsmasq pid P, M served files" for it with the right numbers, and GroupsAdopted
#     counts every group it has;
#   - a group that was being created or deleted is gone or complete (all
#     its VMs, working); a VM being restarted works again (after a
#     `vm start` if it was left stopped or crashed, which is counted);
#   - nothing else exists: no link, address, process, domain, file or
#     firewall rule that no group owns (vmgr_leaks, lib-leaks.sh), and
#     the forward of a group that is gone no longer listens.
# One check per round; the counts (rounds, adopted, cleaned) at the end.
# The random choices follow VMGR_CHAOS_SEED (printed) for a rerun. After
# three failed rounds in a row the test stops early: a vmgrd that cannot
# adopt fails every round the same way, and the rounds would only cost time.
# At most 3 VMs run at once, and most groups made have none: TCG is slow.

# Group and VM names are words: lists of them are split on purpose.
# shellcheck disable=SC2086
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
source "$(dirname "$0")/lib-chaos.sh"
vmgr_require_root
vmgr_vm_require_tools
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

rounds=${VMGR_CHAOS_ROUNDS:-50}
seed=${VMGR_CHAOS_SEED:-$(($(date +%s) % 32768))}
echo "# seed $seed (VMGR_CHAOS_SEED=$seed reruns these choices)"
RANDOM=$seed
max_vms=3
max_groups=4

# Files to serve, readable by the test user: "base" (every group serves
# it; each round's download) and a larger one for the ServeFile rounds
# (its hashing takes a moment, for the kill to cut it short; it is
# checked through ServedFiles, not downloaded: 32 MiB under TCG is slow).
files=$VMGR_TMP/files
mkdir -m 0755 "$files"
head -c $((256 * 1024)) /dev/urandom >"$files/base"
head -c $((32 * 1024 * 1024)) /dev/urandom >"$files/big"
chmod 0644 "$files"/*
# shellcheck disable=SC2034 # read by chaos_group_works (lib-chaos.sh)
declare -A CHAOS_SHA=()
base_sha=$(sha256sum <"$files/base")
base_sha=${base_sha%% *}
big_sha=$(sha256sum <"$files/big")
big_sha=${big_sha%% *}
CHAOS_SHA[base]=$base_sha

# Serve "base" in group $1 unless it does already.
serve_base() {
        chaos_served "$1" 2>/dev/null | grep -x base >/dev/null && return 0
        vmgrctl_as_user serve "$1" "$files/base" --name base >/dev/null
}

# Number of VMs in every group together.
count_vms() {
        local g n=0
        for g in $(chaos_groups); do
                n=$((n + $(vmgr_leaks_group_vms "$g" | wc -w)))
        done
        echo "$n"
}

# A random element of the arguments.
pick() {
        local -a a=("$@")
        echo "${a[RANDOM % ${#a[@]}]}"
}

# True if a line of vmgrd's log after line $1 matches extended regex $2.
log_since_has() {
        tail -n +"$(($1 + 1))" "$VMGR_TMP/vmgrd.log" | grep -E -e "$2" >/dev/null
}

# Each group's forward from 127.0.0.1 to its first VM's echo server.
declare -A fwd_port=() fwd_vm=()
adopted=0
cleaned=0
restart_ms=()
resumed=0
leak_rounds=0
broken_rounds=0
failed_in_a_row=0
done_rounds=0
started_at=$SECONDS

for ((r = 1; r <= rounds; r++)); do
        problems=()
        # At least one group with a VM to adopt: made outside the chaos,
        # and ready, when an earlier round lost the last one.
        if [ "$(count_vms)" -eq 0 ]; then
                if ! out=$(vmgrctl_as_user -q group create "keep$r" --vm a 2>&1) ||
                        ! out=$(vmgrctl_as_user wait "keep$r" --timeout 120 2>&1); then
                        vmgr_not_ok "round $r: a group with a VM to adopt (keep$r) is made and ready" "$out"
                        break
                fi
        fi
        for g in $(chaos_groups); do
                serve_base "$g" || problems+=("before the kill: cannot serve base in $g")
                # A forward to the first VM of each group that has one.
                [ -z "${fwd_port[$g]:-}" ] || continue
                # sed, not head: head leaves after the first line and the
                # function, still writing, dies of SIGPIPE (pipefail).
                vm=$(vmgr_leaks_group_vms "$g" | sed -n 1p)
                [ -n "$vm" ] || continue
                if chaos_echo_server "$g" "$vm" && port=$(chaos_forward "$g" "$vm"); then
                        fwd_port[$g]=$port
                        fwd_vm[$g]=$vm
                else
                        problems+=("before the kill: cannot set up a forward to $g/$vm")
                fi
        done

        # What the old vmgrd has, and its pids.
        before=$(chaos_groups)
        declare -A vms_before=() dnsmasq_before=() qemu_before=()
        total_vms=0
        for g in $before; do
                vms_before[$g]=$(vmgr_leaks_group_vms "$g" | tr '\n' ' ')
                dnsmasq_before[$g]=$(chaos_dnsmasq_pid "$g")
                for vm in ${vms_before[$g]}; do
                        qemu_before[$g:$vm]=$(chaos_qemu_pid "$g" "$vm")
                        total_vms=$((total_vms + 1))
                done
        done
        ngroups=$(wc -w <<<"$before")

        # The operation.
        ops=(create delete addvm restart serve)
        op=$(pick "${ops[@]}")
        [ "$op" = create ] && [ "$ngroups" -ge "$max_groups" ] && op=delete
        [ "$op" = delete ] && [ "$ngroups" -le 1 ] && op=create
        [ "$op" = addvm ] && [ "$total_vms" -ge "$max_vms" ] && op=serve
        [ "$op" = restart ] && [ "$total_vms" -eq 0 ] && op=serve
        og='' ovm='' nvms=0
        case $op in
        create)
                og=c$r
                # Mostly network-only groups: 0 VMs 6 times in 10, 1 VM 3, 2 VMs 1.
                n=$((RANDOM % 10))
                nvms=0
                [ "$n" -ge 6 ] && nvms=1
                [ "$n" -ge 9 ] && nvms=2
                [ $((total_vms + nvms)) -le "$max_vms" ] || nvms=$((max_vms - total_vms))
                argv=(-q group create "$og")
                [ "$nvms" -ge 1 ] && argv+=(--vm a)
                [ "$nvms" -ge 2 ] && argv+=(--vm b)
                desc="CreateGroup $og with $nvms VMs"
                ;;
        delete)
                og=$(pick $before)
                argv=(group delete "$og")
                desc="DeleteGroup $og"
                ;;
        addvm)
                og=$(pick $before)
                ovm=v$r
                argv=(-q vm add "$og" "$ovm")
                desc="AddVM $og/$ovm"
                ;;
        restart)
                cands=()
                for g in $before; do
                        for vm in ${vms_before[$g]}; do
                                cands+=("$g:$vm")
                        done
                done
                x=$(pick "${cands[@]}")
                og=${x%%:*}
                ovm=${x#*:}
                argv=(vm restart "$og" "$ovm")
                desc="VM restart $og/$ovm"
                ;;
        serve)
                og=$(pick $before)
                ovm=s$r
                argv=(serve "$og" "$files/big" --name "$ovm")
                desc="ServeFile $og/$ovm"
                ;;
        esac
        # Most operations take a few hundred ms (a group with VMs, a
        # restart: seconds; ServeFile, DeleteGroup, a group without VMs:
        # less): mostly short delays, so that most kills cut one short;
        # one round in four waits up to 1.5 s.
        if [ $((RANDOM % 4)) -eq 0 ]; then
                delay=$((RANDOM % 1500))
        elif [ "$op" = serve ] || [ "$op" = delete ] || { [ "$op" = create ] && [ "$nvms" -eq 0 ]; }; then
                delay=$((RANDOM % 150))
        else
                delay=$((RANDOM % 300))
        fi
        desc="$desc, kill -9 after $delay ms"

        vmgrd_pid=$(vmgr_vmgrd_bus_pid)
        [ "$vmgrd_pid" = "$VMGRD_PID" ] || problems+=("the bus says vmgrd is pid '$vmgrd_pid', but it was started as $VMGRD_PID")
        vmgr_as_argv "$VMGR_USER"
        "${VMGR_AS_ARGV[@]}" "$VMGRCTL" "${argv[@]}" >"$VMGR_TMP/op.out" 2>&1 </dev/null &
        op_pid=$!
        sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
        # Did the operation complete before the kill? (A child that has
        # exited stays a zombie until it is waited for.)
        op_done=0
        op_rc=0
        s=$(ps -o stat= -p "$op_pid" 2>/dev/null || true)
        if [ -z "$s" ] || [[ $s == Z* ]]; then
                wait "$op_pid" 2>/dev/null || op_rc=$?
                op_done=1
        fi
        vmgr_stop_vmgrd KILL
        [ "$VMGRD_STATUS" = 137 ] || problems+=("vmgrd did not die of SIGKILL: status $VMGRD_STATUS")
        if [ "$op_done" = 0 ]; then
                # The client ends when vmgrd's name leaves the bus.
                for ((i = 0; i < 100; i++)); do
                        kill -0 "$op_pid" 2>/dev/null || break
                        [[ $(ps -o stat= -p "$op_pid" 2>/dev/null) == Z* ]] && break
                        sleep 0.1
                done
                kill -KILL "$op_pid" 2>/dev/null || true
                wait "$op_pid" 2>/dev/null || op_rc=$?
                desc="$desc (vmgrctl cut short, exited $op_rc)"
        else
                desc="$desc (vmgrctl had completed, exit status $op_rc)"
                [ "$op_rc" = 0 ] || problems+=("the operation failed before the kill: $(cat "$VMGR_TMP/op.out")")
        fi

        log_lines=$(wc -l <"$VMGR_TMP/vmgrd.log")
        t_restart=$(vmgr_now_ms)
        if ! vmgr_start_vmgrd; then
                vmgr_not_ok "round $r: $desc: a new vmgrd starts"
                break
        fi
        t_groups=$(vmgr_now_ms)
        after=$(chaos_groups) || problems+=("ListGroups failed")

        # Which groups are there, which should be.
        for g in $before; do
                if grep -qx -F "$g" <<<"$after"; then
                        continue
                fi
                if [ "$op" = delete ] && [ "$g" = "$og" ]; then
                        cleaned=$((cleaned + 1))
                        continue
                fi
                problems+=("group $g was running before the kill and is gone")
        done
        for g in $after; do
                if ! grep -qx -F "$g" <<<"$before"; then
                        if [ "$op" = create ] && [ "$g" = "$og" ]; then
                                # Complete: every VM of its spec.
                                n=$(vmgr_leaks_group_vms "$g" | wc -w)
                                [ "$n" -eq "$nvms" ] || problems+=("group $g, being created with $nvms VMs, is there with $n")
                        else
                                problems+=("group $g is there, but it was not before and no one made it")
                        fi
                fi
        done
        if [ "$op" = create ] && ! grep -qx -F "$og" <<<"$after"; then
                cleaned=$((cleaned + 1))
        fi
        # An operation that had completed before the kill is kept.
        if [ "$op_done" = 1 ] && [ "$op_rc" = 0 ]; then
                case $op in
                create)
                        grep -qx -F "$og" <<<"$after" ||
                                problems+=("group $og was made before the kill (CreateGroup had returned) and is gone")
                        ;;
                delete)
                        grep -qx -F "$og" <<<"$after" &&
                                problems+=("group $og was deleted before the kill (DeleteGroup had returned) and is back")
                        ;;
                addvm)
                        vmgr_leaks_group_vms "$og" 2>/dev/null | grep -x "$ovm" >/dev/null ||
                                problems+=("VM $og/$ovm was added before the kill (AddVM had returned) and is gone")
                        ;;
                serve)
                        chaos_served "$og" 2>/dev/null | grep -x "$ovm" >/dev/null ||
                                problems+=("$og served $ovm before the kill (ServeFile had returned), and no longer does")
                        ;;
                esac
        fi

        # Each group works, with the pids it had.
        patterns=()
        n_after=0
        for g in $after; do
                n_after=$((n_after + 1))
                # A VM whose restart was cut short may be left stopped or
                # crashed: vm start must bring it back.
                if [ "$op" = restart ] && [ "$g" = "$og" ]; then
                        p=$(vmgr_vm_path "$g" "$ovm" 2>/dev/null) || true
                        s=$(vmgr_vm_prop "$p" State 2>/dev/null) || true
                        if [ "$s" = stopped ] || [ "$s" = crashed ]; then
                                echo "# round $r: $g/$ovm was left $s (LastError '$(vmgr_vm_prop "$p" LastError 2>/dev/null)'): vm start"
                                out=$(vmgrctl_as_user -q vm start "$g" "$ovm" 2>&1) || problems+=("vm start $g/$ovm: $out")
                                resumed=$((resumed + 1))
                        fi
                fi
                names=(base)
                # A group made in this round serves nothing yet.
                if ! grep -qx -F "$g" <<<"$before"; then
                        serve_base "$g" || problems+=("cannot serve base in $g, made in this round")
                fi
                # A file being served at the kill is served whole or not at all.
                if [ "$op" = serve ] && [ "$g" = "$og" ]; then
                        out=$(busctl_as_user --json=short get-property org.vmgr1 "$(vmgr_group_path "$g")" \
                                org.vmgr1.Group ServedFiles 2>&1 | python3 -c '
import json, sys
for f in json.load(sys.stdin)["data"]:
    if f[0] == sys.argv[1]:
        print(f[1], f[2])' "$ovm" 2>&1) || true
                        [ -z "$out" ] || [ "$out" = "$big_sha $((32 * 1024 * 1024))" ] ||
                                problems+=("$g serves $ovm with SHA-256 and size '$out', not the file's")
                fi
                while read -r line; do
                        [ -n "$line" ] && problems+=("$line")
                done < <(chaos_group_problems "$g" "${names[@]}")
                grep -qx -F "$g" <<<"$before" || continue
                if [ -n "${fwd_port[$g]:-}" ]; then
                        while read -r line; do
                                [ -n "$line" ] && problems+=("$line")
                        done < <(chaos_forward_problems "$g" "${fwd_vm[$g]}" "${fwd_port[$g]}" "chaos-$r-$g")
                fi

                # Adopted: the same dnsmasq and QEMUs, and the log line.
                now=$(chaos_dnsmasq_pid "$g")
                [ "$now" = "${dnsmasq_before[$g]}" ] ||
                        problems+=("group $g: dnsmasq pid ${dnsmasq_before[$g]:-none} before, ${now:-none} after")
                for vm in ${vms_before[$g]}; do
                        [ "$op" = restart ] && [ "$g:$vm" = "$og:$ovm" ] && continue
                        now=$(chaos_qemu_pid "$g" "$vm")
                        [ "$now" = "${qemu_before[$g:$vm]}" ] ||
                                problems+=("VM $g/$vm: QEMU pid ${qemu_before[$g:$vm]:-none} before, ${now:-none} after")
                done
                nv=$(wc -w <<<"${vms_before[$g]}")
                # A VM being added may or may not have been adopted.
                nf=$(chaos_served "$g" 2>/dev/null | wc -l)
                pattern="\\[$g\\] adopted: $nv VMs?, dnsmasq pid [0-9]+, $nf served files?"
                if [ "$op" = addvm ] && [ "$g" = "$og" ]; then
                        pattern="\\[$g\\] adopted: ($nv|$((nv + 1))) VMs?, dnsmasq pid [0-9]+, $nf served files?"
                elif [ "$op" = serve ] && [ "$g" = "$og" ]; then
                        pattern="\\[$g\\] adopted: $nv VMs?, dnsmasq pid [0-9]+, [0-9]+ served files?"
                fi
                patterns+=("$pattern")
        done
        # The adoption lines come once libvirtd has answered, which may be
        # after vmgrd answers on the bus.
        for pattern in "${patterns[@]}"; do
                vmgr_wait_until 10 log_since_has "$log_lines" "$pattern" ||
                        problems+=("vmgrd's log has no line matching '$pattern'")
        done
        # The forwards of groups that are gone are closed.
        for g in "${!fwd_port[@]}"; do
                grep -qx -F "$g" <<<"$after" && continue
                [ -z "$(ss -Hltn "sport = :${fwd_port[$g]}")" ] ||
                        problems+=("group $g is gone, but its forward's port ${fwd_port[$g]} still listens")
                unset "fwd_port[$g]" "fwd_vm[$g]"
        done
        got=$(chaos_manager_prop GroupsAdopted 2>&1) || true
        [ "$got" = "$n_after" ] || problems+=("GroupsAdopted is '$got', the new vmgrd has $n_after groups")
        while read -r line; do
                [ -n "$line" ] && problems+=("a read failed: $line")
        done < <(vmgr_take_read_failures)
        adopted=$((adopted + n_after))

        # Nothing else.
        t_leaks=$(vmgr_now_ms)
        # shellcheck disable=SC2086 # a list of names
        leaks=$(vmgr_leaks_wait 10 $after)
        if [ -n "$leaks" ]; then
                leak_rounds=$((leak_rounds + 1))
                while read -r line; do
                        problems+=("leak: $line")
                done <<<"$leaks"
        fi
        t_end=$(vmgr_now_ms)
        echo "# round $r: a new vmgrd answered after $((t_groups - t_restart)) ms; checking its groups took" \
                "$((t_leaks - t_groups)) ms, the leak check $((t_end - t_leaks)) ms"
        restart_ms+=($((t_groups - t_restart)))
        done_rounds=$r
        if [ ${#problems[@]} -eq 0 ]; then
                vmgr_ok "round $r: $desc: ${n_after} groups adopted and working, nothing leaked"
                failed_in_a_row=0
        else
                vmgr_not_ok "round $r: $desc: adopted groups work, nothing leaked" "${problems[@]}"
                # The evidence: the killed vmgrd's last lines, the new one's first.
                echo "# the killed vmgrd's last lines, the new vmgrd's first:"
                head -n "$log_lines" "$VMGR_TMP/vmgrd.log" | tail -n 12 | sed 's/^/#   /'
                tail -n +"$((log_lines + 1))" "$VMGR_TMP/vmgrd.log" | head -n 40 | sed 's/^/#   /'
                [ -z "$leaks" ] || [ ${#problems[@]} -gt "$(wc -l <<<"$leaks")" ] && broken_rounds=$((broken_rounds + 1))
                failed_in_a_row=$((failed_in_a_row + 1))
                # So that one failure does not fail the rounds after it: a
                # VM left down is started again (outside the chaos).
                for g in $after; do
                        for vm in $(vmgr_leaks_group_vms "$g" 2>/dev/null); do
                                p=$(vmgr_vm_path "$g" "$vm" 2>/dev/null) || continue
                                s=$(vmgr_vm_prop "$p" State 2>/dev/null) || continue
                                [ "$s" = stopped ] || [ "$s" = crashed ] || continue
                                echo "# after round $r: $g/$vm is $s: vm start"
                                vmgrctl_as_user -q vm start "$g" "$vm" >/dev/null 2>&1 &&
                                        vmgrctl_as_user wait "$g" "$vm" --timeout 120 >/dev/null 2>&1 && continue
                                # It cannot be mended: the group goes.
                                echo "# after round $r: $g/$vm does not start again: delete group $g"
                                vmgrctl_as_user group delete "$g" >/dev/null 2>&1 || true
                                unset "fwd_port[$g]" "fwd_vm[$g]"
                                break
                        done
                done
                vmgr_take_read_failures >/dev/null
                if [ "$failed_in_a_row" -ge 3 ]; then
                        echo "# three rounds in a row failed: stopping after round $r of $rounds"
                        break
                fi
        fi
done

echo "# rounds $done_rounds of $rounds, adopted $adopted, cleaned $cleaned (groups being created or deleted at the kill that were gone after it), VMs started again after a cut restart $resumed; $((SECONDS - started_at)) s"
if [ ${#restart_ms[@]} -gt 0 ]; then
        echo "# a new vmgrd answered on the bus after (ms, sorted): $(printf '%s\n' "${restart_ms[@]}" | sort -n | paste -sd' ')"
fi
check_eq "every round ran" "$rounds" "$done_rounds"
check_eq "no round leaked" 0 "$leak_rounds"
check_eq "no round had a broken or lost group" 0 "$broken_rounds"

vmgr_finish
