# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Comparison "scale" of tools/bench: N groups of 2 VMs each created at once
# through vmgr, all waited for until ready, then all deleted, for several
# N. Measures the wall time, vmgrd's peak memory and CPU time, and the
# guests' own CPU time (their QEMUs'), which is what the wall time cannot
# beat on this machine's cores; after every round a leak check must find
# nothing of the round left (links, addresses, processes, libvirt domains,
# files under vmgrd's runtime and state directories, vmgrd's open files),
# or the benchmark fails. Sourced by tools/bench, which calls the
# bench_scale_* functions (see "Comparisons" in tools/bench) inside the
# benchmark's namespaces.
#
# BENCH_SCALE_N="1 4" (environment) measures other N than the default.

BENCH_COMPARISONS+=(scale)
BENCH_ORDER["scale"]=4

SC_PREFIX=scale
# Each group's two VMs: the default guest's kernel and initramfs with its
# kernel command line plus no_timer_check (set in the setup; see the
# report for why).
SC_SPEC=
SC_CMDLINE_EXTRA=no_timer_check
# Memory one VM of the default guest may take on the host: its 256 MiB
# (the guest touches most of it while unpacking the initramfs) and QEMU's
# own. Rounds need this for every VM plus SC_MEM_RESERVE_MIB left over.
SC_VM_MEM_MIB=320
SC_MEM_RESERVE_MIB=2048

SC_NS=()
declare -A SC_ROUNDS=()
SC_SKIPPED=
SC_BASELINE=
SC_BASELINE_FDS=
SC_ROUND=0

bench_scale_title() {
        echo "Scale: N groups × 2 VMs at once"
}

# Rounds per N: a round of N = 16 boots 32 TCG guests on this machine's
# cores and takes minutes, so every N gets the minimum number of rounds,
# and the whole benchmark stays within about 45 minutes.
sc_plan() {
        local n mem_avail need
        SC_SKIPPED=
        SC_ROUNDS=()
        if [ "$BENCH_SMOKE" = 1 ]; then
                read -r -a SC_NS <<<"${BENCH_SCALE_N:-1}"
        else
                read -r -a SC_NS <<<"${BENCH_SCALE_N:-1 4 8 16}"
        fi
        mem_avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
        local kept=()
        for n in "${SC_NS[@]}"; do
                need=$((2 * n * SC_VM_MEM_MIB + SC_MEM_RESERVE_MIB))
                if [ "$need" -gt "$mem_avail" ]; then
                        SC_SKIPPED+="${SC_SKIPPED:+; }N = $n needs about $need MiB, $mem_avail MiB were available"
                        continue
                fi
                kept+=("$n")
                if [ "$BENCH_SMOKE" = 1 ]; then
                        SC_ROUNDS[$n]=$BENCH_RUNS
                else
                        SC_ROUNDS[$n]=$BENCH_MIN_RUNS
                fi
        done
        SC_NS=("${kept[@]}")
}

# The driver runs as many rounds as the N with the most; any with fewer
# sit out the later ones.
bench_scale_runs() {
        local n max=1
        sc_plan
        for n in "${SC_NS[@]}"; do
                [ "${SC_ROUNDS[$n]}" -gt "$max" ] && max=${SC_ROUNDS[$n]}
        done
        echo "$max"
}

sc_virsh() {
        vmgr_as_user virsh -q -c "qemu:///session?socket=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/libvirt-sock" "$@"
}

# Every file and directory under vmgrd's runtime and state directories,
# sorted. libvirt's log grows and stays: it is no leak.
sc_files() {
        find "$VMGR_TMP/run/vmgr" "$VMGR_TMP/state/vmgr" -mindepth 1 ! -name libvirtd.log -printf '%p\n' 2>/dev/null |
                sort
}

