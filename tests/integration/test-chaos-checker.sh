#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The leak checker of the chaos tests (lib-leaks.sh), so that its silence
# means something: with two network-only groups running it reports nothing;
# then one leak of each kind it looks for is planted by hand, each one
# named like a group that does not exist, and each must be reported while
# the real groups' things are not; a group that should exist but does not
# is reported; once the plants are removed it is silent again; after a
# kill -9 of vmgrd and a new vmgrd (which adopts or deletes the groups), it
# is silent for the groups that new vmgrd has. No VM: seconds.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

check "create group real" vmgrctl_as_user -q group create real
check "create group other" vmgrctl_as_user -q group create other
check_eq "the bus names vmgrd's pid" "$VMGRD_PID" "$(vmgr_vmgrd_bus_pid)"
check_empty "with both groups expected: nothing reported" "$(vmgr_leaks_wait 0 real other)"
check_match "a leak check that breaks off is reported, not silent" "the leak check broke off \(status [1-9]" \
        "$(vmgr_load_expected() { exit 3; }; vmgr_leaks_wait 0 real other)"

# Expecting only one of them: every piece of the other one is reported.
out=$(vmgr_leaks real)
echo "# vmgr_leaks real (group other running):"
sed 's/^/#   /' <<<"$out"
vmgr_load_expected O other
check_match "a group not expected: its bridge" "link ${O[bridge]} \(alias vmgr:[0-9]+:other" "$out"
check_match "... its files address on lo" "lo address ${O[files6]}: no group owns it" "$out"
check_match "... its dnsmasq" "process [0-9]+ dnsmasq for ${O[bridge]}: no group owns it" "$out"
check_match "... its nft chain" "nft chain inet vmgr u[0-9]+-${O[bridge]}: no group owns" "$out"
check_match "... its nft set and map elements" "nft table inet vmgr names ${O[bridge]}: no group owns it" "$out"
check_match "... its state file" "file $VMGR_TMP/state/vmgr/groups/other.json: of group other" "$out"
check_match "... its runtime directory" "file $VMGR_TMP/run/vmgr/groups/other: of group other" "$out"
check_empty "... and nothing of group real" "$(grep -e "$(vmgr_expected_addrs real | awk '$1 == "bridge" { print $2 }')" \
        -e 'groups/real' <<<"$out")"
check_match "a group expected that does not exist is reported" "group ghost should exist, but vmgrd does not know it" \
        "$(vmgr_leaks real other ghost)"

# --- one plant of each kind, named for group ghost and VM ghost:a ----------

vmgr_load_expected G ghost a
# Where the groups live (vmgr_netns_exec); in namespace mode a bridge in the
# test's own namespace must be reported too.
plant_links() {
        ip link add "$1" type bridge
        ip link set "$1" alias "vmgr:$2:ghost"
        ip link add "$3" type bridge
        ip link add vmgrplant type bridge
        ip link set vmgrplant alias "vmgr:$2:real"
        ip -6 addr add "$4/128" dev lo nodad
        nft add element inet vmgr bridged "{ \"$1\" . \"$1\" }"
        nft add chain inet vmgr "u$2-$1"
        nft add chain inet vmgr "u4242-${5}"
}
remove_links() {
        ip link delete "$1"
        ip link delete "$3"
        ip link delete vmgrplant
        ip -6 addr delete "$4/128" dev lo
        nft delete element inet vmgr bridged "{ \"$1\" . \"$1\" }"
        nft delete chain inet vmgr "u$2-$1"
        nft delete chain inet vmgr "u4242-${5}"
}
uid=$(id -u "$VMGR_USER")
real_bridge=$(vmgr_expected_addrs real | awk '$1 == "bridge" { print $2 }')
link_args=("${G[bridge]}" "$uid" "${G[tap]}" "${G[files6]}" "$real_bridge")
vmgr_netns_exec bash -c "set -e; $(declare -f plant_links); plant_links ${link_args[*]}"
if [ "$VMGR_NET_MODE" = namespace ]; then
        ip link add vbr-0123456789 type bridge
fi

# Processes: a dnsmasq and a QEMU for the ghost (scripts with those names:
# only the name and the command line count), a helper vmgrd did not start,
# a second dnsmasq for a real group's bridge, a zombie (its parent runs on
# without reaping it), something else the user runs.
bin=$VMGR_TMP/bin
mkdir -m 0755 "$bin"
mkfifo -m 0666 "$bin/fifo"
# Nothing writes to the FIFO: read waits for its timeout, in the script's
# own process (the name that ps shows).
for n in dnsmasq qemu-system-x86_64 vmgr-netadm; do
        printf '#!/bin/bash\nread -r -t 300 _ <>%s\n' "$bin/fifo" >"$bin/$n"
        chmod 0755 "$bin/$n"
done
vmgr_as_argv "$VMGR_USER"
plants=()
"${VMGR_AS_ARGV[@]}" "$bin/dnsmasq" "--interface=${G[bridge]}" &
plants+=($!)
"${VMGR_AS_ARGV[@]}" "$bin/dnsmasq" "--interface=$real_bridge" &
second_dnsmasq=$!
plants+=($!)
"${VMGR_AS_ARGV[@]}" "$bin/qemu-system-x86_64" -name guest=ghost:a,debug-threads=on &
plants+=($!)
"${VMGR_AS_ARGV[@]}" "$bin/vmgr-netadm" &
helper=$!
plants+=($!)
"${VMGR_AS_ARGV[@]}" bash -c 'sleep 0.3 & exec sleep 300' &
zombie_parent=$!
plants+=($!)

