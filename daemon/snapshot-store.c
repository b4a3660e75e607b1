/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The user's snapshots on disk (snapshot-store.h says what and where).
 *
 * Concurrency is left to the file system, because several vmgrds of the
 * user (and several worker threads of each) use one store:
 * - a snapshot is built in a directory .build-NAME.XXXXXX beside its final
 *   place, flocked by its builder for as long as it builds; rename() puts
 *   it in place whole, and fails if the name is taken meanwhile;
 * - templates/SHAPE.lock (flock) lets one builder per shape work;
 * - a build directory whose flock anyone can take belongs to a builder
 *   that died: the next build removes it;
 * - deleting renames the snapshot away (.trash-XXXXXX) before removing
 *   it, so that a reader sees it whole or not at all, and a clone that has
 *   opened its files (or linked its disks) keeps them.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addressing.h"
#include "fd-util.h"
#include "fs-util.h"
#include "json-util.h"
#include "macro.h"
#include "snapshot-store.h"

#define META_MAX (16u << 20)            /* meta.json holds a spec and a domain XML: small */

struct SnapshotStore {
        char *root;                     /* cache_dir/snapshots */
        char *dirs[2];                  /* root/templates, root/user, by SnapshotKind */
        uint64_t max_bytes;
};

struct SnapshotBuild {
        SnapshotStore *store;
        SnapshotKind kind;
        char name[65];
        int lock_fd;                    /* templates/SHAPE.lock, flocked (templates only) */
        int dir_fd;                     /* the build directory, flocked */
        char *dir_path;
        int state_fd;
        bool has_disk[SNAPSHOT_DISKS_MAX];
};

