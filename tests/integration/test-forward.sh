#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Port forwards: real vmgrd, libvirtd and QEMU (TCG) booting the default
# guest (two VMs) inside this test's namespaces.
#   - vmgrctl forward prints the address it listens on; port 0 picks a free one;
#   - TCP from 127.0.0.1 and from ::1 to an echo server in the guest
#     (busybox nc -ll -e cat): 10 MiB sent, then EOF (half-close), the same
#     10 MiB back, SHA-256 equal;
#   - UDP datagrams both ways (a tiny static echo server copied into the guest);
#   - Forwards and vmgrctl forwards list them; RemoveForward closes the listener;
#   - a forward survives the guest's reboot;
#   - when the VM stops, its relayed connections are reset; while it does
#     not run, a new connection is reset at once;
#   - errors: bad protocol, port and address (InvalidArgs), unknown VM
#     (NoSuchVM), a port in use (AddressConflict), unknown forward, another user;
#   - attack: 400 connections at once: vmgrd keeps answering the bus
#     promptly, relays exactly 256 (the limit) and resets the rest;
#   - removing a VM removes its forwards; deleting the group removes the rest.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

timings=()

# Whatever this test asks of the network namespace where vmgrd listens
# (host mode: this test's own). In namespace mode the guests live elsewhere,
# but forwards still listen here; a runner for that mode replaces these.
fwd_listening() { # PROTO PORT: true if something listens on PORT
        local flag=-Hltn
        [ "$1" = udp ] && flag=-Hlun
        ss "$flag" "sport = :$2" | grep -q .
}

ctl() {
        vmgrctl_as_user "$@"
}

# The guest's echo server for UDP (tests/udp-echo.c): busybox has no UDP
# tool. Static, so it runs in the busybox initramfs; copied in with vmgrctl cp.
install -m 0755 "$VMGR_BUILD_DIR/tests/vmgr-udp-echo" "$VMGR_TMP/udp-echo"

# The host's client.
#   fwd.py tcp ADDR PORT IN OUT      send IN, then EOF; what comes back goes to OUT
#   fwd.py udp ADDR PORT N           N datagrams, each must come back; prints how many did
#   fwd.py probe ADDR PORT           "open" if the connection stays up 1 s, else "reset"/"closed"/"refused"
#   fwd.py hold ADDR PORT SEC        one echo, then "open" if the connection stays up SEC s, else "reset"/"closed"
#   fwd.py flood ADDR PORT N SEC     N connections at once, held SEC s; prints "relayed R reset X"
cat >"$VMGR_TMP/fwd.py" <<'EOF'
import os, select, socket, sys, threading, time

def connect(addr, port):
    return socket.create_connection((addr, port), timeout=60)

def tcp(addr, port, src, dst):
    s = connect(addr, port)
    def send():
        with open(src, "rb") as f:
            while True:
                b = f.read(65536)
                if not b:
                    break
                s.sendall(b)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    with open(dst, "wb") as out:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out.write(b)
    t.join()
    print("done")

def udp(addr, port, n):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    good = 0
    for i in range(n):
        msg = ("datagram %d " % i).encode() + os.urandom(i * 100)
        for attempt in range(3):
            s.sendto(msg, (addr, port))
            try:
                if s.recv(65536) == msg:
                    good += 1
                break
            except socket.timeout:
                continue
    print(good)

def state(s, wait):
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return "open"
    try:
        return "open" if s.recv(1) else "closed"
    except ConnectionResetError:
        return "reset"

def probe(addr, port):
    try:
        s = connect(addr, port)
    except ConnectionRefusedError:
        print("refused")
        return
    except ConnectionResetError:
        # Accepted and reset so fast that connect() already saw it.
        print("reset")
        return
    print(state(s, 1))

def hold(addr, port, wait):
    s = connect(addr, port)
    s.sendall(b"x")
    if s.recv(1) != b"x":
        print("no echo")
        return
    print("echoed", flush=True)
    print(state(s, wait))

def flood(addr, port, n, hold):
    socks = []
    for i in range(n):
        try:
            socks.append(connect(addr, port))
        except OSError:
            pass
    time.sleep(hold)
    counts = {"open": 0, "reset": 0, "closed": 0}
    for s in socks:
        counts[state(s, 0)] += 1
    print("relayed %d reset %d" % (counts["open"], counts["reset"] + counts["closed"] + n - len(socks)))

