#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The default guest (docs/guest.md): vmgr-mkguest builds it as an unprivileged
# user, concurrent builds share one result, and the guest boots under TCG:
#   1. without network, powers off through init (and with "poweroff -f");
#   2. with two virtio NICs on PCI buses 1 and 2 of a q35 machine, attached to
#      a bridge with dnsmasq (RA + DHCPv4) in this test's network namespace:
#      enp1s0 gets its EUI-64 SLAAC address, enp2s0 a DHCP lease, the host
#      pings both, an extra "agent" (using a dynamically linked binary) is
#      started and respawned, and the ACPI power button shuts it down.

source "$(dirname "$0")/lib.sh"
vmgr_require_root

QEMU=$(command -v qemu-system-x86_64 || true)
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
# iputils if installed, else busybox's (busybox-static is needed anyway).
PING=(ping)
command -v ping >/dev/null || PING=(busybox ping)
if [ -z "$QEMU" ] || [ ! -x "$DNSMASQ" ] || ! compgen -G '/boot/vmlinuz-*-cloud-amd64' >/dev/null; then
        echo "# skipped: needs qemu-system-x86, dnsmasq-base, linux-image-cloud-amd64 (tools/deps)"
        exit 77
fi

vmgr_enter_netns "$@"

# The installed builder if tools/check installed one, else the build tree's.
MKGUEST=$VMGR_DESTDIR/usr/bin/vmgr-mkguest
[ -x "$MKGUEST" ] || MKGUEST=$VMGR_BUILD_DIR/guest/vmgr-mkguest
[ -x "$MKGUEST" ] || MKGUEST=$VMGR_SOURCE_DIR/guest/vmgr-mkguest

T=$VMGR_TMP
CACHE=$T/cache
mkdir -p "$CACHE" "$T/extra"
chown "$VMGR_USER:" "$CACHE"

# Time in ms since the epoch.
now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

# Runs vmgr-mkguest as the unprivileged test user.
mkguest() {
        vmgr_as_user "$MKGUEST" "$@"
}

# wait_for_line FILE REGEX SECONDS [PID]: true once FILE has a line matching
# REGEX; false after SECONDS or when process PID has exited without it.
wait_for_line() {
        local file=$1 re=$2 deadline=$(($(now_ms) + $3 * 1000)) pid=${4:-}
        while [ "$(now_ms)" -lt "$deadline" ]; do
                grep -Eq -- "$re" "$file" 2>/dev/null && return 0
                if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
                        grep -Eq -- "$re" "$file" 2>/dev/null
                        return
                fi
                sleep 0.1
        done
        return 1
}

# wait_exit PID SECONDS: true if PID exits with status 0 within SECONDS.
# Kills it otherwise.
wait_exit() {
        local pid=$1 deadline=$(($(now_ms) + $2 * 1000)) rc=0
        while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
                sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null || true
                return 1
        fi
        wait "$pid" || rc=$?
        return "$rc"
}

# Console tail, for failure details.
console_tail() {
        tail -n 25 "$1" 2>/dev/null | sed 's/^/console: /' || true
}

# How many lines of file $1 match regex $2.
count_lines() {
        grep -Ec -- "$2" "$1" 2>/dev/null || true
}

# Value of the "vmgr-guest: WORD VALUE" line for WORD in console $1
# (e.g. "enp1s0 ipv6"), empty if there is none.
console_value() {
        sed -n "s|^vmgr-guest: $2 \([^ ]*\).*|\1|p" "$1" | tr -d '\r' | head -n 1
}

# --- build ---------------------------------------------------------------

# Two builders race on an empty cache: one builds, the other waits for the
# lock and takes its result.
t0=$(now_ms)
mkguest --output-dir "$CACHE" --print-path >"$T/build1.out" 2>"$T/build1.err" &
p1=$!
mkguest --output-dir "$CACHE" --print-path >"$T/build2.out" 2>"$T/build2.err" &
p2=$!
rc1=0 rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
t_cold=$(($(now_ms) - t0))
if [ "$rc1" -ne 0 ] || [ "$rc2" -ne 0 ]; then
        vmgr_not_ok "vmgr-mkguest builds as $VMGR_USER" "exit status $rc1 and $rc2" \
                "$(cat "$T/build1.err" "$T/build2.err")"
        vmgr_finish
