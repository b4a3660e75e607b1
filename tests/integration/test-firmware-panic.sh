#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# UEFI firmware and guest kernel panics, with real libvirt and QEMU under TCG
# booting the default guest, in this test's namespaces:
#   - "firmware": "uefi": the default guest (direct kernel boot through
#     OVMF) becomes ready; its NVRAM file is made from the template in the
#     VM's directory, survives a restart of vmgrd (adoption) and vm kill /
#     vm start (the same file), and goes with RemoveVM; a BIOS VM has none;
#   - a panic of the default guest (sysrq c) makes the VM "crashed" within
#     seconds, LastError "guest kernel panicked: sysrq triggered crash" (the
#     console's line), its QEMU gone, WaitReady failing at once;
#   - pvpanic alone: b, the default guest, loads the driver (pvpanic-mmio
#     bound to QEMU0001); a panic with the console's log level at 0 (the
#     kernel then prints nothing of it) gives "guest kernel panicked
#     (pvpanic)", and libvirt stopped its QEMU for the panic (reason=crashed);
#   - the console alone: a kernel that panics before any module loads
#     (rdinit=/nonexistent, panic=1 so that it would reboot) is "crashed"
#     with the console's message, destroyed before it reboots, and a pending
#     WaitReady with a long timeout fails at once, naming the panic;
#   - Start brings a panicked VM back.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools
if [ ! -e /usr/share/qemu/firmware/60-edk2-x86_64.json ]; then
        echo "# skipped: missing ovmf (tools/deps installs it)"
        exit 77
fi
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

vms_dir=$VMGR_TMP/state/vmgr/groups/F/vms

# --- u (UEFI) and b (BIOS), both the default guest --------------------------------------

MKGUEST=$VMGR_DESTDIR/usr/bin/vmgr-mkguest
read -r kernel initrd < <(vmgr_as_user "$MKGUEST" --print-path 2>/dev/null) || true
t0=$(vmgr_now_ms)
out=$(busctl_as_user --timeout=180 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss F \
        '{"accelerator": "tcg", "vms": [{"name": "u", "firmware": "uefi"}, {"name": "b"}]}' 2>&1) && rc=0 || rc=$?
check_eq "group F with u (uefi) and b (bios)" 0 "$rc"
if [ "$rc" -ne 0 ]; then
        vmgr_not_ok "nothing else can be checked without the group" "$out"
        vmgr_finish
fi
pu=$(vmgr_vm_path F u)
pb=$(vmgr_vm_path F b)
out=$(vmgrctl_as_user wait F --timeout 150 2>&1) && rc=0 || rc=$?
check_eq "u and b become ready ($(($(vmgr_now_ms) - t0)) ms after CreateGroup)" 0 "$rc"
[ "$rc" -eq 0 ] || vmgr_not_ok "wait output" "$out" "$(vmgr_console_tail "$vms_dir/u/console.log")"
echo "# u Timings: $(vmgr_vm_prop "$pu" Timings)"
echo "# b Timings: $(vmgr_vm_prop "$pb" Timings)"
# The default guest boots with "quiet", which silences the EFI stub; the
# kernel's own log (forwarded by the agent into the group's log) names the
# firmware.
efi_u() {
        grep -aq '^\[vm=u guest\] kernel: efi: EFI v[0-9.]* by EDK II' "$VMGR_TMP/state/vmgr/groups/F/group.log"
}
check "u booted through OVMF (its kernel log: EFI by EDK II)" vmgr_wait_until 15 efi_u
check_fails "b's domain has no UEFI" grep -q efi "$vms_dir/b/domain.xml"

nvram=$vms_dir/u/nvram.fd
check "u has its NVRAM file in its directory" test -s "$nvram"
check_eq "u's NVRAM has the template's size" "$(stat -c %s /usr/share/OVMF/OVMF_VARS_4M.fd)" \
        "$(stat -c %s "$nvram" 2>&1)"
check_eq "u's NVRAM is vmgrd's user's, mode 0600" "$VMGR_USER 600" "$(stat -c '%U %a' "$nvram" 2>&1)"
check_match "u's domain XML names it" "<nvram[^>]*>$nvram</nvram>" "$(vmgr_virsh dumpxml F:u 2>&1)"
check_match "libvirt chose the firmware without Secure Boot" "OVMF_CODE_4M.fd<" "$(vmgr_virsh dumpxml F:u 2>&1)"
check_fails "b (BIOS) has no NVRAM" test -e "$vms_dir/b/nvram.fd"
check_fails "b's domain has no NVRAM" grep -q nvram "$vms_dir/b/domain.xml"

