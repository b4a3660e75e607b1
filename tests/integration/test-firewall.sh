#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Guests are untrusted: a group's guests must reach neither another group's
# guests nor the host's services, even on a host that forwards IPv4 and IPv6
# (any Docker or libvirt host). Forwarding is switched on in this test's
# namespace; each guest is a veth whose peer lives in a namespace of its own,
# attached to its group's bridge, with static addresses in the group's /64
# and /24 and default routes via the gateways.
#   - B's guest cannot ping or connect to A's guest (IPv6, IPv4), nor reach
#     servers listening on [::] and 0.0.0.0 in the host namespace (TCP, UDP)
#     through any gateway address, nor download from A's file server;
#   - nothing is forwarded between a guest and a namespace outside (the LAN
#     or the internet of a real host), either way;
#   - a guest of B that poses as A's guest (A's address as its source) cannot
#     slip into the host's conversation with A's guest;
#   - what vmgr needs still works: RA, a DHCPv4 lease, the host pinging and
#     connecting to A's guest, A's guest downloading a file A serves; with
#     br_netfilter, two guests of the same bridge reach each other;
#   - the rules go with DeleteGroup, and with the next vmgrd after kill -9,
#     also for a group whose bridge is already gone; another user's helper
#     never deletes them, nor creates a group over another uid's rules for
#     its bridge name (a collision, planted);
#   - without nf_tables (netfilter netlink refused by seccomp) the helper
#     refuses to create a group, saying why, and leaves nothing;
#   - the helper copes with changes behind its back, and the next group
#     brings back a table an administrator flushed.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
for tool in nft curl rdisc6 busybox ping python3; do
        if ! command -v "$tool" >/dev/null; then
                echo "# skipped: $tool is missing (run tools/deps)"
                exit 77
        fi
done
vmgr_enter_netns "$@"

sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
vmgr_start_bus
vmgr_start_vmgrd

uid=$(id -u "$VMGR_USER")
uid2=$(id -u vmgr-test2)
call=$VMGR_BUILD_DIR/netadm/vmgr-netadm-call

# The table as nft prints it (empty if there is none).
ruleset() {
        nft list table inet vmgr 2>/dev/null || true
}

# Lines of the table that name bridge $1, or the chain of uid $2 (default: the test user) for it.
rules_of() {
        ruleset | grep -e "\"$1\"" -e "u${2:-$uid}-$1" || true
}

# Wait until bridge $1 has no tentative address (its gateway6 is usable).
bridge_settled() {
        local i
        for ((i = 0; i < 150; i++)); do
                ip -6 -o addr show dev "$1" | grep -q tentative || return 0
                sleep 0.02
        done
}

# guest_add NAME GROUP HOST6 HOST4: a guest of GROUP (associative array
# exp_GROUP) in namespace ${ns[NAME]} with interface ${ifc[NAME]}, addresses
# ${ip6[NAME]} (the /64 prefix followed by HOST6) and ${ip4[NAME]} (the /24's .HOST4).
declare -A ns ifc ip6 ip4
guest_add() {
        local name=$1
        local -n e=exp_$2
        vmgr_peer_create "${e[bridge]}"
        bridge_settled "${e[bridge]}"
        ns[$name]=$VMGR_PEER
        ifc[$name]=$VMGR_PEER_IF
        ip6[$name]=${e[prefix6]%/64}$3
        ip4[$name]=${e[subnet4]%.0/24}.$4
        ip -n "$VMGR_PEER" addr add "${ip6[$name]}/64" dev "$VMGR_PEER_IF" nodad
        ip -n "$VMGR_PEER" addr add "${ip4[$name]}/24" dev "$VMGR_PEER_IF"
        ip -n "$VMGR_PEER" -6 route replace default via "${e[gateway6]}" dev "$VMGR_PEER_IF"
        ip -n "$VMGR_PEER" route replace default via "${e[gateway4]}" dev "$VMGR_PEER_IF"
}

