#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A group's logs and evidence, with real vmgrd, libvirtd and QEMU (TCG)
# booting the default guest, inside this test's namespaces:
#   - FollowLogs / vmgrctl logs: console lines of every VM (ANSI escapes and
#     carriage returns stripped), guest kernel lines forwarded by the agent,
#     vmgrd's own lines about the group, each prefixed with where it came
#     from; a VM filter; a follower (-f) sees new lines as they come and
#     ends when the group is deleted; bad options are refused;
#   - group show --timings: the group's and each VM's stages;
#   - Group.Collect and vmgrctl group collect: the bundle's files and their
#     contents; the spec's collect_on_delete writes one before deletion;
#   - nothing is left behind.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

# Directories the test user (vmgrd's user) may write into.
outdir=$VMGR_TMP/out
install -d -o "$VMGR_USER" "$outdir"

spec='{"vms":[{"name":"a","ipv4":true},{"name":"b"}],"collect_on_delete":"'"$outdir"'/on-delete"}'
check "CreateGroup g (a with IPv4, b; collect_on_delete)" \
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss g "$spec"
g=$(vmgr_group_path g)
a=$(vmgr_vm_path g a)

# A follower from the start: it must see everything, old and new.
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" "$VMGRCTL" logs -f g >"$outdir/follow.txt" 2>"$outdir/follow.err" </dev/null &
follower=$!

check "Group.WaitReady g" busctl_as_user --timeout=150 call org.vmgr1 "$g" org.vmgr1.Group WaitReady t 140000000

# Something on a's console in colour with a carriage return, and a line in its kernel log.
check "VM a writes a coloured line to its console" vmgrctl_as_user exec g a -- \
        sh -c 'printf "\033[1;31mRED-MARK\033[0m done\r\n" >/dev/console'
check "VM a writes a line to its kernel log" vmgrctl_as_user exec g a -- sh -c 'echo KMSG-MARK >/dev/kmsg'

logs_have() {
        vmgrctl_as_user logs g | grep -qF -- "$1"
}
check "the console line arrives, stripped" vmgr_wait_until 20 logs_have "[vm=a console] RED-MARK done"
check "the kernel log line arrives through the agent" vmgr_wait_until 20 logs_have "[vm=a guest] kernel: KMSG-MARK"

logs=$(vmgrctl_as_user logs g)
check_match "console lines of b" $'\n\\[vm=b console\\] ' "$logs"
check_match "the guest's boot log (kernel) of b" $'\n\\[vm=b guest\\] kernel: Linux version' "$logs"
check_match "vmgrd's lines about the group" $'\n\\[vmgrd\\] Group is running' "$logs"
check_match "vmgrd's lines about a VM" $'\n\\[vm=a vmgrd\\] ' "$logs"
check_empty "no escape or carriage return anywhere" "$(printf '%s' "$logs" | grep -n $'[\e\r]' | head -3)"
check_empty "every line has a prefix" "$(printf '%s\n' "$logs" | grep -v '^\[' | head -3)"
check_empty "vmgrctl logs g b: only b's lines" "$(vmgrctl_as_user logs g b | grep -v '^\[vm=b ' | head -3)"

follower_has() {
        grep -qF -- "$1" "$outdir/follow.txt"
}
check "the follower saw the console line" vmgr_wait_until 10 follower_has "[vm=a console] RED-MARK done"
check "the follower saw the history too" follower_has "[vmgrd] Group is running"
vmgrctl_as_user exec g b -- sh -c 'echo LATE-MARK >/dev/console' >/dev/null
check "the follower sees a new line" vmgr_wait_until 20 follower_has "[vm=b console] LATE-MARK"
check "the follower is still following" kill -0 "$follower"

check_match "FollowLogs refuses an unknown option" "unknown option" \
        "$(busctl_as_user call org.vmgr1 "$g" org.vmgr1.Group FollowLogs 'a{sv}' 1 bogus b true 2>&1)"
check_match "FollowLogs refuses an unknown VM" "has no VM 'zz'" \
        "$(busctl_as_user call org.vmgr1 "$g" org.vmgr1.Group FollowLogs 'a{sv}' 1 vms as 1 zz 2>&1)"
check_match "FollowLogs refuses an unknown source" "unknown source" \
        "$(busctl_as_user call org.vmgr1 "$g" org.vmgr1.Group FollowLogs 'a{sv}' 1 sources as 1 serial 2>&1)"
check_match "FollowLogs without history or follow: an empty stream" '^h [0-9]+$' \
        "$(busctl_as_user call org.vmgr1 "$g" org.vmgr1.Group FollowLogs 'a{sv}' 2 from_start b false follow b false 2>&1)"

# Readers that go away while vmgrd writes to them: an EPIPE for vmgrd, not its end.
check_eq "exec's reader goes away mid-stream (yes | head)" y \
        "$(vmgr_as_user "$VMGRCTL" exec g a -- yes | head -n 1)"
