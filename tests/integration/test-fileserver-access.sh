#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Who may use a group's file server, and that nobody can starve it. No VM:
# guests are veth peers in namespaces of their own, ports of a group's
# bridge, with static addresses in the group's /64 and a route to its files
# address via its gateway, as the default guest has.
#   - a guest of group fa downloads a served 0600 file: the right SHA-256;
#   - refused, before any HTTP answer (the connection is closed or reset):
#     another local user on the host, root on the host, another local user
#     that binds the bridge's own address (which is in the /64) as its
#     source; vmgrd counts them (its log line when fa's server stops);
#   - a guest of a second group fb routed to fa's files address gets no
#     answer at all: the host's firewall drops it (in namespace mode,
#     "the host" is vmgrd's network namespace, which root enters to run
#     the other users' and root's attempts: nobody else reaches it);
#   - the server listens on the files address only, not on IPv4;
#   - 130 half-sent requests from one guest address that send one more
#     byte every 2 s: 16 (the per-source limit) stay open, the rest are
#     closed at once; meanwhile another guest downloads within seconds, the
#     same address is turned away at once, and the 16 are closed by the
#     request deadline (10 s), not kept alive by their trickle; then the
#     same address downloads again;
#   - 130 such requests from 10 addresses of one guest fill the server (128):
#     a download from another guest still completes, once the deadline has
#     closed them (about 10 s);
#   - with the server full of quiet connections, a download waiting in the
#     listen backlog gets in as soon as one of them closes.
# Prints the download times.

source "$(dirname "$0")/lib.sh"
vmgr_require_root
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

timings=()

# get.py ADDR PORT PATH [--source ADDR] [--timeout S] [--out FILE]
# One GET with Connection: close. Prints "status N", "body-length N",
# "body-sha256 HEX" and "elapsed-ms N"; or "error KIND" when no HTTP
# answer came: "closed" (EOF before a byte of it), "reset", "timeout",
# "refused" (nothing listens) or another exception's name.
cat >"$VMGR_TMP/get.py" <<'EOF'
import hashlib, socket, sys, time

addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
args, source, timeout, out = sys.argv[4:], None, 10.0, None
while args:
    a = args.pop(0)
    if a == "--source":
        source = (args.pop(0), 0)
    elif a == "--timeout":
        timeout = float(args.pop(0))
    elif a == "--out":
        out = args.pop(0)
t0 = time.monotonic()

def fail(kind):
    print("error", kind)
    print("elapsed-ms", int((time.monotonic() - t0) * 1000))
    sys.exit(0)

