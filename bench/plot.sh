#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Draw tools/bench's figures as PNG with gnuplot (Debian's gnuplot-nox: the
# plotting program made for this, no X needed).
#
# Usage: bench/plot.sh SAMPLES DIR [NOTE]
#        bench/plot.sh --redraw DIR
#        bench/plot.sh --figures NAME
#
# SAMPLES is the raw data tools/bench keeps beside its report (FILE.data/:
# one directory per comparison, one file per sample key, one sample a
# line in the order the rounds took them). From it this writes into DIR,
# for each comparison there is data for, the figure's own data as
# tab-separated .dat files (with a header saying what the columns are) and
# the PNG drawn from them; NOTE (the run's conditions: date, machine, load)
# is printed on every figure and kept in its .dat file ("# note: " line),
# so that figures of different runs in DIR each keep their own. --redraw
# draws the PNGs again from the .dat files in DIR, without the samples
# (after a change to the figures' look, say).
#
# Figures: vm-ready.png, warm-start.png and cold-boot.png (every run's time
# to ready, with a box per contender: median, quartiles, range),
# scale-ready.png (N groups × 2 VMs: every round's time to all ready
# against N, with the floor the guests' own CPU time sets) and
# scale-vmgrd.png (vmgrd's peak RSS and CPU time per round against N).
set -euo pipefail

PLOT_DIR_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
        sed -n '7,9p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2
        exit 2
}

# --figures NAME: the figures drawn for comparison NAME, one
# "FILE.png<TAB>caption" a line (tools/bench links them from its report).
if [ "${1:-}" = --figures ]; then
        case ${2:?} in
        vm-ready) printf '%s\t%s\n' vm-ready.png "Every counted run's start to ready, per contender" ;;
        warm-start) printf '%s\t%s\n' warm-start.png "Every counted run's start to ready: warm, cold, raw QEMU" ;;
        cold-boot) printf '%s\t%s\n' cold-boot.png "Every counted run's cold boot to ready, before and after" ;;
        scale)
                printf '%s\t%s\n' scale-ready.png "Time until all N groups × 2 VMs are ready, against N"
                printf '%s\t%s\n' scale-vmgrd.png "vmgrd's peak RSS and CPU time per round, against N"
                ;;
        esac
        exit 0
fi

