/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A VM's cloud-init NoCloud seed (docs/spec.md, "cloud-init"): the files of
 * lib/cloud-init.h, with vmgr-agent, its unit and its udev rule when the
 * spec asks to install the agent, in an ISO 9660 volume labelled "cidata"
 * (Rock Ridge and Joliet) that xorriso makes. The VM gets it as a read-only
 * disk after its other disks.
 */

#include <stddef.h>

#include "spec.h"

/* The program that makes the volume (Debian package xorriso). */
#define CLOUDINIT_XORRISO_PATH "/usr/bin/xorriso"

/* Write the seed of vm (in group, owned by uid) as dir/cidata.iso, replacing
 * an earlier one atomically; the files are put together in dir/cidata.d,
 * which is removed afterwards. Blocks (runs xorriso): call it from a worker
 * thread. Returns 0 and the seed's path in *ret_path (malloc'd), or -errno
 * with error (error_size bytes) saying why: -ENOENT when xorriso or, with
 * install_agent, the agent's files are not installed. */
int cloudinit_seed_write(const char *dir, unsigned uid, const char *group, const VmgrVMSpec *vm, char **ret_path,
                         char *error, size_t error_size);
