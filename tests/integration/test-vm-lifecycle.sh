#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A VM's life cycle through the org.vmgr1.VM methods, with real libvirt and
# QEMU under TCG booting the default guest, in this test's namespaces:
#   - AddVM to a running group boots a VM that answers ping; RemoveVM takes
#     its object, QEMU, domain, TAP and files away;
#   - Reboot keeps the VM running and the console shows a second boot;
#   - Shutdown(timeout) powers the guest off cleanly (ACPI power button) and
#     leaves it stopped; a guest that cannot react yet is stopped hard once
#     the timeout has passed;
#   - Restart of a stopped VM boots it again; Kill stops it at once;
#   - a guest that powers itself off (vmgr.test_poweroff=1, booted from an
#     explicit kernel, initrd and cmdline) is "stopped", not "crashed";
#   - a QEMU killed from outside (kill -9) makes the VM "crashed" with a
#     LastError saying why, and Start brings it back;
#   - method errors: Reboot of a stopped VM, calls on a removed VM, Reboot
#     and Start while a Shutdown runs (Busy);
#   - a Shutdown without timeout that waits for a guest that missed the
#     power button gives way to Kill and to DeleteGroup, whose deletion
#     finishes and leaves nothing.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

timings=()

# vm_call PATH METHOD [SIGNATURE ARGS...]: call an org.vmgr1.VM method.
vm_call() {
        busctl_as_user --timeout=120 call org.vmgr1 "$1" org.vmgr1.VM "${@:2}"
}

# --- group L with VM a, then AddVM b while the group runs -------------------------

out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss L \
        '{"accelerator": "tcg", "vms": [{"name": "a"}]}' 2>&1) && rc=0 || rc=$?
check_eq "group L with VM a (accelerator tcg)" 0 "$rc"
if [ "$rc" -ne 0 ]; then
        vmgr_not_ok "nothing else can be checked without the group" "$out"
        vmgr_finish
fi
gpath=$(vmgr_group_path L)
pa=$(vmgr_vm_path L a)
ca=$(vmgr_vm_prop "$pa" ConsoleLog)

t0=$(vmgr_now_ms)
out=$(vmgrctl_as_user vm add L b 2>&1) && rc=0 || rc=$?
t=$(($(vmgr_now_ms) - t0))
check_eq "vmgrctl vm add L b to the running group ($t ms)" 0 "$rc"
[ "$rc" -eq 0 ] || vmgr_not_ok "vm add output" "$out"
pb=$(vmgr_vm_path L b)
check_match "GetVM finds b" '^/org/vmgr1/group/L/vm/b$' "$pb"
check_eq "b is running when AddVM returns" running "$(vmgr_vm_prop "$pb" State)"
check_eq "b: one QEMU" 1 "$(vmgr_qemu_pids L b | wc -l)"
check_eq "Group.VMs lists a, then b" "ao 2 \"$pa\" \"$pb\"" \
        "$(busctl_as_user get-property org.vmgr1 "$gpath" org.vmgr1.Group VMs 2>&1)"
check_eq "AddVM of an existing name: VMExists" org.vmgr1.Error.VMExists \
        "$(vmgr_dbus_error "$gpath" org.vmgr1.Group.AddVM string:b string: | sed 's/:.*//')"

# p boots the default guest from explicit paths and powers itself off after "ready".
MKGUEST=$VMGR_DESTDIR/usr/bin/vmgr-mkguest
read -r kernel initrd < <(vmgr_as_user "$MKGUEST" --print-path 2>/dev/null) || true
pspec='{"kernel": "'$kernel'", "initrd": "'$initrd'", "cmdline": "console=ttyS0 vmgr.hostname=p vmgr.test_poweroff=1", "agent": true}'
out=$(busctl_as_user --timeout=120 call org.vmgr1 "$gpath" org.vmgr1.Group AddVM ss p "$pspec" 2>&1) && rc=0 || rc=$?
check_eq "AddVM p: kernel, initrd and cmdline of its own" 0 "$rc"
[ "$rc" -eq 0 ] || vmgr_not_ok "AddVM p output" "$out" "spec: $pspec"
pp=$(vmgr_vm_path L p)

