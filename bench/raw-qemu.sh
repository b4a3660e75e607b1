# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced by tools/bench (through the comparisons that use it): a raw
# qemu-system-x86_64 set up like one of vmgr's VMs, for the baselines of
# comparisons "vm-ready" and "exec".
#
#     raw_qemu_prepare PID GROUP VM
#         PID is the QEMU of a running vmgr VM: its kernel, initramfs,
#         -append, -accel, -cpu, -m and -smp are copied. GROUP and VM name
#         the raw QEMU's network: vmgr's derived bridge, addresses, TAP and
#         MAC for them, made by bench/iproute2-group.sh (bridge, dnsmasq with
#         vmgrd's argv, TAPs owned by the test user) and kept until
#         raw_qemu_network_down. Sets RAW_QEMU_ARGV (the command line, with
#         the agent's socket at $RAW_QEMU_DIR/vm/agent.sock and the console in
#         $RAW_QEMU_DIR/vm/console.log), RAW_QEMU_IPV6 (the guest's derived
#         SLAAC address), RAW_QEMU_VMGR_CMDLINE (vmgr's QEMU command line, as
#         text), RAW_QEMU_ACCEL, _CPU, _MEM, _VCPUS, and BENCH_ACCEL for the
#         report's header.
#     raw_qemu_network_down

RAW_QEMU_DIR=
RAW_QEMU_ARGV=()

# Run bench/iproute2-group.sh for the raw QEMU's network ($1: up or down).
raw_qemu_network() {
        (
                export BENCH_BRIDGE=$RAW_QEMU_BRIDGE BENCH_PREFIX6=$RAW_QEMU_PREFIX6
                export BENCH_GATEWAY6=$RAW_QEMU_GATEWAY6 BENCH_MANAGEMENT6=$RAW_QEMU_MANAGEMENT6
                export BENCH_LOGS6=$RAW_QEMU_LOGS6 BENCH_FILES6=$RAW_QEMU_FILES6
                export BENCH_GATEWAY4=$RAW_QEMU_GATEWAY4 BENCH_TAP0=$RAW_QEMU_TAP BENCH_TAP4=$RAW_QEMU_TAP4
                export BENCH_TAP_USER=$VMGR_USER BENCH_RUN_DIR=$RAW_QEMU_DIR/dnsmasq
                export BENCH_ARGV_FILE=$RAW_QEMU_DIR/dnsmasq.argv BENCH_NAP_FIFO=$RAW_QEMU_DIR/nap.fifo
                bash "$BENCH_DIR/iproute2-group.sh" "$1" taps
        ) >>"$BENCH_LOG" 2>&1
}

raw_qemu_network_down() {
        [ -n "$RAW_QEMU_DIR" ] || return 0
        raw_qemu_network down
        rm -rf "$RAW_QEMU_DIR"
        RAW_QEMU_DIR=
}

