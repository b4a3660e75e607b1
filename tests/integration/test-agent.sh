#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The guest agent (docs/agent.md, docs/agent-protocol.md): the default guest
# with vmgr-agent, under plain QEMU with TCG, its port on a unix socket,
# driven by vmgr-agent-client through lib/agent-proto. In this test's own
# network namespace, with one NIC on a bridge whose dnsmasq sends RAs:
#   HELLO/INFO with the guest's SLAAC address, INFO again on a new address;
#   exit statuses and signals; 20 concurrent processes; stdin and its EOF;
#   100 MiB through stdout with bounded memory on both sides, and a slow
#   reader; file put/get of several MiB with equal SHA-256; errors; hang-ups
#   mid-frame and mid-stream and reconnects; the agent restarting; reboot
#   and power off through the agent; the guest's kernel log as LOG messages,
#   not sent twice within a boot, across sessions and agent restarts.
#   Prints latency and throughput figures.

source "$(dirname "$0")/lib.sh"
vmgr_require_root

QEMU=$(command -v qemu-system-x86_64 || true)
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
if [ -z "$QEMU" ] || [ ! -x "$DNSMASQ" ] || ! compgen -G '/boot/vmlinuz-*-cloud-amd64' >/dev/null; then
        echo "# skipped: needs qemu-system-x86, dnsmasq-base, linux-image-cloud-amd64 (tools/deps)"
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
SOCK=$T/agent.sock
LOG=$T/console.log
mkdir -p "$T/cache"
chown "$VMGR_USER:" "$T/cache"

now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

# The client against the guest's socket; more options may precede the command.
client() {
        "$CLIENT" --socket "$SOCK" --timeout 120 "$@"
}

console_tail() {
        tail -n 25 "$LOG" 2>/dev/null | sed 's/^/console: /' || true
}

# grep_or_show EXTENDED-REGEX FILE: whether FILE has a matching line; shows FILE if not.
grep_or_show() {
        grep -Eq "$1" "$2" || { cat "$2"; return 1; }
}

# wait_exit PID SECONDS: true if PID exits within SECONDS (killed otherwise).
wait_exit() {
        local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
        while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
                sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null || true
                return 1
        fi
        wait "$pid" 2>/dev/null || true
        return 0
}

# --- guest with the agent -----------------------------------------------------

if ! out=$(vmgr_as_user "$MKGUEST" --output-dir "$T/cache" --print-path \
        --extra "$AGENT:/usr/bin/vmgr-agent" 2>"$T/mkguest.err"); then
        vmgr_not_ok "vmgr-mkguest builds the default guest with the agent" "$(cat "$T/mkguest.err")"
        vmgr_finish
fi
read -r KERNEL INITRD <<<"$out"
vmgr_ok "vmgr-mkguest builds the default guest with the agent ($(($(stat -c %s "$INITRD") / 1024)) KiB)"
check "vmgr-agent is a static executable (no program interpreter)" bash -c "! readelf -l '$AGENT' | grep -q INTERP"

PREFIX=fd00:76:6d67:2
BR=vbr-agent
MAC=6a:01:12:34:56:07
ip link add "$BR" type bridge
sysctl -qw "net.ipv6.conf.$BR.accept_ra=0" "net.ipv6.conf.$BR.accept_dad=0"
ip addr add "$PREFIX::1/64" dev "$BR" nodad
ip link set "$BR" up
ip tuntap add dev tap-agent mode tap
ip link set tap-agent master "$BR" up
"$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
        --user=root --bind-dynamic --interface="$BR" --except-interface=lo \
        --pid-file="$T/dnsmasq.pid" --log-facility="$T/dnsmasq.log" \
        --enable-ra --ra-param="$BR,10,1800" --dhcp-range="$PREFIX::,ra-only,64" &

: >"$LOG"
t0=$(now_ms)
# No -no-reboot: the reboot test below reboots the guest in place.
"$QEMU" -nodefaults -no-user-config -M q35 -accel tcg -m 256 -display none \
        -serial "file:$LOG" -kernel "$KERNEL" -initrd "$INITRD" \
        -append "console=ttyS0 vmgr.hostname=agent-guest" \
        -device pcie-root-port,id=rp1,chassis=1,bus=pcie.0,addr=0x2 \
        -netdev tap,id=n1,ifname=tap-agent,script=no,downscript=no \
        -device virtio-net-pci,bus=rp1,netdev=n1,mac=$MAC \
        -device virtio-serial-pci,bus=pcie.0,addr=0x4 \
        -chardev "socket,id=ag,path=$SOCK,server=on,wait=off" \
        -device virtserialport,chardev=ag,name=org.vmgr.agent.0 2>"$T/qemu.err" &
