# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced by tools/bench: collecting samples, statistics and Markdown.
#
# A sample is one measurement in milliseconds, appended as a line to
# $BENCH_SAMPLES/KEY. Keys are free-form words ("vmgr.create"); every
# comparison records its own. Statistics are computed only at report time.

# Microseconds since the epoch, from bash itself (no process is started, so
# timing a command adds nothing but the command). EPOCHREALTIME's decimal
# point follows the locale; dropping every non-digit covers both.
bench_now_us() {
        local t=$EPOCHREALTIME
        echo "${t//[!0-9]/}"
}

# bench_record KEY MS: append one sample.
bench_record() {
        echo "$2" >>"$BENCH_SAMPLES/$1"
}

# bench_record_us KEY MICROSECONDS: append one sample given in microseconds.
bench_record_us() {
        bench_record "$1" "$(printf '%d.%03d' $(($2 / 1000)) $(($2 % 1000)))"
}

# bench_time KEY CMD...: run CMD (its output goes to $BENCH_LOG) and record
# its wall time. A failing command stops the benchmark with its output.
bench_time() {
        local key=$1 t0 t1 rc=0
        shift
        t0=$(bench_now_us)
        "$@" >>"$BENCH_LOG" 2>&1 || rc=$?
        t1=$(bench_now_us)
        if [ "$rc" -ne 0 ]; then
                echo "tools/bench: '$*' failed with status $rc; its output:" >&2
                tail -n 20 "$BENCH_LOG" | sed 's/^/  /' >&2
                return 1
        fi
        bench_record_us "$key" $((t1 - t0))
}

# bench_user_record PREFIX CMD...: run CMD as the test user (its stderr goes
# to $BENCH_LOG) and record the "NAME MS" lines it prints as PREFIX.NAME, all
# or, if it fails, none: then the benchmark stops with the log's tail.
bench_user_record() {
        local prefix=$1 out rc=0
        shift
        out=$(vmgr_as_user "$@" 2>>"$BENCH_LOG") || rc=$?
        if [ "$rc" -ne 0 ]; then
                echo "tools/bench: '${*:1:3} ...' failed with status $rc; the log's end:" >&2
                tail -n 20 "$BENCH_LOG" | sed 's/^/  /' >&2
                bench_keep_evidence
                return 1
        fi
        bench_record_lines "$prefix" <<<"$out"
}

# bench_keep_evidence: copy the logs a failure needs (vmgrd's, the
# benchmark's, libvirtd's, every VM console) out of the temp dir, which goes
# when the benchmark ends, and say where.
bench_keep_evidence() {
        local dir
        dir=$(mktemp -d /tmp/vmgr-bench-evidence.XXXXXX)
        cp "$VMGR_TMP/vmgrd.log" "$BENCH_LOG" "$dir/" 2>/dev/null || true
        cp "$VMGR_TMP/run/vmgr/libvirt/libvirtd.log" "$dir/" 2>/dev/null || true
        (cd "$VMGR_TMP" && find . -name '*.log' -path '*vms*' -exec cp --parents {} "$dir/" \;) 2>/dev/null || true
        echo "tools/bench: logs and VM consoles kept in $dir" >&2
}

# bench_record_lines PREFIX: read "NAME MS" lines on stdin and record each as
# sample PREFIX.NAME.
bench_record_lines() {
        local name value
        while read -r name value; do
                bench_record "$1.$name" "$value"
        done
}

# bench_sum NEW KEY...: make NEW from the per-round sums of the KEYs' samples
# (a key given twice counts twice). All keys must have the same run count.
bench_sum() {
        local new=$1 k files=()
        shift
        for k in "$@"; do
                files+=("$BENCH_SAMPLES/$k")
        done
        paste -d ' ' "${files[@]}" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.3f\n", s }' \
                >"$BENCH_SAMPLES/$new"
}

# bench_has KEY: true if KEY has samples.
bench_has() {
        [ -s "$BENCH_SAMPLES/$1" ]
}

