/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/disk.c with the real qemu-img, in a temporary directory: the base
 * cache (format detection, content hash, index, concurrent fillers from
 * several processes and threads), overlays and blank disks.
 */

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "disk.h"
#include "fs-util.h"
#include "macro.h"
#include "spawn.h"
#include "test.h"

static char dir[] = "/tmp/test-disk-XXXXXX";

static char *path_in(const char *name) {
        char *p;
        CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

/* A raw image of size bytes: a pattern derived from seed every 1 MiB and
 * holes in between. */
static void make_raw(const char *path, off_t size, unsigned seed) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        char block[4096];

        CHECK(fd >= 0);
        for (off_t off = 0; off < size; off += 1024 * 1024) {
                size_t len = (size_t) (size - off < (off_t) sizeof(block) ? size - off : (off_t) sizeof(block));
                for (size_t i = 0; i < len; i++)
                        block[i] = (char) ((i * 31 + (size_t) off / 4096 + seed) & 0xff);
                CHECK(pwrite(fd, block, len, off) == (ssize_t) len);
        }
        CHECK(ftruncate(fd, size) == 0);
        close(fd);
}

static void qemu_img(char *const argv[]) {
        char err[256];
        SpawnResult res;

        CHECK(spawn_run(argv, 60000000, err, sizeof(err), &res) == 0);
        if (!spawn_exited_with(&res, 0))
                fprintf(stderr, "qemu-img: %s\n", err);
        CHECK(spawn_exited_with(&res, 0));
}

static bool same_content(const char *a, const char *b) {
        char *argv[] = { (char *) "/usr/bin/cmp", (char *) "-s", (char *) a, (char *) b, NULL };
        SpawnResult res;

        CHECK(spawn_run(argv, 0, NULL, 0, &res) == 0);
        return spawn_exited_with(&res, 0);
}

static void sha256_file_hex(const char *path, char out[65]) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char d[EVP_MAX_MD_SIZE], buf[65536];
        unsigned len;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        CHECK(fd >= 0 && ctx);
        CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                CHECK(EVP_DigestUpdate(ctx, buf, (size_t) n) == 1);
        CHECK(n == 0);
        CHECK(EVP_DigestFinal_ex(ctx, d, &len) == 1 && len == 32);
        for (unsigned i = 0; i < len; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
        EVP_MD_CTX_free(ctx);
        close(fd);
}

