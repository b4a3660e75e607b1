/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/accel.c: the real probe on this machine (whatever it finds, the
 * answers must agree: auto, kvm and the cache), then the decision logic
 * with fake QEMU binaries that hang, abort, work or fail under KVM.
 */

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "accel.h"
#include "fs-util.h"
#include "macro.h"
#include "test.h"

static char dir[] = "/tmp/test-accel-XXXXXX";

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static char *path_in(const char *name) {
        char *p;
        CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static bool dev_kvm_usable(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return false;
        close(fd);
        return true;
}

/* The cached answer in CACHE/accel.json: 1 (kvm), 0 (not), -1 (no file). */
static int cached_answer(const char *cache) {
        char *path = NULL, *text = NULL;
        json_object *o, *v;
        int r = -1;

        CHECK(asprintf(&path, "%s/accel.json", cache) > 0);
        if (read_file(path, 65536, &text) >= 0) {
                o = json_tokener_parse(text);
                CHECK(o);
                CHECK(json_object_object_get_ex(o, "kvm", &v));
                r = json_object_get_boolean(v);
                CHECK(json_object_object_get_ex(o, "kernel", &v));
                CHECK(json_object_object_get_ex(o, "qemu_mtime", &v));
                CHECK(json_object_object_get_ex(o, "dev_kvm", &v));
                json_object_put(o);
        }
        free(text);
        free(path);
        return r;
}

static void test_tcg_instant(void) {
        char reason[VMGR_ERROR_MAX] = "untouched", *cache = path_in("tcg");
        VmgrAccel a = VMGR_ACCEL_AUTO;
        uint64_t t0 = now_ms();

        CHECK(accel_resolve(cache, VMGR_ACCEL_TCG, &a, reason, sizeof(reason)) == 0);
        CHECK(a == VMGR_ACCEL_TCG);
        CHECK(now_ms() - t0 < 50);
        CHECK_STREQ(reason, "untouched");
        /* Nothing to probe, nothing cached. */
        CHECK(access(cache, F_OK) < 0);
        free(cache);
}

/* This machine, with the real QEMU. */
static void test_real(void) {
        char reason[VMGR_ERROR_MAX] = "", reason2[VMGR_ERROR_MAX] = "", kvm_reason[VMGR_ERROR_MAX] = "";
        char *cache = path_in("real");
        VmgrAccel a, b, k = VMGR_ACCEL_AUTO;
        uint64_t t0, first, second;
        int r;

        if (access(ACCEL_QEMU_PATH, X_OK) < 0) {
                printf("# %s not installed: real probe skipped\n", ACCEL_QEMU_PATH);
                free(cache);
                return;
        }

        t0 = now_ms();
        CHECK(accel_resolve(cache, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == 0);
        first = now_ms() - t0;
        /* Never hangs: the 3 s probe, a TCG check, a second of grace at most. */
        CHECK(first < 10000);
        CHECK(a == VMGR_ACCEL_KVM || a == VMGR_ACCEL_TCG);
        if (a == VMGR_ACCEL_TCG)
                CHECK(*reason);

        t0 = now_ms();
        CHECK(accel_resolve(cache, VMGR_ACCEL_AUTO, &b, reason2, sizeof(reason2)) == 0);
        second = now_ms() - t0;
        CHECK(b == a);
        CHECK_STREQ(reason2, reason);
        CHECK(second < 100);

        r = accel_resolve(cache, VMGR_ACCEL_KVM, &k, kvm_reason, sizeof(kvm_reason));
        if (a == VMGR_ACCEL_KVM) {
                CHECK(r == 0 && k == VMGR_ACCEL_KVM);
        } else {
                CHECK(r == -EOPNOTSUPP && k == VMGR_ACCEL_AUTO);
                CHECK(strstr(kvm_reason, "KVM does not work here: "));
                CHECK(strstr(kvm_reason, reason));
        }
        /* Cached exactly when /dev/kvm could be asked at all. */
        CHECK(cached_answer(cache) == (dev_kvm_usable() ? a == VMGR_ACCEL_KVM : -1));

        printf("# this machine: auto -> %s in %llu ms (cached: %llu ms)%s%s\n",
               a == VMGR_ACCEL_KVM ? "kvm" : "tcg", (unsigned long long) first, (unsigned long long) second,
               a == VMGR_ACCEL_TCG ? "; why: " : "", a == VMGR_ACCEL_TCG ? reason : "");
        free(cache);
}

/* A fake QEMU: a shell script that logs its arguments to DIR/NAME.calls and
 * then runs kvm_action or tcg_action. */
static char *fake_qemu(const char *name, const char *kvm_action, const char *tcg_action) {
        char *path = path_in(name), *script = NULL;

        CHECK(asprintf(&script,
                       "#!/bin/sh\n"
                       "echo \"$*\" >>'%s.calls'\n"
                       "case \" $* \" in\n"
                       "*\" -accel kvm \"*) %s ;;\n"
                       "*) %s ;;\n"
                       "esac\n",
                       path, kvm_action, tcg_action) > 0);
        CHECK(write_file_atomic(path, script, strlen(script), 0755) == 0);
        free(script);
        return path;
}

/* How many times the fake ran with "-accel ACCEL". */
static unsigned fake_calls(const char *fake, const char *accel) {
        char *path = NULL, *text = NULL, needle[32];
        unsigned n = 0;

        CHECK(asprintf(&path, "%s.calls", fake) > 0);
        snprintf(needle, sizeof(needle), "-accel %s ", accel);
        if (read_file(path, 1 << 20, &text) >= 0)
                for (const char *p = text; (p = strstr(p, needle)); p++)
                        n++;
        free(text);
        free(path);
        return n;
}

static void test_fake_hang(void) {
        char *fake = fake_qemu("qemu-hang", "exec sleep 60", "exit 85"), *cache = path_in("hang");
        char reason[VMGR_ERROR_MAX] = "";
        VmgrAccel a;
        uint64_t t0 = now_ms(), ms;

        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == 0);
        ms = now_ms() - t0;
        CHECK(a == VMGR_ACCEL_TCG);
        CHECK(ms >= 2900 && ms < 6000);
        CHECK(strstr(reason, "did not finish within 3 s"));
        CHECK(strstr(reason, "under TCG it takes"));
        CHECK(cached_answer(cache) == 0);
        CHECK(fake_calls(fake, "kvm") == 1 && fake_calls(fake, "tcg") == 1);
        printf("# hanging KVM: tcg after %llu ms: %s\n", (unsigned long long) ms, reason);

        /* Cached: no second probe, the same reason. */
        char again[VMGR_ERROR_MAX] = "";
        t0 = now_ms();
        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_AUTO, &a, again, sizeof(again)) == 0);
        CHECK(now_ms() - t0 < 100);
        CHECK(a == VMGR_ACCEL_TCG);
        CHECK_STREQ(again, reason);
        CHECK(fake_calls(fake, "kvm") == 1);

        /* Another QEMU binary (new mtime and size): probed again. */
        free(fake_qemu("qemu-hang", "exec sleep 60", "exit 85 # updated"));
        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == 0);
        CHECK(fake_calls(fake, "kvm") == 2);

        free(cache);
        free(fake);
}

