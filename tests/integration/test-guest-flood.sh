#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Hostile guests cannot grow vmgrd's memory or the host's disk. Real vmgrd,
# libvirtd and QEMU (TCG) in this test's namespaces; the default guest's
# kernel and initramfs with tests/fake-agent.c in place of vmgr-agent
# (vmgr.fake_agent=MODE on the kernel command line picks the attack), and
# the default guest itself for a console flood:
#   - a guest that floods PINGs and never reads its port, and one that
#     floods agent announcements: vmgrd's RSS stays flat over 10 s of it,
#     each VM's LastError says why its session was dropped, vmgrd answers;
#   - a guest that floods its serial console: console.log is rotated at
#     its cap (console.log.1 keeps the previous part), the console lines in
#     group.log stay within the VM's rate, a line says how much was
#     dropped, `vmgrctl console -f` follows across the rotation;
#   - a guest that floods LOG lines: the same for guest lines;
#   - a guest whose LOG lines carry terminal escapes and control
#     characters: they reach group.log stripped.
# Prints vmgrd's RSS before, during and after the floods, and the console
# bytes written, kept and dropped.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools

FAKE=$VMGR_BUILD_DIR/tests/vmgr-fake-agent
MKGUEST=$VMGR_DESTDIR/usr/bin/vmgr-mkguest
[ -x "$MKGUEST" ] || MKGUEST=$VMGR_BUILD_DIR/guest/vmgr-mkguest
if [ ! -x "$FAKE" ]; then
        echo "# error: build tests/vmgr-fake-agent first" >&2
        exit 1
fi

vmgr_enter_netns "$@"
T=$VMGR_TMP
install -d -o "$VMGR_USER" "$T/cache" "$T/out"

if ! out=$(vmgr_as_user "$MKGUEST" --output-dir "$T/cache" --print-path \
        --extra "$FAKE:/usr/bin/vmgr-agent" 2>"$T/mkguest.err"); then
        vmgr_not_ok "vmgr-mkguest builds a guest with the fake agent" "$(cat "$T/mkguest.err")"
        vmgr_finish
fi
read -r KERNEL INITRD <<<"$out"
vmgr_ok "vmgr-mkguest builds a guest with the fake agent"

vmgr_start_bus
vmgr_start_vmgrd

# vmgrd's resident memory in KiB.
rss_kib() {
        awk '/^VmRSS:/ { print $2 }' "/proc/$VMGRD_PID/status"
}

# A VM spec booting the fake agent in mode $2, named $1, with more keys in $3.
fake_vm() {
        echo '{"name":"'"$1"'","kernel":"'"$KERNEL"'","initrd":"'"$INITRD"'","cmdline":"console=ttyS0 vmgr.fake_agent='"$2"'","agent":true'"${3:+,$3}"'}'
}

# True if the console log of VM $1 (object path) has a line with $2.
console_has() {
        grep -qF -- "$2" "$(vmgr_vm_prop "$1" ConsoleLog)" 2>/dev/null
}

# True if vmgrd answers a call on the bus within 2 s.
vmgrd_answers_fast() {
        vmgr_as_user timeout 2 busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups >/dev/null
}

# group_log_has GROUP [VM] GREP-ARGS...: whether the group's log has a
# matching line (through a file: grep -q on a pipe would end vmgrctl early).
group_log_has() {
        vmgrctl_as_user logs "$1" ${2:+"$2"} >"$T/out/logs.txt" && grep -a "${@:3}" "$T/out/logs.txt" >/dev/null
}

# --- memory: PING flood, announcement flood ---------------------------------------

rss_before=$(rss_kib)
spec='{"vms":['"$(fake_vm p ping-flood)"','"$(fake_vm h hello-flood)"']}'
check "CreateGroup m (p floods PINGs, h floods announcements)" \
        busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss m "$spec"
p=$(vmgr_vm_path m p)
h=$(vmgr_vm_path m h)
check "p's fake agent answered vmgrd and floods PINGs" \
        vmgr_wait_until 90 console_has "$p" "vmgr-fake-agent: flooding PINGs"
check "h's fake agent floods announcements" \
        vmgr_wait_until 60 console_has "$h" "vmgr-fake-agent: flooding announcements"