# The follower learns that head went away when it writes its next line: a
# quiet group (the default guest's console is quiet now) must be given one.
tick_lines() {
        for _ in 1 2 3 4 5 6 7 8 9 10; do
                sleep 1
                vmgrctl_as_user exec g b -- sh -c 'echo TICK >/dev/console' >/dev/null 2>&1 || :
        done
}
tick_lines &
tick_pid=$!
check_eq "a log follower goes away (logs -f | head)" "[vmgrd] dnsmasq is ready" \
        "$(vmgr_as_user "$VMGRCTL" logs -f g | head -n 1 | sed 's/ (pid.*//')"
kill "$tick_pid" 2>/dev/null || :
wait "$tick_pid" 2>/dev/null || :
vmgrctl_as_user exec g b -- sh -c 'echo AFTER-PIPES >/dev/console' >/dev/null
check "vmgrd lives on and logs on" vmgr_wait_until 20 logs_have "[vm=b console] AFTER-PIPES"

# --- timings ---------------------------------------------------------------------

timings=$(vmgrctl_as_user group show g --timings)
echo "$timings" | sed 's/^/# /'
check_match "show --timings: the group's stages" "network_created +dnsmasq_ready +vms_started +running" "$timings"
check_match "show --timings: a row for g with numbers" $'\ng +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+' "$timings"
# a has no ready_probe, ready_probe_host or ready_console: "-" in those columns;
# restored and identity_applied only when it was a warm start.
check_match "show --timings: a row for a, ready" \
        $'\na +[0-9.]+ +([0-9.]+|-) +[0-9.]+ +([0-9.]+|-) +[0-9.]+ +[0-9.]+ +- +- +- +[0-9.]+' "$timings"
check_match "show --timings --json" '"vms":' "$(vmgrctl_as_user --json group show g --timings)"
check_match "vm show has the VM's Timings" 'Timings: +\{"qemu_started":[0-9]+' "$(vmgrctl_as_user vm show g a)"
check_match "group show --json has the group's Timings as an object" '"Timings":\{"network_created":[0-9]+' \
        "$(vmgrctl_as_user --json group show g)"
check_match "Group.Timings" '"network_created"' \
        "$(busctl_as_user --json=short get-property org.vmgr1 "$g" org.vmgr1.Group Timings)"

# --- Collect ---------------------------------------------------------------------

check "vmgrctl group collect g" vmgrctl_as_user group collect g "$outdir/c1"
c=$outdir/c1
for f in group.json timings.json group.log vmgrd.log dnsmasq.log dnsmasq.leases \
        vms/a/console.log vms/a/console.raw vms/a/guest.log vms/a/domain.xml vms/b/console.log vms/b/guest.log; do
        check "bundle has $f" test -s "$c/$f"
done
check_eq "group.json names the group" g "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$c/group.json")"
check_eq "timings.json has the group's and a's stages" "True True" \
        "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("running" in d["group"], "ready" in d["vms"]["a"])' "$c/timings.json")"
check "the bundle's console log of a has the line, stripped" grep -qx 'RED-MARK done' "$c/vms/a/console.log"
check "the raw console of a still has the escape" grep -qF $'\e[1;31mRED-MARK' "$c/vms/a/console.raw"
check "the bundle's guest log of a has the kernel line" grep -qx 'kernel: KMSG-MARK' "$c/vms/a/guest.log"
check "domain.xml is a's domain" grep -qF '<name>g:a</name>' "$c/vms/a/domain.xml"
check "vmgrd.log has vmgrd's lines only" test -z "$(grep -v -e '^\[vmgrd\]' -e '^\[vm=[a-z]* vmgrd\]' "$c/vmgrd.log")"
check "dnsmasq.leases has a's lease" grep -qF "$(vmgr_vm_prop "$a" IPv4)" "$c/dnsmasq.leases"
check_match "Collect refuses a relative directory" "absolute path" \
        "$(busctl_as_user call org.vmgr1 "$g" org.vmgr1.Group Collect s rel/dir 2>&1)"
check_match "Collect says why it cannot write" "cannot create" \
        "$(busctl_as_user call org.vmgr1 "$g" org.vmgr1.Group Collect s /proc/nope/x 2>&1)"

# --- delete: collect_on_delete, the follower ends ---------------------------------------

check "DeleteGroup g" busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s g
check "collect_on_delete wrote a bundle" test -s "$outdir/on-delete/vms/b/console.log"
check "the bundle was written before the teardown" grep -qF "Group is running" "$outdir/on-delete/vmgrd.log"
follower_gone() {
        ! kill -0 "$follower" 2>/dev/null
}
check "the follower ends with the group" vmgr_wait_until 10 follower_gone
wait "$follower" && rc=0 || rc=$?
check_eq "vmgrctl logs -f exits 0 at the end of the stream" 0 "$rc"

check_empty "nothing left behind (but vmgrd's libvirtd, which runs until vmgrd exits)" "$(vmgr_leftovers | grep -v ' libvirtd$')"
vmgr_finish
