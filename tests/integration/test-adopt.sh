#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Groups survive a crash of vmgrd, and a re-exec: after kill -9, the next
# vmgrd adopts every running group with real VMs (default guest, TCG):
#   - the same QEMU and dnsmasq processes, the bridge untouched;
#   - each VM's agent session again: Run works without a guest reboot, and
#     the guest's boot id is the same; an Exec whose caller went with the
#     dead vmgrd is killed in the guest;
#   - the file server serves the same file (same URL and SHA-256), though
#     the caller deleted it; a forward listens again and reaches the guest;
#   - timings kept; Manager.GroupsAdopted counts; one "adopted:" log line;
#   - the console log has each line once, and a `vmgrctl logs -f` started
#     before the crashes shows the group's log without a gap or a repeat;
#   - Manager.Reexec (vmgrctl daemon reexec) does the same without a crash;
#   - a VM whose AddVM the dead vmgrd did not finish is removed;
#   - a QEMU that died while vmgrd was down makes its VM "crashed" with
#     LastError, and "vm start" brings it back; the same when libvirtd and
#     a QEMU die together while vmgrd runs (libvirtd is restarted);
#   - SIGTERM still deletes everything.
# Prints the time from the new vmgrd's start to its bus name with every
# group running again.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

run_vm() {
        local path=$1 out
        shift
        out=$(busctl_as_user --json=short -- call org.vmgr1 "$path" org.vmgr1.VM Run asayt \
                "$#" "$@" 0 30000000 2>&1) || { echo "error: $out"; return 0; }
        python3 -c 'import json,sys; d=json.loads(sys.argv[1])["data"]; print("%d|%s" % (d[0], bytes(d[1]).decode().strip()))' "$out"
}
adopted() {
        busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager GroupsAdopted
}
all_qemus() {
        pgrep -u "$VMGR_USER" -f '^/usr/bin/qemu-system-x86_64 ' | sort | xargs
}
dnsmasq_pid() {
        cat "$VMGR_TMP/run/vmgr/groups/$1/dnsmasq.pid"
}

