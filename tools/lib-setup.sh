# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Machine setup shared by tools/check and tools/demo (sourced, not run):
# packages, the test users, and a build installed into BUILD/destdir with the
# helper's file capabilities set. Every step is idempotent.

vmgr_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The capabilities vmgr-netadm is installed with (see the README).
VMGR_NETADM_CAPS=cap_net_admin,cap_net_raw,cap_net_bind_service+ep

# Fail unless running as root: everything below changes the machine.
vmgr_setup_require_root() {
        if [ "$(id -u)" -ne 0 ]; then
                echo "$(basename "$0"): must run as root (installs packages, creates users, sets file capabilities)" >&2
                exit 1
        fi
}

# Install the build and runtime packages (tools/deps is a no-op when all are there).
vmgr_setup_deps() {
        "$vmgr_top/tools/deps"
}

# Make sure user $1 exists, with membership in group vmgr if $2 is "member".
# Users get no home and no user group (-N: primary group "users") so that
# membership in vmgr is a supplementary group, as for a real user.
vmgr_setup_user() {
        local user=$1 membership=$2

        if ! id -u "$user" >/dev/null 2>&1; then
                useradd -M -N -s /usr/sbin/nologin "$user"
                echo "created user $user"
        fi
        if [ "$membership" = member ] && ! id -nG "$user" | tr ' ' '\n' | grep -qx vmgr; then
                usermod -a -G vmgr "$user"
        fi
}

# Group vmgr (may use the helper), two members and one outsider for the tests,
# and the two users namespace mode's tests run vmgrd as: set up like the
# members, but in no group vmgr, so the helper's policy admits neither.
vmgr_setup_users() {
        if ! getent group vmgr >/dev/null; then
                groupadd vmgr
                echo "created group vmgr"
        fi
        vmgr_setup_user vmgr-test member
        vmgr_setup_user vmgr-test2 member
        vmgr_setup_user vmgr-outsider outsider
        vmgr_setup_user vmgr-ns outsider
        vmgr_setup_user vmgr-ns2 outsider
}

# The unprivileged users run binaries from BUILD/destdir, so every directory
# above it must be searchable by others. Where one is not (a clone under
# /root, a umask 077 checkout), grant o+x - search only, nothing becomes
# listable or readable - and say so.
vmgr_setup_traversable() {
        local dir
        dir=$(realpath "$1")
        while [ "$dir" != / ]; do
                dir=$(dirname "$dir")
                if [ "$(( 0$(stat -c %a "$dir") & 01 ))" -eq 0 ]; then
                        chmod o+x "$dir"
                        echo "made $dir searchable by other users (o+x) so the test users reach the build tree"
                fi
        done
}

# The helper refuses to run without its policy file. Install the shipped one
# (data/netadm.conf) as a package would: only when there is none, so an
# admin's choice of pools is never overwritten; root:root 0644, as the helper
# demands. The tests do not read it: each gets its own in its mount namespace.
vmgr_setup_policy() {
        local conf=/etc/vmgr/netadm.conf
        [ -e "$conf" ] && return 0
        install -d -o root -g root -m 0755 /etc/vmgr
        install -o root -g root -m 0644 "$vmgr_top/data/netadm.conf" "$conf"
        echo "installed $conf (ipv4_pool and ipv6_pool: narrow them to pools this host never reaches otherwise)"
}

# Configure (or reconfigure) build dir $1 with the remaining arguments as meson
# options, build it, install it into $1/destdir and give the helper its
# capabilities. Leaves the build tree readable by the test users.
vmgr_setup_build() {
        local build=$1
        shift

        local reconfigure=() out
        [ -e "$build/meson-private/coredata.dat" ] && reconfigure=(--reconfigure)
        # meson writes its errors to stdout, among the summary: show it all on failure.
        if ! out=$(meson setup "${reconfigure[@]}" "$build" "$vmgr_top" "$@" 2>&1); then
                echo "$out" >&2
                return 1
        fi
        # Keep the compiler's messages, drop ninja's progress lines.
        meson compile -C "$build" 2>&1 | { grep -v -e '^\[[0-9]*/[0-9]*\] ' -e '^ninja: ' -e '^INFO: ' || true; } >&2
        # Absolute: meson takes a relative --destdir relative to the build dir.
        local destdir
        destdir=$(realpath "$build")/destdir
        rm -rf "$destdir"
        meson install -C "$build" --destdir "$destdir" --quiet >/dev/null
        mkdir -p "$destdir"
        vmgr_setup_traversable "$build"
        chmod -R a+rX "$build"
        # After chmod: a later write to the file (the next install) drops the
        # capabilities again, which is why this runs on every build.
        local helper=$destdir/usr/libexec/vmgr-netadm
        if [ -e "$helper" ]; then
                setcap "$VMGR_NETADM_CAPS" "$helper"
        fi
        vmgr_setup_policy
}