cmd, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if cmd == "tcp":
    tcp(addr, port, sys.argv[4], sys.argv[5])
elif cmd == "udp":
    udp(addr, port, int(sys.argv[4]))
elif cmd == "probe":
    probe(addr, port)
elif cmd == "hold":
    hold(addr, port, float(sys.argv[4]))
elif cmd == "flood":
    flood(addr, port, int(sys.argv[4]), float(sys.argv[5]))
EOF
fwd() {
        python3 "$VMGR_TMP/fwd.py" "$@"
}

sha256_of() {
        local out
        out=$(sha256sum "$1")
        echo "${out%% *}"
}

check "CreateGroup g (VMs a and b, default guest)" ctl group create g -q --vm a --vm b
gpath=$(vmgr_group_path g)
a=$(vmgr_vm_path g a)
b=$(vmgr_vm_path g b)
out=$(busctl_as_user --timeout=300 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 290000000 2>&1) && rc=0 || rc=$?
check_eq "both VMs are ready" 0 "$rc${out:+ $out}"

# Servers in the guest: TCP echo on 7000 (one cat per connection), UDP echo
# on 7001, and on 7002 a listener that never accepts (the kernel completes
# handshakes into its backlog), for the flood.
start_servers() {
        ctl exec g "$1" -- sh -c 'nc -ll -p 7000 -e cat </dev/null >/dev/null 2>&1 &'
        ctl cp "$VMGR_TMP/udp-echo" "g/$1:/tmp/udp-echo"
        ctl exec g "$1" -- sh -c 'chmod 755 /tmp/udp-echo; /tmp/udp-echo 7001 </dev/null >/dev/null 2>&1 &
                /tmp/udp-echo 7002 hold </dev/null >/dev/null 2>&1 &'
}
check "echo servers start in guest a" start_servers a

head -c $((10 * 1024 * 1024)) /dev/urandom >"$VMGR_TMP/in"
sha_in=$(sha256_of "$VMGR_TMP/in")

# --- TCP ------------------------------------------------------------------------

