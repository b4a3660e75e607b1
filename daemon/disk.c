/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk.h"
#include "fs-util.h"
#include "macro.h"
#include "spawn.h"

#define COPY_CHUNK (1024 * 1024)
#define SPARSE_BLOCK (64 * 1024)        /* all-zero blocks of this size are left as holes */
#define QEMU_IMG_TIMEOUT_USEC (120ULL * 1000000ULL)
#define DIGEST_HEX_LEN (2 * SHA256_DIGEST_SIZE)

/* qcow2 header fields (big endian), see QEMU's docs/interop/qcow2.txt. */
#define QCOW2_MAGIC "QFI\xfb"
#define QCOW2_OFF_VERSION 4
#define QCOW2_OFF_BACKING_FILE_OFFSET 8
#define QCOW2_OFF_INCOMPATIBLE_FEATURES 72
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_HEADER_MIN 104            /* version 3 header up to header_length */

const char *disk_format_to_string(VmgrDiskFormat f) {
        switch (f) {
        case VMGR_DISK_FORMAT_RAW:
                return "raw";
        case VMGR_DISK_FORMAT_QCOW2:
                return "qcow2";
        case VMGR_DISK_FORMAT_AUTO:
        default:
                return "auto";
        }
}

static void hex(const uint8_t *data, size_t len, char *out) {
        for (size_t i = 0; i < len; i++)
                snprintf(out + 2 * i, 3, "%02x", data[i]);
}

