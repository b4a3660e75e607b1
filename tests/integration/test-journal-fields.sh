#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrd's log in the journal: when its stderr is a journal stream (as under
# systemd, which says so in JOURNAL_STREAM), vmgrd logs natively, and every
# message about a group carries GROUP=, every one about a VM also VM=, with
# the message's PRIORITY and SYSLOG_IDENTIFIER=vmgrd. Against a private
# systemd-journald: it runs as root in the test's mount namespace, where
# /run is an overlay whose /run/systemd/journal (the sockets every journal
# client uses: sd_journal_send's path is fixed) and /run/log/journal (the
# journal's files, Storage=volatile) are the test's own; nothing reaches
# the host's journal. vmgrd's stderr is connected to it with systemd-cat,
# which does not say so in JOURNAL_STREAM (systemd 252): the wrapper sets it
# from the stream's device and inode, as systemd does for a service.
# One network-only group and one with a VM (under TCG, deleted as soon as
# it runs) are created and deleted; journalctl --directory then shows what
# vmgrd sent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

JOURNAL_DIR=/run/log/journal
JOURNALD_PID=
net_group=jnet
vm_group=jvm
vm=a

# The private journald, and /run as an overlay over the host's (its upper
# layer on the tmpfs lib.sh made for /etc's): removing a directory there
# hides it in this mount namespace alone.
journal_start() {
        local i
        mkdir "$VMGR_TMP/etc/run-upper" "$VMGR_TMP/etc/run-work"
        mount -t overlay overlay -o "lowerdir=/run,upperdir=$VMGR_TMP/etc/run-upper,workdir=$VMGR_TMP/etc/run-work" /run
        rm -rf /run/systemd/journal "$JOURNAL_DIR"
        mkdir -p -m 0755 /run/systemd/journal "$JOURNAL_DIR"
        # /etc is the test's overlay (lib.sh): the host's journald.conf is
        # not touched. Storage=volatile: never /var/log/journal.
        mkdir -p /etc/systemd/journald.conf.d
        cat >/etc/systemd/journald.conf.d/zz-vmgr-test.conf <<'EOF'
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitBurst=0
EOF
        # journald wants a cgroup file system (it reads its clients'
        # cgroups) and exits without one; lib.sh's fresh /sys has none.
        # (The mount covered by that /sys is still in mountinfo: look at
        # what is there.)
        [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] || mount -t cgroup2 cgroup2 /sys/fs/cgroup
        /lib/systemd/systemd-journald </dev/null >>"$VMGR_TMP/journald.log" 2>&1 &
        JOURNALD_PID=$!
        for ((i = 0; i < 500; i++)); do
                [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ] && return 0
                kill -0 "$JOURNALD_PID" 2>/dev/null || break
                sleep 0.01
        done
        echo "# error: systemd-journald did not start:" >&2
        sed 's/^/#   /' "$VMGR_TMP/journald.log" >&2
        return 1
}

# Before lib.sh's cleanup (which needs /etc's tmpfs free): journald gone,
# /run detached.
journal_cleanup() {
        if [ -n "$JOURNALD_PID" ]; then
                kill "$JOURNALD_PID" 2>/dev/null
                wait "$JOURNALD_PID" 2>/dev/null
        fi
        umount -l /run 2>/dev/null
        return 0
}
trap 'rc=$?; journal_cleanup; (exit $rc); vmgr_cleanup' EXIT

# vmgrd as lib.sh starts it, but with stdout and stderr on a journal stream
# (systemd-cat) and JOURNAL_STREAM naming it.
journal_start_vmgrd() {
        local i
        vmgr_mode_args
        vmgr_as_argv "$VMGR_USER"
        # shellcheck disable=SC2016 # expanded by the wrapper's shell
        "${VMGR_AS_ARGV[@]}" systemd-cat --identifier=vmgrd-stream \
                sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM && exec "$@"' sh \
                "$VMGRD" --netadm "$VMGR_NETADM" "${VMGR_MODE_ARGS[@]}" \
                --state-dir "$VMGR_TMP/state/vmgr" --runtime-dir "$VMGR_TMP/run/vmgr" </dev/null &
        VMGRD_PID=$!
        for ((i = 0; i < 750; i++)); do
                if vmgr_vmgrd_answers; then
                        [ "$VMGR_NET_MODE" != namespace ] || vmgr_holder_remember
                        return 0
                fi
                kill -0 "$VMGRD_PID" 2>/dev/null || break
                sleep 0.02
        done
        echo "# error: vmgrd did not answer on the bus; the journal:" >&2
        journalctl --directory="$JOURNAL_DIR" --no-pager -o short 2>&1 | tail -n 30 | sed 's/^/#   /' >&2
        return 1
}