# raw_qemu_arg ARGV-FILE OPTION: the value after OPTION in a NUL-separated argv.
raw_qemu_arg() {
        local -a a
        local i
        mapfile -d '' -t a <"$1"
        for ((i = 0; i < ${#a[@]} - 1; i++)); do
                if [ "${a[i]}" = "$2" ]; then
                        echo "${a[i + 1]}"
                        return 0
                fi
        done
        echo "tools/bench: vmgr's QEMU has no $2" >&2
        return 1
}

raw_qemu_prepare() {
        local pid=$1 group=$2 vm=$3 argv_file kernel initrd append
        local bridge prefix6 gateway6 management6 logs6 files6 subnet4 gateway4 dhcp4_first dhcp4_last
        local tap_0 tap4_0 mac_0 ipv6_0

        RAW_QEMU_DIR=$VMGR_TMP/raw-qemu-$group
        mkdir -p "$RAW_QEMU_DIR/dnsmasq" "$RAW_QEMU_DIR/vm"
        chown "$VMGR_USER:" "$RAW_QEMU_DIR/vm"
        argv_file=$RAW_QEMU_DIR/vmgr-qemu.argv
        cp "/proc/$pid/cmdline" "$argv_file"
        # As text for the report, without the benchmark's temp dir.
        RAW_QEMU_VMGR_CMDLINE=$(tr '\0' ' ' <"$argv_file" | sed "s|$VMGR_TMP|\$TMP|g; s/ \$//")
        kernel=$(raw_qemu_arg "$argv_file" -kernel)
        initrd=$(raw_qemu_arg "$argv_file" -initrd)
        append=$(raw_qemu_arg "$argv_file" -append)
        RAW_QEMU_MEM=$(raw_qemu_arg "$argv_file" -m)
        RAW_QEMU_SMP=$(raw_qemu_arg "$argv_file" -smp)
        RAW_QEMU_VCPUS=${RAW_QEMU_SMP%%,*}
        RAW_QEMU_CPU=$(raw_qemu_arg "$argv_file" -cpu)
        RAW_QEMU_ACCEL=$(raw_qemu_arg "$argv_file" -accel)
        BENCH_ACCEL="$RAW_QEMU_ACCEL (every VM below: QEMU's \`-accel $RAW_QEMU_ACCEL\`, as vmgrd chose it)"

        eval "$("$BENCH_CLIENT" --uid "$(id -u "$VMGR_USER")" addrs "$group" "$vm")"
        RAW_QEMU_BRIDGE=$bridge RAW_QEMU_PREFIX6=$prefix6 RAW_QEMU_GATEWAY6=$gateway6
        RAW_QEMU_MANAGEMENT6=$management6 RAW_QEMU_LOGS6=$logs6 RAW_QEMU_FILES6=$files6
        RAW_QEMU_GATEWAY4=$gateway4 RAW_QEMU_TAP=$tap_0 RAW_QEMU_TAP4=$tap4_0
        RAW_QEMU_IPV6=$ipv6_0
        mkfifo "$RAW_QEMU_DIR/nap.fifo"
        "$BENCH_CLIENT" --uid "$(id -u "$VMGR_USER")" dnsmasq-argv "$group" "$RAW_QEMU_DIR/dnsmasq" \
                >"$RAW_QEMU_DIR/dnsmasq.argv"
        raw_qemu_network up

        # The devices of vmgr's domain (lib/domain-xml.c) as libvirt hands
        # them to QEMU: q35, three PCIe root ports at 00:01.x, virtio-net on
        # bus 1 with the TAP, virtio-serial on bus 2 with the agent's port,
        # virtio-rng on bus 3, the serial console to a file, no defaults.
        RAW_QEMU_ARGV=(
                qemu-system-x86_64 -name "guest=$group:$vm"
                -machine q35,usb=off,dump-guest-core=off -accel "$RAW_QEMU_ACCEL" -cpu "$RAW_QEMU_CPU"
                -m "$RAW_QEMU_MEM" -smp "$RAW_QEMU_SMP"
                -display none -no-user-config -nodefaults -rtc base=utc -no-shutdown -boot strict=on
                -kernel "$kernel" -initrd "$initrd" -append "$append"
                -device pcie-root-port,port=8,chassis=1,id=pci.1,bus=pcie.0,multifunction=on,addr=0x1
                -device pcie-root-port,port=9,chassis=2,id=pci.2,bus=pcie.0,addr=0x1.0x1
                -device pcie-root-port,port=10,chassis=3,id=pci.3,bus=pcie.0,addr=0x1.0x2
                -device virtio-serial-pci,id=virtio-serial0,bus=pci.2,addr=0x0
                -netdev "tap,id=hostnet0,ifname=$RAW_QEMU_TAP,script=no,downscript=no"
                -device "virtio-net-pci,netdev=hostnet0,id=net0,mac=$mac_0,bus=pci.1,addr=0x0"
                -chardev "file,id=charserial0,path=$RAW_QEMU_DIR/vm/console.log"
                -device isa-serial,chardev=charserial0,id=serial0,index=0
                -chardev "socket,id=charchannel0,path=$RAW_QEMU_DIR/vm/agent.sock,server=on,wait=off"
                -device virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=org.vmgr.agent.0
                -object rng-random,id=objrng0,filename=/dev/urandom
                -device virtio-rng-pci,rng=objrng0,id=rng0,bus=pci.3,addr=0x0
                -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny
        )
}

# raw_qemu_boot PREFIX [--pid-file FILE]: boot the raw QEMU, timed by
# vmgr-bench raw-boot to its agent's messages (recorded as PREFIX.*); with
# --pid-file it is left running and its pid written there.
raw_qemu_boot() {
        local prefix=$1
        shift
        rm -f "$RAW_QEMU_DIR/vm/agent.sock" "$RAW_QEMU_DIR/vm/console.log"
        bench_user_record "$prefix" "$BENCH_CLIENT" raw-boot --socket "$RAW_QEMU_DIR/vm/agent.sock" \
                --ipv6 "$RAW_QEMU_IPV6" --console "$RAW_QEMU_DIR/vm/console.log" "$@" -- "${RAW_QEMU_ARGV[@]}"
}

# The pid of the QEMU running VM $2 of vmgr's group $1.
raw_qemu_vmgr_pid() {
        pgrep -u "$VMGR_USER" -f "^/usr/bin/qemu-system-x86_64 -name guest=$1:$2," | head -n 1
}
