#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A group's file server: real vmgrd, libvirtd and QEMU (TCG) booting the
# default guest inside this test's namespaces.
#   - vmgrctl serve prints http://[files address]:8080/NAME; ServedFiles and
#     vmgrctl served list the file with its SHA-256 and size;
#   - the guest fetches an 8 MiB file with busybox wget, by name and by
#     /sha256/HEX, and resumes a truncated download with wget -c (a Range
#     request: the kept prefix is not fetched again);
#   - from a second guest, a veth peer on the group's bridge with an address
#     in its /64 (raw HTTP from Python): GET, HEAD and Content-Length, ranges
#     (206 + Content-Range), 416, If-Range, 405, 404 for unknown names and
#     traversal attempts (/../, %2e%2e), an interrupted download resumed with
#     Range; a download running while its file is unserved completes;
#   - the host itself gets no answer (test-fileserver-access.sh checks who
#     may connect in detail);
#   - errors: bad names, a directory, a pipe, a name served twice, unserving
#     an unknown name, another user;
#   - UnserveFile makes the file 404 to the guest too;
#   - after the group is deleted nothing listens on port 8080, a connection
#     is refused, vmgrd holds no fd of a served file, and nothing is left.
# Prints download times (noisy on a shared machine).

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

timings=()

# A raw HTTP client: one request per connection, nothing normalized or
# quoted, so that traversal attempts reach the server as written.
#   http.py ADDR PORT METHOD TARGET [--header 'K: V']... [--out FILE]
#           [--append FILE] [--max-body N] [--pause-after N CMD...]
# Prints "status N", "header NAME VALUE" (lowercase names), "body-length N"
# and "body-sha256 HEX"; or "error NAME" when it cannot connect, "error
# closed" or "error reset" when the server closes without answering.
# --max-body stops reading after N body bytes and drops the connection (an
# interrupted download); --pause-after runs CMD after N body bytes, then
# reads on.
cat >"$VMGR_TMP/http.py" <<'EOF'
import hashlib, socket, subprocess, sys

addr, port, method, target = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
args = sys.argv[5:]
headers, out, mode, max_body, pause_after, pause_cmd = [], None, "wb", None, None, None
while args:
    a = args.pop(0)
    if a == "--header":
        headers.append(args.pop(0))
    elif a in ("--out", "--append"):
        out, mode = args.pop(0), "wb" if a == "--out" else "ab"
    elif a == "--max-body":
        max_body = int(args.pop(0))
    elif a == "--pause-after":
        pause_after, pause_cmd = int(args.pop(0)), args
        args = []
try:
    s = socket.create_connection((addr, port), timeout=30)
except OSError as e:
    print("error", type(e).__name__)
    sys.exit(0)
req = "%s %s HTTP/1.1\r\nHost: [%s]:%d\r\nConnection: close\r\n" % (method, target, addr, port)
req += "".join(h + "\r\n" for h in headers) + "\r\n"
f = s.makefile("rb")
try:
    s.sendall(req.encode())
    status = f.readline().decode().split()
except (ConnectionResetError, BrokenPipeError):
    print("error reset")
    sys.exit(0)
if not status:
    print("error closed")
    sys.exit(0)
print("status", status[1])
length = None
while True:
    line = f.readline().decode().rstrip("\r\n")
    if not line:
        break
    k, v = line.split(":", 1)
    print("header", k.strip().lower(), v.strip())
    if k.strip().lower() == "content-length":
        length = int(v)
h, n = hashlib.sha256(), 0
sink = open(out, mode) if out else None
while True:
    want = 65536
    if max_body is not None:
        want = min(want, max_body - n)
    if pause_after is not None and n < pause_after:
        want = min(want, pause_after - n)
    if want <= 0 and max_body is not None and n >= max_body:
        break
    chunk = f.read1(want) if method != "HEAD" else b""
    if not chunk:
        break
    h.update(chunk)
    n += len(chunk)
    if sink:
        sink.write(chunk)
    if pause_after is not None and n >= pause_after:
        print("paused-at", n)
        sys.stdout.flush()
        subprocess.run(pause_cmd, check=True)
        pause_after = None
s.close()
print("body-length", n)
print("body-sha256", h.hexdigest())
EOF

# The value of field $1 ("status", "header content-length", ...) in output $2.
field() {
        sed -n "s/^$1 //p" <<<"$2" | head -n 1
}

