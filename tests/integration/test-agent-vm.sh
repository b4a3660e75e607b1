#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The guest agent through vmgrd: real vmgrd, libvirtd and QEMU (TCG) booting
# the default guest, which carries vmgr-agent, inside this test's namespaces.
#   - Group.WaitReady returns once every VM is ready; each VM's Timings has
#     every stage, in order (ipv4_leased only with an IPv4 NIC);
#   - a VM whose ready_probe never passes (["false"]) times out naming the
#     probe_passed stage;
#   - Run: exit status, death by signal (128+N), stdout/stderr, stdin;
#   - traffic between the VMs of a group over IPv6 and IPv4 works, a VM of
#     another group cannot be reached; traffic from the host arrives from the
#     group's management address;
#   - after a guest reboot, after the agent restarts, and after vmgrd dropped
#     the channel of an agent that stopped answering (keepalive) and opened
#     it again, there is a new session and the VM is ready again; Shutdown powers the guest off
#     through the agent.
#   - Exec through vmgrctl: statuses, streams, env/cwd, 100 MiB of stdout
#     with vmgrd's RSS sampled, 20 at once, the process killed when its
#     caller's connection goes away; cp both ways keeps the SHA-256;
#     vmgrctl wait; Run's output cap and timeout.
# Prints the time to ready and Run's latency.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools
vmgr_enter_netns "$@"
vmgr_start_bus
# A short keepalive, so that a stopped agent is noticed within seconds.
printf 'agent_keepalive_sec = 2\n' >"$VMGR_TMP/vmgrd.conf"
vmgr_start_vmgrd --config "$VMGR_TMP/vmgrd.conf"

timings=()

# busctl call on a VM's object, JSON output.
vm_call() {
        local path=$1
        shift
        busctl_as_user --json=short call org.vmgr1 "$path" org.vmgr1.VM "$@"
}

# run_vm PATH STDIN ARGV...: VM.Run; prints "STATUS|STDOUT|STDERR" (outputs as text).
run_vm() {
        local path=$1 input=$2 out
        shift 2
        local bytes=()
        mapfile -t bytes < <(printf '%s' "$input" | od -An -v -tu1 | tr -s ' ' '\n' | sed '/^$/d')
        out=$(busctl_as_user --json=short -- call org.vmgr1 "$path" org.vmgr1.VM Run asayt \
                "$#" "$@" "${#bytes[@]}" "${bytes[@]}" 60000000 2>&1) || { echo "error: $out"; return 0; }
        python3 -c 'import json,sys; d=json.loads(sys.argv[1])["data"]; print("%d|%s|%s" % (d[0], bytes(d[1]).decode(), bytes(d[2]).decode()))' "$out"
}

# Timings of a VM as "stage=usec" lines, in the order the daemon lists them.
vm_timings() {
        busctl_as_user --json=short get-property org.vmgr1 "$1" org.vmgr1.VM Timings |
                python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; [print(k, v) for k, v in d.items()]'
}

spec_g='{"vms":[{"name":"a","ipv4":true},{"name":"b","ipv4":true}]}'
spec_h='{"vms":[{"name":"c","ready_probe":["false"]}]}'
t0=$(vmgr_now_ms)
check "CreateGroup g (a, b with IPv4)" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss g "$spec_g"
check "CreateGroup h (c, probe never passes)" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss h "$spec_h"
gpath=$(vmgr_group_path g)
a=$(vmgr_vm_path g a)
b=$(vmgr_vm_path g b)
c=$(vmgr_vm_path h c)

out=$(busctl_as_user --timeout=130 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 120000000 2>&1) && rc=0 || rc=$?
t_ready=$(($(vmgr_now_ms) - t0))
timings+=("create 2 groups, 3 VMs, to g ready: $t_ready ms")
check_eq "Group.WaitReady g succeeds ($t_ready ms)" "0" "$rc${out:+ $out}"
for vm in a b; do
        p=$(vmgr_vm_path g "$vm")
        check_eq "VM $vm is ready" ready "$(vmgr_vm_prop "$p" State)"
        tm=$(vm_timings "$p")
        # A warm start (a clone of the default guest's template) has two stages more.
        stages=$(awk '{print $1}' <<<"$tm" | xargs)
        [[ $stages == *restored* ]] && warm=" restored" warm2=" identity_applied" || warm= warm2=
        check_eq "VM $vm: Timings has every stage but the probe" \
                "qemu_started$warm agent_connected$warm2 ipv6_configured ipv4_leased ready" "$stages"
        prev=-1 ordered=yes
        for s in qemu_started agent_connected ipv6_configured ready; do
                v=$(awk -v s="$s" '$1 == s {print $2}' <<<"$tm")
                [ -n "$v" ] && [ "$v" -ge "$prev" ] || ordered=no
                prev=${v:-0}
        done
        check_eq "VM $vm: stage times are in order ($(xargs <<<"$tm"))" yes "$ordered"
