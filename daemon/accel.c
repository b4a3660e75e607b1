/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "accel.h"
#include "fs-util.h"
#include "json-util.h"
#include "macro.h"
#include "spawn.h"

#define CACHE_VERSION 1
#define PROBE_EXIT_STATUS 85            /* isa-debug-exit: (0x2a << 1) | 1 */
#define TCG_CHECK_TIMEOUT_USEC (20ULL * 1000000ULL)
#define PROBE_IMAGE_SIZE (1024 * 1024)  /* SeaBIOS does not boot from a disk of one sector */

/* The probe guest, a boot sector SeaBIOS loads at 0x7c00 (assembled with
 * GNU as, .code16 then .code64, linked at 0x7c00):
 *
 *   cli; ds = es = ss = 0; sp = 0x7c00
 *   zero 0x1000..0x3fff (rep stosw)
 *   PML4[0] = 0x2003, PDPT[0] = 0x3003, PD[0] = 0x83 (2 MiB page at 0)
 *   cr4 = PAE; cr3 = 0x1000; EFER.LME via rdmsr/wrmsr
 *   lgdt (null descriptor + 64-bit code segment)
 *   cr0 |= PG | PE; ljmp 0x08:long_mode
 * long_mode:
 *   ecx = 10000000; loop: dec ecx; jnz loop
 *   rax = 0x2a << 56; rax >>= 56     (64-bit only encodings)
 *   out 0xf4, al                     (isa-debug-exit: QEMU exits with 85)
 *   hlt; jmp hlt
 */
static const uint8_t probe_boot_sector[512] = {
        0xfa,                                   /* cli */
        0x31, 0xc0,                             /* xor ax, ax */
        0x8e, 0xd8,                             /* mov ds, ax */
        0x8e, 0xc0,                             /* mov es, ax */
        0x8e, 0xd0,                             /* mov ss, ax */
        0xbc, 0x00, 0x7c,                       /* mov sp, 0x7c00 */
        0xbf, 0x00, 0x10,                       /* mov di, 0x1000 */
        0xb9, 0x00, 0x18,                       /* mov cx, 0x1800 */
        0xfc,                                   /* cld */
        0xf3, 0xab,                             /* rep stosw */
        0xc7, 0x06, 0x00, 0x10, 0x03, 0x20,     /* mov word [0x1000], 0x2003 */
        0xc7, 0x06, 0x00, 0x20, 0x03, 0x30,     /* mov word [0x2000], 0x3003 */
        0xc7, 0x06, 0x00, 0x30, 0x83, 0x00,     /* mov word [0x3000], 0x0083 */
        0x66, 0xb8, 0x20, 0x00, 0x00, 0x00,     /* mov eax, 0x20 */
        0x0f, 0x22, 0xe0,                       /* mov cr4, eax */
        0x66, 0xb8, 0x00, 0x10, 0x00, 0x00,     /* mov eax, 0x1000 */
        0x0f, 0x22, 0xd8,                       /* mov cr3, eax */
        0x66, 0xb9, 0x80, 0x00, 0x00, 0xc0,     /* mov ecx, 0xc0000080 (EFER) */
        0x0f, 0x32,                             /* rdmsr */
        0x66, 0x0d, 0x00, 0x01, 0x00, 0x00,     /* or eax, 0x100 (LME) */
        0x0f, 0x30,                             /* wrmsr */
        0x66, 0x0f, 0x01, 0x16, 0x90, 0x7c,     /* lgdt [0x7c90] */
        0x0f, 0x20, 0xc0,                       /* mov eax, cr0 */
        0x66, 0x0d, 0x01, 0x00, 0x00, 0x80,     /* or eax, 0x80000001 */
        0x0f, 0x22, 0xc0,                       /* mov cr0, eax */
        0xea, 0x60, 0x7c, 0x08, 0x00,           /* jmp 0x08:0x7c60 */
        /* 0x7c60, 64-bit */
        0xb9, 0x80, 0x96, 0x98, 0x00,           /* mov ecx, 10000000 */
        0xff, 0xc9,                             /* dec ecx */
        0x75, 0xfc,                             /* jnz -4 */
        0x48, 0xb8, 0x00, 0x00, 0x00, 0x00,     /* mov rax, 0x2a00000000000000 */
        0x00, 0x00, 0x00, 0x2a,
        0x48, 0xc1, 0xe8, 0x38,                 /* shr rax, 56 */
        0xe6, 0xf4,                             /* out 0xf4, al */
        0xf4,                                   /* hlt */
        0xeb, 0xfd,                             /* jmp -3 */
        0x8d, 0x74, 0x26, 0x00,                 /* (padding) */
        /* 0x7c80: GDT */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x9a, 0x20, 0x00, /* 64-bit code: P, DPL 0, L */
        /* 0x7c90: GDTR, limit 15, base 0x7c80 */
        0x0f, 0x00, 0x80, 0x7c, 0x00, 0x00,
        [510] = 0x55, [511] = 0xaa,
};

