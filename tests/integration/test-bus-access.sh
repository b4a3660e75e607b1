#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Only vmgrd's own user and root may use vmgrd, for reading as much as for
# changing: on a bus other users share (the test bus lets any local user
# connect), another user learns nothing about the groups, not even their
# names, whatever it calls; org.freedesktop.DBus.Peer alone stays open.
# The caller's uid is cached per connection; the last check makes sure a
# cached answer is not given to the wrong connection.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

OTHER_USER=${VMGR_OTHER_USER:-vmgr-test2}
group=secretgrp

vmgr_start_bus
vmgr_start_vmgrd

check "$VMGR_USER creates group $group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager CreateGroup ss "$group" ""
gpath=$(vmgr_group_path "$group")
check_match "... at an object path that names it" "/$group\$" "$gpath"
missing_path=${gpath%/*}/nosuchgrp

# dbus-send as user $1 with the rest as its arguments (after --dest): prints
# "ERROR-NAME: message" if the call fails, the reply if it succeeds.
call_as() {
        local user=$1 out rc=0
        shift
        out=$(vmgr_as "$user" dbus-send --session --print-reply --dest=org.vmgr1 "$@" 2>&1) || rc=$?
        if [ "$rc" -ne 0 ]; then
                sed -n 's/^Error \([^:]*\): */\1: /p' <<<"$out"
        else
                echo "$out"
        fi
}

# Every read there is, as the method or property that answers it.
reads=(
        "ListGroups|/org/vmgr1 org.vmgr1.Manager.ListGroups"
        "GetGroup of an existing group|/org/vmgr1 org.vmgr1.Manager.GetGroup string:$group"
        "GetGroup of a missing group|/org/vmgr1 org.vmgr1.Manager.GetGroup string:nosuchgrp"
        "Manager property Version|/org/vmgr1 org.freedesktop.DBus.Properties.Get string:org.vmgr1.Manager string:Version"
        "GetManagedObjects|/org/vmgr1 org.freedesktop.DBus.ObjectManager.GetManagedObjects"
        "Introspect of /|/ org.freedesktop.DBus.Introspectable.Introspect"
        "Introspect of /org/vmgr1|/org/vmgr1 org.freedesktop.DBus.Introspectable.Introspect"
        "Introspect of the groups' parent node|${gpath%/*} org.freedesktop.DBus.Introspectable.Introspect"
        "Introspect of the group|$gpath org.freedesktop.DBus.Introspectable.Introspect"
        "Introspect of a missing group|$missing_path org.freedesktop.DBus.Introspectable.Introspect"
        "GetVM of the group|$gpath org.vmgr1.Group.GetVM string:a"
        "GetVM of a missing group|$missing_path org.vmgr1.Group.GetVM string:a"
        "group property RuntimeDirectory|$gpath org.freedesktop.DBus.Properties.Get string:org.vmgr1.Group string:RuntimeDirectory"
        "group property ServedFiles|$gpath org.freedesktop.DBus.Properties.Get string:org.vmgr1.Group string:ServedFiles"
        "group property Bridge|$gpath org.freedesktop.DBus.Properties.Get string:org.vmgr1.Group string:Bridge"
        "group properties (GetAll)|$gpath org.freedesktop.DBus.Properties.GetAll string:org.vmgr1.Group"
        "a missing group's property|$missing_path org.freedesktop.DBus.Properties.Get string:org.vmgr1.Group string:Bridge"
)

for entry in "${reads[@]}"; do
        what=${entry%%|*}
        read -r -a args <<<"${entry#*|}"
        out=$(call_as "$OTHER_USER" "${args[@]}")
        check_match "$OTHER_USER: $what is refused with PermissionDenied" "^org\.vmgr1\.Error\.PermissionDenied: " "$out"
        check_empty "$OTHER_USER: ... and the answer does not name the group" "$(grep -F "$group" <<<"$out" || true)"
done

# Changes were refused before too; they still are, as the same error.
out=$(call_as "$OTHER_USER" /org/vmgr1 org.vmgr1.Manager.DeleteGroup "string:$group")
check_match "$OTHER_USER: DeleteGroup is refused" "^org\.vmgr1\.Error\.PermissionDenied: " "$out"

# Peer stays open: it tells no more than the bus does.
check "$OTHER_USER: Peer.Ping is answered" vmgr_as "$OTHER_USER" busctl --user call org.vmgr1 \
        "$missing_path" org.freedesktop.DBus.Peer Ping

