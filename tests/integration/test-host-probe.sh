#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Readiness seen from the host: real vmgrd, libvirtd and QEMU (TCG) booting
# the default guest inside this test's namespaces.
#   - "ready_probe_host": {"tcp": 8080}: the VM is not ready while nothing
#     listens (WaitReady names host_probe_passed and "connection refused"),
#     and is once a server runs in the guest (started through Exec);
#   - {"http": "/ready", "port": 8080}: refused, then HTTP 404 named in
#     WaitReady's error, then ready once the file exists;
#   - "ready_console": a regex matching a line the guest prints gives the
#     console_matched stage; one no line matches times out naming it; a
#     line the old boot prints while it reboots does not count;
#   - "agent": false: vmgrd never talks to the guest's agent, yet the VM
#     becomes ready: ipv6_configured from the host (its derived address
#     answers), ipv4_leased from dnsmasq's lease, {"ping": true}; Timings has
#     no agent_connected; Exec fails at once saying the VM has no agent;
#   - a new vmgrd (after kill -9) adopts the VMs with their new stages;
#   - after a reboot of an agent-less VM the stages are passed again, by
#     the new boot.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

# Timings of a VM as stage names, in the order the daemon lists them.
vm_stages() {
        busctl_as_user --json=short get-property org.vmgr1 "$1" org.vmgr1.VM Timings |
                python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["data"]))'
}

# wait_stage PATH STAGE SECONDS: until the VM's Timings has STAGE.
wait_stage() {
        local deadline=$(($(vmgr_now_ms) + $3 * 1000))
        while [[ " $(vm_stages "$1") " != *" $2 "* ]]; do
                [ "$(vmgr_now_ms)" -lt "$deadline" ] || return 1
                sleep 0.5
        done
}

# In host mode vmgrd's ping socket needs its gid in this namespace's
# net.ipv4.ping_group_range, which is "1 0" (nobody) by default: first the
# probe must say so, then it may ping.
ping_needs_sysctl=no
if [ "$VMGR_NET_MODE" != namespace ] && [ "$(sysctl -n net.ipv4.ping_group_range | xargs)" = "1 0" ]; then
        ping_needs_sysctl=yes
fi

spec='{"accelerator":"tcg","vms":[
 {"name":"t","ready_probe_host":{"tcp":8080},"ready_console":"^vmgr-guest: enp1s0 ipv6 "},
 {"name":"n","ready_console":"^vmgr-guest: shutting down"},
 {"name":"h","ready_probe_host":{"http":"/ready","port":8080}},
 {"name":"l","agent":false,"ipv4":true,"ready_probe_host":{"ping":true}}]}'
check "CreateGroup g (t: tcp probe, n: console never matches, h: http probe, l: no agent, ping)" \
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss g "$spec"
t=$(vmgr_vm_path g t)
n=$(vmgr_vm_path g n)
h=$(vmgr_vm_path g h)
l=$(vmgr_vm_path g l)

# --- the agent-less VM ------------------------------------------------------------

if [ "$ping_needs_sysctl" = yes ]; then
        wait_stage "$l" ipv4_leased 120 || true
        out=$(vmgr_dbus_error "$l" org.vmgr1.VM.WaitReady uint64:3000000)
        check_match "l: without ping_group_range, WaitReady names host_probe_passed and the sysctl" \
                '^org\.vmgr1\.Error\.Timeout: .*stage host_probe_passed did not complete \(ping: ping sockets are not permitted \(net\.ipv4\.ping_group_range\)\)' \
                "$out"
        sysctl -q -w net.ipv4.ping_group_range="0 2147483647"
fi
out=$(busctl_as_user --timeout=130 call org.vmgr1 "$l" org.vmgr1.VM WaitReady t 120000000 2>&1) && rc=0 || rc=$?
check_eq "l (no agent, ipv4, ping probe) becomes ready" 0 "$rc${out:+ $out}"
check_eq "l: Timings has no agent_connected" "qemu_started ipv6_configured ipv4_leased host_probe_passed ready" \
        "$(vm_stages "$l")"