out=$(ctl forward g a 7000 2>&1) && rc=0 || rc=$?
check_match "vmgrctl forward: 127.0.0.1 and a free port by default" '^0 127\.0\.0\.1:[0-9]+$' "$rc $out"
tport=${out##*:}
check "it listens" fwd_listening tcp "$tport"

t0=$(vmgr_now_ms)
out=$(fwd tcp 127.0.0.1 "$tport" "$VMGR_TMP/in" "$VMGR_TMP/out" 2>&1)
timings+=("10 MiB echoed through the forward (TCG guest): $(($(vmgr_now_ms) - t0)) ms")
check_eq "TCP over 127.0.0.1: 10 MiB there and back, EOF passed on" "done $sha_in" "$out $(sha256_of "$VMGR_TMP/out")"

out=$(ctl forward g a tcp:7000 '[::1]:0' 2>&1) && rc=0 || rc=$?
check_match "forward on [::1]" '^0 \[::1\]:[0-9]+$' "$rc $out"
t6port=${out##*:}
rm -f "$VMGR_TMP/out"
out=$(fwd tcp ::1 "$t6port" "$VMGR_TMP/in" "$VMGR_TMP/out" 2>&1)
check_eq "TCP over ::1: 10 MiB there and back" "done $sha_in" "$out $(sha256_of "$VMGR_TMP/out")"

# A port of our choice: a free one, found the same way.
fixed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(ctl forward g a 7000 "127.0.0.1:$fixed" 2>&1) && rc=0 || rc=$?
check_eq "forward on a chosen port" "0 127.0.0.1:$fixed" "$rc $out"

# --- UDP ------------------------------------------------------------------------

out=$(ctl forward g a udp:7001 2>&1) && rc=0 || rc=$?
check_match "UDP forward" '^0 127\.0\.0\.1:[0-9]+$' "$rc $out"
uport=${out##*:}
check "it listens (UDP)" fwd_listening udp "$uport"
check_eq "UDP: 20 datagrams (up to 2 KB) there and back" 20 "$(fwd udp 127.0.0.1 "$uport" 20 2>&1)"

# --- listing ----------------------------------------------------------------------

out=$(busctl_as_user get-property org.vmgr1 "$gpath" org.vmgr1.Group Forwards)
check_eq "Forwards lists them, oldest first" \
        "a(ssqsq) 4 \"a\" \"tcp\" 7000 \"127.0.0.1\" $tport \"a\" \"tcp\" 7000 \"::1\" $t6port \"a\" \"tcp\" 7000 \"127.0.0.1\" $fixed \"a\" \"udp\" 7001 \"127.0.0.1\" $uport" \
        "$out"
out=$(ctl forwards g 2>&1)
check_match "vmgrctl forwards: a table" "a +udp +7001 +127\.0\.0\.1 +$uport" "$out"
out=$(ctl forwards g --json 2>&1)
check_match "vmgrctl forwards --json" "\"VM\":\"a\",\"Protocol\":\"tcp\",\"GuestPort\":7000,\"Address\":\"::1\",\"Port\":$t6port,\"Listen\":\"\[::1\]:$t6port\"" "$out"

# --- errors -----------------------------------------------------------------------

fails() { # print "STATUS first-line" of a vmgrctl call that must fail
        local out rc=0
        out=$(ctl "$@" 2>&1) || rc=$?
        echo "$rc ${out%%$'\n'*}"
}
err() { # the D-Bus error name of ForwardPort(ARGS...)
        vmgr_dbus_error "$gpath" org.vmgr1.Group.ForwardPort "$@" | cut -d: -f1
}
check_eq "protocol sctp: InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs \
        "$(err string:a string:sctp uint16:7000 string: uint16:0)"
check_eq "guest port 0: InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs \
        "$(err string:a string:tcp uint16:0 string: uint16:0)"
check_eq "address 'localhost': InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs \
        "$(err string:a string:tcp uint16:7000 string:localhost uint16:0)"
check_eq "an address not on this host: InvalidArgs" org.freedesktop.DBus.Error.InvalidArgs \
        "$(err string:a string:tcp uint16:7000 string:192.0.2.1 uint16:0)"
check_eq "unknown VM: NoSuchVM" org.vmgr1.Error.NoSuchVM "$(err string:zz string:tcp uint16:7000 string: uint16:0)"
check_eq "a port in use: AddressConflict" org.vmgr1.Error.AddressConflict \
        "$(err string:a string:tcp uint16:7000 string:127.0.0.1 "uint16:$tport")"
check_match "vmgrctl: a port in use says so" "^1 vmgrctl: tcp \[127\.0\.0\.1\]:$tport is already in use" \
        "$(fails forward g a 7000 "$tport")"
check_match "vmgrctl: a bad guest port is a usage error (exit 2)" '^2 vmgrctl: invalid guest port "udp:0"' \
        "$(fails forward g a udp:0)"
check_match "vmgrctl: an unbracketed IPv6 address is refused" '^2 vmgrctl: invalid host port "::1:80".*brackets' \
        "$(fails forward g a 7000 ::1:80)"
check_match "vmgrctl: unknown VM exits 3" "^3 vmgrctl: .*no VM 'zz'" "$(fails forward g zz 7000)"
check_match "vmgrctl unforward: unknown forward exits 3" '^3 vmgrctl: group .g. has no udp forward on \[127\.0\.0\.1\]:1$' \
        "$(fails unforward g udp:1)"
out=$(vmgr_as vmgr-test2 dbus-send --session --print-reply --dest=org.vmgr1 "$gpath" \
        org.vmgr1.Group.ForwardPort string:a string:tcp uint16:7000 string: uint16:0 2>&1 || true)
check_match "another user may not forward" 'PermissionDenied|AccessDenied' "$out"

# --- RemoveForward ------------------------------------------------------------------

check "vmgrctl unforward of the chosen port" ctl unforward g "tcp:127.0.0.1:$fixed"
check_fails "it no longer listens" fwd_listening tcp "$fixed"
check_eq "a connection to it is refused" refused "$(fwd probe 127.0.0.1 "$fixed")"
check "RemoveForward of [::1] (address in another spelling)" busctl_as_user call org.vmgr1 "$gpath" \
        org.vmgr1.Group RemoveForward ssq tcp 0:0:0:0:0:0:0:1 "$t6port"
check_fails "[::1] no longer listens" fwd_listening tcp "$t6port"

# --- attack: a flood of connections -------------------------------------------------

out=$(ctl forward g a 7002 2>&1) && rc=0 || rc=$?
check_match "forward to the guest's never-accepting listener" '^0 127\.0\.0\.1:[0-9]+$' "$rc $out"
hport=${out##*:}
fwd flood 127.0.0.1 "$hport" 400 8 >"$VMGR_TMP/flood" 2>&1 &
flood_pid=$!
sleep 3
worst=0
for i in $(seq 20); do
        t0=$(vmgr_now_ms)
        busctl_as_user get-property org.vmgr1 "$gpath" org.vmgr1.Group State >/dev/null || worst=99999
        t=$(($(vmgr_now_ms) - t0))
        [ "$t" -gt "$worst" ] && worst=$t
done
timings+=("slowest of 20 property reads during the flood: $worst ms")
check_match "vmgrd answers the bus during the flood (slowest read < 2 s)" '^[0-9]{1,3}$|^1[0-9]{3}$' "$worst"
wait "$flood_pid"
check_eq "400 connections at once: 256 relayed (the limit), the rest reset" "relayed 256 reset 144" \
        "$(cat "$VMGR_TMP/flood")"
check_eq "after the flood, the TCP forward still works" "done $sha_in" \
        "$(fwd tcp 127.0.0.1 "$tport" "$VMGR_TMP/in" "$VMGR_TMP/out" 2>&1) $(sha256_of "$VMGR_TMP/out")"

# --- reboot ---------------------------------------------------------------------------

check "VM a: Reboot" busctl_as_user call org.vmgr1 "$a" org.vmgr1.VM Reboot
out=$(busctl_as_user --timeout=200 call org.vmgr1 "$a" org.vmgr1.VM WaitReady t 190000000 2>&1) && rc=0 || rc=$?
check_eq "VM a is ready again" 0 "$rc${out:+ $out}"
check "echo servers start again in guest a" start_servers a
rm -f "$VMGR_TMP/out"
check_eq "the TCP forward works after the reboot" "done $sha_in" \
        "$(fwd tcp 127.0.0.1 "$tport" "$VMGR_TMP/in" "$VMGR_TMP/out" 2>&1) $(sha256_of "$VMGR_TMP/out")"
check_eq "the UDP forward works after the reboot" 5 "$(fwd udp 127.0.0.1 "$uport" 5 2>&1)"

# --- a VM that does not run, a VM removed ------------------------------------------------

out=$(ctl forward g b 7000 2>&1) && rc=0 || rc=$?
check_match "forward to VM b" '^0 127\.0\.0\.1:[0-9]+$' "$rc $out"
bport=${out##*:}
check "echo servers start in guest b" start_servers b
fwd hold 127.0.0.1 "$bport" 60 >"$VMGR_TMP/hold" 2>&1 &
hold_pid=$!
vmgr_wait_until 30 grep -q echoed "$VMGR_TMP/hold"
check "VM b: Kill" ctl vm kill g b
wait "$hold_pid"
check_eq "a connection through the forward is reset when VM b stops" "echoed reset" "$(tr '\n' ' ' <"$VMGR_TMP/hold" | sed 's/ $//')"
check_eq "while VM b does not run, a connection is reset" reset "$(fwd probe 127.0.0.1 "$bport")"
check "RemoveVM b" ctl vm remove g b
check_fails "VM b's forward no longer listens" fwd_listening tcp "$bport"
out=$(ctl forwards g -q 2>&1)
check_eq "Forwards no longer lists VM b's" "" "$(grep ' 7000 .* '"$bport"'$' <<<"$out" || true)"

# --- the group goes ------------------------------------------------------------------------

check "DeleteGroup g" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s g
check_fails "the TCP forward no longer listens" fwd_listening tcp "$tport"
check_fails "the UDP forward no longer listens" fwd_listening udp "$uport"
fds=$(ls -l "/proc/$VMGRD_PID/fd" 2>/dev/null | grep -c -e 'socket:' -e 'pipe:' || true)
timings+=("vmgrd's sockets and pipes after the group is gone: $fds")
check_empty "nothing of g left" "$(vmgr_group_leftovers g a)"

printf '# %s\n' "${timings[@]}"
vmgr_finish
