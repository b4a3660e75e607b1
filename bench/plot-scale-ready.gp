# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/plot.sh's figure of the scale comparison's wall time: every counted
# round's time until all N groups × 2 VMs are ready, against N, with the
# medians joined; and the floor the guests' own CPU time sets (their QEMUs'
# CPU time divided by the cores). Variables (strings): data (scale.dat),
# median (scale-median.dat), out, note.

set terminal pngcairo size 900,560 font ",10"
set output out
set encoding utf8
set title "N groups × 2 VMs created at once: time until all are ready" font ",12"
set xlabel "N groups (2 VMs each)"
set ylabel "seconds"
# The measured N as ticks (1 2 4 8 16 ... or whatever was asked for).
stats data using 1 nooutput
set xrange [0:STATS_max * 1.05]
xstep = STATS_max <= 8 ? 1 : 2
set xtics xstep
# Room above the points for the key.
set offsets 0, 0, graph 0.3, 0
set yrange [0:*]
set grid lc rgb "#dddddd"
set border 3
set xtics nomirror
set ytics nomirror
set key top left
set label 1 note at screen 0.01, screen 0.07 font ",8" noenhanced
set bmargin 8
plot median using 1:2 with lines lw 2 lc rgb "#1f4e8c" title "all ready, median", \
     data using 1:3 with points pt 7 ps 0.8 lc rgb "#1f4e8c" title "all ready, each round", \
     median using 1:3 with lines lw 2 dt 2 lc rgb "#b04020" title "guests' CPU time ÷ cores (the floor), median", \
     data using 1:4 with points pt 6 ps 0.8 lc rgb "#b04020" title "guests' CPU time ÷ cores, each round"