check_match "l: its IPv4 is dnsmasq's lease" '^10\.' "$(vmgr_vm_prop "$l" IPv4)"
out=$(vmgrctl_as_user exec g l -- true 2>&1) && rc=0 || rc=$?
check_match "l: exec fails at once saying the VM has no agent" \
        "no guest agent \\(its spec says \"agent\": false\\)" "$rc $out"
check_fails "l: exec fails" test "$rc" -eq 0
out=$(vmgr_dbus_error "$l" org.vmgr1.VM.Run array:string:true array:byte: uint64:0)
check_match "l: Run fails with NotSupported" '^org\.freedesktop\.DBus\.Error\.NotSupported: .*no guest agent' "$out"

# --- the tcp probe and ready_console ----------------------------------------------------

# The host probe starts once the address is configured.
wait_stage "$t" ipv6_configured 120 || true
out=$(vmgr_dbus_error "$t" org.vmgr1.VM.WaitReady uint64:3000000)
check_match "t: nothing on port 8080: WaitReady names host_probe_passed, connection refused" \
        '^org\.vmgr1\.Error\.Timeout: .*stage host_probe_passed did not complete \(tcp port 8080: connection refused\)' "$out"
wait_stage "$t" console_matched 60 || true
check_match "t: console_matched reached before host_probe_passed" "ipv6_configured.*console_matched" "$(vm_stages "$t")"
check_eq "t: not ready" running "$(vmgr_vm_prop "$t" State)"

check "t: start httpd on port 8080 in the guest" \
        vmgrctl_as_user exec g t -- sh -c 'mkdir -p /tmp/www && httpd -p 8080 -h /tmp/www'
out=$(busctl_as_user --timeout=70 call org.vmgr1 "$t" org.vmgr1.VM WaitReady t 60000000 2>&1) && rc=0 || rc=$?
check_eq "t: ready once the port answers" 0 "$rc${out:+ $out}"
check_eq "t: Timings" "qemu_started agent_connected ipv6_configured host_probe_passed console_matched ready" \
        "$(vm_stages "$t")"

# --- a console regex no line matches ---------------------------------------------------

wait_stage "$n" ipv6_configured 60 || true
out=$(vmgr_dbus_error "$n" org.vmgr1.VM.WaitReady uint64:3000000)
check_match "n: WaitReady names console_matched" \
        '^org\.vmgr1\.Error\.Timeout: .*stage console_matched did not complete' "$out"
check_match "n: every other stage was reached" "qemu_started agent_connected ipv6_configured$" "$(vm_stages "$n")"

# --- the http probe: the status decides ---------------------------------------------------

wait_stage "$h" ipv6_configured 60 || true
out=$(vmgr_dbus_error "$h" org.vmgr1.VM.WaitReady uint64:3000000)
check_match "h: nothing on port 8080: WaitReady names the http probe, connection refused" \
        '^org\.vmgr1\.Error\.Timeout: .*stage host_probe_passed did not complete \(http port 8080 GET /ready: connection refused\)' "$out"
check "h: start httpd on port 8080 in the guest, without /ready" \
        vmgrctl_as_user exec g h -- sh -c 'mkdir -p /tmp/www && httpd -p 8080 -h /tmp/www'
out=$(vmgr_dbus_error "$h" org.vmgr1.VM.WaitReady uint64:3000000)
check_match "h: 404 where 200 is wanted: WaitReady names the status" \
        '^org\.vmgr1\.Error\.Timeout: .*stage host_probe_passed did not complete \(http port 8080 GET /ready: HTTP 404, not 200\)' "$out"
check "h: make /ready" vmgrctl_as_user exec g h -- sh -c 'echo ok >/tmp/www/ready'
out=$(busctl_as_user --timeout=70 call org.vmgr1 "$h" org.vmgr1.VM WaitReady t 60000000 2>&1) && rc=0 || rc=$?
check_eq "h: ready once GET /ready answers 200" 0 "$rc${out:+ $out}"