# What a round left behind, one thing a line; nothing when clean.
sc_leaks() {
        local lv domains fds
        lv=$(pgrep -P "$VMGRD_PID" -x libvirtd || true)
        # lib.sh's check: vmgr's links, lo addresses, processes of the test
        # user (but vmgrd, the bus and the helper), state and group files.
        vmgr_leftovers | grep -v -x -e "process ${lv:-none} libvirtd" || true
        if [ -z "$lv" ]; then
                echo "vmgrd's libvirtd is gone"
        elif ! domains=$(sc_virsh list --all --name 2>&1); then
                echo "virsh list failed: $domains"
        else
                sed '/^$/d; s/^/libvirt domain /' <<<"$domains"
        fi
        comm -13 "$SC_BASELINE" <(sc_files) | sed 's/^/file /'
        fds=$(find "/proc/$VMGRD_PID/fd" -mindepth 1 | wc -l)
        if [ "$fds" -gt "$SC_BASELINE_FDS" ]; then
                echo "vmgrd has $fds open files, $SC_BASELINE_FDS before the rounds:"
                find "/proc/$VMGRD_PID/fd" -mindepth 1 -printf '  %f -> %l\n'
        fi
}

bench_scale_setup() {
        sc_plan
        bench_vmgrd_start
        # One VM through vmgr first (not timed): vmgrd's libvirtd starts,
        # the default guest is built, the accelerator probed. What exists
        # after it is deleted is the baseline of the leak check.
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss \
                "$SC_PREFIX-warm" '{"vms":[{"name":"a"}]}' >>"$BENCH_LOG"
        sc_make_spec "$(pgrep -u "$VMGR_USER" -f "^/usr/bin/qemu-system-x86_64 -name guest=$SC_PREFIX-warm:a," | head -n 1)"
        vmgr_as_user busctl --user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager DeleteGroup s "$SC_PREFIX-warm" \
                >>"$BENCH_LOG"
        SC_BASELINE=$VMGR_TMP/scale.files
        sc_files >"$SC_BASELINE"
        SC_BASELINE_FDS=$(find "/proc/$VMGRD_PID/fd" -mindepth 1 | wc -l)
        SC_RSS_START=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VMGRD_PID/status")
}

# sc_make_spec PID: SC_SPEC from the default guest's kernel, initramfs and
# command line as the QEMU PID (of a default VM named "a") has them.
sc_make_spec() {
        local -a a
        local i kernel="" initrd="" cmdline="" vm vms=""
        mapfile -d '' -t a <"/proc/$1/cmdline"
        for ((i = 0; i < ${#a[@]} - 1; i++)); do
                case "${a[i]}" in
                -kernel) kernel=${a[i + 1]} ;;
                -initrd) initrd=${a[i + 1]} ;;
                -append) cmdline=${a[i + 1]} ;;
                esac
        done
        if [ -z "$kernel" ] || [ -z "$initrd" ] || [[ $cmdline != *vmgr.hostname=a* ]]; then
                echo "tools/bench: cannot read the default guest from QEMU's command line: ${a[*]}" >&2
                return 1
        fi
        for vm in a b; do
                vms+="${vms:+,}{\"name\":\"$vm\",\"kernel\":\"$kernel\",\"initrd\":\"$initrd\","
                vms+="\"cmdline\":\"${cmdline/vmgr.hostname=a/vmgr.hostname=$vm} $SC_CMDLINE_EXTRA\",\"agent\":true,\"warm\":false}"
        done
        SC_SPEC="{\"vms\":[$vms]}"
        SC_CMDLINE="${cmdline/vmgr.hostname=a/vmgr.hostname=VM} $SC_CMDLINE_EXTRA"
}

# CPU time of all QEMUs of the test user, in ms, and how many there are.
sc_qemu_cpu() {
        local pid sum=0 n=0 ms
        for pid in $(pgrep -u "$VMGR_USER" -x qemu-system-x86 || true); do
                ms=$(bench_proc_cpu_ms "$pid")
                [ -n "$ms" ] || continue
                sum=$((sum + ms))
                n=$((n + 1))
        done
        echo "$sum $n"
}

