/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/snapshot-store.c in a temporary cache directory, no daemon:
 * templates and user snapshots built, committed, cloned, listed and
 * deleted; two builders of one shape (one gets -EBUSY, then -EEXIST); an
 * aborted build and a builder that died (its lock and directory do not
 * block the next one, which removes the directory); eviction of the least
 * recently used templates down to the limit, never the new one nor a user
 * snapshot; a delete while a clone holds its linked disks; copies across
 * file systems that keep a sparse disk sparse; names that would leave the
 * store ("..", "/") refused before they touch a path.
 */

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "snapshot-store.h"
#include "test.h"

static char top[] = "/tmp/test-snapshot-store-XXXXXX";
static char cache[PATH_MAX];
static char err[512];

#define SHAPE(c) ((const char *) (char[65]) { [0 ... 63] = (c), [64] = 0 })

/* top/name, or top/sub/name. */
static char *path_of(const char *sub, const char *name) {
        char *p;
        CHECK(asprintf(&p, "%s/%s%s%s", top, sub ? sub : "", sub ? "/" : "", name) > 0);
        return p;
}

static bool exists(const char *path) {
        struct stat st;
        return lstat(path, &st) == 0;
}

/* A file of size bytes, of which only len at offset data_off are written. */
static void make_sparse(const char *path, off_t size, off_t data_off, size_t len, char fill) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        char *buf = malloc(len);

        CHECK(fd >= 0 && buf);
        memset(buf, fill, len);
        CHECK(pwrite(fd, buf, len, data_off) == (ssize_t) len);
        CHECK(ftruncate(fd, size) == 0);
        close(fd);
        free(buf);
}

static bool same_content(int a, int b) {
        struct stat sa, sb;
        char x[4096], y[4096];

        CHECK(fstat(a, &sa) == 0 && fstat(b, &sb) == 0);
        if (sa.st_size != sb.st_size)
                return false;
        for (off_t off = 0; off < sa.st_size; off += sizeof(x)) {
                ssize_t n = pread(a, x, sizeof(x), off), m = pread(b, y, sizeof(y), off);
                if (n != m || n < 0 || memcmp(x, y, (size_t) n) != 0)
                        return false;
        }
        return true;
}

static bool same_file_content(const char *a, const char *b) {
        int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
        bool r;

        CHECK(fa >= 0 && fb >= 0);
        r = same_content(fa, fb);
        close(fa);
        close(fb);
        return r;
}