# in_guest NAME CMD...: run CMD in guest NAME's namespace.
in_guest() {
        ip netns exec "${ns[$1]}" "${@:2}"
}

# Fetch URL $2 from guest $1 (or from the host if $1 is "host"); print the body.
fetch() {
        local prefix=()
        [ "$1" = host ] || prefix=(ip netns exec "${ns[$1]}")
        "${prefix[@]}" curl -sS -g --fail --connect-timeout 2 --max-time 4 "$2"
}

# http_server PORT PREFIX...: serve $VMGR_TMP/www on PORT, bound as
# server_bind says, run through the command PREFIX (env for this namespace,
# ip netns exec NS for a guest's); return once it listens.
http_server() {
        local port=$1 i
        shift
        "$@" python3 -m http.server --directory "$VMGR_TMP/www" "${server_bind[@]}" "$port" >/dev/null 2>&1 &
        for ((i = 0; i < 250; i++)); do
                "$@" ss -Hltn "sport = :$port" | grep -q . && return 0
                sleep 0.02
        done
        echo "# error: no server on port $port" >&2
        return 1
}
mkdir "$VMGR_TMP/www"
echo "vmgr-firewall-test" >"$VMGR_TMP/www/marker"

# --- two groups, a guest each ----------------------------------------------

check "create group A" vmgrctl_as_user -q group create A
check "create group B" vmgrctl_as_user -q group create B
vmgr_load_expected exp_A A
vmgr_load_expected exp_B B
brA=${exp_A[bridge]}
brB=${exp_B[bridge]}

check "A's chain u$uid-$brA exists" nft list chain inet vmgr "u$uid-$brA"
check_match "the groups map leads A's bridge to A's chain" "\"$brA\" : jump u$uid-$brA" "$(ruleset)"

guest_add a1 A 100 250
guest_add b1 B 100 250

# --- what vmgr needs still works ---------------------------------------------

VMGR_PEER=${ns[a1]} VMGR_PEER_IF=${ifc[a1]}
check_match "A's guest receives the router advertisement" "Prefix +: ${exp_A[prefix6]}" "$(vmgr_peer_ra 2>&1 || true)"
net4=${exp_A[subnet4]%.0/24}
check_match "A's guest leases an IPv4 address over DHCP" "^${net4//./\\.}\\.[0-9]+$" "$(vmgr_peer_dhcp4 || true)"

check "the host pings A's guest over IPv6" ping -6 -n -q -c 1 -W 2 "${ip6[a1]}"
check "the host pings A's guest over IPv4" ping -4 -n -q -c 1 -W 2 "${ip4[a1]}"

# A server in each guest, on both families.
server_bind=(--bind ::)
http_server 9000 ip netns exec "${ns[a1]}"
http_server 9000 ip netns exec "${ns[b1]}"
check_eq "the host connects to A's guest over IPv6" vmgr-firewall-test \
        "$(fetch host "http://[${ip6[a1]}]:9000/marker" 2>&1)"
check_eq "the host connects to A's guest over IPv4" vmgr-firewall-test \
        "$(fetch host "http://${ip4[a1]}:9000/marker" 2>&1)"

head -c 65536 /dev/urandom >"$VMGR_TMP/served"
chown "$VMGR_USER:" "$VMGR_TMP/served"
url=$(vmgrctl_as_user serve A "$VMGR_TMP/served" 2>&1) || true
check_eq "vmgrctl serve prints a URL on A's files address" "http://[${exp_A[files6]}]:8080/served" "$url"
fetch a1 "$url" >"$VMGR_TMP/got-a1" 2>&1 || true
check "A's guest downloads the file A serves" cmp -s "$VMGR_TMP/served" "$VMGR_TMP/got-a1"
url_b=$(vmgrctl_as_user serve B "$VMGR_TMP/served" 2>&1) || true
fetch b1 "$url_b" >"$VMGR_TMP/got-b1" 2>&1 || true
check "B's guest downloads the file B serves" cmp -s "$VMGR_TMP/served" "$VMGR_TMP/got-b1"

