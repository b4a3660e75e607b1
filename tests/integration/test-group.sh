#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A group's whole life through the real clients: create, show and delete with
# vmgrctl and busctl; every link, address, route and property where the
# groups live (the test's namespace, or vmgrd's own in namespace mode)
# against the derivation recomputed in bash; the group's dnsmasq answering a
# router solicitation and a DHCPv4 request from a veth port of the bridge;
# the error names and the client's sentences and exit statuses; dnsmasq
# restarted after kill -9; nothing left after delete.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"

# --- no vmgrd: vmgrctl says so and exits 4 -------------------------------

check_unreachable() {
        local name=$1 out rc=0
        out=$(vmgrctl_as_user group list 2>&1 >/dev/null) || rc=$?
        check_eq "$name: vmgrctl exits 4" 4 "$rc"
        check_match "$name: vmgrctl says why in one line" '^vmgrctl: [^'$'\n'']*(bus|vmgrd)[^'$'\n'']*$' "$out"
}
check_unreachable "no bus"
vmgr_start_bus
check_unreachable "bus without vmgrd"

vmgr_start_vmgrd

# --- create with vmgrctl, compare everything with the derivation -----------

group=g1
vmgr_load_expected exp "$group"
br=${exp[bridge]}

out=$(vmgrctl_as_user group create "$group" 2>&1) && rc=0 || rc=$?
check_eq "vmgrctl group create $group" 0 "$rc"
check_match "create prints the group's bridge" "Bridge: +$br" "$out"

path=$(vmgr_group_path "$group")
check_match "GetGroup returns a group object path" '^/org/vmgr1/group/.' "$path"

check_eq "State is running" running "$(vmgr_group_prop "$path" State)"
check_eq "Name property" "$group" "$(vmgr_group_prop "$path" Name)"
for p in Bridge:bridge Prefix6:prefix6 Gateway6:gateway6 Management6:management6 Logs6:logs6 \
        Files6:files6 Subnet4:subnet4 Gateway4:gateway4; do
        check_eq "property ${p%%:*} equals the derivation" "${exp[${p#*:}]}" "$(vmgr_group_prop "$path" "${p%%:*}")"
done
check_eq "Dnsmasq is running" running "$(vmgr_group_prop "$path" Dnsmasq)"

# The value of "Key: value" line $1 in text $2.
field() {
        sed -n "s/^$1: *//p" <<<"$2"
}
show=$(vmgrctl_as_user group show "$group" 2>&1) || true
addr=$(vmgrctl_as_user addr "$group" 2>&1) || true
for p in Bridge:bridge Prefix6:prefix6 Gateway6:gateway6 Management6:management6 Subnet4:subnet4 Gateway4:gateway4; do
        check_eq "group show: ${p%%:*}" "${exp[${p#*:}]}" "$(field "${p%%:*}" "$show")"
        check_eq "addr (offline): ${p%%:*}" "${exp[${p#*:}]}" "$(field "${p%%:*}" "$addr")"
done

if [ "$VMGR_NET_MODE" = namespace ]; then
        check_empty "namespace mode: no link of the group in the test's own namespace" \
                "$(ip -o link show | grep -E " (vbr|tap|ta4)-" || true)"
fi
check "bridge $br exists and is a bridge" vmgr_netns_exec bash -c "ip -d -o link show dev '$br' | grep -q ' bridge '"
check_match "bridge is marked as vmgr's" "alias vmgr:$(id -u "$VMGR_USER"):$group( |\\\\|$)" \
        "$(vmgr_netns_exec ip -o link show dev "$br" 2>&1)"
addrs6=$(vmgr_netns_exec ip -6 -o addr show dev "$br" scope global 2>&1 | awk '{ print $4 }')
check_eq "gateway6/64 is the bridge's only global IPv6 address" "${exp[gateway6]}/64" "$addrs6"
addrs4=$(vmgr_netns_exec ip -4 -o addr show dev "$br" 2>&1 | awk '{ print $4 }')
check_eq "gateway4/24 is the bridge's only IPv4 address" "${exp[gateway4]}/24" "$addrs4"
for a in management6 logs6 files6; do
        check "$a/128 on lo" vmgr_netns_exec bash -c "ip -6 -o addr show dev lo | grep -q ' ${exp[$a]}/128 '"