inode=$(stat -c %i "$nvram")
# vmgrd dies and the next one adopts the group: u's domain XML (kept in its
# directory) still names the same file when u starts again below.
vmgr_stop_vmgrd KILL
vmgr_start_vmgrd
ready_u() {
        vmgr_vm_in_state "$pu" ready
}
check "after kill -9 of vmgrd, the next one adopts u (ready again)" vmgr_wait_until 60 ready_u
check "vm kill F u" vmgrctl_as_user vm kill F u
check "u's NVRAM is kept while it is stopped" test -s "$nvram"
kept=$(sha256sum <"$nvram")
check "vm start F u" vmgrctl_as_user vm start F u
out=$(vmgrctl_as_user wait F --timeout 150 2>&1) && rc=0 || rc=$?
check_eq "u is ready again" 0 "$rc"
check_eq "u booted again on the same NVRAM file (inode)" "$inode" "$(stat -c %i "$nvram" 2>&1)"
[ "$(sha256sum <"$nvram")" = "$kept" ] && same=same || same="changed by OVMF"
echo "# u's NVRAM content across the restart: $same"

# --- pvpanic: the driver is there, and a panic crashes the VM -----------------------------

out=$(vmgrctl_as_user exec F b -- sh -c 'ls /sys/bus/platform/drivers/pvpanic-mmio/' 2>&1)
check_match "b: pvpanic-mmio is bound to the ISA pvpanic device" "QEMU0001" "$out"

qemu_u=$(vmgr_qemu_pids F u)
t0=$(vmgr_now_ms)
# The exec never returns: the guest dies under it.
vmgr_as_argv "$VMGR_USER"
timeout 30 "${VMGR_AS_ARGV[@]}" "$VMGRCTL" exec F u -- sh -c 'echo c >/proc/sysrq-trigger' >/dev/null 2>&1 &
crashed_u() {
        vmgr_vm_in_state "$pu" crashed
}
vmgr_wait_until 20 crashed_u || true
t=$(($(vmgr_now_ms) - t0))
check_eq "sysrq c: u is crashed ($t ms)" crashed "$(vmgr_vm_prop "$pu" State)"
check_eq "u's LastError is the console's panic message" "guest kernel panicked: sysrq triggered crash" \
        "$(vmgr_vm_prop "$pu" LastError)"
qemu_gone() {
        [ -z "$(vmgr_qemu_pids "$@")" ]
}
check "u's QEMU ($qemu_u) is gone" vmgr_wait_until 15 qemu_gone F u
check_match "vmgrd logged the panic" "\\[F/u\\] .*guest kernel panicked: sysrq triggered crash" \
        "$(cat "$VMGR_TMP/vmgrd.log")"
out=$(busctl_as_user call org.vmgr1 "$pu" org.vmgr1.VM WaitReady t 60000000 2>&1) && rc=0 || rc=$?
check_match "WaitReady of the crashed u fails at once, naming the panic" "crashed: guest kernel panicked" "$out"
out=$(vmgrctl_as_user vm start F u 2>&1) && rc=0 || rc=$?
check_eq "Start brings u back ($out)" 0 "$rc"
check_eq "u's LastError is kept until a new failure" "guest kernel panicked: sysrq triggered crash" \
        "$(vmgr_vm_prop "$pu" LastError)"

# A hostile guest prints the panic line itself, with a byte that is not
# UTF-8, a control character and 1000 bytes of message: it crashes only
# itself, and LastError (a D-Bus string) stays valid and bounded.
out=$(busctl_as_user --timeout=200 call org.vmgr1 "$pu" org.vmgr1.VM WaitReady t 150000000 2>&1) && rc=0 || rc=$?
check_eq "u is ready again after its panic ($out)" 0 "$rc"
# The agent reports the address before init's last console lines: wait for
# them, so that the forged line below is not interleaved with them.
u_boots=$(vmgr_console_count "$vms_dir/u/console.log" '^vmgr-guest: starting \(init')
vmgr_wait_console "$vms_dir/u/console.log" '^vmgr-guest: ready' "$u_boots" 30 || true
# And for whatever else the guest prints after it (an address line came
# in the middle of the forged one once): a second without a new byte.
for ((i = 0; i < 20; i++)); do
        size=$(stat -c %s "$vms_dir/u/console.log")
        sleep 1
        [ "$(stat -c %s "$vms_dir/u/console.log")" = "$size" ] && break
done
timeout 30 "${VMGR_AS_ARGV[@]}" "$VMGRCTL" exec F u -- sh -c \
        "{ printf 'Kernel panic - not syncing: \\377\\001bad'; head -c 1000 /dev/zero | tr '\\000' A; echo; } >/dev/console" \
        >/dev/null 2>&1 &