qemu_pid=$!

# --- HELLO and INFO ---------------------------------------------------------

# The client connects at once and sends HELLO; it waits in the socket until
# the agent opens the port after boot. The first session is the one that
# gets the kernel's boot lines: it waits for the first of them.
if client logs --info "$T/info" --until 'Linux version' >"$T/logs.boot" 2>"$T/hello.err"; then
        t_hello=$(($(now_ms) - t0))
        vmgr_ok "HELLO and INFO from the agent ($t_hello ms after QEMU started)"
else
        vmgr_not_ok "HELLO and INFO from the agent" "$(cat "$T/hello.err")" "$(console_tail)" "$(cat "$T/qemu.err")"
        vmgr_finish
fi
check "INFO names the host" grep -qx 'hostname agent-guest' "$T/info"
check_eq "INFO has the kernel release" "kernel $(basename "$KERNEL" | sed 's/^vmlinuz-//')" "$(grep '^kernel ' "$T/info")"
check "INFO has a boot id" grep -Eq '^boot-id [0-9a-f-]{36}$' "$T/info"
check "INFO lists enp1s0 with its MAC" grep -q "^link [0-9]* enp1s0 mtu 1500 flags 0x[0-9a-f]* hw $MAC\$" "$T/info"
check "INFO has loopback 127.0.0.1/8" grep -q '^addr lo ipv4 127.0.0.1/8 ' "$T/info"
check "INFO has enp1s0's SLAAC address, past DAD" \
        bash -c "grep '^addr enp1s0 ipv6 $PREFIX:' '$T/info' | grep -qv tentative"
check "INFO has enp1s0's link-local address" grep -q '^addr enp1s0 ipv6 fe80::' "$T/info"
out=$(client --versions 3:4 hello 2>&1) || true
check_match "a HELLO offering only versions 3..4 is refused, naming the versions" \
        'refused the session: protocol versions 3\.\.4 are not supported; this agent speaks 1\.\.2' "$out"
check "a HELLO offering 1..5 gets version 2" client --versions 1:5 hello
check "a HELLO offering 1..1 gets version 1" client --versions 1:1 hello
check "the agent logs to the console with its prefix" grep -q '^vmgr-agent: listening on /dev/vport' "$LOG"

# A new address reaches the host without asking: rtnetlink -> INFO.
out=$(client wait-addr enp1s0 "$PREFIX::77/64" -- ip -6 addr add "$PREFIX::77/64" dev enp1s0 2>&1) || true
check_match "a new IPv6 address comes in an INFO update once DAD is done" "^enp1s0 $PREFIX::77/64 \(([2-9]|[1-9][0-9]) INFO" "$out"
echo "# $out"
out=$(client wait-addr enp1s0 10.77.0.5/24 -- ip addr add 10.77.0.5/24 dev enp1s0 2>&1) || true
check_match "a new IPv4 address comes in an INFO update" '^enp1s0 10.77.0.5/24 \([1-9]' "$out"

# --- the guest's log ----------------------------------------------------------

# The kernel's first line (seq 0, stamped 0 µs after boot) as LOG: source
# kernel, priority 5 (KERN_NOTICE), realtime the guest's boot, which QEMU's
# RTC puts at about t0 (the guest clock has whole seconds until it syncs).
line=$(grep -m1 '^kernel [0-7] [0-9]* Linux version ' "$T/logs.boot" || true)
check_match "the kernel's boot lines arrive as LOG: 'Linux version', source kernel, priority 5" \
        "^kernel 5 [0-9]+ Linux version $(basename "$KERNEL" | sed 's/^vmlinuz-//') " "$line"
rt_ms=$(($(awk '{ print $3 }' <<<"${line:-x 0 0}") / 1000))
check "its realtime is the guest's boot time ($((rt_ms - t0)) ms from QEMU's start, within 10 s)" \
        test "$rt_ms" -ge $((t0 - 10000)) -a "$rt_ms" -le $((t0 + 10000))
check "the agent's own lines come too (source agent, priority 6)" \
        grep_or_show '^agent 6 [0-9]+ starting \(version .*\)$' "$T/logs.boot"