cb=$(vmgr_vm_prop "$pb" ConsoleLog)
# a boots cold and becomes the template of the default guest; b, of the same
# shape, is its clone: its console has no boot, only the agent taking b's
# identity.
for v in a:"$ca":'^vmgr-guest: ready' b:"$cb":'^vmgr-agent: took the identity of b '; do
        IFS=: read -r name console line <<<"$v"
        if vmgr_wait_console "$console" "$line" 1 90; then
                vmgr_ok "$name: console shows '${line#^}'"
        else
                vmgr_not_ok "$name: console shows '${line#^}'" "$(vmgr_console_tail "$console")"
        fi
done
vmgr_load_expected EB L b
check "the added VM b answers ping" vmgr_netns_exec ping -6 -n -q -c 1 -w 10 "${EB[ipv6]}"

cp_=$(vmgr_vm_prop "$pp" ConsoleLog)
vmgr_wait_until 90 vmgr_vm_in_state "$pp" stopped || true
check_eq "p powered itself off: stopped" stopped "$(vmgr_vm_prop "$pp" State)"
check_eq "p: its console shows ready, then the shutdown" "1 1" \
        "$(vmgr_console_count "$cp_" '^vmgr-guest: ready') $(vmgr_console_count "$cp_" '^vmgr-guest: shutting down')"
check_eq "p: the cmdline was ours (hostname p)" p "$(vmgr_console_value "$cp_" hostname)"
check_eq "p: LastError is empty (nothing failed)" "" "$(vmgr_vm_prop "$pp" LastError)"
check_empty "p: no QEMU left" "$(vmgr_qemu_pids L p)"
check "RemoveVM p (stopped)" busctl_as_user --timeout=120 call org.vmgr1 "$gpath" org.vmgr1.Group RemoveVM s p
check_empty "p's TAP, domain and directory are gone" "$(
        vmgr_group_leftovers L p | grep -v -x -e "bridge $(vmgr_group_prop "$gpath" Bridge)" \
                -e "file $VMGR_TMP/state/vmgr/groups/L.json" -e "file $VMGR_TMP/state/vmgr/groups/L" \
                -e "file $VMGR_TMP/run/vmgr/groups/L" || true
        [ -e "$(dirname "$cp_")" ] && echo "file $(dirname "$cp_")"
)"

# --- RemoveVM b -------------------------------------------------------------------

bdir=$(dirname "$cb")
t0=$(vmgr_now_ms)
check "vmgrctl vm remove L b" vmgrctl_as_user vm remove L b
timings+=("RemoveVM of a running VM: $(($(vmgr_now_ms) - t0)) ms")
check_eq "GetVM b: NoSuchVM" org.vmgr1.Error.NoSuchVM \
        "$(vmgr_dbus_error "$gpath" org.vmgr1.Group.GetVM string:b | sed 's/:.*//')"
check_eq "Group.VMs lists only a" "ao 1 \"$pa\"" \
        "$(busctl_as_user get-property org.vmgr1 "$gpath" org.vmgr1.Group VMs 2>&1)"
check_empty "b's QEMU, domain, TAP and directory are gone" "$(
        vmgr_group_leftovers L b | grep -v -x -e "bridge $(vmgr_group_prop "$gpath" Bridge)" \
                -e "file $VMGR_TMP/state/vmgr/groups/L.json" -e "file $VMGR_TMP/state/vmgr/groups/L" \
                -e "file $VMGR_TMP/run/vmgr/groups/L" || true
        [ -e "$bdir" ] && echo "file $bdir"
)"
check_match "a method on the removed VM's path fails" '^org\.freedesktop\.DBus\.Error\.UnknownObject|^org\.vmgr1\.Error\.NoSuchVM' \
        "$(vmgr_dbus_error "$pb" org.vmgr1.VM.Start)"
check_match "a still runs" "$VMGR_VM_UP" "$(vmgr_vm_prop "$pa" State)"

# --- Reboot ---------------------------------------------------------------------------

