/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * VM disks: a cache of base images and the per-VM qcow2 overlays on them.
 *
 * A VM never runs on the user's image itself. disk_base_get() copies the
 * image once into CACHE_DIR/disks/, named after the SHA-256 of its content;
 * each VM then gets a qcow2 overlay (copy-on-write) backed by that copy, so
 * neither a later change to the user's file nor one VM's writes reach any
 * other VM, and many VMs share one copy.
 *
 * Cache layout (CACHE_DIR/disks/):
 *   SHA256.raw, SHA256.qcow2   base images, read-only (0444), never changed;
 *                              the extension is the format the bytes are read as
 *   index/KEY                  "SHA256\n" for one version of one source file:
 *                              KEY = SHA-256 of "DEV INO SIZE MTIME CTIME" of
 *                              the source (nanosecond times), so an unchanged
 *                              file is not hashed again (a 2 GiB image would
 *                              take seconds); any write to it changes its ctime
 *                              and so its KEY
 *   .lock                      flock(2) held while a base is being filled
 *   .tmp-*                     a copy in progress (a leftover from a crash is
 *                              removed by the next filler)
 * Filling: under the lock, look again (another filler may have just finished),
 * copy and hash in one pass into .tmp-*, fsync, rename to SHA256.FORMAT.
 * Concurrent callers, threads or processes, fill each base once and only ever
 * see whole files. One lock for the whole cache: copies of different images
 * wait for each other; lookups of cached images never take it.
 * Nothing is ever removed: deleting a base breaks the overlays made on it.
 *
 * All functions block (file copies, qemu-img): call them from a worker
 * thread. They are thread-safe (no static state). On failure they write a
 * sentence into error (error_size bytes, VMGR_ERROR_MAX is enough) saying
 * what went wrong.
 */

#include <stddef.h>

#include "spec.h"
#include "vmgr-error.h"

#define DISK_QEMU_IMG_PATH "/usr/bin/qemu-img"

/* "raw", "qcow2", or "auto". */
const char *disk_format_to_string(VmgrDiskFormat f);

/* The cached base for the image at path image (absolute). With
 * VMGR_DISK_FORMAT_AUTO the format is qcow2 if the file starts with the
 * qcow2 magic "QFI\xfb", else raw. A qcow2 image must be self-contained (no
 * backing file, no external data file). Returns 0, *ret_base (malloc'd
 * absolute path) and *ret_format (RAW or QCOW2); or -ENOENT (no such
 * image), -EACCES, -EINVAL (not a regular file, empty, not what format
 * says, has a backing file), -EAGAIN (the image changed while it was being
 * copied), or another -errno from the file system. */
int disk_base_get(const char *cache_dir, const char *image, VmgrDiskFormat format, char **ret_base,
                  VmgrDiskFormat *ret_format, char *error, size_t error_size);

/* Create overlay, a qcow2 image backed by base (format base_format, RAW or
 * QCOW2), with qemu-img. An existing overlay is kept as it is: it holds the
 * VM's disk across restarts. The file appears whole or not at all (made
 * under a temporary name, then renamed without replacing). Returns 0 (made
 * or kept), -EINVAL for a bad argument, -EIO if qemu-img failed (its first
 * line of stderr in error), or another -errno. */
int disk_overlay_create(const char *base, VmgrDiskFormat base_format, const char *overlay, char *error,
                        size_t error_size);

/* Create an empty qcow2 image of size_mib MiB (>= 1) at path; an existing
 * one is kept. Same contract as disk_overlay_create(). */
int disk_blank_create(const char *path, unsigned size_mib, char *error, size_t error_size);