static bool is_digest_hex(const char *s) {
        if (strlen(s) != DIGEST_HEX_LEN)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* The format the image's bytes are to be read as. Returns 0 and *ret, or
 * -EINVAL with error set. */
static int format_resolve(int fd, const char *image, VmgrDiskFormat requested, VmgrDiskFormat *ret, char *error,
                          size_t error_size) {
        uint8_t h[QCOW2_HEADER_MIN] = {};
        ssize_t n;
        bool qcow2;

        do
                n = pread(fd, h, sizeof(h), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                return vmgr_error_printf(error, error_size, errno, "%s: cannot read: %m", image);
        }
        qcow2 = n >= 4 && memcmp(h, QCOW2_MAGIC, 4) == 0;

        if (requested == VMGR_DISK_FORMAT_RAW) {
                /* Explicitly raw: the bytes are the disk, whatever they look like. */
                *ret = VMGR_DISK_FORMAT_RAW;
                return 0;
        }
        if (!qcow2) {
                if (requested == VMGR_DISK_FORMAT_QCOW2) {
                        snprintf(error, error_size, "%s: not a qcow2 image (no qcow2 magic)", image);
                        return -EINVAL;
                }
                *ret = VMGR_DISK_FORMAT_RAW;
                return 0;
        }

        uint32_t version;
        uint64_t backing, incompat = 0;

        memcpy(&version, h + QCOW2_OFF_VERSION, sizeof(version));
        version = be32toh(version);
        if (n < (ssize_t) sizeof(h) || (version != 2 && version != 3)) {
                snprintf(error, error_size, "%s: unsupported qcow2 image (version %u)", image, version);
                return -EINVAL;
        }
        memcpy(&backing, h + QCOW2_OFF_BACKING_FILE_OFFSET, sizeof(backing));
        if (version == 3)
                memcpy(&incompat, h + QCOW2_OFF_INCOMPATIBLE_FEATURES, sizeof(incompat));
        /* A copy in the cache would lose or misdirect such a reference. */
        if (be64toh(backing) != 0) {
                snprintf(error, error_size,
                         "%s: qcow2 image has a backing file; make a standalone copy with "
                         "\"qemu-img convert -O qcow2\"", image);
                return -EINVAL;
        }
        if (be64toh(incompat) & QCOW2_INCOMPAT_DATA_FILE) {
                snprintf(error, error_size, "%s: qcow2 image has an external data file", image);
                return -EINVAL;
        }
        *ret = VMGR_DISK_FORMAT_QCOW2;
        return 0;
}

/* The index key of one version of a file: any write changes its ctime. */
static void stamp_key(const struct stat *st, char out[DIGEST_HEX_LEN + 1]) {
        char stamp[160];
        uint8_t d[SHA256_DIGEST_SIZE];
        struct sha256_ctx ctx;

        snprintf(stamp, sizeof(stamp), "%llu %llu %lld %lld.%09ld %lld.%09ld", (unsigned long long) st->st_dev,
                 (unsigned long long) st->st_ino, (long long) st->st_size, (long long) st->st_mtim.tv_sec,
                 st->st_mtim.tv_nsec, (long long) st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
        sha256_init(&ctx);
        sha256_update(&ctx, strlen(stamp), (const uint8_t *) stamp);
        sha256_digest(&ctx, sizeof(d), d);
        hex(d, sizeof(d), out);
}

static bool same_version(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* DISKS/DIGEST.FORMAT as a new string, or NULL (out of memory). */
static char *base_path(const char *disks, const char *digest, VmgrDiskFormat format) {
        char *p;

        return asprintf(&p, "%s/%s.%s", disks, digest, disk_format_to_string(format)) < 0 ? NULL : p;
}

/* Look key up in the index. Returns 1 and *ret (the base, which exists), 0
 * if there is no usable entry, or -ENOMEM. */
static int index_lookup(const char *disks, const char *key, VmgrDiskFormat format, char **ret) {
        _cleanup_free_ char *entry = NULL, *digest = NULL, *base = NULL;
        struct stat st;

        if (asprintf(&entry, "%s/index/%s", disks, key) < 0)
                return -ENOMEM;
        if (read_file(entry, DIGEST_HEX_LEN + 2, &digest) < 0)
                return 0;
        digest[strcspn(digest, "\n")] = 0;
        if (!is_digest_hex(digest))
                return 0;
        base = base_path(disks, digest, format);
        if (!base)
                return -ENOMEM;
        if (stat(base, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        *ret = TAKE_PTR(base);
        return 1;
}

/* Remove .tmp-* left in disks by a filler that died; called with the lock held,
 * when no other filler can be at work. */
static void remove_stale_temporaries(const char *disks) {
        DIR *d = opendir(disks);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, ".tmp-", 5) == 0)
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

static bool all_zero(const uint8_t *p, size_t n) {
        return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, off_t off) {
        while (n > 0) {
                ssize_t k = pwrite(fd, p, n, off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
                off += k;
        }
        return 0;
}

/* Copy size bytes of src to dst and hash them in the same pass; all-zero
 * blocks become holes (raw images are usually sparse). Returns 0 and the
 * digest in hex, -EAGAIN if src got shorter, or -errno. */
static int copy_and_hash(int src, int dst, off_t size, char digest[DIGEST_HEX_LEN + 1]) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct sha256_ctx ctx;
        uint8_t d[SHA256_DIGEST_SIZE];
        off_t off = 0;
        int r;

        buf = malloc(COPY_CHUNK);
        if (!buf)
                return -ENOMEM;
        sha256_init(&ctx);
        while (off < size) {
                size_t want = (size_t) (size - off < COPY_CHUNK ? size - off : COPY_CHUNK);
                ssize_t n = pread(src, buf, want, off);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EAGAIN;
                sha256_update(&ctx, (size_t) n, buf);
                for (size_t i = 0; i < (size_t) n; i += SPARSE_BLOCK) {
                        size_t len = (size_t) n - i < SPARSE_BLOCK ? (size_t) n - i : SPARSE_BLOCK;
                        if (all_zero(buf + i, len))
                                continue;
                        r = pwrite_all(dst, buf + i, len, off + (off_t) i);
                        if (r < 0)
                                return r;
                }
                off += n;
        }
        /* Trailing holes. */
        if (ftruncate(dst, size) < 0 || fsync(dst) < 0)
                return -errno;
        sha256_digest(&ctx, sizeof(d), d);
        hex(d, sizeof(d), digest);
        return 0;
}

/* Copy the image into the cache (the lock is held). Returns 0 and *ret
 * (the base path), or -errno with error set. */
static int base_fill(int src, const struct stat *st, const char *image, const char *disks, const char *key,
                     VmgrDiskFormat format, char **ret, char *error, size_t error_size) {
        _cleanup_free_ char *tmp = NULL, *base = NULL, *entry = NULL;
        _cleanup_close_ int dst = -EBADF;
        char digest[DIGEST_HEX_LEN + 1], line[DIGEST_HEX_LEN + 2];
        struct stat after;
        int r;

        if (asprintf(&tmp, "%s/.tmp-XXXXXX", disks) < 0)
                return -ENOMEM;
        dst = mkostemp(tmp, O_CLOEXEC);
        if (dst < 0) {
                r = -errno;
                (void) vmgr_error_printf(error, error_size, r, "cannot create a file in %s: %m", disks);
                return r;
        }

        r = copy_and_hash(src, dst, st->st_size, digest);
        if (r >= 0 && (fstat(src, &after) < 0 || !same_version(st, &after)))
                r = -EAGAIN;
        if (r == -EAGAIN) {
                snprintf(error, error_size, "%s: the image changed while it was being copied", image);
                goto fail;
        }
        if (r < 0) {
                (void) vmgr_error_printf(error, error_size, r, "cannot copy %s into %s: %m", image, disks);
                goto fail;
        }
        /* Read-only: every overlay on it relies on it never changing. */
        if (fchmod(dst, 0444) < 0) {
                r = -errno;
                (void) vmgr_error_printf(error, error_size, r, "cannot make %s read-only: %m", tmp);
                goto fail;
        }

        base = base_path(disks, digest, format);
        if (!base) {
                r = -ENOMEM;
                goto fail;
        }
        /* The same content may be cached already from another file; then it stays. */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, base, RENAME_NOREPLACE) < 0) {
                if (errno != EEXIST) {
                        r = -errno;
                        (void) vmgr_error_printf(error, error_size, r, "cannot rename %s to %s: %m", tmp, base);
                        goto fail;
                }
                (void) unlink(tmp);
        }

        if (asprintf(&entry, "%s/index/%s", disks, key) < 0)
                return -ENOMEM;
        snprintf(line, sizeof(line), "%s\n", digest);
        /* Only a shortcut: if it cannot be written, the next call hashes again. */
        (void) write_file_atomic(entry, line, strlen(line), 0600);

        *ret = TAKE_PTR(base);
        return 0;
fail:
        (void) unlink(tmp);
        return r;
}

static int lock_cache(const char *disks, int *ret_fd, char *error, size_t error_size) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (asprintf(&path, "%s/.lock", disks) < 0)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                r = -errno;
                (void) vmgr_error_printf(error, error_size, r, "cannot open %s: %m", path);
                return r;
        }
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        r = -errno;
                        (void) vmgr_error_printf(error, error_size, r, "cannot lock %s: %m", path);
                        return r;
                }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int disk_base_get(const char *cache_dir, const char *image, VmgrDiskFormat format, char **ret_base,
                  VmgrDiskFormat *ret_format, char *error, size_t error_size) {
        _cleanup_free_ char *disks = NULL, *index = NULL, *base = NULL;
        _cleanup_close_ int fd = -EBADF, lock_fd = -EBADF;
        char key[DIGEST_HEX_LEN + 1];
        VmgrDiskFormat resolved;
        struct stat st;
        int r;

        if (!cache_dir || cache_dir[0] != '/') {
                snprintf(error, error_size, "the cache directory must be an absolute path");
                return -EINVAL;
        }
        if (!image || image[0] != '/') {
                snprintf(error, error_size, "%s: the image path must be absolute", image ?: "(null)");
                return -EINVAL;
        }

        fd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOENT)
                        snprintf(error, error_size, "%s: no such image", image);
                else
                        (void) vmgr_error_printf(error, error_size, r, "%s: cannot open: %m", image);
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                (void) vmgr_error_printf(error, error_size, r, "%s: %m", image);
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(error, error_size, "%s: not a regular file", image);
                return -EINVAL;
        }
        if (st.st_size == 0) {
                snprintf(error, error_size, "%s: the image is empty", image);
                return -EINVAL;
        }
        r = format_resolve(fd, image, format, &resolved, error, error_size);
        if (r < 0)
                return r;

        stamp_key(&st, key);
        if (asprintf(&disks, "%s/disks", cache_dir) < 0 || asprintf(&index, "%s/index", disks) < 0)
                return -ENOMEM;

        /* Fast path, no lock: this version of the file was copied before. */
        r = index_lookup(disks, key, resolved, &base);
        if (r < 0)
                return r;
        if (r == 0) {
                r = mkdir_p(index, 0700);
                if (r < 0) {
                        (void) vmgr_error_printf(error, error_size, r, "cannot create %s: %m", index);
                        return r;
                }
                r = lock_cache(disks, &lock_fd, error, error_size);
                if (r < 0)
                        return r;
                /* Another filler may have finished while we waited. */
                r = index_lookup(disks, key, resolved, &base);
                if (r < 0)
                        return r;
                if (r == 0) {
                        remove_stale_temporaries(disks);
                        r = base_fill(fd, &st, image, disks, key, resolved, &base, error, error_size);
                        if (r < 0)
                                return r;
                }
        }

        *ret_base = TAKE_PTR(base);
        *ret_format = resolved;
        return 0;
}