t0=$(vmgr_now_ms)
check "Reboot a" vm_call "$pa" Reboot
check_match "a is running after Reboot returned" "$VMGR_VM_UP" "$(vmgr_vm_prop "$pa" State)"
if vmgr_wait_console "$ca" '^vmgr-guest: ready' 2 90; then
        t=$(($(vmgr_now_ms) - t0))
        timings+=("Reboot call to 'vmgr-guest: ready': $t ms")
        vmgr_ok "Reboot: the console shows a second boot to ready ($t ms)"
else
        vmgr_not_ok "Reboot: the console shows a second boot to ready" "$(vmgr_console_tail "$ca")"
fi
check_eq "Reboot: the guest shut down once, cleanly, before booting again" 1 \
        "$(vmgr_console_count "$ca" '^vmgr-guest: shutting down')"
check_match "a is running after the reboot" "$VMGR_VM_UP" "$(vmgr_vm_prop "$pa" State)"
check_eq "a: still one QEMU" 1 "$(vmgr_qemu_pids L a | wc -l)"

# --- Shutdown (clean) -----------------------------------------------------------------------

t0=$(vmgr_now_ms)
check "Shutdown a, timeout 30 s" vm_call "$pa" Shutdown t 30000000
t=$(($(vmgr_now_ms) - t0))
timings+=("Shutdown (ACPI, clean) call: $t ms")
check_eq "a is stopped after Shutdown" stopped "$(vmgr_vm_prop "$pa" State)"
check "Shutdown returned well before its timeout ($t ms)" test "$t" -lt 20000
check_eq "Shutdown: the guest ran its shutdown" 2 "$(vmgr_console_count "$ca" '^vmgr-guest: shutting down')"
check_empty "Shutdown: no QEMU left" "$(vmgr_qemu_pids L a)"
check_eq "Shutdown: no libvirt domain left (transient)" "" "$(vmgr_virsh list --all --name 2>&1 | sed '/^$/d')"
check_eq "Shutdown: LastError stays empty" "" "$(vmgr_vm_prop "$pa" LastError)"
check "Shutdown of a stopped VM succeeds (nothing to do)" vm_call "$pa" Shutdown t 1000000
out=$(vmgr_dbus_error "$pa" org.vmgr1.VM.Reboot)
check_match "Reboot of a stopped VM fails and says it is not running" '^org\.vmgr1\.Error\.[A-Za-z]+: .*not running' "$out"
check_eq "... and the VM stays stopped" stopped "$(vmgr_vm_prop "$pa" State)"

# --- Restart from stopped, then Kill ---------------------------------------------------------

t0=$(vmgr_now_ms)
check "Restart a (stopped)" vm_call "$pa" Restart
check_eq "a is running after Restart" running "$(vmgr_vm_prop "$pa" State)"
if vmgr_wait_console "$ca" '^vmgr-guest: ready' 3 90; then
        vmgr_ok "Restart: the console shows a third boot to ready ($(($(vmgr_now_ms) - t0)) ms)"
else
        vmgr_not_ok "Restart: the console shows a third boot to ready" "$(vmgr_console_tail "$ca")"
fi
old_pid=$(vmgr_qemu_pids L a)
check "Restart a (running)" vm_call "$pa" Restart
new_pid=$(vmgr_qemu_pids L a)
check_match "Restart of a running VM: a new QEMU" "^[0-9]+$" "$new_pid"
check "... not the old one" test "${new_pid:-0}" != "${old_pid:-0}"
check_eq "... and it is running" running "$(vmgr_vm_prop "$pa" State)"

t0=$(vmgr_now_ms)
check "Kill a" vm_call "$pa" Kill
timings+=("Kill call: $(($(vmgr_now_ms) - t0)) ms")
check_eq "a is stopped after Kill" stopped "$(vmgr_vm_prop "$pa" State)"
check_empty "Kill: no QEMU left" "$(vmgr_qemu_pids L a)"

# --- Shutdown of a guest that cannot react yet: the timeout stops it hard -------------------

check "Start a" vm_call "$pa" Start
t0=$(vmgr_now_ms)
# One second after QEMU started the guest's kernel has no ACPI button handler yet.
check "Shutdown a with a 1 s timeout while it boots" vm_call "$pa" Shutdown t 1000000
t=$(($(vmgr_now_ms) - t0))
check_eq "a is stopped after the timed-out Shutdown" stopped "$(vmgr_vm_prop "$pa" State)"
check "... which took at least the timeout and not much longer ($t ms)" test "$t" -ge 1000 -a "$t" -lt 10000
check_empty "... and no QEMU is left" "$(vmgr_qemu_pids L a)"

