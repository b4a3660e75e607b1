# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/plot.sh's figure of vmgrd's cost in the scale comparison, against
# N: its peak RSS in each round (left) and its CPU time, and its libvirtd's,
# per round (right); points are rounds, lines join the medians.
# Variables (strings): data (scale.dat), median (scale-median.dat), out,
# note.

set terminal pngcairo size 1000,520 font ",10"
set output out
set encoding utf8
set multiplot layout 1,2 title "vmgrd while N groups × 2 VMs come and go" font ",12"
set label 1 note at screen 0.01, screen 0.07 font ",8" noenhanced
set bmargin 8
set border 3
set xtics nomirror
set ytics nomirror
set grid lc rgb "#dddddd"
# The measured N as ticks (1 2 4 8 16 ... or whatever was asked for).
stats data using 1 nooutput
set xrange [0:STATS_max * 1.05]
xstep = STATS_max <= 8 ? 1 : 2
set xtics xstep
# Room above the points for the key.
set offsets 0, 0, graph 0.3, 0
set yrange [0:*]
set xlabel "N groups (2 VMs each)"
set key top left

set title "vmgrd's peak RSS (VmHWM) per round"
set ylabel "MiB"
plot median using 1:4 with lines lw 2 lc rgb "#1f4e8c" title "median", \
     data using 1:5 with points pt 7 ps 0.8 lc rgb "#1f4e8c" title "each round"

unset label 1
set title "CPU time per round"
set ylabel "ms"
plot median using 1:5 with lines lw 2 lc rgb "#1f4e8c" title "vmgrd, whole round (median)", \
     data using 1:6 with points pt 7 ps 0.8 lc rgb "#1f4e8c" notitle, \
     median using 1:6 with lines lw 2 dt 2 lc rgb "#2e8b57" title "vmgrd, until all ready (median)", \
     data using 1:7 with points pt 6 ps 0.8 lc rgb "#2e8b57" notitle, \
     median using 1:7 with lines lw 2 lc rgb "#b04020" title "its libvirtd, whole round (median)", \
     data using 1:8 with points pt 5 ps 0.6 lc rgb "#b04020" notitle
unset multiplot
