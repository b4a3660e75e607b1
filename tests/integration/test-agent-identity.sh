#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# IDENTITY (docs/agent-protocol.md): a default guest with the agent, booted
# under plain QEMU with TCG with two NICs (enp1s0: SLAAC, enp2s0: DHCPv4) on a
# bridge of this test's own network namespace, is saved with QEMU's
# migration to a file (as vmgrd saves a template) and restored twice. Before
# IDENTITY both copies are the template (its MACs, hostname, addresses, a
# clock seconds behind); vmgr-agent-client then sends each its own IDENTITY,
# and each must have its MACs, hostname (/etc/hostname, /etc/hosts),
# addresses and routes (the /64 on link, the /48 and default via the
# gateway, the /24 and default via the gateway), none of the template's,
# a clock within 1 s of the host's, a new DHCPv4 lease for its new MAC under
# its new hostname, IPv6 and IPv4 reachability from the host and from the
# other copy, the generation in every INFO after (also of a new session), and
# the two must read different bytes from /dev/urandom. A NIC slot that does
# not exist is an ERROR naming it; a version 1 session cannot send IDENTITY.

source "$(dirname "$0")/lib.sh"
vmgr_require_root

QEMU=$(command -v qemu-system-x86_64 || true)
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
if [ -z "$QEMU" ] || [ ! -x "$DNSMASQ" ] || ! command -v socat >/dev/null ||
        ! compgen -G '/boot/vmlinuz-*-cloud-amd64' >/dev/null; then
        echo "# skipped: needs qemu-system-x86, dnsmasq-base, socat, linux-image-cloud-amd64 (tools/deps)"
        exit 77
fi

AGENT=$VMGR_DESTDIR/usr/libexec/vmgr-agent
[ -x "$AGENT" ] || AGENT=$VMGR_BUILD_DIR/agent/vmgr-agent
CLIENT=$VMGR_BUILD_DIR/agent/vmgr-agent-client
MKGUEST=$VMGR_DESTDIR/usr/bin/vmgr-mkguest
[ -x "$MKGUEST" ] || MKGUEST=$VMGR_BUILD_DIR/guest/vmgr-mkguest
if [ ! -x "$AGENT" ] || [ ! -x "$CLIENT" ]; then
        echo "# error: build vmgr-agent and vmgr-agent-client first" >&2
        exit 1
fi

vmgr_enter_netns "$@"

T=$VMGR_TMP
mkdir -p "$T/cache"
chown "$VMGR_USER:" "$T/cache"

PREFIX=fd00:76:6d67:5
SERVICE=fd00:76:6d67::/48
NET4=10.77.5
BR=vbr-ident
# The template's MACs, then each copy's (locally administered, unicast).
MAC_T1=6a:01:00:00:00:01 MAC_T2=6a:01:00:00:00:02
MAC_A1=6a:02:00:00:0a:01 MAC_A2=6a:02:00:00:0a:02
MAC_B1=6a:02:00:00:0b:01 MAC_B2=6a:02:00:00:0b:02

now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

# The SLAAC (EUI-64) address of MAC in $PREFIX::/64.
eui64() {
        local IFS=: b
        read -r -a b <<<"$1"
        printf '%s:%x:%x:%x:%x\n' "$PREFIX" $(((0x${b[0]} ^ 2) << 8 | 0x${b[1]})) $((0x${b[2]} << 8 | 0xff)) \
                $((0xfe << 8 | 0x${b[3]})) $((0x${b[4]} << 8 | 0x${b[5]}))
}

# client NAME ARGS...: vmgr-agent-client against copy NAME's agent.
client() {
        local name=$1
        shift
        "$CLIENT" --socket "$T/$name.agent" --timeout "${CLIENT_TIMEOUT:-120}" "$@"
}

# gx NAME CMD...: run CMD in copy NAME through the agent; its stdout.
gx() {
        local name=$1
        shift
        client "$name" exec -- "$@"
}

# qmp NAME COMMAND-JSON...: QEMU's answers to the commands, one per line.
qmp() {
        local name=$1
        shift
        {
                echo '{"execute":"qmp_capabilities"}'
                printf '%s\n' "$@"
                sleep 0.3
        } | socat -t 2 - "UNIX-CONNECT:$T/$name.qmp"
}

