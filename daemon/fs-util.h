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

/* For a process running as root that becomes uid later: make the absolute
 * path a directory of uid:gid with mode 0700, never acting as root on a file
 * another user controls. Missing components are created. A directory the user
 * already owns is not looked into (what is inside is the user's business); one
 * that root owns (new, or from a vmgrd that ran as root) gets whatever root
 * owns inside it handed over too. Returns 1 when done, 0 when the path runs
 * through a directory another user controls (so root must not act there, and
 * the user creates the directory itself), -EPERM when the directory belongs
 * to a third user, or another -errno. */
int dir_hand_over(const char *path, uid_t uid, gid_t gid);