# bench_stats KEY: print "median p90 max n" of KEY's samples, unformatted.
# The median of an even count is the mean of the middle two; p90 is the
# nearest-rank value (the smallest sample with at least 90% at or below it).
bench_stats() {
        sort -g "$BENCH_SAMPLES/$1" | awk '
                { v[NR] = $1 }
                END {
                        n = NR
                        med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
                        r = int(0.9 * n); if (r < 0.9 * n) r++; if (r < 1) r = 1
                        printf "%.3f %.3f %.3f %d\n", med, v[r], v[n], n
                }'
}

# bench_median KEY: the median alone.
bench_median() {
        local med _
        read -r med _ < <(bench_stats "$1")
        echo "$med"
}

# bench_fmt MS: a duration for a table: two decimals below 10 ms, one above.
bench_fmt() {
        awk -v v="$1" 'BEGIN { printf (v < 10 ? "%.2f" : "%.1f"), v }'
}

# bench_row LABEL KEY: a Markdown table row "| LABEL | median | p90 | max | n |".
bench_row() {
        local label=$1 key=$2 med p90 max n
        if ! bench_has "$key"; then
                echo "| $label | – | – | – | 0 |"
                return 0
        fi
        read -r med p90 max n < <(bench_stats "$key")
        echo "| $label | $(bench_fmt "$med") | $(bench_fmt "$p90") | $(bench_fmt "$max") | $n |"
}

# bench_ratio NUM DEN: NUM's median over DEN's, like "6.3" (empty if either is missing).
bench_ratio() {
        bench_has "$1" && bench_has "$2" || return 0
        awk -v a="$(bench_median "$1")" -v b="$(bench_median "$2")" 'BEGIN { printf "%.1f", a / b }'
}

# bench_diff A B: A's median minus B's, formatted (empty if either is missing).
bench_diff() {
        bench_has "$1" && bench_has "$2" || return 0
        bench_fmt "$(awk -v a="$(bench_median "$1")" -v b="$(bench_median "$2")" 'BEGIN { print a - b }')"
}

# bench_verdict OK: "met" if OK is 1, else "**not met**".
bench_verdict() {
        if [ "$1" = 1 ]; then echo "met"; else echo "**not met**"; fi
}

# bench_at_most KEY LIMIT / bench_at_least X LIMIT: 1 or 0.
bench_at_most() {
        awk -v a="$(bench_median "$1")" -v l="$2" 'BEGIN { print (a <= l) ? 1 : 0 }'
}
bench_at_least() {
        awk -v a="$1" -v l="$2" 'BEGIN { print (a != "" && a >= l) ? 1 : 0 }'
}

# The header of a table of bench_row lines.
bench_row_header() {
        echo "| measurement | median ms | p90 ms | max ms | runs |"
        echo "|---|---:|---:|---:|---:|"
}

# bench_minus NEW A B: make NEW from the per-round differences A - B.
bench_minus() {
        paste -d ' ' "$BENCH_SAMPLES/$2" "$BENCH_SAMPLES/$3" | awk '{ printf "%.3f\n", $1 - $2 }' \
                >"$BENCH_SAMPLES/$1"
}

# bench_pct KEY P: the nearest-rank P-th percentile of KEY's samples.
bench_pct() {
        sort -g "$BENCH_SAMPLES/$1" | awk -v p="$2" '
                { v[NR] = $1 }
                END { r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1; printf "%.3f\n", v[r] }'
}

# bench_count KEY: how many samples KEY has.
bench_count() {
        if bench_has "$1"; then wc -l <"$BENCH_SAMPLES/$1"; else echo 0; fi
}

# bench_num X: a plain number for a table, without decimals above 100.
bench_num() {
        awk -v v="$1" 'BEGIN { printf (v < 10 ? "%.2f" : (v < 100 ? "%.1f" : "%.0f")), v }'
}

# bench_vmgrd_start: the test bus (once) and a fresh vmgrd on it.
bench_vmgrd_start() {
        [ -n "$VMGR_BUS_PID" ] || vmgr_start_bus
        vmgr_start_vmgrd "$@"
}