done
timings+=("VM a timings (usec): $(vm_timings "$a" | xargs)")

# --- a probe that never passes ---------------------------------------------------

out=$(vmgr_dbus_error "$c" org.vmgr1.VM.WaitReady uint64:3000000)
check_match "VM c: WaitReady times out naming probe_passed" '^org\.vmgr1\.Error\.Timeout: .*probe_passed' "$out"
check_eq "VM c stays running" running "$(vmgr_vm_prop "$c" State)"
check_match "VM c: its agent is connected and its IPv6 configured" "agent_connected .*ipv6_configured" \
        "$(vm_timings "$c" | xargs)"

# --- Run ---------------------------------------------------------------------------

check_eq "Run: exit status" "3||" "$(run_vm "$a" "" sh -c 'exit 3')"
check_eq "Run: killed by a signal is 128+N" "137||" "$(run_vm "$a" "" sh -c 'kill -9 $$')"
check_eq "Run: stdout and stderr" "0|out|err" "$(run_vm "$a" "" sh -c 'printf out; printf err >&2')"
check_eq "Run: stdin reaches the command, EOF ends it" "0|hello world|" "$(run_vm "$a" "hello world" cat)"
out=$(vmgr_dbus_error "$a" org.vmgr1.VM.Run array:string:/nonexistent array:byte: uint64:0)
check_match "Run: a missing program fails with its reason" 'nonexistent' "$out"

# Latency of Run(["true"]) through busctl (a process per call), one at a time.
lat=$(for i in $(seq 200); do
        s=$(date +%s%N)
        busctl_as_user call org.vmgr1 "$a" org.vmgr1.VM Run asayt 1 true 0 0 >/dev/null
        echo $(( ($(date +%s%N) - s) / 1000 ))
done | sort -n | awk '{v[NR]=$1} END {print "median " v[int(NR/2)+1] " us, p99 " v[int(NR*0.99)+(NR*0.99>int(NR*0.99))] " us"}')
timings+=("Run([true]) through busctl, 200 runs: $lat")

# --- Exec through vmgrctl: streams, statuses, env, cwd ---------------------------------

ctl() {
        vmgrctl_as_user "$@"
}
rc=0; ctl exec g a -- sh -c 'exit 7' || rc=$?
check_eq "exec: exit status propagates" 7 "$rc"
rc=0; ctl exec g a -- sh -c 'kill -TERM $$' || rc=$?
check_eq "exec: death by SIGTERM is 143" 143 "$rc"
check_eq "exec: stdin streams in, EOF ends it" "hello" "$(echo hello | ctl exec g a -- cat)"
check_eq "exec: stdout and stderr apart" "out|err" \
        "$(ctl exec g a -- sh -c 'echo out; echo err >&2' 2>"$VMGR_TMP/err")|$(cat "$VMGR_TMP/err")"
check_eq "exec: -e and -w" "bar /tmp" "$(ctl exec -e FOO=bar -w /tmp g a -- sh -c 'echo $FOO $(pwd)' </dev/null)"

# 100 MiB through stdout while vmgrd's RSS is sampled.
rss_max=0
(ctl exec g a -- head -c 104857600 /dev/zero </dev/null | wc -c >"$VMGR_TMP/wc") &
pump=$!
t0=$(vmgr_now_ms)
while kill -0 "$pump" 2>/dev/null; do
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$VMGRD_PID/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$rss_max" ] && rss_max=$rss
        sleep 0.2
done
wait "$pump" || true
t_pump=$(($(vmgr_now_ms) - t0))
check_eq "exec: 100 MiB of stdout arrive whole ($t_pump ms)" 104857600 "$(cat "$VMGR_TMP/wc")"
check "vmgrd's RSS stayed below 64 MiB during the transfer (peak ${rss_max} KiB)" test "$rss_max" -lt 65536
timings+=("100 MiB through exec stdout: $t_pump ms; vmgrd peak RSS ${rss_max} KiB (ASan)")

# 20 at once on one VM.
pids=()
for i in $(seq 20); do
        ctl exec g a -- sh -c "sleep 0.5; echo run-$i" </dev/null >"$VMGR_TMP/par.$i" 2>&1 &
        pids+=($!)