static const char *kind_to_string(SnapshotKind kind) {
        return kind == SNAPSHOT_TEMPLATE ? "template" : "user";
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Whether s is a template's SHAPE: 64 lowercase hex digits. */
static bool shape_is_valid(const char *s) {
        size_t i;

        for (i = 0; s[i]; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return i == 64;
}

/* Checks name for kind, before it becomes part of any path. Returns 0 or
 * -EINVAL with a sentence in error (if any). */
static int name_check(SnapshotKind kind, const char *name, char *error, size_t error_size) {
        const char *reason = NULL;

        if (!name) {
                if (error)
                        snprintf(error, error_size, "A snapshot needs a name.");
                return -EINVAL;
        }
        if (kind == SNAPSHOT_TEMPLATE) {
                if (shape_is_valid(name))
                        return 0;
                if (error)
                        snprintf(error, error_size, "A template's name is its shape: 64 lowercase hex digits.");
                return -EINVAL;
        }
        if (vmgr_name_check(name, &reason) == 0)
                return 0;
        if (error)
                snprintf(error, error_size, "Snapshot name \"%.64s\": %s", name, reason ? reason : "not valid.");
        return -EINVAL;
}

void snapshot_meta_done(SnapshotMeta *m) {
        if (!m)
                return;
        free(m->spec_json);
        free(m->source);
        free(m->domain_xml);
        m->spec_json = m->source = m->domain_xml = NULL;
}

/* ---- meta.json ----------------------------------------------------------- */

static int add_string(struct json_object *o, const char *key, const char *value) {
        struct json_object *v;

        if (!value)
                return 0;
        v = json_object_new_string(value);
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_uint64(struct json_object *o, const char *key, uint64_t value) {
        struct json_object *v = json_object_new_uint64(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* meta as JSON text (*ret, freed by the caller). Returns 0 or -ENOMEM. */
static int meta_to_json(const SnapshotMeta *m, char **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct json_object *macs;
        const char *text;
        char *copy;

        if (!o)
                return -ENOMEM;
        if (add_string(o, "kind", kind_to_string(m->kind)) < 0 ||
            add_string(o, "name", m->name) < 0 ||
            add_string(o, "shape", m->shape) < 0 ||
            add_string(o, "spec", m->spec_json) < 0 ||
            add_string(o, "source", m->source) < 0 ||
            add_string(o, "domain_xml", m->domain_xml) < 0 ||
            add_uint64(o, "n_disks", m->n_disks) < 0 ||
            add_uint64(o, "created_usec", m->created_usec) < 0 ||
            add_uint64(o, "last_used_usec", m->last_used_usec) < 0 ||
            add_uint64(o, "size_bytes", m->size_bytes) < 0 ||
            add_uint64(o, "state_bytes", m->state_bytes) < 0)
                return -ENOMEM;

        macs = json_object_new_array();
        if (!macs || json_object_object_add(o, "macs", macs) < 0) {
                json_object_put(macs);
                return -ENOMEM;
        }
        for (size_t i = 0; i < ELEMENTSOF(m->macs); i++) {
                char buf[18];
                const uint8_t *a = m->macs[i];

                snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
                if (json_object_array_add(macs, json_object_new_string(buf)) < 0)
                        return -ENOMEM;
        }

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return -ENOMEM;
        copy = strdup(text);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static int get_string(struct json_object *o, const char *key, bool required, char **ret) {
        struct json_object *v;
        char *s;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                *ret = NULL;
                return required ? -EBADMSG : 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = strdup(json_object_get_string(v));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int get_uint64(struct json_object *o, const char *key, uint64_t *ret) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        errno = 0;
        *ret = json_object_get_uint64(v);
        return errno ? -EBADMSG : 0;
}

/* Parse meta.json's text into *ret. Returns 0, -EBADMSG if it is not one
 * of ours, or -ENOMEM. */
static int meta_from_json(const char *text, SnapshotMeta *ret) {
        _cleanup_json_ struct json_object *o = json_tokener_parse(text);
        _cleanup_free_ char *kind = NULL, *name = NULL, *shape = NULL;
        SnapshotMeta m = {};
        struct json_object *macs;
        uint64_t n_disks;
        int r;

        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;

        r = get_string(o, "kind", true, &kind);
        if (r < 0)
                return r;
        if (streq(kind, "template"))
                m.kind = SNAPSHOT_TEMPLATE;
        else if (streq(kind, "user"))
                m.kind = SNAPSHOT_USER;
        else
                return -EBADMSG;
        r = get_string(o, "name", true, &name);
        if (r < 0)
                return r;
        r = get_string(o, "shape", true, &shape);
        if (r < 0)
                return r;
        if (name_check(m.kind, name, NULL, 0) < 0 || strlen(shape) >= sizeof(m.shape))
                return -EBADMSG;
        strcpy(m.name, name);
        strcpy(m.shape, shape);

        if (get_uint64(o, "n_disks", &n_disks) < 0 || n_disks > SNAPSHOT_DISKS_MAX ||
            get_uint64(o, "created_usec", &m.created_usec) < 0 ||
            get_uint64(o, "last_used_usec", &m.last_used_usec) < 0 ||
            get_uint64(o, "size_bytes", &m.size_bytes) < 0 ||
            get_uint64(o, "state_bytes", &m.state_bytes) < 0)
                return -EBADMSG;
        m.n_disks = (unsigned) n_disks;

        if (json_object_object_get_ex(o, "macs", &macs)) {
                if (!json_object_is_type(macs, json_type_array))
                        return -EBADMSG;
                for (size_t i = 0; i < ELEMENTSOF(m.macs) && i < json_object_array_length(macs); i++) {
                        const char *s = json_object_get_string(json_object_array_get_idx(macs, i));
                        unsigned a[6];

                        if (!s || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &a[0], &a[1], &a[2], &a[3], &a[4], &a[5]) != 6)
                                return -EBADMSG;
                        for (size_t j = 0; j < 6; j++)
                                m.macs[i][j] = (uint8_t) a[j];
                }
        }

        r = get_string(o, "spec", false, &m.spec_json);
        if (r >= 0)
                r = get_string(o, "source", false, &m.source);
        if (r >= 0)
                r = get_string(o, "domain_xml", false, &m.domain_xml);
        if (r < 0) {
                snapshot_meta_done(&m);
                return r;
        }
        *ret = m;
        return 0;
}

/* Read meta.json in the snapshot directory dfd. Returns 0, -ENOENT,
 * -EBADMSG or -errno. */
static int meta_read_at(int dfd, SnapshotMeta *ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t done = 0;

        fd = openat(dfd, "meta.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size > META_MAX)
                return -EBADMSG;
        text = malloc((size_t) st.st_size + 1);
        if (!text)
                return -ENOMEM;
        while (done < (size_t) st.st_size) {
                ssize_t n = read(fd, text + done, (size_t) st.st_size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        text[done] = 0;
        return meta_from_json(text, ret);
}

/* Write meta.json into the directory dfd atomically: a temporary file of a
 * name no other writer uses (clones of one snapshot update it at once),
 * fsync, rename. Returns 0 or -errno. */
static int meta_write_at(int dfd, const SnapshotMeta *m) {
        static atomic_uint counter;
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        char tmp[64];
        size_t len;
        int r;

        r = meta_to_json(m, &text);
        if (r < 0)
                return r;
        len = strlen(text);

        snprintf(tmp, sizeof(tmp), ".meta.json.%d.%u", (int) getpid(), atomic_fetch_add(&counter, 1));
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = vmgr_write_all(fd, text, len);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0 || renameat(dfd, tmp, dfd, "meta.json") < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        unlinkat(dfd, tmp, 0);
        return r;
}

/* ---- Copying files ------------------------------------------------------- */

/* Copy len bytes at offset off from in to out, by copy_file_range(), else
 * read() and write(). Returns 0 or -errno. */
static int copy_range(int in, int out, off_t off, off_t len) {
        _cleanup_free_ char *buf = NULL;
        const size_t buf_size = 1u << 20;

        while (len > 0) {
                ssize_t n;

                if (!buf) {
                        loff_t a = off, b = off;
                        n = copy_file_range(in, &a, out, &b, (size_t) MIN(len, (off_t) 1 << 30), 0);
                        if (n > 0) {
                                off += n;
                                len -= n;
                                continue;
                        }
                        if (n == 0)
                                return -EIO;    /* the file shrank under us */
                        if (errno == EINTR)
                                continue;
                        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP &&
                            errno != EBADF)
                                return -errno;
                        /* Not between these files: by hand from here on. */
                        buf = malloc(buf_size);
                        if (!buf)
                                return -ENOMEM;
                }

                n = pread(in, buf, (size_t) MIN(len, (off_t) buf_size), off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = pwrite(out, buf + done, (size_t) (n - done), off + done);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                return w < 0 ? -errno : -EIO;
                        done += w;
                }
                off += n;
                len -= n;
        }
        return 0;
}

int snapshot_copy_file(int src_fd, const char *dest, mode_t mode) {
        _cleanup_close_ int out = -EBADF;
        struct stat st;
        off_t off = 0;
        int r;

        if (fstat(src_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (out < 0)
                return -errno;

        /* A reflink shares the blocks: instant, and as sparse as the source. */
        if (ioctl(out, FICLONE, src_fd) == 0)
                return 0;

        /* Else the data extents only, so that the holes of a sparse disk
         * stay holes. */
        while (off < st.st_size) {
                off_t data = lseek(src_fd, off, SEEK_DATA), hole;

                if (data < 0) {
                        if (errno == ENXIO)     /* only a hole is left */
                                break;
                        if (errno != EINVAL)
                                goto fail_errno;
                        data = off;             /* no SEEK_DATA here: everything is data */
                        hole = st.st_size;
                } else {
                        hole = lseek(src_fd, data, SEEK_HOLE);
                        if (hole < 0)
                                goto fail_errno;
                }
                r = copy_range(src_fd, out, data, hole - data);
                if (r < 0)
                        goto fail;
                off = hole;
        }
        if (ftruncate(out, st.st_size) < 0)
                goto fail_errno;
        return 0;

fail_errno:
        r = -errno;
fail:
        unlink(dest);
        return r;
}

/* ---- The store ----------------------------------------------------------- */

static int remove_stale_builds(const char *dir);

int snapshot_store_new(const char *cache_dir, uint64_t max_bytes, SnapshotStore **ret) {
        SnapshotStore *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->max_bytes = max_bytes;
        if (asprintf(&s->root, "%s/snapshots", cache_dir) < 0 ||
            asprintf(&s->dirs[SNAPSHOT_TEMPLATE], "%s/templates", s->root) < 0 ||
            asprintf(&s->dirs[SNAPSHOT_USER], "%s/user", s->root) < 0) {
                snapshot_store_free(s);
                return -ENOMEM;
        }
        for (size_t i = 0; i < ELEMENTSOF(s->dirs); i++) {
                r = mkdir_p(s->dirs[i], 0700);
                if (r < 0) {
                        snapshot_store_free(s);
                        return r;
                }
                (void) remove_stale_builds(s->dirs[i]);
        }
        *ret = s;
        return 0;
}

SnapshotStore *snapshot_store_free(SnapshotStore *s) {
        if (!s)
                return NULL;
        free(s->root);
        for (size_t i = 0; i < ELEMENTSOF(s->dirs); i++)
                free(s->dirs[i]);
        free(s);
        return NULL;
}

static int kind_dir_open(SnapshotStore *s, SnapshotKind kind) {
        int fd = open(s->dirs[kind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* Remove what dead builders and interrupted deletes left in dir: build
 * directories nobody holds the flock of, and trash. Returns 0 or -errno. */
static int remove_stale_builds(const char *dir) {
        DIR *d;
        struct dirent *de;

        d = opendir(dir);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                _cleanup_close_ int fd = -EBADF;

                if (strncmp(de->d_name, ".build-", 7) != 0 && strncmp(de->d_name, ".trash-", 7) != 0)
                        continue;
                fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        continue;
                /* A live builder holds its directory's flock; the flock of a
                 * dead one died with it. */
                if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
                        break;
                (void) rm_rf(path);
        }
        closedir(d);
        return 0;
}

/* Rename kind/name away and remove it. Returns 0, -ENOENT or -errno. */
static int remove_snapshot_dir(SnapshotStore *s, SnapshotKind kind, const char *name) {
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ char *trash = NULL;
        struct stat st;

        dfd = kind_dir_open(s, kind);
        if (dfd < 0)
                return dfd;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOENT;
        /* rename() onto an empty directory replaces it: mkdtemp() gives a
         * name nobody else uses. */
        if (asprintf(&trash, "%s/.trash-XXXXXX", s->dirs[kind]) < 0)
                return -ENOMEM;
        if (!mkdtemp(trash))
                return -errno;
        if (renameat(dfd, name, AT_FDCWD, trash) < 0) {
                int r = -errno;
                rmdir(trash);
                return r == -EEXIST || r == -ENOTEMPTY ? -EIO : r;
        }
        /* Gone from here on. A clone that opened it just before may still
         * write its meta.json in there, so the removal can find the
         * directory not empty: then the next build's clean-up finishes it. */
        (void) rm_rf(trash);
        return 0;
}

/* ---- Making a snapshot --------------------------------------------------- */

/* The template lock of shape, taken without waiting: its fd, -EBUSY if
 * another builder holds it, or -errno. */
static int template_lock(SnapshotStore *s, const char *shape) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s.lock", s->dirs[SNAPSHOT_TEMPLATE], shape) < 0)
                return -ENOMEM;
        for (;;) {
                _cleanup_close_ int fd = -EBADF;
                struct stat a, b;

                fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0)
                        return -errno;
                if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                        return errno == EWOULDBLOCK ? -EBUSY : -errno;
                /* The delete of a template removes its lock file while
                 * holding it: a lock on a file no longer at path locks
                 * nothing, so take the new one. */
                if (fstat(fd, &a) < 0)
                        return -errno;
                if (stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
                        return TAKE_FD(fd);
        }
}

bool snapshot_store_template_building(SnapshotStore *s, const char *shape) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        if (!shape_is_valid(shape))
                return false;
        if (asprintf(&path, "%s/%s.lock", s->dirs[SNAPSHOT_TEMPLATE], shape) < 0)
                return false;
        /* A separate open: a shared lock conflicts only with a builder's
         * exclusive one. */
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return false;
        if (flock(fd, LOCK_SH | LOCK_NB) < 0)
                return errno == EWOULDBLOCK;
        return false;
}

/* A new build directory in dir for name, flocked: *ret_fd and *ret_path.
 * Returns 0 or -errno. */
static int build_dir_make(const char *dir, const char *name, int *ret_fd, char **ret_path) {
        for (unsigned tries = 0; tries < 16; tries++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_close_ int fd = -EBADF;
                struct stat a, b;

                if (asprintf(&path, "%s/.build-%s.XXXXXX", dir, name) < 0)
                        return -ENOMEM;
                if (!mkdtemp(path))
                        return -errno;
                fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        continue;       /* a cleaner took it before we locked it */
                if (flock(fd, LOCK_EX) < 0)
                        return -errno;
                /* Between mkdtemp() and flock() the directory looked
                 * abandoned: make sure no cleaner removed it meanwhile. */
                if (fstat(fd, &a) < 0)
                        return -errno;
                if (lstat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev || a.st_nlink == 0)
                        continue;
                *ret_fd = TAKE_FD(fd);
                *ret_path = TAKE_PTR(path);
                return 0;
        }
        return -EAGAIN;
}

static bool snapshot_exists(SnapshotStore *s, SnapshotKind kind, const char *name) {
        _cleanup_free_ char *path = NULL;
        struct stat st;

        if (asprintf(&path, "%s/%s", s->dirs[kind], name) < 0)
                return false;
        return lstat(path, &st) == 0;
}

int snapshot_build_begin(SnapshotStore *s, SnapshotKind kind, const char *name, SnapshotBuild **ret,
                         char *error, size_t error_size) {
        SnapshotBuild *b;
        int r;

        r = name_check(kind, name, error, error_size);
        if (r < 0)
                return r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->store = s;
        b->kind = kind;
        b->lock_fd = b->dir_fd = b->state_fd = -EBADF;
        strcpy(b->name, name);

        if (kind == SNAPSHOT_TEMPLATE) {
                r = template_lock(s, name);
                if (r < 0) {
                        if (r == -EBUSY)
                                snprintf(error, error_size, "Template %s is being built by another VM.", name);
                        else
                                snprintf(error, error_size, "Cannot lock template %s: %s.", name, strerror(-r));
                        goto fail;
                }
                b->lock_fd = r;
        }
        if (snapshot_exists(s, kind, name)) {
                r = -EEXIST;
                snprintf(error, error_size, "A %s snapshot named %s exists already.", kind_to_string(kind), name);
                goto fail;
        }

        /* Holding the lock, whatever a dead builder left can go. */
        (void) remove_stale_builds(s->dirs[kind]);

        r = build_dir_make(s->dirs[kind], name, &b->dir_fd, &b->dir_path);
        if (r < 0) {
                snprintf(error, error_size, "Cannot make a directory for snapshot %s: %s.", name, strerror(-r));
                goto fail;
        }
        b->state_fd = openat(b->dir_fd, "state", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (b->state_fd < 0) {
                r = -errno;
                snprintf(error, error_size, "Cannot create snapshot %s's state file: %s.", name, strerror(-r));
                goto fail;
        }
        *ret = b;
        return 0;
fail:
        snapshot_build_abort(b);
        return r;
}

int snapshot_build_state_fd(SnapshotBuild *b) {
        return b->state_fd;
}

int snapshot_build_add_disk(SnapshotBuild *b, unsigned index, const char *path, char *error, size_t error_size) {
        _cleanup_close_ int in = -EBADF;
        _cleanup_free_ char *dest = NULL;
        int r;

        if (index >= SNAPSHOT_DISKS_MAX || b->has_disk[index]) {
                snprintf(error, error_size, "Snapshot %s: disk %u is not a valid new disk.", b->name, index);
                return -EINVAL;
        }
        in = open(path, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
                r = -errno;
                snprintf(error, error_size, "Cannot read disk %s for snapshot %s: %s.", path, b->name, strerror(-r));
                return r;
        }
        if (asprintf(&dest, "%s/disk%u.qcow2", b->dir_path, index) < 0)
                return -ENOMEM;
        /* Read-only from here on: clones share it through hard links. */
        r = snapshot_copy_file(in, dest, 0400);
        if (r < 0) {
                snprintf(error, error_size, "Cannot copy disk %s into snapshot %s: %s.", path, b->name, strerror(-r));
                return r;
        }
        b->has_disk[index] = true;
        return 0;
}

/* Blocks of the file name in dfd, in bytes (0 if missing). */
static uint64_t size_at(int dfd, const char *name) {
        struct stat st;

        return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? 0 : (uint64_t) st.st_blocks * 512u;
}

static int fsync_at(int dfd, const char *name) {
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

static int evict_templates(SnapshotStore *s, const char *keep);

int snapshot_build_commit(SnapshotBuild *b, const SnapshotMeta *meta, char *error, size_t error_size) {
        _cleanup_close_ int kfd = -EBADF;
        SnapshotMeta m = *meta;         /* the pointers stay the caller's */
        SnapshotStore *s = b->store;
        SnapshotKind kind = b->kind;
        char name[65];
        unsigned n = 0;
        int r;

        while (n < SNAPSHOT_DISKS_MAX && b->has_disk[n])
                n++;
        for (unsigned i = n; i < SNAPSHOT_DISKS_MAX; i++)
                if (b->has_disk[i]) {
                        snprintf(error, error_size, "Snapshot %s lacks disk %u.", b->name, n);
                        r = -EINVAL;
                        goto finish;
                }

        m.kind = b->kind;
        strcpy(m.name, b->name);
        m.n_disks = n;
        m.created_usec = m.last_used_usec = now_realtime_usec();
        if (fsync(b->state_fd) < 0) {
                r = -errno;
                snprintf(error, error_size, "Cannot write snapshot %s's state: %s.", b->name, strerror(-r));
                goto finish;
        }
        m.state_bytes = size_at(b->dir_fd, "state");
        m.size_bytes = m.state_bytes;
        for (unsigned i = 0; i < n; i++) {
                char disk[32];

                snprintf(disk, sizeof(disk), "disk%u.qcow2", i);
                r = fsync_at(b->dir_fd, disk);
                if (r < 0) {
                        snprintf(error, error_size, "Cannot write snapshot %s's disk %u: %s.", b->name, i,
                                 strerror(-r));
                        goto finish;
                }
                m.size_bytes += size_at(b->dir_fd, disk);
        }

        r = meta_write_at(b->dir_fd, &m);
        if (r >= 0 && fsync(b->dir_fd) < 0)
                r = -errno;
        if (r < 0) {
                snprintf(error, error_size, "Cannot write snapshot %s's description: %s.", b->name, strerror(-r));
                goto finish;
        }

        kfd = kind_dir_open(s, kind);
        if (kfd < 0) {
                r = kfd;
                snprintf(error, error_size, "Cannot open the snapshot directory: %s.", strerror(-r));
                goto finish;
        }
        /* Fails if the name is taken meanwhile (a user snapshot made at once
         * by another caller): a non-empty directory is never replaced. */
        if (renameat(AT_FDCWD, b->dir_path, kfd, b->name) < 0) {
                r = errno == EEXIST || errno == ENOTEMPTY ? -EEXIST : -errno;
                if (r == -EEXIST)
                        snprintf(error, error_size, "A %s snapshot named %s exists already.", kind_to_string(kind),
                                 b->name);
                else
                        snprintf(error, error_size, "Cannot put %s snapshot %s in place: %s.", kind_to_string(kind),
                                 b->name, strerror(-r));
                goto finish;
        }
        free(b->dir_path);
        b->dir_path = NULL;     /* in place: nothing left to remove */
        (void) fsync(kfd);
        r = 0;

finish:
        strcpy(name, b->name);
        snapshot_build_abort(b);
        if (r == 0)
                (void) evict_templates(s, kind == SNAPSHOT_TEMPLATE ? name : NULL);
        return r;
}

SnapshotBuild *snapshot_build_abort(SnapshotBuild *b) {
        if (!b)
                return NULL;
        safe_close(b->state_fd);
        if (b->dir_path)
                (void) rm_rf(b->dir_path);
        free(b->dir_path);
        safe_close(b->dir_fd);          /* after the removal: nobody else removes it meanwhile */
        safe_close(b->lock_fd);
        free(b);
        return NULL;
}

/* ---- Using a snapshot ---------------------------------------------------- */

void snapshot_clone_done(SnapshotClone *c) {
        if (!c)
                return;
        c->state_fd = safe_close(c->state_fd);
        for (size_t i = 0; i < SNAPSHOT_DISKS_MAX; i++) {
                free(c->disks[i]);
                c->disks[i] = NULL;
        }
        snapshot_meta_done(&c->meta);
}

int snapshot_store_clone(SnapshotStore *s, SnapshotKind kind, const char *name, const char *dest_dir,
                         SnapshotClone *ret, char *error, size_t error_size) {
        _cleanup_close_ int kfd = -EBADF, dfd = -EBADF;
        int disk_fds[SNAPSHOT_DISKS_MAX];
        SnapshotClone c = { .state_fd = -EBADF };
        unsigned linked = 0;
        int r;

        for (size_t i = 0; i < SNAPSHOT_DISKS_MAX; i++)
                disk_fds[i] = -EBADF;

        r = name_check(kind, name, error, error_size);
        if (r < 0)
                return r;
        kfd = kind_dir_open(s, kind);
        if (kfd < 0) {
                snprintf(error, error_size, "Cannot open the snapshot directory: %s.", strerror(-kfd));
                return kfd;
        }
        dfd = openat(kfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) {
                r = -errno;
                goto fail_open;
        }
        /* Open everything first: once open, a delete cannot take it away,
         * so the clone has the whole snapshot or (-ENOENT) none of it. */
        r = meta_read_at(dfd, &c.meta);
        if (r < 0)
                goto fail_open;
        c.state_fd = openat(dfd, "state", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (c.state_fd < 0) {
                r = -errno;
                goto fail_open;
        }
        for (unsigned i = 0; i < c.meta.n_disks; i++) {
                char disk[32];

                snprintf(disk, sizeof(disk), "disk%u.qcow2", i);
                disk_fds[i] = openat(dfd, disk, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (disk_fds[i] < 0) {
                        r = -errno;
                        goto fail_open;
                }
        }

        for (; linked < c.meta.n_disks; linked++) {
                char disk[32];

                snprintf(disk, sizeof(disk), "disk%u.qcow2", linked);
                if (asprintf(&c.disks[linked], "%s/snapshot-disk%u.qcow2", dest_dir, linked) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (linkat(dfd, disk, AT_FDCWD, c.disks[linked], 0) == 0)
                        continue;
                r = -errno;
                /* Another file system (EXDEV), hard links not allowed, or
                 * deleted since we opened it: a copy of what we hold. */
                if (r != -EXDEV && r != -ENOENT && r != -EPERM && r != -EMLINK)
                        goto fail_link;
                r = snapshot_copy_file(disk_fds[linked], c.disks[linked], 0400);
                if (r < 0)
                        goto fail_link;
        }

        /* Used now: what eviction goes by. A snapshot deleted meanwhile has
         * no place to record it, which does not matter. */
        c.meta.last_used_usec = now_realtime_usec();
        (void) meta_write_at(dfd, &c.meta);

        for (size_t i = 0; i < SNAPSHOT_DISKS_MAX; i++)
                safe_close(disk_fds[i]);
        *ret = c;
        return 0;

fail_open:
        if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP) {
                r = -ENOENT;
                snprintf(error, error_size, "There is no %s snapshot named %s.", kind_to_string(kind), name);
        } else if (r == -EBADMSG)
                snprintf(error, error_size, "The %s snapshot %s is damaged; delete it.", kind_to_string(kind), name);
        else
                snprintf(error, error_size, "Cannot open the %s snapshot %s: %s.", kind_to_string(kind), name,
                         strerror(-r));
        goto fail;
fail_link:
        snprintf(error, error_size, "Cannot put disk %u of snapshot %s into %s: %s.", linked, name, dest_dir,
                 strerror(-r));
        free(c.disks[linked]);
        c.disks[linked] = NULL;
fail:
        for (unsigned i = 0; i < linked; i++)
                (void) unlink(c.disks[i]);
        for (size_t i = 0; i < SNAPSHOT_DISKS_MAX; i++)
                safe_close(disk_fds[i]);
        snapshot_clone_done(&c);
        return r;
}

/* ---- Listing and deleting ------------------------------------------------ */

/* Append the snapshots of kind to *list. Returns 0 or -errno. */
static int list_kind(SnapshotStore *s, SnapshotKind kind, SnapshotMeta **list, size_t *n, size_t *allocated) {
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir(s->dirs[kind]);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_close_ int fd = -EBADF;
                SnapshotMeta m;

                if (de->d_name[0] == '.' || name_check(kind, de->d_name, NULL, 0) < 0)
                        continue;       /* build and trash directories, lock files */
                fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        continue;       /* deleted meanwhile, or not ours */
                if (meta_read_at(fd, &m) < 0)
                        continue;
                if (m.kind != kind || !streq(m.name, de->d_name)) {
                        snapshot_meta_done(&m);
                        continue;
                }
                if (*n == *allocated) {
                        size_t k = *allocated ? *allocated * 2 : 16;
                        SnapshotMeta *p = reallocarray(*list, k, sizeof(**list));
                        if (!p) {
                                snapshot_meta_done(&m);
                                r = -ENOMEM;
                                break;
                        }
                        *list = p;
                        *allocated = k;
                }
                (*list)[(*n)++] = m;
        }
        closedir(d);
        return r;
}

int snapshot_store_list(SnapshotStore *s, SnapshotMeta **ret, size_t *ret_n) {
        SnapshotMeta *list = NULL;
        size_t n = 0, allocated = 0;
        int r;

        r = list_kind(s, SNAPSHOT_TEMPLATE, &list, &n, &allocated);
        if (r >= 0)
                r = list_kind(s, SNAPSHOT_USER, &list, &n, &allocated);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        snapshot_meta_done(&list[i]);
                free(list);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int snapshot_store_delete(SnapshotStore *s, SnapshotKind kind, const char *name) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        r = name_check(kind, name, NULL, 0);
        if (r < 0)
                return r;
        if (kind == SNAPSHOT_TEMPLATE) {
                /* A template being built is not there yet; one that is there
                 * needs no lock to go. Remove the lock file only while holding
                 * it (template_lock() knows). */
                lock_fd = template_lock(s, name);
        }
        r = remove_snapshot_dir(s, kind, name);
        if (lock_fd >= 0) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s.lock", s->dirs[SNAPSHOT_TEMPLATE], name) >= 0)
                        (void) unlink(path);
        }
        return r;
}

static int meta_compare_last_used(const void *a, const void *b) {
        const SnapshotMeta *x = a, *y = b;

        return x->last_used_usec < y->last_used_usec ? -1 : x->last_used_usec > y->last_used_usec;
}

/* Delete templates, least recently used first, until those left take at
 * most max_bytes; never keep (just made). Returns 0 or -errno. */
static int evict_templates(SnapshotStore *s, const char *keep) {
        SnapshotMeta *list = NULL;
        size_t n = 0, allocated = 0;
        uint64_t total = 0;
        int r;

        r = list_kind(s, SNAPSHOT_TEMPLATE, &list, &n, &allocated);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                total += list[i].size_bytes;
        if (n > 0)
                qsort(list, n, sizeof(*list), meta_compare_last_used);
        for (size_t i = 0; i < n && total > s->max_bytes; i++) {
                if (keep && streq(list[i].name, keep))
                        continue;
                if (snapshot_store_delete(s, SNAPSHOT_TEMPLATE, list[i].name) >= 0)
                        total -= list[i].size_bytes;
        }
        for (size_t i = 0; i < n; i++)
                snapshot_meta_done(&list[i]);
        free(list);
        return 0;
}