/* Names in directory d, sorted is not needed: how many, and whether one starts with prefix. */
static size_t count_entries(const char *d, const char *prefix, size_t *n_prefixed) {
        DIR *dd = opendir(d);
        struct dirent *de;
        size_t n = 0, p = 0;

        CHECK(dd);
        while ((de = readdir(dd))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                n++;
                if (prefix && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        p++;
        }
        closedir(dd);
        if (n_prefixed)
                *n_prefixed = p;
        return n;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* The qcow2 header of path: virtual size and backing file name ("" if none). */
static void qcow2_header(const char *path, uint64_t *size, char *backing, size_t backing_size) {
        uint8_t h[32];
        uint64_t off, sz;
        uint32_t len;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        CHECK(fd >= 0);
        CHECK(pread(fd, h, sizeof(h), 0) == (ssize_t) sizeof(h));
        CHECK(memcmp(h, "QFI\xfb", 4) == 0);
        memcpy(&off, h + 8, 8);
        memcpy(&len, h + 16, 4);
        memcpy(&sz, h + 24, 8);
        off = be64toh(off);
        len = be32toh(len);
        *size = be64toh(sz);
        CHECK(len < backing_size);
        if (off) {
                CHECK(pread(fd, backing, len, (off_t) off) == (ssize_t) len);
                backing[len] = 0;
        } else
                backing[0] = 0;
        close(fd);
}

static void test_base_raw(void) {
        char *image = path_in("image.raw"), *cache = path_in("cache1"), *base = NULL, *base2 = NULL;
        char err[VMGR_ERROR_MAX] = "", hex[65], *expected = NULL;
        VmgrDiskFormat format = VMGR_DISK_FORMAT_AUTO;
        struct stat st, st_image;
        uint64_t t0, slow, fast;

        make_raw(image, 64 * 1024 * 1024 + 512, 1);
        sha256_file_hex(image, hex);

        t0 = now_usec();
        CHECK(disk_base_get(cache, image, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == 0);
        slow = now_usec() - t0;
        CHECK(format == VMGR_DISK_FORMAT_RAW);
        CHECK(asprintf(&expected, "%s/disks/%s.raw", cache, hex) > 0);
        CHECK_STREQ(base, expected);
        CHECK(same_content(image, base));
        CHECK(stat(base, &st) == 0 && (st.st_mode & 07777) == 0444);
        /* Holes stay holes: 65 blocks of data, far less than 64 MiB allocated. */
        CHECK(stat(image, &st_image) == 0);
        CHECK(st.st_size == st_image.st_size);
        CHECK(st.st_blocks * 512 < 16 * 1024 * 1024);

        /* Cached: the index answers without hashing. */
        t0 = now_usec();
        CHECK(disk_base_get(cache, image, VMGR_DISK_FORMAT_RAW, &base2, &format, err, sizeof(err)) == 0);
        fast = now_usec() - t0;
        CHECK_STREQ(base2, base);
        CHECK(format == VMGR_DISK_FORMAT_RAW);
        printf("# 64 MiB raw image: first %.1f ms (copy + hash), cached %.3f ms\n", slow / 1000.0, fast / 1000.0);
        CHECK(fast < slow);
        free(base2);

        /* A changed image gets a new base; the old one stays for its overlays. */
        make_raw(image, 64 * 1024 * 1024 + 512, 2);
        CHECK(disk_base_get(cache, image, VMGR_DISK_FORMAT_AUTO, &base2, &format, err, sizeof(err)) == 0);
        CHECK(strcmp(base2, base) != 0);
        CHECK(same_content(image, base2));
        CHECK(access(base, F_OK) == 0);
        free(base2);

        /* The same bytes under another file name share the base. */
        char *copy = path_in("copy.raw");
        make_raw(copy, 64 * 1024 * 1024 + 512, 1);
        CHECK(disk_base_get(cache, copy, VMGR_DISK_FORMAT_AUTO, &base2, &format, err, sizeof(err)) == 0);
        CHECK_STREQ(base2, base);
        free(base2);

        /* Nothing else in the cache: two bases, the index, the lock. */
        size_t n_tmp;
        char *disks = path_in("cache1/disks");
        CHECK(count_entries(disks, ".tmp-", &n_tmp) == 4 && n_tmp == 0);
        char *index = path_in("cache1/disks/index");
        CHECK(count_entries(index, NULL, NULL) == 3);

        free(index);
        free(disks);
        free(copy);
        free(expected);
        free(base);
        free(cache);
        free(image);
}

static void test_base_qcow2(void) {
        char *image = path_in("image.qcow2"), *cache = path_in("cache2"), *base = NULL, *raw = path_in("small.raw");
        char *backed = path_in("backed.qcow2");
        char err[VMGR_ERROR_MAX] = "", hex[65], *expected = NULL;
        VmgrDiskFormat format;

        qemu_img((char *const[]) { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", image, "16M", NULL });
        sha256_file_hex(image, hex);

        CHECK(disk_base_get(cache, image, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == 0);
        CHECK(format == VMGR_DISK_FORMAT_QCOW2);
        CHECK(asprintf(&expected, "%s/disks/%s.qcow2", cache, hex) > 0);
        CHECK_STREQ(base, expected);
        CHECK(same_content(image, base));
        free(base);
        free(expected);

        /* Explicitly raw: the same bytes, read as raw. */
        CHECK(disk_base_get(cache, image, VMGR_DISK_FORMAT_RAW, &base, &format, err, sizeof(err)) == 0);
        CHECK(format == VMGR_DISK_FORMAT_RAW);
        CHECK(asprintf(&expected, "%s/disks/%s.raw", cache, hex) > 0);
        CHECK_STREQ(base, expected);
        free(base);
        free(expected);

        /* Said qcow2, is not. */
        make_raw(raw, 1024 * 1024, 3);
        format = 99;
        CHECK(disk_base_get(cache, raw, VMGR_DISK_FORMAT_QCOW2, &base, &format, err, sizeof(err)) == -EINVAL);
        CHECK(format == 99);
        CHECK(strstr(err, "not a qcow2 image"));

        /* A qcow2 image with a backing file cannot be cached. */
        qemu_img((char *const[]) { "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image,
                                   backed, NULL });
        CHECK(disk_base_get(cache, backed, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, "backing file"));

        free(backed);
        free(raw);
        free(cache);
        free(image);
}

static void test_base_errors(void) {
        char *cache = path_in("cache3"), *missing = path_in("missing.img"), *empty = path_in("empty.img");
        char err[VMGR_ERROR_MAX] = "", *base = (char *) "untouched";
        VmgrDiskFormat format = 99;
        int fd;

        CHECK(disk_base_get(cache, missing, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == -ENOENT);
        CHECK(strstr(err, missing) && strstr(err, "no such image"));
        CHECK(disk_base_get(cache, dir, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, "not a regular file"));
        fd = open(empty, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        CHECK(fd >= 0);
        close(fd);
        CHECK(disk_base_get(cache, empty, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == -EINVAL);
        CHECK(strstr(err, "empty"));
        CHECK(disk_base_get(cache, "relative.img", VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) ==
              -EINVAL);
        CHECK(disk_base_get("relative", empty, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == -EINVAL);
        CHECK_STREQ(base, "untouched");
        CHECK(format == 99);
        /* Failed calls leave no cache behind. */
        CHECK(access(cache, F_OK) < 0);

        /* The error's words (%m), and never more than error_size bytes. */
        char *in_file = path_in("empty.img/cache"), *image_small = path_in("image.raw"), small[16];
        memset(small, 'x', sizeof(small));
        CHECK(disk_base_get(in_file, image_small, VMGR_DISK_FORMAT_AUTO, &base, &format, small, 12) == -ENOTDIR);
        CHECK(strlen(small) == 11 && small[12] == 'x');
        CHECK(disk_base_get(in_file, image_small, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) ==
              -ENOTDIR);
        CHECK(strstr(err, "cannot create ") && strstr(err, ": Not a directory"));
        free(image_small);
        free(in_file);

        free(empty);
        free(missing);
        free(cache);
}

/* Four processes, each with two threads, fill the same base at once. */
static void *thread_get(void *arg) {
        char *const *paths = arg, err[VMGR_ERROR_MAX], *base = NULL;
        VmgrDiskFormat format;

        if (disk_base_get(paths[0], paths[1], VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) < 0) {
                fprintf(stderr, "disk_base_get: %s\n", err);
                return NULL;
        }
        return base;
}

static void test_base_concurrent(void) {
        char *image = path_in("concurrent.raw"), *cache = path_in("cache4"), *disks = path_in("cache4/disks");
        char *paths[] = { cache, image }, hex[65], *expected = NULL;
        pid_t pids[4];
        int pfd[2];
        size_t n_tmp;

        make_raw(image, 48 * 1024 * 1024, 4);
        sha256_file_hex(image, hex);
        CHECK(asprintf(&expected, "%s/%s.raw", disks, hex) > 0);
        CHECK(pipe2(pfd, O_CLOEXEC) == 0);

        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                pids[i] = fork();
                CHECK(pids[i] >= 0);
                if (pids[i] == 0) {
                        pthread_t t[2];
                        void *res[2];
                        char c;
                        /* Start together. */
                        close(pfd[1]);
                        (void) !read(pfd[0], &c, 1);
                        for (size_t k = 0; k < 2; k++)
                                if (pthread_create(&t[k], NULL, thread_get, paths) != 0)
                                        _exit(2);
                        for (size_t k = 0; k < 2; k++)
                                if (pthread_join(t[k], &res[k]) != 0 || !res[k] || strcmp(res[k], expected) != 0)
                                        _exit(1);
                        _exit(0);
                }
        }
        close(pfd[0]);
        close(pfd[1]); /* go */
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                int status;
                CHECK(waitpid(pids[i], &status, 0) == pids[i]);
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        /* One base, one index entry, the lock; no temporary file. */
        CHECK(count_entries(disks, ".tmp-", &n_tmp) == 3 && n_tmp == 0);
        CHECK(access(expected, F_OK) == 0);
        CHECK(same_content(image, expected));

        free(expected);
        free(disks);
        free(cache);
        free(image);
}

static void test_overlay(void) {
        char *image = path_in("ov.raw"), *cache = path_in("cache5"), *overlay = path_in("vm-disk.qcow2");
        char *missing_base = path_in("no-such-base.raw"), *bad = path_in("bad-overlay.qcow2");
        char err[VMGR_ERROR_MAX] = "", backing[4096], *base = NULL;
        VmgrDiskFormat format;
        struct stat st1, st2;
        uint64_t size;
        size_t n_tmp;

        make_raw(image, 32 * 1024 * 1024, 5);
        CHECK(disk_base_get(cache, image, VMGR_DISK_FORMAT_AUTO, &base, &format, err, sizeof(err)) == 0);

        CHECK(disk_overlay_create(base, format, overlay, err, sizeof(err)) == 0);
        qcow2_header(overlay, &size, backing, sizeof(backing));
        CHECK(size == 32 * 1024 * 1024);
        CHECK_STREQ(backing, base);
        qemu_img((char *const[]) { "/usr/bin/qemu-img", "check", "-q", overlay, NULL });

        /* Kept as it is: it holds the VM's disk. */
        CHECK(stat(overlay, &st1) == 0);
        CHECK(disk_overlay_create(base, format, overlay, err, sizeof(err)) == 0);
        CHECK(stat(overlay, &st2) == 0);
        CHECK(st1.st_ino == st2.st_ino && st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec &&
              st1.st_mtim.tv_sec == st2.st_mtim.tv_sec);

        /* qemu-img's complaint comes back, and nothing is left behind. */
        CHECK(disk_overlay_create(missing_base, VMGR_DISK_FORMAT_RAW, bad, err, sizeof(err)) == -EIO);
        CHECK(strstr(err, "no-such-base.raw"));
        CHECK(strstr(err, bad) && !strstr(err, ".tmp-"));
        printf("# overlay on a missing base: %s\n", err);
        CHECK(access(bad, F_OK) < 0);
        CHECK(count_entries(dir, "bad-overlay", &n_tmp) > 0 && n_tmp == 0);

        CHECK(disk_overlay_create("relative", VMGR_DISK_FORMAT_RAW, bad, err, sizeof(err)) == -EINVAL);
        CHECK(disk_overlay_create(base, VMGR_DISK_FORMAT_AUTO, bad, err, sizeof(err)) == -EINVAL);
        /* Something that is not a file is in the way. */
        CHECK(disk_overlay_create(base, format, dir, err, sizeof(err)) == -EEXIST);

        free(bad);
        free(missing_base);
        free(base);
        free(overlay);
        free(cache);
        free(image);
}

static void test_blank(void) {
        char *path = path_in("blank.qcow2");
        char err[VMGR_ERROR_MAX] = "", backing[64];
        struct stat st1, st2;
        uint64_t size;

        CHECK(disk_blank_create(path, 100, err, sizeof(err)) == 0);
        qcow2_header(path, &size, backing, sizeof(backing));
        CHECK(size == 100ULL * 1024 * 1024);
        CHECK_STREQ(backing, "");
        CHECK(stat(path, &st1) == 0);
        CHECK(disk_blank_create(path, 200, err, sizeof(err)) == 0);
        CHECK(stat(path, &st2) == 0);
        CHECK(st1.st_ino == st2.st_ino);
        qcow2_header(path, &size, backing, sizeof(backing));
        CHECK(size == 100ULL * 1024 * 1024);

        CHECK(disk_blank_create(path, 0, err, sizeof(err)) == -EINVAL);
        CHECK(disk_blank_create("blank.qcow2", 1, err, sizeof(err)) == -EINVAL);
        free(path);
}

int main(void) {
        if (access(DISK_QEMU_IMG_PATH, X_OK) < 0) {
                printf("# skipped: %s not found (qemu-utils)\n", DISK_QEMU_IMG_PATH);
                return 77;
        }
        CHECK(mkdtemp(dir));

        test_base_raw();
        test_base_qcow2();
        test_base_errors();
        test_base_concurrent();
        test_overlay();
        test_blank();

        CHECK(rm_rf(dir) == 0);
        TEST_DONE();
}