/* Count entries of dir starting with prefix. */
static unsigned count_prefix(const char *dir, const char *prefix) {
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        CHECK(d);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

/* Build and commit snapshot (kind, name): state_size bytes of state,
 * n_disks disks made from the sparse test files. Returns commit's result. */
static int build(SnapshotStore *s, SnapshotKind kind, const char *name, size_t state_size, unsigned n_disks) {
        SnapshotBuild *b = NULL;
        SnapshotMeta meta = {
                .spec_json = (char *) "{\"name\":\"db\"}",
                .source = (char *) "g1/db",
                .domain_xml = (char *) "<domain/>",
                .macs = { { 0x6a, 0x01, 1, 2, 3, 4 }, { 0x6a, 0x01, 5, 6, 7, 8 } },
        };
        char *buf;
        int r;

        snprintf(meta.shape, sizeof(meta.shape), "%s", SHAPE('e'));
        r = snapshot_build_begin(s, kind, name, &b, err, sizeof(err));
        if (r < 0)
                return r;
        buf = malloc(state_size);
        CHECK(buf);
        memset(buf, 's', state_size);
        CHECK(write(snapshot_build_state_fd(b), buf, state_size) == (ssize_t) state_size);
        free(buf);
        for (unsigned i = 0; i < n_disks; i++) {
                _cleanup_free_ char *disk = NULL;
                CHECK(asprintf(&disk, "%s/disk-src%u", top, i) > 0);
                CHECK(snapshot_build_add_disk(b, i, disk, err, sizeof(err)) == 0);
        }
        return snapshot_build_commit(b, &meta, err, sizeof(err));
}

static const SnapshotMeta *find(const SnapshotMeta *list, size_t n, SnapshotKind kind, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (list[i].kind == kind && streq(list[i].name, name))
                        return &list[i];
        return NULL;
}

static void free_list(SnapshotMeta *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                snapshot_meta_done(&list[i]);
        free(list);
}

static void test_build_clone_list_delete(SnapshotStore *s) {
        _cleanup_free_ char *tdir = path_of("cache/snapshots/templates", SHAPE('a'));
        _cleanup_free_ char *dest = path_of(NULL, "clone1");
        _cleanup_free_ char *src0 = path_of(NULL, "disk-src0");
        SnapshotClone c = {};
        SnapshotMeta *list;
        size_t n;
        struct stat a, b;
        char buf[8];

        CHECK(build(s, SNAPSHOT_TEMPLATE, SHAPE('a'), 4096, 2) == 0);
        CHECK(exists(tdir));
        CHECK(build(s, SNAPSHOT_TEMPLATE, SHAPE('a'), 4096, 2) == -EEXIST);
        CHECK(strstr(err, "exists already"));

        CHECK(mkdir(dest, 0700) == 0);
        CHECK(snapshot_store_clone(s, SNAPSHOT_TEMPLATE, SHAPE('a'), dest, &c, err, sizeof(err)) == 0);
        CHECK(c.meta.kind == SNAPSHOT_TEMPLATE);
        CHECK_STREQ(c.meta.name, SHAPE('a'));
        CHECK_STREQ(c.meta.shape, SHAPE('e'));
        CHECK_STREQ(c.meta.source, "g1/db");
        CHECK_STREQ(c.meta.spec_json, "{\"name\":\"db\"}");
        CHECK_STREQ(c.meta.domain_xml, "<domain/>");
        CHECK(c.meta.macs[1][5] == 8 && c.meta.macs[0][0] == 0x6a);
        CHECK(c.meta.n_disks == 2);
        CHECK(c.meta.state_bytes >= 4096);
        CHECK(c.meta.size_bytes >= c.meta.state_bytes);
        CHECK(c.meta.last_used_usec >= c.meta.created_usec);
        CHECK(pread(c.state_fd, buf, 4, 0) == 4 && memcmp(buf, "ssss", 4) == 0);
        CHECK(fcntl(c.state_fd, F_GETFD) & FD_CLOEXEC);
        CHECK((fcntl(c.state_fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
        {
                _cleanup_free_ char *want = NULL;
                CHECK(asprintf(&want, "%s/snapshot-disk1.qcow2", dest) > 0);
                CHECK_STREQ(c.disks[1], want);
                CHECK(c.disks[2] == NULL);
        }
        /* Linked (same file system): the snapshot's own inode, same bytes. */
        {
                _cleanup_free_ char *sd = NULL;
                CHECK(asprintf(&sd, "%s/disk0.qcow2", tdir) > 0);
                CHECK(stat(sd, &a) == 0 && stat(c.disks[0], &b) == 0);
                CHECK(a.st_ino == b.st_ino);
                CHECK((a.st_mode & 0777) == 0400);
                CHECK(same_file_content(c.disks[0], src0));
                /* 8 MiB with 8 KiB of data: the snapshot's copy stays sparse. */
                CHECK((uint64_t) a.st_blocks * 512 <= 1u << 20);
        }

        /* last_used was recorded in meta.json. */
        CHECK(snapshot_store_list(s, &list, &n) == 0);
        CHECK(find(list, n, SNAPSHOT_TEMPLATE, SHAPE('a')));
        CHECK(find(list, n, SNAPSHOT_TEMPLATE, SHAPE('a'))->last_used_usec == c.meta.last_used_usec);
        free_list(list, n);

        /* Delete while the clone holds its state fd and linked disks: the
         * clone keeps both, intact; the snapshot is gone. */
        CHECK(snapshot_store_delete(s, SNAPSHOT_TEMPLATE, SHAPE('a')) == 0);
        CHECK(!exists(tdir));
        CHECK(snapshot_store_delete(s, SNAPSHOT_TEMPLATE, SHAPE('a')) == -ENOENT);
        CHECK(pread(c.state_fd, buf, 4, 4092) == 4 && memcmp(buf, "ssss", 4) == 0);
        CHECK(same_file_content(c.disks[0], src0));
        CHECK(stat(c.disks[0], &b) == 0 && b.st_nlink == 1);
        snapshot_clone_done(&c);
        CHECK(c.state_fd < 0 && !c.disks[0]);
        {
                _cleanup_free_ char *dest2 = path_of(NULL, "clone2");
                CHECK(mkdir(dest2, 0700) == 0);
                CHECK(snapshot_store_clone(s, SNAPSHOT_TEMPLATE, SHAPE('a'), dest2, &c, err, sizeof(err)) == -ENOENT);
                CHECK(strstr(err, "no template snapshot"));
                CHECK(count_prefix(dest2, "snapshot-") == 0);
        }
}

static void test_user_snapshots(SnapshotStore *s) {
        _cleanup_free_ char *dest = path_of(NULL, "clone-user");
        SnapshotClone c = {};
        SnapshotMeta *list;
        size_t n;

        CHECK(build(s, SNAPSHOT_USER, "db-loaded", 100, 1) == 0);
        CHECK(build(s, SNAPSHOT_USER, "db-loaded", 100, 1) == -EEXIST);
        CHECK(mkdir(dest, 0700) == 0);
        CHECK(snapshot_store_clone(s, SNAPSHOT_USER, "db-loaded", dest, &c, err, sizeof(err)) == 0);
        CHECK(c.meta.kind == SNAPSHOT_USER && c.meta.n_disks == 1);
        snapshot_clone_done(&c);
        /* A template and a user snapshot live apart: no template of that name. */
        CHECK(snapshot_store_clone(s, SNAPSHOT_TEMPLATE, "db-loaded", dest, &c, err, sizeof(err)) == -EINVAL);

        CHECK(snapshot_store_list(s, &list, &n) == 0);
        CHECK(find(list, n, SNAPSHOT_USER, "db-loaded"));
        CHECK_STREQ(find(list, n, SNAPSHOT_USER, "db-loaded")->source, "g1/db");
        free_list(list, n);

        CHECK(snapshot_store_delete(s, SNAPSHOT_USER, "db-loaded") == 0);
        CHECK(snapshot_store_delete(s, SNAPSHOT_USER, "db-loaded") == -ENOENT);
        CHECK(snapshot_store_list(s, &list, &n) == 0);
        CHECK(!find(list, n, SNAPSHOT_USER, "db-loaded"));
        free_list(list, n);
}

static void test_concurrent_builders(SnapshotStore *s) {
        SnapshotBuild *b1 = NULL, *b2 = NULL;
        SnapshotMeta meta = {};

        CHECK(!snapshot_store_template_building(s, SHAPE('b')));
        CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('b'), &b1, err, sizeof(err)) == 0);
        CHECK(snapshot_store_template_building(s, SHAPE('b')));
        /* The probe did not take the lock from the builder. */
        CHECK(snapshot_store_template_building(s, SHAPE('b')));
        CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('b'), &b2, err, sizeof(err)) == -EBUSY);
        CHECK(b2 == NULL);
        CHECK(strstr(err, "being built"));
        /* Another process (another vmgrd) is refused just the same. */
        {
                pid_t pid = fork();
                int status;
                CHECK(pid >= 0);
                if (pid == 0) {
                        SnapshotBuild *b3 = NULL;
                        _exit(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('b'), &b3, err, sizeof(err)) == -EBUSY ? 0 : 1);
                }
                CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        CHECK(write(snapshot_build_state_fd(b1), "x", 1) == 1);
        CHECK(snapshot_build_commit(b1, &meta, err, sizeof(err)) == 0);
        CHECK(!snapshot_store_template_building(s, SHAPE('b')));
        CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('b'), &b2, err, sizeof(err)) == -EEXIST);
        CHECK(snapshot_store_delete(s, SNAPSHOT_TEMPLATE, SHAPE('b')) == 0);
        /* The delete removed the lock file too; building works again. */
        CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('b'), &b2, err, sizeof(err)) == 0);
        CHECK(snapshot_build_abort(b2) == NULL);
}

