#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A real distribution image through vmgrd: the Debian image vmgr-mkimage
# builds WITHOUT vmgr's agent (a stock image), two VMs of it in one group.
#   - VM "p" (BIOS, "agent": false) becomes ready with no agent at all:
#     ipv6_configured seen from the host, ready_probe_host (TCP to
#     systemd-journal-gatewayd's port) and ready_console each a stage of
#     its own in Timings, and no agent_connected stage;
#   - p's journal ("journal": "gatewayd") appears in the group's log as
#     "[vm=p guest] journal: ..." lines; after a guest reboot vmgrd follows
#     the new boot and the first boot's lines are not repeated;
#   - VM "u" (UEFI, a cloud-init seed with install_agent and user-data)
#     ends ready through the agent cloud-init installed: exec works, the
#     hostname is the VM's name, the user-data's file is there, enp1s0 has
#     the derived IPv6 address and enp2s0 the derived IPv4 lease; its NVRAM
#     file exists while p (BIOS) has none;
#   - a kernel panic in u (sysrq c through exec) makes it "crashed" within
#     seconds with LastError "guest kernel panicked: ...", its QEMU gone;
#   - DeleteGroup leaves nothing.
# Prints the time to ready of both VMs.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
source "$(dirname "$0")/lib-image.sh"
vmgr_require_root
vmgr_vm_require_tools
# Built (or found in the cache) before entering the test's namespaces: the
# build reads Debian's archive.
image=$(vmgr_test_debian_image) || {
        echo "not ok - the Debian test image could not be built"
        exit 1
}
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

state=$VMGR_TMP/state/vmgr/groups/g

# Timings of the VM at path $1 as "stage" lines, in the daemon's order.
vm_stages() {
        busctl_as_user --json=short get-property org.vmgr1 "$1" org.vmgr1.VM Timings |
                python3 -c 'import json,sys; [print(k) for k in json.load(sys.stdin)["data"]]'
}

# The group's guest lines of VM $1 (vmgrctl logs): for a VM without the
# agent, what vmgrd read from its journal, as "journal: IDENT[PID]: MESSAGE"
# or, for the kernel's entries, "kernel: MESSAGE" (the agent's words).
journal_lines() {
        vmgrctl_as_user logs g "$1" | grep -F -- "[vm=$1 guest] " || true
}

# How many of VM $1's journal lines are the kernel's banner (one per boot).
boots_in_journal() {
        journal_lines "$1" | grep -c -F '] kernel: Linux version' || true
}

user_data=$'#cloud-config\nwrite_files:\n- path: /etc/vmgr-test\n  content: "from user-data\\n"\n'
spec=$(python3 - "$image" "$user_data" <<'EOF'
import json, sys
image, user_data = sys.argv[1:]
print(json.dumps({"accelerator": "tcg", "vms": [
    {"name": "p", "disk": image, "memory_mib": 1024, "agent": False, "journal": "gatewayd",
     "ready_probe_host": {"tcp": 19531}, "ready_console": "Multi-User System|GNU/Linux"},
    {"name": "u", "disk": image, "memory_mib": 1024, "firmware": "uefi", "ipv4": True,
     "cloud_init": {"install_agent": True, "user_data": user_data}},
]}))
EOF
)

t0=$(vmgr_now_ms)
out=$(printf '%s' "$spec" | vmgrctl_as_user group create g --spec - 2>&1) && rc=0 || rc=$?
check_eq "CreateGroup with a BIOS VM without agent and a UEFI VM with cloud-init" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/# /'
p=$(vmgr_vm_path g p)
u=$(vmgr_vm_path g u)

out=$(vmgrctl_as_user wait g --timeout 400 2>&1) && rc=0 || rc=$?
t_ready=$(($(vmgr_now_ms) - t0))
check_eq "both VMs become ready (${t_ready} ms after CreateGroup)" 0 "$rc"
if [ "$rc" -ne 0 ]; then
        echo "$out" | sed 's/^/# /'
        vmgr_console_tail "$state/vms/p/console.log"
        vmgr_console_tail "$state/vms/u/console.log"
fi
echo "# time to ready: $t_ready ms for both"

# --- p: readiness with no agent ---------------------------------------------------