fi
vmgr_ok "vmgr-mkguest builds as $VMGR_USER (two concurrent runs: $t_cold ms)"
check_eq "concurrent builds print the same paths" "$(cat "$T/build1.out")" "$(cat "$T/build2.out")"
check_eq "exactly one of them built" 1 "$(cat "$T/build1.err" "$T/build2.err" | count_lines - 'building')"
read -r KERNEL INITRD <"$T/build1.out"
# The vmlinuz's copy is kept for UEFI firmware, which boots its EFI stub.
check_eq "one initramfs, the kernel and its vmlinuz, no temporary files in the cache" \
        "$(basename "$INITRD") $(basename "$KERNEL") $(basename "$KERNEL" | sed 's/^vmlinux-/vmlinuz-/')" \
        "$(cd "$CACHE" && echo * .[!.]* | sed 's/ \.lock$//')"
check_eq "initramfs is an uncompressed newc cpio" 070701 "$(head -c 6 "$INITRD")"
# The Debian cloud kernel has CONFIG_PVH: QEMU boots its vmlinux directly.
check_eq "kernel is the vmlinux (ELF) inside the installed vmlinuz" "177ELF vmlinux-" \
        "$(head -c 4 "$KERNEL" | od -An -c | tr -d ' ') $(basename "$KERNEL" | cut -c 1-8)"

t0=$(now_ms)
out=$(mkguest --output-dir "$CACHE" --print-path 2>&1)
t_cached=$(($(now_ms) - t0))
check_eq "a cached build prints the same paths ($t_cached ms)" "$KERNEL $INITRD" "$out"

mkdir "$T/cache2"
chown "$VMGR_USER:" "$T/cache2"
out=$(mkguest --output-dir "$T/cache2" 2>/dev/null)
check "the same inputs give the same bytes" cmp "$INITRD" "$out"