static void test_abort_and_crash(SnapshotStore *s) {
        _cleanup_free_ char *tdirs = path_of("cache/snapshots", "templates");
        _cleanup_free_ char *tdir = path_of("cache/snapshots/templates", SHAPE('c'));
        SnapshotBuild *b = NULL;
        SnapshotMeta *list;
        size_t n;
        int status;
        pid_t pid;

        CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('c'), &b, err, sizeof(err)) == 0);
        CHECK(count_prefix(tdirs, ".build-") == 1);
        CHECK(snapshot_build_abort(b) == NULL);
        CHECK(snapshot_build_abort(NULL) == NULL);
        CHECK(count_prefix(tdirs, ".build-") == 0);
        CHECK(!exists(tdir));
        CHECK(!snapshot_store_template_building(s, SHAPE('c')));

        /* A builder that dies halfway: its lock dies with it, its directory
         * stays until the next build of the kind removes it. */
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                SnapshotBuild *d = NULL;
                if (snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('c'), &d, err, sizeof(err)) < 0 ||
                    write(snapshot_build_state_fd(d), "half", 4) != 4)
                        _exit(1);
                _exit(0);       /* no commit, no abort */
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(count_prefix(tdirs, ".build-") == 1);
        CHECK(!snapshot_store_template_building(s, SHAPE('c')));
        CHECK(snapshot_store_list(s, &list, &n) == 0);
        CHECK(!find(list, n, SNAPSHOT_TEMPLATE, SHAPE('c')));
        free_list(list, n);
        CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('c'), &b, err, sizeof(err)) == 0);
        CHECK(count_prefix(tdirs, ".build-") == 1);     /* the new one only */
        /* A live builder's directory is not removed by another's start. */
        {
                SnapshotBuild *u = NULL;
                CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, SHAPE('d'), &u, err, sizeof(err)) == 0);
                CHECK(count_prefix(tdirs, ".build-") == 2);
                CHECK(snapshot_build_abort(u) == NULL);
        }
        CHECK(snapshot_build_abort(b) == NULL);
        CHECK(count_prefix(tdirs, ".build-") == 0);
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) ms * 1000000 };
        nanosleep(&ts, NULL);
}

