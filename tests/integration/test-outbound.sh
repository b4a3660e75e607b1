#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Outbound groups (spec "outbound": true): their guests reach the host's
# network through pasta, in namespace mode only.
#
# The "host" here is the test's own network namespace. pasta needs a
# routable interface in it, so it gets a veth to a second namespace the test
# makes ("the peer", 192.0.2.1 and 2001:db8::1, also holding 198.51.100.7
# and 2001:db8:1::7 on its lo) with default routes through it. Every server
# a guest reaches runs in the test's namespace (on loopback) or in the peer:
# nothing leaves the namespaces this test made.
#
# 0. vmgrd in namespace mode before the test's namespace has a default
#    route: CreateGroup with outbound is InvalidArgs, saying why.
# 1. Host mode: the setcap'd helper refuses OUTBOUND_ENABLE, so a member of
#    group vmgr never gets forwarding or NAT on the host through it; vmgrd
#    refuses an outbound group with InvalidArgs.
# 2. The helper and pasta in a user and network namespace of the test
#    user's own, made by hand as namespace mode makes it: an outbound
#    group's guest (a veth) fetches from the host's loopback through
#    pasta's gateway address, and from the peer; a group without outbound
#    reaches neither, nor does a guest posing with another group's address;
#    deleting the group takes its outbound away.
# 3. vmgrd in namespace mode: pasta started for the first outbound group,
#    its guest reaches the host, pasta restarted when it dies, gone when
#    vmgrd exits or is killed.
#
# vmgrd runs in both modes here, as the test chooses: a test of one mode.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
for tool in nft pasta curl python3 nsenter; do
        if ! command -v "$tool" >/dev/null; then
                echo "# skipped: $tool is missing (run tools/deps)"
                exit 77
        fi
done
vmgr_enter_netns "$@"

uid=$(id -u "$VMGR_USER")
gid=$(id -g "$VMGR_USER")
call=$VMGR_BUILD_DIR/netadm/vmgr-netadm-call
python=/usr/bin/python3

# --- 0. no routable interface yet ----------------------------------------------

# Before the test's namespace has a default route: vmgrd says why outbound
# cannot work instead of pasta's "No external routable interface".
vmgr_start_bus
vmgr_start_vmgrd --network-mode namespace
check_eq "no default route: CreateGroup with outbound is InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs \
        "$(vmgr_call_error CreateGroup obnoroute '{"outbound": true}')"
out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss obnoroute '{"outbound": true}' 2>&1) || true
check_match "no default route: vmgrd says so" "needs a default route in vmgrd's own network namespace" "$out"
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"

# --- the host's network: a veth to the peer ----------------------------------