try:
    s = socket.create_connection((addr, port), timeout=timeout, source_address=source)
    s.sendall(("GET %s HTTP/1.1\r\nHost: [%s]:%d\r\nConnection: close\r\n\r\n" % (path, addr, port)).encode())
    f = s.makefile("rb")
    line = f.readline()
    if not line:
        fail("closed")
    print("status", line.decode().split()[1])
    length = None
    while True:
        line = f.readline().decode().rstrip("\r\n")
        if not line:
            break
        k, v = line.split(":", 1)
        if k.strip().lower() == "content-length":
            length = int(v)
    h, n = hashlib.sha256(), 0
    sink = open(out, "wb") if out else None
    while True:
        chunk = f.read1(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
        if sink:
            sink.write(chunk)
except ConnectionRefusedError:
    fail("refused")
except (ConnectionResetError, BrokenPipeError):
    fail("reset")
except socket.timeout:
    fail("timeout")
except OSError as e:
    fail(type(e).__name__)
print("body-length", n)
print("body-sha256", h.hexdigest())
print("elapsed-ms", int((time.monotonic() - t0) * 1000))
EOF

# slow.py ADDR PORT N INTERVAL HOLD STATUS SOURCE...
# A slowloris: N connections, round robin over the SOURCE addresses, each
# sending a request line and a header but never the blank line that ends
# the headers; then one more byte each every INTERVAL s, so that no
# connection is ever idle. Appends to STATUS "pid N" at once, "opened N"
# once all connect()s returned and "open-after-1s N" a second later; then
# watches for the server closing them until all are closed or HOLD s have
# passed, and appends "closed-by-server N", "lifetime-min-s X",
# "lifetime-max-s X" (of those still open after 1 s) and "still-open N".
# On SIGUSR1 it closes one connection itself and appends "closed-one".
cat >"$VMGR_TMP/slow.py" <<'EOF'
import os, select, signal, socket, sys, time

addr, port, n, interval, hold, status = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                         float(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
sources = sys.argv[7:]

def say(*words):
    with open(status, "a") as f:
        print(*words, file=f)

close_one = False
def on_usr1(sig, frame):
    global close_one
    close_one = True
signal.signal(signal.SIGUSR1, on_usr1)
say("pid", os.getpid())

conns, opened = {}, 0
for i in range(n):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.bind((sources[i % len(sources)], 0))
        s.settimeout(5)
        s.connect((addr, port))
        s.send(b"GET /half HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        s.setblocking(False)
    except OSError:
        s.close()
        continue
    conns[s.fileno()] = (s, time.monotonic())
    opened += 1
start = time.monotonic()
say("opened", opened)

poller = select.poll()
for fd in conns:
    poller.register(fd, select.POLLIN | select.POLLRDHUP)
closed, lifetimes, reported, next_byte = 0, [], False, start + interval

def close(fd):
    global closed
    s, t = conns.pop(fd)
    poller.unregister(fd)
    s.close()
    closed += 1
    if not reported:
        return
    lifetimes.append(time.monotonic() - t)

while conns and time.monotonic() - start < hold:
    now = time.monotonic()
    if not reported and now - start >= 1:
        say("open-after-1s", len(conns))
        reported = True
    if close_one and conns:
        close_one = False
        fd = next(iter(conns))
        s, t = conns.pop(fd)
        poller.unregister(fd)
        s.close()
        say("closed-one")
    if now >= next_byte:
        next_byte += interval
        for fd, (s, t) in list(conns.items()):
            try:
                s.send(b"a")
            except OSError:
                close(fd)
    for fd, ev in poller.poll(100):
        if fd not in conns:
            continue
        try:
            data = conns[fd][0].recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            close(fd)
if not reported:
    say("open-after-1s", len(conns))
say("closed-by-server", closed)
say("lifetime-min-s", "%.1f" % min(lifetimes) if lifetimes else "-")
say("lifetime-max-s", "%.1f" % max(lifetimes) if lifetimes else "-")
say("still-open", len(conns))
EOF

# The value of field $1 ("status", "error", ...) in output $2.
field() {
        sed -n "s/^$1 //p" <<<"$2" | head -n 1
}

# "status N" or "error KIND" of output $1, for check_eq/check_match.
verdict() {
        local s
        s=$(field status "$1")
        if [ -n "$s" ]; then
                echo "status $s"
        else
                echo "error $(field error "$1")"
        fi
}

sha256_of() {
        local out
        out=$(sha256sum "$1")
        echo "${out%% *}"
}

# guest_create VAR BRIDGE GATEWAY6 FILES6 ADDR...: a namespace emulating a
# guest on BRIDGE (a veth port of it) with the /64 addresses ADDR (the first
# one is its source by default) and a route to FILES6 via GATEWAY6, as the
# default guest has; its name goes to variable VAR. No DAD (addresses are
# usable at once) and no router advertisements (no other addresses).
guest_create() {
        local -n _ns=$1
        local bridge=$2 gateway=$3 files=$4 n=${#VMGR_PEER_NS[@]} a i
        _ns=vmgrpeer-${VMGR_TMP##*.}-$n
        ip netns add "$_ns"
        VMGR_PEER_NS+=("$_ns")
        vmgr_netns_exec ip link add "vh$n" type veth peer name "vp$n" netns "$_ns"
        vmgr_netns_exec ip link set "vh$n" master "$bridge" up
        ip netns exec "$_ns" sysctl -q -w "net.ipv6.conf.vp$n.accept_dad=0" "net.ipv6.conf.vp$n.accept_ra=0"
        ip -n "$_ns" link set lo up
        ip -n "$_ns" link set "vp$n" up
        for a in "${@:5}"; do
                ip -n "$_ns" addr add "$a/64" dev "vp$n" nodad
        done
        ip -n "$_ns" -6 route add "$files/128" via "$gateway" dev "vp$n"
        # The bridge's port forwards at once (forward delay 0); wait for
        # neighbour discovery of the gateway, so the first timing is clean.
        for ((i = 0; i < 100; i++)); do
                ip netns exec "$_ns" ping -6 -c 1 -W 1 -I "$5" "$gateway" >/dev/null 2>&1 && break
                sleep 0.05
        done
}

# start_slow NAME KEY N INTERVAL SOURCE...: run slow.py in guest ga1 with N
# connections against the file server, each sending a byte every INTERVAL s,
# from the SOURCE addresses; its status file is $status ($VMGR_TMP/NAME), and
# return once it has written KEY there (at most 30 s).
start_slow() {
        local key=$2 n=$3 interval=$4 i
        status=$VMGR_TMP/$1
        : >"$status"
        ip netns exec "$ga1" python3 "$VMGR_TMP/slow.py" "$files6" 8080 "$n" "$interval" 40 "$status" "${@:5}" &
        slow_pid=$!
        for ((i = 0; i < 300; i++)); do
                grep -q "^$key " "$status" && break
                sleep 0.1
        done
}

# Stop the slow.py started last (its pid is in $status) and wait for it.
stop_slow() {
        kill "$(field pid "$(cat "$status")")" 2>/dev/null || true
        wait "$slow_pid" 2>/dev/null || true
}

# --- two groups, a file served by fa --------------------------------------------

check "CreateGroup fa (network only)" vmgrctl_as_user group create fa -q
check "CreateGroup fb (network only)" vmgrctl_as_user group create fb -q
vmgr_load_expected ea fa
vmgr_load_expected eb fb
files6=${ea[files6]}
pa=${ea[prefix6]%/64}
pb=${eb[prefix6]%/64}

# A file only its owner may read, as in the report this test answers.
files=$VMGR_TMP/files
mkdir -m 0700 "$files"
head -c $((4 * 1024 * 1024 + 777)) /dev/urandom >"$files/secret.bin"
chmod 0600 "$files/secret.bin"
chown -R "$VMGR_USER:" "$files"
sha=$(sha256_of "$files/secret.bin")
size=$(stat -c %s "$files/secret.bin")
url=$(vmgrctl_as_user serve fa "$files/secret.bin" 2>&1) || true
check_eq "fa serves secret.bin" "http://[$files6]:8080/secret.bin" "$url"

# get ARGS...: get.py as root where the groups live (in namespace mode, root
# entering vmgrd's network namespace: nobody else on the host reaches it).
get() {
        vmgr_netns_exec python3 "$VMGR_TMP/get.py" "$files6" 8080 "$@"
}
# get_as USER ARGS...: the same as USER.
get_as() {
        vmgr_as_argv "$1"
        vmgr_netns_exec "${VMGR_AS_ARGV[@]}" python3 "$VMGR_TMP/get.py" "$files6" 8080 "${@:2}"
}

guest_create ga1 "${ea[bridge]}" "${ea[gateway6]}" "$files6" "${pa}a1" \
        "${pa}c0" "${pa}c1" "${pa}c2" "${pa}c3" "${pa}c4" "${pa}c5" "${pa}c6" "${pa}c7" "${pa}c8" "${pa}c9"
guest_create ga2 "${ea[bridge]}" "${ea[gateway6]}" "$files6" "${pa}a2"
guest_create gb1 "${eb[bridge]}" "${eb[gateway6]}" "$files6" "${pb}b1"
ip -n "$gb1" -6 route add "${eb[files6]}/128" via "${eb[gateway6]}"
# Run a command in a namespace. (In the background, run "ip netns exec"
# itself, which execs the command, so that $! is the command's pid.)
in_ns() {
        ip netns exec "$@"
}

# --- the group's guests, and nobody else ------------------------------------------

out=$(in_ns "$ga2" python3 "$VMGR_TMP/get.py" "$files6" 8080 /secret.bin --source "${pa}a2")
check_eq "a guest of fa downloads the file: 200, all of it, the right SHA-256" "status 200 $size $sha" \
        "$(verdict "$out") $(field body-length "$out") $(field body-sha256 "$out")"
timings+=("guest GET of $size bytes, idle server: $(field elapsed-ms "$out") ms")
out=$(in_ns "$ga1" python3 "$VMGR_TMP/get.py" "$files6" 8080 "/sha256/$sha" --source "${pa}a1")
check_eq "... and another guest of fa, by SHA-256" "status 200 $sha" "$(verdict "$out") $(field body-sha256 "$out")"

# Refused: the connection is closed (or reset, when the request was in
# already) without a byte of HTTP. A timeout would mean something else
# dropped it; a status line means the server answered.
refused='^error (closed|reset)$'
out=$(get_as vmgr-test2 /secret.bin)
check_match "another local user is refused without an answer" "$refused" "$(verdict "$out")"
out=$(get /secret.bin)
check_match "root on the host is refused too" "$refused" "$(verdict "$out")"
out=$(get_as vmgr-test2 /secret.bin --source "${ea[gateway6]}")
check_match "a local user with the bridge's address (in fa's /64) as source is refused" "$refused" "$(verdict "$out")"
# The host's firewall (netadm/firewall.c) drops it before it reaches the server.
out=$(in_ns "$gb1" python3 "$VMGR_TMP/get.py" "$files6" 8080 /secret.bin --source "${pb}b1" --timeout 3)
check_match "a guest of fb, routed to fa's files address, gets no answer" '^error timeout$' "$(verdict "$out")"
out=$(in_ns "$gb1" python3 "$VMGR_TMP/get.py" "${eb[files6]}" 8080 /nope --source "${pb}b1")
check_eq "... while its own group's server answers it" "status 404" "$(verdict "$out")"

listeners=$(vmgr_netns_exec ss -Hltn 'sport = :8080' | awk '{ print $4 }' | sort | tr '\n' ' ')
check_eq "port 8080: only the two files addresses, no IPv4" \
        "$(printf '%s\n' "[${ea[files6]}]:8080" "[${eb[files6]}]:8080" | sort | tr '\n' ' ')" "$listeners"

# --- 130 half-sent requests from one guest address ----------------------------------

start_slow slow1 open-after-1s 130 2 "${pa}a1"
check_eq "130 half-sent requests from one address: 16 (the per-source limit) stay open" "130 16" \
        "$(field opened "$(cat "$status")") $(field open-after-1s "$(cat "$status")")"
out=$(in_ns "$ga2" python3 "$VMGR_TMP/get.py" "$files6" 8080 /secret.bin --source "${pa}a2" --timeout 5)
check_eq "meanwhile another guest downloads the file" "status 200 $sha" "$(verdict "$out") $(field body-sha256 "$out")"
ms=$(field elapsed-ms "$out")
check_match "... within 3 s (${ms:-?} ms)" '^([0-9]{1,3}|[0-2][0-9]{3})$' "$ms"
timings+=("guest GET of $size bytes while one address holds 130 half-sent requests: ${ms:-?} ms")
out=$(in_ns "$ga1" python3 "$VMGR_TMP/get.py" "$files6" 8080 /secret.bin --source "${pa}a1" --timeout 5)
check_match "the flooding address itself is turned away at once" "$refused" "$(verdict "$out")"
wait "$slow_pid" || true
s=$(cat "$status")
check_eq "the server closed all 130, none is left open" "130 0" \
        "$(field closed-by-server "$s") $(field still-open "$s")"
min=$(field lifetime-min-s "$s")
max=$(field lifetime-max-s "$s")
# Sending a byte every 2 s, they were never idle: only the 10 s request
# deadline closes them (give or take the machine's load).
check_match "... by the 10 s request deadline, despite a byte every 2 s (lived $min-$max s)" \
        '^(8|9|1[0-4])\.[0-9] (8|9|1[0-4])\.[0-9]$' "$min $max"
out=$(in_ns "$ga1" python3 "$VMGR_TMP/get.py" "$files6" 8080 /secret.bin --source "${pa}a1" --timeout 5)
check_eq "then the same address downloads again" "status 200 $sha" "$(verdict "$out") $(field body-sha256 "$out")"

# --- 130 from ten addresses of one guest: the server is full ---------------------------

start_slow slow2 opened 130 2 "${pa}c"{0..9}
check_eq "130 half-sent requests from 10 addresses connect" 130 "$(field opened "$(cat "$status")")"
out=$(in_ns "$ga2" python3 "$VMGR_TMP/get.py" "$files6" 8080 /secret.bin --source "${pa}a2" --timeout 30)
ms=$(field elapsed-ms "$out")
check_eq "with the server full, another guest's download completes" "status 200 $sha" \
        "$(verdict "$out") $(field body-sha256 "$out")"
check_match "... once the deadline freed the slots: within 15 s (${ms:-?} ms)" '^([0-9]{1,4}|1[0-4][0-9]{3})$' "$ms"
timings+=("guest GET of $size bytes while 10 addresses hold 130 half-sent requests (server full): ${ms:-?} ms")
stop_slow

# Full again, by 128 connections that stay quiet; a download waits in the
# listen backlog. When one of the 128 closes, the download is let in at
# once: vmgrd runs MHD again to put its listening socket back, rather than
# waiting for the others' deadline (which the slack of 1 s before the close
# keeps at least 8 s away).
start_slow slow3 opened 128 1000 "${pa}c"{0..9}
check_eq "128 quiet connections fill the server" 128 "$(field opened "$(cat "$status")")"
ip netns exec "$ga2" python3 "$VMGR_TMP/get.py" "$files6" 8080 /secret.bin --source "${pa}a2" --timeout 30 \
        >"$VMGR_TMP/get3" &
get_pid=$!
sleep 1
kill -USR1 "$(field pid "$(cat "$status")")"
wait "$get_pid" || true
out=$(cat "$VMGR_TMP/get3")
ms=$(field elapsed-ms "$out")
check_eq "one of them closes: the waiting download completes" "status 200 $sha" \
        "$(verdict "$out") $(field body-sha256 "$out")"
check_match "... at once, not at the others' deadline: within 4 s of its start (${ms:-?} ms)" \
        '^([0-9]{1,3}|[0-3][0-9]{3})$' "$ms"
stop_slow

# --- the count, and nothing left ------------------------------------------------------

check "DeleteGroup fa" vmgrctl_as_user group delete fa
check_match "vmgrd counted the 3 refused connections" \
        "\\[fa\\] File server stopped; it refused 3 connections from outside the group's guests and closed [0-9]+ " \
        "$(grep -F '[fa] File server stopped' "$VMGR_TMP/vmgrd.log" || true)"
check "DeleteGroup fb" vmgrctl_as_user group delete fb

printf '# %s\n' "${timings[@]}"
vmgr_finish