/* Format a reason into a bounded buffer; a long one is cut, which is fine
 * for a sentence meant for a log or an error message. */
_printf_(3, 4) static void reason_printf(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

/* What identifies one answer: if any of it changes, probe again. */
typedef struct ProbeKey {
        char kernel[2 * 65 + 2];        /* uname release and version */
        char qemu[PATH_MAX];
        long long qemu_size;
        char qemu_mtime[32];            /* "SEC.NSEC" */
        char dev_kvm[24];               /* "MAJOR:MINOR" */
} ProbeKey;

/* Is /dev/kvm there and ours to use? Returns 1 and its device number in
 * key, or 0 with why set. */
static int dev_kvm_check(ProbeKey *key, char *why, size_t why_size) {
        struct stat st;
        int fd, version;

        if (stat("/dev/kvm", &st) < 0) {
                if (errno == ENOENT)
                        snprintf(why, why_size,
                                 "no /dev/kvm (no KVM module loaded, or no hardware virtualisation)");
                else
                        (void) vmgr_error_printf(why, why_size, errno, "/dev/kvm: %m");
                return 0;
        }
        fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                if (errno == EACCES || errno == EPERM) {
                        struct group grp, *g = NULL;
                        char buf[1024];

                        (void) getgrgid_r(st.st_gid, &grp, buf, sizeof(buf), &g);
                        if (g)
                                snprintf(why, why_size,
                                         "no permission to open /dev/kvm (mode %04o, group %s: add the user to it)",
                                         st.st_mode & 07777, g->gr_name);
                        else
                                snprintf(why, why_size, "no permission to open /dev/kvm (mode %04o)",
                                         st.st_mode & 07777);
                } else
                        (void) vmgr_error_printf(why, why_size, errno, "cannot open /dev/kvm: %m");
                return 0;
        }
        version = ioctl(fd, KVM_GET_API_VERSION, 0);
        close(fd);
        if (version != KVM_API_VERSION) {
                snprintf(why, why_size, "/dev/kvm does not answer as KVM (API version %d)", version);
                return 0;
        }
        snprintf(key->dev_kvm, sizeof(key->dev_kvm), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
        return 1;
}

/* Fill the kernel and QEMU parts of key. Returns 1, or 0 with why set. */
static int key_fill(ProbeKey *key, const char *qemu, char *why, size_t why_size) {
        struct utsname u;
        struct stat st;

        if (uname(&u) < 0) {
                (void) vmgr_error_printf(why, why_size, errno, "uname: %m");
                return 0;
        }
        snprintf(key->kernel, sizeof(key->kernel), "%s %s", u.release, u.version);
        if (stat(qemu, &st) < 0) {
                (void) vmgr_error_printf(why, why_size, errno, "%s: %m", qemu);
                return 0;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(why, why_size, "%s: not a regular file", qemu);
                return 0;
        }
        snprintf(key->qemu, sizeof(key->qemu), "%s", qemu);
        key->qemu_size = (long long) st.st_size;
        snprintf(key->qemu_mtime, sizeof(key->qemu_mtime), "%lld.%09ld", (long long) st.st_mtim.tv_sec,
                 st.st_mtim.tv_nsec);
        return 1;
}

static bool json_string_is(json_object *o, const char *field, const char *value) {
        json_object *v;

        return json_object_object_get_ex(o, field, &v) && json_object_is_type(v, json_type_string) &&
               streq(json_object_get_string(v), value);
}

/* The cached answer for key. Returns 1 (KVM works), 0 (it does not, why
 * set) or -ENOENT (no answer for this key). */
static int cache_lookup(const char *path, const ProbeKey *key, char *why, size_t why_size) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_object *o = NULL;
        json_object *v, *kvm, *reason;

        if (read_file(path, 64 * 1024, &text) < 0)
                return -ENOENT;
        o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object))
                return -ENOENT;
        if (!json_object_object_get_ex(o, "version", &v) || json_object_get_int(v) != CACHE_VERSION ||
            !json_string_is(o, "kernel", key->kernel) || !json_string_is(o, "qemu", key->qemu) ||
            !json_string_is(o, "qemu_mtime", key->qemu_mtime) || !json_string_is(o, "dev_kvm", key->dev_kvm) ||
            !json_object_object_get_ex(o, "qemu_size", &v) || json_object_get_int64(v) != key->qemu_size ||
            !json_object_object_get_ex(o, "kvm", &kvm) || !json_object_is_type(kvm, json_type_boolean))
                return -ENOENT;
        if (json_object_get_boolean(kvm))
                return 1;
        if (json_object_object_get_ex(o, "reason", &reason) && json_object_is_type(reason, json_type_string))
                snprintf(why, why_size, "%s", json_object_get_string(reason));
        else
                snprintf(why, why_size, "KVM did not work (cached)");
        return 0;
}