# --- B's guest against A's guest ---------------------------------------------

check_fails "B's guest cannot ping A's guest over IPv6" in_guest b1 ping -6 -n -q -c 1 -W 1 "${ip6[a1]}"
check_fails "B's guest cannot ping A's guest over IPv4" in_guest b1 ping -4 -n -q -c 1 -W 1 "${ip4[a1]}"
check_fails "B's guest cannot connect to A's guest over IPv6" fetch b1 "http://[${ip6[a1]}]:9000/marker"
check_fails "B's guest cannot connect to A's guest over IPv4" fetch b1 "http://${ip4[a1]}:9000/marker"
check_fails "A's guest cannot connect to B's guest over IPv6" fetch a1 "http://[${ip6[b1]}]:9000/marker"

# --- B's guest against the host's services -----------------------------------

# One server on every address of both families, one on every IPv4 address.
server_bind=(--bind ::)
http_server 8090 env
server_bind=(--bind 0.0.0.0)
http_server 8091 env
check_eq "the host's servers answer on the host" vmgr-firewall-test "$(fetch host "http://127.0.0.1:8090/marker" 2>&1)"
for target in "[${exp_B[gateway6]}]:8090" "${exp_B[gateway4]}:8090" "${exp_B[gateway4]}:8091" \
        "[${exp_B[management6]}]:8090" "[${exp_B[logs6]}]:8090" "[${exp_B[files6]}]:8090" \
        "[${exp_A[gateway6]}]:8090" "${exp_A[gateway4]}:8091" "[${exp_A[management6]}]:8090" \
        "[${exp_A[files6]}]:8090"; do
        check_fails "B's guest cannot connect to the host's wildcard server at $target" \
                fetch b1 "http://$target/marker"
done
check "B's guest pings its gateway over IPv6" in_guest b1 ping -6 -n -q -c 1 -W 2 "${exp_B[gateway6]}"
check "B's guest pings its gateway over IPv4" in_guest b1 ping -4 -n -q -c 1 -W 2 "${exp_B[gateway4]}"
check_fails "B's guest cannot ping A's gateway over IPv6" in_guest b1 ping -6 -n -q -c 1 -W 1 "${exp_A[gateway6]}"
check_fails "B's guest cannot ping A's gateway over IPv4" in_guest b1 ping -4 -n -q -c 1 -W 1 "${exp_A[gateway4]}"
check_fails "B's guest cannot ping the host's other addresses" \
        in_guest b1 ping -6 -n -q -c 1 -W 1 "${exp_B[management6]}"
check_fails "B's guest cannot download from A's file server" fetch b1 "$url"

# A UDP service on every address (a resolver, say): B's guest gets no answer.
cat >"$VMGR_TMP/udp-echo.py" <<'EOF'
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 5300))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(100)
    s.sendto(data, peer)
EOF
cat >"$VMGR_TMP/udp-ask.py" <<'EOF'
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(b"ping", (sys.argv[1], 5300))
try:
    print(s.recv(100).decode())
except socket.timeout:
    sys.exit("no answer")
EOF
coproc UDP_ECHO { python3 "$VMGR_TMP/udp-echo.py"; }
read -r -t 5 _ <&"${UDP_ECHO[0]}" || true
check "the host's UDP service answers on the host" python3 "$VMGR_TMP/udp-ask.py" "${exp_B[gateway4]}"
check_fails "B's guest gets no answer from the host's UDP service over IPv6" \
        in_guest b1 python3 "$VMGR_TMP/udp-ask.py" "${exp_B[gateway6]}"
check_fails "B's guest gets no answer from the host's UDP service over IPv4" \
        in_guest b1 python3 "$VMGR_TMP/udp-ask.py" "${exp_B[gateway4]}"
{
        kill "$UDP_ECHO_PID"
        wait "$UDP_ECHO_PID"
} 2>/dev/null || true