vmgr_wait_until 20 crashed_u || true
check_eq "a forged panic line: u is crashed" crashed "$(vmgr_vm_prop "$pu" State)"
check_eq "its LastError: 200 bytes of message, plain ASCII" \
        "guest kernel panicked: ?bad$(printf 'A%.0s' $(seq 196))" "$(vmgr_vm_prop "$pu" LastError)"
check_eq "b is untouched by it" ready "$(vmgr_vm_prop "$pb" State)"

# pvpanic alone: with the console's log level at 0, panic() prints nothing
# (console_verbose() raises only a level that is not 0).
timeout 30 "${VMGR_AS_ARGV[@]}" "$VMGRCTL" exec F b -- \
        sh -c 'echo 0 >/proc/sys/kernel/printk; echo c >/proc/sysrq-trigger' >/dev/null 2>&1 &
crashed_b() {
        vmgr_vm_in_state "$pb" crashed
}
vmgr_wait_until 20 crashed_b || true
check_eq "sysrq c: b is crashed" crashed "$(vmgr_vm_prop "$pb" State)"
check_eq "b's LastError says pvpanic" "guest kernel panicked (pvpanic)" "$(vmgr_vm_prop "$pb" LastError)"
check "b's QEMU is gone" vmgr_wait_until 15 qemu_gone F b
check_fails "b's console has no panic line" grep -aq "Kernel panic" "$vms_dir/b/console.log"
qlog=$(find "$VMGR_TMP" -name 'F:b.log' -path '*qemu*' | head -n 1)
check_match "libvirt stopped b's QEMU for the panic (on_crash)" "reason=crashed" "$(cat "$qlog" 2>&1)"

# --- the console alone: a panic before any module loads, with a WaitReady pending ---------

espec='{"kernel": "'$kernel'", "initrd": "'$initrd'", "agent": true,
        "cmdline": "console=ttyS0 no_timer_check rdinit=/nonexistent panic=1"}'
gpath=$(vmgr_group_path F)
out=$(busctl_as_user --timeout=120 call org.vmgr1 "$gpath" org.vmgr1.Group AddVM ss e "$espec" 2>&1) && rc=0 || rc=$?
check_eq "AddVM e (panics early, reboots after 1 s)" 0 "$rc"
[ "$rc" -eq 0 ] || vmgr_not_ok "AddVM e output" "$out"
pe=$(vmgr_vm_path F e)
t0=$(vmgr_now_ms)
out=$(busctl_as_user --timeout=200 call org.vmgr1 "$pe" org.vmgr1.VM WaitReady t 150000000 2>&1) && rc=0 || rc=$?
t=$(($(vmgr_now_ms) - t0))
check_eq "WaitReady(150 s) of e fails" 1 "$rc"
check_match "... naming the panic" "VM 'e' crashed: guest kernel panicked: VFS: Unable to mount root fs" "$out"
if [ "$t" -lt 60000 ]; then
        vmgr_ok "... long before its timeout ($t ms)"
else
        vmgr_not_ok "... long before its timeout ($t ms)" "$out"
fi
crashed_e() {
        vmgr_vm_in_state "$pe" crashed
}
check "e is crashed once its QEMU is gone" vmgr_wait_until 15 crashed_e
check_match "e's LastError is the console's panic message" \
        "^guest kernel panicked: VFS: Unable to mount root fs on unknown-block" "$(vmgr_vm_prop "$pe" LastError)"
check "e's QEMU is gone" vmgr_wait_until 15 qemu_gone F e
sleep 2
check_eq "e was destroyed before it could reboot (one boot on its console)" 1 \
        "$(vmgr_console_count "$vms_dir/e/console.log" 'Linux version')"
out=$(busctl_as_user call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 60000000 2>&1) && rc=0 || rc=$?
check_match "Group.WaitReady with a crashed VM fails at once" "crashed" "$out"

# --- removal takes the NVRAM ------------------------------------------------------------

out=$(busctl_as_user --timeout=60 call org.vmgr1 "$gpath" org.vmgr1.Group RemoveVM s u 2>&1) && rc=0 || rc=$?
check_eq "RemoveVM u" 0 "$rc"
check_fails "u's NVRAM is gone" test -e "$nvram"
check "DeleteGroup F" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s F
check_empty "nothing of F is left" "$(vmgr_group_leftovers F u b e)"

vmgr_stop_vmgrd TERM
check_eq "SIGTERM: vmgrd exits 0" 0 "$VMGRD_STATUS"
vmgr_finish