/* Remember the answer. Failure only costs a probe next time. */
static void cache_store(const char *path, const ProbeKey *key, bool kvm, const char *why) {
        _cleanup_json_ json_object *o = json_object_new_object();
        const char *text;

        if (!o)
                return;
        if (json_object_object_add(o, "version", json_object_new_int(CACHE_VERSION)) < 0 ||
            json_object_object_add(o, "kernel", json_object_new_string(key->kernel)) < 0 ||
            json_object_object_add(o, "qemu", json_object_new_string(key->qemu)) < 0 ||
            json_object_object_add(o, "qemu_size", json_object_new_int64(key->qemu_size)) < 0 ||
            json_object_object_add(o, "qemu_mtime", json_object_new_string(key->qemu_mtime)) < 0 ||
            json_object_object_add(o, "dev_kvm", json_object_new_string(key->dev_kvm)) < 0 ||
            json_object_object_add(o, "kvm", json_object_new_boolean(kvm)) < 0 ||
            (!kvm && json_object_object_add(o, "reason", json_object_new_string(why)) < 0))
                return;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
        if (text)
                (void) write_file_atomic(path, text, strlen(text), 0600);
}

/* The line of QEMU's stderr that says most: the first one with "error" in
 * it, else the last one. Points into err, which it modifies. */
static const char *stderr_summary(char *err) {
        char *last = NULL, *save = NULL;

        for (char *line = strtok_r(err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strcasestr(line, "error"))
                        return line;
                if (*line)
                        last = line;
        }
        return last ?: "";
}

/* "file=PATH,format=raw,if=ide" with commas in PATH doubled, as QEMU's
 * option syntax wants. Returns a new string or NULL. */
static char *drive_option(const char *image) {
        size_t n = strlen(image), commas = 0;
        char *s, *p;

        for (const char *c = image; *c; c++)
                commas += *c == ',';
        s = malloc(n + commas + 32);
        if (!s)
                return NULL;
        p = stpcpy(s, "file=");
        for (const char *c = image; *c; c++) {
                *p++ = *c;
                if (*c == ',')
                        *p++ = ',';
        }
        strcpy(p, ",format=raw,if=ide");
        return s;
}

/* Boot the probe guest once. Returns 0 and *res, or -errno if QEMU could not be started. */
static int probe_run(const char *qemu, const char *drive, bool kvm, uint64_t timeout_usec, char *err,
                     size_t err_size, SpawnResult *res) {
        const char *argv[] = {
                qemu,
                "-M", "q35",
                "-accel", kvm ? "kvm" : "tcg",
                "-cpu", kvm ? "host" : "qemu64",
                "-m", "16",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive", drive,
                NULL,
        };

        return spawn_run((char *const *) argv, timeout_usec, err, err_size, res);
}

/* How a probe run went wrong, in words. */
static void describe_failure(const SpawnResult *res, char *err, const char *what, char *out, size_t size) {
        const char *line = stderr_summary(err);

        if (res->timed_out)
                snprintf(out, size, "%s did not finish within %llu s", what, ACCEL_PROBE_TIMEOUT_USEC / 1000000ULL);
        else if (res->code == CLD_EXITED)
                snprintf(out, size, "%s: qemu exited with status %d%s%s", what, res->status, *line ? ": " : "", line);
        else
                snprintf(out, size, "%s: qemu %s by signal %d%s%s", what,
                         res->code == CLD_DUMPED ? "dumped core, killed" : "was killed", res->status,
                         *line ? ": " : "", line);
}

/* Prove KVM with the probe guest, with a TCG run to vouch for a negative
 * answer. Returns 1 (KVM works), 0 (it does not, why set; *trusted says
 * whether the TCG run vouched for it), or -errno. */
