#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrd started as root runs as its service user: it hands its directories
# to the user, becomes that user, and only then connects to the bus, so
# nothing it starts (helper, dnsmasq, libvirtd, QEMU) runs as root and the
# bus sees the user. Root callers are still served. While it is root it
# never acts on a file the user controls: the user racing it by swapping
# directories and symlinks in its own trees cannot get a root file
# chowned. Everything lives in the namespaces and temp dir this test makes.
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

# The test's temp dir belongs to the test user; root's directories live in
# a temp dir only root controls, as /var/lib or /run would be.
ROOTDIR=$(mktemp -d /tmp/vmgr-root.XXXXXX)
chmod 0755 "$ROOTDIR"
# set +e: under set -e, (exit "$rc") would end the trap before vmgr_cleanup.
trap 'rc=$?; trap - ERR; set +e; rm -rf "$ROOTDIR"; (exit "$rc"); vmgr_cleanup' EXIT
test_uid=$(id -u "$VMGR_USER")

# A directory of a third user is refused, and left as it is.
OTHER_USER=${VMGR_OTHER_USER:-$VMGR_USER2}
mkdir -m 0700 "$ROOTDIR/others"
chown "$OTHER_USER:" "$ROOTDIR/others"
out=$("$VMGRD" --user "$VMGR_USER" --netadm "$VMGR_NETADM" --state-dir "$ROOTDIR/others" \
        --runtime-dir "$ROOTDIR/run" --cache-dir "$ROOTDIR/cache" 2>&1) && rc=0 || rc=$?
check_eq "root vmgrd with a state dir of $OTHER_USER exits 1" 1 "$rc"
check_match "... and says what to do" "belongs to a user other than '$VMGR_USER'.*chown -R" "$out"
check_eq "... and leaves it alone" "$OTHER_USER 700" "$(stat -c '%U %a' "$ROOTDIR/others")"

# Start vmgrd as root with state, runtime and cache dirs $1 $2 $3 (the rest
# is passed on) in the test's network mode; return once it answers on the
# bus (and its namespace holder runs, in namespace mode), or fail if it exits.
start_root_vmgrd() {
        local state=$1 run=$2 cache=$3 i
        shift 3
        vmgr_mode_args
        "$VMGRD" --user "$VMGR_USER" --netadm "$VMGR_NETADM" "${VMGR_MODE_ARGS[@]}" --state-dir "$state" \
                --runtime-dir "$run" --cache-dir "$cache" "$@" </dev/null >>"$VMGR_TMP/vmgrd.log" 2>&1 &
        VMGRD_PID=$!
        for ((i = 0; i < 750; i++)); do
                if busctl --user call org.vmgr1 /org/vmgr1 org.freedesktop.DBus.Peer Ping >/dev/null 2>&1; then
                        [ "$VMGR_NET_MODE" = namespace ] || return 0
                        vmgr_holder_remember && return 0
                        break
                fi
                kill -0 "$VMGRD_PID" 2>/dev/null || break
                sleep 0.02
        done
        vmgr_stop_vmgrd KILL
        return 1
}

# The real one, as root, running as the test user.
start_root_vmgrd "$ROOTDIR/state" "$ROOTDIR/run" "$ROOTDIR/cache" || true
check "root vmgrd answers on the bus" busctl --user call org.vmgr1 /org/vmgr1 org.freedesktop.DBus.Peer Ping
check_eq "vmgrd itself runs as $VMGR_USER" "$VMGR_USER" "$(ps -o user= -p "$VMGRD_PID")"
check_eq "its directories belong to $VMGR_USER, mode 0700" "$VMGR_USER 700 $VMGR_USER 700 $VMGR_USER 700" \
        "$(stat -c '%U %a' "$ROOTDIR/state" "$ROOTDIR/run" "$ROOTDIR/cache" | xargs)"
out=$(busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        GetConnectionUnixUser s org.vmgr1)
check_eq "the bus sees org.vmgr1 as $VMGR_USER (uid $test_uid), not root" "u $test_uid" "$out"