# The machine's busy CPU time so far (all processes, all cores), in ms.
sc_machine_busy() {
        awk -v t="$(getconf CLK_TCK)" '$1 == "cpu" { print int(($2 + $3 + $4 + $7 + $8 + $9) * 1000 / t) }' /proc/stat
}

# sc_run N: one round of N groups; records nN.*.
sc_run() {
        local n=$1 lv cpu0 lv0 busy0 qemu nq status leaks k
        k=n$n
        lv=$(pgrep -P "$VMGRD_PID" -x libvirtd)
        # Peak RSS from here on (clear_refs 5 resets VmHWM).
        echo 5 >"/proc/$VMGRD_PID/clear_refs"
        cpu0=$(bench_proc_cpu_ms "$VMGRD_PID")
        lv0=$(bench_proc_cpu_ms "$lv")
        busy0=$(sc_machine_busy)

        bench_user_record "$k.up" "$BENCH_CLIENT" batch up --count "$n" --spec "$SC_SPEC" "$SC_PREFIX"

        # Everything is ready: what the guests took to get there.
        read -r qemu nq < <(sc_qemu_cpu)
        if [ "$nq" -ne $((2 * n)) ]; then
                echo "tools/bench: $nq QEMUs run for $n groups of 2 VMs" >&2
                return 1
        fi
        bench_record "$k.qemu_cpu" "$qemu"
        bench_record "$k.busy" $(($(sc_machine_busy) - busy0))
        bench_record "$k.vmgrd_cpu_up" $(($(bench_proc_cpu_ms "$VMGRD_PID") - cpu0))
        status=/proc/$VMGRD_PID/status
        bench_record "$k.rss_anon" "$(awk '/^RssAnon:/ { print $2 }' "$status")"
        bench_record "$k.rss_file" "$(awk '/^RssFile:/ { print $2 }' "$status")"

        bench_user_record "$k.down" "$BENCH_CLIENT" batch delete --count "$n" "$SC_PREFIX"

        bench_record "$k.hwm" "$(awk '/^VmHWM:/ { print $2 }' "$status")"
        bench_record "$k.vmgrd_cpu" $(($(bench_proc_cpu_ms "$VMGRD_PID") - cpu0))
        bench_record "$k.libvirtd_cpu" $(($(bench_proc_cpu_ms "$lv") - lv0))

        leaks=$(sc_leaks)
        if [ -n "$leaks" ]; then
                {
                        echo
                        echo "tools/bench: LEAK: after deleting $n groups of 2 VMs, this was left:"
                        sed 's/^/  /' <<<"$leaks"
                } >&2
                return 1
        fi
        bench_record "$k.leaks" 0
}

bench_scale_round() {
        local n
        if [ "$BENCH_WARMUP" = 1 ]; then
                sc_run "${SC_NS[0]}"
                return
        fi
        SC_ROUND=$((SC_ROUND + 1))
        for n in "${SC_NS[@]}"; do
                [ "$SC_ROUND" -le "${SC_ROUNDS[$n]}" ] && sc_run "$n"
        done
        return 0
}

bench_scale_finish() {
        local n
        SC_RSS_END=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VMGRD_PID/status")
        bench_vmgrd_stop
        for n in "${SC_NS[@]}"; do
                bench_minus "n$n.others_cpu" "n$n.busy" "n$n.qemu_cpu"
        done
}

# sc_med KEY: the median, formatted as a duration (ms).
sc_med() {
        bench_fmt "$(bench_median "$1")"
}

# sc_s KEY: the median in seconds, one decimal.
sc_s() {
        awk -v v="$(bench_median "$1")" 'BEGIN { printf "%.1f", v / 1000 }'
}

# sc_p90_s KEY: the p90 in seconds, one decimal.
sc_p90_s() {
        local p90 _
        read -r _ p90 _ < <(bench_stats "$1")
        awk -v v="$p90" 'BEGIN { printf "%.1f", v / 1000 }'
}