static void test_fake_abort(void) {
        char *fake = fake_qemu("qemu-abort",
                               "echo 'qemu-system-x86_64: warning: something' >&2; "
                               "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; kill -ABRT $$",
                               "exit 85"),
             *cache = path_in("abort");
        char reason[VMGR_ERROR_MAX] = "";
        VmgrAccel a = VMGR_ACCEL_AUTO;

        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_KVM, &a, reason, sizeof(reason)) == -EOPNOTSUPP);
        CHECK(a == VMGR_ACCEL_AUTO);
        CHECK(strstr(reason, "KVM does not work here"));
        CHECK(strstr(reason, "signal 6"));
        CHECK(strstr(reason, "failed to set MSR"));
        printf("# aborting KVM: %s\n", reason);
        free(cache);
        free(fake);
}

static void test_fake_works(void) {
        char *fake = fake_qemu("qemu-works", "exit 85", "exit 85"), *cache = path_in("works");
        char reason[VMGR_ERROR_MAX] = "untouched";
        VmgrAccel a;

        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == 0);
        CHECK(a == VMGR_ACCEL_KVM);
        CHECK_STREQ(reason, "untouched");
        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_KVM, &a, reason, sizeof(reason)) == 0);
        CHECK(a == VMGR_ACCEL_KVM);
        CHECK(cached_answer(cache) == 1);
        /* A positive answer needs no TCG check. */
        CHECK(fake_calls(fake, "kvm") == 1 && fake_calls(fake, "tcg") == 0);
        /* The probe runs the way VMs run: q35, -cpu host, the debug-exit device. */
        char *calls = NULL, *calls_path = NULL;
        CHECK(asprintf(&calls_path, "%s.calls", fake) > 0);
        CHECK(read_file(calls_path, 65536, &calls) >= 0);
        CHECK(strstr(calls, "-M q35 -accel kvm -cpu host "));
        CHECK(strstr(calls, "isa-debug-exit,iobase=0xf4,iosize=0x04"));
        free(calls);
        free(calls_path);
        free(cache);
        free(fake);
}

