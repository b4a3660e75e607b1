# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Comparison "vm-ready" of tools/bench: one VM of the default guest from
# nothing to ready, through vmgr (CreateGroup + Group.WaitReady) and as a
# raw qemu-system-x86_64 booting the same kernel and initramfs with the
# same devices, timed to the same point: its guest agent's answer showing
# the VM's IPv6 address done with duplicate address detection.
# Sourced by tools/bench, which calls the bench_vm_ready_* functions (see
# "Comparisons" in tools/bench) inside the benchmark's namespaces.

BENCH_COMPARISONS+=(vm-ready)
BENCH_ORDER["vm-ready"]=2

# vmgr's group (made and deleted every round) and its one VM.
VR_GROUP=vmready
VR_VM=a
# A cold boot each round (the warm start has its own comparison).
VR_SPEC='{"vms":[{"name":"a","warm":false}]}'
# The raw QEMU's network and names (bench/raw-qemu.sh).
VR_RAW_GROUP=rawboot
# The domain of the libvirt-alone row.
VR_LV_DOMAIN=bench-libvirt

source "$BENCH_DIR/raw-qemu.sh"

bench_vm_ready_title() {
        echo "VM start to ready"
}

# Each round boots three VMs, about 20 s: 20 rounds are enough for the
# medians and keep the whole benchmark within about 50 minutes.
bench_vm_ready_runs() {
        echo $((BENCH_RUNS < 20 ? BENCH_RUNS : 20))
}

bench_vm_ready_setup() {
        bench_vmgrd_start
        # One VM through vmgr first (not timed): it starts vmgrd's libvirtd,
        # builds the default guest and probes the accelerator, and its QEMU
        # command line gives the raw contender the same kernel, initramfs,
        # kernel command line, CPU model, accelerator, vCPUs and memory.
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss \
                "$VR_GROUP" "$VR_SPEC" >>"$BENCH_LOG"
        raw_qemu_prepare "$(raw_qemu_vmgr_pid "$VR_GROUP" "$VR_VM")" "$VR_RAW_GROUP" "$VR_VM"
        vr_libvirt_xml
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s "$VR_GROUP" >>"$BENCH_LOG"

        # A second vmgrd in namespace mode, on a bus of its own, for the
        # whole comparison: its libvirtd stays up between rounds like the
        # first one's. One VM through it first, not timed, for the same
        # reasons (its own state directory builds its own default guest).
        bench_vmgrd2_start --network-mode namespace
        bench_as_user2 busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss \
                "$VR_GROUP" "$VR_SPEC" >>"$BENCH_LOG"
        bench_as_user2 busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s "$VR_GROUP" \
                >>"$BENCH_LOG"
}

# virsh as the test user against vmgrd's own libvirtd.
vr_virsh() {
        vmgr_as_user virsh -q -c "qemu:///session?socket=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/libvirt-sock" "$@"
}

# vmgr's domain XML, from libvirt, for timing libvirt alone: renamed (vmgrd
# must not take it for one of its VMs), without its UUID, on the raw
# network's spare TAP, with its own console and agent socket paths.
vr_libvirt_xml() {
        local dir=$RAW_QEMU_DIR/vm
        vr_virsh dumpxml --inactive "$VR_GROUP:$VR_VM" |
                sed -e "s|<name>[^<]*</name>|<name>$VR_LV_DOMAIN</name>|" -e '/<uuid>/d' \
                        -e "s|<target dev='[^']*' managed='no'/>|<target dev='$RAW_QEMU_TAP4' managed='no'/>|" \
                        -e "s|<source path='[^']*console.log'|<source path='$dir/lv-console.log'|" \
                        -e "s|<source mode='bind' path='[^']*'/>|<source mode='bind' path='$dir/lv-agent.sock'/>|" \
                        >"$dir/libvirt.xml"
        grep -q "$VR_LV_DOMAIN" "$dir/libvirt.xml"
}

# libvirt alone: vmgr's domain created and destroyed by one virsh, which
# times each API call (no process start-up); records lv.create, lv.destroy.
vr_libvirt_round() {
        local out times
        out=$(vr_virsh -t "create $RAW_QEMU_DIR/vm/libvirt.xml; destroy $VR_LV_DOMAIN" 2>&1) || {
                echo "tools/bench: virsh create of vmgr's domain XML failed: $out" >&2
                return 1
        }
        mapfile -t times < <(sed -n 's/^(Time: \([0-9.]*\) ms)$/\1/p' <<<"$out")
        bench_record lv.create "${times[0]}"
        bench_record lv.destroy "${times[1]}"
}

# One raw QEMU boot, timed by vmgr-bench; records raw.*.
vr_raw_round() {
        raw_qemu_boot raw
}

# One VM through vmgr, timed by vmgr-bench; records vmgr.*.
vr_vmgr_round() {
        bench_user_record vmgr "$BENCH_CLIENT" vm-cycle "$VR_GROUP" "$VR_VM" "$VR_SPEC"
}