# The modules: unsigned (the guest kernel's check of each cost 4-18 ms
# under TCG), and a modules.dep of the image's own for init's modprobe -a.
mkdir "$T/unpacked"
(cd "$T/unpacked" && cpio -id --quiet <"$INITRD")
IMG_MODDIR=$(echo "$T"/unpacked/lib/modules/*)
signed=() unlisted=() missing=()
while read -r ko; do
        [ "$(tail -c 28 "$IMG_MODDIR/$ko" | head -c 27)" = '~Module signature appended~' ] && signed+=("$ko")
        grep -q "^$ko:" "$IMG_MODDIR/modules.dep" || unlisted+=("$ko")
done <"$T/unpacked/etc/vmgr/modules"
# shellcheck disable=SC2013 # words: the dependencies
for dep in $(cut -d: -f2 "$IMG_MODDIR/modules.dep"); do
        [ -e "$IMG_MODDIR/$dep" ] || missing+=("$dep")
done
check_match "the image has its modules (/etc/vmgr/modules)" '^[1-9][0-9]*$' \
        "$(wc -l <"$T/unpacked/etc/vmgr/modules")"
check_eq "no module in the image carries a signature" "" "${signed[*]}"
check_eq "modules.dep lists every module of the image" "" "${unlisted[*]}"
check_eq "every dependency modules.dep names is in the image" "" "${missing[*]}"

check_fails "an unknown module is refused" mkguest --output-dir "$T/cache2" --module no_such_module_x
check_fails "a relative guest path is refused" mkguest --output-dir "$T/cache2" --extra /etc/hostname:etc/x

# The test "agent": a script that names the virtio-serial ports it sees through
# a dynamically linked binary (its libraries must come along), then exits
# after a while so that init has to restart it.
cat >"$T/extra/agent" <<'EOF'
#!/bin/sh
ports=
for f in /sys/class/virtio-ports/vport*/name; do
        [ -r "$f" ] && ports="$ports $(cat "$f")"
done
/usr/bin/dyn-echo "vmgr-test-agent: started, ports:$ports"
sleep 2
EOF
chmod 0755 "$T/extra/agent"
chmod 0755 "$T/extra"
if out=$(mkguest --output-dir "$CACHE" --print-path \
        --extra "$T/extra/agent:/usr/bin/vmgr-agent" --extra /bin/echo:/usr/bin/dyn-echo 2>"$T/build-extra.err"); then
        read -r KERNEL_A INITRD_A <<<"$out"
        check "extras give another initramfs, same kernel" \
                test "$KERNEL_A" = "$KERNEL" -a "$INITRD_A" != "$INITRD" -a -f "$INITRD_A"
else
        vmgr_not_ok "vmgr-mkguest with --extra" "$(cat "$T/build-extra.err")"
        vmgr_finish
fi

size_kib=$(($(stat -c %s "$INITRD") / 1024))
echo "# initramfs: $size_kib KiB ($(basename "$INITRD")); cold build (2 racing): $t_cold ms, cached: $t_cached ms"

QEMU_COMMON=(-nodefaults -no-user-config -M q35 -accel tcg -m 256 -display none -no-reboot)

# --- 1. boot without network, power off through init ----------------------

boot_poweroff() {
        local mode=$1 log=$T/console-$1.log pid t0 t_ready up
        : >"$log"
        t0=$(now_ms)
        "$QEMU" "${QEMU_COMMON[@]}" -serial "file:$log" -kernel "$KERNEL" -initrd "$INITRD" \
                -append "console=ttyS0 vmgr.hostname=g-$mode vmgr.test_poweroff=$mode" 2>"$T/qemu-$mode.err" &
        pid=$!
        if wait_for_line "$log" '^vmgr-guest: ready' 60 "$pid"; then
                t_ready=$(($(now_ms) - t0))
                up=$(console_value "$log" uptime)
                vmgr_ok "guest ($mode) reports ready ($t_ready ms wall, guest uptime $up s)"
        else
                vmgr_not_ok "guest ($mode) reports ready" "$(console_tail "$log")" "$(cat "$T/qemu-$mode.err")"
        fi
        check_eq "guest ($mode) takes its hostname from the command line" \
                "g-$mode" "$(console_value "$log" hostname)"
        if wait_exit "$pid" 30; then
                vmgr_ok "guest powers off by itself (poweroff mode $mode, $(($(now_ms) - t0)) ms in all)"
        else
                vmgr_not_ok "guest powers off by itself (poweroff mode $mode)" "$(console_tail "$log")"
        fi
}

boot_poweroff 1
check "init ran its shutdown step" grep -q '^vmgr-guest: shutting down' "$T/console-1.log"
check_eq "init loaded the modules with one modprobe (no fallback, no failure)" "" \
        "$(grep -E '^vmgr-guest: (modprobe failed|failed to load module)' "$T/console-1.log")"
boot_poweroff force

# --- 2. networked boot ---------------------------------------------------

PREFIX=fd00:76:6d67:1
BR=vbr-test
MAC1=6a:01:12:34:56:01
MAC2=6a:01:12:34:56:02

# The SLAAC address of MAC $1 in $PREFIX::/64 (modified EUI-64).
eui64_address() {
        local b
        IFS=: read -r -a b <<<"$1"
        vmgr_ipv6_format $((0x${PREFIX%%:*})) $((0x$(cut -d: -f2 <<<"$PREFIX"))) \
                $((0x$(cut -d: -f3 <<<"$PREFIX"))) $((0x${PREFIX##*:})) \
                $((((0x${b[0]} ^ 2) << 8) | 0x${b[1]})) $(((0x${b[2]} << 8) | 0xff)) \
                $(((0xfe << 8) | 0x${b[3]})) $(((0x${b[4]} << 8) | 0x${b[5]}))
}
GUEST6=$(eui64_address "$MAC1")

ip link add "$BR" type bridge
# The bridge must not configure itself from its own RA; its addresses are
# ours, so there is nothing to detect duplicates of.
sysctl -qw "net.ipv6.conf.$BR.accept_ra=0" "net.ipv6.conf.$BR.accept_dad=0"
ip addr add "$PREFIX::1/64" dev "$BR" nodad
ip addr add 10.118.77.1/24 dev "$BR"
ip link set "$BR" up
for tap in tap-test1 tap-test2; do
        ip tuntap add dev "$tap" mode tap
        ip link set "$tap" master "$BR" up
done

"$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
        --user=root --bind-dynamic --interface="$BR" --except-interface=lo \
        --pid-file="$T/dnsmasq.pid" --dhcp-leasefile="$T/dnsmasq.leases" \
        --log-facility="$T/dnsmasq.log" --log-dhcp --dhcp-authoritative \
        --enable-ra --ra-param="$BR,10,1800" --dhcp-range="$PREFIX::,ra-only,64" \
        --dhcp-range=10.118.77.2,10.118.77.254,255.255.255.0,1h &
dnsmasq_pid=$!

mkfifo "$T/mon.in" "$T/mon.out"
LOG=$T/console-net.log
: >"$LOG"
t0=$(now_ms)
"$QEMU" "${QEMU_COMMON[@]}" -serial "file:$LOG" -kernel "$KERNEL_A" -initrd "$INITRD_A" \
        -append "console=ttyS0 vmgr.hostname=g-net" \
        -monitor "pipe:$T/mon" \
        -device pcie-root-port,id=rp1,chassis=1,bus=pcie.0,addr=0x2 \
        -device pcie-root-port,id=rp2,chassis=2,bus=pcie.0,addr=0x3 \
        -netdev tap,id=n1,ifname=tap-test1,script=no,downscript=no \
        -device virtio-net-pci,bus=rp1,netdev=n1,mac=$MAC1 \
        -netdev tap,id=n2,ifname=tap-test2,script=no,downscript=no \
        -device virtio-net-pci,bus=rp2,netdev=n2,mac=$MAC2 \
        -device virtio-serial-pci,bus=pcie.0,addr=0x4 \
        -chardev "socket,id=agent0,path=$T/agent.sock,server=on,wait=off" \
        -device virtserialport,chardev=agent0,name=org.vmgr.test.0 2>"$T/qemu-net.err" &
qemu_pid=$!
# Drain the monitor's output so that it never blocks on a full pipe.
cat "$T/mon.out" >"$T/monitor.log" &

if wait_for_line "$LOG" '^vmgr-guest: ready' 90 "$qemu_pid"; then
        t_ready=$(($(now_ms) - t0))
        vmgr_ok "networked guest reports ready ($t_ready ms wall, guest uptime $(console_value "$LOG" uptime) s)"
else
        vmgr_not_ok "networked guest reports ready" "$(console_tail "$LOG")" "$(cat "$T/qemu-net.err")"
fi

check_eq "enp1s0 (PCI bus 1) has the EUI-64 SLAAC address of $MAC1" \
        "$GUEST6/64" "$(console_value "$LOG" 'enp1s0 ipv6')"
addr4=$(console_value "$LOG" 'enp2s0 ipv4')
check_match "enp2s0 (PCI bus 2) has a DHCPv4 lease in 10.118.77.0/24" \
        '^10\.118\.77\.([2-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])/24$' "$addr4"
check_match "dnsmasq leased that address to $MAC2 for host g-net" \
        " $MAC2 ${addr4%/*} g-net " "$(cat "$T/dnsmasq.leases" 2>/dev/null || true)"
check "the host reaches the guest over IPv6" "${PING[@]}" -6 -c 1 -W 5 "$GUEST6"
check "the host reaches the guest over IPv4" "${PING[@]}" -4 -c 1 -W 5 "${addr4%/*}"
if wait_for_line "$LOG" 'vmgr-test-agent: started, ports: org.vmgr.test.0' 10 "$qemu_pid"; then
        vmgr_ok "the agent runs, with its libraries, and sees the virtio-serial port"
else
        vmgr_not_ok "the agent runs, with its libraries, and sees the virtio-serial port" "$(console_tail "$LOG")"
fi
deadline=$(($(now_ms) + 15000))
while [ "$(count_lines "$LOG" 'vmgr-test-agent: started')" -lt 2 ] && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.2
done
check_match "init restarts the agent after it exits" '^[2-9]' "$(count_lines "$LOG" 'vmgr-test-agent: started')"

# libvirt's default shutdown: the ACPI power button.
t0=$(now_ms)
# (Opening the FIFO would wait for ever if qemu were gone.)
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
timeout 5 bash -c 'echo system_powerdown >"$1"' - "$T/mon.in" || true
if wait_exit "$qemu_pid" 30; then
        vmgr_ok "the ACPI power button powers the guest off ($(($(now_ms) - t0)) ms)"
else
        vmgr_not_ok "the ACPI power button powers the guest off" "$(console_tail "$LOG")"
fi

kill "$dnsmasq_pid" 2>/dev/null || true
vmgr_finish
