#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgrd's journal follower (spec "journal": "gatewayd"; daemon/journal-follow.c)
# run by vmgr-journal-follow-client, without vmgrd, in this test's own network
# namespace:
#   - against a real systemd-journal-gatewayd serving journal files that
#     systemd-journal-remote writes from export-format entries: every entry
#     arrives once and in order, also entries added while following, while
#     gatewayd is down, across a SIGTERM and a SIGKILL of gatewayd; the
#     connection leaves from the source address given; a new follower given
#     the last cursor (a vmgrd that adopted the group) gets only what is new;
#   - against tests/http-test-server.py playing a hostile guest: endless
#     garbage, an endless flood of entries, a 64 MiB field, a cursor that
#     would add a header to the next request. Memory stays bounded, the event
#     loop never waits, a flood is read at 1 MiB/s at most, the bad cursor
#     is never sent back.
# Prints the figures (entries per second of a flood, memory, longest stall).

source "$(dirname "$0")/lib.sh"
vmgr_require_root

GATEWAYD=/lib/systemd/systemd-journal-gatewayd
REMOTE=/lib/systemd/systemd-journal-remote
if [ ! -x "$GATEWAYD" ] || [ ! -x "$REMOTE" ]; then
        echo "# skipped: needs systemd-journal-remote (tools/deps)"
        exit 77
fi
CLIENT=$VMGR_BUILD_DIR/tests/vmgr-journal-follow-client
SERVER=$VMGR_SOURCE_DIR/tests/http-test-server.py
if [ ! -x "$CLIENT" ]; then
        echo "# error: build vmgr-journal-follow-client first" >&2
        exit 1
fi

vmgr_enter_netns "$@"

T=$VMGR_TMP
J=$T/journal
mkdir -p "$J"
# The guest's address and the group's logs address, both on lo here.
GUEST=fd00:99::5
LOGS6=fd00:99:0:2::1
ip addr add "$GUEST/128" dev lo
ip addr add "$LOGS6/128" dev lo
BOOT=0123456789abcdef0123456789abcdef

# entries FIRST COUNT FILE: write entries FIRST..FIRST+COUNT-1 in the export
# format into a new journal file FILE (in $J). Monotonic time grows with the
# entry number, so that the files of one boot merge in order.
entries() {
        local first=$1 count=$2 i
        for ((i = first; i < first + count; i++)); do
                printf '__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n_HOSTNAME=guest\n' \
                        $((1764900000000000 + i)) $((1000000 + i)) "$BOOT"
                printf 'SYSLOG_IDENTIFIER=app\n_PID=42\nPRIORITY=6\nMESSAGE=entry %d\n\n' "$i"
        done | "$REMOTE" --output="$J/$3.journal" - 2>/dev/null
}

# gw_start (not in a subshell: it sets GW_PID): start gatewayd, wait until it listens.
GW_PID=
gw_start() {
        "$GATEWAYD" --directory="$J" >>"$T/gatewayd.log" 2>&1 &
        GW_PID=$!
        local i
        for ((i = 0; i < 50; i++)); do
                gw_listening && return 0
                sleep 0.1
        done
        return 1
}
gw_listening() {
        ss -Hltn 'sport = :19531' | grep -q .
}
gw_stop() {
        kill -"${1:-TERM}" "$GW_PID" 2>/dev/null || true
        wait "$GW_PID" 2>/dev/null || true
}

# wait_lines FILE N: wait up to 20 s for N LINE lines in FILE.
wait_lines() {
        local i
        for ((i = 0; i < 200; i++)); do
                [ "$(grep -c '^LINE ' "$1" || true)" -ge "$2" ] && return 0
                sleep 0.1
        done
        return 1
}

# expected FIRST LAST: the LINE lines for entries FIRST..LAST.
expected() {
        local i
        for ((i = $1; i <= $2; i++)); do
                echo "LINE journal: app[42]: entry $i"
        done
}

# stat_of FILE KEY: a number from the STATS line.
stat_of() {
        sed -n "s/^STATS.* $2=\([0-9]*\).*/\1/p" "$1"
}

# --- a real systemd-journal-gatewayd ------------------------------------------

entries 0 200 b0
gw_start || true
check "gatewayd starts" gw_listening
OUT=$T/follow.out
"$CLIENT" --source "$LOGS6" "$GUEST" 19531 >"$OUT" 2>"$T/follow.err" &
CL=$!
check "the journal's 200 entries arrive" wait_lines "$OUT" 200
check "the connection comes from the source address" \
        bash -c "ss -Htn 'dport = :19531' | grep -q '\\[$LOGS6\\]'"

entries 200 50 b1
check "entries added while following arrive" wait_lines "$OUT" 250

gw_stop TERM
entries 250 30 b2
sleep 1.5 # refused connections meanwhile: the follower retries
check_fails "gatewayd is stopped" gw_listening
gw_start || true
check "gatewayd starts again" gw_listening
check "entries added while gatewayd was stopped arrive" wait_lines "$OUT" 280
entries 280 20 b3
check "entries added after its restart arrive" wait_lines "$OUT" 300

gw_stop KILL
entries 300 20 b4
check_fails "gatewayd is killed" gw_listening
gw_start || true
check "gatewayd starts again after SIGKILL" gw_listening
check "entries after a SIGKILL of gatewayd arrive" wait_lines "$OUT" 320
sleep 1 # anything repeated would come now
kill -TERM "$CL"
wait "$CL" || true

