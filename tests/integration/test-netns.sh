#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Namespace mode, as a user outside group vmgr with a helper that has no
# file capabilities (lib.sh's namespace mode): vmgrd makes a user, network
# and PID namespace of its own, held by its child vmgrd-netns, and every
# group lives there.
#   - with no --network-mode at all, such a user gets namespace mode
#     (Manager.NetworkMode); the holder maps only the user's uid and gid,
#     is PID 1 of its PID namespace, and the groups' links are not in the
#     test's namespace;
#   - two VMs: `vmgrctl enter` pings both of their addresses (IPv6, IPv4)
#     and runs its command as the user in the holder's namespaces, with the
#     command's exit status; the guests ping each other over IPv6 and IPv4;
#     a guest downloads from the group's file server; the test's own
#     namespace does not reach them; another user gets in neither through
#     vmgrd (OpenNamespaces, vmgrctl enter) nor around it (nsenter);
#   - kill -9 of vmgrd: its holder keeps the group's QEMUs and bridge and
#     lets go of the lock; the next vmgrd attaches to it and adopts the
#     group (the same holder, namespace and QEMU; Run works); once it is
#     deleted nothing of it is left, and the same group can be made again;
#   - two users (both outside group vmgr) run groups of the same name side
#     by side, each in namespaces of its own;
#   - vmgrd on a bus with an abstract socket address (which belongs to a
#     network namespace) still connects and answers: its bus connection
#     stays in the namespace it started in;
#   - where user namespaces cannot be made (user.max_user_namespaces is 0
#     in a user namespace root makes for the purpose, not host-wide), vmgrd
#     exits non-zero with one sentence naming the setting.

export VMGR_NET_MODE=namespace
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools
vmgr_enter_netns "$@"

uid=$(id -u "$VMGR_USER")
gid=$(id -g "$VMGR_USER")
timings=()

vmgr_start_bus

# --- no --network-mode: a user outside group vmgr gets namespace mode --------

VMGR_DEFAULT_MODE=1 vmgr_start_vmgrd
check_eq "no --network-mode, uncapped helper, user outside vmgr: NetworkMode is namespace" 's "namespace"' \
        "$(busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager NetworkMode 2>&1)"

holder=$(vmgr_holder_pid) || holder=
check_match "vmgrd has a child vmgrd-netns" '^[0-9]+$' "$holder"
holder=${holder:-0}
check_eq "the holder runs as $VMGR_USER" "$VMGR_USER" "$(ps -o user= -p "$holder" 2>&1)"
for ns in user net pid; do
        check "the holder's $ns namespace is not the test's" \
                test "$(readlink "/proc/$holder/ns/$ns" 2>&1)" != "$(readlink "/proc/self/ns/$ns")"
done
check_eq "vmgrd itself stays in the test's network namespace" "$(readlink /proc/self/ns/net)" \
        "$(readlink "/proc/$VMGRD_PID/ns/net" 2>&1)"
check_eq "the user namespace maps only uid $uid, to itself" "$uid $uid 1" \
        "$(xargs <"/proc/$holder/uid_map" 2>&1)"
check_eq "... and only gid $gid, to itself" "$gid $gid 1" "$(xargs <"/proc/$holder/gid_map" 2>&1)"
check_match "the holder is PID 1 of its PID namespace" '[[:space:]]1$' \
        "$(grep '^NSpid:' "/proc/$holder/status" 2>&1)"

# --- a group with two VMs, reached from inside ----------------------------------

t0=$(vmgr_now_ms)
check "CreateGroup g with VMs a and b, both with IPv4" \
        vmgrctl_as_user group create g -q --vm a:ipv4 --vm b:ipv4
gpath=$(vmgr_group_path g)
out=$(busctl_as_user --timeout=200 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 180000000 2>&1) && rc=0 || rc=$?
check_eq "both VMs are ready" 0 "$rc${out:+ $out}"
timings+=("CreateGroup to both VMs ready: $(($(vmgr_now_ms) - t0)) ms")
vmgr_load_expected E g
check_empty "no link of the group in the test's own namespace" \
        "$(ip -o link show | grep -E " (vbr|tap|ta4)-" || true)"
check_empty "no group address on the test's own lo" "$(ip -6 -o addr show dev lo | awk '$4 ~ /^fd/')"
check "the bridge ${E[bridge]} is in the holder's namespace" vmgr_netns_exec ip -o link show dev "${E[bridge]}"