# One VM through the second vmgrd, in namespace mode; records ns.*.
vr_ns_round() {
        bench_user_record ns env DBUS_SESSION_BUS_ADDRESS="unix:path=$VMGR_TMP/bus2" \
                "$BENCH_CLIENT" vm-cycle "$VR_GROUP" "$VR_VM" "$VR_SPEC"
}

# The three contenders in an order that rotates from round to round, so
# that each goes first, second and third equally often: a load that drifts
# during a round then favours none of them.
bench_vm_ready_round() {
        VR_ROUND=$((${VR_ROUND:-0} + 1))
        case $((VR_ROUND % 3)) in
        1) vr_vmgr_round; vr_ns_round; vr_raw_round ;;
        2) vr_ns_round; vr_raw_round; vr_vmgr_round ;;
        0) vr_raw_round; vr_vmgr_round; vr_ns_round ;;
        esac
        vr_libvirt_round
}

bench_vm_ready_finish() {
        raw_qemu_network_down
        bench_vmgrd_stop
        bench_vmgrd2_stop
        # What vmgr adds outside the guest's own boot: everything before the
        # VM's start clock (CreateGroup's network and TAPs) plus WaitReady's
        # reply after "ready"; and QEMU running until ready.
        bench_minus vmgr.outside vmgr.ready vmgr.stage.ready
        bench_minus vmgr.guest vmgr.stage.ready vmgr.stage.qemu_started
        bench_minus raw.guest raw.ready raw.socket
        bench_minus vr.gap vmgr.ready raw.ready
        bench_minus ns.outside ns.ready ns.stage.ready
        bench_minus ns.guest ns.stage.ready ns.stage.qemu_started
        bench_minus vr.ns_gap ns.ready vmgr.ready
}

bench_vm_ready_report() {
        local ratio ok ratio_ns ok_ns
        ratio=$(awk -v a="$(bench_median vmgr.ready)" -v b="$(bench_median raw.ready)" 'BEGIN { printf "%.2f", a / b }')
        ok=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.15) ? 1 : 0 }')
        ratio_ns=$(awk -v a="$(bench_median ns.ready)" -v b="$(bench_median raw.ready)" 'BEGIN { printf "%.2f", a / b }')
        ok_ns=$(awk -v r="$ratio_ns" 'BEGIN { print (r <= 1.15) ? 1 : 0 }')

        cat <<EOF
## $(bench_vm_ready_title)