/* Clones racing a delete and a rebuild of the same snapshot: each clone
 * gets the whole snapshot (every disk, the right bytes) or -ENOENT. */
struct race {
        SnapshotStore *store;
        atomic_bool stop;
        atomic_uint whole, none;
};

static void *race_cloner(void *userdata) {
        struct race *r = userdata;
        char dest[PATH_MAX], error[512];
        static atomic_uint next;

        while (!atomic_load(&r->stop)) {
                SnapshotClone c = { .state_fd = -EBADF };
                int q;

                snprintf(dest, sizeof(dest), "%s/race-%u", top, atomic_fetch_add(&next, 1));
                CHECK(mkdir(dest, 0700) == 0);
                q = snapshot_store_clone(r->store, SNAPSHOT_USER, "racy", dest, &c, error, sizeof(error));
                if (q == -ENOENT) {
                        CHECK(count_prefix(dest, "snapshot-") == 0);
                        atomic_fetch_add(&r->none, 1);
                } else {
                        char src[PATH_MAX];
                        CHECK(q == 0);
                        CHECK(c.meta.n_disks == 2);
                        for (unsigned i = 0; i < 2; i++) {
                                snprintf(src, sizeof(src), "%s/disk-src%u", top, i);
                                CHECK(same_file_content(c.disks[i], src));
                        }
                        snapshot_clone_done(&c);
                        atomic_fetch_add(&r->whole, 1);
                }
                CHECK(rm_rf(dest) == 0);
        }
        return NULL;
}

static void test_clone_delete_race(SnapshotStore *s) {
        struct race r = { .store = s };
        pthread_t threads[3];

        for (size_t i = 0; i < ELEMENTSOF(threads); i++)
                CHECK(pthread_create(&threads[i], NULL, race_cloner, &r) == 0);
        for (unsigned round = 0; round < 40; round++) {
                CHECK(build(s, SNAPSHOT_USER, "racy", 4096, 2) == 0);
                sleep_ms(1);
                CHECK(snapshot_store_delete(s, SNAPSHOT_USER, "racy") == 0);
        }
        atomic_store(&r.stop, true);
        for (size_t i = 0; i < ELEMENTSOF(threads); i++)
                CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(atomic_load(&r.whole) + atomic_load(&r.none) > 0);
        printf("clone/delete race: %u whole, %u none\n", atomic_load(&r.whole), atomic_load(&r.none));
}