declare -A ip6 ip4
has_ipv4() {
        [ -n "$(vmgr_vm_prop "$1" IPv4)" ]
}
for vm in a b; do
        p=$(vmgr_vm_path g "$vm")
        vmgr_load_expected EV g "$vm"
        ip6[$vm]=$(vmgr_vm_prop "$p" IPv6)
        check_eq "VM $vm: IPv6 is the derived address" "${EV[ipv6]}" "${ip6[$vm]}"
        vmgr_wait_until 30 has_ipv4 "$p" || true
        ip4[$vm]=$(vmgr_vm_prop "$p" IPv4)
        check_match "VM $vm: an IPv4 address in ${E[subnet4]}" "^${E[subnet4]%.0/24}\\.[0-9]+$" "${ip4[$vm]}"
done

for vm in a b; do
        check "vmgrctl enter -- ping -6 VM $vm (${ip6[$vm]})" \
                vmgrctl_as_user enter -- ping -6 -n -q -c 1 -w 10 "${ip6[$vm]}"
        check "vmgrctl enter -- ping -4 VM $vm (${ip4[$vm]:-none})" \
                vmgrctl_as_user enter -- ping -4 -n -q -c 1 -w 10 "${ip4[$vm]:-0.0.0.0}"
done
check_fails "the test's own namespace does not reach VM a" ping -6 -n -q -c 1 -w 2 "${ip6[a]}"

check_eq "vmgrctl enter runs the command as $VMGR_USER" "$uid $gid" "$(vmgrctl_as_user enter -- sh -c 'echo $(id -u) $(id -g)' 2>&1)"
check_eq "... in the holder's network namespace" "$(readlink "/proc/$holder/ns/net")" \
        "$(vmgrctl_as_user enter -- readlink /proc/self/ns/net 2>&1)"
check_eq "... and its user namespace" "$(readlink "/proc/$holder/ns/user")" \
        "$(vmgrctl_as_user enter -- readlink /proc/self/ns/user 2>&1)"
vmgrctl_as_user enter -- sh -c 'exit 7' && rc=0 || rc=$?
check_eq "vmgrctl enter exits with the command's status" 7 "$rc"

# Another local user cannot get in: not through vmgrd (which hands the
# namespaces to its own user only), not around it (the kernel lets only
# the user namespace's owner, or root, join it).
out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager OpenNamespaces 2>&1) || true
check_match "$VMGR_USER: OpenNamespaces hands out two fds" '^hh [0-9]+ [0-9]+$' "$out"
for other in "$VMGR_USER2" vmgr-test; do
        out=$(vmgr_as "$other" dbus-send --session --print-reply --dest=org.vmgr1 /org/vmgr1 \
                org.vmgr1.Manager.OpenNamespaces 2>&1) || true
        check_match "$other: OpenNamespaces is refused" '^Error org\.vmgr1\.Error\.PermissionDenied' "$out"
        out=$(vmgr_as "$other" "$VMGRCTL" enter -- readlink /proc/self/ns/net 2>&1) && rc=0 || rc=$?
        check "$other: vmgrctl enter fails (exit $rc)" test "$rc" -ne 0 -a "$out" != "$(readlink "/proc/$holder/ns/net")"
        out=$(vmgr_as "$other" nsenter -t "$holder" -U -n --preserve-credentials -- readlink /proc/self/ns/net 2>&1) &&
                rc=0 || rc=$?
        check "$other: nsenter into the holder's namespaces fails (exit $rc)" \
                test "$rc" -ne 0 -a "$out" != "$(readlink "/proc/$holder/ns/net")"
done
check_eq "$VMGR_USER itself may nsenter them" "$(readlink "/proc/$holder/ns/net")" \
        "$(vmgr_as_user nsenter -t "$holder" -U -n --preserve-credentials -- readlink /proc/self/ns/net 2>&1)"

# run_vm VM CMD...: "STATUS|OUTPUT" of CMD run in guest VM of group g.
run_vm() {
        local out rc=0
        out=$(vmgrctl_as_user exec g "$1" -- "${@:2}" 2>&1) || rc=$?
        echo "$rc|$out"
}
check_match "a pings b over IPv6" '^0\|' "$(run_vm a ping -c 1 -W 5 "${ip6[b]}")"
check_match "a pings b over IPv4" '^0\|' "$(run_vm a ping -c 1 -W 5 "${ip4[b]:-0.0.0.0}")"
check_match "b pings a over IPv6" '^0\|' "$(run_vm b ping -c 1 -W 5 "${ip6[a]}")"
check_match "b pings a over IPv4" '^0\|' "$(run_vm b ping -c 1 -W 5 "${ip4[a]:-0.0.0.0}")"

