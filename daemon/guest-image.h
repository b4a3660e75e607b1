/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <limits.h>
#include <stddef.h>

/* The default guest's kernel and initramfs, built (or found in its cache) by
 * vmgr-mkguest under cache_dir/guest. The answer is remembered for the
 * daemon's lifetime. Blocking and thread-safe: call it from a pool thread.
 * Returns 0 or -errno with error (error_size bytes) saying why. */
int guest_image_get(const char *mkguest, const char *cache_dir, char kernel[PATH_MAX], char initrd[PATH_MAX],
                    char *error, size_t error_size);

/* The static guest agent (for the default guest, or a cloud-init seed):
 * under the libexecdir of the install our own binary belongs to (a
 * prefix, a destdir), in a build tree (daemon/../agent), else under the
 * configured libexecdir (lib/install-path.h). Returns 0 with the path in
 * buf, or -ENOENT with the paths tried in tried (tried_size bytes). */
int guest_image_find_agent(char buf[PATH_MAX], char *tried, size_t tried_size);
