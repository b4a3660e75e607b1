#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrctl's installed bash completion against a real vmgrd, as the test
# user: group names (one with a character its object path escapes), VM
# names (escaped in their paths too) in every place a VM is asked for; and
# with no vmgrd on the bus, before it started and after it stopped, no
# names, at once, without a word on stderr. Two groups, one of them with
# two VMs that boot a kernel without its initramfs (cheap: no guest is
# needed, only the names).

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

completion=$VMGR_DESTDIR/usr/share/bash-completion/completions/vmgrctl
check "the completion is installed where bash-completion looks" test -f "$completion"

# complete_as_user WORD...: what completing the last WORD of "vmgrctl WORD..."
# offers, sorted, one a line, in a fresh bash of the test user; the time it
# took goes to $VMGR_TMP/ms and its stderr to $VMGR_TMP/err.
complete_as_user() {
        local start
        start=$(date +%s%N)
        vmgr_as_user bash --norc --noprofile -c '
                source "$0"
                COMP_WORDS=(vmgrctl "$@")
                COMP_CWORD=$#
                _vmgrctl
                [ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}" | sort
        ' "$completion" "$@" 2>"$VMGR_TMP/err"
        echo $((($(date +%s%N) - start) / 1000000)) >"$VMGR_TMP/ms"
}

# check_nothing LABEL WORD...: no names, no stderr, under 2 s.
check_nothing() {
        local label=$1 out
        shift
        out=$(complete_as_user "$@")
        check_empty "$label: nothing offered for '$*'" "$out"
        check_empty "$label: nothing on stderr" "$(cat "$VMGR_TMP/err")"
        check "$label: done within 2 s ($(cat "$VMGR_TMP/ms") ms)" test "$(cat "$VMGR_TMP/ms")" -lt 2000
}

vmgr_start_bus
check_nothing "bus without vmgrd" group show ''
check_nothing "bus without vmgrd" vm show web ''

vmgr_start_vmgrd

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)
check "a network-only group" vmgrctl_as_user group create -q web
check "a group with two VMs" vmgrctl_as_user group create -q db.1 \
        --vm "a:kernel=$kernel,memory=128,no-agent" --vm "x_1.y:kernel=$kernel,memory=128,no-agent"

groups=$'db.1\nweb'
vms=$'a\nx_1.y'
check_eq "group show: the groups" "$groups" "$(complete_as_user group show '')"
check_empty "nothing on stderr" "$(cat "$VMGR_TMP/err")"
check_eq "group delete w: web" web "$(complete_as_user group delete w)"
check_eq "vm list: the groups" "$groups" "$(complete_as_user vm list '')"
check_eq "logs: the groups" "$groups" "$(complete_as_user logs '')"
check_eq "vm show db.1: its VMs" "$vms" "$(complete_as_user vm show db.1 '')"
check_eq "console db.1: its VMs" "$vms" "$(complete_as_user console db.1 '')"
check_eq "exec db.1 x: x_1.y" x_1.y "$(complete_as_user exec -e A=1 db.1 x)"
check_eq "snapshot create db.1: its VMs" "$vms" "$(complete_as_user snapshot create db.1 '')"
check_empty "vm show web: no VMs" "$(complete_as_user vm show web '')"
check_empty "vm show nosuch: nothing" "$(complete_as_user vm show nosuch '')"
check_empty "vm show nosuch: nothing on stderr" "$(cat "$VMGR_TMP/err")"
check_empty "snapshot delete: no snapshots" "$(complete_as_user snapshot delete '')"
# Completing never starts anything: still the same two groups.
check_eq "the groups are as they were" "$groups" "$(vmgrctl_as_user -q group list | awk '{print $1}' | sort)"

check "delete db.1" vmgrctl_as_user group delete db.1
check "delete web" vmgrctl_as_user group delete web
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
check_nothing "vmgrd stopped" group show ''
check_nothing "vmgrd stopped" vm show db.1 ''

vmgr_finish