check "root creates a group with a VM" busctl --user --timeout=300 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager CreateGroup ss r '{"accelerator":"tcg","vms":[{"name":"a"}]}'
# Names derive from the uid vmgrd runs as after dropping root, the one the
# helper sees: the service user's, not 0.
vmgr_load_expected R r a
check_eq "the bridge derives from $VMGR_USER's uid" "s \"${R[bridge]}\"" \
        "$(busctl --user get-property org.vmgr1 /org/vmgr1/group/r org.vmgr1.Group Bridge 2>&1)"
check_match "the VM's TAP ${R[tap]} is $VMGR_USER's" "alias vmgr:$(id -u "$VMGR_USER"):r" \
        "$(vmgr_netns_exec ip -o link show dev "${R[tap]}" 2>&1)"

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
check_empty "nothing is left" "$(vmgr_netns_exec ip -o link show | grep -E ' (vbr|tap|ta4)-' || true)"
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"

# --- The user races root over its own trees --------------------------------
# A state dir as an older vmgrd that ran as root left it: root's, with a
# root file in it, and a subdirectory of the user's (as a user's work would
# be). In there the user swaps a directory of 2000 files and a symlink to a
# directory of root's files with the same names (renameat2 RENAME_EXCHANGE
# in a tight loop) while root starts vmgrd 20 times, the state dir handed
# back to root before each start so that every start has a tree to hand
# over. A root that resolves a path through the user's part chowns root's
# files; vmgrd must not.
VICTIM=$ROOTDIR/victim
state=$ROOTDIR/race-state
mkdir -m 0755 "$VICTIM" "$state" "$state/u"
for i in $(seq 0 1999); do
        echo "root's" >"$VICTIM/f$i"
done
echo "root's, from an older vmgrd" >"$state/legacy"
chown "$VMGR_USER:" "$state/u"
vmgr_as_user python3 - "$state/u" "$VICTIM" <<'PY'
import os, sys
top, victim = sys.argv[1], sys.argv[2]
os.mkdir(f"{top}/d")
for i in range(2000):
    with open(f"{top}/d/f{i}", "w") as f:
        f.write("the user's\n")
os.symlink(victim, f"{top}/l")
PY
cat >"$VMGR_TMP/racer.py" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b = (os.fsencode(p) for p in sys.argv[1:3])
while True:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
PY
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" python3 "$VMGR_TMP/racer.py" "$state/u/d" "$state/u/l" &
RACER_PID=$!

rounds=20 started=0 lost=0
for ((round = 0; round < rounds; round++)); do
        chown root: "$state" "$state/legacy"
        chmod 0755 "$state"
        if start_root_vmgrd "$state" "$ROOTDIR/race-run" "$ROOTDIR/race-cache"; then
                started=$((started + 1))
                vmgr_stop_vmgrd TERM
        fi
        if [ -n "$(find "$VICTIM" ! -user root)" ]; then
                lost=$((lost + 1))
                chown -R root: "$VICTIM"
        fi
done
{
        kill "$RACER_PID"
        wait "$RACER_PID" || true
} 2>/dev/null
echo "# root's files were chowned to the user in $lost of $rounds starts"
check_eq "racing the user, root's files stay root's in all $rounds starts" 0 "$lost"
check_eq "... and vmgrd started every time" "$rounds" "$started"
check_eq "the old state dir and root's file in it were handed to $VMGR_USER" "$VMGR_USER 700 $VMGR_USER" \
        "$(stat -c '%U %a' "$state") $(stat -c %U "$state/legacy")"

# A directory below one the user controls: root does not create or chmod
# anything there (the user does what it can itself), so the user's symlink
# to a directory of root's changes nothing of root's.
mkdir -m 0755 "$VMGR_TMP/rootsdir"
vmgr_as_user mkdir "$VMGR_TMP/usersdir"
vmgr_as_user ln -s "$VMGR_TMP/rootsdir" "$VMGR_TMP/usersdir/cache"
start_root_vmgrd "$ROOTDIR/state" "$ROOTDIR/run" "$VMGR_TMP/usersdir/cache" || true
vmgr_stop_vmgrd TERM
check_eq "root's directory behind the user's symlink is untouched" "root 755" \
        "$(stat -c '%U %a' "$VMGR_TMP/rootsdir")"

vmgr_finish