# --- a QEMU that dies under vmgrd: crashed ---------------------------------------------------

check "Start a" vm_call "$pa" Start
pid=$(vmgr_qemu_pids L a)
check_match "a has one QEMU" '^[0-9]+$' "$pid"
kill -KILL "${pid:-0}" 2>/dev/null || true
crashed() {
        vmgr_vm_in_state "$pa" crashed
}
vmgr_wait_until 15 crashed || true
check_eq "after kill -9 of its QEMU, a is crashed" crashed "$(vmgr_vm_prop "$pa" State)"
check_match "LastError says why" '(QEMU|qemu|crash|killed|signal)' "$(vmgr_vm_prop "$pa" LastError)"
check_match "vmgrd logged it" "\\[L/a\\] .*crash" "$(cat "$VMGR_TMP/vmgrd.log")"
check "Start a crashed VM" vm_call "$pa" Start
check_eq "... it runs again" "running 1" "$(vmgr_vm_prop "$pa" State) $(vmgr_qemu_pids L a | wc -l)"

# --- a Shutdown(0) the guest never acts on gives way to Kill and to DeleteGroup ----------

# Pressed right after Start, the power button is lost: the guest's kernel
# resets ACPI's event status when it initialises. Without a timeout such a
# Shutdown would wait for good; Kill, removal and deletion must still work.

# start_stuck_shutdown: Start a, then Shutdown(0) in the background (its
# busctl's pid in $shutdown_pid), and wait until a is stopping.
start_stuck_shutdown() {
        check "Start a" vm_call "$pa" Start
        vm_call "$pa" Shutdown t 0 >"$VMGR_TMP/shutdown0.out" 2>&1 &
        shutdown_pid=$!
        vmgr_wait_until 10 vmgr_vm_in_state "$pa" stopping || true
        check_eq "Shutdown(0) right after Start: a is stopping" stopping "$(vmgr_vm_prop "$pa" State)"
}
shutdown_answered() {
        ! kill -0 "$shutdown_pid" 2>/dev/null
}
# check_shutdown_answered NAME: the background Shutdown call got an answer.
check_shutdown_answered() {
        vmgr_wait_until 5 shutdown_answered || true
        check "$1" shutdown_answered
        kill "$shutdown_pid" 2>/dev/null || true
        wait "$shutdown_pid" 2>/dev/null || true
}

check "Kill a" vm_call "$pa" Kill
start_stuck_shutdown
check_match "Reboot while Shutdown waits: Busy" '^org\.vmgr1\.Error\.Busy: ' \
        "$(vmgr_dbus_error "$pa" org.vmgr1.VM.Reboot)"
check_match "Start while Shutdown waits: Busy" '^org\.vmgr1\.Error\.Busy: ' \
        "$(vmgr_dbus_error "$pa" org.vmgr1.VM.Start)"
out=$(busctl_as_user --timeout=20 call org.vmgr1 "$pa" org.vmgr1.VM Kill 2>&1) && rc=0 || rc=$?
check_eq "Kill while Shutdown waits stops the VM at once" "0  stopped" "$rc $out $(vmgr_vm_prop "$pa" State)"
check_empty "... no QEMU left" "$(vmgr_qemu_pids L a)"
check_shutdown_answered "... and the Shutdown call got its answer"

start_stuck_shutdown
t0=$(vmgr_now_ms)
out=$(busctl_as_user --timeout=20 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s L 2>&1) && rc=0 || rc=$?
t=$(($(vmgr_now_ms) - t0))
check_eq "DeleteGroup L while Shutdown(0) waits returns ($t ms)" "0 " "$rc $out"
check_shutdown_answered "... and the waiting Shutdown call got its answer"

check_empty "nothing of L left" "$(vmgr_group_leftovers L a b p)"

for t in "${timings[@]}"; do
        echo "# timing: $t"
done
vmgr_finish
