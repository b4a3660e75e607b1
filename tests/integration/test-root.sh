#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrd started as root runs as its service user: it connects to the bus as
# root, hands its directories to the user, becomes that user, and so nothing
# it starts (helper, dnsmasq, libvirtd, QEMU) runs as root. Root callers are
# still served. Everything lives in the namespaces this test makes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

vmgr_start_bus

# A missing service user is refused with a sentence that says what to do.
out=$("$VMGRD" --user vmgr-no-such-user --netadm "$VMGR_NETADM" --state-dir "$VMGR_TMP/rs" \
        --runtime-dir "$VMGR_TMP/rr" --cache-dir "$VMGR_TMP/rc" 2>&1) && rc=0 || rc=$?
check_eq "root vmgrd without its service user exits 1" 1 "$rc"
check_match "... and says how to create the user" "service user 'vmgr-no-such-user'.*useradd" "$out"

# The real one, as root, running as the test user.
"$VMGRD" --user "$VMGR_USER" --netadm "$VMGR_NETADM" --state-dir "$VMGR_TMP/root-state" \
        --runtime-dir "$VMGR_TMP/root-run" --cache-dir "$VMGR_TMP/root-cache" \
        </dev/null >>"$VMGR_TMP/vmgrd.log" 2>&1 &
VMGRD_PID=$!
for ((i = 0; i < 750; i++)); do
        busctl --user call org.vmgr1 /org/vmgr1 org.freedesktop.DBus.Peer Ping >/dev/null 2>&1 && break
        sleep 0.02
done
check "root vmgrd answers on the bus" busctl --user call org.vmgr1 /org/vmgr1 org.freedesktop.DBus.Peer Ping
check_eq "vmgrd itself runs as $VMGR_USER" "$VMGR_USER" "$(ps -o user= -p "$VMGRD_PID")"
check_eq "its directories belong to $VMGR_USER" "$VMGR_USER $VMGR_USER $VMGR_USER" \
        "$(stat -c %U "$VMGR_TMP/root-state" "$VMGR_TMP/root-run" "$VMGR_TMP/root-cache" | xargs)"

check "root creates a group with a VM" busctl --user --timeout=300 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager CreateGroup ss r '{"accelerator":"tcg","vms":[{"name":"a"}]}'
# Names derive from the uid vmgrd runs as after dropping root, the one the
# helper sees: the service user's, not 0.
vmgr_load_expected R r a
check_eq "the bridge derives from $VMGR_USER's uid" "s \"${R[bridge]}\"" \
        "$(busctl --user get-property org.vmgr1 /org/vmgr1/group/r org.vmgr1.Group Bridge 2>&1)"
check_match "the VM's TAP ${R[tap]} is $VMGR_USER's" "alias vmgr:$(id -u "$VMGR_USER"):r" \
        "$(ip -o link show dev "${R[tap]}" 2>&1)"

# Every descendant of vmgrd: none may run as root.
descendants() {
        local pid=$1 child
        for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
                echo "$child"
                descendants "$child"
        done
}
procs=$(for p in $(descendants "$VMGRD_PID"); do ps -o user=,comm= -p "$p" 2>/dev/null; done | sort -u)
check_match "vmgrd's children include dnsmasq, libvirtd and QEMU" \
        "dnsmasq.*libvirtd.*qemu-system|dnsmasq.*qemu-system.*libvirtd" "$(echo "$procs" | awk '{print $2}' | sort | xargs)"
check_empty "none of vmgrd's processes runs as root" "$(echo "$procs" | awk '$1 == "root"')"

check "root deletes the group" busctl --user --timeout=120 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager DeleteGroup s r
check_empty "nothing is left" "$(ip -o link show | grep -E ' (vbr|tap|ta4)-' || true)"

vmgr_finish