# qemu_start NAME MAC1 MAC2 [QEMU-ARGS...]: the default guest with two NICs
# on $BR (PCI buses 1 and 2: enp1s0, enp2s0) and the agent's port.
qemu_start() {
        local name=$1 mac1=$2 mac2=$3
        shift 3
        ip tuntap add dev "tap-$name-1" mode tap
        ip tuntap add dev "tap-$name-2" mode tap
        ip link set "tap-$name-1" master "$BR" up
        ip link set "tap-$name-2" master "$BR" up
        "$QEMU" -nodefaults -no-user-config -M q35 -accel tcg -m 256 -display none \
                -serial "file:$T/$name.console" -kernel "$KERNEL" -initrd "$INITRD" \
                -append "console=ttyS0 vmgr.hostname=template" \
                -device pcie-root-port,id=rp1,chassis=1,bus=pcie.0,addr=0x2 \
                -device pcie-root-port,id=rp2,chassis=2,bus=pcie.0,addr=0x3 \
                -netdev "tap,id=n1,ifname=tap-$name-1,script=no,downscript=no" \
                -device "virtio-net-pci,bus=rp1,netdev=n1,mac=$mac1" \
                -netdev "tap,id=n2,ifname=tap-$name-2,script=no,downscript=no" \
                -device "virtio-net-pci,bus=rp2,netdev=n2,mac=$mac2" \
                -device virtio-serial-pci,bus=pcie.0,addr=0x4 \
                -chardev "socket,id=ag,path=$T/$name.agent,server=on,wait=off" \
                -device virtserialport,chardev=ag,name=org.vmgr.agent.0 \
                -qmp "unix:$T/$name.qmp,server=on,wait=off" "$@" 2>"$T/$name.qemu.err" &
}

console_tail() {
        tail -n 25 "$T/$1.console" 2>/dev/null | sed 's/^/console: /' || true
}

# The guest's CLOCK_REALTIME in ms, between two host readings: prints
# "BEFORE GUEST AFTER".
guest_clock() {
        local before after out sec usec
        before=$(now_ms)
        out=$(gx "$1" sh -c 'busybox adjtimex 2>/dev/null || echo "time.tv_sec: $(date +%s)"')
        after=$(now_ms)
        sec=$(awk '/time.tv_sec/ { print $2 }' <<<"$out")
        usec=$(awk '/time.tv_usec/ { print $2 }' <<<"$out")
        echo "$before $((sec * 1000 + ${usec:-500000} / 1000)) $after"
}

# --- the network and the template ---------------------------------------------

if ! out=$(vmgr_as_user "$MKGUEST" --output-dir "$T/cache" --print-path \
        --extra "$AGENT:/usr/bin/vmgr-agent" 2>"$T/mkguest.err"); then
        vmgr_not_ok "vmgr-mkguest builds the default guest with the agent" "$(cat "$T/mkguest.err")"
        vmgr_finish
fi
read -r KERNEL INITRD <<<"$out"

ip link add "$BR" type bridge
sysctl -qw "net.ipv6.conf.$BR.accept_ra=0" "net.ipv6.conf.$BR.accept_dad=0"
ip addr add "$PREFIX::1/64" dev "$BR" nodad
ip addr add "$NET4.1/24" dev "$BR"
ip link set "$BR" up
"$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
        --user=root --bind-dynamic --interface="$BR" --except-interface=lo \
        --pid-file="$T/dnsmasq.pid" --log-facility="$T/dnsmasq.log" --log-dhcp \
        --dhcp-leasefile="$T/dnsmasq.leases" \
        --enable-ra --ra-param="$BR,10,1800" --dhcp-range="$PREFIX::,ra-only,64" \
        --dhcp-range="$NET4.100,$NET4.199,255.255.255.0,1h" \
        --dhcp-host="$MAC_A2,$NET4.11" --dhcp-host="$MAC_B2,$NET4.12" &

qemu_start t "$MAC_T1" "$MAC_T2"
if client t wait-addr enp1s0 "$(eui64 "$MAC_T1")/64" >/dev/null 2>"$T/t.err" &&
        client t wait-addr enp2s0 "$NET4.1" >/dev/null 2>>"$T/t.err"; then
        vmgr_ok "the template boots with its SLAAC and DHCPv4 addresses"
