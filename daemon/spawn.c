/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "macro.h"
#include "spawn.h"
#include "time-util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif


/* A new O_CLOEXEC fd for fd that is above stdio (which the child's dup2()
 * calls overwrite), closing fd; fd itself if it is above already.
 * Returns the fd or -errno. */
static int fd_above_stdio(int fd) {
        int moved;

        if (fd > STDERR_FILENO)
                return fd;
        moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        if (moved < 0)
                moved = -errno;
        close(fd);
        return moved;
}

/* A pipe with both ends O_CLOEXEC and above stdio. Returns 0 or -errno. */
static int pipe_above_stdio(int p[2]) {
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        p[0] = fd_above_stdio(p[0]);
        p[1] = fd_above_stdio(p[1]);
        if (p[0] < 0 || p[1] < 0) {
                int r = p[0] < 0 ? p[0] : p[1];
                p[0] = safe_close(p[0]);
                p[1] = safe_close(p[1]);
                return r;
        }
        return 0;
}

/* In the program's process, between clone3() and execve(): only
 * async-signal-safe calls. Reports a failure by writing errno to report_fd
 * (O_CLOEXEC, so a successful exec closes it and the reader sees EOF). */
static _noreturn_ void child_exec(char *const argv[], pid_t parent, int null_fd, int stdout_fd, int stderr_fd,
                                  int report_fd) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t none;
        int e;

        /* Dies with its supervisor, which dies with the waiting thread. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                goto fail;
        /* Keeps terminal signals (a foreground vmgrd's ^C) away, as for every child of vmgrd. */
        (void) setsid();
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(stdout_fd, STDOUT_FILENO) < 0 ||
            dup2(stderr_fd, STDERR_FILENO) < 0)
                goto fail;
        /* Every vmgr fd is O_CLOEXEC already; this covers any a library
         * opened without it. Not fatal where the kernel is too old. */
        (void) close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC);
        execv(argv[0], argv);
fail:
        e = errno;
        (void) !write(report_fd, &e, sizeof(e));
        _exit(127);
}

typedef struct SupervisorReport {
        int32_t code, status;
} SupervisorReport;

/* The supervisor: started with no exit signal, it never execs, so it stays
 * invisible to a waitid() without __WALL (an execve() would reset its exit
 * signal to SIGCHLD). It starts the program as its own ordinary child, waits
 * for it, writes how it ended to status_fd and exits. Only async-signal-safe
 * calls: the process it was cloned from has other threads. */
static _noreturn_ void supervise(char *const argv[], pid_t parent, int null_fd, int stdout_fd, int stderr_fd,
                                 int report_fd, int status_fd) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        struct clone_args args = { .exit_signal = SIGCHLD };
        SupervisorReport report = {};
        siginfo_t si = {};
        pid_t self, pid;
        int e;

        /* Dies with the thread that waits for it, i.e. with vmgrd. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);
        /* SIGCHLD ignored would make the kernel reap the program itself. */
        (void) sigaction(SIGCHLD, &dfl, NULL);
        self = getpid();
        pid = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
        if (pid == 0)
                child_exec(argv, self, null_fd, stdout_fd, stderr_fd, report_fd);
        if (pid < 0) {
                e = errno;
                (void) !write(report_fd, &e, sizeof(e));
                _exit(127);
        }
        /* The reader's EOFs must depend on the program alone, and nothing
         * else of vmgrd's may stay open here: the supervisor lives as long
         * as the program (vmgr-mkguest: seconds), and an fd it kept (a
         * group's listening socket, say) would outlive vmgrd's own close
         * of it (a group made again after its deletion could not listen).
         * Every fd but status_fd goes. */
        close_all_but(0, &status_fd, 1);

        while (waitid(P_PID, (id_t) pid, &si, WEXITED) < 0)
                if (errno != EINTR)
                        _exit(127);
        report.code = si.si_code;
        report.status = si.si_status;
        (void) !write(status_fd, &report, sizeof(report));
        _exit(0);
}

/* Read what is available from fd into buf (keeping room for a NUL), drop
 * what does not fit. Returns 1 at EOF, 0 if more may come. */
static int drain(int fd, char *buf, size_t size, size_t *len) {
        char scratch[4096];

        for (;;) {
                size_t room = size > *len + 1 ? size - *len - 1 : 0;
                char *p = room > 0 ? buf + *len : scratch;
                size_t want = room > 0 ? room : sizeof(scratch);
                ssize_t n = read(fd, p, want);

                if (n < 0)
                        return errno == EINTR || errno == EAGAIN ? 0 : 1;
                if (n == 0)
                        return 1;
                if (room > 0)
                        *len += (size_t) n;
        }
}

