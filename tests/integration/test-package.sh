#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgr's Debian packages (debian/, tools/package) installed into a fresh
# Debian root and run there from the installed files only:
#   - the packages build (cached by the tree's content: a second run with the
#     same files takes them from the cache);
#   - apt installs them into a Debian 12 root made by mmdebstrap (cached by
#     its inputs: suite, archive and the packages' dependencies), with no
#     network: every dependency is in the root already;
#   - postinst made the system group vmgr and gave the helper
#     (/usr/lib/vmgr/vmgr-netadm) root:vmgr 0750 and exactly its three
#     capabilities; the policy /etc/vmgr/netadm.conf is a conffile; the man
#     pages and bash completions the package lists are there;
#   - as an unprivileged user in group vmgr, with a private dbus-daemon: the
#     first call D-Bus-activates /usr/bin/vmgrd (share/dbus-1/services),
#     which finds its helper in /usr/lib/vmgr by itself and runs in host
#     mode; vmgrctl group create / list / delete of a network-only group,
#     whose bridge appears in and leaves this test's network namespace;
#   - python3-vmgr, when built, imports.
# Everything runs in this test's network, mount and PID namespaces (the
# chroot shares them); only the package and root builds, before those, use
# the network (Debian's archive).

source "$(dirname "$0")/lib.sh"
vmgr_require_root

VMGR_TEST_PACKAGE_DIR=${VMGR_TEST_PACKAGE_DIR:-/var/tmp/vmgr-test-packages}
suite=bookworm
archive=(
        "deb http://deb.debian.org/debian $suite main"
        "deb http://deb.debian.org/debian $suite-updates main"
        "deb http://deb.debian.org/debian-security $suite-security main"
)

# The tree's content: every file git knows or would add, by name and hash.
tree_hash() {
        (cd "$VMGR_SOURCE_DIR" && git ls-files -z --cached --others --exclude-standard |
                sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16)
}

# The dependencies of the built packages, one per line, sorted: versions
# and our own packages left out, the first of alternatives taken.
package_depends() {
        local deb
        for deb in "$1"/*.deb; do
                case ${deb##*/} in *-dbgsym_*) continue ;; esac
                dpkg-deb -f "$deb" Depends
        done | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/\[.*\]//' -e 's/[[:space:]]//g' |
                grep -v -e '^$' -e '^vmgr' -e '^python3-vmgr$' | LC_ALL=C sort -u
}

if [ -z "${VMGR_IN_NETNS:-}" ]; then
        # Outside the namespaces: the package build and mmdebstrap need the
        # archive. Both are cached; the script re-executed in the namespaces
        # finds them by the same keys.
        for t in mmdebstrap dpkg-deb git; do
                command -v "$t" >/dev/null || { echo "# skipped: $t is missing (tools/deps installs it)"; exit 77; }
        done
        install -d -m 0755 "$VMGR_TEST_PACKAGE_DIR"
        debs=$VMGR_TEST_PACKAGE_DIR/debs-$(tree_hash)
        if [ ! -e "$debs/.done" ]; then
                rm -rf "$VMGR_TEST_PACKAGE_DIR"/debs-*
                t0=$(date +%s)
                # The unit tests are the suite's own (under ASan there); this
                # test is about the packages.
                "$VMGR_SOURCE_DIR/tools/package" --no-check "$debs" >&2
                touch "$debs/.done"
                echo "# built the packages in $(($(date +%s) - t0)) s" >&2
        fi
        extra=(dbus-daemon libcap2-bin iproute2 passwd util-linux procps)
        mapfile -t deps < <({ package_depends "$debs"; printf '%s\n' "${extra[@]}"; } | LC_ALL=C sort -u)
        key=$(printf '%s\n' "$suite" "${archive[@]}" "${deps[@]}" | sha256sum | cut -c1-16)
        base=$VMGR_TEST_PACKAGE_DIR/root-$key.tar
        if [ ! -e "$base" ]; then
                rm -f "$VMGR_TEST_PACKAGE_DIR"/root-*.tar
                t0=$(date +%s)
                include=$(IFS=,; echo "${deps[*]}")
                # No recommends: the root has what the packages depend on, and
                # apt installs the packages later without the archive.
                mmdebstrap --quiet --format=tar --variant=apt --aptopt='APT::Install-Recommends "false"' \
                        --include="$include" "$suite" "$base.new" "${archive[@]}" >&2
                mv "$base.new" "$base"
                echo "# made the Debian root in $(($(date +%s) - t0)) s" >&2
        fi
        export VMGR_PACKAGE_DEBS=$debs VMGR_PACKAGE_BASE=$base
