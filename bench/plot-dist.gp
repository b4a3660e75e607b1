# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/plot.sh's figure of start times: every counted run of each
# contender as a point (spread sideways so that equal times stay
# visible) over a box of its runs (median, quartiles; whiskers to the
# extremes). Variables (strings): data (x, ms, "label", round rows), out,
# title, note, log ("1": a logarithmic time axis, for contenders an order
# of magnitude apart).

set terminal pngcairo size 900,560 font ",10"
set output out
set encoding utf8
stats data using 1 nooutput
n = int(STATS_max)
set xrange [0.4:n + 0.6]
set title title font ",12"
set ylabel "start → ready (ms)"
if (log eq "1") {
        set logscale y
        set ytics nomirror
        # Labels at 1, 2 and 5 of each decade: one label a decade is too
        # few to read a time off.
        set ytics add (20, 50, 200, 500, 2000, 5000, 20000, 50000)
        set mytics 10
} else {
        set yrange [0:*]
}
set grid ytics mytics lc rgb "#dddddd"
set border 3
set xtics nomirror scale 0
set ytics nomirror
unset key
set style boxplot nooutliers range 1.5 separation 1 labels x
set style fill solid 0.25 border lc rgb "#555555"
set boxwidth 0.5
set jitter spread 0.25
set label 1 note at screen 0.01, screen 0.07 font ",8" noenhanced
set bmargin 8
plot data using (1):2:(0.5):3 with boxplot lc rgb "#8fb0d8", \
     data using 1:2 with points pt 7 ps 0.8 lc rgb "#1f4e8c"
