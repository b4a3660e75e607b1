#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Baseline (b) of tools/bench: a system (root) libvirtd that can touch
# nothing of the host's. Run as
#
#     unshare --net --mount --propagation private bash libvirt-ns.sh DIR DRIVER_SO
#
# In its own network and mount namespaces it puts directories under DIR over
# every place a privileged libvirtd keeps state:
#
#     DIR/run   -> /run          sockets, pid files, network status (and it hides
#                                the host's D-Bus system bus: no firewalld, no machined)
#     DIR/etc   -> /etc/libvirt  configuration: only what is written here
#     DIR/lib   -> /var/lib      network definitions, dnsmasq configs and leases
#     DIR/cache -> /var/cache
#     DIR/log   -> /var/log
#
# and starts /usr/sbin/libvirtd --config DIR/etc/libvirtd.conf with
# LIBVIRT_DRIVER_DIR pointing at a directory that holds only the network
# driver DRIVER_SO: libvirtd loads no hypervisor driver (Debian's QEMU driver
# refuses to start without the libvirt-qemu user, and it is not needed for
# networks). Clients connect with `nsenter -t PID -n -m virsh -c network:///system`.
# The script stays in the foreground as the namespaces' anchor; SIGTERM
# stops libvirtd and ends it.
set -euo pipefail

dir=$1
driver=$2

mount -t sysfs sysfs /sys
ip link set lo up

for d in run etc lib cache log drivers; do
        mkdir -p "$dir/$d"
done
mount --bind "$dir/run" /run
mount --bind "$dir/etc" /etc/libvirt
mount --bind "$dir/lib" /var/lib
mount --bind "$dir/cache" /var/cache
mount --bind "$dir/log" /var/log

cat >"$dir/etc/libvirtd.conf" <<EOF
log_outputs = "3:file:$dir/libvirtd.log"
EOF
ln -sf "$driver" "$dir/drivers/"

LIBVIRT_DRIVER_DIR=$dir/drivers /usr/sbin/libvirtd --config "$dir/etc/libvirtd.conf" \
        --pid-file "$dir/run/libvirtd.pid" </dev/null >>"$dir/libvirtd.stderr" 2>&1 &
libvirtd=$!
trap 'kill -TERM "$libvirtd" 2>/dev/null || true' TERM INT
rc=0
wait "$libvirtd" || rc=$?
# A trapped signal interrupts the first wait; collect libvirtd's exit.
wait "$libvirtd" 2>/dev/null || true
exit "$rc"