rss_start=$(rss_kib)
rss_max=$rss_start
slow=0
for ((i = 0; i < 20; i++)); do
        sleep 0.5
        r=$(rss_kib)
        [ "$r" -gt "$rss_max" ] && rss_max=$r
        vmgrd_answers_fast || slow=$((slow + 1))
done
rss_end=$(rss_kib)
echo "# vmgrd RSS: before the group ${rss_before} KiB, flood start ${rss_start} KiB," \
        "max during 10 s ${rss_max} KiB, after ${rss_end} KiB"
check "vmgrd's RSS grew by less than 20 MiB during 10 s of flooding ($((rss_max - rss_start)) KiB)" \
        test $((rss_max - rss_start)) -lt $((20 * 1024))
check_eq "vmgrd answered every call within 2 s during the flood" 0 "$slow"

lasterror_has() {
        [[ "$(vmgr_vm_prop "$1" LastError)" == *"$2"* ]]
}
check "p's LastError says it did not read its port" \
        vmgr_wait_until 10 lasterror_has "$p" "did not read its agent port"
check "h's LastError says its agent restarted too often" \
        vmgr_wait_until 10 lasterror_has "$h" "restarted its session more than"
echo "# p: $(vmgr_vm_prop "$p" LastError)"
echo "# h: $(vmgr_vm_prop "$h" LastError)"
check "the group's log says why p's session was dropped" group_log_has m p -E \
        "^\\[vm=p vmgrd\\] (warning: )?Dropped the guest agent's session: the guest did not read its agent port"
check "vmgrd still answers: vm show m p" vmgrctl_as_user vm show m p
check "DeleteGroup m" busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s m
echo "# vmgrd RSS after deleting the group: $(rss_kib) KiB"

# --- disk: console flood, LOG flood, escapes ----------------------------------------

# Small limits, so that floods of a few seconds under TCG pass them.
limits='"log_rate_kib":8,"log_burst_kib":64,"console_log_max_kib":256'
spec='{"vms":[{"name":"c",'"$limits"'},'"$(fake_vm l log-flood "$limits")"','"$(fake_vm e log-escape)"']}'
t_create=$(vmgr_now_ms)
check "CreateGroup d (c: default guest, l floods LOG lines, e sends escapes)" \
        busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss d "$spec"
c=$(vmgr_vm_path d c)
check "VM d/c is ready" busctl_as_user --timeout=150 call org.vmgr1 "$c" org.vmgr1.VM WaitReady t 140000000

# Escapes: the line arrives, stripped of everything a terminal would act on.
check "e's LOG line arrives" vmgr_wait_until 60 group_log_has d e -F "[vm=e guest] kernel: ESC-DONE"
vmgrctl_as_user logs d e >"$T/out/e.log"
check "e's LOG line is stripped of escapes and controls" \
        grep -qxF $'[vm=e guest] kernel: ESC-MARK title red bell tab\tend' "$T/out/e.log"
vmgrctl_as_user logs d >"$T/out/d.log"
check_empty "no escape, BEL or CR in the group's log" "$(grep -an $'[\e\a\r]' "$T/out/d.log" | head -3 | cat -v)"
# A guest's ERROR reaches the caller of Run as a sentence, not as escapes.
err=$(busctl_as_user call org.vmgr1 "$(vmgr_vm_path d e)" org.vmgr1.VM Run asayt 1 true 0 10000000 2>&1) || true
check_match "e's ERROR reaches Run's caller" "ERR-MARK title red end" "$err"
check_empty "... stripped of escapes and controls" "$(printf '%s' "$err" | grep -an $'[\e\a\r]' | cat -v)"

# A console follower from before the flood must follow across the rotation.
console=$(vmgr_vm_prop "$c" ConsoleLog)
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" "$VMGRCTL" console d c -f >"$T/out/console-f.txt" 2>"$T/out/console-f.err" </dev/null &
console_follower=$!