# --- a new vmgrd adopts the group: the new stages are kept ----------------------------

timings_t=$(busctl_as_user get-property org.vmgr1 "$t" org.vmgr1.VM Timings)
timings_l=$(busctl_as_user get-property org.vmgr1 "$l" org.vmgr1.VM Timings)
vmgr_stop_vmgrd KILL
vmgr_start_vmgrd
for v in t l; do
        p=$(vmgr_vm_path g "$v")
        out=$(busctl_as_user --timeout=70 call org.vmgr1 "$p" org.vmgr1.VM WaitReady t 60000000 2>&1) && rc=0 || rc=$?
        check_eq "$v: ready after the new vmgrd adopted it" 0 "$rc${out:+ $out}"
done
check_eq "t: timings kept across the adoption" "$timings_t" \
        "$(busctl_as_user get-property org.vmgr1 "$t" org.vmgr1.VM Timings)"
check_eq "l: timings kept across the adoption" "$timings_l" \
        "$(busctl_as_user get-property org.vmgr1 "$l" org.vmgr1.VM Timings)"
out=$(vmgrctl_as_user exec g l -- true 2>&1) && rc=0 || rc=$?
check_match "l: exec still refused after the adoption" "no guest agent" "$rc $out"

# --- reboot of the agent-less VM: the stages again --------------------------------------------

# The old boot, still shutting down, answers the probes as well as ever:
# the first stage after the Reboot must be the new boot's.
cl=$(vmgr_vm_prop "$l" ConsoleLog)
check "l: Reboot" busctl_as_user --timeout=130 call org.vmgr1 "$l" org.vmgr1.VM Reboot
boots=none
deadline=$(($(vmgr_now_ms) + 120000))
while [ "$(vmgr_now_ms)" -lt "$deadline" ]; do
        if [[ " $(vm_stages "$l") " == *" ipv6_configured "* ]]; then
                boots=$(vmgr_console_count "$cl" '^vmgr-guest: starting \(init')
                break
        fi
        sleep 0.05
done
check_eq "l: ipv6_configured after the Reboot is the new boot's (boots on the console then)" 2 "$boots"
out=$(busctl_as_user --timeout=130 call org.vmgr1 "$l" org.vmgr1.VM WaitReady t 120000000 2>&1) && rc=0 || rc=$?
check_eq "l: ready again after the reboot" 0 "$rc${out:+ $out}"
check_eq "l: Timings after the reboot" "qemu_started ipv6_configured ipv4_leased host_probe_passed ready" \
        "$(vm_stages "$l")"

# t has the agent: its console_matched is the new boot's too.
check "t: Reboot" busctl_as_user --timeout=130 call org.vmgr1 "$t" org.vmgr1.VM Reboot
check "t: console_matched again after the reboot" wait_stage "$t" console_matched 120
check_eq "t: matched by the new boot's line" 2 \
        "$(vmgr_console_count "$(vmgr_vm_prop "$t" ConsoleLog)" '^vmgr-guest: enp1s0 ipv6 ')"

# The attack on ready_console: n's regex matches only what its guest prints
# while it shuts down. After a Reboot that line is the old boot's: it must
# not count for the new one.
check "n: Reboot" busctl_as_user --timeout=130 call org.vmgr1 "$n" org.vmgr1.VM Reboot
cn=$(vmgr_vm_prop "$n" ConsoleLog)
check "n: the old boot printed the matching line" vmgr_wait_console "$cn" '^vmgr-guest: shutting down' 1 60
check "n: the new boot comes up (agent and address again)" wait_stage "$n" ipv6_configured 120
check_match "n: console_matched not reached by the old boot's line" "qemu_started agent_connected ipv6_configured$" \
        "$(vm_stages "$n")"

check "DeleteGroup g" busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s g
vmgr_finish
