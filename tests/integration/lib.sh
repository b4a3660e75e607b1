# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced by every integration test. A test runs as root and goes:
#
#     source "$(dirname "$0")/lib.sh"
#     vmgr_require_root
#     vmgr_enter_netns "$@"     # private net/mount/pid namespaces, temp dir, cleanup
#     vmgr_start_bus
#     vmgr_start_vmgrd
#     check "..." vmgrctl_as_user group create g1
#     vmgr_finish
#
# Everything the test starts (bus, vmgrd, its helper and dnsmasq, probe
# namespaces) lives inside namespaces the test made, and dies with them.
# Output follows TAP's "ok - NAME" / "not ok - NAME" lines.
#
# VMGR_NET_MODE (host or namespace, default host) is the network mode vmgrd
# runs in; meson runs most tests once in each (NAME and NAME@namespace).
#   host:      the test user is vmgr-test, a member of group vmgr, and the
#              helper is the setcap'd one: groups live in the test's network
#              namespace.
#   namespace: the test user is vmgr-ns, in no group vmgr, and the helper a
#              copy without file capabilities: vmgrd makes its own user,
#              network and PID namespaces (held by its child vmgrd-netns)
#              and every group lives there. vmgr_netns_exec runs a command
#              there, in both modes.

set -euo pipefail
# The test user reads files root writes here (bus config, probe scripts).
umask 022

VMGR_SOURCE_DIR=${VMGR_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
VMGR_BUILD_DIR=${VMGR_BUILD_DIR:-$VMGR_SOURCE_DIR/build}
VMGR_DESTDIR=$VMGR_BUILD_DIR/destdir
VMGRD=$VMGR_DESTDIR/usr/bin/vmgrd
VMGRCTL=$VMGR_DESTDIR/usr/bin/vmgrctl
VMGR_NETADM=$VMGR_DESTDIR/usr/libexec/vmgr-netadm
VMGR_NET_MODE=${VMGR_NET_MODE:-host}
# VMGR_USER runs vmgrd; VMGR_USER2 is a second user of the same kind, for
# the tests that run two vmgrds side by side.
case $VMGR_NET_MODE in
host)
        VMGR_USER=${VMGR_USER:-vmgr-test}
        VMGR_USER2=${VMGR_USER2:-vmgr-test2}
        ;;
namespace)
        VMGR_USER=${VMGR_USER:-vmgr-ns}
        VMGR_USER2=${VMGR_USER2:-vmgr-ns2}
        ;;
*)
        echo "# error: VMGR_NET_MODE is '$VMGR_NET_MODE'; it must be host or namespace" >&2
        exit 1
        ;;
esac

VMGR_TMP=
VMGRD_PID=
VMGRD_STATUS=
VMGR_BUS_PID=
# The test bus's address; empty: unix:path=$VMGR_TMP/bus (vmgr_bus_address).
VMGR_BUS_ADDRESS=
VMGR_LOG_SHOWN=
# Where vmgr_read_failed keeps failed reads until the next check.
VMGR_READ_FAILURES=
VMGR_PASSED=0
VMGR_FAILED=0
VMGR_PEER_NS=()
# Network namespaces ("net:[INODE]") of every holder seen, by user: once its
# vmgrd has stopped, no process may still be in one or hold it open.
declare -A VMGR_HOLDER_NETNS=()

# Exit 77 (meson's "skipped") unless running as root.
vmgr_require_root() {
        if [ "$(id -u)" -ne 0 ]; then
                echo "# skipped: integration tests need root (namespaces, test users)"
                exit 77
        fi
}

# Re-exec the calling script, with its arguments, in fresh network, mount and
# PID namespaces; there, bring lo up, remount /sys so it shows this network
# namespace, and create the temp dir $VMGR_TMP with its cleanup trap.
# The script is PID 1 of its namespace: orphans (a dnsmasq whose vmgrd was
# killed) are reparented to it and reaped by bash, and when it exits the
# kernel kills whatever is left. File capabilities of the helper still apply:
# the new network namespace belongs to the initial user namespace.
vmgr_enter_netns() {
        if [ "$$" -ne 1 ] || [ "${VMGR_IN_NETNS:-}" != 1 ]; then
                VMGR_IN_NETNS=1 exec unshare --net --mount --pid --fork --mount-proc \
                        --propagation private bash "$0" "$@"
        fi
        mount -t sysfs sysfs /sys
        ip link set lo up

        VMGR_TMP=$(mktemp -d /tmp/vmgr-test.XXXXXX)
        chmod 0755 "$VMGR_TMP"
        # Not under $VMGR_TMP's name at the time of the read: tests switch
        # VMGR_TMP to run commands as a second user.
        VMGR_READ_FAILURES=$VMGR_TMP/read-failures
        mkdir -m 0700 "$VMGR_TMP/run" "$VMGR_TMP/state" "$VMGR_TMP/home"
        chown "$VMGR_USER:" "$VMGR_TMP" "$VMGR_TMP/run" "$VMGR_TMP/state" "$VMGR_TMP/home"
        trap vmgr_cleanup EXIT
        vmgr_policy_private
        if [ "$VMGR_NET_MODE" = namespace ]; then
                vmgr_namespace_mode_setup
        fi
        # A signal from meson's timeout ends the test through the EXIT trap.
        trap 'exit 143' TERM INT
        # Under set -e, say where a setup step failed.
        trap 'echo "# error: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR
}