c_console_bytes() {
        vmgrctl_as_user logs d c | grep -a '^\[vm=c console\] ' | wc -c
}
before=$(c_console_bytes)
t0=$(vmgr_now_ms)
line=CONSOLE-FLOOD-$(printf 'x%.0s' {1..60})
# The guest counts what it wrote to the console.
written=$(vmgrctl_as_user exec d c -- sh -c "timeout 10 yes $line | tee /dev/ttyS0 | wc -c" 2>/dev/null | tr -d ' \r')
t1=$(vmgr_now_ms)
check "vmgrd answers right after the console flood" vmgrd_answers_fast
check "a line says how much console output was dropped" vmgr_wait_until 5 group_log_has d c -x \
        '\[vm=c vmgrd\] dropped [0-9]* bytes ([0-9]* lines) of console output (rate limit)'
after=$(c_console_bytes)
kept=$((after - before))
dropped=$(vmgrctl_as_user logs d c | sed -n 's/^\[vm=c vmgrd\] dropped \([0-9]*\) bytes.*console output.*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')
secs=$(((t1 - t0 + 999) / 1000 + 1))
echo "# console flood: the guest wrote ${written:-?} bytes in $(((t1 - t0)))ms;" \
        "group.log kept ${kept} bytes of c's console lines, dropped ${dropped} bytes (reported)"
check "the guest wrote more than the console cap (${written:-0} bytes)" test "${written:-0}" -gt $((256 * 1024))
check "c's console lines in group.log stay within burst + rate ($kept <= $((64 + 8 * secs)) KiB)" \
        test "$kept" -le $(((64 + 8 * secs) * 1024 + 8192))
size=$(stat -c %s "$console")
check "console.log stays near its cap of 256 KiB ($size bytes)" test "$size" -le $((512 * 1024))
check "console.log.1 holds the part before the last rotation" test -s "$console.1"
check "console.log.1 stays near the cap ($(stat -c %s "$console.1") bytes)" \
        test "$(stat -c %s "$console.1")" -le $((512 * 1024))
check_eq "the console files are owned by vmgrd's user" "$VMGR_USER $VMGR_USER" \
        "$(stat -c %U "$console") $(stat -c %U "$console.1")"

vmgrctl_as_user exec d c -- sh -c 'sleep 1; echo AFTER-ROTATION-MARK >/dev/ttyS0' >/dev/null
follower_has() {
        grep -qF -- "$1" "$T/out/console-f.txt"
}
check "vmgrctl console -f follows across the rotation" vmgr_wait_until 15 follower_has AFTER-ROTATION-MARK
console_shows() {
        vmgrctl_as_user console d c | grep -qF -- "$1"
}
check "vmgrctl console shows the console after the rotation" console_shows AFTER-ROTATION-MARK
# Evidence keeps both parts of a rotated console.
check "group collect" vmgrctl_as_user group collect d "$T/evidence"
check "the bundle has the console's part before the rotation (console.raw.1)" \
        cmp -s "$console.1" "$T/evidence/vms/c/console.raw.1"
kill "$console_follower" 2>/dev/null || true
wait "$console_follower" 2>/dev/null || true

# LOG flood: within the rate since the VM was made, and a line says what was dropped.
check "a line says how many of l's guest lines were dropped" vmgr_wait_until 30 group_log_has d l -x \
        '\[vm=l vmgrd\] dropped [0-9]* bytes ([0-9]* lines) of guest log lines (rate limit)'
l_bytes=$(vmgrctl_as_user logs d l | grep -a '^\[vm=l guest\] ' | wc -c)
secs=$((($(vmgr_now_ms) - t_create) / 1000 + 1))
l_dropped=$(vmgrctl_as_user logs d l | sed -n 's/^\[vm=l vmgrd\] dropped \([0-9]*\) bytes.*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')
echo "# LOG flood over ${secs} s: group.log kept ${l_bytes} bytes of l's guest lines, dropped ${l_dropped} bytes"
check "l's guest lines in group.log stay within burst + rate ($l_bytes <= $((64 + 8 * secs)) KiB)" \
        test "$l_bytes" -le $(((64 + 8 * secs) * 1024 + 8192))
check "vmgrd still answers: vm show d l" vmgrctl_as_user vm show d l

check "DeleteGroup d" busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s d
echo "# vmgrd RSS at the end: $(rss_kib) KiB"
check_empty "nothing left behind (but vmgrd's libvirtd, which runs until vmgrd exits)" \
        "$(vmgr_leftovers | grep -v ' libvirtd$')"
vmgr_finish