check "it forwards the kernel log" grep_or_show '^agent 6 [0-9]+ forwarding the kernel log$' "$T/logs.boot"

# A line written by a guest command, in a later session: it comes, and the
# boot lines the first session got do not come again.
if client logs --until hello-from-test -- sh -c 'echo hello-from-test >/dev/kmsg' >"$T/logs.2" 2>"$T/logs.err"; then
        check "a line written to /dev/kmsg in the guest arrives (facility user, level 4)" \
                grep_or_show '^kernel 4 [0-9]+ hello-from-test$' "$T/logs.2"
else
        vmgr_not_ok "a line written to /dev/kmsg in the guest arrives" "$(cat "$T/logs.err")" "$(tail -n 5 "$T/logs.2")"
fi
check "a later session does not get the boot lines again" bash -c "! grep -q 'Linux version' '$T/logs.2'"
out=$(client exec -- cat /run/vmgr-agent/kmsg-seq 2>&1) || true
check_match "the last kernel record sent is kept in /run/vmgr-agent/kmsg-seq, with the boot id" \
        "^$(sed -n 's/^boot-id //p' "$T/info") [0-9]{20}\$" "$out"

# A flood while no host reads: the kernel's ring (4096 records in the
# cloud kernel) overwrites what the agent has not read. The next session
# gets every line still there and one line saying how many were lost, so
# that the two add up; the batch that waited for a host when the last one
# hung up is not swallowed by the next one's connect. Level 7 (<7>): not
# on the serial console, which would take minutes under TCG.
client exec -- sh -c 'setsid sh -c "sleep 1; i=0; while [ \$i -lt 6000 ]; do echo \"<7>flood-\$i\" >/dev/kmsg; i=\$((i + 1)); done; echo flood-done >/dev/kmsg" </dev/null >/dev/null 2>&1 &'
sleep 8
if client logs --until flood-done >"$T/logs.flood" 2>"$T/logs.err"; then
        got=$(grep -c '^kernel 7 [0-9]* flood-[0-9]*$' "$T/logs.flood" || true)
        lost=$(sed -n 's/^agent 4 [0-9]* \([0-9]*\) kernel log records were lost .*/\1/p' "$T/logs.flood" | awk '{ n += $1 } END { print n + 0 }')
        check "after a flood nobody read, lines received and lines counted lost add up to 6000 ($got + $lost)" \
                test $((got + lost)) -ge 6000 -a $((got + lost)) -le 6050
else
        vmgr_not_ok "after a flood nobody read, the next session gets the rest" "$(cat "$T/logs.err")" "$(tail -n 5 "$T/logs.flood")"
fi

# --- processes --------------------------------------------------------------

rc=0; client exec -- true || rc=$?
check_eq "exec true: status 0" 0 "$rc"
rc=0; client exec -- false || rc=$?
check_eq "exec false: status 1" 1 "$rc"
rc=0; client exec -- sh -c 'exit 7' || rc=$?
check_eq "exec sh -c 'exit 7': status 7" 7 "$rc"
rc=0; client exec -- sh -c 'kill -TERM $$' 2>/dev/null || rc=$?
check_eq "a process killed by SIGTERM: signal 15 (128+15)" 143 "$rc"
rc=0; t1=$(now_ms); client exec --kill-after 300:9 -- sleep 30 2>/dev/null || rc=$?
check_eq "KILL SIGKILL ends sleep 30: signal 9 ($(($(now_ms) - t1)) ms)" 137 "$rc"
rc=0; client exec -- /no/such/program 2>"$T/err" || rc=$?
check "a program that cannot run is an ERROR naming why" \
        bash -c "[ $rc = 127 ] && grep -q 'No such file or directory' '$T/err'"
check_eq "stdout and stderr are separate streams" "out" "$(client exec -- sh -c 'echo out; echo err >&2' 2>/dev/null)"
check_eq "the environment and working directory are passed" "/tmp" "$(client exec -- sh -c 'cd /tmp && pwd')"

out=$(client parallel 20 -- sh -c 'sleep 2; echo done' 2>&1) || true
check_match "20 concurrent processes all exit 0 together" '^20 of 20 exited 0 in ([0-9]|1[0-9])[0-9]{3} ms$' "$out"
echo "# parallel: $out"

