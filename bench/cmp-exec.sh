# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Comparison "exec" of tools/bench: running a command in a ready VM,
# `VM.Run(["true"], no stdin, timeout)`, from a direct sd-bus client, one at
# a time and many in flight; against the guest agent driven directly on
# its virtio-serial socket (what vmgrd adds) and against `busctl call`
# (what a script would run). Sourced by tools/bench, which calls the
# bench_exec_* functions (see "Comparisons" in tools/bench) inside the
# benchmark's namespaces.

BENCH_COMPARISONS+=(exec)
BENCH_ORDER["exec"]=3

EX_GROUP='exec'
EX_VM=a
EX_SPEC='{"vms":[{"name":"a"}]}'
# The agent-alone contender's raw QEMU (bench/raw-qemu.sh).
EX_RAW_GROUP=rawexec
# Runs in flight in the "at once" rows.
EX_INFLIGHT=20

EX_VM_PATH=
EX_RAW_PID=

source "$BENCH_DIR/raw-qemu.sh"

bench_exec_title() {
        echo "Exec: VM.Run round trip and rate"
}

bench_exec_setup() {
        local out
        # Per round: one-at-a-time runs per contender, runs with
        # EX_INFLIGHT in flight, busctl processes (each about as slow as
        # 10 direct calls).
        if [ "$BENCH_SMOKE" = 1 ]; then
                EX_SEQ=20 EX_PAR=40 EX_BUSCTL=5
        else
                EX_SEQ=100 EX_PAR=200 EX_BUSCTL=20
        fi

        bench_vmgrd_start
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss \
                "$EX_GROUP" "$EX_SPEC" >>"$BENCH_LOG"
        out=$(vmgr_as_user busctl --user --timeout=600 call org.vmgr1 "/org/vmgr1/group/$EX_GROUP" \
                org.vmgr1.Group WaitReady t 590000000 2>&1) || {
                echo "tools/bench: the exec VM did not become ready: $out" >&2
                return 1
        }
        out=$(vmgr_as_user busctl --user call org.vmgr1 "/org/vmgr1/group/$EX_GROUP" org.vmgr1.Group GetVM s "$EX_VM")
        EX_VM_PATH=${out#o \"}
        EX_VM_PATH=${EX_VM_PATH%\"}

        # The agent-alone contender: a raw QEMU like vmgr's VM, booted once
        # and left running.
        raw_qemu_prepare "$(raw_qemu_vmgr_pid "$EX_GROUP" "$EX_VM")" "$EX_RAW_GROUP" "$EX_VM"
        raw_qemu_boot exboot --pid-file "$RAW_QEMU_DIR/vm/qemu.pid"
        EX_RAW_PID=$(cat "$RAW_QEMU_DIR/vm/qemu.pid")
}

# ex_rate PREFIX KEY COUNT: record COUNT runs over the total time the client
# printed as PREFIX.total as KEY, in runs per second.
ex_rate() {
        local total
        total=$(tail -n 1 "$BENCH_SAMPLES/$1.total")
        bench_record "$2" "$(awk -v n="$3" -v t="$total" 'BEGIN { printf "%.1f", n * 1000 / t }')"
}

# busctl as a script runs it, one process per call, timed around each
# process by the test user's bash (EPOCHREALTIME: no process for the clock).
ex_busctl() {
        # shellcheck disable=SC2016 # expanded by the inner bash
        bench_user_record busctl bash -c '
                for ((i = 0; i < $1; i++)); do
                        t0=${EPOCHREALTIME//[!0-9]/}
                        busctl --user call org.vmgr1 "$2" org.vmgr1.VM Run asayt 1 true 0 30000000 >/dev/null || exit 1
                        t1=${EPOCHREALTIME//[!0-9]/}
                        us=$((t1 - t0))
                        printf "call %d.%03d\n" $((us / 1000)) $((us % 1000))
                done' bash "$EX_BUSCTL" "$EX_VM_PATH"
}

ex_vmgr() {
        bench_user_record vmgr "$BENCH_CLIENT" run --runs "$EX_SEQ" "$EX_GROUP" "$EX_VM" -- true
        ex_rate vmgr vmgr.rate "$EX_SEQ"
        bench_user_record vmgr.par "$BENCH_CLIENT" run --runs "$EX_PAR" --inflight "$EX_INFLIGHT" \
                "$EX_GROUP" "$EX_VM" -- true
        ex_rate vmgr.par vmgr.par.rate "$EX_PAR"
}

ex_agent() {
        local sock=$RAW_QEMU_DIR/vm/agent.sock
        bench_user_record agent "$BENCH_CLIENT" agent-run --runs "$EX_SEQ" "$sock" -- true
        ex_rate agent agent.rate "$EX_SEQ"
        bench_user_record agent.par "$BENCH_CLIENT" agent-run --runs "$EX_PAR" --inflight "$EX_INFLIGHT" \
                "$sock" -- true
        ex_rate agent.par agent.par.rate "$EX_PAR"
}

# Every contender once; which one goes first rotates from round to round.
bench_exec_round() {
        local order=(ex_vmgr ex_agent ex_busctl) i
        EX_ROUND=$((${EX_ROUND:-0} + 1))
        for ((i = 0; i < 3; i++)); do
                "${order[(i + EX_ROUND) % 3]}"
        done
}

bench_exec_finish() {
        if [ -n "$EX_RAW_PID" ]; then
                kill -TERM "$EX_RAW_PID" 2>/dev/null || true
                # Not our child (vmgr-bench's): wait for it to go.
                while kill -0 "$EX_RAW_PID" 2>/dev/null && [ "$(ps -o stat= -p "$EX_RAW_PID")" != Z ]; do
                        sleep 0.05
                done
                EX_RAW_PID=
        fi
        raw_qemu_network_down
        bench_vmgrd_stop
}

# ex_lat_row LABEL KEY: "| LABEL | median | p90 | p99 | max | n |".
ex_lat_row() {
        local med p90 max n
        read -r med p90 max n < <(bench_stats "$2")
        echo "| $1 | $(bench_fmt "$med") | $(bench_fmt "$p90") | $(bench_fmt "$(bench_pct "$2" 99)") | $(bench_fmt "$max") | $n |"
}

# ex_rate_row LABEL KEY: "| LABEL | median | lowest | highest | rounds |" of a rate.
ex_rate_row() {
        local med min max
        med=$(bench_median "$2")
        min=$(sort -g "$BENCH_SAMPLES/$2" | head -n 1)
        max=$(sort -g "$BENCH_SAMPLES/$2" | tail -n 1)
        echo "| $1 | $(bench_num "$med") | $(bench_num "$min") | $(bench_num "$max") | $(bench_count "$2") |"
}

bench_exec_report() {
        local ok added r_busctl
        ok=$(bench_at_most vmgr.call 10)
        added=$(bench_diff vmgr.call agent.call)
        r_busctl=$(bench_ratio busctl.call vmgr.call)

        cat <<EOF
## $(bench_exec_title)

\`true\` run in one ready VM of the default guest ($RAW_QEMU_VCPUS vCPU,
$RAW_QEMU_MEM MiB, \`-accel $RAW_QEMU_ACCEL\`), each run a whole round trip:
the request, the agent's fork and exec in the guest, \`EXIT\` and the end of
stdout and stderr, the reply. One round runs every contender once, which
one first rotating; the first round is a warm-up and is not counted.

| round trip | median ms | p90 ms | p99 ms | max ms | runs |
|---|---:|---:|---:|---:|---:|
$(ex_lat_row "**vmgr**: \`VM.Run([\"true\"], [], 30 s)\`, direct sd-bus client, one at a time" vmgr.call)
$(ex_lat_row "agent alone: EXEC → EXIT on the virtio-serial socket, one at a time" agent.call)
$(ex_lat_row "\`busctl --user call … Run asayt 1 true 0 30000000\`, a process per call" busctl.call)
$(ex_lat_row "vmgr: \`VM.Run\`, $EX_INFLIGHT in flight, each" vmgr.par.call)
$(ex_lat_row "agent alone: $EX_INFLIGHT in flight, each" agent.par.call)

| runs per second on one VM | median | lowest | highest | rounds |
|---|---:|---:|---:|---:|
$(ex_rate_row "**vmgr**, one at a time ($EX_SEQ runs per round)" vmgr.rate)
$(ex_rate_row "**vmgr**, $EX_INFLIGHT in flight ($EX_PAR runs per round)" vmgr.par.rate)
$(ex_rate_row "agent alone, one at a time" agent.rate)
$(ex_rate_row "agent alone, $EX_INFLIGHT in flight" agent.par.rate)

### Against the target

| target | measured | |
|---|---|---|
| \`VM.Run\` median ≤ 10 ms under TCG | $(bench_fmt "$(bench_median vmgr.call)") ms (p99 $(bench_fmt "$(bench_pct vmgr.call 99)") ms) | $(bench_verdict "$ok") |

vmgrd adds ${added:-–} ms to the agent's own round trip (medians); a
\`busctl call\` takes ${r_busctl:-–}× as long as the direct client's call,
most of it starting \`busctl\`.

### How each is measured

- **vmgr**: \`bench/vmgr-bench run\` keeps one bus connection to vmgrd and
  calls \`VM.Run(["true"], [], 30000000)\` on the VM's object, timing each
  call from sending it to its reply (\`CLOCK_MONOTONIC\`); "in flight" sends
  $EX_INFLIGHT calls with \`sd_bus_call_async\` and sends the next one as each
  reply comes. The rate is the runs of a round over that round's total.
- **agent alone**: the guest agent without vmgrd: \`bench/vmgr-bench
  agent-run\` on the agent's socket of a raw QEMU set up like vmgr's VM
  (\`bench/raw-qemu.sh\`, the same guest, kernel command line, devices,
  vCPUs and memory), booted once for the comparison. It greets the agent
  like vmgrd and sends what vmgrd sends for \`Run\`: \`EXEC\` with stdin,
  stdout and stderr streams and \`EOF\` on stdin, then waits for \`EXIT\` and
  the \`EOF\` of both outputs. The difference to vmgr's row is vmgrd: the
  D-Bus round trip through \`dbus-daemon\`, the call's checks, the session's
  bookkeeping and the reply. Both VMs run during the whole comparison,
  each idle while the other is measured.
- **busctl**: what a shell script runs; one \`busctl --user call\` process
  per run, timed around the process by the test user's bash.
- ssh into the guest is no contender here: the default guest has no ssh
  server.
EOF
}
