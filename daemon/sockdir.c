/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sockdir.h"

#define LINK_NAME "sockdir"             /* RUNTIME/sockdir -> the stand-in */
#define STANDIN_PREFIX "vmgrd-"         /* BASE/vmgrd-XXXXXX */
#define STANDIN_RANDOM 6                /* mkdtemp()'s XXXXXX */
#define RUNTIME_LINK "r"                /* BASE/vmgrd-XXXXXX/r -> the runtime directory */

struct SockDir {
        char *path;                     /* the socket directory */
        char *runtime_link;             /* RUNTIME/sockdir; NULL: no stand-in */
        char *standin;                  /* BASE/vmgrd-XXXXXX */
        int standin_fd;                 /* open while vmgrd runs, with an flock */
};

bool sockdir_fits(const char *dir) {
        return strlen(dir) + SOCKDIR_SUFFIX_MAX < sizeof_field(struct sockaddr_un, sun_path);
}

const char *sockdir_path(const SockDir *d) {
        return d->path;
}

/* Whether base may hold stand-ins: a directory that only root or we may
 * change, or a sticky one (no other user may rename or remove what we make
 * there). Returns 0 or -errno. */
static int base_check(const char *base) {
        struct stat st;

        if (base[0] != '/')
                return -EINVAL;
        if (stat(base, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return -EPERM;
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
                return -EPERM;
        return 0;
}

/* Open target if it is a stand-in this runtime directory may use:
 * base/vmgrd-XXXXXX exactly, a directory (the last component no symlink)
 * of ours with mode 0700, whose "r" leads to runtime_dir. Returns the fd,
 * or -errno with *why saying what was wrong. */
static int standin_open(const char *target, const char *runtime_dir, const char *base, const char **why) {
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(base), len;
        const char *name;
        char link[PATH_MAX];
        struct stat st;
        ssize_t k;

        *why = "it is not a directory vmgrd makes";
        if (strncmp(target, base, n) != 0 || target[n] != '/')
                return -EINVAL;
        name = target + n + 1;
        len = strlen(STANDIN_PREFIX);
        if (strlen(name) != len + STANDIN_RANDOM || strncmp(name, STANDIN_PREFIX, len) != 0)
                return -EINVAL;
        for (size_t i = len; name[i]; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                      (name[i] >= '0' && name[i] <= '9')))
                        return -EINVAL;

        *why = "it cannot be opened as a directory (gone, or a symlink)";
        fd = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *why = "it is not a directory of vmgrd's user with mode 0700";
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != geteuid() || (st.st_mode & 07777) != 0700)
                return -EPERM;
        *why = "its link does not lead to this runtime directory";
        k = readlinkat(fd, RUNTIME_LINK, link, sizeof(link) - 1);
        if (k < 0)
                return -errno;
        link[k] = 0;
        if (strcmp(link, runtime_dir) != 0)
                return -EINVAL;
        return TAKE_FD(fd);
}

