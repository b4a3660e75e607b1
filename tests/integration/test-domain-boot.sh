#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lib/domain-xml.c against a real libvirt: a private libvirtd runs as the test
# user (session mode, its own XDG dirs, console files instead of virtlogd),
# the TAPs of a VM exist already (made by root with "user", as vmgr-netadm
# makes them) on a bridge with dnsmasq in this test's network namespace, and
# "virsh create" boots the default guest from the XML vmgr writes:
#   - libvirt accepts the domain (name GROUP:VM, our UUID);
#   - the primary NIC is PCI bus 1 in the guest (enp1s0, its EUI-64 SLAAC
#     address), the IPv4 NIC bus 2 (enp2s0, a DHCPv4 lease), also with two
#     extra disks that libvirt places on root ports it adds;
#   - the console file is appended to across a reboot; the agent socket exists;
#   - "virsh shutdown" (ACPI power button) ends it (on_poweroff destroy).
# Prints boot-to-ready times.

source "$(dirname "$0")/lib.sh"
vmgr_require_root

QEMU=$(command -v qemu-system-x86_64 || true)
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
LIBVIRTD=$(command -v libvirtd || echo /usr/sbin/libvirtd)
XMLTOOL=$VMGR_BUILD_DIR/tests/unit/test-domain-xml
if [ -z "$QEMU" ] || [ ! -x "$DNSMASQ" ] || [ ! -x "$LIBVIRTD" ] || ! command -v virsh >/dev/null ||
        ! compgen -G '/boot/vmlinuz-*-cloud-amd64' >/dev/null; then
        echo "# skipped: needs qemu-system-x86, dnsmasq-base, libvirt-daemon-driver-qemu, libvirt-clients," \
                "linux-image-cloud-amd64 (tools/deps)"
        exit 77
fi
if [ ! -x "$XMLTOOL" ]; then
        echo "# skipped: $XMLTOOL not built"
        exit 77
fi

vmgr_enter_netns "$@"

MKGUEST=$VMGR_DESTDIR/usr/bin/vmgr-mkguest
[ -x "$MKGUEST" ] || MKGUEST=$VMGR_BUILD_DIR/guest/vmgr-mkguest
[ -x "$MKGUEST" ] || MKGUEST=$VMGR_SOURCE_DIR/guest/vmgr-mkguest

T=$VMGR_TMP
GROUP=dom-test
VM=vm1
vmgr_load_expected E "$GROUP" "$VM"

now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

# wait_for_line FILE REGEX SECONDS: true once FILE has a line matching REGEX.
wait_for_line() {
        local file=$1 re=$2 deadline=$(($(now_ms) + $3 * 1000))
        while [ "$(now_ms)" -lt "$deadline" ]; do
                grep -Eq -- "$re" "$file" 2>/dev/null && return 0
                sleep 0.05
        done
        return 1
}

console_value() {
        sed -n "s|^vmgr-guest: $2 \([^ ]*\).*|\1|p" "$1" | tr -d '\r' | head -n 1
}

console_tail() {
        tail -n 25 "$1" 2>/dev/null | sed 's/^/console: /' || true
}

# --- the guest --------------------------------------------------------------

mkdir -p "$T/cache"
chown "$VMGR_USER:" "$T/cache"
if ! out=$(vmgr_as_user "$MKGUEST" --output-dir "$T/cache" --print-path 2>"$T/mkguest.err"); then
        vmgr_not_ok "vmgr-mkguest builds the default guest" "$(cat "$T/mkguest.err")"
        vmgr_finish
fi
read -r KERNEL INITRD <<<"$out"

# --- the network: what vmgr-netadm would make for the group -----------------

BR=${E[bridge]}
ip link add "$BR" type bridge
sysctl -qw "net.ipv6.conf.$BR.accept_ra=0" "net.ipv6.conf.$BR.accept_dad=0"
ip addr add "${E[gateway6]}/64" dev "$BR" nodad
ip addr add "${E[gateway4]}/24" dev "$BR"
ip link set "$BR" up
for tap in "${E[tap]}" "${E[tap4]}"; do
        ip tuntap add dev "$tap" mode tap user "$VMGR_USER"
        ip link set "$tap" master "$BR" up
done
subnet=${E[subnet4]%.0/24}
"$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
        --user=root --bind-dynamic --interface="$BR" --except-interface=lo \
        --pid-file="$T/dnsmasq.pid" --dhcp-leasefile="$T/dnsmasq.leases" \
        --log-facility="$T/dnsmasq.log" --dhcp-authoritative \
        --enable-ra --ra-param="$BR,10,1800" --dhcp-range="${E[prefix6]%/64},ra-only,64" \
        --dhcp-range="$subnet.2,$subnet.254,255.255.255.0,1h" &

# --- a private libvirtd as the test user --------------------------------------

L=$T/libvirt
mkdir -p "$L/run" "$L/config/libvirt" "$L/home" "$L/cache" "$T/vm"
cat >"$L/config/libvirt/qemu.conf" <<'EOF'
stdio_handler = "file"
max_core = 0
EOF
chown -R "$VMGR_USER:" "$L" "$T/vm"
LIBVIRT_ENV=(XDG_RUNTIME_DIR="$L/run" XDG_CONFIG_HOME="$L/config" HOME="$L/home" XDG_CACHE_HOME="$L/cache")
vmgr_as_argv "$VMGR_USER"
"${VMGR_AS_ARGV[@]}" env -u DBUS_SESSION_BUS_ADDRESS "${LIBVIRT_ENV[@]}" "$LIBVIRTD" >"$T/libvirtd.log" 2>&1 </dev/null &
LIBVIRTD_PID=$!
SOCK=$L/run/libvirt/libvirt-sock
URI="qemu:///session?socket=$SOCK"
for ((i = 0; i < 200; i++)); do
        [ -S "$SOCK" ] && break
        sleep 0.05
