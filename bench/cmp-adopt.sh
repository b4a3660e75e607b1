# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Comparison "adopt" of tools/bench: how long a new vmgrd takes to adopt
# N running groups of 2 VMs after the old one was killed with SIGKILL, and
# how long Manager.Reexec (vmgrctl daemon reexec) takes with them, for
# N = 1 and 16. The groups are made once per N (32 TCG guests take
# minutes to boot) and every round then kills and restarts vmgrd, and
# re-executes it, against the same guests: the same QEMU processes must be
# there after each (a lost QEMU fails the benchmark), every group
# `running`, Manager.GroupsAdopted N. After each N the groups are deleted
# and a leak check must find nothing. Host mode only: in namespace mode
# the groups live in the namespaces of vmgrd's holder, where the checks
# below (processes, libvirt's socket) do not look yet. Sourced by
# tools/bench, which calls the bench_adopt_* functions (see "Comparisons"
# there) inside the benchmark's namespaces.
#
# BENCH_ADOPT_N="1 4" (environment) measures other N than the default.

BENCH_COMPARISONS+=(adopt)
BENCH_ORDER["adopt"]=6

AD_PREFIX=adopt
# Memory per VM and reserve, as in the scale comparison.
AD_VM_MEM_MIB=320
AD_MEM_RESERVE_MIB=2048
# How long the poller waits for the new vmgrd, in seconds.
AD_TIMEOUT_S=300

AD_NS=()
AD_RUNS=0
AD_SKIPPED=
AD_ROUND=0
AD_CUR_N=
AD_QEMUS=
AD_POLL=
AD_STAMPS=
AD_BASELINE=
AD_BASELINE_FDS=
AD_SPEC=
AD_CMDLINE=
AD_LEAK_CHECKS=0
AD_FRESH_LIBVIRTD=
AD_START=
AD_END=
declare -A AD_UP_MS=()

bench_adopt_title() {
        echo "Adoption: a new vmgrd takes over N running groups × 2 VMs"
}

# The N that fit in memory, and how many counted rounds each gets.
ad_plan() {
        local n mem_avail need kept=()
        AD_SKIPPED=
        if [ "$BENCH_SMOKE" = 1 ]; then
                read -r -a AD_NS <<<"${BENCH_ADOPT_N:-1}"
        else
                read -r -a AD_NS <<<"${BENCH_ADOPT_N:-1 16}"
        fi
        mem_avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
        for n in "${AD_NS[@]}"; do
                need=$((2 * n * AD_VM_MEM_MIB + AD_MEM_RESERVE_MIB))
                if [ "$need" -gt "$mem_avail" ]; then
                        AD_SKIPPED+="${AD_SKIPPED:+; }N = $n needs about $need MiB, $mem_avail MiB were available"
                        continue
                fi
                kept+=("$n")
        done
        AD_NS=("${kept[@]}")
        # Rounds are cheap (a restart of vmgrd): every N gets --runs.
        AD_RUNS=$BENCH_RUNS
}

