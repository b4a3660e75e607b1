#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Baseline (a) of tools/bench: a group's network made and removed the way an
# administrator's script would, with iproute2 and dnsmasq, as root.
#
#     iproute2-group.sh up|down [taps]     the network (and two TAPs with "taps")
#     iproute2-group.sh bridge-up          only the bridge with its addresses and
#                                          route, for timing a bare `ip link del`
#     iproute2-group.sh lo-clean           remove the lo addresses bridge-up added
#
# The same steps as vmgr's helper: a bridge (STP off, no forward delay,
# accept_ra=0, accept_dad=0), the IPv6 /64 gateway without DAD or prefix
# route, three /128s on lo, the /64 route with the management address as
# source, the IPv4 /24 gateway, optionally two TAPs owned by the test user in
# the bridge, and dnsmasq with vmgrd's own argv, waited for until its pid
# file exists. "down" stops dnsmasq, waits for it to exit, and deletes the
# links and lo addresses. Nothing else runs inside the timed region: the
# names, addresses and argv come from the environment tools/bench sets
# (BENCH_BRIDGE, BENCH_GATEWAY6, ..., BENCH_ARGV_FILE, BENCH_RUN_DIR).
# Sub-second waits use `read -t`, a bash builtin, so polling spawns nothing.
set -euo pipefail

# Sleep about a millisecond without starting a process.
nap() {
        read -r -t 0.001 <>"$BENCH_NAP_FIFO" || true
}

bridge_up() {
        ip link add "$BENCH_BRIDGE" type bridge forward_delay 0 stp_state 0
        echo 0 >"/proc/sys/net/ipv6/conf/$BENCH_BRIDGE/accept_ra"
        echo 0 >"/proc/sys/net/ipv6/conf/$BENCH_BRIDGE/accept_dad"
        ip link set "$BENCH_BRIDGE" up
        ip -6 addr add "$BENCH_GATEWAY6/64" dev "$BENCH_BRIDGE" nodad noprefixroute
        ip -6 addr add "$BENCH_MANAGEMENT6/128" dev lo nodad
        ip -6 addr add "$BENCH_LOGS6/128" dev lo nodad
        ip -6 addr add "$BENCH_FILES6/128" dev lo nodad
        ip -6 route add "$BENCH_PREFIX6" dev "$BENCH_BRIDGE" src "$BENCH_MANAGEMENT6" proto kernel metric 256
        ip addr add "$BENCH_GATEWAY4/24" brd + dev "$BENCH_BRIDGE"
}

lo_clean() {
        ip -6 addr del "$BENCH_MANAGEMENT6/128" dev lo
        ip -6 addr del "$BENCH_LOGS6/128" dev lo
        ip -6 addr del "$BENCH_FILES6/128" dev lo
}

tap_up() {
        ip tuntap add dev "$1" mode tap user "$BENCH_TAP_USER"
        ip link set "$1" master "$BENCH_BRIDGE" up
}

up() {
        local taps=$1 argv
        bridge_up
        if [ "$taps" = taps ]; then
                tap_up "$BENCH_TAP0"
                tap_up "$BENCH_TAP4"
        fi
        mapfile -t argv <"$BENCH_ARGV_FILE"
        # As long-lived as the network: it outlives this script, and the
        # benchmark's PID 1 reaps it.
        "${argv[@]}" </dev/null >/dev/null 2>&1 &
        while [ ! -s "$BENCH_RUN_DIR/dnsmasq.pid" ]; do
                kill -0 $! 2>/dev/null || { echo "dnsmasq exited before writing its pid file" >&2; exit 1; }
                nap
        done
}

down() {
        local taps=$1 pid state
        read -r pid <"$BENCH_RUN_DIR/dnsmasq.pid"
        kill "$pid"
        # Gone, or a zombie waiting for PID 1 to reap it: either way it has exited.
        while read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null && [ "$state" != Z ]; do
                nap
        done
        rm -f "$BENCH_RUN_DIR/dnsmasq.pid" "$BENCH_RUN_DIR/dnsmasq.leases" "$BENCH_RUN_DIR/dnsmasq.log"
        if [ "$taps" = taps ]; then
                ip link del "$BENCH_TAP0"
                ip link del "$BENCH_TAP4"
        fi
        ip link del "$BENCH_BRIDGE"
        lo_clean
}

case "${1:-}" in
up) up "${2:-}" ;;
down) down "${2:-}" ;;
bridge-up) bridge_up ;;
lo-clean) lo_clean ;;
*)
        echo "usage: $0 up|down [taps] | bridge-up | lo-clean" >&2
        exit 2
        ;;
esac
