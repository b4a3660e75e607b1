/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The socket directory: the path below which vmgrd, libvirtd and QEMU make
 * their unix sockets (libvirtd's XDG_RUNTIME_DIR and XDG_CONFIG_HOME, with
 * QEMU's monitors; the VMs' agent sockets). A socket's path must fit
 * sockaddr_un's 108 bytes, whatever the runtime directory and the names.
 *
 * A runtime directory short enough is its own socket directory. A longer
 * one gets a short stand-in, BASE/vmgrd-XXXXXX (mkdtemp(): a random name,
 * made by us with mode 0700, so no other user can have made it first or
 * change it), which holds one symlink, "r", to the runtime directory; the
 * socket directory is then BASE/vmgrd-XXXXXX/r and the kernel follows the
 * link when a socket is bound or connected, while every file stays in the
 * runtime directory. RUNTIME/sockdir, a symlink to the stand-in, lets the
 * next vmgrd on the same runtime directory (after a crash) find the same
 * paths again: it trusts the stand-in only if it is BASE/vmgrd-XXXXXX, a
 * directory (not a symlink) of its own user with mode 0700 whose "r" leads
 * back to this runtime directory, and makes a new one otherwise. vmgrd
 * holds an flock on the stand-in while it runs, which keeps
 * systemd-tmpfiles' ageing of /tmp away from it.
 */

#include <stdbool.h>

typedef struct SockDir SockDir;

/* The longest path of a socket below the socket directory: QEMU's monitor,
 * "/libvirt/config/libvirt/qemu/lib/domain-" (40) + the domain id (at most
 * 10 digits) + "-" + libvirt's short domain name (at most 20 bytes) +
 * "/monitor.sock" (13). libvirtd's sockets (".../libvirt/run/libvirt/
 * libvirt-admin-sock", 39) and the agents' ("/agent/TAP.sock", at most 27)
 * are shorter. */
#define SOCKDIR_SUFFIX_MAX 84

/* Where stand-ins are made. */
#define SOCKDIR_BASE "/tmp"

/* Whether dir is short enough to be a socket directory. */
bool sockdir_fits(const char *dir);

/* Settle the socket directory for runtime_dir (absolute, ours, locked by
 * the caller): the runtime directory itself when it fits, else the stand-in
 * under base that RUNTIME/sockdir leads to if it passes the checks above,
 * else a new one (and RUNTIME/sockdir replaced). Returns 0, or -errno logged
 * with what to change. */
int sockdir_setup(const char *runtime_dir, const char *base, SockDir **ret);

/* The socket directory. */
const char *sockdir_path(const SockDir *d);

/* vmgrd's clean stop: remove the stand-in and RUNTIME/sockdir (nothing when
 * the runtime directory is its own socket directory), then free. NULL is
 * fine. Returns NULL. */
SockDir *sockdir_remove(SockDir *d);

/* Free, leaving the stand-in for the next vmgrd. NULL is fine. Returns NULL. */
SockDir *sockdir_free(SockDir *d);
