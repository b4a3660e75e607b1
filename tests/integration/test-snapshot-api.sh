#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The snapshot store through vmgrd's bus API and vmgrctl, without booting a
# guest to ready:
#   - Manager.ListSnapshots lists the templates and user snapshots in the
#     user's cache (made here on disk as the store makes them), with their
#     kind, shape, size, times and source; vmgrctl snapshot list shows them
#     (table and --json);
#   - Manager.DeleteSnapshot removes a user snapshot by name and a template
#     as "template:SHAPE"; a missing one is NoSuchSnapshot (vmgrctl exit 3);
#   - vmgrd's config keys warm_start and snapshot_cache_max_mib: taken,
#     and a wrong value refused with a sentence naming the key;
#   - another local user on the same bus can neither list nor delete them;
#   - the attack: names that would leave the store ("../victim",
#     "../../victim", "template:../../victim", "a/b", "..") through
#     DeleteSnapshot and VM.Snapshot are InvalidName, and the directories
#     such a name would reach (made to look like snapshots) are untouched.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools
vmgr_enter_netns "$@"
vmgr_start_bus

# The config keys: a bad value stops vmgrd at once, naming the key.
for bad in "warm_start = maybe" "snapshot_cache_max_mib = -1" "snapshot_cache_max_mib = lots"; do
        printf '%s\n' "$bad" >"$VMGR_TMP/bad.conf"
        out=$(vmgr_as_user "$VMGRD" --config "$VMGR_TMP/bad.conf" --state-dir "$VMGR_TMP/state/vmgr" \
                --runtime-dir "$VMGR_TMP/run/vmgr" 2>&1) && out="started: $out"
        check_match "config '$bad' is refused" "${bad%% *} must be" "$out"
done
# Without --config, the user's ~/.config/vmgr/vmgrd.conf is read.
vmgr_as_user mkdir -p "$VMGR_TMP/home/.config/vmgr"
vmgr_as_user sh -c "echo 'warm_start = maybe' >'$VMGR_TMP/home/.config/vmgr/vmgrd.conf'"
out=$(vmgr_as_user "$VMGRD" --state-dir "$VMGR_TMP/state/vmgr" --runtime-dir "$VMGR_TMP/run/vmgr" 2>&1) &&
        out="started: $out"
check_match "without --config, ~/.config/vmgr/vmgrd.conf is read (its bad value refused)" \
        "vmgrd.conf.*warm_start must be" "$out"
vmgr_as_user rm -r "$VMGR_TMP/home/.config/vmgr"
printf 'warm_start = false\nsnapshot_cache_max_mib = 100\n' >"$VMGR_TMP/vmgrd.conf"
vmgr_start_vmgrd --config "$VMGR_TMP/vmgrd.conf"

cache=$VMGR_TMP/home/.cache/vmgr
store=$cache/snapshots
shape=$(printf 'ab%.0s' {1..32})
now=$(($(date +%s) * 1000000))

# make_snapshot DIR KIND NAME: a snapshot directory as the store writes it.
make_snapshot() {
        local dir=$1 kind=$2 name=$3
        vmgr_as_user mkdir -p "$dir"
        vmgr_as_user sh -c "head -c 4096 /dev/zero >'$dir/state'"
        vmgr_as_user sh -c "cat >'$dir/meta.json'" <<EOF
{"kind":"$kind","name":"$name","shape":"$shape","source":"g1/db","n_disks":0,"created_usec":$now,
 "last_used_usec":$now,"size_bytes":4096,"state_bytes":4096,"macs":["6a:01:00:00:00:01","00:00:00:00:00:00"]}
EOF
}

check "vmgrd made the store" test -d "$store/templates" -a -d "$store/user"
make_snapshot "$store/user/db-loaded" user db-loaded
make_snapshot "$store/templates/$shape" template "$shape"
# What a name that leaves the store would reach, looking like snapshots.
make_snapshot "$store/victim" user victim
make_snapshot "$cache/victim" user victim
make_snapshot "$VMGR_TMP/home/.cache/victim" user victim

out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListSnapshots 2>&1) || true
check_match "ListSnapshots lists the user snapshot" \
        "\"db-loaded\" \"user\" \"$shape\" 4096 $now $now \"g1/db\"" "$out"
check_match "ListSnapshots lists the template" \
        "\"$shape\" \"template\" \"$shape\" 4096 $now $now \"g1/db\"" "$out"
check_match "ListSnapshots lists two" '^a\(sssttts\) 2 ' "$out"

out=$(vmgrctl_as_user snapshot list 2>&1) || true
check_match "vmgrctl snapshot list: header" '^NAME +KIND +SIZE +CREATED +LAST-USED +SOURCE' "$out"
check_match "vmgrctl snapshot list: the template as template:SHAPE" "template:$shape +template +4096 " "$out"
check_match "vmgrctl snapshot list: the user snapshot" 'db-loaded +user +4096 +[0-9-]+T[0-9:]+Z +[0-9-]+T[0-9:]+Z +g1/db' "$out"
out=$(vmgrctl_as_user --json snapshot list 2>&1) || true
check_eq "vmgrctl --json snapshot list" "db-loaded user 4096 g1/db" \
        "$(python3 -c 'import json, sys