static int kvm_probe(const char *cache_dir, const char *qemu, char *why, size_t why_size, bool *trusted) {
        _cleanup_free_ char *image = NULL, *drive = NULL;
        _cleanup_close_ int fd = -EBADF;
        char err[2048], failure[VMGR_ERROR_MAX];
        SpawnResult res;
        int r;

        if (asprintf(&image, "%s/accel-probe-XXXXXX", cache_dir) < 0)
                return -ENOMEM;
        fd = mkostemp(image, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, probe_boot_sector, sizeof(probe_boot_sector)) != (ssize_t) sizeof(probe_boot_sector) ||
            ftruncate(fd, PROBE_IMAGE_SIZE) < 0) {
                r = errno ? -errno : -EIO;
                goto finish;
        }
        fd = safe_close(fd);
        drive = drive_option(image);
        if (!drive) {
                r = -ENOMEM;
                goto finish;
        }

        r = probe_run(qemu, drive, true, ACCEL_PROBE_TIMEOUT_USEC, err, sizeof(err), &res);
        if (r < 0) {
                (void) vmgr_error_printf(why, why_size, r, "cannot run %s: %m", qemu);
                *trusted = false;
                r = 0;
                goto finish;
        }
        if (spawn_exited_with(&res, PROBE_EXIT_STATUS)) {
                r = 1;
                goto finish;
        }
        describe_failure(&res, err, "a test guest under KVM", failure, sizeof(failure));

        /* Only a probe that works under TCG makes its KVM failure mean something. */
        r = probe_run(qemu, drive, false, TCG_CHECK_TIMEOUT_USEC, err, sizeof(err), &res);
        if (r < 0 || !spawn_exited_with(&res, PROBE_EXIT_STATUS)) {
                char tcg[VMGR_ERROR_MAX];

                if (r < 0)
                        (void) vmgr_error_printf(tcg, sizeof(tcg), r, "cannot run %s: %m", qemu);
                else
                        describe_failure(&res, err, "under TCG", tcg, sizeof(tcg));
                reason_printf(why, why_size, "the KVM test is inconclusive (%s), and %s", failure, tcg);
                *trusted = false;
                r = 0;
                goto finish;
        }
        reason_printf(why, why_size, "%s (under TCG it takes %llu ms)", failure,
                 (unsigned long long) (res.usec / 1000));
        *trusted = true;
        r = 0;
finish:
        (void) unlink(image);
        return r;
}

/* Does KVM work? Returns 1, 0 (why set), or -errno (why set). */
static int kvm_usable(const char *cache_dir, const char *qemu, char *why, size_t why_size) {
        _cleanup_free_ char *cache = NULL, *lock = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        ProbeKey key = {};
        bool trusted = false;
        int r;

        if (!dev_kvm_check(&key, why, why_size) || !key_fill(&key, qemu, why, why_size))
                return 0;
        if (asprintf(&cache, "%s/accel.json", cache_dir) < 0 || asprintf(&lock, "%s/accel.lock", cache_dir) < 0)
                return -ENOMEM;

        r = cache_lookup(cache, &key, why, why_size);
        if (r >= 0)
                return r;

        r = mkdir_p(cache_dir, 0700);
        if (r < 0) {
                (void) vmgr_error_printf(why, why_size, r, "cannot create %s: %m", cache_dir);
                return r;
        }
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock_fd < 0) {
                r = -errno;
                (void) vmgr_error_printf(why, why_size, r, "cannot open %s: %m", lock);
                return r;
        }
        while (flock(lock_fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        r = -errno;
                        (void) vmgr_error_printf(why, why_size, r, "cannot lock %s: %m", lock);
                        return r;
                }
        /* Someone may have probed while we waited. */
        r = cache_lookup(cache, &key, why, why_size);
        if (r >= 0)
                return r;

        r = kvm_probe(cache_dir, qemu, why, why_size, &trusted);
        if (r < 0) {
                (void) vmgr_error_printf(why, why_size, r, "cannot run the KVM test: %m");
                return r;
        }
        if (r == 1 || trusted)
                cache_store(cache, &key, r == 1, why);
        return r;
}

int accel_resolve_qemu(const char *cache_dir, const char *qemu, VmgrAccel requested, VmgrAccel *ret,
                       char *reason, size_t reason_size) {
        char why[VMGR_ERROR_MAX] = "";
        int r;

        if (requested == VMGR_ACCEL_TCG) {
                *ret = VMGR_ACCEL_TCG;
                return 0;
        }
        if (!cache_dir || cache_dir[0] != '/' || !qemu || qemu[0] != '/' ||
            (requested != VMGR_ACCEL_KVM && requested != VMGR_ACCEL_AUTO)) {
                snprintf(reason, reason_size, "invalid arguments");
                return -EINVAL;
        }

        r = kvm_usable(cache_dir, qemu, why, sizeof(why));
        if (r < 0) {
                snprintf(reason, reason_size, "%s", why);
                return r;
        }
        if (r > 0) {
                *ret = VMGR_ACCEL_KVM;
                return 0;
        }
        if (requested == VMGR_ACCEL_KVM) {
                reason_printf(reason, reason_size, "KVM does not work here: %s", why);
                return -EOPNOTSUPP;
        }
        snprintf(reason, reason_size, "%s", why);
        *ret = VMGR_ACCEL_TCG;
        return 0;
}

int accel_resolve(const char *cache_dir, VmgrAccel requested, VmgrAccel *ret, char *reason, size_t reason_size) {
        return accel_resolve_qemu(cache_dir, ACCEL_QEMU_PATH, requested, ret, reason, reason_size);
}