/* Grace period for the program's stderr to close after the timeout kill. */
#define KILL_GRACE_USEC (1000ULL * 1000ULL)

/* One run of a program: the pipes between vmgrd and the supervisor, and
 * what has been read from them so far. */
typedef struct SpawnRun {
        int null_fd, pidfd;
        int err_pipe[2], out_pipe[2];
        int report[2]; /* the supervisor's or program's errno if the exec failed, else EOF */
        int status[2]; /* the supervisor's SupervisorReport */
        char *err_buf, *out_buf; /* NULL out_buf: stdout goes to /dev/null */
        size_t err_size, out_size, err_len, out_len;
        bool err_eof, out_eof, timed_out, have_result;
        SupervisorReport result;
} SpawnRun;

/* Close what is open and free the buffers. */
static void spawn_run_done(SpawnRun *s) {
        safe_close(s->null_fd);
        safe_close(s->pidfd);
        for (size_t i = 0; i < 2; i++) {
                safe_close(s->err_pipe[i]);
                safe_close(s->out_pipe[i]);
                safe_close(s->report[i]);
                safe_close(s->status[i]);
        }
        free(s->err_buf);
        free(s->out_buf);
}

/* Allocate the buffers (one byte more for the NUL) and open /dev/null and the
 * pipes, every fd above stdio. Returns 0 or -errno. */
static int spawn_run_open(SpawnRun *s, size_t err_size, bool want_out, size_t out_size) {
        int r;

        s->err_size = err_size;
        s->err_buf = malloc(err_size + 1);
        if (!s->err_buf)
                return -ENOMEM;
        if (want_out) {
                s->out_size = out_size;
                s->out_buf = malloc(out_size + 1);
                if (!s->out_buf)
                        return -ENOMEM;
        }
        s->out_eof = !want_out;

        s->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (s->null_fd < 0)
                return -errno;
        s->null_fd = fd_above_stdio(s->null_fd);
        if (s->null_fd < 0)
                return s->null_fd;
        if ((r = pipe_above_stdio(s->err_pipe)) < 0 || (r = pipe_above_stdio(s->report)) < 0 ||
            (r = pipe_above_stdio(s->status)) < 0 || (want_out && (r = pipe_above_stdio(s->out_pipe)) < 0))
                return r;
        return 0;
}

/* Clone the supervisor, which starts the program, and close our copies of
 * the write ends. Returns 0 once the program was exec'd, -errno if it could
 * not be (the supervisor is then reaped). */
static int spawn_run_start(SpawnRun *s, char *const argv[]) {
        struct clone_args args = {
                .flags = CLONE_PIDFD,
                .pidfd = (uint64_t) (uintptr_t) &s->pidfd,
                .exit_signal = 0, /* no SIGCHLD, not seen by waitid() without __WALL */
        };
        pid_t parent = getpid(), pid;
        ssize_t n;
        int e = 0;

        pid = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
        if (pid < 0)
                return -errno;
        if (pid == 0)
                supervise(argv, parent, s->null_fd, s->out_buf ? s->out_pipe[1] : s->null_fd, s->err_pipe[1],
                          s->report[1], s->status[1]);

        s->err_pipe[1] = safe_close(s->err_pipe[1]);
        s->out_pipe[1] = safe_close(s->out_pipe[1]);
        s->report[1] = safe_close(s->report[1]);
        s->status[1] = safe_close(s->status[1]);

        /* EOF: the program was exec'd. An errno: it was not. */
        do
                n = read(s->report[0], &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t) sizeof(e))
                return e > 0 ? -e : -EIO;
        return 0;
}

/* Read the program's output until the supervisor reports its end, killing
 * it at deadline (UINT64_MAX: none) and giving its pipes KILL_GRACE_USEC to
 * close after that. Returns 0 or -errno (the program is then still there). */