check_eq "stdin reaches the process, then its EOF" "abcEND" "$(printf abc | client exec -i -- sh -c 'cat; echo END')"
head -c 3145728 /dev/urandom >"$T/stdin.bin"
check_eq "3 MiB through stdin (sha256sum runs on EOF)" \
        "$(sha256sum <"$T/stdin.bin" | cut -d' ' -f1)" "$(client exec -i -- sha256sum <"$T/stdin.bin" | cut -d' ' -f1)"

# --- files ------------------------------------------------------------------

head -c 8388608 /dev/urandom >"$T/file.bin"
sum=$(sha256sum <"$T/file.bin" | cut -d' ' -f1)
t1=$(now_ms)
check_eq "FILE_PUT of 8 MiB reports its size and hash" "8388608 $sum" "$(client put "$T/file.bin" /tmp/file.bin 0640)"
t_put=$(($(now_ms) - t1))
check_eq "the guest has the same bytes and mode" "$sum 640" \
        "$(client exec -- sh -c 'echo $(sha256sum /tmp/file.bin | cut -d" " -f1) $(stat -c %a /tmp/file.bin)')"
t1=$(now_ms)
check_eq "FILE_GET of 8 MiB gives the same SHA-256" "8388608 $sum" "$(client get /tmp/file.bin "$T/back.bin")"
t_get=$(($(now_ms) - t1))
check "the file came back byte for byte" cmp "$T/file.bin" "$T/back.bin"
echo "# file put 8 MiB: $t_put ms, get: $t_get ms"
check_fails "FILE_GET of a missing file fails" client get /no/such/file "$T/x"
check_fails "FILE_PUT into a missing directory fails" client put "$T/stdin.bin" /no/such/dir/x 0644
check_eq "a failed FILE_PUT leaves no temporary file" "" "$(client exec -- sh -c 'ls -a /tmp | grep vmgr-agent || true')"

# --- 100 MiB through stdout, bounded memory ---------------------------------

# 5 x 20 MiB of random bytes from the guest's tmpfs: the agent's cost, not
# the producer's, is what is measured.
head -c 20971520 /dev/urandom >"$T/r20"
client put "$T/r20" /tmp/r20 0600 >/dev/null
want=$(cat "$T/r20" "$T/r20" "$T/r20" "$T/r20" "$T/r20" | sha256sum | cut -d' ' -f1)
t1=$(now_ms)
out=$(client --stats exec --hash -- cat /tmp/r20 /tmp/r20 /tmp/r20 /tmp/r20 /tmp/r20 2>"$T/stats") || true
t_bulk=$(($(now_ms) - t1))
check_eq "100 MiB through stdout arrive whole" "104857600 $want" "$out"
client_kb=$(sed -n "s/.*peak RSS[[:space:]]*\([0-9]*\) kB/\1/p" "$T/stats")
echo "# 100 MiB stdout: $t_bulk ms ($((104857600 / 1000 / (t_bulk > 0 ? t_bulk : 1))) MB/s); client peak RSS ${client_kb} kB"
check "the client's memory stayed bounded (${client_kb} kB < 64 MiB)" test "${client_kb:-999999}" -lt 65536

# A slow reader: 4 MiB consumed at 1 MiB/s with a 64 KiB window. The
# agent may not buffer what the host has not asked for: cat blocks instead.
t1=$(now_ms)
out=$(client --window 65536 exec --hash --rate 1048576 -- head -c 4194304 /tmp/r20 2>&1) || true
t_slow=$(($(now_ms) - t1))
check_eq "a slow reader gets every byte" "4194304 $(head -c 4194304 "$T/r20" | sha256sum | cut -d' ' -f1)" "$out"
check "the slow reader sets the pace ($t_slow ms for 4 MiB at 1 MiB/s)" test "$t_slow" -ge 3500
agent_hwm=$(client exec -- sh -c 'sed -n "s/^VmHWM: *//p" /proc/$(pidof vmgr-agent)/status' | tr -dc '0-9') || true
echo "# agent peak RSS after all of it: ${agent_hwm} kB"
check "the agent's memory stayed bounded (${agent_hwm} kB < 8 MiB)" test "${agent_hwm:-999999}" -lt 8192

# --- hang-ups and reconnects --------------------------------------------------

check "a client hangs up with half a frame and a process running" client garbage
check_eq "the next session comes up and the old process is gone" "0" \
        "$(client exec -- sh -c 'ps | grep -c "[s]leep 1000"' 2>&1)"