done
virsh_user() {
        vmgr_as_user env "${LIBVIRT_ENV[@]}" virsh -q -c "$URI" "$@"
}
check "libvirtd answers as $VMGR_USER" virsh_user version

# --- boot ----------------------------------------------------------------------

CONSOLE=$T/vm/console.log
AGENT=$T/vm/agent.sock
DOMAIN="$GROUP:$VM"
# Two extra disks: more devices for libvirt to place on root ports of its own.
for d in 0 1; do
        vmgr_as_user qemu-img create -q -f qcow2 "$T/vm/extra$d.qcow2" 16M
done
vmgr_as_user "$XMLTOOL" --print "$GROUP" "$VM" qemu "$KERNEL" "$INITRD" "console=ttyS0 vmgr.hostname=$VM" \
        "$CONSOLE" "$AGENT" ipv4 "disk:$T/vm/extra0.qcow2" "disk:$T/vm/extra1.qcow2" >"$T/domain.xml"
chmod 0644 "$T/domain.xml"

t0=$(now_ms)
check "virsh create accepts the domain XML" virsh_user create "$T/domain.xml"
t_created=$(($(now_ms) - t0))
if wait_for_line "$CONSOLE" '^vmgr-guest: ready' 60; then
        vmgr_ok "guest reports ready ($(($(now_ms) - t0)) ms from virsh create, create took $t_created ms, guest uptime $(console_value "$CONSOLE" uptime) s)"
else
        vmgr_not_ok "guest reports ready" "$(console_tail "$CONSOLE")" "$(tail -n 20 "$T/libvirtd.log")" \
                "$(tail -n 20 "$L/cache/libvirt/qemu/log/$DOMAIN.log" 2>/dev/null)"
fi

check_eq "libvirt lists the domain as $DOMAIN" "$DOMAIN" "$(virsh_user list --name | head -n 1)"
uuid=$(vmgr_as_user "$XMLTOOL" --print "$GROUP" "$VM" qemu /k /i x /c /a | sed -n 's|.*<uuid>\(.*\)</uuid>.*|\1|p')
check_eq "libvirt keeps our UUID" "$uuid" "$(virsh_user domuuid "$DOMAIN")"
# The guest names a NIC after its PCI bus (docs/guest.md): enp1s0 is bus 1.
addr6=$(console_value "$CONSOLE" 'enp1s0 ipv6')
addr4=$(console_value "$CONSOLE" 'enp2s0 ipv4')
if [ "$addr6" = "${E[ipv6]}/64" ]; then
        vmgr_ok "enp1s0 (PCI bus 1) has the EUI-64 SLAAC address of ${E[mac]}"
else
        vmgr_not_ok "enp1s0 (PCI bus 1) has the EUI-64 SLAAC address of ${E[mac]}" \
                "expected: ${E[ipv6]}/64" "actual: $addr6" "$(grep -a 'vmgr-guest:' "$CONSOLE")" \
                "$(virsh_user dumpxml "$DOMAIN" | grep -E -A4 '<controller|<interface')"
fi
check_match "enp2s0 (PCI bus 2) has a DHCPv4 lease in ${E[subnet4]}" "^${subnet//./\\.}\.[0-9]+/24$" "$addr4"
check_match "dnsmasq leased it to ${E[mac4]}" " ${E[mac4]} ${addr4%/*} " "$(cat "$T/dnsmasq.leases" 2>/dev/null || true)"
check "the agent channel socket exists" test -S "$AGENT"
check_eq "the guest sees both disks (vda, vdb)" "2" "$(grep -Ec 'virtio_blk virtio[0-9]+: \[vd[ab]\]' "$CONSOLE")"
live=$(virsh_user dumpxml "$DOMAIN")
check_match "libvirt added no USB controller, balloon or graphics" '^$' \
        "$(grep -E "<graphics|model='piix3-uhci'|model='qemu-xhci'|<memballoon model='virtio'" <<<"$live" || true)"

# A reboot (on_reboot restart) keeps the domain and appends to the console.
lines=$(wc -l <"$CONSOLE")
t0=$(now_ms)
check "virsh reboot" virsh_user reboot "$DOMAIN"
deadline=$(($(now_ms) + 60000))
while [ "$(grep -c '^vmgr-guest: ready' "$CONSOLE" || true)" -lt 2 ] && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.1
done
check_eq "the guest comes back after a reboot ($(($(now_ms) - t0)) ms), console appended" \
        "2 yes" "$(grep -c '^vmgr-guest: ready' "$CONSOLE") $([ "$(wc -l <"$CONSOLE")" -gt "$lines" ] && echo yes)"

t0=$(now_ms)
check "virsh shutdown (ACPI power button)" virsh_user shutdown "$DOMAIN"
deadline=$(($(now_ms) + 30000))
while [ -n "$(virsh_user list --name 2>/dev/null)" ] && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.1
done
check_eq "the domain is gone after power off ($(($(now_ms) - t0)) ms)" "" "$(virsh_user list --all --name)"

# libvirtd ends on SIGTERM (the test's cleanup would SIGKILL it, noisily).
{
        kill -TERM "$LIBVIRTD_PID"
        wait "$LIBVIRTD_PID"
} 2>/dev/null || true
vmgr_finish
