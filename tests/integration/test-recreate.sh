#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A group deleted and made again at once, while vmgrd runs a program for
# another group (vmgr-mkguest building the default guest, for seconds):
# every CreateGroup succeeds. The process that supervises such a program
# is a copy of vmgrd that never execs; it used to keep every fd vmgrd had
# when it was made, the listening socket of a group's file server among
# them, so the group made again could not listen ("cannot start the file
# server", AddressConflict) until the program ended.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

ctl() {
        vmgrctl_as_user "$@"
}

# x exists before vmgrd starts the program, so the supervisor's copy of
# vmgrd's fds would hold x's file server socket.
check "CreateGroup x" ctl -q group create x
# The first VM of the test's fresh cache: vmgrd builds the default guest.
ctl -q group create y --vm a >"$VMGR_TMP/y.out" 2>&1 &
maker=$!
check "vmgr-mkguest runs for group y" vmgr_wait_until 30 pgrep -u "$VMGR_USER" -f vmgr-mkguest
failed=() seen=0
for i in 1 2 3 4; do
        pgrep -u "$VMGR_USER" -f vmgr-mkguest >/dev/null && seen=$((seen + 1))
        out=$(ctl group delete x 2>&1) || failed+=("delete $i: $out")
        out=$(ctl -q group create x 2>&1) || failed+=("create $i: $out")
done
check_eq "every DeleteGroup and CreateGroup of x succeeds" "" "$(printf '%s\n' "${failed[@]}" | sed '/^$/d')"
check_match "vmgr-mkguest ran during the re-creates ($seen of 4)" '^[1-4]$' "$seen"
wait "$maker" || true
check "group y is ready" ctl wait y --timeout 120
check "group delete y" ctl group delete y
check "group delete x" ctl group delete x
vmgr_finish