# The driver's counted rounds: --runs for each N, one after the other.
bench_adopt_runs() {
        ad_plan
        echo $((AD_RUNS * ${#AD_NS[@]}))
}

# The poller: connected to the bus before the timed span begins, it asks
# org.vmgr1 for Manager.GroupsAdopted every 2 ms, and at once whenever
# the name changes owner (NameOwnerChanged), until an owner other than the
# one at its start answers with N. It prints "connected", then "answered
# US VALUE": CLOCK_REALTIME in microseconds (EPOCHREALTIME's clock) when
# that answer arrived. busctl would add its own start-up (5-10 ms) to
# every poll.
ad_build_poller() {
        AD_POLL=$VMGR_TMP/adopt-poll
        cat >"$AD_POLL.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-bus.h>

static long long now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long) ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int on_owner(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        return 0;
}

int main(int argc, char **argv) {
        sd_bus *bus = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char before[256] = "";
        const char *owner, *sender;
        unsigned want, value;
        long long deadline;
        int r;

        if (argc != 3)
                return 2;
        want = (unsigned) strtoul(argv[1], NULL, 10);
        deadline = now_us() + atoll(argv[2]) * 1000000LL;
        if (sd_bus_open_user(&bus) < 0)
                return 2;
        if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetNameOwner", &error, &reply, "s", "org.vmgr1") >= 0 &&
            sd_bus_message_read(reply, "s", &owner) >= 0)
                snprintf(before, sizeof(before), "%s", owner);
        sd_bus_error_free(&error);
        reply = sd_bus_message_unref(reply);
        if (sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                "NameOwnerChanged", on_owner, NULL) < 0)
                return 2;
        printf("connected\n");
        fflush(stdout);
        for (;;) {
                r = sd_bus_call_method(bus, "org.vmgr1", "/org/vmgr1", "org.freedesktop.DBus.Properties", "Get",
                                       &error, &reply, "ss", "org.vmgr1.Manager", "GroupsAdopted");
                if (r >= 0) {
                        long long t = now_us();

                        sender = sd_bus_message_get_sender(reply);
                        if ((!sender || strcmp(sender, before) != 0) &&
                            sd_bus_message_read(reply, "v", "u", &value) >= 0) {
                                printf("answered %lld %u\n", t, value);
                                return value == want ? 0 : 1;
                        }
                }
                sd_bus_error_free(&error);
                reply = sd_bus_message_unref(reply);
                if (now_us() > deadline) {
                        printf("timeout\n");
                        return 1;
                }
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                (void) sd_bus_wait(bus, 2000);
        }
}
EOF
        # shellcheck disable=SC2046
        cc -O2 -Wall -o "$AD_POLL" "$AD_POLL.c" $(pkg-config --cflags --libs libsystemd)
        chmod 0755 "$AD_POLL"
}

# ad_poll_start N: start the poller as the test user; sets AD_POLL_PID and
# AD_POLL_OUT, returns once it is connected.
ad_poll_start() {
        local i
        AD_POLL_OUT=$VMGR_TMP/adopt-poll.out
        : >"$AD_POLL_OUT"
        vmgr_as_argv "$VMGR_USER"
        "${VMGR_AS_ARGV[@]}" "$AD_POLL" "$1" "$AD_TIMEOUT_S" >"$AD_POLL_OUT" 2>>"$BENCH_LOG" &
        AD_POLL_PID=$!
        for ((i = 0; i < 1000; i++)); do
                grep -q '^connected' "$AD_POLL_OUT" && return 0
                kill -0 "$AD_POLL_PID" 2>/dev/null || break
                sleep 0.005
        done
        echo "tools/bench: the adoption poller did not connect to the bus" >&2
        return 1
}

# ad_poll_wait: wait for the poller (this shell's child: not in a
# subshell) and set AD_POLL_T to the microseconds of its answer, or fail
# with what it said and vmgrd's log.
ad_poll_wait() {
        local rc=0 t="" value
        wait "$AD_POLL_PID" || rc=$?
        read -r _ t value < <(grep '^answered' "$AD_POLL_OUT") || true
        if [ "$rc" -ne 0 ] || [ -z "$t" ]; then
                echo "tools/bench: vmgrd did not answer with GroupsAdopted $AD_CUR_N (poller: $(tr '\n' ' ' <"$AD_POLL_OUT")); its log:" >&2
                tail -n 30 "$VMGR_TMP/vmgrd.log" | sed 's/^/  /' >&2
                bench_keep_evidence
                return 1
        fi
        AD_POLL_T=$t
}

# ad_stamp_after T0 TEXT: the stamp of the first log line at or after T0
# (microseconds) holding TEXT; empty if none. ad_stamp_last_after: the last.
ad_stamp_after() {
        awk -v t="$1" -v s="$2" '$1 >= t && index($0, s) { print $1; exit }' "$AD_STAMPS"
}
ad_stamp_last_after() {
        awk -v t="$1" -v s="$2" '$1 >= t && index($0, s) { v = $1 } END { if (v != "") print v }' "$AD_STAMPS"
}