/* Run "qemu-img create -q -f qcow2 ARGS... TEMP [SIZE]" and rename TEMP to
 * path unless path exists by then. Returns 0, or -errno with error set. */
static int qemu_img_create(const char *path, const char *const *args, size_t n_args, const char *size,
                           char *error, size_t error_size) {
        _cleanup_free_ char *tmp = NULL;
        char err[VMGR_ERROR_MAX];
        const char *argv[16];
        SpawnResult res;
        size_t n = 0;
        struct stat st;
        int fd, r;

        if (lstat(path, &st) >= 0) {
                if (S_ISREG(st.st_mode))
                        return 0; /* kept: it holds the VM's disk */
                snprintf(error, error_size, "%s exists and is not a regular file", path);
                return -EEXIST;
        }
        if (errno != ENOENT) {
                r = -errno;
                (void) vmgr_error_printf(error, error_size, r, "%s: %m", path);
                return r;
        }

        if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
                return -ENOMEM;
        /* A unique name; qemu-img replaces the empty file. */
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                (void) vmgr_error_printf(error, error_size, r, "cannot create %s: %m", tmp);
                return r;
        }
        close(fd);

        argv[n++] = DISK_QEMU_IMG_PATH;
        argv[n++] = "create";
        argv[n++] = "-q";
        argv[n++] = "-f";
        argv[n++] = "qcow2";
        for (size_t i = 0; i < n_args; i++)
                argv[n++] = args[i];
        argv[n++] = tmp;
        if (size)
                argv[n++] = size;
        argv[n] = NULL;

        r = spawn_run((char *const *) argv, QEMU_IMG_TIMEOUT_USEC, err, sizeof(err), &res);
        if (r < 0) {
                (void) vmgr_error_printf(error, error_size, r, "cannot run %s: %m%s", DISK_QEMU_IMG_PATH,
                                         r == -ENOENT ? " (install qemu-utils)" : "");
                goto fail;
        }
        if (!spawn_exited_with(&res, 0)) {
                spawn_first_line(err);
                if (res.timed_out)
                        snprintf(error, error_size, "qemu-img create %s: no answer in %llu s", path,
                                 QEMU_IMG_TIMEOUT_USEC / 1000000ULL);
                else if (*err) {
                        /* qemu-img names the temporary file; the caller knows the real one. */
                        char *at = strstr(err, tmp);
                        if (at)
                                snprintf(error, error_size, "%.*s%s%s", (int) (at - err), err, path,
                                         at + strlen(tmp));
                        else
                                snprintf(error, error_size, "%s", err);
                }
                else
                        snprintf(error, error_size, "qemu-img create %s failed (%s %d)", path,
                                 res.code == CLD_EXITED ? "exit status" : "signal", res.status);
                r = -EIO;
                goto fail;
        }

        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
                r = -errno;
                if (r == -EEXIST) {
                        /* Made meanwhile by someone else: theirs is kept. */
                        (void) unlink(tmp);
                        return 0;
                }
                (void) vmgr_error_printf(error, error_size, r, "cannot rename %s to %s: %m", tmp, path);
                goto fail;
        }
        return 0;
fail:
        (void) unlink(tmp);
        return r;
}

int disk_overlay_create(const char *base, VmgrDiskFormat base_format, const char *overlay, char *error,
                        size_t error_size) {
        const char *args[] = { "-F", disk_format_to_string(base_format), "-b", base };

        if (!base || base[0] != '/' || !overlay || overlay[0] != '/' ||
            (base_format != VMGR_DISK_FORMAT_RAW && base_format != VMGR_DISK_FORMAT_QCOW2)) {
                snprintf(error, error_size, "overlay: invalid arguments");
                return -EINVAL;
        }
        return qemu_img_create(overlay, args, ELEMENTSOF(args), NULL, error, error_size);
}

int disk_blank_create(const char *path, unsigned size_mib, char *error, size_t error_size) {
        char size[32];

        if (!path || path[0] != '/' || size_mib < 1) {
                snprintf(error, error_size, "blank disk: invalid arguments");
                return -EINVAL;
        }
        snprintf(size, sizeof(size), "%uM", size_mib);
        return qemu_img_create(path, NULL, 0, size, error, error_size);
}
