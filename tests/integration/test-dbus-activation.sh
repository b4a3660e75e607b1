#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# D-Bus activation: with no vmgrd running, the first call to org.vmgr1 on a
# session bus whose service directory is the one vmgr installs
# (DATADIR/dbus-1/services) starts vmgrd, as the bus's user, from the
# installed org.vmgr1.service as it is. That file names the installed
# paths (/usr/bin/vmgrd, and vmgrd's default helper /usr/libexec/vmgr-netadm);
# the test's mount namespace shows the destdir install there: /usr/bin and
# /usr/libexec become read-only overlays of the destdir's directories over
# the host's. The activated vmgrd gets nothing but the bus's environment
# (the test's XDG_* directories), so it runs on its defaults: state, runtime
# and cache directories under them, the network mode vmgrd picks itself.
# It must own the name, answer, make and delete a network-only group, exit
# 0 on SIGTERM and be started again by the next call.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

group=activated
services=$VMGR_DESTDIR/usr/share/dbus-1/services
service=$services/org.vmgr1.service

# --- the installed file -------------------------------------------------------

check "the install has $service" test -f "$service"
check_eq "it activates org.vmgr1" "org.vmgr1" "$(sed -n 's/^Name=//p' "$service")"
exec_line=$(sed -n 's/^Exec=//p' "$service")
exec_path=${exec_line%% *}
check_eq "Exec= starts the installed vmgrd (no arguments: it runs on its defaults)" "$exec_line" "$exec_path"
check_match "... by an absolute path" '^/' "$exec_path"
check "... where the install put it (destdir + $exec_path)" test "$VMGR_DESTDIR$exec_path" -ef "$VMGRD"

# --- the installed paths, in this mount namespace only ---------------------------

# The top layer of each overlay is the destdir's; in namespace mode the
# helper's copy without file capabilities (lib.sh's) covers the destdir's
# setcap'd one, so that nothing here comes from a privilege the mode does
# not use.
libexec_top=$VMGR_DESTDIR/usr/libexec
if [ "$VMGR_NET_MODE" = namespace ]; then
        mkdir "$VMGR_TMP/libexec"
        cp "$VMGR_NETADM" "$VMGR_TMP/libexec/vmgr-netadm"
        libexec_top=$VMGR_TMP/libexec:$libexec_top
fi
mount -t overlay overlay -o "lowerdir=$VMGR_DESTDIR/usr/bin:/usr/bin" /usr/bin
mount -t overlay overlay -o "lowerdir=$libexec_top:/usr/libexec" /usr/libexec
check "$exec_path is the destdir's vmgrd here" cmp -s "$exec_path" "$VMGRD"
check "vmgrd's default helper is the test's" cmp -s /usr/libexec/vmgr-netadm "$VMGR_NETADM"

# The test bus (lib.sh's), with the installed service directory.
vmgr_start_bus "$VMGR_BUS_POLICY_OPEN
  <servicedir>$services</servicedir>"

bus() {
        busctl_as_user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus "$@"
}
user_vmgrds() {
        pgrep -u "$VMGR_USER" -x vmgrd || true
}

# --- before: nothing runs, the bus knows the name ---------------------------------

check_empty "no vmgrd of $VMGR_USER runs" "$(user_vmgrds)"
check_eq "org.vmgr1 has no owner" "b false" "$(bus NameHasOwner s org.vmgr1 2>&1)"
check_match "the bus can activate org.vmgr1" '"org\.vmgr1"' "$(bus ListActivatableNames 2>&1)"

# --- a property read starts vmgrd ---------------------------------------------

# activate: read Manager.Version (busctl's own default timeout covers the
# start); then VMGRD_PID is the activated vmgrd.
activate() {
        local out i
        out=$(busctl_as_user --timeout=30 get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager Version 2>&1) || {
                vmgr_not_ok "$1: reading Manager.Version starts vmgrd" "$out" "the bus's log:" \
                        "$(tail -n 30 "$VMGR_TMP/bus.log")"
                return 1
        }
        vmgr_ok "$1: reading Manager.Version starts vmgrd ($out)"
        VMGRD_PID=
        for ((i = 0; i < 100; i++)); do
                VMGRD_PID=$(user_vmgrds)
                [ -n "$VMGRD_PID" ] && break
                sleep 0.05
        done
        check_match "$1: one vmgrd runs" '^[0-9]+$' "$VMGRD_PID"
}