# Files: the ghost's state file and directories, a VM directory of a real
# group that has no such VM, an agent socket, libvirt's files of a domain.
state=$VMGR_TMP/state/vmgr/groups
run=$VMGR_TMP/run/vmgr
vmgr_as_user mkdir -p "$state/ghost/vms/a" "$state/real/vms/nope" "$run/groups/ghost" "$run/agent" \
        "$run/libvirt/config/libvirt/qemu/lib/domain-9-ghost:a" "$run/libvirt/run/libvirt/qemu/run"
vmgr_as_user touch "$state/ghost.json" "$run/agent/${G[tap]}.sock" "$run/libvirt/run/libvirt/qemu/run/ghost:a.pid"

# Until the zombie is one (its parent has exec'd sleep 300, sleep 0.3 has exited).
for ((i = 0; i < 100; i++)); do
        [ "$(ps -o stat=,comm= --ppid "$zombie_parent" 2>/dev/null)" = "Z    sleep" ] && break
        sleep 0.05
done
out=$(vmgr_leaks real other)
echo "# vmgr_leaks real other, with everything planted:"
sed 's/^/#   /' <<<"$out"
ns=
[ "$VMGR_NET_MODE" = namespace ] && ns=" \(in vmgrd's namespace\)"
check_match "a bridge with the alias of a group that does not exist" \
        "link ${G[bridge]} \(alias vmgr:$uid:ghost, master -\): no group owns it$ns" "$out"
check_match "a link named like a TAP, no alias" "link ${G[tap]} \(alias -, master -\): no group owns it$ns" "$out"
check_match "a link with a real group's alias that is not its bridge or TAP" \
        "link vmgrplant \(alias vmgr:$uid:real, master -\): no group owns it" "$out"
check_match "an address of the group formula on lo" "lo address ${G[files6]}: no group owns it$ns" "$out"
check_match "an nft set element" "nft table inet vmgr names ${G[bridge]}: no group owns it" "$out"
check_match "an nft chain" "nft chain inet vmgr u$uid-${G[bridge]}: no group owns its bridge" "$out"
check_match "an nft chain of another uid" "nft chain inet vmgr u4242-$real_bridge: another uid's" "$out"
if [ "$VMGR_NET_MODE" = namespace ]; then
        check_match "namespace mode: a bridge in the test's own namespace" \
                "link vbr-0123456789 \(alias -, master -\): no group owns it \(in the test's own namespace" "$out"
fi
check_match "a dnsmasq for a bridge no group owns" "process [0-9]+ dnsmasq for ${G[bridge]}: no group owns it" "$out"
check_match "a second dnsmasq for a group's bridge" \
        "process [0-9]+ dnsmasq for $real_bridge \(group real\): (a second one|in network namespace)" "$out"
check_match "a QEMU of a VM no group has" "process [0-9]+ QEMU of ghost:a: no VM of a group" "$out"
check_match "a helper of no live vmgrd" "process [0-9]+ vmgr-netadm: a helper of no live vmgrd" "$out"
check_match "a zombie" "zombie [0-9]+ sleep \(parent $zombie_parent\)" "$out"
check_match "another process of the user" "process $zombie_parent sleep: not vmgr's" "$out"
check_match "a group's state file" "file $state/ghost.json: of group ghost" "$out"
check_match "a group's state directory" "file $state/ghost: of group ghost" "$out"
check_match "a VM directory of a VM the group does not have" "file $state/real/vms/nope: of VM nope" "$out"
check_match "a group's runtime directory" "file $run/groups/ghost: of group ghost" "$out"
check_match "an agent socket" "file $run/agent/${G[tap]}.sock: the agent socket of no VM" "$out"
check_match "libvirt's domain directory" "file $run/libvirt/config/libvirt/qemu/lib/domain-9-ghost:a: of VM ghost:a" "$out"
check_match "libvirt's pid file" "file $run/libvirt/run/libvirt/qemu/run/ghost:a.pid: of VM ghost:a" "$out"
check_empty "nothing else is reported: nothing of group real or other" \
        "$(grep -v -e ghost -e "${G[bridge]}" -e "${G[tap]}" -e "${G[files6]}" -e vmgrplant -e u4242 -e vbr-0123456789 \
                -e "^process $second_dnsmasq " -e "^process $helper " -e "(parent $zombie_parent)" \
                -e "^process $zombie_parent " -e "$state/real/vms/nope" <<<"$out")"

# --- removed again: nothing ------------------------------------------------

vmgr_netns_exec bash -c "set -e; $(declare -f remove_links); remove_links ${link_args[*]}"
[ "$VMGR_NET_MODE" = namespace ] && ip link delete vbr-0123456789
kill -KILL "${plants[@]}"
wait "${plants[@]}" 2>/dev/null || true
rm -rf "$state/ghost" "$state/ghost.json" "$state/real/vms" "$run/groups/ghost" "$run/agent/${G[tap]}.sock" \
        "$run/libvirt/config/libvirt/qemu/lib/domain-9-ghost:a" "$run/libvirt/run/libvirt/qemu/run/ghost:a.pid"
check_no_leaks "nothing once the plants are removed" real other

# --- kill -9 and a new vmgrd -------------------------------------------------

vmgr_stop_vmgrd KILL
vmgr_start_vmgrd
groups=$(busctl_as_user --json=short call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups |
        python3 -c 'import json,sys; print(" ".join(g[0] for g in json.load(sys.stdin)["data"][0]))')
echo "# after kill -9, the new vmgrd has: ${groups:-no group}"
# shellcheck disable=SC2086 # a list of names
check_no_leaks "after kill -9 and a new vmgrd: nothing but what its groups ($groups) own" $groups

vmgr_finish