One VM of the default guest (\`vmgr-mkguest\`: the Debian cloud kernel and
the busybox initramfs with \`vmgr-agent\`), $RAW_QEMU_VCPUS vCPU, $RAW_QEMU_MEM MiB,
\`-accel $RAW_QEMU_ACCEL\`, \`-cpu $RAW_QEMU_CPU\`, one virtio NIC on a bridge whose dnsmasq sends
router advertisements, from nothing to **ready**: the guest agent has
answered and reports the VM's SLAAC address with duplicate address
detection done (the guest's init starts the agent only once that address
is there). vmgr runs twice: in host mode, and as a second vmgrd (same
user, its own bus, state and runtime directories) in namespace mode, where
its network, libvirtd and QEMU live in vmgrd's own user and network
namespaces. One round boots each of the three once, in an order that
rotates from round to round (each goes first, second and third equally
often); the first round is a warm-up and is not counted. At most 20
rounds (each takes about 20 s).

$(bench_row_header)
$(bench_row "**vmgr**: CreateGroup with one VM → Group.WaitReady returns" vmgr.ready)
$(bench_row "&nbsp;&nbsp;CreateGroup returns (network, TAP, QEMU running)" vmgr.create)
$(bench_row "**vmgr, namespace mode**: CreateGroup with one VM → Group.WaitReady returns" ns.ready)
$(bench_row "&nbsp;&nbsp;CreateGroup returns (network, TAP, QEMU running)" ns.create)
$(bench_row "**raw QEMU**: \`qemu-system-x86_64\` started → agent reports the address" raw.ready)
$(bench_row "&nbsp;&nbsp;the agent's first message (its HELLO)" raw.first)
$(bench_row "&nbsp;&nbsp;session up (the agent's HELLO answering ours)" raw.hello)
$(bench_row "vmgr − raw QEMU, per round" vr.gap)
$(bench_row "vmgr namespace − host mode, per round" vr.ns_gap)
$(bench_row "vmgr: DeleteGroup afterwards (VM, TAP, network)" vmgr.delete)
$(bench_row "vmgr, namespace mode: DeleteGroup afterwards" ns.delete)

Namespace mode changes where the VM's TAP, bridge, dnsmasq, libvirtd and
QEMU live, not what they do: the guest boots the same kernel under the
same accelerator with the same devices, its TAP sits on a bridge in
vmgrd's own network namespace instead of the benchmark's, and vmgrd talks
to its agent over the same Unix socket (a file, which the network
namespace does not affect). Compare the "namespace − host mode" row with
the spread of either mode's rows: a VM's start is dominated by the guest's
own boot under TCG.

### Against the target

| target | measured | |
|---|---|---|
| vmgr within 1.15× of raw QEMU (medians) | ${ratio}× | $(bench_verdict "$ok") |
| the same, vmgr in namespace mode | ${ratio_ns}× | $(bench_verdict "$ok_ns") |

### Where vmgr's time goes

The VM's \`Timings\` property: each stage in ms since vmgrd began starting
the VM, once CreateGroup had made the network; its TAP, the domain XML and
libvirt's start of QEMU come after that point. The raw QEMU's rows are the
same points seen from outside, in ms since it was forked. The guest's own
uptime at its \`ready\` console line (kernel start to the address being
there) shows how much work each guest did itself.

| stage | vmgr median ms | vmgr, namespace mode, median ms | raw QEMU median ms |
|---|---:|---:|---:|
| QEMU running (vmgr: libvirt started and continued it; raw: its agent socket accepts, early in QEMU's start) | $(bench_fmt "$(bench_median vmgr.stage.qemu_started)") | $(bench_fmt "$(bench_median ns.stage.qemu_started)") | $(bench_fmt "$(bench_median raw.socket)") |
| &nbsp;&nbsp;of which libvirt alone: \`virsh -t create\` of vmgr's domain XML | $(bench_fmt "$(bench_median lv.create)") | – | – |
| agent session up | $(bench_fmt "$(bench_median vmgr.stage.agent_connected)") | $(bench_fmt "$(bench_median ns.stage.agent_connected)") | $(bench_fmt "$(bench_median raw.hello)") |
| address done with DAD | $(bench_fmt "$(bench_median vmgr.stage.ipv6_configured)") | $(bench_fmt "$(bench_median ns.stage.ipv6_configured)") | $(bench_fmt "$(bench_median raw.ready)") |
| ready | $(bench_fmt "$(bench_median vmgr.stage.ready)") | $(bench_fmt "$(bench_median ns.stage.ready)") | $(bench_fmt "$(bench_median raw.ready)") |
| QEMU running → ready | $(bench_fmt "$(bench_median vmgr.guest)") | $(bench_fmt "$(bench_median ns.guest)") | $(bench_fmt "$(bench_median raw.guest)") |
| guest uptime at its \`ready\` console line | $(bench_fmt "$(bench_median vmgr.guest_uptime)") | $(bench_fmt "$(bench_median ns.guest_uptime)") | $(bench_fmt "$(bench_median raw.guest_uptime)") |
| before the VM's start clock (group object, network) + WaitReady's reply | $(bench_fmt "$(bench_median vmgr.outside)") | $(bench_fmt "$(bench_median ns.outside)") | – |

### How each is measured

- **vmgr**: \`bench/vmgr-bench vm-cycle\` on one bus connection sends
  \`CreateGroup("$VR_GROUP", '$VR_SPEC')\` and, when it returns,
  \`Group.WaitReady\`; the time is from sending CreateGroup to WaitReady's
  reply. Then it reads the VM's \`Timings\` and deletes the group (timed
  too). vmgrd's libvirtd is running from the setup's untimed VM; the
  default guest is built and cached by then, and the accelerator probe's
  answer too. vmgr's QEMU ran (\`\$TMP\` is the benchmark's temp dir):

  \`\`\`
  $RAW_QEMU_VMGR_CMDLINE
  \`\`\`

- **vmgr, namespace mode**: the same client and calls against a second
  vmgrd started with \`--network-mode namespace\` on a second private bus
  (same user, own state and runtime directories) and kept running for the
  whole comparison, with an untimed VM first like the other's. Its helper
  (no file capabilities count in there), dnsmasq, libvirtd and QEMU run in
  vmgrd's own user, network, PID and mount namespaces; the guest and its
  agent socket are the same.
- **raw QEMU**: \`bench/vmgr-bench raw-boot\`, as the same unprivileged user,
  forks \`qemu-system-x86_64\` with the kernel, initramfs, \`-append\`,
  \`-accel\`, \`-cpu\`, \`-m\` and \`-smp\` taken from vmgr's QEMU command line
  above and the same devices, connects to the agent's socket as soon as
  it exists (retrying every millisecond), greets the agent the way vmgrd
  does (\`0x00\` + HELLO; HELLO again on the agent's announcement) and stops
  the clock at the first INFO showing the VM's address without the
  tentative flag, vmgrd's own rule for \`ipv6_configured\`. Then SIGTERM.
  Its TAP sits on a bridge with a dnsmasq (vmgrd's argv) made once by
  \`bench/iproute2-group.sh\` and kept for all rounds.
- **libvirt alone**: vmgr's domain XML (\`virsh dumpxml --inactive\` of the
  setup's VM, renamed, on the raw network's spare TAP) created and
  destroyed by one \`virsh -t\` against vmgrd's own libvirtd, which times
  each API call: the part of "QEMU running" that is libvirt starting QEMU.
- **What differs**: the raw QEMU gets no QMP monitor and is not started
  paused (libvirt starts QEMU with \`-S\`, sets it up over QMP, then
  continues it), its TAP, bridge and dnsmasq exist before its clock starts
  (vmgr makes them inside CreateGroup; comparison 1 measures that part),
  its console is a plain file, and no memory-backend object or passed file
  descriptors. Both guests get the same vCPUs, memory, CPU model, accelerator,
  devices and kernel command line.
EOF
}