done
check_match "route to the /64 via the bridge, from management6" \
        "^${exp[prefix6]} proto kernel src ${exp[management6]} metric 256( |$)" \
        "$(vmgr_netns_exec ip -6 route show exact "${exp[prefix6]}" dev "$br" 2>&1)"
check_eq "accept_ra=0 on the bridge" 0 "$(vmgr_netns_exec sysctl -n "net.ipv6.conf.$br.accept_ra" 2>&1)"

# --- dnsmasq answers like it would to a VM --------------------------------

vmgr_peer_create "$br"
ra=$(vmgr_peer_ra 2>&1) || true
check_match "router advertisement carries the group prefix" "Prefix +: ${exp[prefix6]}" "$ra"
lladdr=$(vmgr_netns_exec ip -6 -o addr show dev "$br" scope link | awk '{ sub("/.*", "", $4); print $4 }')
check_match "router advertisement comes from the bridge's link-local address" "from ${lladdr:-fe80::}$" "$ra"
lease=$(vmgr_peer_dhcp4) || true
net4=${exp[subnet4]%.0/24}
check_match "DHCPv4 lease inside ${exp[subnet4]}" "^${net4//./\\.}\\.([2-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])$" "$lease"

# --- dnsmasq is supervised: kill -9, it comes back ------------------------

rundir=$(vmgr_group_prop "$path" RuntimeDirectory)
# The pid file holds the pid where dnsmasq runs: in namespace mode, in
# vmgrd's PID namespace; ps here needs the pid in the test's.
dnsmasq_pid() {
        local p
        p=$(cat "$rundir/dnsmasq.pid" 2>/dev/null) || return 0
        [ -n "$p" ] && vmgr_pid_outside "$p"
        return 0
}
old_pid=$(dnsmasq_pid)
old_restarts=$(vmgr_group_prop "$path" DnsmasqRestarts)
check_match "dnsmasq.pid names a running dnsmasq" '^dnsmasq$' "$(ps -o comm= -p "${old_pid:-0}" || true)"
if [ -n "$old_pid" ]; then
        kill -KILL "$old_pid"
        new_pid=
        for ((i = 0; i < 500; i++)); do
                new_pid=$(dnsmasq_pid)
                if [ -n "$new_pid" ] && [ "$new_pid" != "$old_pid" ] &&
                        [ "$(ps -o comm= -p "$new_pid" || true)" = dnsmasq ] &&
                        [ "$(vmgr_group_prop "$path" DnsmasqRestarts)" = $((old_restarts + 1)) ]; then
                        break
                fi
                sleep 0.02
        done
        check_match "a new dnsmasq runs after kill -9" '^dnsmasq$' "$(ps -o comm= -p "${new_pid:-0}" || true)"
        check_eq "DnsmasqRestarts went up by one" $((old_restarts + 1)) "$(vmgr_group_prop "$path" DnsmasqRestarts)"
        check_eq "Dnsmasq is running again" running "$(vmgr_group_prop "$path" Dnsmasq)"
        check_eq "the group stays running" running "$(vmgr_group_prop "$path" State)"
        ra=$(vmgr_peer_ra 2>&1) || true
        check_match "the new dnsmasq advertises the prefix" "Prefix +: ${exp[prefix6]}" "$ra"
fi
vmgr_peer_delete

# --- a second group through busctl ---------------------------------------

vmgr_load_expected exp2 g2
out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss g2 "" 2>&1) || true
check_eq "busctl CreateGroup returns the object path" "o \"$(vmgr_group_path g2)\"" "$out"
check_eq "g2's bridge equals the derivation" "${exp2[bridge]}" "$(vmgr_group_prop "$(vmgr_group_path g2)" Bridge)"
out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups 2>&1) || true
check_match "ListGroups has both groups" "^a\\(so\\) 2 " "$out"

# --- errors ----------------------------------------------------------------

check_eq "duplicate name: GroupExists" org.vmgr1.Error.GroupExists "$(vmgr_call_error CreateGroup "$group" "")"
out=$(vmgrctl_as_user group create "$group" 2>&1 >/dev/null) && rc=0 || rc=$?
check_eq "vmgrctl create of an existing group exits 1" 1 "$rc"
check_match "... and says so in one line" "^vmgrctl: [^"$'\n'"]*$group" "$out"