stages=$(vm_stages "$p" | tr '\n' ' ')
for s in qemu_started ipv6_configured host_probe_passed console_matched ready; do
        check_match "p: Timings has $s" "(^| )$s( |$)" "$stages"
done
check "p: Timings has no agent_connected (it has no agent)" bash -c '! grep -qw agent_connected <<<"$1"' _ "$stages"
out=$(vmgrctl_as_user exec g p -- true 2>&1) && rc=0 || rc=$?
check "p: exec fails (no agent)" test "$rc" -ne 0
check_match "... saying the VM has no guest agent" "agent" "$out"

# --- p: its journal through systemd-journal-gatewayd --------------------------------

# True once VM $1 has at least $2 journal lines in the group's log.
journal_has() {
        [ "$(journal_lines "$1" | wc -l)" -ge "$2" ]
}

# True once VM $1's journal shows at least $2 boots.
boots_at_least() {
        [ "$(boots_in_journal "$1")" -ge "$2" ]
}

check "p: journal lines arrive in the group's log" vmgr_wait_until 60 journal_has p 20
check_match "p: systemd's own entries are among them" '\[vm=p guest\] journal: systemd\[1\]: ' "$(journal_lines p)"
check_eq "p: the kernel's banner is in the journal once" 1 "$(boots_in_journal p)"
n_before=$(journal_lines p | wc -l)
t1=$(vmgr_now_ms)
check "p: reboot" vmgrctl_as_user vm reboot g p
check "p: the second boot's journal arrives" vmgr_wait_until 240 boots_at_least p 2
echo "# p: second boot in the journal after $(($(vmgr_now_ms) - t1)) ms"
# A follower that started again from the beginning would repeat the first
# boot: its banner would be there twice more.
sleep 3
check_eq "p: after the reboot, two boots in the journal (nothing repeated)" 2 "$(boots_in_journal p)"
check "p: more journal lines than before the reboot" test "$(journal_lines p | wc -l)" -gt "$n_before"

# --- u: UEFI, cloud-init and the agent it installed ---------------------------------

stages=$(vm_stages "$u" | tr '\n' ' ')
check_match "u: Timings has agent_connected (installed by cloud-init)" "(^| )agent_connected( |$)" "$stages"
check_eq "u: hostname is the VM's name" u "$(vmgrctl_as_user exec g u -- hostname 2>&1)"
check_eq "u: the user-data's file is written" "from user-data" "$(vmgrctl_as_user exec g u -- cat /etc/vmgr-test 2>&1)"
ipv6=$(vmgr_vm_prop "$u" IPv6)
ipv4=$(vmgr_vm_prop "$u" IPv4)
check_match "u: enp1s0 has the derived IPv6 $ipv6" "inet6 $ipv6/64" "$(vmgrctl_as_user exec g u -- ip -6 addr show dev enp1s0 2>&1)"
check_match "u: enp2s0 has the derived IPv4 $ipv4" "inet $ipv4/" "$(vmgrctl_as_user exec g u -- ip -4 addr show dev enp2s0 2>&1)"
check_match "u: booted with UEFI" "^yes$" "$(vmgrctl_as_user exec g u -- sh -c 'test -d /sys/firmware/efi && echo yes' 2>&1)"
check "u: has its NVRAM file" test -s "$state/vms/u/nvram.fd"
check "p: has no NVRAM file (BIOS)" test ! -e "$state/vms/p/nvram.fd"

# --- u: a guest kernel panic ---------------------------------------------------------

t1=$(vmgr_now_ms)
vmgrctl_as_user exec g u -- sh -c 'echo c > /proc/sysrq-trigger' >/dev/null 2>&1 || true
check "u: crashed after the panic" vmgr_wait_until 30 vmgr_vm_in_state "$u" crashed
echo "# u: crashed $(($(vmgr_now_ms) - t1)) ms after the panic was asked for"
check_match "u: LastError says the guest kernel panicked" "^guest kernel panicked" "$(vmgr_vm_prop "$u" LastError)"
check_empty "u: its QEMU is gone" "$(vmgr_qemu_pids g u)"

# --- teardown -------------------------------------------------------------------------

check "DeleteGroup" vmgrctl_as_user group delete g
check_empty "nothing left of the group" "$(vmgr_group_leftovers g p u)"
vmgr_finish
