/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "fs-util.h"
#include "macro.h"

int mkdir_p(const char *path, mode_t mode) {
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        /* Mostly only the last component is missing (a group's directory in
         * one that exists): one mkdir() then, not one per component. */
        if (mkdir(path, mode) == 0 || errno == EEXIST)
                return 0;
        if (errno != ENOENT)
                return -errno;
        memcpy(buf, path, n + 1);
        for (char *p = buf + 1; ; p++) {
                if (*p == '/' || *p == 0) {
                        char saved = *p;
                        *p = 0;
                        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *p = saved;
                        if (saved == 0)
                                break;
                }
        }
        return 0;
}

/* Empty the directory behind dfd (which this takes) and its subdirectories. */
static int rm_rf_children(int dfd) {
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return -errno;
        }
        while ((de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT && r == 0)
                                r = -errno;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                if (r == 0)
                                        r = -errno;
                                continue;
                        }
                        int q = rm_rf_children(sub);
                        if (q < 0 && r == 0)
                                r = q;
                        if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                                r = -errno;
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && r == 0)
                        r = -errno;
        }
        closedir(d);
        return r;
}

int rm_rf(const char *path) {
        int fd, r;

        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno == ENOTDIR || errno == ELOOP)
                        return unlink(path) < 0 ? -errno : 0;
                return -errno;
        }
        r = rm_rf_children(fd);
        if (rmdir(path) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode) {
        char tmp[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid());
        if (r < 0 || (size_t) r >= sizeof(tmp))
                return -ENAMETOOLONG;

        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        r = vmgr_write_all(fd, data, len);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        (void) unlink(tmp);
        return r;
}

int read_file(const char *path, size_t max, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, max - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == max)
                        return -EFBIG;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* May we act on entries of the directory behind st as root without another
 * user choosing what we find there? It is root's and not writable by group or
 * others, or sticky (then others cannot rename or remove root's entries; what
 * they add there is theirs, and each step checks the owner of what it finds). */
static bool dir_is_root_controlled(const struct stat *st) {
        return st->st_uid == 0 && ((st->st_mode & (S_IWGRP | S_IWOTH)) == 0 || (st->st_mode & S_ISVTX));
}

/* Open the directory at path (absolute) as root, one component at a time
 * relative to the directory before it, creating missing components (mode 0755,
 * the last one 0700). Every directory looked into on the way must be
 * root-controlled, and a symlink is followed only if root owns it, so no other
 * user can steer where we end up. Returns 1 with the fd of the last component
 * in *ret_fd, 0 if the path runs through a directory another user controls
 * (the caller leaves such a directory to that user), or -errno. */
static int open_dir_root_controlled(const char *path, int *ret_fd) {
        _cleanup_free_ char *todo = NULL;
        _cleanup_close_ int dfd = -EBADF;
        unsigned symlinks = 0;
        char *p;

        if (path[0] != '/')
                return -EINVAL;
        todo = strdup(path);
        if (!todo)
                return -ENOMEM;
        dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;

        p = todo;
        for (;;) {
                struct stat st;
                char *component;
                int fd;

                while (*p == '/')
                        p++;
                if (!*p) {
                        *ret_fd = TAKE_FD(dfd);
                        return 1;
                }
                component = p;
                p += strcspn(p, "/");
                bool last = strspn(p, "/") == strlen(p);
                if (*p)
                        *p++ = 0;

                if (fstat(dfd, &st) < 0)
                        return -errno;
                if (!dir_is_root_controlled(&st))
                        return 0;

                if (streq(component, "."))
                        continue;
                if (mkdirat(dfd, component, last ? 0700 : 0755) < 0 && errno != EEXIST)
                        return -errno;
                fd = openat(dfd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0) {
                        close(dfd);
                        dfd = fd;
                        continue;
                }
                if (errno != ELOOP && errno != ENOTDIR)
                        return -errno;

                /* A symlink: followed only if root made it, in a directory only root controls. */
                char target[PATH_MAX];
                ssize_t n;
                if (fstatat(dfd, component, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                if (!S_ISLNK(st.st_mode))
                        return -ENOTDIR;
                if (st.st_uid != 0)
                        return 0;
                if (++symlinks > 32)
                        return -ELOOP;
                n = readlinkat(dfd, component, target, sizeof(target) - 1);
                if (n < 0)
                        return -errno;
                target[n] = 0;

                /* Go on with the target, then what was left after the symlink. */
                _cleanup_free_ char *rest = NULL;
                if (asprintf(&rest, "%s/%s", target, p) < 0)
                        return -ENOMEM;
                free(todo);
                todo = TAKE_PTR(rest);
                p = todo;
                if (target[0] == '/') {
                        fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (fd < 0)
                                return -errno;
                        close(dfd);
                        dfd = fd;
                }
        }
}

/* Hand what root owns below the directory dfd to uid:gid, deepest first, so
 * that each directory becomes the user's only after we are done inside it.
 * Every entry is pinned by an fd opened without following symlinks before
 * its owner is checked and changed; entries of other owners, and files with
 * more than one link (which could be another name of a file elsewhere), are
 * left alone. Returns 0 or -errno. */
static int chown_root_owned_children(int dfd, uid_t uid, gid_t gid, unsigned depth) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > 64)
                return -ELOOP;
        fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -EBADF; /* the DIR has it */

        while ((de = readdir(d))) {
                _cleanup_close_ int child = -EBADF;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                child = openat(dirfd(d), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (child < 0 || fstat(child, &st) < 0 || st.st_uid != 0)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int q = chown_root_owned_children(child, uid, gid, depth + 1);
                        if (q < 0) {
                                r = q;
                                break;
                        }
                } else if (st.st_nlink > 1)
                        continue;
                if (fchownat(child, "", uid, gid, AT_EMPTY_PATH) < 0) {
                        r = -errno;
                        break;
                }
        }
        closedir(d);
        return r;
}

int dir_hand_over(const char *path, uid_t uid, gid_t gid) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        r = open_dir_root_controlled(path, &fd);
        if (r <= 0)
                return r;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid == 0) {
                /* New, or left by a vmgrd that ran everything as root: what root owns in it is handed over. */
                r = chown_root_owned_children(fd, uid, gid, 0);
                if (r < 0)
                        return r;
        } else if (st.st_uid != uid)
                return -EPERM;
        if (fchown(fd, uid, gid) < 0 || fchmod(fd, 0700) < 0)
                return -errno;
        return 1;
}