peer=vmgrob-${VMGR_TMP##*.}
ip netns add "$peer"
VMGR_PEER_NS+=("$peer")
ip link add ob-host type veth peer name ob-peer netns "$peer"
ip addr add 192.0.2.2/24 dev ob-host
ip -6 addr add 2001:db8::2/64 dev ob-host nodad
ip link set ob-host up
ip route add default via 192.0.2.1
ip -6 route add default via 2001:db8::1
ip -n "$peer" link set lo up
ip -n "$peer" addr add 192.0.2.1/24 dev ob-peer
ip -n "$peer" -6 addr add 2001:db8::1/64 dev ob-peer nodad
ip -n "$peer" addr add 198.51.100.7/32 dev lo
ip -n "$peer" -6 addr add 2001:db8:1::7/128 dev lo
ip -n "$peer" link set ob-peer up

# A server that answers every request with the address it came from. (Not
# python's http.server: it looks its own address up in DNS.)
cat >"$VMGR_TMP/server.py" <<'EOF'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(64)
while True:
    c, peer = s.accept()
    with open(sys.argv[3], "a") as log:
        log.write(peer[0] + "\n")
    c.settimeout(2)
    try:
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nfrom " + peer[0].encode() + b"\n")
    except OSError:
        pass
    c.close()
EOF

# server NAME ADDRESS PORT [PREFIX...]: run the server, logging each
# client's address to $VMGR_TMP/NAME.log; return once it listens.
server() {
        local name=$1 addr=$2 port=$3 i
        shift 3
        : >"$VMGR_TMP/$name.log"
        "$@" "$python" "$VMGR_TMP/server.py" "$addr" "$port" "$VMGR_TMP/$name.log" >/dev/null 2>&1 &
        for ((i = 0; i < 250; i++)); do
                "$@" ss -Hltn "sport = :$port" | grep -q . && return 0
                sleep 0.02
        done
        echo "# error: no server on $addr port $port" >&2
        return 1
}
server host4 127.0.0.1 8000
server host6 ::1 8001
server peer4 198.51.100.7 8002 ip netns exec "$peer"
server peer6 2001:db8:1::7 8003 ip netns exec "$peer"

# fetch GUEST URL: the body a guest's GET of URL returns.
fetch() {
        ip netns exec "${ns[$1]}" curl -sS -g --fail --connect-timeout 2 --max-time 4 "$2"
}
# fetch_ok GUEST URL: fetch what must work, with two more tries (on a loaded
# machine a first connection through pasta can miss the 4 s); prints the
# last try's output. What must fail keeps fetch's one short try.
fetch_ok() {
        local out i
        for ((i = 0; i < 3; i++)); do
                out=$(fetch "$@" 2>&1) && break
        done
        echo "$out"
}

# --- 1. host mode: the helper refuses ------------------------------------------

# As a member of group vmgr would, with the setcap'd helper and no vmgrd.
out=$(vmgr_as_user "$call" "$VMGR_NETADM" group-create obhost 2>&1)
check_match "host mode: the helper creates a group" "created bridge" "$out"
rc=0
out=$(vmgr_as_user "$call" "$VMGR_NETADM" outbound-enable obhost 2>&1) || rc=$?
check_eq "host mode: the helper refuses outbound-enable" 1 "$rc"
check_match "host mode: it says outbound is for namespace mode only" "namespace mode only" "$out"
check_eq "host mode: IPv4 forwarding stays off" 0 "$(cat /proc/sys/net/ipv4/ip_forward)"
check_eq "host mode: IPv6 forwarding stays off" 0 "$(cat /proc/sys/net/ipv6/conf/all/forwarding)"
check_fails "host mode: no nat chain in the host's table" nft list chain inet vmgr postrouting
check_empty "host mode: the outbound set stays empty" \
        "$(nft list set inet vmgr outbound 2>/dev/null | grep elements || true)"
vmgr_as_user "$call" "$VMGR_NETADM" group-delete obhost >/dev/null 2>&1 || true

# vmgrd in host mode refuses an outbound group with a reason.
vmgr_start_vmgrd
check_eq "host mode: CreateGroup with outbound is InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs \
        "$(vmgr_call_error CreateGroup obvmgrd '{"outbound": true}')"
out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss obvmgrd '{"outbound": true}' 2>&1) || true
check_match "host mode: vmgrd says outbound is for namespace mode only" "namespace mode only" "$out"
printf '{"outbound": true}' >"$VMGR_TMP/outbound.json"
out=$(vmgrctl_as_user group create obvmgrd --spec "$VMGR_TMP/outbound.json" 2>&1) && rc=0 || rc=$?
check_match "host mode: vmgrctl says so and exits 2 (InvalidArgs)" "^2 vmgrctl: outbound is available in namespace mode only" "$rc $out"
check_eq "host mode: no group was made" "" "$(vmgr_group_path obvmgrd)"
check "host mode: a group without outbound is made as before" vmgrctl_as_user -q group create obplain
check "host mode: and deleted" vmgrctl_as_user group delete obplain
vmgr_stop_vmgrd TERM
check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"

# --- 2. the helper and pasta in the user's own namespace -----------------------

