# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Comparison "real-guest" of tools/bench: one VM of vmgr's Debian image
# (vmgr-mkimage debian, docs/guest.md) from nothing to ready, twice per
# round: from the image with vmgr's agent built in ("agent": true, ready
# once the agent reports the derived address), and from the stock image
# without it ("agent": false, ready once vmgrd sees the derived address
# from the host and a TCP connect to systemd-journal-gatewayd's port 19531
# succeeds). tools/bench builds both images before it enters the
# benchmark's namespaces (Debian's archive is outside them) and passes
# their paths in BENCH_IMAGE_AGENT and BENCH_IMAGE_STOCK. A smoke run boots
# the image without the agent only, one counted round.
# Sourced by tools/bench, which calls the bench_real_guest_* functions
# (see "Comparisons" in tools/bench) inside the benchmark's namespaces.

BENCH_COMPARISONS+=(real-guest)
BENCH_ORDER["real-guest"]=7

RG_GROUP=realguest
RG_MEM_MIB=1024

bench_real_guest_title() {
        echo "A Debian image: start to ready with the agent and without"
}

# Each round boots two Debian guests under TCG, about a minute together.
bench_real_guest_runs() {
        if [ "$BENCH_SMOKE" = 1 ]; then echo 1; else echo $((BENCH_RUNS < 5 ? BENCH_RUNS : 5)); fi
}

bench_real_guest_setup() {
        if [ ! -r "${BENCH_IMAGE_STOCK:-}" ] || { [ "$BENCH_SMOKE" = 0 ] && [ ! -r "${BENCH_IMAGE_AGENT:-}" ]; }; then
                echo "tools/bench: real-guest needs the Debian images tools/bench builds (BENCH_IMAGE_AGENT, BENCH_IMAGE_STOCK)" >&2
                return 1
        fi
        RG_SPEC_AGENT='{"vms":[{"name":"a","disk":"'$BENCH_IMAGE_AGENT'","memory_mib":'$RG_MEM_MIB',"agent":true}]}'
        RG_SPEC_STOCK='{"vms":[{"name":"a","disk":"'$BENCH_IMAGE_STOCK'","memory_mib":'$RG_MEM_MIB',"ready_probe_host":{"tcp":19531}}]}'
        bench_vmgrd_start
}

rg_agent_round() {
        [ -n "${BENCH_IMAGE_AGENT:-}" ] || return 0
        bench_user_record agent "$BENCH_CLIENT" vm-cycle "$RG_GROUP" a "$RG_SPEC_AGENT"
}

rg_stock_round() {
        bench_user_record stock "$BENCH_CLIENT" vm-cycle "$RG_GROUP" a "$RG_SPEC_STOCK"
}

# Each contender goes first every other round.
bench_real_guest_round() {
        RG_ROUND=$((${RG_ROUND:-0} + 1))
        if [ $((RG_ROUND % 2)) = 1 ]; then
                rg_agent_round
                rg_stock_round
        else
                rg_stock_round
                rg_agent_round
        fi
}

bench_real_guest_finish() {
        bench_vmgrd_stop
        if bench_has agent.ready; then
                bench_minus agent.guest agent.stage.ready agent.stage.qemu_started
        fi
        bench_minus stock.guest stock.stage.ready stock.stage.qemu_started
}

bench_real_guest_report() {
        local size_agent=– size_stock
        [ -z "${BENCH_IMAGE_AGENT:-}" ] || size_agent=$(du -m --apparent-size "$BENCH_IMAGE_AGENT" | cut -f 1)
        size_stock=$(du -m --apparent-size "$BENCH_IMAGE_STOCK" | cut -f 1)
        cat <<EOF
## $(bench_real_guest_title)

One VM of vmgr's Debian 12 image
(\`vmgr-mkimage debian\`: systemd, systemd-networkd, cloud-init, the cloud
kernel), 1 vCPU, $RG_MEM_MIB MiB, booted by SeaBIOS from a copy-on-write
overlay of the image, from nothing to **ready**: \`bench/vmgr-bench
vm-cycle\` sends CreateGroup, then Group.WaitReady, and times from sending
CreateGroup to WaitReady's reply. Two contenders per round, each first
every other round; the first round is a warm-up and is not counted. At
most 5 rounds (each takes about a minute).

- **with the agent**: the image built with \`--agent\` ($size_agent MiB
  qcow2), spec \`"agent": true\`: ready once vmgr-agent (started by systemd)
  reports the derived IPv6 address done with duplicate address detection.
- **without the agent**: the stock image ($size_stock MiB qcow2), spec
  \`"ready_probe_host": {"tcp": 19531}\`: ready once vmgrd, from the host,
  sees the derived address answer and connects to
  systemd-journal-gatewayd's socket (started by systemd's socket unit).

$(bench_row_header)
$(bench_row "**with the agent**: CreateGroup → WaitReady returns" agent.ready)
$(bench_row "&nbsp;&nbsp;QEMU running → ready (VM's Timings)" agent.guest)
$(bench_row "&nbsp;&nbsp;agent session up (Timings, from the VM's start)" agent.stage.agent_connected)
$(bench_row "**without the agent**: CreateGroup → WaitReady returns" stock.ready)
$(bench_row "&nbsp;&nbsp;QEMU running → ready (VM's Timings)" stock.guest)
$(bench_row "&nbsp;&nbsp;derived address seen from the host (Timings)" stock.stage.ipv6_configured)
$(bench_row "&nbsp;&nbsp;TCP connect to port 19531 succeeds (Timings)" stock.stage.host_probe_passed)
$(bench_row "DeleteGroup afterwards, with the agent" agent.delete)
$(bench_row "DeleteGroup afterwards, without the agent" stock.delete)
EOF
}