check_eq "each entry exactly once, in order" "$(expected 0 319)" "$(grep '^LINE ' "$OUT")"
CURSOR=$(sed -n 's/^CURSOR //p' "$OUT")
check_match "the last cursor is entry 319's" "^s=[0-9a-f]+;i=[0-9a-f]+;b=$BOOT;m=[0-9a-f]+;t=[0-9a-f]+;x=[0-9a-f]+$" "$CURSOR"
CONNECTIONS=$(stat_of "$OUT" connections)
check "the follower reconnected after each gatewayd restart" test "${CONNECTIONS:-0}" -ge 3

# A vmgrd that adopted the group: a new follower from the saved cursor.
entries 320 10 b5
OUT2=$T/follow2.out
"$CLIENT" --cursor "$CURSOR" --seconds 3 "$GUEST" 19531 >"$OUT2" 2>>"$T/follow.err"
check_eq "from the saved cursor: only the entries after it" "$(expected 320 329)" "$(grep '^LINE ' "$OUT2")"
gw_stop TERM

# --- a hostile server --------------------------------------------------------

# hostile MODE SECONDS [CLIENT-OPTION...]: the follower against the server
# in MODE; its output in $T/MODE.out.
hostile() {
        local mode=$1 seconds=$2 port pid
        shift 2
        python3 "$SERVER" "$GUEST" 0 "$mode" >"$T/$mode.port" 2>"$T/$mode.requests" &
        pid=$!
        for ((i = 0; i < 50; i++)); do
                port=$(head -n 1 "$T/$mode.port" 2>/dev/null || true)
                [ -n "$port" ] && break
                sleep 0.1
        done
        "$CLIENT" --seconds "$seconds" "$@" "$GUEST" "$port" >"$T/$mode.out" 2>>"$T/follow.err"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
}

# Memory is the client's peak RSS (ASan's shadow included, about 28 MiB
# at rest); the follower keeps a fixed parser and streams the rest. ASan's
# quarantine of freed memory would grow RSS by itself: kept small here.
RSS_MAX_KIB=48000
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1
hostile journal-garbage 10
RSS=$(stat_of "$T/journal-garbage.out" maxrss_kib)
STALL=$(stat_of "$T/journal-garbage.out" max_stall_ms)
echo "# garbage for 10 s: peak RSS ${RSS} KiB, longest stall ${STALL} ms"
check "endless garbage: memory stays bounded" test "${RSS:-999999999}" -lt $RSS_MAX_KIB
check "endless garbage: the loop never waits 500 ms" test "${STALL:-999999}" -lt 500
check "endless garbage: the follower says the stream is not in the export format" \
        grep -q '^NOTICE .*not all in the journal export format' "$T/journal-garbage.out"
check "endless garbage: a cursor longer than 512 bytes is refused" \
        grep -q '^NOTICE .*without a valid cursor' "$T/journal-garbage.out"
check_eq "endless garbage: the refused cursor is not kept" "CURSOR " "$(grep '^CURSOR' "$T/journal-garbage.out")"

# The follower reads 1 MiB/s of a guest's stream (4 MiB at once): a flood
# costs vmgrd bounded CPU time. The same without that limit, for the figures.
hostile journal-flood 5
RSS=$(stat_of "$T/journal-flood.out" maxrss_kib)
STALL=$(stat_of "$T/journal-flood.out" max_stall_ms)
N=$(stat_of "$T/journal-flood.out" entries)
BYTES=$(stat_of "$T/journal-flood.out" bytes)
CPU=$(stat_of "$T/journal-flood.out" cpu_ms)
echo "# flood for 5 s: $N entries, $BYTES bytes read, ${CPU} ms CPU, peak RSS ${RSS} KiB, longest stall ${STALL} ms"
check "a flood of entries: memory stays bounded" test "${RSS:-999999999}" -lt $RSS_MAX_KIB
check "a flood of entries: the loop never waits 500 ms" test "${STALL:-999999}" -lt 500
check "a flood of entries: at most 1 MiB/s is read (4 MiB at once)" test "${BYTES:-999999999}" -le $((10 * 1024 * 1024))
check "a flood of entries: the entries read are handed over" test "${N:-0}" -ge 50000
hostile journal-flood 5 --read-rate 1000000000
N=$(stat_of "$T/journal-flood.out" entries)
CPU=$(stat_of "$T/journal-flood.out" cpu_ms)
echo "# flood for 5 s, no read limit: $N entries ($((N / 5)) per second), ${CPU} ms CPU"

hostile journal-bigbinary 8 --read-rate 1000000000
RSS=$(stat_of "$T/journal-bigbinary.out" maxrss_kib)
echo "# a 64 MiB field: peak RSS ${RSS} KiB"
check "a 64 MiB field: memory stays bounded" test "${RSS:-999999999}" -lt $RSS_MAX_KIB
check "a 64 MiB field: the entry after it arrives" grep -qx 'LINE journal: after: after the big one' \
        "$T/journal-bigbinary.out"

hostile journal-badcursor 3
check "a cursor with CR LF: its entry is still logged" grep -qx 'LINE journal: t: bad cursor' "$T/journal-badcursor.out"
check "a cursor with CR LF: the next request resumes from the last good cursor" \
        grep -q "Range: entries=s=good;i=1:1:" "$T/journal-badcursor.requests"
check_fails "a cursor with CR LF: it never reaches a request" grep -q "X-Injected" "$T/journal-badcursor.requests"

check_empty "no sanitizer reports from the follower" "$(grep -E -A 20 'Sanitizer|runtime error:' "$T/follow.err" || true)"
vmgr_finish