# The namespace holder, as vmgrd's namespace mode makes it: a user
# namespace with the user's uid mapped to itself, and a network namespace.
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" unshare --user --net --map-user="$uid" --map-group="$gid" sleep infinity &
holder=$!
for ((i = 0; i < 250; i++)); do
        [ "$(readlink "/proc/$holder/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.02
done

# in_ns CMD...: run CMD as the test user inside the holder's namespaces
# (the helper's file capabilities then count there only).
in_ns() {
        vmgr_as_user nsenter -t "$holder" -U -n --preserve-credentials "$@"
}
# As root, in the holder's network namespace (to wire up guests).
in_ns_root() {
        nsenter -t "$holder" -n "$@"
}

# The pasta command line vmgrd uses (daemon/outbound.c).
start=$(date +%s%N)
vmgr_as_user pasta -f -q --config-net -I vmgr-pasta -t none -u none -T none -U none \
        --no-dhcp --no-dhcpv6 --no-ra -l "$VMGR_TMP/pasta.log" -P "$VMGR_TMP/pasta.pid" \
        --netns "/proc/$holder/ns/net" --userns "/proc/$holder/ns/user" 2>"$VMGR_TMP/pasta.err" &
for ((i = 0; i < 500; i++)); do
        [ -s "$VMGR_TMP/pasta.pid" ] && break
        sleep 0.01
done
echo "# pasta ready after $((($(date +%s%N) - start) / 1000000)) ms"
check "pasta is ready (pid file written)" test -s "$VMGR_TMP/pasta.pid"
check_match "pasta copied the host's IPv4 address into the namespace" "192.0.2.2/24" \
        "$(in_ns_root ip -o addr show dev vmgr-pasta)"
check_match "pasta copied the host's IPv6 address into the namespace" "2001:db8::2/64" \
        "$(in_ns_root ip -o addr show dev vmgr-pasta)"
check_match "the namespace's default route leads to pasta" "default via 192.0.2.1 dev vmgr-pasta" \
        "$(in_ns_root ip route show default)"

out=$(in_ns "$call" "$VMGR_NETADM" group-create A 2>&1) || true
check_match "namespace: the helper creates group A" "created bridge" "$out"
out=$(in_ns "$call" "$VMGR_NETADM" group-create B 2>&1) || true
check_match "namespace: the helper creates group B" "created bridge" "$out"
check_fails "outbound-enable of a group that does not exist is refused" \
        in_ns "$call" "$VMGR_NETADM" outbound-enable nosuchgroup
check_eq "IPv4 forwarding is off before any outbound group" 0 \
        "$(in_ns_root cat /proc/sys/net/ipv4/ip_forward)"
check "namespace: the helper enables outbound for A" in_ns "$call" "$VMGR_NETADM" outbound-enable A
check "enabling it twice is harmless" in_ns "$call" "$VMGR_NETADM" outbound-enable A
check_eq "IPv4 forwarding is on in the namespace" 1 "$(in_ns_root cat /proc/sys/net/ipv4/ip_forward)"
check_eq "IPv6 forwarding is on in the namespace" 1 \
        "$(in_ns_root cat /proc/sys/net/ipv6/conf/all/forwarding)"
check_eq "the host's own forwarding is untouched" 0 "$(cat /proc/sys/net/ipv4/ip_forward)"
vmgr_load_expected exp_A A
vmgr_load_expected exp_B B
check_match "A's bridge is in the outbound set" "\"${exp_A[bridge]}\" . \"vmgr-pasta\"" \
        "$(in_ns_root nft list set inet vmgr outbound)"
check_fails "B's bridge is not" grep -q "${exp_B[bridge]}" <<<"$(in_ns_root nft list set inet vmgr outbound)"

# guest_add NAME GROUP HOST: a guest of GROUP in namespace ${ns[NAME]},
# addresses ${ip6[NAME]} (prefix + HOST) and ${ip4[NAME]} (the /24's .HOST),
# its veth a port of the group's bridge in the holder's namespace.
declare -A ns ip6 ip4
n=0
guest_add() {
        local name=$1 host=$3
        local -n e=exp_$2
        n=$((n + 1))
        ns[$name]=vmgrob-${VMGR_TMP##*.}-$n
        ip netns add "${ns[$name]}"
        VMGR_PEER_NS+=("${ns[$name]}")
        ip link add "obg$n" type veth peer name eth0 netns "${ns[$name]}"
        ip link set "obg$n" netns "/proc/$holder/ns/net"
        in_ns_root ip link set "obg$n" master "${e[bridge]}" up
        ip6[$name]=${e[prefix6]%/64}$host
        ip4[$name]=${e[subnet4]%.0/24}.$host
        ip netns exec "${ns[$name]}" sysctl -q -w net.ipv6.conf.eth0.accept_dad=0
        ip -n "${ns[$name]}" link set lo up
        ip -n "${ns[$name]}" addr add "${ip6[$name]}/64" dev eth0 nodad
        ip -n "${ns[$name]}" addr add "${ip4[$name]}/24" dev eth0
        ip -n "${ns[$name]}" link set eth0 up
        ip -n "${ns[$name]}" route replace default via "${e[gateway4]}"
        ip -n "${ns[$name]}" -6 route replace default via "${e[gateway6]}"
        # The bridge's own addresses must be past DAD to route.
        for ((i = 0; i < 150; i++)); do
                in_ns_root ip -6 -o addr show dev "${e[bridge]}" | grep -q tentative || break
                sleep 0.02
        done
}
guest_add a A 50
guest_add b B 50

check_eq "A's guest fetches from the host's loopback through pasta's IPv4 gateway" "from 127.0.0.1" \
        "$(fetch_ok a http://192.0.2.1:8000/ 2>&1)"
check_eq "A's guest fetches from the host's loopback through pasta's IPv6 gateway" "from ::1" \
        "$(fetch_ok a 'http://[2001:db8::1]:8001/' 2>&1)"
check_eq "A's guest fetches from the peer over IPv4, as the host's address" "from 192.0.2.2" \
        "$(fetch_ok a http://198.51.100.7:8002/ 2>&1)"
check_eq "A's guest fetches from the peer over IPv6, as the host's address" "from 2001:db8::2" \
        "$(fetch_ok a 'http://[2001:db8:1::7]:8003/' 2>&1)"

: >"$VMGR_TMP/host4.log"
: >"$VMGR_TMP/peer4.log"
check_fails "B's guest (no outbound) does not reach the host's loopback" fetch b http://192.0.2.1:8000/
check_fails "B's guest (no outbound) does not reach the peer" fetch b http://198.51.100.7:8002/
check_fails "B's guest (no outbound) does not reach the peer over IPv6" fetch b 'http://[2001:db8:1::7]:8003/'
check_fails "A's guest does not reach B's guest" \
        ip netns exec "${ns[a]}" curl -sS -g --connect-timeout 2 "http://${ip4[b]}:9/"
check_fails "A's guest does not reach the namespace's own address on pasta's interface" \
        ip netns exec "${ns[a]}" ping -n -q -c 1 -W 1 192.0.2.2

# A guest of A posing as B's guest: with B's address as its source, its
# connection must not leave (the answers would go to B's guest).
ip -n "${ns[a]}" addr add "${ip4[b]}/32" dev eth0
check_fails "A's guest cannot go out with B's guest's source address" \
        ip netns exec "${ns[a]}" curl -sS --connect-timeout 2 --interface "${ip4[b]}" http://198.51.100.7:8002/
ip -n "${ns[a]}" addr del "${ip4[b]}/32" dev eth0
check_empty "nothing reached the servers but what was allowed" \
        "$(cat "$VMGR_TMP/host4.log" "$VMGR_TMP/peer4.log")"

check "namespace: the helper deletes group A" in_ns "$call" "$VMGR_NETADM" group-delete A
check_empty "A's outbound element went with the group" \
        "$(in_ns_root nft list set inet vmgr outbound | grep elements || true)"
out=$(in_ns "$call" "$VMGR_NETADM" group-create A 2>&1) || true
ip netns delete "${ns[a]}"
guest_add a A 51
check_fails "a new group A without outbound does not inherit it" fetch a http://198.51.100.7:8002/
in_ns "$call" "$VMGR_NETADM" group-delete A >/dev/null 2>&1 || true
in_ns "$call" "$VMGR_NETADM" group-delete B >/dev/null 2>&1 || true
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
pkill -KILL -u "$VMGR_USER" -x pasta 2>/dev/null || true
pkill -KILL -u "$VMGR_USER" -x passt.avx2 2>/dev/null || true

# --- 3. vmgrd in namespace mode -------------------------------------------------

vmgr_start_vmgrd --network-mode namespace
holder=$(pgrep -P "$VMGRD_PID" -x vmgrd-netns || true)
check "vmgrd runs its namespace holder" test -n "$holder"
check_eq "no pasta before an outbound group" "" "$(pgrep -P "$VMGRD_PID" -f "^pasta " || true)"
check "a group without outbound is made" vmgrctl_as_user -q group create D
check_eq "still no pasta" "" "$(pgrep -P "$VMGRD_PID" -f "^pasta " || true)"
check "CreateGroup with outbound succeeds" \
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss C '{"outbound": true}'
pasta_pid=$(pgrep -P "$VMGRD_PID" -f "^pasta " || true)
check "vmgrd runs pasta as its child" test -n "$pasta_pid"
check_match "pasta attached to the holder's namespaces" "--netns /proc/$holder/ns/net --userns /proc/$holder/ns/user" \
        "$(tr '\0' ' ' <"/proc/$pasta_pid/cmdline" 2>/dev/null)"
sed -n 's/.*\(pasta (pid [0-9]*) is ready after [0-9.]* ms\).*/# vmgrd: \1/p' "$VMGR_TMP/vmgrd.log"
for g in D C; do
        echo "# $g's Timings: $(busctl_as_user get-property org.vmgr1 "$(vmgr_group_path "$g")" org.vmgr1.Group Timings 2>&1)"
done
vmgr_load_expected exp_C C
vmgr_load_expected exp_D D
check_match "C's bridge is in the namespace's outbound set" "\"${exp_C[bridge]}\" . \"vmgr-pasta\"" \
        "$(in_ns_root nft list set inet vmgr outbound)"
guest_add c C 60
guest_add d D 60
check_eq "C's guest fetches from the host's loopback" "from 127.0.0.1" "$(fetch_ok c http://192.0.2.1:8000/ 2>&1)"
check_eq "C's guest fetches from the host's loopback over IPv6" "from ::1" "$(fetch_ok c 'http://[2001:db8::1]:8001/' 2>&1)"
check_eq "C's guest fetches from the peer" "from 192.0.2.2" "$(fetch_ok c http://198.51.100.7:8002/ 2>&1)"
check_fails "D's guest (no outbound) does not reach the peer" fetch d http://198.51.100.7:8002/
check_fails "D's guest (no outbound) does not reach the host's loopback" fetch d http://192.0.2.1:8000/

# pasta dies: vmgrd starts it again, and the guest gets out again.
kill -KILL "$pasta_pid"
for ((i = 0; i < 250; i++)); do
        new_pid=$(pgrep -P "$VMGRD_PID" -f "^pasta " || true)
        [ -n "$new_pid" ] && [ "$new_pid" != "$pasta_pid" ] && break
        sleep 0.02
done
check "vmgrd restarts pasta" test -n "$new_pid" -a "$new_pid" != "$pasta_pid"
for ((i = 0; i < 100; i++)); do
        out=$(fetch c http://198.51.100.7:8002/ 2>&1) && break
        sleep 0.05
done
check_eq "C's guest gets out again through the new pasta" "from 192.0.2.2" "$out"
check_match "C's log says pasta was gone" "pasta exited" "$(cat "$VMGR_TMP/state/vmgr/groups/C/group.log" 2>&1)"

check "delete group C" vmgrctl_as_user group delete C
check_empty "C's outbound element went with it" \
        "$(in_ns_root nft list set inet vmgr outbound | grep elements || true)"

# vmgrd stopped with pasta running: an orderly exit, nothing left.
pasta_pid=$(pgrep -P "$VMGRD_PID" -f "^pasta " || true)
vmgr_stop_vmgrd TERM
check_eq "vmgrd with pasta exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
check_fails "pasta is gone after vmgrd's orderly exit" kill -0 "$pasta_pid"

# vmgrd killed: pasta goes with it (PR_SET_PDEATHSIG).
vmgr_start_vmgrd --network-mode namespace
check "an outbound group in a new vmgrd" \
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss E '{"outbound": true}'
pasta_pid=$(pgrep -P "$VMGRD_PID" -f "^pasta " || true)
check "the new vmgrd runs pasta" test -n "$pasta_pid"
vmgr_stop_vmgrd KILL
for ((i = 0; i < 250; i++)); do
        kill -0 "$pasta_pid" 2>/dev/null || break
        [ "$(ps -o stat= -p "$pasta_pid")" = Z ] && break
        sleep 0.02
done
check_fails "pasta dies with a killed vmgrd" kill -0 "$pasta_pid"

vmgr_finish