/* QEMU fails under TCG too: the negative answer is not trusted, not cached. */
static void test_fake_broken(void) {
        char *fake = fake_qemu("qemu-broken", "echo 'qemu: error: broken' >&2; exit 1", "exit 1"),
             *cache = path_in("broken");
        char reason[VMGR_ERROR_MAX] = "";
        VmgrAccel a;

        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == 0);
        CHECK(a == VMGR_ACCEL_TCG);
        CHECK(strstr(reason, "inconclusive"));
        CHECK(strstr(reason, "qemu: error: broken"));
        CHECK(cached_answer(cache) == -1);
        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == 0);
        CHECK(fake_calls(fake, "kvm") == 2);
        free(cache);
        free(fake);
}

/* Comma in the cache path: the -drive option must escape it. */
static void test_fake_comma(void) {
        char *fake = fake_qemu("qemu-comma", "exit 85", "exit 85"), *cache = path_in("a,b");
        char reason[VMGR_ERROR_MAX], *calls = NULL, *calls_path = NULL;
        VmgrAccel a;

        CHECK(accel_resolve_qemu(cache, fake, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == 0);
        CHECK(asprintf(&calls_path, "%s.calls", fake) > 0);
        CHECK(read_file(calls_path, 65536, &calls) >= 0);
        CHECK(strstr(calls, "/a,,b/accel-probe-"));
        free(calls);
        free(calls_path);
        free(cache);
        free(fake);
}

static char *shared_fake, *shared_cache;

static void *thread_resolve(void *arg) {
        char reason[VMGR_ERROR_MAX];
        VmgrAccel a;

        if (accel_resolve_qemu(shared_cache, shared_fake, VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) < 0 ||
            a != VMGR_ACCEL_KVM)
                return (void *) 1;
        return NULL;
}

/* Concurrent callers probe once. */
static void test_fake_concurrent(void) {
        pthread_t t[4];
        void *res;

        shared_fake = fake_qemu("qemu-slow", "sleep 0.3; exit 85", "exit 85");
        shared_cache = path_in("concurrent");
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                CHECK(pthread_create(&t[i], NULL, thread_resolve, NULL) == 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                CHECK(pthread_join(t[i], &res) == 0);
                CHECK(res == NULL);
        }
        CHECK(fake_calls(shared_fake, "kvm") == 1);
        free(shared_cache);
        free(shared_fake);
}

static void test_invalid(void) {
        char reason[VMGR_ERROR_MAX];
        VmgrAccel a;

        CHECK(accel_resolve("relative", VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == -EINVAL);
        CHECK(accel_resolve_qemu(dir, "qemu", VMGR_ACCEL_AUTO, &a, reason, sizeof(reason)) == -EINVAL);
        CHECK(accel_resolve(dir, (VmgrAccel) 42, &a, reason, sizeof(reason)) == -EINVAL);

        /* The caller's size holds. */
        char small[8];
        memset(small, 'x', sizeof(small));
        CHECK(accel_resolve("relative", VMGR_ACCEL_AUTO, &a, small, 5) == -EINVAL);
        CHECK_STREQ(small, "inva");
        CHECK(small[5] == 'x');
}

int main(void) {
        CHECK(mkdtemp(dir));

        test_tcg_instant();
        test_invalid();
        test_real();
        if (dev_kvm_usable()) {
                test_fake_hang();
                test_fake_abort();
                test_fake_works();
                test_fake_broken();
                test_fake_comma();
                test_fake_concurrent();
        } else
                printf("# /dev/kvm not usable here: the probe logic tests with fake QEMUs are skipped\n");

        CHECK(rm_rf(dir) == 0);
        TEST_DONE();
}
