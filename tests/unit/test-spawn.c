/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/spawn.c: exit status, signals, the timeout, stderr (and stdout) capture, no
 * inherited fds, and that a concurrent waitid(P_ALL) reaper (what vmgrd's
 * SIGCHLD handler does) cannot take the child's status.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "macro.h"
#include "spawn.h"
#include "test.h"

static void test_status(void) {
        char err[64] = "untouched";
        SpawnResult res;

        CHECK(spawn_run((char *const[]) { "/bin/true", NULL }, 0, err, sizeof(err), &res) == 0);
        CHECK(spawn_exited_with(&res, 0) && !res.timed_out);
        CHECK_STREQ(err, "");

        CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "echo out; echo oops >&2; exit 7", NULL }, 0, err,
                        sizeof(err), &res) == 0);
        CHECK(spawn_exited_with(&res, 7));
        CHECK_STREQ(err, "oops\n");

        CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "kill -TERM $$", NULL }, 0, err, sizeof(err), &res) == 0);
        CHECK(res.code == CLD_KILLED && res.status == SIGTERM);

        /* No output buffer at all. */
        CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "echo x >&2", NULL }, 0, NULL, 0, &res) == 0);
        CHECK(spawn_exited_with(&res, 0));
}

/* spawn_run_stdout(): stdout and stderr each into their own buffer, stdout
 * cut to its size like stderr; and spawn_run() still sends stdout to /dev/null
 * (nothing of it lands in err). */
static void test_stdout(void) {
        char out[16] = "untouched", err[64] = "untouched";
        SpawnResult res;

        CHECK(spawn_run_stdout((char *const[]) { "/bin/sh", "-c", "echo k i; echo oops >&2; exit 3", NULL }, 0, out,
                               sizeof(out), err, sizeof(err), &res) == 0);
        CHECK(spawn_exited_with(&res, 3));
        CHECK_STREQ(out, "k i\n");
        CHECK_STREQ(err, "oops\n");

        CHECK(spawn_run_stdout((char *const[]) { "/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' y", NULL }, 0,
                               out, sizeof(out), NULL, 0, &res) == 0);
        CHECK(spawn_exited_with(&res, 0));
        CHECK_STREQ(out, "yyyyyyyyyyyyyyy");

        CHECK(spawn_run_stdout((char *const[]) { "/bin/true", NULL }, 0, out, sizeof(out), err, sizeof(err), &res) ==
              0);
        CHECK_STREQ(out, "");

        /* Invalid: no room even for the NUL. */
        CHECK(spawn_run_stdout((char *const[]) { "/bin/true", NULL }, 0, out, 0, err, sizeof(err), &res) == -EINVAL);
        /* Exec errors leave out untouched. */
        strcpy(out, "untouched");
        CHECK(spawn_run_stdout((char *const[]) { "/nonexistent/program", NULL }, 0, out, sizeof(out), err, sizeof(err),
                               &res) == -ENOENT);
        CHECK_STREQ(out, "untouched");

        /* The program runs in a session of its own (terminal signals stay away). */
        CHECK(spawn_run_stdout((char *const[]) { "/bin/sh", "-c", "set -- $(cat /proc/$$/stat); test \"$6\" = $$", NULL }, 0, out,
                               sizeof(out), err, sizeof(err), &res) == 0);
        CHECK(spawn_exited_with(&res, 0));
}

static void test_exec_errors(void) {
        char err[64] = "untouched";
        SpawnResult res = { .status = 12345 };

        CHECK(spawn_run((char *const[]) { "/nonexistent/program", NULL }, 0, err, sizeof(err), &res) == -ENOENT);
        char path[] = "/tmp/test-spawn-XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC); /* mode 0600: not executable */
        CHECK(fd >= 0);
        CHECK(spawn_run((char *const[]) { path, NULL }, 0, err, sizeof(err), &res) == -EACCES);
        close(fd);
        unlink(path);
        CHECK(spawn_run((char *const[]) { "relative", NULL }, 0, err, sizeof(err), &res) == -EINVAL);
        /* Output parameters untouched on failure. */
        CHECK_STREQ(err, "untouched");
        CHECK(res.status == 12345);
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void test_timeout(void) {
        char err[64];
        SpawnResult res;
        uint64_t t0 = now_ms(), ms;

        /* exec'd sleep keeps stderr open: the timeout must not wait for EOF. */
        CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "echo started >&2; exec sleep 30", NULL }, 300000, err,
                        sizeof(err), &res) == 0);
        ms = now_ms() - t0;
        CHECK(res.timed_out);
        CHECK(res.code == CLD_KILLED && res.status == SIGKILL);
        CHECK(ms >= 290 && ms < 3000);
        CHECK_STREQ(err, "started\n");

        /* A grandchild holding stderr open does not keep us waiting after the child exits. */
        t0 = now_ms();
        CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "sleep 5 & echo bye >&2; exit 3", NULL }, 10000000, err,
                        sizeof(err), &res) == 0);
        CHECK(spawn_exited_with(&res, 3) && !res.timed_out);
        CHECK(now_ms() - t0 < 3000);
        CHECK_STREQ(err, "bye\n");
}

