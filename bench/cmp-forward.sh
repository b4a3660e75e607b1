# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Comparison "forward" of tools/bench: a port forward (Group.ForwardPort,
# vmgrd's splice relay) against a direct connection from the host to the
# same server, for one TCP stream's throughput and for small round trips.
# Two servers: one in a TCG guest (busybox nc), which dominates; and one in
# a veth peer namespace on the group's bridge that took over VM b's address
# (b's own NIC is down), so the relay is measured against a fast local
# sink. Host mode: the host reaches the guests directly. Sourced by
# tools/bench (see "Comparisons" there).

BENCH_COMPARISONS+=(forward)
BENCH_ORDER["forward"]=5

FW_GROUP=fwd
FW_SPEC='{"vms":[{"name":"a"},{"name":"b"}]}'
FW_RTT_MSG=64

FW_PY=
FW_PEER=
FW_ADDR_A=
FW_ADDR_B=

bench_forward_title() {
        echo "Port forward: vmgrd's relay against a direct connection"
}

# vmgrctl forward as the test user; prints the port it listens on.
fw_forward() {
        local out
        out=$(vmgr_as_user "$VMGRCTL" forward "$FW_GROUP" "$@") || return 1
        echo "${out##*:}"
}

bench_forward_setup() {
        local out
        if [ "$BENCH_SMOKE" = 1 ]; then
                FW_MIB_GUEST=4 FW_MIB_LOCAL=64 FW_RTT_N=50
        else
                FW_MIB_GUEST=16 FW_MIB_LOCAL=512 FW_RTT_N=200
        fi
        bench_vmgrd_start
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss \
                "$FW_GROUP" "$FW_SPEC" >>"$BENCH_LOG"
        out=$(vmgr_as_user busctl --user --timeout=600 call org.vmgr1 "/org/vmgr1/group/$FW_GROUP" \
                org.vmgr1.Group WaitReady t 590000000 2>&1) || {
                echo "tools/bench: the forward VMs did not become ready: $out" >&2
                return 1
        }
        vmgr_load_expected fw_exp "$FW_GROUP"
        FW_ADDR_A=$(vmgr_expected_addrs "$FW_GROUP" a | awk '$1 == "ipv6" { print $2 }')
        FW_ADDR_B=$(vmgr_expected_addrs "$FW_GROUP" b | awk '$1 == "ipv6" { print $2 }')

        # The guest's servers: echo on 7000, a sink on 7003 (cat to
        # /dev/null, then the connection closes: the sender's end of a run).
        vmgr_as_user "$VMGRCTL" exec "$FW_GROUP" a -- sh -c '
                printf "#!/bin/sh\nexec cat >/dev/null\n" >/tmp/sink; chmod 755 /tmp/sink
                nc -ll -p 7000 -e cat </dev/null >/dev/null 2>&1 &
                nc -ll -p 7003 -e /tmp/sink </dev/null >/dev/null 2>&1 &' >>"$BENCH_LOG" 2>&1

        FW_PY=$VMGR_TMP/fwbench.py
        cat >"$FW_PY" <<'EOF'
import socket, sys, threading, time

def serve(port, handler):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()

def sink(c):
    buf = bytearray(1 << 20)
    while c.recv_into(buf):
        pass
    c.close()

def echo(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()

def connect(addr, port):
    s = socket.create_connection((addr, port), timeout=120)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

cmd = sys.argv[1]
if cmd == "serve":
    threading.Thread(target=serve, args=(int(sys.argv[3]), echo), daemon=True).start()
    serve(int(sys.argv[2]), sink)
elif cmd == "thr":
    # MiB/s of one stream, from connect to the sink's close (all bytes read).
    s = connect(sys.argv[2], int(sys.argv[3]))
    chunk, n = b"\0" * (1 << 20), int(sys.argv[4])
    t0 = time.monotonic()
    for _ in range(n):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    print("%.1f" % (n / (time.monotonic() - t0)))
elif cmd == "rtt":
    # Median ms of N round trips of a small message on one connection.
    s = connect(sys.argv[2], int(sys.argv[3]))
    msg, times = b"x" * int(sys.argv[5]), []
    for _ in range(int(sys.argv[4])):
        t0 = time.monotonic()
        s.sendall(msg)
        got = 0
        while got < len(msg):
            got += len(s.recv(65536))
        times.append((time.monotonic() - t0) * 1000)
    times.sort()
    print("%.3f" % times[len(times) // 2])
EOF
        # The local sink: a veth peer that answers on VM b's address, whose
        # guest took its own NIC down; the host forgets b's MAC.
        vmgr_as_user "$VMGRCTL" exec "$FW_GROUP" b -- ip link set enp1s0 down >>"$BENCH_LOG" 2>&1
        vmgr_peer_create "${fw_exp[bridge]}"
        FW_PEER=$VMGR_PEER
        ip -n "$FW_PEER" addr add "$FW_ADDR_B/64" dev "$VMGR_PEER_IF" nodad
        ip -n "$FW_PEER" -6 route add "${fw_exp[management6]}/128" via "${fw_exp[gateway6]}" dev "$VMGR_PEER_IF"
        ip -6 neigh flush to "$FW_ADDR_B" 2>/dev/null || true
        ip netns exec "$FW_PEER" python3 "$FW_PY" serve 7003 7000 >>"$BENCH_LOG" 2>&1 &
        FW_PEER_PID=$!
        local i
        for ((i = 0; i < 100; i++)); do
                python3 "$FW_PY" rtt "$FW_ADDR_B" 7000 1 "$FW_RTT_MSG" >/dev/null 2>&1 && break
                sleep 0.1
        done
        if [ "$i" = 100 ]; then
                echo "tools/bench: the local sink on VM b's address does not answer" >&2
                return 1
        fi

        # A user-space relay for reference, if installed: socat, a process
        # per connection copying through a buffer as large as our pipes
        # (-b 65536; its default is 8 KiB), towards the same sink.
        FW_SOCAT_PIDS=()
        if command -v socat >/dev/null; then
                socat -b 65536 TCP4-LISTEN:17003,bind=127.0.0.1,reuseaddr,fork "TCP6:[$FW_ADDR_B]:7003" >>"$BENCH_LOG" 2>&1 &
                FW_SOCAT_PIDS+=($!)
                socat -b 65536 TCP4-LISTEN:17000,bind=127.0.0.1,reuseaddr,fork,nodelay "TCP6:[$FW_ADDR_B]:7000,nodelay" \
                        >>"$BENCH_LOG" 2>&1 &
                FW_SOCAT_PIDS+=($!)
                sleep 0.5
        fi

        FW_PORT_A_ECHO=$(fw_forward a 7000) && FW_PORT_A_SINK=$(fw_forward a 7003) &&
                FW_PORT_B_ECHO=$(fw_forward b 7000) && FW_PORT_B_SINK=$(fw_forward b 7003) || {
                echo "tools/bench: cannot make the forwards" >&2
                return 1
        }
}

# fw_sample KEY CMD...: run CMD (python3 fwbench.py ...) and record what it prints.
fw_sample() {
        local key=$1 out
        shift
        out=$(python3 "$FW_PY" "$@" 2>>"$BENCH_LOG") || {
                echo "tools/bench: '$*' failed; the log's end:" >&2
                tail -n 20 "$BENCH_LOG" | sed 's/^/  /' >&2
                return 1
        }
        bench_record "$key" "$out"
}

fw_guest() {
        fw_sample fw.guest.thr thr 127.0.0.1 "$FW_PORT_A_SINK" "$FW_MIB_GUEST"
        fw_sample direct.guest.thr thr "$FW_ADDR_A" 7003 "$FW_MIB_GUEST"
        fw_sample fw.guest.rtt rtt 127.0.0.1 "$FW_PORT_A_ECHO" "$FW_RTT_N" "$FW_RTT_MSG"
        fw_sample direct.guest.rtt rtt "$FW_ADDR_A" 7000 "$FW_RTT_N" "$FW_RTT_MSG"
}

fw_local() {
        fw_sample fw.local.thr thr 127.0.0.1 "$FW_PORT_B_SINK" "$FW_MIB_LOCAL"
        fw_sample direct.local.thr thr "$FW_ADDR_B" 7003 "$FW_MIB_LOCAL"
        fw_sample fw.local.rtt rtt 127.0.0.1 "$FW_PORT_B_ECHO" "$FW_RTT_N" "$FW_RTT_MSG"
        fw_sample direct.local.rtt rtt "$FW_ADDR_B" 7000 "$FW_RTT_N" "$FW_RTT_MSG"
        if [ ${#FW_SOCAT_PIDS[@]} -gt 0 ]; then
                fw_sample socat.local.thr thr 127.0.0.1 17003 "$FW_MIB_LOCAL"
                fw_sample socat.local.rtt rtt 127.0.0.1 17000 "$FW_RTT_N" "$FW_RTT_MSG"
        fi
}

bench_forward_round() {
        FW_ROUND=$((${FW_ROUND:-0} + 1))
        if [ $((FW_ROUND % 2)) = 0 ]; then
                fw_guest
                fw_local
        else
                fw_local
                fw_guest
        fi
}

bench_forward_runs() {
        if [ "$BENCH_SMOKE" = 1 ]; then echo "$BENCH_RUNS"; else echo 10; fi
}

bench_forward_finish() {
        FW_CPU_MS=$(bench_proc_cpu_ms "$VMGRD_PID")
        local pid
        for pid in "${FW_SOCAT_PIDS[@]}"; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        kill "$FW_PEER_PID" 2>/dev/null || true
        wait "$FW_PEER_PID" 2>/dev/null || true
        vmgr_peer_delete
        bench_vmgrd_stop
}

# fw_row LABEL KEY: "| LABEL | median | lowest | highest | rounds |".
fw_row() {
        local med min max
        med=$(bench_median "$2")
        min=$(sort -g "$BENCH_SAMPLES/$2" | head -n 1)
        max=$(sort -g "$BENCH_SAMPLES/$2" | tail -n 1)
        echo "| $1 | $(bench_num "$med") | $(bench_num "$min") | $(bench_num "$max") | $(bench_count "$2") |"
}

bench_forward_report() {
        cat <<EOF
## $(bench_forward_title)

A client on the host sends one TCP stream (\`thr\`: $FW_MIB_GUEST MiB to the
guest, $FW_MIB_LOCAL MiB to the local sink, 1 MiB writes, timed until the
server closed after reading everything) or $FW_RTT_N round trips of
$FW_RTT_MSG bytes on one connection (\`rtt\`: the median of each round),
through a forward on \`127.0.0.1\` or directly to the server's IPv6 address
(host mode: the host routes to the group's /64). The guest's servers are
busybox \`nc -ll -e\` (\`cat\` to \`/dev/null\`, or \`cat\` back) in the default
guest under TCG; the local sink is a Python server in a veth peer namespace
on the group's bridge that answers on VM b's address. One round runs every
contender once, guest and local in turns; the first round is a warm-up.

| one TCP stream, MiB/s | median | lowest | highest | rounds |
|---|---:|---:|---:|---:|
$(fw_row "**forward** to the guest" fw.guest.thr)
$(fw_row "direct to the guest" direct.guest.thr)
$(fw_row "**forward** to the local sink" fw.local.thr)
$(fw_row "direct to the local sink" direct.local.thr)
$(bench_has socat.local.thr && fw_row "socat relay on 127.0.0.1 to the local sink (reference)" socat.local.thr)

| round trip of $FW_RTT_MSG bytes, median ms | median | lowest | highest | rounds |
|---|---:|---:|---:|---:|
$(fw_row "**forward** to the guest" fw.guest.rtt)
$(fw_row "direct to the guest" direct.guest.rtt)
$(fw_row "**forward** to the local sink" fw.local.rtt)
$(fw_row "direct to the local sink" direct.local.rtt)
$(bench_has socat.local.rtt && fw_row "socat relay on 127.0.0.1 to the local sink (reference)" socat.local.rtt)

Against the local sink the forward adds $(bench_diff fw.local.rtt direct.local.rtt) ms per round trip
(medians) and carries $(bench_ratio fw.local.thr direct.local.thr)× the direct stream's
throughput; to the TCG guest, where the guest dominates, $(bench_ratio fw.guest.thr direct.guest.thr)×.
vmgrd's CPU time over the whole comparison (boots included): $FW_CPU_MS ms.
The socat rows (only if socat is installed) show a user-space relay that
copies through its own buffers, for reference: vmgrd's relay moves bytes
with \`splice()\` and never copies them into its address space.
EOF
}