# ad_record_since KEY T0 T1: record T1 - T0 (microseconds) if T1 is known.
ad_record_since() {
        [ -n "$3" ] || return 0
        bench_record_us "$1" $(($3 - $2))
}

# ad_record_phases K T0: from vmgrd's stamped log lines after T0, the
# phases of one adoption: K.t_reexec (the old image's "Re-executing"),
# K.t_mode (the new one's first line), K.t_kill_libvirtd (it kills a
# libvirtd that is still there), K.libvirtd (to "Connected to libvirtd"),
# K.adopted (to the last "adopted:" line), K.ready (to "ready on the
# session bus"), and K.libvirtd_own, the time libvirtd took from its exec
# to its first answer by vmgrd's own count.
ad_record_phases() {
        local k=$1 t0=$2 line ms
        ad_record_since "$k.t_reexec" "$t0" "$(ad_stamp_after "$t0" "Re-executing ")"
        ad_record_since "$k.t_mode" "$t0" "$(ad_stamp_after "$t0" "Network mode:")"
        ad_record_since "$k.t_kill_libvirtd" "$t0" "$(ad_stamp_after "$t0" "Killing libvirtd")"
        ad_record_since "$k.libvirtd" "$t0" "$(ad_stamp_after "$t0" "Connected to libvirtd")"
        ad_record_since "$k.adopted" "$t0" "$(ad_stamp_last_after "$t0" "] adopted: ")"
        ad_record_since "$k.ready" "$t0" "$(ad_stamp_after "$t0" "ready on the session bus")"
        line=$(awk -v t="$t0" '$1 >= t && index($0, "Connected to libvirtd") { print; exit }' "$AD_STAMPS")
        ms=$(sed -n 's/.*, \([0-9.]*\) ms after it was started.*/\1/p' <<<"$line")
        [ -n "$ms" ] && bench_record "$k.libvirtd_own" "$ms"
        return 0
}

ad_qemus() {
        pgrep -u "$VMGR_USER" -f '^/usr/bin/qemu-system-x86_64 ' | sort -n | xargs
}

# ad_check_whole WHAT: the same QEMUs as after the setup, every group
# running, GroupsAdopted N; fail the benchmark otherwise.
ad_check_whole() {
        local what=$1 now states adopted
        now=$(ad_qemus)
        if [ "$now" != "$AD_QEMUS" ]; then
                echo "tools/bench: after $what a QEMU was lost or replaced: before '$AD_QEMUS', now '$now'" >&2
                bench_keep_evidence
                return 1
        fi
        states=$(vmgr_as_user "$VMGRCTL" group list --json |
                python3 -c 'import json,sys; g=json.load(sys.stdin); print(len(g), " ".join(sorted(set(x["State"] for x in g))))')
        if [ "$states" != "$AD_CUR_N running" ]; then
                echo "tools/bench: after $what the groups are not all running: $states (count, states)" >&2
                bench_keep_evidence
                return 1
        fi
        adopted=$(vmgr_as_user busctl --user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager GroupsAdopted)
        if [ "$adopted" != "u $AD_CUR_N" ]; then
                echo "tools/bench: after $what GroupsAdopted is '$adopted', not $AD_CUR_N" >&2
                return 1
        fi
}

# The pid that owns org.vmgr1, by the bus.
ad_bus_pid() {
        vmgr_as_user busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetConnectionUnixProcessID s org.vmgr1 | awk '{ print $2 }'
}