static void test_eviction(void) {
        _cleanup_free_ char *ecache = path_of(NULL, "evict-cache");
        _cleanup_free_ char *dest = path_of(NULL, "evict-clone");
        SnapshotStore *s = NULL;
        SnapshotClone c = {};
        SnapshotMeta *list;
        size_t n;

        /* Room for two templates of 1 MiB of state, not three. */
        CHECK(snapshot_store_new(ecache, (5u << 20) / 2, &s) == 0);
        CHECK(build(s, SNAPSHOT_USER, "kept", 3u << 20, 0) == 0);     /* never evicted, never counted */
        CHECK(build(s, SNAPSHOT_TEMPLATE, SHAPE('1'), 1u << 20, 0) == 0);
        sleep_ms(2);
        CHECK(build(s, SNAPSHOT_TEMPLATE, SHAPE('2'), 1u << 20, 0) == 0);
        sleep_ms(2);
        /* Using 1 makes 2 the least recently used. */
        CHECK(mkdir(dest, 0700) == 0);
        CHECK(snapshot_store_clone(s, SNAPSHOT_TEMPLATE, SHAPE('1'), dest, &c, err, sizeof(err)) == 0);
        snapshot_clone_done(&c);
        sleep_ms(2);
        CHECK(build(s, SNAPSHOT_TEMPLATE, SHAPE('3'), 1u << 20, 0) == 0);

        CHECK(snapshot_store_list(s, &list, &n) == 0);
        CHECK(n == 3);
        CHECK(find(list, n, SNAPSHOT_TEMPLATE, SHAPE('1')));
        CHECK(!find(list, n, SNAPSHOT_TEMPLATE, SHAPE('2')));
        CHECK(find(list, n, SNAPSHOT_TEMPLATE, SHAPE('3')));
        CHECK(find(list, n, SNAPSHOT_USER, "kept"));
        free_list(list, n);
        snapshot_store_free(s);

        /* A limit below one template: the new one stays all the same. */
        CHECK(snapshot_store_new(ecache, 0, &s) == 0);
        CHECK(build(s, SNAPSHOT_TEMPLATE, SHAPE('4'), 1u << 20, 0) == 0);
        CHECK(snapshot_store_list(s, &list, &n) == 0);
        CHECK(n == 2);
        CHECK(find(list, n, SNAPSHOT_TEMPLATE, SHAPE('4')));
        CHECK(find(list, n, SNAPSHOT_USER, "kept"));
        free_list(list, n);
        snapshot_store_free(s);
}