bad_names=("" ".x" "-x" "$(printf 'a%.0s' {1..64})" "a/b" "a b" "grüppe")
for bad in "${bad_names[@]}"; do
        check_eq "name '$bad': InvalidName" org.vmgr1.Error.InvalidName "$(vmgr_call_error CreateGroup "$bad" "")"
        out=$(vmgrctl_as_user group create -- "$bad" 2>&1 >/dev/null) && rc=0 || rc=$?
        check_eq "name '$bad': vmgrctl exits 2" 2 "$rc"
        check_match "name '$bad': vmgrctl says why in one line" "^vmgrctl: [^"$'\n'"]*name[^"$'\n'"]*$" "$out"
done
check_empty "invalid names left nothing behind" "$(vmgr_netns_exec ip -o link show | grep -v -e ' lo:' -e " $br:" -e " ${exp2[bridge]}:" || true)"

check_eq "GetGroup of a missing group: NoSuchGroup" org.vmgr1.Error.NoSuchGroup "$(vmgr_call_error GetGroup nope)"
check_eq "DeleteGroup of a missing group: NoSuchGroup" org.vmgr1.Error.NoSuchGroup "$(vmgr_call_error DeleteGroup nope)"
for verb in show delete; do
        out=$(vmgrctl_as_user group "$verb" nope 2>&1 >/dev/null) && rc=0 || rc=$?
        check_eq "vmgrctl group $verb of a missing group exits 3" 3 "$rc"
        check_match "... and says so in one line" "^vmgrctl: [^"$'\n'"]*nope[^"$'\n'"]*$" "$out"
done

# --- the installed introspection XML is what the live daemon says ---

# The <interface> element of interface $2 in an introspection document $1, one line per tag.
iface_element() {
        printf '%s\n' "$1" | sed -n "/<interface name=\"$2\">/,/<\/interface>/p" | sed 's/^ *//'
}
for pair in "org.vmgr1.Manager /org/vmgr1" "org.vmgr1.Group $(vmgr_group_path g2)"; do
        set -- $pair
        live=$(busctl_as_user introspect --xml-interface org.vmgr1 "$2")
        installed=$(cat "$VMGR_DESTDIR/usr/share/dbus-1/interfaces/$1.xml")
        check_match "installed $1.xml has argument names" '<arg type="[a-z(){}]*" name="[a-z_]+"' "$installed"
        check_eq "installed $1.xml matches the live daemon" "$(iface_element "$live" "$1")" \
                "$(iface_element "$installed" "$1")"
done

# --- delete: through the Group object (busctl) and vmgrctl; nothing left ---

check "busctl Group.Delete g2" busctl_as_user call org.vmgr1 "$(vmgr_group_path g2)" org.vmgr1.Group Delete
check "vmgrctl group delete $group" vmgrctl_as_user group delete "$group"
check_eq "ListGroups is empty" "a(so) 0" "$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups 2>&1)"
check_empty "nothing left after delete" "$(vmgr_leftovers)"

# --- the helper's pools: a group whose networks lie outside them is refused ---

# The helper reads its policy when vmgrd starts it: restart vmgrd with an IPv6
# pool that holds no group at all (every derived /64 lies in fd00::/8).
# The pools keep groups clear of the host's networks: a host-mode matter.
if [ "$VMGR_NET_MODE" = host ]; then
        vmgr_stop_vmgrd
        vmgr_policy_set 'ipv4_pool = 10.0.0.0/8' 'ipv6_pool = fc00::/8'
        # No --network-mode: the helper has its capabilities and its policy
        # admits the user, so vmgrd picks host mode by itself.
        VMGR_DEFAULT_MODE=1 vmgr_start_vmgrd
        check_eq "no --network-mode, setcap'd helper, a member of vmgr: NetworkMode is host" 's "host"' \
                "$(busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager NetworkMode 2>&1)"
        err=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss outside-pool "" 2>&1) || true
        check_eq "a group outside ipv6_pool: AddressConflict" org.vmgr1.Error.AddressConflict "$(vmgr_call_error CreateGroup outside-pool "")"
        check_match "... and the error names the pool" "fc00::/8" "$err"
        check_empty "nothing left after the refusal" "$(vmgr_leftovers)"
        vmgr_policy_set 'ipv4_pool = 10.0.0.0/8' 'ipv6_pool = fd00::/8'
else
        echo "# skip: the helper's pools (host mode only: they keep groups clear of the host's networks)"
fi

vmgr_finish