else
        vmgr_not_ok "the template boots with its SLAAC and DHCPv4 addresses" "$(cat "$T/t.err")" "$(console_tail t)"
        vmgr_finish
fi
client t hello >"$T/t.info"
T_IPV4=$(awk '$1 == "addr" && $2 == "enp2s0" && $3 == "ipv4" { print $4; exit }' "$T/t.info")
check_match "the template's INFO has no generation yet" '^generation 0{32}$' "$(grep '^generation' "$T/t.info")"

# Saved as vmgrd saves a template: stopped, its state streamed to a file.
t0=$(now_ms)
qmp t '{"execute":"stop"}' "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > $T/template.state\"}}" >/dev/null
for _ in $(seq 300); do
        qmp t '{"execute":"query-migrate"}' | grep -q '"status": "completed"' && break
        sleep 0.1
done
check "the template is saved ($(($(stat -c %s "$T/template.state" 2>/dev/null || echo 0) / 1048576)) MiB in $(($(now_ms) - t0)) ms)" \
        test -s "$T/template.state"
qmp t '{"execute":"quit"}' >/dev/null || true
ip link del tap-t-1 2>/dev/null || true
ip link del tap-t-2 2>/dev/null || true
# Long enough that a clock left as saved is visibly behind.
sleep 3

# --- two copies ---------------------------------------------------------------

qemu_start a "$MAC_A1" "$MAC_A2" -incoming "exec:cat $T/template.state"
qemu_start b "$MAC_B1" "$MAC_B2" -incoming "exec:cat $T/template.state"
# The template was saved stopped, so each copy stays paused until told.
for n in a b; do
        t0=$(now_ms)
        for _ in $(seq 300); do
                qmp "$n" '{"execute":"query-migrate"}' 2>/dev/null | grep -q '"status": "completed"' && break
                sleep 0.1
        done
        check "copy $n: restored ($(($(now_ms) - t0)) ms) and resumed" \
                bash -c "qmp() { { echo '{\"execute\":\"qmp_capabilities\"}'; echo \"\$1\"; sleep 0.3; } |
                                 socat -t 2 - 'UNIX-CONNECT:$T/$n.qmp'; }
                         qmp '{\"execute\":\"cont\"}' >/dev/null
                         qmp '{\"execute\":\"query-status\"}' | grep -q '\"running\": true'"
done
for n in a b; do
        if client "$n" hello >"$T/$n.before" 2>"$T/$n.err"; then
                vmgr_ok "copy $n: restored, its agent answers"
        else
                vmgr_not_ok "copy $n: restored, its agent answers" "$(cat "$T/$n.err" "$T/$n.qemu.err")" \
                        "$(console_tail "$n")" "$(qmp "$n" '{"execute":"query-status"}' '{"execute":"query-migrate"}')"
                vmgr_finish
        fi
done
# What the copies are before IDENTITY: the template (so the checks below
# would fail without it).
check "before IDENTITY copy a has the template's hostname" grep -qx 'hostname template' "$T/a.before"
check "before IDENTITY copy a's enp1s0 has the template's MAC (restored device state)" \
        grep -q "^link [0-9]* enp1s0 .* hw $MAC_T1\$" "$T/a.before"