# journal_entries MATCH...: the journal's entries matching (journalctl's field
# matches), as JSON, one a line.
journal_entries() {
        journalctl --directory="$JOURNAL_DIR" --no-pager -o json "$@" 2>/dev/null || true
}

# journal_has NAME PYTHON-EXPRESSION MATCH...: passes once an entry matching
# MATCH... satisfies the expression (on e, the entry's fields), within 10 s
# (journald writes what it receives at once, but vmgrd's last messages may
# still be on their way).
journal_has() {
        local name=$1 expr=$2 i
        shift 2
        for ((i = 0; i < 100; i++)); do
                if journal_entries "$@" | python3 -c '
import json, sys
expr = "(" + sys.argv[1] + ")"
for line in sys.stdin:
    e = json.loads(line)
    if eval(expr, {}, {"e": e}):
        sys.exit(0)
sys.exit(1)' "$expr"; then
                        vmgr_ok "$name"
                        return 0
                fi
                sleep 0.1
        done
        vmgr_not_ok "$name" "no entry matching $* with $expr; vmgrd's entries:" \
                "$(journalctl --directory="$JOURNAL_DIR" --no-pager -o json _PID="$VMGRD_PID" 2>&1 | tail -n 20)"
}

journal_start
vmgr_start_bus
journal_start_vmgrd
pid=$VMGRD_PID

# Its own messages, without a group.
journal_has "vmgrd's start-up message is in the journal, natively, with its identifier" \
        'e.get("SYSLOG_IDENTIFIER") == "vmgrd" and e.get("_TRANSPORT") == "journal" and "GROUP" not in e
            and "ready on the session bus" in e.get("MESSAGE", "")' _PID="$pid"
check_empty "nothing of vmgrd's own went to its stderr stream" \
        "$(journal_entries _PID="$pid" _TRANSPORT=stdout)"

# A network-only group, created and deleted.
check "create network-only group $net_group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager CreateGroup ss "$net_group" ""
check "delete group $net_group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager DeleteGroup s "$net_group"

info='e.get("PRIORITY") == "6" and e.get("SYSLOG_IDENTIFIER") == "vmgrd" and e.get("_TRANSPORT") == "journal"'
journal_has "GROUP=$net_group: 'Group is running', priority info" "$info and \"VM\" not in e" \
        _PID="$pid" GROUP="$net_group" MESSAGE="Group is running"
journal_has "GROUP=$net_group: its dnsmasq is ready, priority info" \
        "$info and e[\"MESSAGE\"].startswith(\"dnsmasq is ready\")" _PID="$pid" GROUP="$net_group"
journal_has "GROUP=$net_group: 'Group removed', priority info" "$info" \
        _PID="$pid" GROUP="$net_group" MESSAGE="Group removed"
# The message itself is the plain text: the group's name is in its field,
# not put before the message as on stderr.
check_empty "no message names the group in brackets" \
        "$(journal_entries _PID="$pid" | grep -F "[$net_group" || true)"

# A group with a VM, deleted as soon as CreateGroup returns (QEMU running).
check "create group $vm_group with VM $vm" busctl_as_user --timeout=120 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager CreateGroup ss "$vm_group" "{\"vms\":[{\"name\":\"$vm\",\"warm\":false}]}"
check "delete group $vm_group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager DeleteGroup s "$vm_group"
journal_has "GROUP=$vm_group VM=$vm: 'VM is running', priority info" "$info" \
        _PID="$pid" GROUP="$vm_group" VM="$vm" MESSAGE="VM is running"
journal_has "GROUP=$vm_group: its own messages carry no VM=" "$info and \"VM\" not in e" \
        _PID="$pid" GROUP="$vm_group" MESSAGE="Group removed"
check_empty "every entry with VM= has GROUP= too" \
        "$(journal_entries _PID="$pid" VM="$vm" | grep -v "\"GROUP\":\"$vm_group\"" || true)"

# Every entry of vmgrd's has a PRIORITY that is a syslog level (vmgrd's
# log levels are syslog's).
check_empty "every entry's PRIORITY is a syslog level" \
        "$(journal_entries _PID="$pid" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("PRIORITY") not in [str(i) for i in range(8)]:
        print(e.get("PRIORITY"), e.get("MESSAGE"))')"

# Sanitizer reports go to stderr, here the journal stream: vmgr_finish
# looks for them in a log file this vmgrd does not have.
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
check_empty "no sanitizer reports on vmgrd's stderr stream" \
        "$(journalctl --directory="$JOURNAL_DIR" --no-pager -o cat SYSLOG_IDENTIFIER=vmgrd-stream 2>/dev/null |
                grep -E -A 20 'Sanitizer|runtime error:' || true)"
vmgr_finish