/* Remove the stand-in d made or took (its link, then the directory). */
static void standin_destroy(SockDir *d) {
        if (d->standin_fd >= 0 && unlinkat(d->standin_fd, RUNTIME_LINK, 0) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Cannot remove %s/" RUNTIME_LINK ": %m", d->standin);
        if (rmdir(d->standin) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Cannot remove %s: %m", d->standin);
}

/* Record d's stand-in in RUNTIME/sockdir, atomically. Returns 0 or -errno. */
static int standin_record(SockDir *d) {
        _cleanup_free_ char *tmp_link = NULL;
        int r;

        if (asprintf(&tmp_link, "%s.new", d->runtime_link) < 0)
                return -ENOMEM;
        (void) unlink(tmp_link);
        if (symlink(d->standin, tmp_link) < 0 || rename(tmp_link, d->runtime_link) < 0) {
                r = -errno;
                (void) unlink(tmp_link);
                return r;
        }
        return 0;
}

/* Look in base for stand-ins of this runtime directory that no record
 * names: a vmgrd in namespace mode that was killed lost its record (its
 * namespace holder empties the runtime directory). Take the first (the
 * QEMUs of a previous vmgrd may use its paths), remove the others.
 * Returns 1 if one was taken, 0 if none, or -errno. */
static int standin_find(SockDir *d, const char *runtime_dir, const char *base) {
        DIR *dir;
        struct dirent *de;

        dir = opendir(base);
        if (!dir)
                return -errno;
        while ((de = readdir(dir))) {
                _cleanup_free_ char *path = NULL;
                const char *why;
                int fd;

                if (strncmp(de->d_name, STANDIN_PREFIX, strlen(STANDIN_PREFIX)) != 0)
                        continue;
                if (asprintf(&path, "%s/%s", base, de->d_name) < 0) {
                        closedir(dir);
                        return -ENOMEM;
                }
                fd = standin_open(path, runtime_dir, base, &why);
                if (fd < 0)
                        continue; /* not one of ours for this runtime directory */
                if (d->standin_fd >= 0) {
                        SockDir other = { .standin = path, .standin_fd = fd };
                        standin_destroy(&other);
                        safe_close(fd);
                        continue;
                }
                d->standin = TAKE_PTR(path);
                d->standin_fd = fd;
        }
        closedir(dir);
        return d->standin_fd >= 0;
}

/* Make a new stand-in under base. Returns 0 or -errno. */
static int standin_make(SockDir *d, const char *runtime_dir, const char *base) {
        int r;

        if (asprintf(&d->standin, "%s/" STANDIN_PREFIX "XXXXXX", base) < 0) {
                d->standin = NULL;
                return -ENOMEM;
        }
        if (!mkdtemp(d->standin)) /* mode 0700, a name nobody had */
                return -errno;
        d->standin_fd = open(d->standin, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d->standin_fd < 0 || symlinkat(runtime_dir, d->standin_fd, RUNTIME_LINK) < 0) {
                r = -errno;
                standin_destroy(d);
                d->standin_fd = safe_close(d->standin_fd);
                return r;
        }
        return 0;
}

int sockdir_setup(const char *runtime_dir, const char *base, SockDir **ret) {
        SockDir *d;
        char target[PATH_MAX];
        ssize_t n;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return log_oom();
        d->standin_fd = -EBADF;
        if (sockdir_fits(runtime_dir)) {
                d->path = strdup(runtime_dir);
                if (!d->path) {
                        sockdir_free(d);
                        return log_oom();
                }
                *ret = d;
                return 0;
        }

        r = base_check(base);
        if (r < 0) {
                sockdir_free(d);
                return log_error_errno(r,
                                       "Runtime directory %s is too long for the unix sockets below it (at most %zu "
                                       "characters), and %s cannot hold a short directory leading to it: %m; pass a "
                                       "shorter --runtime-dir",
                                       runtime_dir,
                                       sizeof_field(struct sockaddr_un, sun_path) - 1 - SOCKDIR_SUFFIX_MAX, base);
        }
        if (strlen(base) + strlen("/" STANDIN_PREFIX "XXXXXX/" RUNTIME_LINK) + SOCKDIR_SUFFIX_MAX >=
            sizeof_field(struct sockaddr_un, sun_path)) {
                sockdir_free(d);
                return log_error_errno(ENAMETOOLONG,
                                       "Runtime directory %s is too long for the unix sockets below it, and %s too "
                                       "long to hold a short directory leading to it; pass a --runtime-dir of at "
                                       "most %zu characters",
                                       runtime_dir, base,
                                       sizeof_field(struct sockaddr_un, sun_path) - 1 - SOCKDIR_SUFFIX_MAX);
        }
        if (asprintf(&d->runtime_link, "%s/" LINK_NAME, runtime_dir) < 0) {
                d->runtime_link = NULL;
                sockdir_free(d);
                return log_oom();
        }

        /* The stand-in of an earlier vmgrd: QEMUs and libvirtd may still use its paths. */
        n = readlink(d->runtime_link, target, sizeof(target) - 1);
        if (n >= 0) {
                const char *why;
                int fd;

                target[n] = 0;
                fd = standin_open(target, runtime_dir, base, &why);
                if (fd >= 0) {
                        d->standin_fd = fd;
                        d->standin = strdup(target);
                        if (!d->standin) {
                                sockdir_free(d);
                                return log_oom();
                        }
                } else
                        log_warning("Not using %s, where %s leads: %s", target, d->runtime_link, why);
        } else if (errno != ENOENT)
                log_warning_errno(errno, "Cannot read %s: %m", d->runtime_link);

        if (d->standin_fd < 0) {
                bool made = false;

                r = standin_find(d, runtime_dir, base);
                if (r == 0) {
                        r = standin_make(d, runtime_dir, base);
                        made = r >= 0;
                }
                /* Last: a RUNTIME/sockdir that exists names a whole stand-in. */
                if (r >= 0)
                        r = standin_record(d);
                if (r < 0) {
                        if (made)
                                standin_destroy(d);
                        sockdir_free(d);
                        return log_error_errno(r,
                                               "Cannot make a short directory in %s leading to runtime directory "
                                               "%s, whose unix sockets would be too long: %m; pass a --runtime-dir "
                                               "of at most %zu characters",
                                               base, runtime_dir,
                                               sizeof_field(struct sockaddr_un, sun_path) - 1 - SOCKDIR_SUFFIX_MAX);
                }
        }
        /* systemd-tmpfiles skips a directory someone holds an flock on. */
        (void) flock(d->standin_fd, LOCK_EX | LOCK_NB);

        if (asprintf(&d->path, "%s/" RUNTIME_LINK, d->standin) < 0) {
                d->path = NULL;
                sockdir_free(d);
                return log_oom();
        }
        log_debug("Unix sockets live below %s, a short path to %s", d->path, runtime_dir);
        *ret = d;
        return 0;
}

SockDir *sockdir_remove(SockDir *d) {
        char target[PATH_MAX];
        ssize_t n;

        if (!d)
                return NULL;
        if (d->standin) {
                /* RUNTIME/sockdir only if it still names ours. */
                n = readlink(d->runtime_link, target, sizeof(target) - 1);
                if (n >= 0) {
                        target[n] = 0;
                        if (streq(target, d->standin) && unlink(d->runtime_link) < 0)
                                log_warning_errno(errno, "Cannot remove %s: %m", d->runtime_link);
                }
                standin_destroy(d);
        }
        return sockdir_free(d);
}

SockDir *sockdir_free(SockDir *d) {
        if (!d)
                return NULL;
        safe_close(d->standin_fd);
        free(d->path);
        free(d->runtime_link);
        free(d->standin);
        free(d);
        return NULL;
}