done
bad=0
for i in $(seq 20); do
        wait "${pids[$((i - 1))]}" || bad=$((bad + 1))
        [ "$(cat "$VMGR_TMP/par.$i")" = "run-$i" ] || bad=$((bad + 1))
done
check_eq "exec: 20 concurrent processes all finish with their own output" 0 "$bad"

# Exec throughput: 100 runs of true, 20 at a time.
t0=$(vmgr_now_ms)
for j in $(seq 5); do
        for i in $(seq 20); do ctl exec g a -- true </dev/null & done
        wait $(jobs -p | grep -v -x -e "$VMGRD_PID" -e "$VMGR_BUS_PID") 2>/dev/null || true
done
t=$(($(vmgr_now_ms) - t0))
timings+=("exec true via vmgrctl, 100 runs 20 at a time: $t ms ($((100000 / (t > 0 ? t : 1))) execs/s)")

# The process dies with its caller's connection.
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" "$VMGRCTL" exec g a -- sleep 1000 </dev/null >/dev/null 2>&1 &
caller=$! # setpriv, which becomes vmgrctl
sleep 2
kill -KILL "$caller"
wait "$caller" 2>/dev/null || true
vm_no_sleeper() {
        [ "$(run_vm "$a" "" sh -c 'ps | grep -c "[s]leep 1000"; true')" = "0|0
|" ]
}
check "exec: the process is killed when its caller goes away" vmgr_wait_until 10 vm_no_sleeper

# After the RSS sample: Run's 16 MiB buffers stay in ASan's quarantine.
out=$(vmgr_dbus_error "$a" org.vmgr1.VM.Run array:string:head,-c,17000000,/dev/zero array:byte: uint64:0)
check_match "Run: more than 16 MiB of output is LimitExceeded" '^org\.vmgr1\.Error\.LimitExceeded: ' "$out"
out=$(vmgr_dbus_error "$a" org.vmgr1.VM.Run array:string:sleep,100 array:byte: uint64:1000000)
check_match "Run: a command past its timeout is killed, Timeout" '^org\.vmgr1\.Error\.Timeout: ' "$out"


# --- cp --------------------------------------------------------------------------------

head -c 8388608 /dev/urandom >"$VMGR_TMP/blob"
chmod 0644 "$VMGR_TMP/blob"
t0=$(vmgr_now_ms)
check "cp into the VM" ctl cp "$VMGR_TMP/blob" g/a:/tmp/blob
check "cp out of the VM" ctl cp g/a:/tmp/blob "$VMGR_TMP/blob.back"
timings+=("cp 8 MiB in and out: $(($(vmgr_now_ms) - t0)) ms")
check_eq "cp round trip keeps the SHA-256" "$(sha256sum <"$VMGR_TMP/blob")" "$(sha256sum <"$VMGR_TMP/blob.back" 2>&1)"
out=$(ctl cp g/a:/nonexistent "$VMGR_TMP/x" 2>&1) && rc=0 || rc=$?
check_match "cp of a missing guest file fails with the reason" "No such file|nonexistent" "$rc $out"

# --- wait ---------------------------------------------------------------------------------

check "vmgrctl wait g" ctl wait g --timeout 10
out=$(ctl wait h c --timeout 2 2>&1) && rc=0 || rc=$?
check_match "vmgrctl wait h c times out naming the stage" "probe_passed" "$rc $out"

# --- networks ------------------------------------------------------------------------

b6=$(vmgr_vm_prop "$b" IPv6)
b4=$(vmgr_vm_prop "$b" IPv4)
c6=$(vmgr_vm_prop "$c" IPv6)
check_match "a reaches b over IPv6" '^0\|' "$(run_vm "$a" "" ping -c 1 -W 5 "$b6")"
check_match "a reaches b over IPv4 ($b4)" '^0\|' "$(run_vm "$a" "" ping -c 1 -W 5 "$b4")"
check_match "a cannot reach c of group h" '^1\|' "$(run_vm "$a" "" ping -c 1 -W 2 "$c6")"

m6=$(vmgr_group_prop "$gpath" Management6)
# A listener in a: the host (where the groups live) connects, the guest's
# netstat shows the peer.
a6=$(vmgr_vm_prop "$a" IPv6)
run_vm "$a" "" sh -c 'nc -l -p 7777 >/dev/null & sleep 4; netstat -tn' >"$VMGR_TMP/netstat" &
listener=$!
sleep 1.5
vmgr_netns_exec python3 -c 'import socket,sys,time; s=socket.create_connection((sys.argv[1], 7777), 5); time.sleep(4)' "$a6" \
        2>/dev/null || true
wait "$listener" || true
check_match "traffic from the host arrives from the management address $m6" "$m6:[0-9]+ " \
        "$(grep -F "$m6" "$VMGR_TMP/netstat" | grep -F ':7777' || cat "$VMGR_TMP/netstat")"

# --- reboot and shutdown ---------------------------------------------------------------

check "VM b: Reboot" busctl_as_user call org.vmgr1 "$b" org.vmgr1.VM Reboot
check_eq "VM b is not ready once the reboot was asked for" running "$(vmgr_vm_prop "$b" State)"
t0=$(vmgr_now_ms)
out=$(busctl_as_user --timeout=100 call org.vmgr1 "$b" org.vmgr1.VM WaitReady t 90000000 2>&1) && rc=0 || rc=$?
timings+=("reboot to ready again: $(($(vmgr_now_ms) - t0)) ms")
check_eq "VM b is ready again after the reboot (agent reconnected)" "0" "$rc${out:+ $out}"
check_eq "VM b: Run works in the new session" "0|up|" "$(run_vm "$b" "" echo -n up)"

# The agent restarts (init respawns it): it announces a new session, vmgrd
# greets it again and the VM is ready again without a reboot.
before=$(vm_timings "$b" | awk '$1 == "agent_connected" {print $2}')
run_vm "$b" "" sh -c 'kill $(pidof vmgr-agent)' >/dev/null
agent_reconnected() {
        local now
        now=$(vm_timings "$b" | awk '$1 == "agent_connected" {print $2}')
        [ -n "$now" ] && [ "$now" != "$before" ] && vmgr_vm_in_state "$b" ready
}
check "VM b: a restarted agent gets a new session, the VM is ready again" vmgr_wait_until 30 agent_reconnected
check_eq "VM b: Run works after the agent restarted" "0|again|" "$(run_vm "$b" "" echo -n again)"

# An agent that stops answering (SIGSTOP for 15 s): vmgrd PINGs it, drops the
# channel after three keepalive intervals of silence (2 s here, see
# vmgrd.conf above), the VM is no longer ready, and vmgrd keeps reconnecting;
# once the agent runs again it reads vmgrd's new HELLO, and the new session
# makes the VM ready again.
before=$(vm_timings "$b" | awk '$1 == "agent_connected" {print $2}')
run_vm "$b" "" sh -c 'setsid sh -c "sleep 1; kill -STOP \$(pidof vmgr-agent); sleep 15; kill -CONT \$(pidof vmgr-agent)" </dev/null >/dev/null 2>&1 &' >/dev/null
agent_dropped() {
        vmgr_vm_in_state "$b" running && ! vm_timings "$b" | grep -q '^agent_connected '
}
t0=$(vmgr_now_ms)
check "VM b: vmgrd drops the channel of an agent that stopped answering" vmgr_wait_until 20 agent_dropped
timings+=("agent stopped to channel dropped: $(($(vmgr_now_ms) - t0)) ms (keepalive 2 s)")
check_match "VM b: vmgrd logs why it dropped the channel" "did not answer for [0-9]+ s, reconnecting" \
        "$(grep -F 'did not answer' "$VMGR_TMP/vmgrd.log" || true)"
check "VM b: ready again once the agent answers vmgrd's new connection" vmgr_wait_until 40 agent_reconnected
check_eq "VM b: Run works on the reopened channel" "0|back|" "$(run_vm "$b" "" echo -n back)"

t0=$(vmgr_now_ms)
check "VM a: Shutdown through the agent" busctl_as_user --timeout=60 call org.vmgr1 "$a" org.vmgr1.VM Shutdown t 50000000
timings+=("Shutdown through the agent: $(($(vmgr_now_ms) - t0)) ms")
check_eq "VM a is stopped" stopped "$(vmgr_vm_prop "$a" State)"

# A process whose caller still waits goes with its VM.
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" "$VMGRCTL" exec g b -- sleep 1000 </dev/null >/dev/null 2>&1 &
waiter=$!
sleep 1
check "DeleteGroup g" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s g
waiter_gone() {
        ! kill -0 "$waiter" 2>/dev/null
}
check "vmgrctl exec of a removed VM returns" vmgr_wait_until 10 waiter_gone
wait "$waiter" 2>/dev/null && rc=0 || rc=$?
check "vmgrctl exec of a removed VM fails" test "$rc" -ne 0
check "DeleteGroup h" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s h

printf '# %s\n' "${timings[@]}"
vmgr_finish