files=$VMGR_TMP/files
mkdir -m 0755 "$files"
head -c $((1024 * 1024 + 7)) /dev/urandom >"$files/blob"
chmod 0644 "$files/blob"
sha=$(sha256sum <"$files/blob")
sha=${sha%% *}
url=$(vmgrctl_as_user serve g "$files/blob" 2>&1) || true
check_eq "the group serves a file" "http://[${E[files6]}]:8080/blob" "$url"
check_eq "guest a downloads it from the file server" "0|$sha  /tmp/blob" \
        "$(run_vm a sh -c "wget -q -O /tmp/blob '$url' && sha256sum /tmp/blob")"

# --- kill -9: the holder keeps the groups; the next vmgrd finds it ---------------------

old_holder=$holder
old_netns=$(readlink "/proc/$holder/ns/net")
qemu_a=$(vmgr_qemu_pids g a)
check_match "QEMU runs before the kill" '^[0-9]+' "$qemu_a"
vmgr_stop_vmgrd KILL
check_eq "vmgrd killed by SIGKILL" 137 "$VMGRD_STATUS"
lock_is_free() {
        flock -n "$VMGR_TMP/run/vmgr/vmgrd.lock" true
}
vmgr_wait_until 5 lock_is_free || true
check "the holder let go of vmgrd's lock" lock_is_free
check "the holder outlives vmgrd" kill -0 "$old_holder"
check_eq "... and VM a's QEMU" "$qemu_a" "$(vmgr_qemu_pids g a)"
check "... and the bridge ${E[bridge]}" nsenter -t "$old_holder" -n ip -o link show dev "${E[bridge]}"
state_left=$(find "$VMGR_TMP/state/vmgr" ! -type d 2>/dev/null | wc -l)
echo "# files left in the state dir after the kill (for the next vmgrd): $state_left"

# --- the next vmgrd attaches to it and adopts the group ------------------------------------

t0=$(vmgr_now_ms)
vmgr_start_vmgrd
timings+=("the next vmgrd's start to its name, with the group of two VMs adopted: $(($(vmgr_now_ms) - t0)) ms")
check_eq "the new vmgrd uses the old holder" "$old_holder" "$(vmgr_holder_pid)"
check_eq "... in the same network namespace" "$old_netns" "$(readlink "/proc/$(vmgr_holder_pid)/ns/net")"
check_eq "GroupsAdopted is 1" "u 1" \
        "$(busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager GroupsAdopted 2>&1)"
check_eq "VM a's QEMU is the same" "$qemu_a" "$(vmgr_qemu_pids g a)"
check "g is ready again" vmgrctl_as_user wait g --timeout 60
check_eq "Run in a after the crash" "0|a" "$(run_vm a hostname)"
check_empty "no link of the group in the test's namespace" "$(ip -o link show | grep -E ' (vbr|tap|ta4)-' || true)"
check "delete g" vmgrctl_as_user group delete g
# (vmgrd's own libvirtd, started for the adoption, stays with vmgrd.)
lv=$(pgrep -P "$VMGRD_PID" -x libvirtd || echo none)
check_empty "nothing of g is left, in the holder's namespace or outside" \
        "$(vmgr_leftovers | grep -v -e '^file ' -e "^process $lv libvirtd\$" || true)"
check "the same group g can be created again (network only)" vmgrctl_as_user -q group create g
check "its bridge ${E[bridge]} is in the holder's namespace" vmgr_netns_exec ip -o link show dev "${E[bridge]}"

# --- two users outside group vmgr, the same group names, side by side ---------------------

vmgr_start_user_b
check_eq "B ($VMGR_USER2, outside vmgr too) runs in namespace mode" 's "namespace"' \
        "$(as_b busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager NetworkMode 2>&1)"
as_b vmgr_load_expected EB g
check "B creates its group g as well" as_b vmgrctl_as_user -q group create g
check "A's g and B's g have different bridges (derived from the uid)" test "${E[bridge]}" != "${EB[bridge]}"
check "A's bridge is in A's namespace" vmgr_netns_exec ip -o link show dev "${E[bridge]}"
check "B's bridge is in B's namespace" as_b vmgr_netns_exec ip -o link show dev "${EB[bridge]}"
check "A's namespace has no link of B's" vmgr_netns_exec bash -c "! ip link show dev ${EB[bridge]} 2>/dev/null"
check "B's namespace has no link of A's" as_b vmgr_netns_exec bash -c "! ip link show dev ${E[bridge]} 2>/dev/null"
check "A's and B's holders have different network namespaces" test \
        "$(readlink "/proc/$(vmgr_holder_pid)/ns/net")" != "$(readlink "/proc/$(as_b vmgr_holder_pid)/ns/net")"
