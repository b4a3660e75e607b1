# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Comparison "cold-boot" of tools/bench: the default guest's cold start,
# CreateGroup with one VM → Group.WaitReady, through this build's vmgrd
# ("after") and through the vmgrd of another, older build ("before"), in
# the same rounds. Needs BENCH_COLDBOOT_BEFORE=DIR: a build directory
# installed into DIR/destdir with the helper's capabilities set (as
# tools/bench sets up build-bench), e.g. another checkout's build-bench.
# Sourced by tools/bench (see "Comparisons" there); run it alone with
#     BENCH_COLDBOOT_BEFORE=/path/to/old/build-bench tools/bench --only cold-boot
# Each vmgrd builds its default guest with its own vmgr-mkguest and agent.

BENCH_COMPARISONS+=(cold-boot)
BENCH_ORDER["cold-boot"]=8

CB_SPEC='{"vms":[{"name":"a"}]}'
# This build would restore every VM after the first from its template: the
# cold boot is what is measured here. The earlier build gets the same spec
# if it knows the "warm" key (it has warm start too: its restores and its
# background template would otherwise be measured), else CB_SPEC (setup
# finds out).
CB_SPEC_AFTER='{"vms":[{"name":"a","warm":false}]}'
CB_SPEC_BEFORE=$CB_SPEC

bench_cold_boot_title() {
        echo "Cold boot: before and after"
}

# Two boots a round, about 12 s.
bench_cold_boot_runs() {
        echo $((BENCH_RUNS < 20 ? BENCH_RUNS : 20))
}

bench_cold_boot_setup() {
        local before=${BENCH_COLDBOOT_BEFORE:-} vmgrd=$VMGRD netadm=$VMGR_NETADM
        if [ -z "$before" ] || [ ! -x "$before/destdir/usr/bin/vmgrd" ]; then
                echo "tools/bench: cold-boot needs BENCH_COLDBOOT_BEFORE=DIR, an installed build (DIR/destdir)" >&2
                return 1
        fi
        bench_vmgrd_start
        VMGRD=$before/destdir/usr/bin/vmgrd VMGR_NETADM=$before/destdir/usr/libexec/vmgr-netadm bench_vmgrd2_start
        VMGRD=$vmgrd VMGR_NETADM=$netadm
        # One untimed VM each: libvirtd up, default guest built, accelerator probed.
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss cbafter "$CB_SPEC_AFTER" \
                >>"$BENCH_LOG"
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s cbafter >>"$BENCH_LOG"
        if bench_as_user2 busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss cbbefore \
                "$CB_SPEC_AFTER" >>"$BENCH_LOG" 2>&1; then
                CB_SPEC_BEFORE=$CB_SPEC_AFTER
        else
                bench_as_user2 busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss cbbefore \
                        "$CB_SPEC" >>"$BENCH_LOG"
        fi
        bench_as_user2 busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s cbbefore >>"$BENCH_LOG"
}

# Alternating which goes first, so that a drifting load favours neither.
bench_cold_boot_round() {
        CB_ROUND=$((${CB_ROUND:-0} + 1))
        if [ $((CB_ROUND % 2)) = 1 ]; then
                bench_user_record after "$BENCH_CLIENT" vm-cycle cbafter a "$CB_SPEC_AFTER"
                bench_user_record before env DBUS_SESSION_BUS_ADDRESS="unix:path=$VMGR_TMP/bus2" \
                        "$BENCH_CLIENT" vm-cycle cbbefore a "$CB_SPEC_BEFORE"
        else
                bench_user_record before env DBUS_SESSION_BUS_ADDRESS="unix:path=$VMGR_TMP/bus2" \
                        "$BENCH_CLIENT" vm-cycle cbbefore a "$CB_SPEC_BEFORE"
                bench_user_record after "$BENCH_CLIENT" vm-cycle cbafter a "$CB_SPEC_AFTER"
        fi
}

bench_cold_boot_finish() {
        bench_vmgrd_stop
        bench_vmgrd2_stop
        bench_minus cb.gain before.ready after.ready
        local w
        for w in before after; do
                bench_minus "$w.guest" "$w.stage.ready" "$w.stage.qemu_started"
                bench_minus "$w.outside" "$w.ready" "$w.stage.ready"
        done
}

bench_cold_boot_report() {
        cat <<EOF
## $(bench_cold_boot_title)

The default guest, one VM (\`$CB_SPEC_AFTER\`; "before": \`$CB_SPEC_BEFORE\`), through two vmgrds
on private buses in the same rounds, alternating which goes first: this
build ("after") and \`$(basename "$(dirname "$BENCH_COLDBOOT_BEFORE")")/$(basename "$BENCH_COLDBOOT_BEFORE")\` ("before"). Each
builds its own default guest with its own \`vmgr-mkguest\`, init and agent.
(No "guest uptime at \`ready\`" row: the agent now reports the address
before init prints that line, so it is mostly not there yet when
WaitReady returns.)

$(bench_row_header)
$(bench_row "**after**: CreateGroup → Group.WaitReady returns" after.ready)
$(bench_row "**before**: CreateGroup → Group.WaitReady returns" before.ready)
$(bench_row "before − after, per round" cb.gain)
$(bench_row "after: CreateGroup returns" after.create)
$(bench_row "before: CreateGroup returns" before.create)
$(bench_row "after: QEMU running (libvirt's start, from the VM's start clock)" after.stage.qemu_started)
$(bench_row "before: QEMU running" before.stage.qemu_started)
$(bench_row "after: agent session up" after.stage.agent_connected)
$(bench_row "before: agent session up" before.stage.agent_connected)
$(bench_row "after: QEMU running → ready" after.guest)
$(bench_row "before: QEMU running → ready" before.guest)
$(bench_row "after: outside the VM's start clock (network, WaitReady's reply)" after.outside)
$(bench_row "before: outside the VM's start clock" before.outside)
EOF
}