# Output lines joined with spaces.
oneline() {
        tr '\n' ' ' | sed 's/ *$//'
}

sha256_of() {
        local out
        out=$(sha256sum "$1")
        echo "${out%% *}"
}

check "CreateGroup g (VM a, default guest)" vmgrctl_as_user group create g -q --vm a
gpath=$(vmgr_group_path g)
vmgr_load_expected exp g
files6=${exp[files6]}

# Only the group's guests may use its file server: HTTP goes from a veth
# peer on the bridge (a guest without a VM), with an address in the group's
# /64 and a route to the files address via the bridge, as the default guest
# has. (It may also take a SLAAC address from the group's RA: in the /64 too.)
vmgr_peer_create "${exp[bridge]}"
peer=$VMGR_PEER
peer_port=vh$((${#VMGR_PEER_NS[@]} - 1))
ip -n "$peer" addr add "${exp[prefix6]%/64}a1/64" dev "$VMGR_PEER_IF" nodad
ip -n "$peer" -6 route add "$files6/128" via "${exp[gateway6]}" dev "$VMGR_PEER_IF"
http() {
        ip netns exec "$peer" python3 "$VMGR_TMP/http.py" "$files6" 8080 "$@"
}

# The test user reads the files (vmgrctl opens them as that user).
files=$VMGR_TMP/files
mkdir -m 0755 "$files"
head -c $((8 * 1024 * 1024 + 12345)) /dev/urandom >"$files/image.bin"
size=$(stat -c %s "$files/image.bin")
sha=$(sha256_of "$files/image.bin")
printf 'hello\n' >"$files/small.txt"
: >"$files/empty"
chmod 0644 "$files"/*

# --- ServeFile through vmgrctl --------------------------------------------------

url=$(vmgrctl_as_user serve g "$files/image.bin") && rc=0 || rc=$?
check_eq "vmgrctl serve prints the URL on the files address" "0 http://[$files6]:8080/image.bin" "$rc $url"
check_eq "vmgrctl serve --name" "http://[$files6]:8080/hello" \
        "$(vmgrctl_as_user serve g "$files/small.txt" --name hello 2>&1)"
check_eq "an empty file can be served" "http://[$files6]:8080/empty" "$(vmgrctl_as_user serve g "$files/empty" 2>&1)"
out=$(busctl_as_user --json=short get-property org.vmgr1 "$gpath" org.vmgr1.Group ServedFiles)
check_eq "ServedFiles lists name, sha256 and size in order" \
        "image.bin $sha $size|hello $(printf 'hello\n' | sha256sum | cut -d' ' -f1) 6|empty $(sha256sum </dev/null | cut -d' ' -f1) 0" \
        "$(python3 -c 'import json,sys; print("|".join(" ".join(map(str, f)) for f in json.loads(sys.argv[1])["data"]))' "$out")"
out=$(vmgrctl_as_user served g 2>&1)
check_match "vmgrctl served: a table with the URL" "image\.bin +$size +$sha +http://\[$files6\]:8080/image\.bin" "$out"
out=$(vmgrctl_as_user serve g "$files/small.txt" --name small2 --json 2>&1)
check_match "vmgrctl serve --json: name, size, sha256, URL" '"Name":"small2","Size":6,"SHA256":"[0-9a-f]{64}","URL":"http://' "$out"

# --- errors ----------------------------------------------------------------------

# vmgrctl's exit status and first line for a serve that must fail.
serve_fails() {
        local out rc=0
        out=$(vmgrctl_as_user serve g "$@" 2>&1) || rc=$?
        echo "$rc ${out%%$'\n'*}"
}
check_match "a name with '/' is refused (exit 2)" '^2 vmgrctl: invalid file name "a/b": only letters' \
        "$(serve_fails "$files/small.txt" --name a/b)"
check_match "'..' is refused" '^2 vmgrctl: invalid file name "\.\.": it must not start' \
        "$(serve_fails "$files/small.txt" --name ..)"
check_match "a name served already is refused (exit 1)" "^1 vmgrctl: group 'g' already serves a file named 'image.bin'" \
        "$(serve_fails "$files/image.bin")"
check_match "a directory is refused (exit 2)" '^2 vmgrctl: cannot serve .* the fd is a directory' \
        "$(serve_fails "$files" --name dir)"
mkfifo -m 0666 "$VMGR_TMP/fifo"
check_match "a FIFO is refused" '^2 vmgrctl: cannot serve .* the fd is a pipe' "$(serve_fails "$VMGR_TMP/fifo")"
check_match "a missing file: vmgrctl says so" "^1 vmgrctl: cannot read $files/nope" "$(serve_fails "$files/nope")"
out=$(vmgr_dbus_error "$gpath" org.vmgr1.Group.UnserveFile string:nope)
check_match "UnserveFile of an unknown name: FileNotFound" '^org\.freedesktop\.DBus\.Error\.FileNotFound: ' "$out"
rc=0
vmgrctl_as_user unserve g nope >/dev/null 2>&1 || rc=$?
check_eq "vmgrctl unserve of an unknown name exits 3" 3 "$rc"
out=$(vmgr_dbus_error "$gpath" org.vmgr1.Group.UnserveFile string:../x)
check_match "UnserveFile of a bad name: InvalidName" '^org\.vmgr1\.Error\.InvalidName: ' "$out"
out=$(vmgr_as vmgr-test2 "$VMGRCTL" serve g "$files/small.txt" --name other 2>&1) || true
check_match "another user may not serve files" "may not use the vmgrd of uid" "$out"
out=$(vmgr_as vmgr-test2 "$VMGRCTL" unserve g hello 2>&1) || true
check_match "nor unserve them" "may not use the vmgrd of uid" "$out"

# --- HTTP from a guest without a VM ----------------------------------------------------

out=$(vmgr_netns_exec python3 "$VMGR_TMP/http.py" "$files6" 8080 GET /image.bin)
check_match "the host gets no answer: not a guest of the group" '^error (closed|reset)$' "$out"

t0=$(vmgr_now_ms)
out=$(http GET /image.bin)
timings+=("veth guest GET of $size bytes: $(($(vmgr_now_ms) - t0)) ms (Python client, ASan build)")
check_eq "GET: 200, Content-Length, the file's bytes" "200 $size $size $sha" \
        "$(field status "$out") $(field 'header content-length' "$out") $(field body-length "$out") $(field body-sha256 "$out")"
check_eq "GET: Accept-Ranges and a strong ETag of the content" "bytes \"$sha\"" \
        "$(field 'header accept-ranges' "$out") $(field 'header etag' "$out")"
out=$(http GET "/sha256/$sha")
check_eq "GET /sha256/HEX serves the same bytes" "200 $sha" "$(field status "$out") $(field body-sha256 "$out")"
out=$(http GET "/sha256/${sha^^}")
check_eq "... the hex in either case" "200" "$(field status "$out")"
out=$(http HEAD /image.bin)
check_eq "HEAD: 200, Content-Length of the whole file, no body" "200 $size 0" \
        "$(field status "$out") $(field 'header content-length' "$out") $(field body-length "$out")"
out=$(http HEAD /image.bin --header 'Range: bytes=0-9')
check_eq "HEAD ignores Range" "200 $size" "$(field status "$out") $(field 'header content-length' "$out")"

# Byte ranges: the expected slices, cut with dd.
slice_sha() {
        dd if="$files/image.bin" bs=1 skip="$1" count="$2" iflag=skip_bytes,count_bytes status=none | sha256sum | cut -d' ' -f1
}
out=$(http GET /image.bin --header 'Range: bytes=100-1123')
check_eq "Range 100-1123: 206, Content-Range, Content-Length, the bytes" \
        "206 bytes 100-1123/$size 1024 $(slice_sha 100 1024)" \
        "$(field status "$out") $(field 'header content-range' "$out") $(field 'header content-length' "$out") $(field body-sha256 "$out")"
out=$(http GET /image.bin --header 'Range: bytes=-10')
check_eq "Range -10: the last 10 bytes" "206 bytes $((size - 10))-$((size - 1))/$size $(slice_sha $((size - 10)) 10)" \
        "$(field status "$out") $(field 'header content-range' "$out") $(field body-sha256 "$out")"
out=$(http GET /image.bin --header "Range: bytes=$((size - 5))-99999999999")
check_eq "Range past the end is cut to it" "206 bytes $((size - 5))-$((size - 1))/$size 5" \
        "$(field status "$out") $(field 'header content-range' "$out") $(field body-length "$out")"
out=$(http GET /image.bin --header "Range: bytes=$size-")
check_eq "Range at the end: 416 with Content-Range bytes */SIZE" "416 bytes */$size" \
        "$(field status "$out") $(field 'header content-range' "$out")"
out=$(http GET /empty --header "Range: bytes=0-")
check_eq "Range of an empty file: 416" "416 bytes */0" "$(field status "$out") $(field 'header content-range' "$out")"
out=$(http GET /empty)
check_eq "GET of an empty file: 200, Content-Length 0" "200 0 0" \
        "$(field status "$out") $(field 'header content-length' "$out") $(field body-length "$out")"
out=$(http GET /image.bin --header 'Range: bytes=0-1,5-6')
check_eq "several ranges: the whole file (200)" "200 $size" "$(field status "$out") $(field body-length "$out")"
out=$(http GET /image.bin --header 'Range: bytes=10-19' --header "If-Range: \"$sha\"")
check_eq "If-Range with the ETag: the range" "206 10" "$(field status "$out") $(field body-length "$out")"
out=$(http GET /image.bin --header 'Range: bytes=10-19' --header 'If-Range: "0000"')
check_eq "If-Range with another ETag: the whole file" "200 $size" "$(field status "$out") $(field body-length "$out")"

for m in POST PUT DELETE OPTIONS; do
        out=$(http "$m" /image.bin)
        check_eq "$m: 405 with Allow: GET, HEAD" "405 GET, HEAD" "$(field status "$out") $(field 'header allow' "$out")"
done
for target in /nope /image.bin/ /image.bin/x /../image.bin /%2e%2e/image.bin /files/../image.bin \
        /./image.bin //image.bin /%2fimage.bin /sha256/../image.bin /sha256/ "/sha256/${sha:0:63}" \
        "/sha256/${sha}0" /%2e%2e%2f%2e%2e%2fetc%2fpasswd /../../../../etc/passwd "/image.bin%00" \
        "http://[$files6]:8080/../image.bin"; do
        out=$(http GET "$target")
        check_eq "GET $target: 404" 404 "$(field status "$out")"
done
out=$(http GET '/image.bin?x=1')
check_eq "a query string is ignored" "200 $size" "$(field status "$out") $(field body-length "$out")"

# An interrupted download (the connection dropped after 3 MiB) resumed with Range.
part=$VMGR_TMP/part
http GET /image.bin --out "$part" --max-body $((3 * 1024 * 1024)) >/dev/null
have=$(stat -c %s "$part")
out=$(http GET /image.bin --header "Range: bytes=$have-" --append "$part")
check_eq "an interrupted download resumes with Range (206 from $have)" \
        "206 bytes $have-$((size - 1))/$size $((size - have))" \
        "$(field status "$out") $(field 'header content-range' "$out") $(field body-length "$out")"
check_eq "the resumed file has the right SHA-256" "$sha" "$(sha256_of "$part")"

# --- the guest ----------------------------------------------------------------------

apath=$(vmgr_vm_path g a)
out=$(busctl_as_user --timeout=130 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 120000000 2>&1) && rc=0 || rc=$?
check_eq "the guest is ready" "0" "$rc${out:+ $out}"

guest() {
        vmgrctl_as_user exec g a -- sh -c "$1"
}
out=$(guest 'ip -6 route get '"$files6"' 2>&1' 2>&1 || true)
check_match "the guest routes to the files address through the bridge's address" \
        "^$files6 (from :: )?via ${exp[gateway6]} dev enp1s0 " "$out"

t0=$(vmgr_now_ms)
out=$(guest "wget -q -O /tmp/f '$url' && sha256sum /tmp/f" 2>&1) || true
timings+=("guest wget of $size bytes: $(($(vmgr_now_ms) - t0)) ms (TCG guest, vmgrctl exec included)")
check_eq "guest: wget of the URL, the right SHA-256" "$sha  /tmp/f" "$out"
out=$(guest "wget -q -O /tmp/g 'http://[$files6]:8080/sha256/$sha' && sha256sum /tmp/g" 2>&1) || true
check_eq "guest: wget of /sha256/HEX, the right SHA-256" "$sha  /tmp/g" "$out"

# Resume: the guest keeps 3 000 000 bytes of zeros as its partial file. If
# wget -c fetched only the rest (Range), the zeros stay: the result is zeros
# + the file's tail, which tells a resumed download from a fresh one.
keep=3000000
expected=$({ head -c "$keep" /dev/zero; tail -c +$((keep + 1)) "$files/image.bin"; } | sha256sum | cut -d' ' -f1)
out=$(guest "rm -f /tmp/f; head -c $keep /dev/zero >/tmp/p; wget -q -c -O /tmp/p '$url' && sha256sum /tmp/p && wc -c </tmp/p" 2>&1) || true
check_eq "guest: wget -c on a partial file fetches only the rest (Range)" "$expected  /tmp/p $size" "$(oneline <<<"$out")"
out=$(guest "head -c $keep /tmp/g >/tmp/q; rm /tmp/g; wget -q -c -O /tmp/q '$url' && sha256sum /tmp/q" 2>&1) || true
check_eq "guest: a truncated download completed with wget -c has the right SHA-256" "$sha  /tmp/q" "$out"
guest 'rm -f /tmp/p /tmp/q' || true

# --- UnserveFile ---------------------------------------------------------------------

# A download running when its file is unserved completes (it reads its own
# dup of the fd); requests after that get 404.
vmgr_as_argv "$VMGR_USER"
out=$(http GET /image.bin --pause-after 65536 "${VMGR_AS_ARGV[@]}" "$VMGRCTL" unserve g image.bin)
check_eq "a download running while its file is unserved completes" "65536 200 $sha" \
        "$(field paused-at "$out") $(field status "$out") $(field body-sha256 "$out")"
out=$(http GET /image.bin)
check_eq "after UnserveFile: GET /NAME is 404" 404 "$(field status "$out")"
out=$(http GET "/sha256/$sha")
check_eq "after UnserveFile: GET /sha256/HEX is 404" 404 "$(field status "$out")"
out=$(guest "wget -q -O /tmp/f '$url' 2>&1; echo rc=\$?" 2>&1) || true
check_match "after UnserveFile: the guest's wget fails with 404" "404.*rc=1" "$(oneline <<<"$out")"
check_eq "ServedFiles no longer lists it" "hello empty small2" \
        "$(busctl_as_user --json=short get-property org.vmgr1 "$gpath" org.vmgr1.Group ServedFiles |
                python3 -c 'import json,sys; print(" ".join(f[0] for f in json.load(sys.stdin)["data"]))')"
check "the name can be served again" vmgrctl_as_user serve g "$files/image.bin"
out=$(http GET /image.bin)
check_eq "... and is served again" "200 $sha" "$(field status "$out") $(field body-sha256 "$out")"

# --- deleting the group stops the server -----------------------------------------------

open_fds() {
        ls -l "/proc/$VMGRD_PID/fd" 2>/dev/null | grep -c -F "$files/" || true
}
check_eq "vmgrd holds one fd per served file (4)" 4 "$(open_fds)"
check "DeleteGroup g" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s g
check_empty "nothing listens on port 8080" "$(vmgr_netns_exec ss -Hltn 'sport = :8080')"
check_eq "vmgrd holds no fd of a served file" 0 "$(open_fds)"
# The files address left lo with the group: the connection fails either way.
out=$(vmgr_netns_exec python3 "$VMGR_TMP/http.py" "$files6" 8080 GET /hello)
check_match "the file server is gone (connection fails)" '^error (ConnectionRefusedError|OSError)' "$out"
check_empty "nothing of g left" "$(vmgr_group_leftovers g a)"
check_empty "nothing left behind (but vmgrd's libvirtd, which runs until vmgrd exits)" \
        "$(vmgr_leftovers | grep -v ' libvirtd$' || true)"

# A group made again after that serves again (the port is free).
check "CreateGroup g again (network only)" vmgrctl_as_user group create g -q
# The peer's port left with the old bridge: attach it to the new one, and
# forget the old bridge's MAC for the gateway.
vmgr_netns_exec ip link set "$peer_port" master "${exp[bridge]}"
ip -n "$peer" neigh flush dev "$VMGR_PEER_IF"
check_eq "its file server answers" 404 "$(field status "$(http GET /hello)")"
out=$(vmgrctl_as_user serve g "$files/image.bin" --name big 2>&1)
check_eq "serve on the new group" "http://[$files6]:8080/big" "$out"
# SIGTERM with files served: vmgr_finish checks vmgrd exits 0, without sanitizer reports.
vmgr_netns_exec ss -Hltn 'sport = :8080' | grep -q . && rc=0 || rc=1
check_eq "it listens on port 8080" 0 "$rc"

printf '# %s\n' "${timings[@]}"
vmgr_finish