# bench_vmgrd_stop: stop vmgrd with SIGTERM, which stops its VMs, libvirtd
# and dnsmasqs; fail loudly unless it exits 0.
bench_vmgrd_stop() {
        [ -n "$VMGRD_PID" ] || return 0
        vmgr_stop_vmgrd TERM
        if [ "$VMGRD_STATUS" != 0 ]; then
                echo "tools/bench: vmgrd exited with status $VMGRD_STATUS on SIGTERM; its log:" >&2
                tail -n 20 "$VMGR_TMP/vmgrd.log" | sed 's/^/  /' >&2
                return 1
        fi
}

# bench_proc_cpu_ms PID: the process's own CPU time (user + system), in ms.
bench_proc_cpu_ms() {
        local tck
        tck=$(getconf CLK_TCK)
        # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends
        # the command name (which may hold spaces).
        sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v t="$tck" '{ printf "%.0f\n", ($12 + $13) * 1000 / t }'
}

# bench_stamp_lines FILE: copy stdin to stdout, and every line also to FILE
# after the microseconds since the epoch at which it arrived (builtins only:
# nothing is forked between a line's arrival and its stamp).
bench_stamp_lines() {
        local line t
        while IFS= read -r line; do
                t=$EPOCHREALTIME
                printf '%s %s\n' "${t//[!0-9]/}" "$line" >>"$1"
                printf '%s\n' "$line"
        done
}

# bench_stamp_of FILE TEXT: the stamp of FILE's first line holding TEXT
# (empty if none).
bench_stamp_of() {
        awk -v s="$2" 'index($0, s) { print $1; exit }' "$1"
}

# bench_vmgrd_start_timed KEY [ARG...]: bench_vmgrd_start, timing vmgrd's
# start from its own log lines as they arrive: KEY.ready from forking it to
# "ready on the session bus" (printed once its bus name is claimed, the
# moment it answers), KEY.mode to its "Network mode:" line (the mode is
# settled and nothing is made yet) and, in namespace mode, KEY.holder from
# that line to "Groups live in namespaces" (the namespaces made, the holder
# set up and answering). Fails, with the log's tail, if vmgrd does not
# become ready within 15 s.
bench_vmgrd_start_timed() {
        local key=$1 stamps=$VMGR_TMP/vmgrd-start.stamps t0 t_mode t_holder t_ready i fd
        shift
        [ -n "$VMGR_BUS_PID" ] || vmgr_start_bus
        echo "=== vmgrd $* started $(date +%T.%N) (timed)" >>"$VMGR_TMP/vmgrd.log"
        : >"$stamps"
        # The stamping reader is this shell's child, not vmgrd's: vmgrd
        # reaps and kills every descendant of its own.
        exec {fd}> >(bench_stamp_lines "$stamps" >>"$VMGR_TMP/vmgrd.log")
        vmgr_as_argv "$VMGR_USER"
        t0=$(bench_now_us)
        "${VMGR_AS_ARGV[@]}" "$VMGRD" --netadm "$VMGR_NETADM" \
                --state-dir "$VMGR_TMP/state/vmgr" --runtime-dir "$VMGR_TMP/run/vmgr" \
                "$@" </dev/null >>"$VMGR_TMP/vmgrd.log" 2>&"$fd" &
        VMGRD_PID=$!
        exec {fd}>&-
        for ((i = 0; i < 1500; i++)); do
                t_ready=$(bench_stamp_of "$stamps" "ready on the session bus")
                [ -n "$t_ready" ] && break
                kill -0 "$VMGRD_PID" 2>/dev/null || break
                sleep 0.01
        done
        if [ -z "$t_ready" ] || ! vmgr_vmgrd_answers; then
                echo "tools/bench: vmgrd $* did not become ready; its log:" >&2
                tail -n 20 "$VMGR_TMP/vmgrd.log" | sed 's/^/  /' >&2
                return 1
        fi
        t_mode=$(bench_stamp_of "$stamps" "Network mode:")
        t_holder=$(bench_stamp_of "$stamps" "Groups live in namespaces")
        bench_record_us "$key.ready" $((t_ready - t0))
        bench_record_us "$key.mode" $((t_mode - t0))
        if [ -n "$t_holder" ]; then
                bench_record_us "$key.holder" $((t_holder - t_mode))
        fi
}