check "CreateGroup g (a, b with IPv4)" vmgrctl_as_user -q group create g --vm a --vm b:ipv4
check "CreateGroup n (network only)" vmgrctl_as_user -q group create n
check "g is ready" vmgrctl_as_user wait g --timeout 180
# A follower of g's log through every restart of vmgrd below.
vmgrctl_as_user logs g -f >"$VMGR_TMP/followed" 2>"$VMGR_TMP/followed.err" &
follower=$!
a=$(vmgr_vm_path g a)
b=$(vmgr_vm_path g b)
check_eq "Run in a before the crash" "0|hi" "$(run_vm "$a" echo hi)"
boot_a=$(run_vm "$a" cat /proc/sys/kernel/random/boot_id)
head -c 3000000 /dev/urandom >"$VMGR_TMP/payload"
chmod 644 "$VMGR_TMP/payload"
sum=$(sha256sum "$VMGR_TMP/payload" | cut -d' ' -f1)
url=$(vmgrctl_as_user serve g "$VMGR_TMP/payload" --name payload)
check_match "served" '^http://' "$url"
fwd=$(vmgrctl_as_user forward g a 7777 127.0.0.1:0)
port=${fwd##*:}
check_match "forward made" '^127\.0\.0\.1:[0-9]+$' "$fwd"
qemus=$(all_qemus)
dm_g=$(dnsmasq_pid g)
dm_n=$(dnsmasq_pid n)
timings_a=$(busctl_as_user get-property org.vmgr1 "$a" org.vmgr1.VM Timings)

# An Exec whose caller will be gone: its guest side must not outlive it.
vmgrctl_as_user exec g a -- sleep 4242 >/dev/null 2>&1 &
execer=$!
for ((i = 0; i < 100; i++)); do
        [ "$(run_vm "$a" sh -c 'ps | grep "[s]leep 4242" | wc -l')" = "0|1" ] && break
        sleep 0.1
done
check_eq "the Exec runs in a" "0|1" "$(run_vm "$a" sh -c 'ps | grep "[s]leep 4242" | wc -l')"

# --- kill -9, then a new vmgrd -------------------------------------------------------

vmgr_stop_vmgrd KILL
check_eq "vmgrd killed by SIGKILL" 137 "$VMGRD_STATUS"
rm -f "$VMGR_TMP/payload"
t0=$(vmgr_now_ms)
vmgr_start_vmgrd
echo "# the new vmgrd adopted 2 groups (2 VMs) and claimed its name in $(($(vmgr_now_ms) - t0)) ms"
check_eq "GroupsAdopted is 2" "u 2" "$(adopted)"
check_eq "the same QEMU processes" "$qemus" "$(all_qemus)"
check_eq "g: the same dnsmasq" "$dm_g" "$(dnsmasq_pid g)"
check_eq "n: the same dnsmasq" "$dm_n" "$(dnsmasq_pid n)"
check_eq "g is running" running "$(vmgrctl_as_user group show g --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["State"])')"
check_match "one adopted line for g" '\[g\] adopted: 2 VMs, dnsmasq pid [0-9]+, 1 served file, 1 forward' \
        "$(grep -c 'adopted:' "$VMGR_TMP/vmgrd.log" >/dev/null; grep '\[g\] adopted:' "$VMGR_TMP/vmgrd.log")"
check "g is ready again" vmgrctl_as_user wait g --timeout 60
check_eq "Run in a after the crash" "0|again" "$(run_vm "$a" echo again)"
check_eq "Run in b after the crash" "0|b" "$(run_vm "$b" hostname)"
wait "$execer" && rc=0 || rc=$?
check_eq "the Exec's caller got an error when vmgrd died" 1 "$((rc != 0))"
check_eq "the Exec's guest process is gone: the new session ended the old one's" "0|0" \
        "$(run_vm "$a" sh -c 'ps | grep "[s]leep 4242" | wc -l')"
check_eq "a was not rebooted" "$boot_a" "$(run_vm "$a" cat /proc/sys/kernel/random/boot_id)"
check_eq "timings of a kept" "$timings_a" "$(busctl_as_user get-property org.vmgr1 "$a" org.vmgr1.VM Timings)"
check_eq "served file: same name and SHA-256" "payload $sum" \
        "$(vmgrctl_as_user served g | awk 'NR > 1 {print $1, $3}')"
got=$(run_vm "$a" sh -c "wget -q -O - '$url' | sha256sum")
check_eq "a guest downloads the same bytes" "0|$sum  -" "$got"
check "a echoes on 7777" vmgrctl_as_user exec g a -- sh -c 'nc -ll -p 7777 -e cat </dev/null >/dev/null 2>&1 &'
echo_through() {
        python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(50):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        s.sendall(b"pong\n")
        s.shutdown(socket.SHUT_WR)
        data = s.recv(100)
        if data:
            print(data.decode().strip())
            break
    except OSError:
        pass
    time.sleep(0.2)
PY
}
check_eq "the adopted forward reaches the guest" "pong" "$(echo_through "$port")"

# --- a QEMU that dies while vmgrd is down; a VM half added -------------------------------

check "vm add n c" vmgrctl_as_user vm add n c
vmgr_load_expected exp_c n c
vmgr_stop_vmgrd KILL
pid_b=$(vmgr_qemu_pids g b | head -1)
[ -n "$pid_b" ] && kill -9 "$pid_b"
# What a vmgrd killed during an AddVM of c leaves: c listed as unfinished.
python3 - "$VMGR_TMP/state/vmgr/groups/n.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for vm in d["vms"]:
    if vm["name"] == "c":
        vm["unfinished"] = True
json.dump(d, open(sys.argv[1], "w"))
PY
vmgr_start_vmgrd
check_eq "GroupsAdopted is 2 again" "u 2" "$(adopted)"
c_gone() {
        [ -z "$(vmgr_qemu_pids n c)" ] && [ -z "$(vmgr_vm_path n c)" ] &&
                ! vmgr_netns_exec ip link show dev "${exp_c[tap]}" >/dev/null 2>&1
}
check "the half-added VM c is removed: no QEMU, no object, no TAP" vmgr_wait_until 30 c_gone
check_eq "b is crashed" crashed "$(vmgr_vm_prop "$b" State)"
check_match "b says why" "QEMU was gone" "$(vmgr_vm_prop "$b" LastError)"
check_eq "Run in a still works" "0|a" "$(run_vm "$a" hostname)"
check "vm start b brings it back" vmgrctl_as_user vm start g b
check "g is ready with b again" vmgrctl_as_user wait g --timeout 180

# --- libvirtd and a QEMU die together while vmgrd runs --------------------------------

lv=$(pgrep -u "$VMGR_USER" -x libvirtd | head -1)
kill -9 "$lv" $(vmgr_qemu_pids g b)
b_crashed() {
        [ "$(vmgr_vm_prop "$b" State)" = crashed ]
}
check "b is crashed once libvirtd is back" vmgr_wait_until 30 b_crashed
check_match "b says why" "QEMU was gone when libvirtd was restarted" "$(vmgr_vm_prop "$b" LastError)"
check "libvirtd was restarted" grep -q "Restarting libvirtd" "$VMGR_TMP/vmgrd.log"
check_eq "Run in a after libvirtd's restart" "0|a" "$(run_vm "$a" hostname)"
check "vm start b again" vmgrctl_as_user vm start g b
check "g is ready with b again, after libvirtd's restart" vmgrctl_as_user wait g --timeout 180

# --- re-exec ----------------------------------------------------------------------------

qemus=$(all_qemus)
out=$(vmgrctl_as_user daemon reexec 2>&1) && rc=0 || rc=$?
check_eq "vmgrctl daemon reexec ($out)" 0 "$rc"
check_eq "the same QEMU processes after reexec" "$qemus" "$(all_qemus)"
check_eq "GroupsAdopted after reexec" "u 2" "$(adopted)"
check "g is ready after reexec" vmgrctl_as_user wait g --timeout 60
check_eq "Run in b after reexec" "0|b" "$(run_vm "$b" hostname)"
# Each line QEMU wrote to a's console is in the group's log once: as many
# console lines of a there as console.log has (nothing was rotated).
console=$VMGR_TMP/state/vmgr/groups/g/vms/a/console.log
check_eq "the group log has each console line of a once, across 2 restarts of vmgrd" \
        "$(grep -c '' "$console")" "$(grep -ac '^\[vm=a console\]' "$VMGR_TMP/state/vmgr/groups/g/group.log")"

# The follower saw the group's log as it is, each line once, through two
# kill -9 and a re-exec.
check "a line for the follower" vmgrctl_as_user exec g a -- sh -c 'echo follower-mark >/dev/console'
log=$VMGR_TMP/state/vmgr/groups/g/group.log
for ((i = 0; i < 100; i++)); do
        grep -q follower-mark "$VMGR_TMP/followed" && break
        sleep 0.1
done
n=$(grep -c '' "$VMGR_TMP/followed")
check_eq "logs -f: what it printed is the group's log, no line lost or twice ($n lines)" \
        "$(head -n "$n" "$log" | sha256sum)" "$(sha256sum <"$VMGR_TMP/followed")"
check_eq "logs -f: it got past the re-exec (the group's log has the mark $(grep -c follower-mark "$log") times)" \
        1 "$(grep -c follower-mark "$VMGR_TMP/followed")"

vmgr_stop_vmgrd TERM
check_eq "SIGTERM: vmgrd exits 0" 0 "$VMGRD_STATUS"
wait "$follower" && rc=0 || rc=$?
check_eq "logs -f ends once vmgrd stopped, with status 0 ($(head -c 300 "$VMGR_TMP/followed.err"))" 0 "$rc"
check_empty "nothing left after SIGTERM" "$(vmgr_leftovers)"
vmgr_finish