static void test_truncation(void) {
        char err[8];
        SpawnResult res;

        CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo >&2 end",
                                          NULL },
                        0, err, sizeof(err), &res) == 0);
        CHECK(spawn_exited_with(&res, 0));
        CHECK_STREQ(err, "xxxxxxx");
}

static void test_no_fds_leak(void) {
        char err[256];
        SpawnResult res;
        int fd;

        /* An fd opened without O_CLOEXEC, as a careless library might. */
        fd = open("/dev/null", O_RDONLY);
        CHECK(fd > 2);
        CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "ls /proc/self/fd >&2", NULL }, 0, err, sizeof(err),
                        &res) == 0);
        /* 0, 1, 2 and the fd ls opens to read the directory. */
        CHECK_STREQ(err, "0\n1\n2\n3\n");
        close(fd);
}

static atomic_bool reaper_stop;
static atomic_int reaped;

/* Our children, from /proc/self/task/TID/children of every thread; up to max. */
static size_t list_children(pid_t *pids, size_t max) {
        DIR *tasks = opendir("/proc/self/task");
        struct dirent *de;
        size_t n = 0;

        CHECK(tasks);
        while ((de = readdir(tasks))) {
                char path[300];
                FILE *f;
                long pid;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;
                while (n < max && fscanf(f, "%ld", &pid) == 1)
                        pids[n++] = (pid_t) pid;
                fclose(f);
        }
        closedir(tasks);
        return n;
}

/* What a SIGCHLD reaper in vmgrd may do, in a tight loop: waitid(P_ALL),
 * and waitid(P_PID) on every child it finds in /proc. */
static void *reaper(void *arg) {
        while (!atomic_load(&reaper_stop)) {
                siginfo_t si = {};
                pid_t pids[16];
                size_t n;

                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) == 0 && si.si_pid > 0)
                        atomic_fetch_add(&reaped, 1);
                n = list_children(pids, ELEMENTSOF(pids));
                for (size_t i = 0; i < n; i++) {
                        si = (siginfo_t) {};
                        if (waitid(P_PID, (id_t) pids[i], &si, WEXITED | WNOHANG) == 0 && si.si_pid > 0)
                                atomic_fetch_add(&reaped, 1);
                }
        }
        return NULL;
}

static void test_reaper(void) {
        pthread_t t;
        char err[64];
        SpawnResult res;

        CHECK(pthread_create(&t, NULL, reaper, NULL) == 0);
        for (int i = 0; i < 50; i++) {
                CHECK(spawn_run((char *const[]) { "/bin/sh", "-c", "exit 5", NULL }, 0, err, sizeof(err), &res) == 0);
                CHECK(spawn_exited_with(&res, 5));
        }
        atomic_store(&reaper_stop, true);
        CHECK(pthread_join(t, NULL) == 0);
        CHECK(atomic_load(&reaped) == 0);
}

/* Every supervisor was collected: no child (or zombie) is left. */
static void test_nothing_left(void) {
        pid_t pids[4];

        CHECK(list_children(pids, ELEMENTSOF(pids)) == 0);
}

static void test_first_line(void) {
        char a[] = "qemu-img: error \t\r\nsecond\n", b[] = "", c[] = "x";

        CHECK_STREQ(spawn_first_line(a), "qemu-img: error");
        CHECK_STREQ(spawn_first_line(b), "");
        CHECK_STREQ(spawn_first_line(c), "x");
}

int main(void) {
        test_status();
        test_stdout();
        test_exec_errors();
        test_timeout();
        test_truncation();
        test_no_fds_leak();
        test_reaper();
        test_first_line();
        test_nothing_left();
        TEST_DONE();
}