check "before IDENTITY copy b has the template's IPv4 address" grep -q "^addr enp2s0 ipv4 $T_IPV4 " "$T/b.before"
read -r before guest after <<<"$(guest_clock a)"
check "before IDENTITY copy a's clock is at least 2 s behind ($((after - guest)) ms)" test $((after - guest)) -ge 2000
ra=$(gx a sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"')
rb=$(gx b sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"')
[ "$ra" = "$rb" ] && same=identical || same=different
echo "# before IDENTITY the copies read $same bytes from /dev/urandom"

# Errors first: a slot without a NIC (nothing changes), a version 1 session.
out=$(client a identity copy-a "0000:07:00.0,$MAC_A1,$(eui64 "$MAC_A1")/64,$PREFIX::1,48" 2>/dev/null) || true
check_eq "IDENTITY naming an empty PCI slot answers ERROR ENODEV naming it" \
        "error 19 no network interface in PCI slot 0000:07:00.0" "$out"
check_eq "an IDENTITY that does not fit changes nothing (hostname)" "template" "$(gx a hostname)"
out=$(client a --versions 1:1 identity copy-a "0000:01:00.0,$MAC_A1,$(eui64 "$MAC_A1")/64,$PREFIX::1,48" 2>&1) || true
check_match "a version 1 session cannot send IDENTITY" "cannot send IDENTITY: Operation not supported" "$out"

declare -A GEN IP4 IP6
GEN[a]=0123456789abcdef0123456789abcdef GEN[b]=fedcba9876543210fedcba9876543210
IP4[a]=$NET4.11 IP4[b]=$NET4.12
IP6[a]=$(eui64 "$MAC_A1") IP6[b]=$(eui64 "$MAC_B1")
for n in a b; do
        mac1=MAC_${n^^}1 mac2=MAC_${n^^}2
        entropy=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')
        if client "$n" identity --generation "${GEN[$n]}" --entropy-hex "$entropy" "copy-$n" \
                "0000:01:00.0,${!mac1},${IP6[$n]}/64,$PREFIX::1,48" \
                "0000:02:00.0,${!mac2},${IP4[$n]}/24,$NET4.1" >"$T/$n.after" 2>"$T/$n.err"; then
                vmgr_ok "copy $n: IDENTITY answered DONE ($(awk '/^done/ { print $2 }' "$T/$n.after") ms)"
        else
                vmgr_not_ok "copy $n: IDENTITY answered DONE" "$(cat "$T/$n.after" "$T/$n.err")" "$(console_tail "$n")"
                continue
        fi
        check "copy $n: the INFO after DONE has the generation" grep -qx "generation ${GEN[$n]}" "$T/$n.after"
        check "copy $n: INFO: hostname copy-$n" grep -qx "hostname copy-$n" "$T/$n.after"
        check "copy $n: INFO: enp1s0 has MAC ${!mac1}" grep -q "^link [0-9]* enp1s0 .* hw ${!mac1}\$" "$T/$n.after"
        check "copy $n: INFO: enp2s0 has MAC ${!mac2}" grep -q "^link [0-9]* enp2s0 .* hw ${!mac2}\$" "$T/$n.after"
        check "copy $n: INFO: ${IP6[$n]}/64 on enp1s0, not tentative" \
                bash -c "grep '^addr enp1s0 ipv6 ${IP6[$n]}/64 ' '$T/$n.after' | grep -qv tentative"
        check "copy $n: INFO: ${IP4[$n]}/24 on enp2s0" grep -q "^addr enp2s0 ipv4 ${IP4[$n]}/24 " "$T/$n.after"
        check "copy $n: INFO: none of the template's global addresses" \
                bash -c "! grep -E '^addr enp[12]s0 ipv(6 $(eui64 "$MAC_T1")|4 $T_IPV4) ' '$T/$n.after'"
        check "copy $n: the link-local address is the new MAC's" \
                grep -q "^addr enp1s0 ipv6 fe80::$(eui64 "${!mac1}" | cut -d: -f5-)/64 " "$T/$n.after"

        read -r before guest after <<<"$(guest_clock "$n")"
        check "copy $n: the clock is within 1 s of the host's (host $before..$after ms, guest $guest)" \
                test "$guest" -ge $((before - 1000)) -a "$guest" -le $((after + 1000))
        check_eq "copy $n: the kernel's hostname" "copy-$n" "$(gx "$n" hostname)"
        check_eq "copy $n: /etc/hostname" "copy-$n" "$(gx "$n" cat /etc/hostname)"
        check_eq "copy $n: /etc/hosts's 127.0.1.1 line" "$(printf '127.0.1.1\tcopy-%s' "$n")" \
                "$(gx "$n" grep '^127\.0\.1\.1' /etc/hosts)"
        check_eq "copy $n: the MACs in sysfs" "${!mac1} ${!mac2}" \
                "$(gx "$n" cat /sys/class/net/enp1s0/address /sys/class/net/enp2s0/address | tr '\n' ' ' | sed 's/ $//')"
        routes6=$(gx "$n" ip -6 route show)
        check_match "copy $n: IPv6 default route via $PREFIX::1" "default via $PREFIX::1 dev enp1s0" "$routes6"
        check_match "copy $n: the group's service prefix $SERVICE via $PREFIX::1" \
                "${SERVICE%/48}/48 via $PREFIX::1 dev enp1s0" "$routes6"
        check_match "copy $n: $PREFIX::/64 on link" "$PREFIX::/64 dev enp1s0" "$routes6"
        routes4=$(gx "$n" ip -4 route show)
        check_match "copy $n: IPv4 default route via $NET4.1" "default via $NET4.1 dev enp2s0" "$routes4"
        check_match "copy $n: $NET4.0/24 on link" "$NET4.0/24 dev enp2s0" "$routes4"
        check "copy $n: answers ping on ${IP6[$n]}" ping -6 -c 1 -W 5 "${IP6[$n]}"
        check "copy $n: answers ping on ${IP4[$n]}" ping -4 -c 1 -W 5 "${IP4[$n]}"
done

# Between the copies, and the DHCP client's new lease (new MAC, new hostname).
check "copy a reaches copy b over IPv6" gx a ping -c 1 -W 5 "${IP6[b]}"
check "copy b reaches copy a over IPv4" gx b ping -c 1 -W 5 "${IP4[a]}"
for n in a b; do
        mac2=MAC_${n^^}2
        for _ in $(seq 100); do
                grep -q " ${!mac2} ${IP4[$n]} copy-$n " "$T/dnsmasq.leases" 2>/dev/null && break
                sleep 0.2
        done
        check "copy $n: a DHCPv4 lease of ${IP4[$n]} for ${!mac2} under the name copy-$n" \
                grep -q " ${!mac2} ${IP4[$n]} copy-$n " "$T/dnsmasq.leases"
        check "copy $n: after the lease, ${IP4[$n]}/24 is still on enp2s0 and answers" \
                bash -c "'$CLIENT' --socket '$T/$n.agent' --timeout 20 wait-addr enp2s0 '${IP4[$n]}/24' >/dev/null &&
                         ping -4 -c 1 -W 5 '${IP4[$n]}' >/dev/null"
        check "copy $n: a new session's INFO has the generation" \
                bash -c "'$CLIENT' --socket '$T/$n.agent' --timeout 20 hello | grep -qx 'generation ${GEN[$n]}'"
done

ra=$(gx a sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"')
rb=$(gx b sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"')
check "after IDENTITY the copies read different bytes from /dev/urandom" test -n "$ra" -a "$ra" != "$rb"
# DONE means both ioctls succeeded (a failing one is an ERROR); the line says so.
check "the agent logged the identity it took, the RNG reseeded with the host's 64 bytes" \
        grep -q 'took the identity of copy-a (2 NICs, the RNG reseeded with 64 bytes from the host)' "$T/a.console"

# The same IDENTITY again (a host that retries after losing the session
# before DONE) with a new generation: the same machine, the new generation.
gen2=00112233445566778899aabbccddeeff
check "copy a: IDENTITY applied a second time answers DONE with the new generation" \
        bash -c "'$CLIENT' --socket '$T/a.agent' --timeout 60 identity --generation $gen2 copy-a \
                 '0000:01:00.0,$MAC_A1,${IP6[a]}/64,$PREFIX::1,48' '0000:02:00.0,$MAC_A2,${IP4[a]}/24,$NET4.1' |
                 grep -qx 'generation $gen2'"
# The restarted udhcpc's deconfig drops the IPv4 address until the agent
# puts it back or the lease comes: a moment without it is expected.
check "copy a: after it, still answers on ${IP6[a]} and ${IP4[a]}" \
        bash -c "ping -6 -c 1 -W 5 '${IP6[a]}' &&
                 for i in \$(seq 10); do ping -4 -c 1 -W 1 '${IP4[a]}' >/dev/null && exit 0; done; exit 1"
for n in a b; do
        echo "# copy $n: $(grep -o 'took the identity of .*' "$T/$n.console" | head -1)"
        if grep -q 'back on interface' "$T/$n.console"; then
                echo "# copy $n: the static IPv4 address was put back after udhcpc's deconfig"
        fi
done

vmgr_finish