# A second vmgrd, beside the first: its own bus ($VMGR_TMP/bus2), state and
# runtime directories, as the same user. Set by bench_vmgrd2_start.
BENCH_BUS2_PID=
BENCH_VMGRD2_PID=

# bench_as_user2 CMD...: run CMD as the test user, on the second vmgrd's bus.
bench_as_user2() {
        vmgr_as_user env DBUS_SESSION_BUS_ADDRESS="unix:path=$VMGR_TMP/bus2" "$@"
}

# bench_vmgrd2_start [ARG...]: start the second bus (once, with the first
# bus's configuration) and a second vmgrd on it with these arguments;
# return once it answers, or fail with its log's tail after 15 s.
bench_vmgrd2_start() {
        local log=$VMGR_TMP/vmgrd2.log i
        [ -n "$VMGR_BUS_PID" ] || vmgr_start_bus
        if [ -z "$BENCH_BUS2_PID" ]; then
                sed "s|<listen>unix:path=$VMGR_TMP/bus</listen>|<listen>unix:path=$VMGR_TMP/bus2</listen>|" \
                        "$VMGR_TMP/bus.conf" >"$VMGR_TMP/bus2.conf"
                vmgr_as_argv "$VMGR_USER"
                "${VMGR_AS_ARGV[@]}" dbus-daemon --config-file="$VMGR_TMP/bus2.conf" --nofork --nopidfile \
                        --nosyslog --print-address=3 3>"$VMGR_TMP/bus2.address" 2>>"$log" &
                BENCH_BUS2_PID=$!
                for ((i = 0; i < 500; i++)); do
                        [ -s "$VMGR_TMP/bus2.address" ] && break
                        sleep 0.01
                done
        fi
        echo "=== vmgrd $* started $(date +%T.%N)" >>"$log"
        vmgr_as_argv "$VMGR_USER"
        "${VMGR_AS_ARGV[@]}" DBUS_SESSION_BUS_ADDRESS="unix:path=$VMGR_TMP/bus2" "$VMGRD" \
                --netadm "$VMGR_NETADM" --state-dir "$VMGR_TMP/state/vmgr2" --runtime-dir "$VMGR_TMP/run/vmgr2" \
                "$@" </dev/null >>"$log" 2>&1 &
        BENCH_VMGRD2_PID=$!
        for ((i = 0; i < 750; i++)); do
                bench_as_user2 busctl --user call org.vmgr1 /org/vmgr1 org.freedesktop.DBus.Peer Ping \
                        >/dev/null 2>&1 && return 0
                kill -0 "$BENCH_VMGRD2_PID" 2>/dev/null || break
                sleep 0.02
        done
        echo "tools/bench: the second vmgrd ($*) did not answer; its log:" >&2
        tail -n 20 "$log" | sed 's/^/  /' >&2
        return 1
}

# bench_vmgrd2_stop: stop the second vmgrd like bench_vmgrd_stop, then its
# bus (a later comparison's leak check counts the test user's processes).
bench_vmgrd2_stop() {
        local first=$VMGRD_PID
        [ -n "$BENCH_VMGRD2_PID" ] || return 0
        VMGRD_PID=$BENCH_VMGRD2_PID
        BENCH_VMGRD2_PID=
        vmgr_stop_vmgrd TERM
        VMGRD_PID=$first
        if [ -n "$BENCH_BUS2_PID" ]; then
                kill "$BENCH_BUS2_PID" 2>/dev/null || true
                wait "$BENCH_BUS2_PID" 2>/dev/null || true
                BENCH_BUS2_PID=
        fi
        if [ "$VMGRD_STATUS" != 0 ]; then
                echo "tools/bench: the second vmgrd exited with status $VMGRD_STATUS on SIGTERM; its log:" >&2
                tail -n 20 "$VMGR_TMP/vmgrd2.log" | sed 's/^/  /' >&2
                return 1
        fi
}

# bench_holder_pid PID: the namespace holder (comm vmgrd-netns) of vmgrd PID,
# empty in host mode.
bench_holder_pid() {
        ps -o pid=,comm= --ppid "$1" | awk '$2 == "vmgrd-netns" { print $1; exit }'
}