static void test_bad_names(SnapshotStore *s) {
        static const char *const bad_user[] = {
                "", "..", ".", "../escape", "a/b", "/tmp/x", ".hidden", "-x", "a b",
                "0123456789012345678901234567890123456789012345678901234567890123",
        };
        static const char *const bad_template[] = {
                "", "..", "../../../../tmp/x", "ABCDEF", "abc",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "../aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        };
        _cleanup_free_ char *dest = path_of(NULL, "clone-bad");
        _cleanup_free_ char *victim = path_of(NULL, "victim");
        SnapshotBuild *b = NULL;
        SnapshotClone c = {};

        CHECK(mkdir(dest, 0700) == 0);
        /* A directory a traversal would reach from user/: cache/victim. */
        CHECK(mkdir(victim, 0700) == 0);
        for (size_t i = 0; i < ELEMENTSOF(bad_user); i++) {
                err[0] = 0;
                CHECK(snapshot_build_begin(s, SNAPSHOT_USER, bad_user[i], &b, err, sizeof(err)) == -EINVAL);
                CHECK(err[0]);
                CHECK(snapshot_store_clone(s, SNAPSHOT_USER, bad_user[i], dest, &c, err, sizeof(err)) == -EINVAL);
                CHECK(snapshot_store_delete(s, SNAPSHOT_USER, bad_user[i]) == -EINVAL);
        }
        CHECK(snapshot_store_delete(s, SNAPSHOT_USER, "../../../victim") == -EINVAL);
        CHECK(exists(victim));
        for (size_t i = 0; i < ELEMENTSOF(bad_template); i++) {
                CHECK(snapshot_build_begin(s, SNAPSHOT_TEMPLATE, bad_template[i], &b, err, sizeof(err)) == -EINVAL);
                CHECK(snapshot_store_clone(s, SNAPSHOT_TEMPLATE, bad_template[i], dest, &c, err, sizeof(err)) == -EINVAL);
                CHECK(snapshot_store_delete(s, SNAPSHOT_TEMPLATE, bad_template[i]) == -EINVAL);
                CHECK(!snapshot_store_template_building(s, bad_template[i]));
        }
        CHECK(count_prefix(dest, "") == 2);     /* . and .. */
}

static void test_copy_sparse(void) {
        _cleanup_free_ char *src = path_of(NULL, "sparse-src");
        char shm[] = "/dev/shm/test-snapshot-store-XXXXXX";
        _cleanup_free_ char *dst = NULL, *dst2 = NULL, *other = NULL;
        struct stat a, b;
        int fd;

        /* 64 MiB with 64 KiB of data in the middle. */
        make_sparse(src, 64 << 20, 32 << 20, 64 << 10, 'd');
        CHECK(mkdtemp(shm));
        CHECK(asprintf(&dst, "%s/copy", shm) > 0);
        fd = open(src, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(snapshot_copy_file(fd, dst, 0400) == 0);
        CHECK(snapshot_copy_file(fd, dst, 0400) == -EEXIST);
        CHECK(stat(src, &a) == 0 && stat(dst, &b) == 0);
        CHECK(b.st_size == a.st_size);
        CHECK((b.st_mode & 0777) == 0400);
        CHECK((uint64_t) b.st_blocks * 512 <= (uint64_t) a.st_blocks * 512 + (1u << 20));
        CHECK(same_file_content(src, dst));

        /* Within one file system too (reflink or copy_file_range). */
        CHECK(asprintf(&dst2, "%s/%s", top, "sparse-copy") > 0);
        CHECK(snapshot_copy_file(fd, dst2, 0600) == 0);
        CHECK(same_file_content(src, dst2));
        CHECK(stat(dst2, &b) == 0 && (uint64_t) b.st_blocks * 512 <= (uint64_t) a.st_blocks * 512 + (1u << 20));
        close(fd);

        /* A clone whose directory is on another file system gets copies. */
        {
                SnapshotStore *s = NULL;
                SnapshotClone c = {};
                _cleanup_free_ char *xcache = path_of(NULL, "xdev-cache");
                struct stat st_top, st_shm;

                CHECK(stat(top, &st_top) == 0 && stat(shm, &st_shm) == 0);
                CHECK(snapshot_store_new(xcache, UINT64_MAX, &s) == 0);
                CHECK(build(s, SNAPSHOT_USER, "xdev", 10, 2) == 0);
                CHECK(snapshot_store_clone(s, SNAPSHOT_USER, "xdev", shm, &c, err, sizeof(err)) == 0);
                CHECK(asprintf(&other, "%s/disk-src1", top) > 0);
                CHECK(same_file_content(c.disks[1], other));
                CHECK(stat(c.disks[1], &b) == 0);
                if (st_top.st_dev != st_shm.st_dev)
                        CHECK(b.st_nlink == 1);         /* a copy, not a link */
                snapshot_clone_done(&c);
                snapshot_store_free(s);
        }
        CHECK(rm_rf(shm) == 0);
}

int main(void) {
        SnapshotStore *s = NULL;
        _cleanup_free_ char *src0 = NULL, *src1 = NULL;

        CHECK(mkdtemp(top));
        snprintf(cache, sizeof(cache), "%s/cache", top);
        CHECK(asprintf(&src0, "%s/disk-src0", top) > 0);
        CHECK(asprintf(&src1, "%s/disk-src1", top) > 0);
        make_sparse(src0, 8 << 20, 1 << 20, 8192, 'a');
        make_sparse(src1, 4 << 20, 0, 4096, 'b');

        CHECK(snapshot_store_new(cache, UINT64_MAX, &s) == 0);
        test_build_clone_list_delete(s);
        test_user_snapshots(s);
        test_concurrent_builders(s);
        test_abort_and_crash(s);
        test_bad_names(s);
        test_clone_delete_race(s);
        snapshot_store_free(s);
        test_eviction();
        test_copy_sparse();

        CHECK(rm_rf(top) == 0);
        TEST_DONE();
}
