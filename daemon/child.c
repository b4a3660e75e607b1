/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "macro.h"

/* Close fds first..last (last may be ~0U): close_range(2), or one by one
 * below 65536 where the kernel lacks it. */
static void close_fd_range(unsigned first, unsigned last) {
        if (syscall(SYS_close_range, first, last, 0U) < 0)
                for (unsigned fd = first; fd <= last && fd < 65536; fd++)
                        (void) close((int) fd);
}

void close_all_but(int from, const int *keep, size_t n_keep) {
        unsigned first = (unsigned) from;

        for (;;) {
                unsigned next = ~0U;

                /* The lowest fd to keep at or above first: no sorting, no memory. */
                for (size_t i = 0; i < n_keep; i++)
                        if (keep[i] >= 0 && (unsigned) keep[i] >= first && (unsigned) keep[i] < next)
                                next = (unsigned) keep[i];
                if (next == ~0U) {
                        close_fd_range(first, ~0U);
                        return;
                }
                if (next > first)
                        close_fd_range(first, next - 1);
                first = next + 1;
        }
}

void child_prepare_exec(int first_to_close) {
        sigset_t all;

        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);

        close_all_but(first_to_close, NULL, 0);
}

static int reap_one(pid_t pid, void *userdata) {
        siginfo_t si = {};

        if (waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return -EAGAIN;
        return 0;
}

static int for_each_child(int (*fn)(pid_t pid, void *userdata), void *userdata);

int reap_children(void) {
        /* Walk our children (every thread's), each with waitid(P_PID) and no
         * __WALL: spawn_run()'s supervisors stay invisible to it (spawn.h). */
        return for_each_child(reap_one, NULL);
}

/* Read our children from /proc/self/task/<tid>/children of every thread. */
static int for_each_child(int (*fn)(pid_t pid, void *userdata), void *userdata) {
        DIR *tasks;
        struct dirent *de;
        int n = 0;

        tasks = opendir("/proc/self/task");
        if (!tasks)
                return -errno;
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
                while (fscanf(f, "%ld", &pid) == 1)
                        if (fn((pid_t) pid, userdata) >= 0)
                                n++;
                fclose(f);
        }
        closedir(tasks);
        return n;
}

static int kill_one(pid_t pid, void *userdata) {
        return kill(pid, *(int *) userdata) < 0 ? -errno : 0;
}

int signal_children(int sig) {
        return for_each_child(kill_one, &sig);
}


int wait_children(uint64_t timeout_usec) {
        uint64_t deadline = now_monotonic_usec() + timeout_usec;

        for (;;) {
                siginfo_t si = {};

                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0) {
                        if (errno == ECHILD)
                                return 0;
                        if (errno != EINTR)
                                return -errno;
                        continue;
                }
                if (si.si_pid != 0)
                        continue;
                if (now_monotonic_usec() >= deadline)
                        return -ETIMEDOUT;
                (void) usleep(10 * 1000);
        }
}

pid_t pidfd_get_pid(int pidfd) {
        char path[64], line[128];
        FILE *f;
        int pid = -ENOENT;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pid: %d", &pid) == 1)
                        break;
        fclose(f);
        /* -1: the process has exited; 0: it is not in our PID namespace. */
        if (pid == -1)
                return -ESRCH;
        return pid > 0 ? pid : -ENOENT;
}

int pidfd_open_pid(pid_t pid) {
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        return fd < 0 ? -errno : fd;
}

int pidfd_signal(int pidfd, int sig) {
        return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

bool pidfd_exited(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        return poll(&p, 1, 0) > 0;
}