static int spawn_run_collect(SpawnRun *s, uint64_t deadline) {
        if (fcntl(s->err_pipe[0], F_SETFL, O_NONBLOCK) < 0 ||
            (s->out_buf && fcntl(s->out_pipe[0], F_SETFL, O_NONBLOCK) < 0))
                return -errno;

        for (;;) {
                struct pollfd p[3] = {
                        { .fd = s->timed_out ? -1 : s->status[0], .events = POLLIN },
                        { .fd = s->err_eof ? -1 : s->err_pipe[0], .events = POLLIN },
                        { .fd = s->out_eof ? -1 : s->out_pipe[0], .events = POLLIN },
                };
                int timeout_ms = -1;

                if (deadline != UINT64_MAX) {
                        uint64_t now = now_monotonic_usec();
                        if (now >= deadline) {
                                if (s->timed_out)
                                        break; /* the grace period is over too */
                                /* Killing the supervisor kills the program (its parent-death signal). */
                                (void) pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
                                s->timed_out = true;
                                deadline = now + KILL_GRACE_USEC;
                                continue;
                        }
                        /* Rounded up, not to wake just short of the deadline. */
                        timeout_ms = (int) ((deadline - now + 999) / 1000);
                }
                if (s->timed_out && s->err_eof && s->out_eof)
                        break;
                if (poll(p, ELEMENTSOF(p), timeout_ms) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[1].revents)
                        s->err_eof = drain(s->err_pipe[0], s->err_buf, s->err_size, &s->err_len);
                if (p[2].revents)
                        s->out_eof = drain(s->out_pipe[0], s->out_buf, s->out_size, &s->out_len);
                if (p[0].revents) {
                        ssize_t n;

                        do
                                n = read(s->status[0], &s->result, sizeof(s->result));
                        while (n < 0 && errno == EINTR);
                        s->have_result = n == (ssize_t) sizeof(s->result);
                        break;
                }
        }
        /* What it wrote just before exiting (a child of its own may still
         * hold the pipe open: take what is there, do not wait for EOF). */
        if (!s->err_eof)
                (void) drain(s->err_pipe[0], s->err_buf, s->err_size, &s->err_len);
        if (!s->out_eof)
                (void) drain(s->out_pipe[0], s->out_buf, s->out_size, &s->out_len);

        /* The supervisor died without a word: only if killed from outside. */
        if (!s->timed_out && !s->have_result)
                return -ECHILD;
        return 0;
}

/* Wait for the supervisor to end, retrying on EINTR. Returns 0 or -errno. */
static int spawn_run_reap(SpawnRun *s) {
        siginfo_t si = {};

        while (waitid(P_PIDFD, (id_t) s->pidfd, &si, WEXITED | __WALL) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

/* spawn_run() and spawn_run_stdout(); out NULL: stdout goes to /dev/null. */
static int spawn_impl(char *const argv[], uint64_t timeout_usec, char *out, size_t out_size, char *err,
                      size_t err_size, SpawnResult *ret) {
        _cleanup_(spawn_run_done) SpawnRun s = {
                .null_fd = -EBADF, .pidfd = -EBADF,
                .err_pipe = { -EBADF, -EBADF }, .out_pipe = { -EBADF, -EBADF },
                .report = { -EBADF, -EBADF }, .status = { -EBADF, -EBADF },
        };
        uint64_t start;
        int r;

        if (!argv || !argv[0] || argv[0][0] != '/' || (err_size > 0 && !err) || (out && out_size == 0))
                return -EINVAL;
        /* Collected in s, copied to err (and out) only on success. */
        r = spawn_run_open(&s, err_size, out, out_size);
        if (r < 0)
                return r;

        start = now_monotonic_usec();
        r = spawn_run_start(&s, argv);
        if (r < 0) {
                if (s.pidfd >= 0)
                        (void) spawn_run_reap(&s);
                return r;
        }
        r = spawn_run_collect(&s, timeout_usec > 0 ? start + timeout_usec : UINT64_MAX);
        if (r < 0) {
                (void) pidfd_send_signal(s.pidfd, SIGKILL, NULL, 0);
                (void) spawn_run_reap(&s);
                return r;
        }
        r = spawn_run_reap(&s);
        if (r < 0)
                return r;

        if (err_size > 0) {
                s.err_buf[s.err_len] = 0;
                memcpy(err, s.err_buf, s.err_len + 1);
        }
        if (out) {
                s.out_buf[s.out_len] = 0;
                memcpy(out, s.out_buf, s.out_len + 1);
        }
        *ret = (SpawnResult) {
                .code = s.timed_out ? CLD_KILLED : s.result.code,
                .status = s.timed_out ? SIGKILL : s.result.status,
                .timed_out = s.timed_out,
                .usec = now_monotonic_usec() - start,
        };
        return 0;
}

int spawn_run(char *const argv[], uint64_t timeout_usec, char *err, size_t err_size, SpawnResult *ret) {
        return spawn_impl(argv, timeout_usec, NULL, 0, err, err_size, ret);
}

int spawn_run_stdout(char *const argv[], uint64_t timeout_usec, char *out, size_t out_size, char *err,
                     size_t err_size, SpawnResult *ret) {
        return spawn_impl(argv, timeout_usec, out, out_size, err, err_size, ret);
}

char *spawn_first_line(char *s) {
        size_t n;

        s[strcspn(s, "\n")] = 0;
        n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                s[--n] = 0;
        return s;
}