fi

vmgr_enter_netns "$@"

root=$VMGR_TMP/root
mkdir "$root"
tar -C "$root" -xf "$VMGR_PACKAGE_BASE"
mkdir "$root/debs"
for deb in "$VMGR_PACKAGE_DEBS"/*.deb; do
        case ${deb##*/} in *-dbgsym_*) ;; *) cp "$deb" "$root/debs/" ;; esac
done
# The chroot's own /proc (this PID namespace), /sys (this network
# namespace), and its own /dev, /run and /tmp: nothing of the host's is
# mounted in. Unmounted (lazily: processes may still hold them) before
# lib.sh's cleanup removes the temp dir, so that it never reaches into them.
package_cleanup() {
        local rc=$? i p others
        # vmgrd is dbus-daemon's child, not ours: "wait" in lib.sh's cleanup
        # would not wait for it, and it could still write into the root
        # while that is removed.
        kill -KILL -1 2>/dev/null
        for ((i = 0; i < 50; i++)); do
                others=0
                for p in /proc/[0-9]*; do
                        p=${p#/proc/}
                        [ "$p" = $$ ] || [ "$p" = "$BASHPID" ] || others=1
                done
                [ "$others" = 0 ] && break
                wait 2>/dev/null
                sleep 0.1
        done
        umount -R -l "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev" "$root/run" "$root/tmp" 2>/dev/null
        return "$rc"
}
trap 'package_cleanup; vmgr_cleanup' EXIT
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
mknod -m 0666 "$root/dev/null" c 1 3
mknod -m 0666 "$root/dev/zero" c 1 5
mknod -m 0666 "$root/dev/full" c 1 7
mknod -m 0666 "$root/dev/random" c 1 8
mknod -m 0666 "$root/dev/urandom" c 1 9
mknod -m 0666 "$root/dev/tty" c 5 0
mkdir -m 0755 "$root/dev/net" "$root/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mknod -m 0666 "$root/dev/net/tun" c 10 200
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
in_root() {
        chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"
}

# --- install --------------------------------------------------------------------

out=$(in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /debs/*.deb' 2>&1) &&
        rc=0 || rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -n 20 | sed 's/^/# /'
check_eq "apt-get install ./*.deb in a fresh Debian root (no network)" 0 "$rc"
for p in vmgr vmgr-guest; do
        check_eq "package $p is installed" "install ok installed" \
                "$(in_root dpkg-query -W -f='${Status}' "$p" 2>&1)"
done

# --- what postinst and the package set up ------------------------------------------

helper=/usr/lib/vmgr/vmgr-netadm
check "postinst made the system group vmgr" in_root getent group vmgr
gid=$(in_root getent group vmgr | cut -d: -f3)
check "group vmgr is a system group (gid $gid)" test "$gid" -lt 1000
check_eq "the helper is root:vmgr 0750" "root:vmgr 750" "$(in_root stat -c '%U:%G %a' "$helper" 2>&1)"
caps=$(in_root getcap "$helper" 2>&1) || true
caps=${caps#"$helper "}
check_eq "the helper has exactly its three capabilities, effective and permitted" \
        "cap_net_admin,cap_net_bind_service,cap_net_raw=ep" "$(tr ',' '\n' <<<"${caps%=*}" | sort | paste -sd,)=${caps##*=}"
check_match "/etc/vmgr/netadm.conf is a conffile" '^ /etc/vmgr/netadm.conf [0-9a-f]{32}$' \
        "$(in_root dpkg-query -W -f='${Conffiles}\n' vmgr 2>&1)"
check "the policy is root:root 0644" test "$(in_root stat -c '%U:%G %a' /etc/vmgr/netadm.conf)" = "root:root 644"
check "the agent is in vmgr-guest, under /usr/lib/vmgr" in_root dpkg -S /usr/lib/vmgr/vmgr-agent
check "the D-Bus activation file is installed" test -e "$root/usr/share/dbus-1/services/org.vmgr1.service"
check "the systemd user unit is installed" test -e "$root/usr/lib/systemd/user/vmgrd.service"
check "the user unit is not enabled for every user" test ! -e "$root/etc/systemd/user/default.target.wants/vmgrd.service"
n=0
while read -r f; do
        case $f in
        /usr/share/man/* | /usr/share/bash-completion/*)
                [ -f "$root$f" ] || continue
                n=$((n + 1))
                check "installed: $f" test -s "$root$f"
                ;;
        esac
done < <(in_root dpkg -L vmgr vmgr-guest)
[ "$n" -gt 0 ] || echo "# no man pages or bash completions in these packages (meson installed none)"

if [ -e "$root/var/lib/dpkg/info/python3-vmgr.list" ]; then
        check "python3-vmgr imports" in_root python3 -c 'import vmgr'
else
        echo "# python3-vmgr was not built (no python/ in this tree)"
fi

# --- run it: an unprivileged user in group vmgr, a private bus ------------------

in_root useradd -m -G vmgr -s /bin/sh tester
uid=$(in_root id -u tester)
ugid=$(in_root id -g tester)
install -d -m 0700 -o "$uid" "$root/run/user/$uid"
# Run as tester in the chroot, with the test's bus.
as_tester() {
        chroot --userspec="$uid:$ugid" --groups="$gid" "$root" env -i PATH=/usr/bin:/bin HOME=/home/tester \
                USER=tester XDG_RUNTIME_DIR="/run/user/$uid" LC_ALL=C.UTF-8 \
                DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" "$@"
}
check "tester is in group vmgr" test "$(as_tester id -nG | tr ' ' '\n' | grep -cx vmgr)" = 1
as_tester dbus-daemon --session --address="unix:path=/run/user/$uid/bus" --nofork --nopidfile \
        >"$VMGR_TMP/dbus.log" 2>&1 &
for ((i = 0; i < 100; i++)); do
        [ -S "$root/run/user/$uid/bus" ] && break
        sleep 0.05
done

# The first call starts vmgrd through D-Bus activation.
out=$(as_tester vmgrctl group list 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || printf '# %s\n' "$out"
check_eq "vmgrctl group list (activates vmgrd) succeeds" 0 "$rc"
# The host's busctl, as tester, on the chroot's bus: the root has no busctl.
tester_busctl() {
        setpriv --reuid="$uid" --regid="$ugid" --clear-groups \
                busctl --address="unix:path=$root/run/user/$uid/bus" "$@"
}
check_eq "vmgrd runs in host mode: it found its setcap'd helper" 's "host"' \
        "$(tester_busctl get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager NetworkMode 2>&1)"
vmgrd_pid=$(tester_busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        GetConnectionUnixProcessID s org.vmgr1 2>/dev/null | awk '{print $2}') || vmgrd_pid=
check_eq "the activated vmgrd is /usr/bin/vmgrd" "$root/usr/bin/vmgrd" "$(readlink "/proc/$vmgrd_pid/exe" 2>&1)"

out=$(as_tester vmgrctl group create n 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || printf '# %s\n' "$out"
check_eq "vmgrctl group create n (network only)" 0 "$rc"
check_match "vmgrctl group list shows n" '(^|[[:space:]])n([[:space:]]|$)' "$(as_tester vmgrctl group list 2>&1)"
bridges=$(ip -o link show type bridge | wc -l)
check "group n's bridge is in this test's network namespace" test "$bridges" -ge 1
check "vmgrctl group delete n" as_tester vmgrctl group delete n
check_eq "no bridge is left" 0 "$(ip -o link show type bridge | wc -l)"
check_empty "vmgrctl group list is empty again" "$(as_tester vmgrctl group list 2>&1 | grep -v -i '^name' || true)"

if [ -n "$vmgrd_pid" ]; then
        kill "$vmgrd_pid"
        for ((i = 0; i < 100; i++)); do
                [ -e "/proc/$vmgrd_pid" ] || break
                # Our child's child: dbus-daemon reaps it.
                sleep 0.1
        done
        check "vmgrd exits on SIGTERM" test ! -e "/proc/$vmgrd_pid"
fi

vmgr_finish