for s in json.loads(sys.stdin.read()):
    if s["Kind"] == "user": print(s["Name"], s["Kind"], s["Size"], s["Source"])' <<<"$out" 2>&1)"

# Another user: refused, and nothing learnt or deleted.
for call in ListSnapshots "DeleteSnapshot string:db-loaded"; do
        read -r -a words <<<"$call"
        out=$(vmgr_as "$VMGR_USER2" dbus-send --session --print-reply --dest=org.vmgr1 /org/vmgr1 \
                "org.vmgr1.Manager.${words[0]}" "${words[@]:1}" 2>&1) || true
        check_match "$VMGR_USER2: ${words[0]} is refused" '^Error org\.vmgr1\.Error\.PermissionDenied' "$out"
        check_empty "$VMGR_USER2: ... naming no snapshot" "$(grep -e db-loaded -e "$shape" <<<"$out" || true)"
done
check "the snapshot is still there" test -f "$store/user/db-loaded/meta.json"

# The attack: each name is refused before it becomes a path.
for name in ../victim ../../victim ../../../.cache/victim template:../../victim "template:../$shape" \
        a/b .. . '' "/$store/user/db-loaded" "template:${shape^^}"; do
        check_eq "DeleteSnapshot '$name': InvalidName" org.vmgr1.Error.InvalidName \
                "$(vmgr_call_error DeleteSnapshot "$name")"
done
check "the victims are untouched" test -f "$store/victim/meta.json" -a -f "$cache/victim/meta.json" \
        -a -f "$VMGR_TMP/home/.cache/victim/meta.json"
check "the snapshots are untouched" test -f "$store/user/db-loaded/meta.json" -a \
        -f "$store/templates/$shape/meta.json"
rc=0
vmgrctl_as_user snapshot delete ../victim >/dev/null 2>&1 || rc=$?
check_eq "vmgrctl snapshot delete ../victim: exit 2" 2 "$rc"

# A VM whose Snapshot is called with such names (it need not boot: the name
# is refused first). A kernel without its initramfs is cheap to start.
kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)
check "a group with a VM" vmgrctl_as_user group create g1 --vm "v:kernel=$kernel,memory=128,no-agent"
vm=$(vmgr_vm_path g1 v)
# Every path under DIR, but the VM's own files in the cache.
tree_of() {
        find "$1" -print | grep -v -e "^$cache/disks" -e "^$cache/guest" | sort
}
before=$(tree_of "$VMGR_TMP/home")
for name in ../victim ../../victim ../../../victim a/b .. '' "$store/user/x"; do
        out=$(vmgr_as_user dbus-send --session --print-reply --dest=org.vmgr1 "$vm" org.vmgr1.VM.Snapshot \
                "string:$name" 2>&1) || true
        check_match "VM.Snapshot '$name': InvalidName" '^Error org\.vmgr1\.Error\.InvalidName' "$out"
done
check "the victims are untouched after VM.Snapshot" test -f "$store/victim/meta.json" -a \
        -f "$cache/victim/meta.json"
check_eq "nothing new in or beside the store" "$before" "$(tree_of "$VMGR_TMP/home")"
rc=0
vmgrctl_as_user snapshot create g1 v ../../victim >/dev/null 2>&1 || rc=$?
check_eq "vmgrctl snapshot create g1 v ../../victim: exit 2" 2 "$rc"
rc=0
vmgrctl_as_user snapshot create g1 nope s1 >/dev/null 2>&1 || rc=$?
check_eq "vmgrctl snapshot create of a missing VM: exit 3" 3 "$rc"
check "delete the group" vmgrctl_as_user group delete g1

# Deleting, by the rules.
check_eq "DeleteSnapshot db-loaded" "" "$(vmgr_call_error DeleteSnapshot db-loaded)"
check "the user snapshot is gone" test ! -e "$store/user/db-loaded"
check_eq "DeleteSnapshot db-loaded again: NoSuchSnapshot" org.vmgr1.Error.NoSuchSnapshot \
        "$(vmgr_call_error DeleteSnapshot db-loaded)"
# A user snapshot's name has at most 63 characters: never a shape.
check_eq "DeleteSnapshot of the template by its shape alone: InvalidName" org.vmgr1.Error.InvalidName \
        "$(vmgr_call_error DeleteSnapshot "$shape")"
check "vmgrctl snapshot delete template:SHAPE" vmgrctl_as_user snapshot delete "template:$shape"
check "the template is gone" test ! -e "$store/templates/$shape"
rc=0
vmgrctl_as_user snapshot delete "template:$shape" >/dev/null 2>&1 || rc=$?
check_eq "vmgrctl snapshot delete of a missing one: exit 3" 3 "$rc"
out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListSnapshots 2>&1) || true
check_eq "ListSnapshots: none left" "a(sssttts) 0" "$out"
check_empty "no build or trash directories left" "$(ls -A "$store/user" "$store/templates" | grep '^\.' || true)"
check "the victims are still there" test -f "$store/victim/meta.json" -a -f "$cache/victim/meta.json"

vmgr_finish