# --- nothing forwarded to or from the world outside --------------------------

# A namespace behind a plain veth of this one, as the LAN or the internet
# would be (documentation prefixes), routed both ways through the host.
outside=vmgrout-${VMGR_TMP##*.}
ip netns add "$outside"
VMGR_PEER_NS+=("$outside")
ip link add vx0 type veth peer name vo0 netns "$outside"
sysctl -q -w net.ipv6.conf.vx0.accept_dad=0
ip netns exec "$outside" sysctl -q -w net.ipv6.conf.vo0.accept_dad=0
ip addr add 198.51.100.1/24 dev vx0
ip addr add 2001:db8:1::1/64 dev vx0
ip link set vx0 up
ip -n "$outside" link set vo0 up
ip -n "$outside" addr add 198.51.100.2/24 dev vo0
ip -n "$outside" addr add 2001:db8:1::2/64 dev vo0
ip -n "$outside" route add default via 198.51.100.1
ip -n "$outside" -6 route add default via 2001:db8:1::1
check "the host reaches the outside over IPv4" ping -4 -n -q -c 1 -W 2 198.51.100.2
check "the host reaches the outside over IPv6" ping -6 -n -q -c 1 -W 2 2001:db8:1::2
check_fails "B's guest cannot reach the outside over IPv4" in_guest b1 ping -4 -n -q -c 1 -W 1 198.51.100.2
check_fails "B's guest cannot reach the outside over IPv6" in_guest b1 ping -6 -n -q -c 1 -W 1 2001:db8:1::2
check_fails "the outside cannot reach B's guest over IPv4" \
        ip netns exec "$outside" ping -4 -n -q -c 1 -W 1 "${ip4[b1]}"
check_fails "the outside cannot reach B's guest over IPv6" \
        ip netns exec "$outside" ping -6 -n -q -c 1 -W 1 "${ip6[b1]}"

# --- B's guest posing as A's guest -----------------------------------------

# The host talks to A's guest (UDP from A's management address); B's guest
# sends "replies" from A's guest's address and port, A's guest a real one.
cat >"$VMGR_TMP/listen.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7001))
s.sendto(b"hello", (sys.argv[2], 7002))
print("sent", flush=True)
got, end = [], time.monotonic() + 3
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        got.append(s.recv(100).decode())
    except socket.timeout:
        pass
print(" ".join(sorted(got)) or "nothing")
EOF
cat >"$VMGR_TMP/send.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7002))
s.sendto(sys.argv[3].encode(), (sys.argv[2], 7001))
EOF
ip -n "${ns[b1]}" addr add "${ip6[a1]}/128" dev "${ifc[b1]}" nodad
coproc LISTEN { python3 "$VMGR_TMP/listen.py" "${exp_A[management6]}" "${ip6[a1]}"; }
read -r -t 5 _ <&"${LISTEN[0]}" || true
in_guest b1 python3 "$VMGR_TMP/send.py" "${ip6[a1]}" "${exp_A[management6]}" spoofed || true
in_guest a1 python3 "$VMGR_TMP/send.py" "${ip6[a1]}" "${exp_A[management6]}" genuine || true
read -r -t 5 heard <&"${LISTEN[0]}" || heard=
wait "$LISTEN_PID" 2>/dev/null || true
check_eq "the host hears A's guest, not B's guest posing as it" genuine "$heard"
ip -n "${ns[b1]}" addr del "${ip6[a1]}/128" dev "${ifc[b1]}"

# --- br_netfilter: two guests of one bridge ----------------------------------

if [ -e /proc/sys/net/bridge/bridge-nf-call-ip6tables ] || modprobe br_netfilter 2>/dev/null; then
        sysctl -q -w net.bridge.bridge-nf-call-ip6tables=1 net.bridge.bridge-nf-call-iptables=1
        guest_add a2 A 101 251
        check "with br_netfilter, A's guests ping each other over IPv6" \
                in_guest a2 ping -6 -n -q -c 1 -W 2 "${ip6[a1]}"
        check "with br_netfilter, A's guests ping each other over IPv4" \
                in_guest a2 ping -4 -n -q -c 1 -W 2 "${ip4[a1]}"
        check_eq "with br_netfilter, A's guests connect to each other" vmgr-firewall-test \
                "$(fetch a2 "http://[${ip6[a1]}]:9000/marker" 2>&1)"
        check_fails "with br_netfilter, B's guest still cannot ping A's guest" \
                in_guest b1 ping -6 -n -q -c 1 -W 1 "${ip6[a1]}"
else
        echo "ok - # SKIP two guests of one bridge with br_netfilter: the module cannot be loaded"
fi

# --- the rules go with the group ---------------------------------------------

check "delete group A" vmgrctl_as_user group delete A
check_empty "no rule or element of A is left after DeleteGroup" "$(rules_of "$brA")"
check "B's chain is still there" nft list chain inet vmgr "u$uid-$brB"

# --- another user's helper leaves them alone; kill -9 and a new vmgrd ---------

check "create group C" vmgrctl_as_user -q group create C
vmgr_load_expected exp_C C
brC=${exp_C[bridge]}
vmgr_stop_vmgrd KILL
check_eq "vmgrd killed by SIGKILL" 137 "$VMGRD_STATUS"
check_match "B's rules outlive the killed vmgrd" "u$uid-$brB" "$(rules_of "$brB")"
check_match "C's rules outlive the killed vmgrd" "u$uid-$brC" "$(rules_of "$brC")"

# C's network is gone, its rules are not (as if its bridge had been deleted
# by hand): the next vmgrd must remove them all the same.
ip link delete "$brC"
for a in management6 logs6 files6; do
        ip -6 addr del "${exp_C[$a]}/128" dev lo
done

# Another user's helper, for groups of the same names (other bridges, since
# the uid is in the derivation), touches none of the test user's rules.
as2() {
        vmgr_as vmgr-test2 "$call" "$VMGR_NETADM" "$@"
}
before=$(ruleset)
check "another user's group-delete of B succeeds with nothing of theirs" as2 group-delete B
check "another user's group-delete of C succeeds with nothing of theirs" as2 group-delete C
check_eq "... and leaves the table as it was" "$before" "$(ruleset)"

# A bridge name in the groups map that leads to another uid's chain (two
# users' bridge names colliding, planted here): vmgr-test2 can neither
# create its group over it nor delete it.
VMGR_USER=vmgr-test2 vmgr_load_expected exp_E2 E
brE2=${exp_E2[bridge]}
other=u4000000000-$brE2
nft -f - <<EOF
add table inet vmgr
add map inet vmgr groups { type ifname : verdict; }
add set inet vmgr bridged { type ifname . ifname; }
add chain inet vmgr $other
add element inet vmgr groups { "$brE2" : jump $other }
add element inet vmgr bridged { "$brE2" . "$brE2" }
EOF
before=$(ruleset)
out=$(as2 group-create E 2>&1) && rc=0 || rc=$?
check_eq "a group whose bridge name leads to another user's rules is refused" 1 "$rc"
check_match "... saying why" "another user's firewall rules" "$out"
check_eq "... leaving those rules as they were" "$before" "$(ruleset)"
check_fails "... and no bridge" ip link show dev "$brE2"
check "group-delete of that group succeeds with nothing of the caller's" as2 group-delete E
check_eq "... and leaves the other user's rules alone" "$before" "$(ruleset)"
nft delete element inet vmgr groups "{ \"$brE2\" }"
nft delete element inet vmgr bridged "{ \"$brE2\" . \"$brE2\" }"
nft delete chain inet vmgr "$other"

# Without nf_tables a group must not run unprotected: a seccomp filter (set
# by root, so the helper keeps its file capabilities) refuses netfilter
# netlink sockets to the helper, as a kernel without nf_tables would.
cat >"$VMGR_TMP/no-nfnetlink.py" <<'EOF'
import ctypes, os, platform, struct, sys
if platform.machine() != "x86_64":
    sys.exit(77)
# seccomp_data: nr at 0, arch at 4, args[0] at 16, args[2] at 32. Refuse
# socket(AF_NETLINK, *, NETLINK_NETFILTER) with EPROTONOSUPPORT.
LD, JEQ, RET = 0x20, 0x15, 0x06
prog = [(LD, 0, 0, 4), (JEQ, 0, 7, 0xC000003E), (LD, 0, 0, 0), (JEQ, 0, 5, 41),
        (LD, 0, 0, 16), (JEQ, 0, 3, 16), (LD, 0, 0, 32), (JEQ, 0, 1, 12),
        (RET, 0, 0, 0x00050000 | 93), (RET, 0, 0, 0x7FFF0000)]
code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog), ctypes.cast(code, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    sys.exit("prctl: " + os.strerror(ctypes.get_errno()))
os.execvp(sys.argv[1], sys.argv[1:])
EOF
VMGR_USER=vmgr-test2 vmgr_load_expected exp_D D
out=$(python3 "$VMGR_TMP/no-nfnetlink.py" setpriv --reuid vmgr-test2 --regid "$(id -g vmgr-test2)" \
        --init-groups "$call" "$VMGR_NETADM" group-create D 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 77 ]; then
        echo "ok - # SKIP group-create without nf_tables: the seccomp filter is written for x86_64"
else
        check_eq "without nf_tables, group-create fails" 1 "$rc"
        check_match "... saying so" "nf_tables is not available" "$out"
        check_fails "... and leaves no bridge" ip link show dev "${exp_D[bridge]}"
        check_empty "... and no rules" "$(rules_of "${exp_D[bridge]}" "$uid2")"
fi

vmgr_start_vmgrd
left=$(rules_of "$brC")
for ((i = 0; i < 250 && ${#left} > 0; i++)); do
        sleep 0.02
        left=$(rules_of "$brC")
done
check_empty "the next vmgrd removes the rules of C, whose network is gone (it is cleaned up)" "$left"
# B still runs: the next vmgrd adopts it, rules and all; deleting it removes them.
check_match "B is adopted with its rules" "u$uid-$brB" "$(rules_of "$brB")"
check "delete the adopted B" vmgrctl_as_user group delete B
check_empty "B's rules are gone with it" "$(rules_of "$brB")"
check_empty "nothing else is left" "$(vmgr_leftovers)"
check_match "the table's shared part stays" "chain from_guest" "$(ruleset)"
check_empty "no group chain is left" "$(ruleset | grep -E 'chain u[0-9]+-' || true)"

# The helper keeps one libnftables context: another helper's changes behind
# its back, and the whole table gone (an administrator's "nft flush
# ruleset"), must not confuse it. The next group brings the table back.
check "create group F" vmgrctl_as_user -q group create F
nft -f - <<EOF
add chain inet vmgr u4000000000-vbr-0000000000
add element inet vmgr groups { "vbr-0000000000" : jump u4000000000-vbr-0000000000 }
EOF
check "create group G after another helper's change" vmgrctl_as_user -q group create G
check "delete group F after another helper's change" vmgrctl_as_user group delete F
nft flush ruleset
check "create group H after nft flush ruleset" vmgrctl_as_user -q group create H
vmgr_load_expected exp_H H
check "H's chain and the shared part are back" \
        bash -c "nft list chain inet vmgr from_guest && nft list chain inet vmgr 'u$uid-${exp_H[bridge]}'"
check "delete group G (its rules went with the flush)" vmgrctl_as_user group delete G
check "delete group H" vmgrctl_as_user group delete H

vmgr_finish