# sc_int KEY: the median as a whole number.
sc_int() {
        printf '%.0f' "$(bench_median "$1")"
}

# sc_max_s KEY: the largest sample in seconds, one decimal.
sc_max_s() {
        sort -g "$BENCH_SAMPLES/$1" | tail -n 1 | awk '{ printf "%.1f", $1 / 1000 }'
}

# sc_mib KEY: the median KiB sample in MiB, one decimal.
sc_mib() {
        awk -v v="$(bench_median "$1")" 'BEGIN { printf "%.1f", v / 1024 }'
}

bench_scale_report() {
        local n k cores wall1 cpu1 growth_ok=1 rows="" growth="" rss_ok biggest hwm_max
        cores=$(nproc)
        biggest=${SC_NS[-1]}
        wall1=$(bench_median "n${SC_NS[0]}.up.total")
        cpu1=$(bench_median "n${SC_NS[0]}.qemu_cpu")
        for n in "${SC_NS[@]}"; do
                k=n$n
                rows+="| $n × 2 | $(bench_count "$k.up.total") | $(sc_s "$k.up.total") | $(sc_p90_s "$k.up.total") | $(sc_max_s \
                        "$k.up.total") | $(sc_s "$k.up.call") | $(sc_s "$k.up.created") | $(sc_s "$k.down.total") | $(sc_s "$k.qemu_cpu") | $(awk -v c="$(bench_median \
                        "$k.qemu_cpu")" -v w="$(bench_median "$k.up.total")" -v k="$cores" 'BEGIN { printf "%.2f", w / (c / k) }') | $(sc_s \
                        "$k.others_cpu") |
"
                local wg cg
                wg=$(awk -v a="$(bench_median "$k.up.total")" -v b="$wall1" 'BEGIN { printf "%.2f", a / b }')
                cg=$(awk -v a="$(bench_median "$k.qemu_cpu")" -v b="$cpu1" 'BEGIN { printf "%.2f", a / b }')
                awk -v w="$wg" -v c="$cg" 'BEGIN { exit !(w <= c) }' || growth_ok=0
                growth+="| $n × 2 | ${wg}× | ${cg}× |
"
        done
        local mem=""
        for n in "${SC_NS[@]}"; do
                k=n$n
                mem+="| $n × 2 | $(sc_mib "$k.hwm") | $(bench_fmt "$(awk -v v="$(sort -g "$BENCH_SAMPLES/$k.hwm" | tail -n 1)" 'BEGIN { print v / 1024 }')") | $(sc_mib \
                        "$k.rss_anon") | $(sc_mib "$k.rss_file") | $(sc_int "$k.vmgrd_cpu_up") | $(sc_int \
                        "$k.vmgrd_cpu") | $(sc_int "$k.libvirtd_cpu") |
"
        done
        hwm_max=$(sort -g "$BENCH_SAMPLES/n$biggest.hwm" | tail -n 1)
        rss_ok=$(awk -v v="$(bench_median "n$biggest.hwm")" 'BEGIN { print (v <= 16384) ? 1 : 0 }')
        [ "$biggest" = 16 ] || rss_ok=0

        cat <<EOF
## $(bench_scale_title)

N groups of two VMs each (\`a\` and \`b\`; 1 vCPU and 256 MiB each, the
defaults, under TCG; the default guest's kernel and initramfs, booted with
\`$SC_CMDLINE\`, see below) created
by N \`CreateGroup\` calls sent at once on one bus connection; each group's
\`Group.WaitReady\` is sent as its CreateGroup returns; "all ready" is
when the last WaitReady returns. Then N \`DeleteGroup\` calls at once. One
vmgrd serves every round; its peak RSS is reset before each round. After
every round a leak check must find nothing (below). The first round (the
smallest N) is a warm-up and is not counted.

$(if [ "$BENCH_SMOKE" = 0 ]; then
        echo "Every N gets $BENCH_MIN_RUNS rounds, the minimum: a round of N = 16 boots 32 TCG"
        echo "guests on $cores cores and takes over a minute, and the whole \`tools/bench\`"
        echo "is to stay within about 45 minutes."
fi)
${SC_SKIPPED:+Not measured for lack of memory: $SC_SKIPPED.
}
| N groups × VMs | rounds | all ready, median s | p90 s | max s | one CreateGroup, median s | all CreateGroup returned, s | all deleted, s | guests' CPU to all ready, s | wall ÷ (guests' CPU ÷ $cores cores) | other CPU on the machine meanwhile, s |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$rows
Times are medians over the rounds but for p90 and max. CreateGroup returns
once the group's QEMUs run; vmgrd makes at most four libvirt calls at once
(its worker threads), so with many groups the last QEMUs start late, while
the first guests already boot. "Guests' CPU" is the user + system time of
every QEMU, read when the last group is ready; divided by the $cores cores it
is the shortest wall time the guests' own work allows. "Other CPU" is every other process's busy time on
the machine over the same span (\`/proc/stat\`, minus the QEMUs): vmgrd,
libvirtd, dnsmasq, and whatever else ran on the shared machine.

### Against the targets

| N | wall time growth (median, vs N = ${SC_NS[0]}) | guests' CPU growth |
|---|---:|---:|
$growth
| target | measured | |
|---|---|---|
| wall time grows no faster than the guests' own CPU need | see above | $(bench_verdict "$growth_ok") |
| vmgrd peak RSS ≤ 16 MiB at N = 16 | $(if [ "$biggest" = 16 ]; then echo "$(sc_mib n16.hwm) MiB median, $(awk -v v="$hwm_max" 'BEGIN { printf "%.1f", v / 1024 }') MiB max"; else echo "N = 16 not measured"; fi) | $(bench_verdict "$rss_ok") |

### vmgrd's memory and CPU

| N groups × VMs | peak RSS (VmHWM), median MiB | max MiB | anonymous RSS when all ready, MiB | file-backed RSS then, MiB | vmgrd CPU to all ready, ms | vmgrd CPU whole round, ms | its libvirtd's CPU whole round, ms |
|---|---:|---:|---:|---:|---:|---:|---:|
$mem
vmgrd's RSS was $SC_RSS_START KiB before the first round and $SC_RSS_END KiB after
the last. File-backed RSS is the pages of vmgrd's binary and shared
libraries it has touched (libvirt's client library and what it pulls in,
libsystemd, json-c, libxml2, nettle); anonymous RSS is vmgrd's own heap
and stacks.

### Why \`$SC_CMDLINE_EXTRA\`

With the default guest's own command line (\`console=ttyS0
vmgr.hostname=NAME\`), one of the 32 guests of N = 16 panicked early in its
boot in each of the two attempts made while writing this benchmark:
\`Kernel panic - not syncing: IO-APIC + timer doesn't work!\`. The kernel's
boot-time timer check waits a short while for timer interrupts, and a TCG
guest that gets a sixteenth of a host core does not see them in time.
The panicked guest spins in its QEMU (about 60 % of a core) and its VM stays
\`running\` without ever becoming ready, until WaitReady times out: vmgrd
has no way to see a guest panic (no pvpanic device, no \`panic=\` on the
command line). \`no_timer_check\` skips that one check and nothing else,
so the rounds measure vmgrd rather than a coin toss; the default guest's
command line should carry it too (reported, not changed here).

### The leak check

After every round, counted or not, and before the next one, the benchmark
looks for: links with a \`vmgr:\` alias or vmgr's names, fd00::/8 addresses
on \`lo\`, processes of the test user other than vmgrd, its helper, its
libvirtd and the bus, libvirt domains, files in vmgrd's state directory
and under its runtime directory's \`groups/\`, any file or directory under
vmgrd's runtime and state directories that was not there after the setup's
first VM had come and gone (libvirt's log excepted: it grows), and more open
files in vmgrd than then. Anything found fails the benchmark with a list
of it. Every round of this report passed.
EOF
}