# vmgrd's own user and root read everything.
for user in "$VMGR_USER" root; do
        out=$(call_as "$user" /org/vmgr1 org.vmgr1.Manager.ListGroups)
        check_match "$user: ListGroups lists $group" "\"$group\"" "$out"
        out=$(call_as "$user" /org/vmgr1 org.vmgr1.Manager.GetGroup "string:$group")
        check_match "$user: GetGroup answers" "object path \"$gpath\"" "$out"
        out=$(call_as "$user" "$gpath" org.freedesktop.DBus.Properties.Get string:org.vmgr1.Group string:Bridge)
        check_match "$user: the group's Bridge" "string \"vbr-[0-9a-f]{10}\"" "$out"
        out=$(call_as "$user" "$gpath" org.freedesktop.DBus.Properties.Get string:org.vmgr1.Group \
                string:RuntimeDirectory)
        check_match "$user: the group's RuntimeDirectory" "string \"/.*/$group\"" "$out"
        out=$(call_as "$user" /org/vmgr1 org.freedesktop.DBus.ObjectManager.GetManagedObjects)
        check_match "$user: GetManagedObjects has the group" "object path \"$gpath\"" "$out"
        out=$(call_as "$user" "${gpath%/*}" org.freedesktop.DBus.Introspectable.Introspect)
        check_match "$user: Introspect shows the group's node" "<node name=\"$group\"" "$out"
        out=$(call_as "$user" "$gpath" org.vmgr1.Group.GetVM string:a)
        check_match "$user: GetVM of a group without VMs: NoSuchVM" "^org\.vmgr1\.Error\.NoSuchVM: " "$out"
done

# Two users in turn, each on a connection of its own: the uid cached for
# one connection is never the answer for another.
out_own=$(vmgr_as "$VMGR_USER" busctl --user get-property org.vmgr1 "$gpath" org.vmgr1.Group Bridge 2>&1 || true)
out_other=$(vmgr_as "$OTHER_USER" busctl --user get-property org.vmgr1 "$gpath" org.vmgr1.Group Bridge 2>&1 || true)
out_own2=$(vmgr_as "$VMGR_USER" busctl --user get-property org.vmgr1 "$gpath" org.vmgr1.Group Bridge 2>&1 || true)
check_match "$VMGR_USER, then $OTHER_USER, then $VMGR_USER again: the first reads" '^s "vbr-' "$out_own"
check_match "... the second is refused" "uid [0-9]+ may not use" "$out_other"
check_match "... the third reads" '^s "vbr-' "$out_own2"

check "$VMGR_USER deletes $group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager \
        DeleteGroup s "$group"

# --- Signals on a shared bus -------------------------------------------------
# vmgrd's signals (GroupNew, InterfacesAdded, PropertiesChanged, ...) name
# the groups and are broadcast: the bus hands them to whoever subscribes,
# and a bus that allows eavesdropping hands out the replies too. A bus that
# other users share must keep both to vmgrd's user and root with its policy
# (docs/design.md gives these rules): checked here on a bus with them.
vmgr_stop_vmgrd TERM
{
        kill "$VMGR_BUS_PID"
        wait "$VMGR_BUS_PID" || true
} 2>/dev/null
rm -f "$VMGR_TMP/bus" "$VMGR_TMP/bus.address"
# lib.sh's bus, without eavesdropping, with the rules for vmgrd's signals.
vmgr_start_bus '  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <deny receive_sender="org.vmgr1" receive_type="signal"/>
  </policy>
  <policy user="'"$VMGR_USER"'">
    <allow receive_sender="org.vmgr1" receive_type="signal"/>
  </policy>
  <policy user="root">
    <allow receive_sender="org.vmgr1" receive_type="signal"/>
  </policy>'
vmgr_start_vmgrd

# Each user watches everything org.vmgr1 sends (dbus-monitor falls back to
# eavesdropping when it may not become a monitor).
for user in "$OTHER_USER" "$VMGR_USER"; do
        vmgr_as_argv "$user"
        "${VMGR_AS_ARGV[@]}" dbus-monitor --session "sender='org.vmgr1'" >"$VMGR_TMP/monitor-$user" 2>&1 &
done
for user in "$OTHER_USER" "$VMGR_USER"; do
        for ((i = 0; i < 500; i++)); do
                grep -q NameAcquired "$VMGR_TMP/monitor-$user" 2>/dev/null && break
                sleep 0.01
        done
done
check "$VMGR_USER creates $group again" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 \
        org.vmgr1.Manager CreateGroup ss "$group" ""
busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups >/dev/null
for ((i = 0; i < 500; i++)); do
        grep -q "member=GroupNew" "$VMGR_TMP/monitor-$VMGR_USER" && break
        sleep 0.01
done
check_match "$VMGR_USER receives GroupNew" "member=GroupNew" "$(cat "$VMGR_TMP/monitor-$VMGR_USER")"
check_empty "$OTHER_USER receives no signal or reply that names the group" \
        "$(grep -F "$group" "$VMGR_TMP/monitor-$OTHER_USER" || true)"
check "$VMGR_USER deletes $group" busctl_as_user --timeout=60 call org.vmgr1 /org/vmgr1 org.vmgr1.Manager \
        DeleteGroup s "$group"
vmgr_finish