# EXIT trap: stop vmgrd gracefully (so sanitizers report), then kill
# everything else in this PID namespace, drop probe namespaces, remove the
# temp dir. Keeps the script's exit status.
vmgr_cleanup() {
        local rc=$?
        set +e
        trap - ERR
        # Killed by meson's timeout or stopped by a failing setup step: the
        # daemon's log is the first thing to read.
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -z "$VMGR_LOG_SHOWN" ]; then
                vmgr_show_log
        fi
        [ -n "$VMGRD_PID" ] && vmgr_stop_vmgrd
        # As PID 1 of the namespace, kill -1 reaches every other process in it.
        {
                kill -KILL -1
                wait
        } 2>/dev/null
        local ns
        for ns in "${VMGR_PEER_NS[@]}"; do
                ip netns delete "$ns" 2>/dev/null
        done
        umount /etc 2>/dev/null
        # vmgrd's short socket directories (daemon/sockdir.h) that lead into
        # this test's runtime directories: one killed and not started again
        # leaves its own.
        local d
        for d in /tmp/vmgrd-??????; do
                [ -n "$VMGR_TMP" ] && [[ $(readlink "$d/r" 2>/dev/null) == "$VMGR_TMP"/* ]] && rm -rf "$d"
        done
        [ -n "$VMGR_TMP" ] && umount "$VMGR_TMP/etc" 2>/dev/null
        [ -n "$VMGR_TMP" ] && rm -rf "$VMGR_TMP"
        exit "$rc"
}

# Namespace mode's conditions, made and checked before anything runs: the
# users are in no group vmgr (the helper's policy admits neither) and the
# helper is a copy without file capabilities (cp drops the xattr), so
# nothing the test shows can come from a privilege the mode must not need.
vmgr_namespace_mode_setup() {
        local u
        for u in "$VMGR_USER" "$VMGR_USER2"; do
                if ! id -u "$u" >/dev/null 2>&1; then
                        echo "# error: user $u does not exist (tools/check creates it: vmgr_setup_users)" >&2
                        exit 1
                fi
                if id -nG "$u" | tr ' ' '\n' | grep -qx vmgr; then
                        echo "# error: namespace mode runs as users outside group vmgr, but $u is a member" >&2
                        exit 1
                fi
        done
        cp "$VMGR_NETADM" "$VMGR_TMP/vmgr-netadm"
        chmod 0755 "$VMGR_TMP/vmgr-netadm"
        VMGR_NETADM=$VMGR_TMP/vmgr-netadm
        local caps
        caps=$(getcap "$VMGR_NETADM")
        if [ -n "$caps" ]; then
                echo "# error: the helper's copy kept capabilities: $caps" >&2
                exit 1
        fi
}

# The helper's policy file, /etc/vmgr/netadm.conf, is compiled in and the
# helper refuses to run without it. Give the test its own: shadow /etc with
# an overlay in the test's mount namespace (whether or not the host has
# /etc/vmgr), so a test never reads nor changes the host's policy. The
# default policy allows group vmgr, the shipped pools and the default limits.
vmgr_policy_private() {
        mkdir "$VMGR_TMP/etc"
        mount -t tmpfs -o mode=0755 tmpfs "$VMGR_TMP/etc"
        mkdir "$VMGR_TMP/etc/upper" "$VMGR_TMP/etc/work"
        mount -t overlay overlay -o "lowerdir=/etc,upperdir=$VMGR_TMP/etc/upper,workdir=$VMGR_TMP/etc/work" /etc
        rm -rf /etc/vmgr
        mkdir -m 0755 /etc/vmgr
        vmgr_policy_set 'ipv4_pool = 10.0.0.0/8' 'ipv6_pool = fd00::/8'
}

# vmgr_policy_set LINE...: make the test's policy file exactly these lines
# (root:root 0644, as the helper demands). A helper reads it at its start.
vmgr_policy_set() {
        printf '%s\n' "# the test's own policy (tests/integration/lib.sh)" "$@" >/etc/vmgr/netadm.conf.new
        chmod 0644 /etc/vmgr/netadm.conf.new
        mv /etc/vmgr/netadm.conf.new /etc/vmgr/netadm.conf
}

# Set VMGR_AS_ARGV to the command prefix that runs a command as user $1 with a
# clean environment pointing at the test's bus and directories (sanitizer
# settings pass through). setpriv and env exec, so "${VMGR_AS_ARGV[@]}" cmd &
# leaves the command's own pid in $!.
vmgr_as_argv() {
        local user=$1 v
        VMGR_AS_ARGV=(
                setpriv --reuid "$user" --regid "$(id -g "$user")" --init-groups --reset-env
                env
                DBUS_SESSION_BUS_ADDRESS="$(vmgr_bus_address)"
                XDG_RUNTIME_DIR="$VMGR_TMP/run"
                XDG_STATE_HOME="$VMGR_TMP/state"
                HOME="$VMGR_TMP/home"
        )
        for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
                [ -n "${!v:-}" ] && VMGR_AS_ARGV+=("$v=${!v}")
        done
        return 0
}

# Run a command as user $1 (see vmgr_as_argv).
vmgr_as() {
        vmgr_as_argv "$1"
        "${VMGR_AS_ARGV[@]}" "${@:2}"
}

# Run a command as the test user.
vmgr_as_user() {
        vmgr_as "$VMGR_USER" "$@"
}

# vmgrctl / busctl --user as the test user, against the test's bus.
vmgrctl_as_user() {
        vmgr_as_user "$VMGRCTL" "$@"
}
busctl_as_user() {
        vmgr_as_user busctl --user "$@"
}

# The address of the test's bus: $VMGR_BUS_ADDRESS if a test set one (an
# abstract socket, say), else the socket file $VMGR_TMP/bus.
vmgr_bus_address() {
        echo "${VMGR_BUS_ADDRESS:-unix:path=$VMGR_TMP/bus}"
}

# The bus's default policy: every send, receive, name and eavesdropping.
VMGR_BUS_POLICY_OPEN='  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>'

# vmgr_start_bus [POLICY]: start a private dbus-daemon as the test user,
# listening on vmgr_bus_address, and export DBUS_SESSION_BUS_ADDRESS. Any local
# user may connect (the tests need other users to reach vmgrd to check its
# own access control); POLICY, the <policy> elements of the bus's config,
# defaults to $VMGR_BUS_POLICY_OPEN.
vmgr_start_bus() {
        local policy=${1:-$VMGR_BUS_POLICY_OPEN}
        cat >"$VMGR_TMP/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>$(vmgr_bus_address)</listen>
  <auth>EXTERNAL</auth>
$policy
</busconfig>
EOF
        vmgr_as_argv "$VMGR_USER"
        # Empty before the start: a previous bus's address in there would
        # make the wait below end before this bus listens.
        : >"$VMGR_TMP/bus.address"
        "${VMGR_AS_ARGV[@]}" dbus-daemon --config-file="$VMGR_TMP/bus.conf" --nofork --nopidfile \
                --nosyslog --print-address=3 3>"$VMGR_TMP/bus.address" 2>"$VMGR_TMP/bus.log" &
        VMGR_BUS_PID=$!
        # The address is printed once the socket listens.
        local i
        for ((i = 0; i < 500; i++)); do
                [ -s "$VMGR_TMP/bus.address" ] && break
                kill -0 "$VMGR_BUS_PID" 2>/dev/null || break
                sleep 0.01
        done
        if [ ! -s "$VMGR_TMP/bus.address" ]; then
                echo "# error: dbus-daemon did not start:" >&2
                cat "$VMGR_TMP/bus.log" >&2
                return 1
        fi
        [ -S "$VMGR_TMP/bus" ] && chmod 0666 "$VMGR_TMP/bus"
        DBUS_SESSION_BUS_ADDRESS=$(vmgr_bus_address)
        export DBUS_SESSION_BUS_ADDRESS
}

# True if org.vmgr1 answers a Peer.Ping on the test bus.
vmgr_vmgrd_answers() {
        busctl_as_user call org.vmgr1 /org/vmgr1 org.freedesktop.DBus.Peer Ping >/dev/null 2>&1
}

# The --network-mode arguments for the test's mode: none in host mode from a
# vmgrd that predates the option (host is all it knows).
vmgr_mode_args() {
        VMGR_MODE_ARGS=()
        if [ "$VMGR_NET_MODE" = namespace ] || "$VMGRD" --help 2>&1 | grep -q -e '--network-mode'; then
                VMGR_MODE_ARGS=(--network-mode "$VMGR_NET_MODE")
        fi
}

# Start vmgrd as the test user with the test's helper, state and runtime dirs
# and network mode (extra arguments are passed on: a --network-mode among
# them is the mode instead; VMGR_DEFAULT_MODE=1 in the caller's environment
# leaves the mode to vmgrd), logging to $VMGR_TMP/vmgrd.log; return once
# org.vmgr1 answers, in the mode it was given (a test must not pass in the
# other mode unnoticed) and, in namespace mode, with its namespace holder
# running; or fail with the log's tail after 15 s.
vmgr_start_vmgrd() {
        echo "=== vmgrd $* started $(date +%T.%N)" >>"$VMGR_TMP/vmgrd.log"
        local expected= a prev=
        vmgr_mode_args
        [ ${#VMGR_MODE_ARGS[@]} -gt 0 ] && expected=$VMGR_NET_MODE
        if [ "${VMGR_DEFAULT_MODE:-0}" = 1 ]; then
                VMGR_MODE_ARGS=()
                expected=
        fi
        for a in "$@"; do
                case $prev:$a in
                --network-mode:*) VMGR_MODE_ARGS=() expected=$a ;;
                *:--network-mode=*) VMGR_MODE_ARGS=() expected=${a#*=} ;;
                esac
                prev=$a
        done
        vmgr_as_argv "$VMGR_USER"
        "${VMGR_AS_ARGV[@]}" "$VMGRD" --netadm "$VMGR_NETADM" "${VMGR_MODE_ARGS[@]}" \
                --state-dir "$VMGR_TMP/state/vmgr" --runtime-dir "$VMGR_TMP/run/vmgr" \
                "$@" </dev/null >>"$VMGR_TMP/vmgrd.log" 2>&1 &
        VMGRD_PID=$!
        local i mode
        for ((i = 0; i < 750; i++)); do
                if vmgr_vmgrd_answers; then
                        mode=$(busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager NetworkMode 2>&1) ||
                                mode=
                        if [ -n "$expected" ] && [ "$mode" != "s \"$expected\"" ]; then
                                echo "# error: vmgrd was started with --network-mode $expected, but its NetworkMode is: $mode" >&2
                                return 1
                        fi
                        [ "$mode" = 's "namespace"' ] || return 0
                        vmgr_holder_remember && return 0
                        echo "# error: vmgrd answers but has no child vmgrd-netns holding its namespaces; its log:" >&2
                        tail -n 30 "$VMGR_TMP/vmgrd.log" | sed 's/^/#   /' >&2
                        return 1
                fi
                if ! kill -0 "$VMGRD_PID" 2>/dev/null; then
                        local rc=0
                        wait "$VMGRD_PID" || rc=$?
                        VMGRD_PID=
                        echo "# error: vmgrd exited with status $rc before answering; its log:" >&2
                        tail -n 30 "$VMGR_TMP/vmgrd.log" | sed 's/^/#   /' >&2
                        return 1
                fi
                sleep 0.02
        done
        echo "# error: vmgrd did not answer on the bus within 15 s; its log:" >&2
        tail -n 30 "$VMGR_TMP/vmgrd.log" | sed 's/^/#   /' >&2
        return 1
}

# Stop vmgrd with signal $1 (default TERM), wait up to 10 s for it (then
# SIGKILL) and set VMGRD_STATUS to its exit status. Not in a subshell: only
# this shell can wait for its child. stderr is quiet meanwhile, or bash
# reports a job killed by a signal ("Killed ...") as if it were an error.
vmgr_stop_vmgrd() {
        local sig=${1:-TERM} pid=$VMGRD_PID rc=0 i
        [ -n "$pid" ] || return 0
        VMGRD_PID=
        {
                kill "-$sig" "$pid" || true
                for ((i = 0; i < 500; i++)); do
                        kill -0 "$pid" || break
                        # A zombie has exited; wait collects it below.
                        [ "$(ps -o stat= -p "$pid")" = Z ] && break
                        sleep 0.02
                done
                [ "$i" -lt 500 ] || kill -KILL "$pid"
                wait "$pid" || rc=$?
        } 2>/dev/null
        VMGRD_STATUS=$rc
}

# --- a second user, B, with a vmgrd of its own -------------------------------
# For the tests that run two vmgrds side by side: B is VMGR_USER2, with its
# own bus, runtime and state directories under $VMGR_TMP/b; in namespace
# mode its vmgrd makes namespaces of its own.

VMGR_B_TMP=
VMGR_B_VMGRD_PID=
VMGR_B_BUS_PID=
VMGR_B_STATUS=

# as_b CMD...: run a lib.sh function (or any command) for user B: lib.sh's
# globals point at B's user, directories, bus and vmgrd meanwhile, and what
# the command sets in them (a started vmgrd's pid, a stopped one's status)
# is kept for B in VMGR_B_*.
as_b() {
        local VMGR_TMP=$VMGR_B_TMP VMGR_USER=$VMGR_USER2 VMGRD_PID=$VMGR_B_VMGRD_PID VMGR_BUS_PID=$VMGR_B_BUS_PID
        local VMGRD_STATUS='' DBUS_SESSION_BUS_ADDRESS=${DBUS_SESSION_BUS_ADDRESS:-} rc=0
        "$@" || rc=$?
        VMGR_B_VMGRD_PID=$VMGRD_PID
        VMGR_B_BUS_PID=$VMGR_BUS_PID
        VMGR_B_STATUS=$VMGRD_STATUS
        return "$rc"
}

# Make B's directories, then start B's bus and vmgrd (vmgr_start_bus,
# vmgr_start_vmgrd as B).
vmgr_start_user_b() {
        VMGR_B_TMP=$VMGR_TMP/b
        mkdir -m 0755 "$VMGR_B_TMP"
        mkdir -m 0700 "$VMGR_B_TMP/run" "$VMGR_B_TMP/state" "$VMGR_B_TMP/home"
        chown "$VMGR_USER2:" "$VMGR_B_TMP" "$VMGR_B_TMP/run" "$VMGR_B_TMP/state" "$VMGR_B_TMP/home"
        as_b vmgr_start_bus
        as_b vmgr_start_vmgrd
}

# Stop B's vmgrd with SIGTERM: it must exit 0, with no sanitizer report in
# its log. After a failed check, show the tail of that log.
vmgr_stop_user_b() {
        as_b vmgr_stop_vmgrd TERM
        check_eq "B's vmgrd exits 0 on SIGTERM" 0 "$VMGR_B_STATUS"
        check_empty "no sanitizer reports from B's vmgrd" "$(as_b vmgr_sanitizer_reports)"
        if [ "$VMGR_FAILED" -gt 0 ]; then
                echo "# B's vmgrd log (last 40 lines):"
                tail -n 40 "$VMGR_B_TMP/vmgrd.log" 2>/dev/null | sed 's/^/#   /'
        fi
}

# --- the namespace where the groups live ----------------------------------

# Print the pid of the running vmgrd's namespace holder (its child with comm
# vmgrd-netns); fail if there is none.
vmgr_holder_pid() {
        [ -n "$VMGRD_PID" ] || return 1
        local pid
        # vmgrd's child, or the one it attached to when it adopted the
        # groups of a vmgrd that died (the user's only holder).
        pid=$(pgrep -P "$VMGRD_PID" -x vmgrd-netns | head -n 1) ||
                pid=$(pgrep -u "$VMGR_USER" -x vmgrd-netns | head -n 1) || return 1
        [ -n "$pid" ] || return 1
        echo "$pid"
}

# Wait up to 5 s for the running vmgrd's holder and remember its network
# namespace for vmgr_leftovers (in VMGR_HOLDER_NETNS[$VMGR_USER]).
vmgr_holder_remember() {
        local i pid ns
        for ((i = 0; i < 250; i++)); do
                if pid=$(vmgr_holder_pid) && ns=$(readlink "/proc/$pid/ns/net"); then
                        case " ${VMGR_HOLDER_NETNS[$VMGR_USER]:-} " in
                        *" $ns "*) ;;
                        *) VMGR_HOLDER_NETNS[$VMGR_USER]+=" $ns" ;;
                        esac
                        return 0
                fi
                sleep 0.02
        done
        return 1
}

# vmgr_netns_exec CMD...: run CMD (as root) in the network namespace where
# the running vmgrd's groups live: the test's own in host mode, the holder's
# in namespace mode (root of the initial user namespace may enter it). Only
# the network namespace changes: files, users and /run/netns stay the
# test's. nsenter execs CMD, so "vmgr_netns_exec CMD &" is not needed: use
# "${VMGR_NETNS_ARGV[@]}" CMD & (see vmgr_netns_argv) for CMD's own pid.
vmgr_netns_exec() {
        vmgr_netns_argv || return 1
        "${VMGR_NETNS_ARGV[@]}" "$@"
}

# Set VMGR_NETNS_ARGV to the prefix vmgr_netns_exec puts before a command:
# nsenter into the holder's network namespace if vmgrd has a holder (a test
# may start vmgrd in the other mode), nothing if not (an error in a
# namespace-mode test).
vmgr_netns_argv() {
        VMGR_NETNS_ARGV=()
        local holder
        if holder=$(vmgr_holder_pid); then
                VMGR_NETNS_ARGV=(nsenter -t "$holder" -n --)
                return 0
        fi
        [ "$VMGR_NET_MODE" = namespace ] || return 0
        echo "# error: no namespace holder (vmgrd-netns) of vmgrd ${VMGRD_PID:-(not running)}" >&2
        return 1
}

# Print the pid, in the test's PID namespace, of the process that vmgrd's
# namespace knows as pid $1 (what a pid file there holds): $1 itself in
# host mode (no holder); nothing if there is no such process.
vmgr_pid_outside() {
        local holder ns p nspid
        if ! holder=$(vmgr_holder_pid); then
                echo "$1"
                return 0
        fi
        ns=$(readlink "/proc/$holder/ns/pid") || return 0
        for p in $holder $(pgrep -u "$VMGR_USER"); do
                [ "$(readlink "/proc/$p/ns/pid" 2>/dev/null)" = "$ns" ] || continue
                nspid=$(sed -n 's/^NSpid:.*[[:space:]]\([0-9]*\)$/\1/p' "/proc/$p/status" 2>/dev/null)
                [ "$nspid" = "$1" ] && echo "$p" && return 0
        done
        return 0
}

# vmgr_read_failed WHAT: a read of vmgrd's state that a check relies on
# failed: say so on stderr, keep it for the next check (vmgr_ok fails that
# check, so that "expected empty" cannot pass on a read that broke), return
# 1. The record is a file: the read usually runs in a command substitution.
vmgr_read_failed() {
        echo "# error: $1" >&2
        [ -n "${VMGR_READ_FAILURES:-}" ] && echo "$1" >>"$VMGR_READ_FAILURES"
        return 1
}

# Print the failed reads kept since the last check, and forget them.
vmgr_take_read_failures() {
        [ -n "${VMGR_READ_FAILURES:-}" ] && [ -e "$VMGR_READ_FAILURES" ] || return 0
        cat "$VMGR_READ_FAILURES"
        rm -f "$VMGR_READ_FAILURES"
}

# Object path of group $1, from GetGroup: empty if vmgrd says there is no
# such group; any other failure (no vmgrd, no bus) is a failed read
# (vmgr_read_failed), so that "the group is gone" cannot pass on it.
vmgr_group_path() {
        local out
        if ! out=$(busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager GetGroup s "$1" 2>&1); then
                [[ $out == *"no group '$1'"* ]] && return 0
                vmgr_read_failed "GetGroup $1 failed: $out"
                return 1
        fi
        out=${out#o \"}
        echo "${out%\"}"
}

# Value of property $2 of the group at path $1 as text: a string without its
# quotes, a number as is. If it cannot be read: nothing on stdout, a failed
# read (vmgr_read_failed), status 1.
vmgr_group_prop() {
        local out
        if ! out=$(busctl_as_user get-property org.vmgr1 "$1" org.vmgr1.Group "$2" 2>&1); then
                vmgr_read_failed "cannot read property $2 of group '$1': $out"
                return 1
        fi
        out=${out#* }
        out=${out#\"}
        echo "${out%\"}"
}

# Call Manager method $1 with string arguments $2...; print the D-Bus error
# name it fails with, nothing if it succeeds. (busctl prints only the
# message of an error, dbus-send also its name.)
vmgr_call_error() {
        local method=$1 a out
        local args=()
        for a in "${@:2}"; do
                args+=("string:$a")
        done
        out=$(vmgr_as_user dbus-send --session --print-reply --dest=org.vmgr1 /org/vmgr1 \
                "org.vmgr1.Manager.$method" "${args[@]}" 2>&1) && return 0
        sed -n 's/^Error \([^:]*\):.*/\1/p' <<<"$out"
}

# --- assertions -----------------------------------------------------------

# vmgr_ok NAME: record a pass, unless a read failed since the last check
# (vmgr_read_failed): the check may have compared what the broken read
# printed (nothing), so it fails.
vmgr_ok() {
        local failures
        failures=$(vmgr_take_read_failures)
        if [ -n "$failures" ]; then
                vmgr_not_ok "$1" "a read this check relies on failed:" "$failures"
                return 0
        fi
        VMGR_PASSED=$((VMGR_PASSED + 1))
        echo "ok - $1"
}

# vmgr_not_ok NAME [DETAIL...]: record a failure, printing details indented,
# and the reads that failed since the last check.
vmgr_not_ok() {
        local name=$1 failures
        shift
        failures=$(vmgr_take_read_failures)
        [ -n "$failures" ] && set -- "$@" "failed reads:" "$failures"
        VMGR_FAILED=$((VMGR_FAILED + 1))
        echo "not ok - $name"
        [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/#   /'
        return 0
}

# check NAME CMD...: passes if CMD exits 0; its output is shown on failure.
check() {
        local name=$1 out rc=0
        shift
        out=$("$@" 2>&1) || rc=$?
        if [ "$rc" -eq 0 ]; then
                vmgr_ok "$name"
        else
                vmgr_not_ok "$name" "command: $*" "exit status: $rc" "$out"
        fi
}

# check_fails NAME CMD...: passes if CMD exits non-zero.
check_fails() {
        local name=$1 out rc=0
        shift
        out=$("$@" 2>&1) || rc=$?
        if [ "$rc" -ne 0 ]; then
                vmgr_ok "$name"
        else
                vmgr_not_ok "$name" "command: $*" "expected a failure, it succeeded" "$out"
        fi
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
        if [ "$2" = "$3" ]; then
                vmgr_ok "$1"
        else
                vmgr_not_ok "$1" "expected: $2" "actual:   $3"
        fi
}

# check_match NAME EXTENDED-REGEX ACTUAL
check_match() {
        if [[ $3 =~ $2 ]]; then
                vmgr_ok "$1"
        else
                vmgr_not_ok "$1" "expected to match: $2" "actual: $3"
        fi
}

# check_empty NAME ACTUAL: passes if ACTUAL is empty (e.g. vmgr_leftovers).
check_empty() {
        if [ -z "$2" ]; then
                vmgr_ok "$1"
        else
                vmgr_not_ok "$1" "expected nothing, found:" "$2"
        fi
}

# Sanitizer reports in vmgrd's log (ASan, LSan, UBSan), if any.
vmgr_sanitizer_reports() {
        grep -E -A 20 'Sanitizer|runtime error:' "$VMGR_TMP/vmgrd.log" 2>/dev/null || true
}

# End the test: stop a running vmgrd with SIGTERM (it must exit 0), check its
# log for sanitizer reports, print the tally; exit 1 if anything failed.
vmgr_finish() {
        local failures
        if [ -n "$VMGRD_PID" ]; then
                vmgr_stop_vmgrd TERM
                check_eq "vmgrd exits 0 on SIGTERM" 0 "$VMGRD_STATUS"
        fi
        if [ -e "$VMGR_TMP/vmgrd.log" ]; then
                check_empty "no sanitizer reports from vmgrd" "$(vmgr_sanitizer_reports)"
        fi
        failures=$(vmgr_take_read_failures)
        [ -z "$failures" ] || vmgr_not_ok "no read failed after the last check" "$failures"
        echo "# $VMGR_PASSED passed, $VMGR_FAILED failed"
        if [ "$VMGR_FAILED" -gt 0 ]; then
                vmgr_show_log
                exit 1
        fi
        exit 0
}

# Print the tail of vmgrd's log, once.
vmgr_show_log() {
        VMGR_LOG_SHOWN=1
        [ -e "$VMGR_TMP/vmgrd.log" ] || return 0
        echo "# vmgrd log (last 60 lines):"
        tail -n 60 "$VMGR_TMP/vmgrd.log" | sed 's/^/#   /'
}

# --- independent address derivation ----------------------------------------
# Recomputes docs/addressing.md with sha256sum and printf only, so the tests
# cross-check lib/addressing.c instead of trusting it.

# Hex SHA-256 of a string.
vmgr_sha256_hex() {
        local out
        out=$(printf '%s' "$1" | sha256sum)
        echo "${out%% *}"
}

# Canonical (inet_ntop) text of an IPv6 address given as 8 numeric groups:
# lowercase, no leading zeros, the longest run of two or more zero groups
# (the first of equal runs) written as "::".
vmgr_ipv6_format() {
        local -a g=("$@")
        local i best=-1 bestlen=0 run=-1 len=0
        for ((i = 0; i < 8; i++)); do
                if [ "${g[i]}" -eq 0 ]; then
                        [ "$run" -lt 0 ] && run=$i && len=0
                        len=$((len + 1))
                        if [ "$len" -gt "$bestlen" ]; then
                                best=$run
                                bestlen=$len
                        fi
                else
                        run=-1
                fi
        done
        [ "$bestlen" -lt 2 ] && best=-1
        local out=""
        for ((i = 0; i < 8; i++)); do
                if [ "$i" -eq "$best" ]; then
                        out+="::"
                        i=$((best + bestlen - 1))
                        continue
                fi
                [ -n "$out" ] && [ "${out: -1}" != ":" ] && out+=":"
                out+=$(printf '%x' "${g[i]}")
        done
        echo "$out"
}

# vmgr_expected_addrs GROUP [VM]: print "key value" lines: bridge, prefix6,
# gateway6, management6, logs6, files6, subnet4, gateway4; with VM also tap,
# mac, ipv6, tap4, mac4. They derive from the uid of $VMGR_USER, the user
# vmgrd runs as.
vmgr_expected_addrs() {
        local group=$1 vm=${2:-}
        local uid h g x y
        uid=$(id -u "$VMGR_USER")
        h=$(vmgr_sha256_hex "$uid/$group")
        g=$(vmgr_sha256_hex "ipv4/$uid/$group")
        x=$((16#${h:0:4}))
        y=$((16#${h:4:4}))
        echo "bridge vbr-${h:0:10}"
        echo "prefix6 $(vmgr_ipv6_format $((0xfd00)) "$x" "$y" 0 0 0 0 0)/64"
        echo "gateway6 $(vmgr_ipv6_format $((0xfd00)) "$x" "$y" 0 0 0 0 1)"
        echo "management6 $(vmgr_ipv6_format $((0xfd00)) "$x" "$y" 1 0 0 0 1)"
        echo "logs6 $(vmgr_ipv6_format $((0xfd00)) "$x" "$y" 2 0 0 0 1)"
        echo "files6 $(vmgr_ipv6_format $((0xfd00)) "$x" "$y" 3 0 0 0 1)"
        echo "subnet4 10.$((16#${g:0:2})).$((16#${g:2:2})).0/24"
        echo "gateway4 10.$((16#${g:0:2})).$((16#${g:2:2})).1"
        [ -n "$vm" ] || return 0

        local v w
        v=$(vmgr_sha256_hex "$uid/$group/$vm")
        w=$(vmgr_sha256_hex "ipv4/$uid/$group/$vm")
        echo "tap tap-${v:0:10}"
        echo "mac 6a:01:${v:0:2}:${v:2:2}:${v:4:2}:${v:6:2}"
        # Modified EUI-64: 6a ^ 02 = 68, then 01, v0, ff, fe, v1, v2, v3.
        echo "ipv6 $(vmgr_ipv6_format $((0xfd00)) "$x" "$y" 0 $((0x6801)) $((16#${v:0:2}ff)) \
                $((16#fe${v:2:2})) $((16#${v:4:4})))"
        echo "tap4 ta4-${w:0:10}"
        echo "mac4 6a:01:${w:0:2}:${w:2:2}:${w:4:2}:${w:6:2}"
}

# vmgr_load_expected ARRAY GROUP [VM]: fill associative array ARRAY with
# vmgr_expected_addrs' keys and values.
vmgr_load_expected() {
        declare -gA "$1"
        local -n _vmgr_exp=$1
        local k v
        _vmgr_exp=()
        while read -r k v; do
                _vmgr_exp[$k]=$v
        done < <(vmgr_expected_addrs "${@:2}")
}

# --- what is left ----------------------------------------------------------

# Print vmgr's links and lo addresses in the current network namespace, one
# per line: links marked with a "vmgr:" alias or named like vmgr's, fd00::/8
# addresses on lo. $1 says where, for the reader ("" for the test's own).
vmgr_links_here() {
        local where=${1:-}
        ip -o link show 2>/dev/null | grep -E 'alias vmgr:| (vbr|tap|ta4)-[0-9a-f]{10}[:@]' |
                sed -E 's/^[0-9]+: ([^:]+):.*alias (vmgr:[^ \\]*).*/link \1 (alias \2)/; s/^[0-9]+: ([^:]+):.*/link \1/' |
                sed "s/\$/$where/" || true
        ip -6 -o addr show dev lo | awk -v where="$where" '$4 ~ /^fd/ { print "lo address " $4 where }'
}

# Print everything vmgr-ish left, one per line: links and lo addresses (see
# vmgr_links_here) in the test's namespace and, in namespace mode while
# vmgrd runs, in its holder's; processes of the test user other than the
# running vmgrd, its helper, its holder and the bus; in namespace mode, any
# process in (or holding an fd of) a network namespace of a holder of this
# user that is not the running one's; files in vmgrd's state dir and
# anything in its runtime dir's per-group part (the daemon's own lock file
# may stay). Empty when clean.
vmgr_leftovers() {
        vmgr_links_here
        local holder=
        if holder=$(vmgr_holder_pid); then
                nsenter -t "$holder" -n -- bash -c "$(declare -f vmgr_links_here); vmgr_links_here ' (in vmgrd-netns)'"
        fi
        local pid comm ppid stat
        while read -r pid ppid stat comm; do
                [ "$pid" = "$VMGRD_PID" ] && continue
                [ "$pid" = "$VMGR_BUS_PID" ] && continue
                [ -n "$VMGRD_PID" ] && [ "$ppid" = "$VMGRD_PID" ] && [ "$comm" = vmgr-netadm ] && continue
                if [ -n "$holder" ]; then
                        [ "$pid" = "$holder" ] && continue
                        [ "$ppid" = "$holder" ] && [ "$comm" = vmgr-netadm ] && continue
                fi
                [[ $stat == Z* ]] && continue
                echo "process $pid $comm"
        done < <(ps -u "$VMGR_USER" -o pid=,ppid=,stat=,comm= || true)
        if [ -n "${VMGR_HOLDER_NETNS[$VMGR_USER]:-}" ]; then
                local live= ns p pattern
                [ -n "$holder" ] && live=$(readlink "/proc/$holder/ns/net" 2>/dev/null)
                for ns in ${VMGR_HOLDER_NETNS[$VMGR_USER]}; do
                        [ "$ns" = "$live" ] && continue
                        # find's pattern: the brackets of "net:[INODE]" escaped.
                        pattern='net:\['"${ns//[^0-9]/}"'\]'
                        while read -r p; do
                                p=${p#/proc/}
                                echo "process ${p%%/*} $(cat "/proc/${p%%/*}/comm" 2>/dev/null) has the old namespace $ns (/proc/$p)"
                        done < <(find /proc/[0-9]*/ns/net /proc/[0-9]*/fd -maxdepth 1 -lname "$pattern" 2>/dev/null || true)
                        grep -F " $ns " /proc/self/mountinfo | sed "s|^|mount of the old namespace $ns: |" || true
                done
        fi
        find "$VMGR_TMP/state/vmgr" ! -type d -printf 'file %p\n' 2>/dev/null || true
        find "$VMGR_TMP/run/vmgr/groups" -mindepth 1 -printf 'file %p\n' 2>/dev/null || true
}

# --- probing dnsmasq from outside -------------------------------------------

# vmgr_peer_create BRIDGE: make a namespace with a veth whose other end is a
# port of BRIDGE (where the groups live: vmgr_netns_exec), for probing the group's dnsmasq
# like a VM would. Sets VMGR_PEER (namespace name) and VMGR_PEER_IF.
# DAD is off on the probe side: rdisc6 cannot bind a tentative address.
# Returns once the bridge, which gets carrier from this first port, has a
# link-local address past DAD: routers advertise from it, and hosts ignore
# RAs from any other source (RFC 4861 6.1.2). A booting VM takes longer
# than DAD before it solicits.
vmgr_peer_create() {
        local bridge=$1 n=${#VMGR_PEER_NS[@]}
        # Unique across concurrent tests: /run/netns is shared, and every
        # test is PID 1 of its own PID namespace.
        VMGR_PEER=vmgrpeer-${VMGR_TMP##*.}-$n
        VMGR_PEER_IF=vp$n
        ip netns add "$VMGR_PEER"
        VMGR_PEER_NS+=("$VMGR_PEER")
        vmgr_netns_exec ip link add "vh$n" type veth peer name "$VMGR_PEER_IF" netns "$VMGR_PEER"
        vmgr_netns_exec ip link set "vh$n" master "$bridge" up
        ip netns exec "$VMGR_PEER" sysctl -q -w "net.ipv6.conf.$VMGR_PEER_IF.accept_dad=0"
        ip -n "$VMGR_PEER" link set lo up
        ip -n "$VMGR_PEER" link set "$VMGR_PEER_IF" up
        local i
        for ((i = 0; i < 150; i++)); do
                vmgr_netns_exec ip -6 -o addr show dev "$bridge" scope link | grep -v -q -e tentative -e '^$' && break
                sleep 0.02
        done
}

# Delete the probe namespace made last (its veth goes with it).
vmgr_peer_delete() {
        ip netns delete "$VMGR_PEER"
        unset 'VMGR_PEER_NS[-1]'
}

# Print the prefix lines of the router advertisement the probe receives.
vmgr_peer_ra() {
        ip netns exec "$VMGR_PEER" rdisc6 -1 -r 5 -w 1500 "$VMGR_PEER_IF"
}

# Print the IPv4 address the probe leases over DHCP (busybox udhcpc).
vmgr_peer_dhcp4() {
        local script=$VMGR_TMP/udhcpc-$VMGR_PEER.sh lease=$VMGR_TMP/lease-$VMGR_PEER
        printf '#!/bin/sh\n[ "$1" = bound ] && echo "$ip" >%s\nexit 0\n' "$lease" >"$script"
        chmod 0755 "$script"
        ip netns exec "$VMGR_PEER" busybox udhcpc -n -q -t 5 -T 2 -i "$VMGR_PEER_IF" -s "$script" >/dev/null 2>&1
        cat "$lease"
}

# The leak checker (vmgr_leaks, check_no_leaks).
source "$(dirname "${BASH_SOURCE[0]}")/lib-leaks.sh"