# ad_kill_restart K: kill -9 vmgrd, start a new one and record K.start
# (from just before its exec to GroupsAdopted == N answered), the phases
# from its log, and K.answer_after_ready (its "ready" log line to the
# answer: what the measurement adds).
ad_kill_restart() {
        local k=$1 pid fd t0 t1 t_ready
        pid=$(ad_bus_pid)
        if [ "$pid" != "$VMGRD_PID" ]; then
                echo "tools/bench: org.vmgr1 belongs to pid '$pid', but vmgrd is $VMGRD_PID" >&2
                return 1
        fi
        vmgr_stop_vmgrd KILL
        if [ "$VMGRD_STATUS" != 137 ]; then
                echo "tools/bench: vmgrd exited with $VMGRD_STATUS on SIGKILL" >&2
                return 1
        fi
        ad_poll_start "$AD_CUR_N"
        echo "=== vmgrd started $(date +%T.%N) (adoption of $AD_CUR_N groups, timed)" >>"$VMGR_TMP/vmgrd.log"
        # The stamping reader is this shell's child, not vmgrd's (vmgrd
        # reaps and kills every descendant of its own).
        exec {fd}> >(bench_stamp_lines "$AD_STAMPS" >>"$VMGR_TMP/vmgrd.log")
        vmgr_mode_args
        vmgr_as_argv "$VMGR_USER"
        t0=$EPOCHREALTIME
        t0=${t0//[!0-9]/}
        "${VMGR_AS_ARGV[@]}" "$VMGRD" --netadm "$VMGR_NETADM" "${VMGR_MODE_ARGS[@]}" \
                --state-dir "$VMGR_TMP/state/vmgr" --runtime-dir "$VMGR_TMP/run/vmgr" \
                </dev/null >>"$VMGR_TMP/vmgrd.log" 2>&"$fd" {fd}>&- &
        VMGRD_PID=$!
        exec {fd}>&-
        ad_poll_wait
        t1=$AD_POLL_T
        # The answer came from this vmgrd, not from whoever else might
        # have claimed the name on the test's bus meanwhile.
        pid=$(ad_bus_pid)
        if [ "$pid" != "$VMGRD_PID" ]; then
                echo "tools/bench: after the restart org.vmgr1 belongs to pid '$pid', not vmgrd's $VMGRD_PID" >&2
                return 1
        fi
        bench_record_us "$k.start" $((t1 - t0))
        ad_record_phases "$k" "$t0"
        # The log line can arrive after the answer (the stamper is
        # another process): then nothing is recorded.
        t_ready=$(ad_stamp_after "$t0" "ready on the session bus")
        if [ -n "$t_ready" ] && [ "$t1" -ge "$t_ready" ]; then
                bench_record_us "$k.answer_after_ready" $((t1 - t_ready))
        fi
        ad_check_whole "a restart after SIGKILL"
}

# ad_reexec K: vmgrctl daemon reexec; K.call is the command's wall time
# (it returns once the new image owns the name: it polls every 20 ms),
# K.answer from its start to GroupsAdopted == N answered by the new image.
ad_reexec() {
        local k=$1 t0 t1 t2 pid
        ad_poll_start "$AD_CUR_N"
        t0=$EPOCHREALTIME
        t0=${t0//[!0-9]/}
        if ! vmgr_as_user "$VMGRCTL" daemon reexec >>"$BENCH_LOG" 2>&1; then
                echo "tools/bench: vmgrctl daemon reexec failed; the log's end:" >&2
                tail -n 20 "$BENCH_LOG" | sed 's/^/  /' >&2
                return 1
        fi
        t1=$EPOCHREALTIME
        t1=${t1//[!0-9]/}
        ad_poll_wait
        t2=$AD_POLL_T
        bench_record_us "$k.call" $((t1 - t0))
        bench_record_us "$k.answer" $((t2 - t0))
        ad_record_phases "$k" "$t0"
        pid=$(ad_bus_pid)
        if [ "$pid" != "$VMGRD_PID" ]; then
                echo "tools/bench: after the re-exec org.vmgr1 belongs to pid '$pid', not $VMGRD_PID" >&2
                return 1
        fi
        ad_check_whole "a re-exec"
}

# Every file and directory under vmgrd's runtime and state directories,
# sorted; libvirt's log grows and stays.
ad_files() {
        find "$VMGR_TMP/run/vmgr" "$VMGR_TMP/state/vmgr" -mindepth 1 ! -name libvirtd.log -printf '%p\n' 2>/dev/null |
                sort
}

# What the groups left once deleted, one thing a line; nothing when clean.
ad_leaks() {
        local lv domains fds
        lv=$(pgrep -P "$VMGRD_PID" -x libvirtd || true)
        vmgr_leftovers | grep -v -x -e "process ${lv:-none} libvirtd" || true
        if [ -z "$lv" ]; then
                echo "vmgrd's libvirtd is gone"
        elif ! domains=$(vmgr_as_user virsh -q -c \
                "qemu:///session?socket=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/libvirt-sock" list --all --name 2>&1); then
                echo "virsh list failed: $domains"
        else
                sed '/^$/d; s/^/libvirt domain /' <<<"$domains"
        fi
        # Processes of the kill -9'd vmgrds' children that stayed behind
        # (reparented to this PID namespace's init, the benchmark).
        ps -o pid=,stat=,comm= --ppid 1 |
                awk '$2 !~ /^Z/ && $3 ~ /^(libvirtd|dnsmasq|qemu-system-x86|virtlogd)$/ { print "orphan process " $1 " " $3 }'
        comm -13 "$AD_BASELINE" <(ad_files) | sed 's/^/file /'
        fds=$(find "/proc/$VMGRD_PID/fd" -mindepth 1 | wc -l)
        if [ "$fds" -gt "$AD_BASELINE_FDS" ]; then
                echo "vmgrd has $fds open files, $AD_BASELINE_FDS after the setup:"
                find "/proc/$VMGRD_PID/fd" -mindepth 1 -printf '  %f -> %l\n'
        fi
}

# ad_groups_down: delete the current N's groups, then the leak check.
ad_groups_down() {
        local leaks
        [ -n "$AD_CUR_N" ] || return 0
        bench_user_record "ignore.n$AD_CUR_N" "$BENCH_CLIENT" batch delete --count "$AD_CUR_N" "$AD_PREFIX" \
                >/dev/null
        leaks=$(ad_leaks)
        if [ -n "$leaks" ]; then
                {
                        echo
                        echo "tools/bench: LEAK: after adopting and deleting $AD_CUR_N groups of 2 VMs, this was left:"
                        sed 's/^/  /' <<<"$leaks"
                } >&2
                bench_keep_evidence
                return 1
        fi
        AD_LEAK_CHECKS=$((AD_LEAK_CHECKS + 1))
        AD_CUR_N=
}

# ad_groups_up N: N groups of 2 VMs, all ready; then one adoption and one
# re-exec not counted (samples thrown away), as every comparison's first
# round.
ad_groups_up() {
        local n=$1 t0 t1 counted=$BENCH_SAMPLES
        ad_groups_down
        t0=$(bench_now_us)
        bench_user_record "ignore.n$n.up" "$BENCH_CLIENT" batch up --count "$n" --spec "$AD_SPEC" "$AD_PREFIX"
        t1=$(bench_now_us)
        AD_UP_MS[$n]=$(((t1 - t0) / 1000))
        AD_CUR_N=$n
        AD_QEMUS=$(ad_qemus)
        if [ "$(wc -w <<<"$AD_QEMUS")" -ne $((2 * n)) ]; then
                echo "tools/bench: $(wc -w <<<"$AD_QEMUS") QEMUs run for $n groups of 2 VMs" >&2
                return 1
        fi
        BENCH_SAMPLES=$VMGR_TMP/samples-adopt-uncounted
        mkdir -p "$BENCH_SAMPLES"
        ad_kill_restart "n$n.kill"
        ad_reexec "n$n.reexec"
        BENCH_SAMPLES=$counted
}

bench_adopt_setup() {
        local qemu accel
        ad_plan
        AD_START="$(date -u '+%Y-%m-%d %H:%M UTC') at a load average of $(cut -d ' ' -f 1 /proc/loadavg)"
        if [ "$VMGR_NET_MODE" != host ]; then
                echo "tools/bench: the adopt comparison runs in host mode only; unset VMGR_NET_MODE" >&2
                return 1
        fi
        ad_build_poller
        AD_STAMPS=$VMGR_TMP/adopt.stamps
        : >"$AD_STAMPS"
        # A vmgrd as every later one: started after a SIGKILL.
        bench_vmgrd_start
        vmgr_stop_vmgrd KILL
        bench_vmgrd_start
        # One VM first (not timed): the default guest is built, libvirtd
        # started. Its kernel, initramfs and command line make the groups'
        # spec, with no_timer_check as in the scale comparison (32 TCG
        # guests on 2 cores: see there). What exists after it is deleted
        # is the leak check's baseline.
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss \
                "$AD_PREFIX-warm" '{"vms":[{"name":"a"}]}' >>"$BENCH_LOG"
        qemu=$(pgrep -u "$VMGR_USER" -f "^/usr/bin/qemu-system-x86_64 -name guest=$AD_PREFIX-warm:a," | head -n 1)
        sc_make_spec "$qemu"
        if [ -z "$BENCH_ACCEL" ]; then
                accel=$(tr '\0' '\n' <"/proc/$qemu/cmdline" | awk 'p { print; exit } $0 == "-accel" { p = 1 }')
                BENCH_ACCEL="${accel:-unknown} (every VM below: QEMU's \`-accel ${accel:-?}\`, as vmgrd chose it)"
        fi
        AD_SPEC=$SC_SPEC AD_CMDLINE=$SC_CMDLINE
        # Where the default guest's command line has it already, once is
        # enough.
        if [[ ${SC_CMDLINE% "$SC_CMDLINE_EXTRA"} == *"$SC_CMDLINE_EXTRA"* ]]; then
                AD_SPEC=${SC_SPEC// $SC_CMDLINE_EXTRA"/"}
                AD_CMDLINE=${SC_CMDLINE% "$SC_CMDLINE_EXTRA"}
        fi
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s "$AD_PREFIX-warm" \
                >>"$BENCH_LOG"
        # libvirtd's start with no domain to reconnect to, for the report.
        AD_FRESH_LIBVIRTD=$(sed -n 's/.*Connected to libvirtd (pid [0-9]*, \([0-9.]*\) ms after it was started).*/\1/p' \
                "$VMGR_TMP/vmgrd.log" | tail -n 1)
        AD_BASELINE=$VMGR_TMP/adopt.files
        ad_files >"$AD_BASELINE"
        AD_BASELINE_FDS=$(find "/proc/$VMGRD_PID/fd" -mindepth 1 | wc -l)
}

bench_adopt_round() {
        local n
        if [ "$BENCH_WARMUP" = 1 ]; then
                # The first N's groups, with their own uncounted rounds.
                ad_groups_up "${AD_NS[0]}"
                return
        fi
        n=${AD_NS[$((AD_ROUND / AD_RUNS))]}
        AD_ROUND=$((AD_ROUND + 1))
        [ "$n" = "$AD_CUR_N" ] || ad_groups_up "$n"
        ad_kill_restart "n$n.kill"
        ad_reexec "n$n.reexec"
}

bench_adopt_finish() {
        local n k
        AD_END="$(date -u '+%H:%M UTC') at $(cut -d ' ' -f 1 /proc/loadavg)"
        ad_groups_down
        bench_vmgrd_stop
        # What came before libvirtd's start: vmgrd's exec and start-up, and
        # on a re-exec the Reexec call and the old libvirtd's exit.
        for n in "${AD_NS[@]}"; do
                for k in "n$n.kill" "n$n.reexec"; do
                        if [ "$(bench_count "$k.libvirtd")" = "$(bench_count "$k.libvirtd_own")" ]; then
                                bench_minus "$k.before_libvirtd" "$k.libvirtd" "$k.libvirtd_own"
                        fi
                done
        done
}

# ad_cell KEY: "median / p90 / min / max" in ms, or "–".
ad_cell() {
        local med p90 max n min
        if ! bench_has "$1"; then
                echo "–"
                return
        fi
        read -r med p90 max n < <(bench_stats "$1")
        min=$(sort -g "$BENCH_SAMPLES/$1" | head -n 1)
        echo "$(bench_num "$med") | $(bench_num "$p90") | $(bench_num "$min") | $(bench_num "$max")"
}

# ad_med KEY: the median, a plain number.
ad_med() {
        if bench_has "$1"; then bench_num "$(bench_median "$1")"; else echo "–"; fi
}

bench_adopt_report() {
        local n k rows="" phases="" up=""
        for n in "${AD_NS[@]}"; do
                k=n$n
                rows+="| $n × 2 | kill -9, then a new vmgrd: start → \`GroupsAdopted\` = $n answered | $(ad_cell "$k.kill.start") | $(bench_count "$k.kill.start") |
| $n × 2 | \`vmgrctl daemon reexec\`: call → return | $(ad_cell "$k.reexec.call") | $(bench_count "$k.reexec.call") |
| $n × 2 | \`vmgrctl daemon reexec\`: call → new image answers \`GroupsAdopted\` = $n | $(ad_cell "$k.reexec.answer") | $(bench_count "$k.reexec.answer") |
"
                up+="${up:+, }N = $n: $(awk -v v="${AD_UP_MS[$n]}" 'BEGIN { printf "%.0f", v / 1000 }') s"
        done
        local still="" share="" hdr="| |" sep="|---|" row label key
        for n in "${AD_NS[@]}"; do
                hdr+=" N = $n, kill -9 | N = $n, re-exec |"
                sep+="---:|---:|"
        done
        local -a labels=(
                "the old image logs \"Re-executing\"|t_reexec"
                "the new vmgrd's first log line|t_mode"
                "it kills the old libvirtd, still there|t_kill_libvirtd"
                "its new libvirtd is started|before_libvirtd"
                "\"Connected to libvirtd\"|libvirtd"
                "(libvirtd's exec to that answer)|libvirtd_own"
                "the last \"adopted:\" line|adopted"
                "\"ready on the session bus\"|ready"
                "\`GroupsAdopted\` = N answered|answer")
        for row in "${labels[@]}"; do
                label=${row%|*} key=${row#*|}
                phases+="| $label |"
                for n in "${AD_NS[@]}"; do
                        for k in "n$n.kill" "n$n.reexec"; do
                                local kk=$k.$key
                                [ "$key" = answer ] && [ "$k" = "n$n.kill" ] && kk=$k.start
                                if bench_has "$kk" && [ "$(bench_count "$kk")" != "$AD_RUNS" ]; then
                                        phases+=" $(ad_med "$kk") ($(bench_count "$kk") of $AD_RUNS) |"
                                else
                                        phases+=" $(ad_med "$kk") |"
                                fi
                        done
                done
                phases+="
"
        done
        for n in "${AD_NS[@]}"; do
                bench_has "n$n.kill.libvirtd_own" || continue
                share+="${share:+, }$(awk -v a="$(bench_median "n$n.kill.libvirtd_own")" \
                        -v b="$(bench_median "n$n.kill.start")" 'BEGIN { printf "%.0f", 100 * a / b }') % for N = $n"
        done
        for n in "${AD_NS[@]}"; do
                still+="${still:+, }$(bench_count "n$n.kill.t_kill_libvirtd") of $(bench_count "n$n.kill.start") rounds for N = $n"
        done
        cat <<EOF
## $(bench_adopt_title)

N groups of two VMs each (the default guest under TCG, booted with
\`$AD_CMDLINE\` as in the scale comparison), made once per N and
waited for until ready ($up). Then every round, against the same
guests: vmgrd is killed with SIGKILL (its pid checked against the bus's
\`GetConnectionUnixProcessID\` of \`org.vmgr1\`) and a new one started
as the test suite starts it, in host mode; then \`vmgrctl daemon
reexec\`. After each, the same QEMU processes must run, every group be
\`running\` and \`GroupsAdopted\` be N, or the benchmark fails. Each N
gets $AD_RUNS counted rounds after one that is not counted. After the
last round of an N its groups are deleted and a leak check (as in the
scale comparison: links, addresses, processes, libvirt domains, files,
vmgrd's open files, and processes the killed vmgrds left to the
benchmark's PID 1) must find nothing. This comparison ran from
$AD_START to $AD_END (1 min), with vmgr commit
\`$(git -C "$BENCH_TOP" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)\`; the
machine is shared, and its own 2N TCG guests count in that load.
${AD_SKIPPED:+Not measured for lack of memory: $AD_SKIPPED.
}
| N groups × VMs | measurement | median ms | p90 ms | min ms | max ms | rounds |
|---|---|---:|---:|---:|---:|---:|
$rows
"Start" is from just before the new vmgrd's exec (taken in the shell
that forks it, \`setpriv\` and \`env\` exec in between) to the first
answer to a \`Properties.Get\` of \`GroupsAdopted\` on \`org.vmgr1\` from
the new vmgrd. The poller that sends it is a small sd-bus program,
connected before the span begins: it asks every 2 ms and at once on each
\`NameOwnerChanged\`, so it adds no start-up of its own; vmgrd's "ready
on the session bus" log line came a median of
$(ad_med "n${AD_NS[0]}.kill.answer_after_ready") ms before that answer (N = ${AD_NS[0]}). \`vmgrctl daemon
reexec\` returns once the new image owns the name; it polls the bus
every 20 ms for that, so its time is up to 20 ms longer than the answer's
would be; "new image answers" is timed by the same poller, from the
call.

### Where the time goes

When each step came, from the same start (the new vmgrd's exec, or the
\`vmgrctl daemon reexec\` call), medians in ms, from vmgrd's own log
lines as they arrived (stamped by the benchmark as it read them); "(k of
$AD_RUNS)": the line came in k rounds only, "–": never. The new libvirtd's
start is "Connected to libvirtd" less the time vmgrd says it took.

$hdr
$sep
$phases
After a SIGKILL, libvirtd's own start, from its exec to its first
answer (vmgrd's "Connected to libvirtd (pid N, X ms after it was
started)"), is ${share:-–} of the median span. In the setup, the
libvirtd of a vmgrd with no domain yet took ${AD_FRESH_LIBVIRTD:-–} ms
for the same. Between "Connected to libvirtd" and the "adopted:" lines
vmgrd makes one libvirt call, \`virConnectListAllDomains\` for the
active domains (\`adopt.c\`), whose time grows with the domains
libvirtd is taking up at that moment (as it starts, it reads the status
files its predecessor left and reconnects to each QEMU's monitor, in
threads of its own); then each VM is \`running\` again, its console and
agent session taken up, and vmgrd claims its bus name. Before the new
libvirtd starts: vmgrd's exec and start-up (the lock, the state files,
the helper, the groups' dnsmasq, file servers and forwards) and, if the
old libvirtd is still there, its SIGTERM and exit, which vmgrd waits
for. After a SIGKILL the kernel sends that libvirtd SIGTERM the moment
vmgrd dies (\`PR_SET_PDEATHSIG\`), so it is mostly gone by then (it was
still there in $still); on a re-exec vmgrd's process lives on and
the old libvirtd gets its SIGTERM only from the new image.

On a re-exec, the gap from the old image's "Re-executing" line to the
new image's first line is the \`execve()\` itself, and it grows with the
VMs: the kernel closes every file descriptor of the old image there, and
closing an inotify instance that holds a watch waits for a grace period
of the kernel's fsnotify (closing 33 such instances took 120 ms on this
machine when it was quiet, against 0.1 ms for 33 without a watch). vmgrd
has one inotify instance per VM, to follow its console log
(\`grouplog.c\`): one instance for all of them, with a watch per VM (as
\`sd_event_add_inotify()\` does), would take that cost out of the
re-exec, and out of every VM's deletion. After a SIGKILL the same closes
happen as the old vmgrd exits, before the span above begins.
EOF
}