redraw=0
if [ "${1:-}" = --redraw ]; then
        redraw=1
        [ $# -eq 2 ] || usage
        out=$2
        samples=
        note=
else
        [ $# -ge 2 ] && [ $# -le 3 ] || usage
        samples=$1
        out=$2
        note=${3:-}
        [ -d "$samples" ] || { echo "bench/plot.sh: $samples is not a directory" >&2; exit 1; }
fi
if ! command -v gnuplot >/dev/null; then
        echo "bench/plot.sh: gnuplot is missing (Debian package gnuplot-nox; tools/deps installs it)" >&2
        exit 1
fi
mkdir -p "$out"

# --- data: from the samples to the figures' .dat files ----------------------

# dist_dat FILE COMPARISON LABEL KEY [LABEL KEY...]: one row per sample of
# each KEY of COMPARISON ("x ms label round"; x numbers the contenders
# from 1, as the figure places them). Contenders without samples are left
# out; FILE is not written when none has any.
dist_dat() {
        local file=$1 cmp=$2 dir=$samples/$2 x=0 rows="" label key
        shift 2
        while [ $# -ge 2 ]; do
                label=$1 key=$2
                shift 2
                [ -s "$dir/$key" ] || continue
                x=$((x + 1))
                rows+=$(awk -v x="$x" -v l="$label" '{ printf "%d\t%s\t\"%s\"\t%d\n", x, $1, l, NR }' "$dir/$key")
                rows+=$'\n'
        done
        [ "$x" -gt 0 ] || return 0
        {
                echo "# note: $note"
                echo "# x	ms	contender	round (from tools/bench's samples in $cmp/)"
                printf '%s' "$rows"
        } >"$file"
}

# scale_dat: scale.dat, one row per round of each N, and scale-median.dat,
# one row per N with the medians, from the scale comparison's nN.* keys.
scale_dat() {
        local dir=$samples/scale n ns=() cores
        [ -d "$dir" ] || return 0
        cores=$(cat "$samples/cores" 2>/dev/null || nproc)
        mapfile -t ns < <(find "$dir" -maxdepth 1 -name 'n*.up.total' -printf '%f\n' | sed 's/^n//; s/\.up\.total$//' |
                sort -n)
        [ ${#ns[@]} -gt 0 ] || return 0
        {
                echo "# note: $note"
                echo "# N	round	all_ready_s	guests_cpu_per_core_s	vmgrd_peak_rss_mib	vmgrd_cpu_round_ms	vmgrd_cpu_to_ready_ms	libvirtd_cpu_round_ms"
                echo "# tools/bench's scale comparison: N groups × 2 VMs; guests' CPU ÷ $cores cores is the floor"
                echo "# the guests' own work sets on the wall time"
                for n in "${ns[@]}"; do
                        paste "$dir/n$n.up.total" "$dir/n$n.qemu_cpu" "$dir/n$n.hwm" "$dir/n$n.vmgrd_cpu" \
                                "$dir/n$n.vmgrd_cpu_up" "$dir/n$n.libvirtd_cpu" |
                                awk -v n="$n" -v c="$cores" 'NF == 6 {
                                        printf "%d\t%d\t%.3f\t%.3f\t%.2f\t%d\t%d\t%d\n", n, NR, $1 / 1000, $2 / c / 1000,
                                                $3 / 1024, $4, $5, $6 }'
                done
        } >"$out/scale.dat"
        # Medians per N, for the lines through the points.
        {
                echo "# N	all_ready_s	guests_cpu_per_core_s	vmgrd_peak_rss_mib	vmgrd_cpu_round_ms	vmgrd_cpu_to_ready_ms	libvirtd_cpu_round_ms (medians of scale.dat)"
                for n in "${ns[@]}"; do
                        printf '%d' "$n"
                        for col in 3 4 5 6 7 8; do
                                awk -v n="$n" -v c="$col" '!/^#/ && $1 == n { print $c }' "$out/scale.dat" | sort -g |
                                        awk '{ v[NR] = $1 } END { printf "\t%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
                        done
                        echo
                done
        } >"$out/scale-median.dat"
}

if [ "$redraw" = 0 ]; then
        # One line: it is a comment line of each .dat file.
        note=${note//$'\n'/ }
        dist_dat "$out/vm-ready.dat" vm-ready \
                "vmgr, host mode" vmgr.ready \
                "vmgr, namespace mode" ns.ready \
                "raw QEMU" raw.ready
        dist_dat "$out/warm-start.dat" warm-start \
                "vmgr, warm (clone of the template)" ws.warm.ready \
                "vmgr, cold (warm: false)" ws.cold.ready \
                "raw QEMU" ws.raw.ready
        dist_dat "$out/cold-boot.dat" cold-boot \
                "before" before.ready \
                "after" after.ready
        scale_dat
fi

# --- figures ---------------------------------------------------------------


# gp FIGURE.gp OUT.png DATA VAR=VALUE...: run one of bench/plot-*.gp with
# its variables (strings): data=DATA, out=OUT.png, the note from DATA (on
# two or three lines under the figure) and these.
gp() {
        local script=$1 png=$2 data=$3 args="" kv v note
        shift 3
        note=$(sed -n 's/^# note: //p' "$data" | head -n 1 | fold -s -w 140 | sed 's/ $//')
        for kv in "$@" "data=$data" "note=$note" "out=$png"; do
                # A gnuplot string in double quotes: \\ and \" escaped, a
                # newline written \n.
                v=${kv#*=}
                v=${v//\\/\\\\}
                v=${v//\"/\\\"}
                v=${v//$'\n'/\\n}
                args+="${kv%%=*}=\"$v\"; "
        done
        gnuplot -e "$args" "$PLOT_DIR_SRC/$script"
        echo "bench/plot.sh: wrote $png" >&2
}

drawn=0
if [ -s "$out/vm-ready.dat" ]; then
        gp plot-dist.gp "$out/vm-ready.png" "$out/vm-ready.dat" \
                "title=One VM of the default guest, start to ready (every counted run)" "log=0"
        drawn=$((drawn + 1))
fi
if [ -s "$out/warm-start.dat" ]; then
        gp plot-dist.gp "$out/warm-start.png" "$out/warm-start.dat" \
                "title=Warm start against cold boot and raw QEMU, to ready (every counted run)" "log=1"
        drawn=$((drawn + 1))
fi
if [ -s "$out/cold-boot.dat" ]; then
        gp plot-dist.gp "$out/cold-boot.png" "$out/cold-boot.dat" \
                "title=Cold boot of the default guest, before and after (every counted run)" "log=0"
        drawn=$((drawn + 1))
fi
if [ -s "$out/scale.dat" ]; then
        gp plot-scale-ready.gp "$out/scale-ready.png" "$out/scale.dat" "median=$out/scale-median.dat"
        gp plot-scale-vmgrd.gp "$out/scale-vmgrd.png" "$out/scale.dat" "median=$out/scale-median.dat"
        drawn=$((drawn + 2))
fi
if [ "$drawn" = 0 ]; then
        echo "bench/plot.sh: no data for any figure (vm-ready, warm-start, cold-boot, scale)" >&2
fi
