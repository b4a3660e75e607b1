#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Spec "journal": "gatewayd" wired into vmgrd, with a real VM (the default
# guest under TCG). The default guest has no systemd: a few lines of busybox
# sh behind `nc -ll -p 19531` play its systemd-journal-gatewayd (entries
# from a file, resumed after the cursor a Range header names, then followed
# with tail -f). Checked:
#   - the guest's entries appear in the group's log as
#     "[vm=a guest] journal: app[7]: entry N";
#   - vmgrd connects from the group's Logs6 address (in the group's network
#     namespace in namespace mode);
#   - the server stopped, entries added, the server back: vmgrd resumes from
#     its cursor; a vmgrd killed with SIGKILL and a new one that adopts the
#     group resume from the cursor in the state file: every entry once;
#   - Collect's guest.log has the journal lines;
#   - nothing leaks (ASan), the group deletes cleanly.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

outdir=$VMGR_TMP/out
install -d -o "$VMGR_USER" "$outdir"

check "CreateGroup g (a with \"journal\": \"gatewayd\")" \
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss g \
        '{"vms":[{"name":"a","journal":"gatewayd"}]}'
g=$(vmgr_group_path g)
check "Group.WaitReady g" busctl_as_user --timeout=150 call org.vmgr1 "$g" org.vmgr1.Group WaitReady t 140000000

# The guest's stand-in for gatewayd: entry N is lines 5N-4..5N of /tmp/j,
# so "after cursor s=vmgrtest;i=N" starts at line 5N+1.
gw_script='n=0
while read -r line; do
        echo "$line" >>/tmp/requests
        case "$line" in
        Range:*) n=$(echo "$line" | sed -n "s/.*;i=\([0-9]*\):.*/\1/p") ;;
        "$(printf "\r")" | "") break ;;
        esac
done
printf "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.fdo.journal\r\n\r\n"
exec tail -n +$((5 * ${n:-0} + 1)) -f /tmp/j'
check "the guest gets its journal server" vmgrctl_as_user exec g a -- \
        sh -c "cat >/tmp/gw.sh && chmod +x /tmp/gw.sh && : >/tmp/j" <<<"$gw_script"

# add_entries FIRST LAST: append entries FIRST..LAST to the guest's journal.
add_entries() {
        vmgrctl_as_user exec g a -- sh -c \
                'i='"$1"'; while [ $i -le '"$2"' ]; do printf "__CURSOR=s=vmgrtest;i=%d\nSYSLOG_IDENTIFIER=app\n_PID=7\nMESSAGE=entry %d\n\n" $i $i >>/tmp/j; i=$((i + 1)); done'
}
gw_start() {
        vmgrctl_as_user exec g a -- sh -c 'nc -ll -p 19531 -e /tmp/gw.sh </dev/null >/dev/null 2>&1 & echo $! >/tmp/nc.pid'
}
gw_stop() {
        vmgrctl_as_user exec g a -- sh -c 'kill $(cat /tmp/nc.pid); killall tail; true'
}
logs_have() {
        vmgrctl_as_user logs g a | grep -qxF -- "$1"
}
journal_lines() {
        vmgrctl_as_user logs g a | grep -F '[vm=a guest] journal: app[7]: entry ' || true
}
expected() {
        local i
        for ((i = $1; i <= $2; i++)); do
                echo "[vm=a guest] journal: app[7]: entry $i"
        done
}

check "entries 1-20 in the guest's journal" add_entries 1 20
check "the guest's journal server starts" gw_start
check "the guest's entries arrive in the group's log" \
        vmgr_wait_until 30 logs_have "[vm=a guest] journal: app[7]: entry 20"

logs6=$(vmgr_group_prop "$g" Logs6)
check_match "vmgrd's connection comes from the group's Logs6 address" "\\[$logs6\\]:[0-9]+ +\\[" \
        "$(vmgr_netns_exec ss -Htn 'dport = :19531')"

check "the guest's journal server stops" gw_stop
check "entries 21-30 meanwhile" add_entries 21 30
sleep 2 # vmgrd's attempts are refused meanwhile
check "the guest's journal server starts again" gw_start
check "vmgrd resumes and gets the entries written meanwhile" \
        vmgr_wait_until 30 logs_have "[vm=a guest] journal: app[7]: entry 30"
check_match "vmgrd resumed after the last cursor it had" "Range: entries=s=vmgrtest;i=20:1:" \
        "$(vmgrctl_as_user exec g a -- cat /tmp/requests)"

# The cursor reaches the state file within 5 s of the last entry.
sleep 6
vmgr_stop_vmgrd KILL
vmgr_start_vmgrd
check "entries 31-40 while vmgrd was killed" add_entries 31 40
check "the new vmgrd adopts g and resumes from the saved cursor" \
        vmgr_wait_until 40 logs_have "[vm=a guest] journal: app[7]: entry 40"
sleep 1 # anything repeated would come now
check_eq "every entry exactly once, in order" "$(expected 1 40)" "$(journal_lines)"

check "vmgrctl group collect g" vmgrctl_as_user group collect g "$outdir/c1"
check "guest.log in the bundle has the journal lines" grep -qxF "journal: app[7]: entry 40" "$outdir/c1/vms/a/guest.log"

check "DeleteGroup g" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s g
vmgr_finish
