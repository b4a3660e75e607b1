/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/* mkdir -p with the given mode for each missing component. Returns 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);

/* Remove a directory tree without following symlinks. Missing is success.
 * Returns 0 or -errno. */
int rm_rf(const char *path);

/* Write data to path atomically: a temporary file in the same directory,
 * fsync, rename. Returns 0 or -errno. */
int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode);

/* Read a whole (small) file into a NUL-terminated string. Returns 0 or -errno. */
int read_file(const char *path, size_t max, char **ret);

/* chown a directory tree (not following symlinks). Returns 0 or -errno. */
int chown_tree(const char *path, uid_t uid, gid_t gid);