check_eq "B's group is running" running "$(as_b vmgr_group_prop "$(as_b vmgr_group_path g)" State)"
check "A deletes its g" vmgrctl_as_user group delete g
check_eq "B's g is still running" running "$(as_b vmgr_group_prop "$(as_b vmgr_group_path g)" State)"
check "B's bridge is still there" as_b vmgr_netns_exec ip -o link show dev "${EB[bridge]}"
check "B deletes its g" as_b vmgrctl_as_user group delete g
vmgr_stop_user_b
check_empty "nothing of B is left" "$(as_b vmgr_leftovers)"

vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
check_empty "nothing of A is left" "$(vmgr_leftovers)"

# --- a bus on an abstract socket, which only its network namespace reaches ----------------

kill "$VMGR_BUS_PID"
wait "$VMGR_BUS_PID" 2>/dev/null || true
VMGR_BUS_ADDRESS="unix:abstract=vmgr-test-netns-${VMGR_TMP##*.}"
vmgr_start_bus
check "the test's bus listens on $VMGR_BUS_ADDRESS" busctl_as_user call org.freedesktop.DBus \
        /org/freedesktop/DBus org.freedesktop.DBus GetId
if vmgr_start_vmgrd; then
        vmgr_ok "vmgrd in namespace mode connects to a bus on an abstract socket and answers"
        check_eq "... in namespace mode" 's "namespace"' \
                "$(busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager NetworkMode 2>&1)"
        check "... and makes a group" vmgrctl_as_user -q group create ab
        check "... whose bridge is in its namespace" vmgr_netns_exec ip -o link show dev \
                "$(vmgr_group_prop "$(vmgr_group_path ab)" Bridge)"
        check "... and deletes it" vmgrctl_as_user group delete ab
        vmgr_stop_vmgrd TERM
        check_eq "... and exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
else
        vmgr_not_ok "vmgrd in namespace mode connects to a bus on an abstract socket and answers"
fi

# --- no user namespaces ---------------------------------------------------------------------

# Root makes a user namespace (everything mapped to itself, so the users stay
# who they are) whose own user.max_user_namespaces is 0 - the limit counts
# for every namespace below it; the host's setting is untouched - and runs
# vmgrd as the test user in there.
host_max=$(cat /proc/sys/user/max_user_namespaces)
unshare --user sleep 60 &
limiter=$!
for ((i = 0; i < 100; i++)); do
        [ "$(readlink "/proc/$limiter/ns/user")" != "$(readlink /proc/self/ns/user)" ] && break
        sleep 0.02
done
echo "0 0 65536" >"/proc/$limiter/uid_map"
echo "0 0 65536" >"/proc/$limiter/gid_map"
vmgr_as_argv "$VMGR_USER"
vmgr_mode_args
echo "=== vmgrd where user namespaces cannot be made, started $(date +%T.%N)" >>"$VMGR_TMP/vmgrd.log"
out=$(timeout 30 nsenter -t "$limiter" -U -- bash -c 'echo 0 >/proc/sys/user/max_user_namespaces && exec "$@"' - \
        "${VMGR_AS_ARGV[@]}" "$VMGRD" --netadm "$VMGR_NETADM" "${VMGR_MODE_ARGS[@]}" \
        --state-dir "$VMGR_TMP/state/vmgr" --runtime-dir "$VMGR_TMP/run/vmgr" </dev/null 2>&1) && rc=0 || rc=$?
echo "$out" >>"$VMGR_TMP/vmgrd.log"
kill "$limiter"
wait "$limiter" 2>/dev/null || true
check "without user namespaces vmgrd exits non-zero (not killed by the 30 s timeout)" \
        test "$rc" -ne 0 -a "$rc" -ne 124
check_match "... with a sentence naming user.max_user_namespaces" 'user\.max_user_namespaces' "$out"
check_eq "... in one line" 1 "$(grep -c 'max_user_namespaces' <<<"$out")"
check_eq "the host's user.max_user_namespaces is untouched" "$host_max" "$(cat /proc/sys/user/max_user_namespaces)"
check_empty "... and vmgrd left nothing" "$(vmgr_leftovers)"

printf '# %s\n' "${timings[@]}"
vmgr_finish