ok=0
for i in 1 2 3 4 5; do
        client exec --disconnect-after 200000 -- cat /tmp/r20 >/dev/null 2>&1 || true
        client exec -- true && ok=$((ok + 1))
done
check_eq "hanging up mid-stream, then at once a new session: 5 of 5" 5 "$ok"

# Short sessions back to back: a new host's first bytes may reach the guest
# before the kernel knows it connected, so read() says "no host" right
# after the HELLO; the agent must not take that for a hang-up.
ok=0
for i in $(seq 1 50); do
        [ "$("$CLIENT" --socket "$SOCK" --timeout 10 exec -- echo "$i" 2>/dev/null)" = "$i" ] && ok=$((ok + 1))
done
check_eq "50 short sessions back to back all answer" 50 "$ok"

# The agent restarting under a connected host: init respawns it, and the
# new one answers a new session.
rc=0; client exec -- sh -c 'kill $PPID; sleep 5' >/dev/null 2>&1 || rc=$?
check "the client notices the agent going away" test "$rc" -ne 0
# The new agent's first session: it sends what is new in the kernel log,
# not what the agent before it sent.
if client --timeout 20 logs --until hello-after-restart -- sh -c 'echo hello-after-restart >/dev/kmsg' \
        >"$T/logs.3" 2>"$T/logs.err"; then
        vmgr_ok "a respawned agent answers and forwards a new kernel line"
else
        vmgr_not_ok "a respawned agent answers and forwards a new kernel line" "$(cat "$T/logs.err")" "$(console_tail)"
fi
check "it continues after the last record the agent before it sent" \
        grep_or_show '^agent 6 [0-9]+ forwarding the kernel log after record [0-9]+, which an earlier agent sent$' "$T/logs.3"
check "it does not send that agent's kernel lines again" \
        bash -c "! grep -Eq '^kernel .*(hello-from-test|Linux version)' '$T/logs.3'"
check "a respawned agent answers" client --timeout 20 exec -- true
check "init restarted the agent" grep -q 'vmgr-guest: /usr/bin/vmgr-agent exited with status' "$LOG"

# --- figures ------------------------------------------------------------------

out=$(client ping 200 2>&1) && echo "# $out"
if out=$(client bench 200 2>&1); then
        vmgr_ok "exec benchmark runs"
        sed 's/^/# /' <<<"$out"
else
        vmgr_not_ok "exec benchmark runs" "$out"
fi

# --- reboot and power off -------------------------------------------------------

# wait_boots N: until the console shows the Nth boot's first init line.
wait_boots() {
        local deadline=$(($(now_ms) + 60000))
        while [ "$(grep -c '^vmgr-guest: starting (init' "$LOG")" -lt "$1" ] && [ "$(now_ms)" -lt "$deadline" ]; do
                sleep 0.1
        done
}

# A host that stays connected while the guest reboots: the new agent
# announces itself (HELLO with nonce 0), which tells the host its session
# is gone.
t1=$(now_ms)
out=$(client exec -- sh -c 'reboot; sleep 60' 2>&1) || true
check_match "a host connected across a reboot hears the new agent announce itself ($(($(now_ms) - t1)) ms)" \
        'agent restarted \(HELLO with nonce 0\)' "$out"

boot1=$(sed -n 's/^boot-id //p' "$T/info")
check "REBOOT is answered" client reboot
t1=$(now_ms)
# Until the old agent is gone it would answer a new HELLO itself.
wait_boots 3
if client logs --info "$T/info2" --until 'Linux version' >"$T/logs.4" 2>"$T/hello2.err"; then
        vmgr_ok "after the reboot the new agent answers ($(($(now_ms) - t1)) ms)"
else
        vmgr_not_ok "after the reboot the new agent answers" "$(cat "$T/hello2.err")" "$(console_tail)"
fi
boot2=$(sed -n 's/^boot-id //p' "$T/info2")
check "the boot id changed" test -n "$boot2" -a "$boot1" != "$boot2"
check "a new boot's kernel log is sent from its start" grep -q '^kernel 5 [0-9]* Linux version ' "$T/logs.4"

check "SHUTDOWN is answered" client shutdown
t1=$(now_ms)
if wait_exit "$qemu_pid" 60; then
        vmgr_ok "the guest powers off ($(($(now_ms) - t1)) ms)"
else
        vmgr_not_ok "the guest powers off" "$(console_tail)"
fi

vmgr_finish