# The activated vmgrd: as the bus's user, from the installed path, with no
# arguments, owning the name, working.
check_activated() {
        local what=$1 owner pid mode expected=$VMGR_NET_MODE
        # $2: how many activations the bus has logged by now.
        check_eq "$what: vmgrd runs as $VMGR_USER" "$VMGR_USER" "$(ps -o user= -p "$VMGRD_PID" | tr -d ' ')"
        check_eq "$what: it was started by the installed file's command line" "$exec_path" \
                "$(tr '\0' ' ' <"/proc/$VMGRD_PID/cmdline" | sed 's/ $//')"
        # dbus-daemon starts a service through a short-lived process of its
        # own, so vmgrd ends up PID 1's child: the bus's log says who.
        check_eq "$what: the bus says it activated it" "$2" \
                "$(grep -c "Successfully activated service 'org.vmgr1'" "$VMGR_TMP/bus.log")"
        owner=$(bus GetNameOwner s org.vmgr1 2>&1)
        owner=${owner#s \"}
        owner=${owner%\"}
        pid=$(bus GetConnectionUnixProcessID s "$owner" 2>&1)
        check_eq "$what: it owns org.vmgr1 (owner $owner)" "u $VMGRD_PID" "$pid"
        mode=$(busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager NetworkMode 2>&1)
        check_eq "$what: on its own it picked $expected mode" "s \"$expected\"" "$mode"
        [ "$mode" != 's "namespace"' ] || vmgr_holder_remember || true
        check "$what: create network-only group $group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 \
                org.vmgr1.Manager CreateGroup ss "$group" ""
        check_match "$what: ListGroups has it" "\"$group\"" "$(busctl_as_user call org.vmgr1 /org/vmgr1 \
                org.vmgr1.Manager ListGroups 2>&1)"
        check "$what: its runtime files are under the bus's XDG_RUNTIME_DIR" \
                test -d "$VMGR_TMP/run/vmgr/groups/$group"
        check "$what: delete group $group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 \
                org.vmgr1.Manager DeleteGroup s "$group"
}

# stop_activated WHAT N: SIGTERM, as a session's end sends it; vmgrd is the bus's
# child, not this shell's: its exit status is not ours to see, so a clean
# exit shows as its last message (the N-th in the bus's log, where the
# activated vmgrd's stderr goes), the name released and nothing left.
stop_activated() {
        local pid=$VMGRD_PID i
        VMGRD_PID=
        kill -TERM "$pid"
        for ((i = 0; i < 500; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                # Exited, not yet reaped by its parent.
                [ "$(ps -o stat= -p "$pid")" = Z ] && break
                sleep 0.02
        done
        check "$1: vmgrd ends on SIGTERM" test "$i" -lt 500
        check_eq "$1: ... having deleted its groups and stopped its processes (its last words)" "$2" \
                "$(grep -c '^vmgrd: All groups deleted and all processes gone; exiting$' "$VMGR_TMP/bus.log")"
        check_eq "$1: org.vmgr1 has no owner again" "b false" "$(bus NameHasOwner s org.vmgr1 2>&1)"
        check_empty "$1: nothing of vmgrd's is left" "$(vmgr_leftovers)"
}

activate "first call"
check_activated "first call" 1
first=$VMGRD_PID
stop_activated "first call" 1

# The next call after it ended starts a new one.
activate "after it ended"
check "after it ended: a new vmgrd" test "$VMGRD_PID" != "$first"
check_activated "after it ended" 2
stop_activated "after it ended" 2

check_empty "the bus logged no failed activation" "$(grep -i 'activat.*fail\|failed.*activat' "$VMGR_TMP/bus.log" || true)"
check_empty "no sanitizer reports from the activated vmgrds" \
        "$(grep -E -A 20 'Sanitizer|runtime error:' "$VMGR_TMP/bus.log" || true)"
vmgr_finish
