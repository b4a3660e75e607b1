/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "dnsmasq.h"
#include "fd-util.h"
#include "macro.h"
#include "message.h"
#include "netadm-proto.h"
#include "vmgr-config.h"

#define DNSMASQ_STDERR "dnsmasq.stderr"
#define DNSMASQ_CMDLINE_MAX 8192
#define DNSMASQ_TERM_TIMEOUT_MS 2000    /* then SIGKILL */
#define DNSMASQ_KILL_TIMEOUT_MS 2000

/* Give the process the three network capabilities as inheritable and
 * ambient, so that they survive the execve() of dnsmasq, which has no file
 * capabilities. Returns 0 or -errno. */
static int caps_make_ambient(void) {
        int r;

        r = netadm_caps_set(true);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(netadm_caps); i++)
                if (cap_set_ambient(netadm_caps[i], CAP_SET) < 0)
                        return negative_errno();
        return 0;
}

/* In the dnsmasq process, which shares our memory until its exec (see
 * dnsmasq_spawn()): set up a clean process and exec. If the exec fails, its
 * errno goes to error_fd (close-on-exec: at a successful exec it closes with
 * nothing written). Never returns. */
_noreturn_ _no_sanitize_address_ static void dnsmasq_exec(char **argv, int dir_fd, int error_fd) {
        static char *const envp[] = { (char *) VMGR_DNSMASQ_ENV_PATH, NULL };
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t none;
        int null_fd, err_fd, r;

        /* Whatever vmgrd blocked or ignored is not dnsmasq's business. */
        for (int sig = 1; sig < _NSIG; sig++)
                (void) sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        /* Its own session: a terminal's signals to vmgrd's process group are
         * not meant for it; vmgrd stops it through the pidfd. */
        (void) setsid();

        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (null_fd >= 0)
                null_fd = vmgr_fd_move_above_stdio(null_fd);
        err_fd = openat(dir_fd, DNSMASQ_STDERR, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                        0640);
        if (err_fd >= 0)
                err_fd = vmgr_fd_move_above_stdio(err_fd);
        if (err_fd < 0)
                err_fd = null_fd;
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0 ||
            dup2(err_fd, STDERR_FILENO) < 0)
                _exit(127);
        /* Nothing of the helper's may leak into dnsmasq: not the socket to
         * vmgrd, not netlink, not error_fd. Closed at exec rather than now,
         * so that the helper sees error_fd close only once dnsmasq runs. */
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                _exit(127);
        if (chdir("/") < 0)
                _exit(127);

        r = caps_make_ambient();
        if (r < 0) {
                vmgr_print_error(r, "vmgr-netadm: cannot pass capabilities to dnsmasq: %m");
                _exit(127);
        }

        execve(argv[0], argv, envp);
        r = errno;
        fprintf(stderr, "vmgr-netadm: cannot execute %s: %m\n", argv[0]);
        (void) !write(error_fd, &r, sizeof(r));
        _exit(127);
}

/* Open dir for dnsmasq's files: an existing directory, not a symlink,
 * owned by uid. Returns the fd or -errno with msg. */
static int runtime_dir_open(const char *dir, uid_t uid, char *msg) {
        _cleanup_close_ int fd = -EBADF;
        const char *reason;
        struct stat st;
        int r;

        if (vmgr_netadm_dir_check(dir, &reason) < 0)
                return netadm_fail(msg, -EINVAL, "runtime directory %s: %s", dir, reason);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = negative_errno();
                /* O_DIRECTORY wins over O_NOFOLLOW: a symlink may show as ENOTDIR. */
                if (r == -ELOOP || (r == -ENOTDIR && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)))
                        return netadm_fail(msg, -ELOOP, "runtime directory %s is a symbolic link", dir);
                return netadm_fail(msg, r, "runtime directory %s: %m", dir);
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                return netadm_fail(msg, r, "runtime directory %s: %m", dir);
        }
        if (st.st_uid != uid)
                return netadm_fail(msg, -EPERM, "runtime directory %s belongs to uid %u, not to the caller's uid %u",
                                   dir, (unsigned) st.st_uid, (unsigned) uid);
        return TAKE_FD(fd);
}

int dnsmasq_dir_open(const char *dir, uid_t uid, char *msg) {
        /* The group's dnsmasq runs as the caller: for uid 0 that would be
         * a root process (with what root gets at an exec) serving untrusted
         * guests. Say so now. */
        if (uid == 0)
                return netadm_fail(msg, -EPERM,
                                   "dnsmasq cannot be started for uid 0 (it would run as root); "
                                   "run vmgrd as an unprivileged user");
        return runtime_dir_open(dir, uid, msg);
}

/* The stack dnsmasq's process runs on until its exec: it shares our memory
 * then (CLONE_VM), and we are suspended meanwhile (CLONE_VFORK); the helper
 * is single-threaded, so one stack serves every spawn. */
static uint8_t spawn_stack[64 * 1024] __attribute__((aligned(16)));

struct spawn_args {
        char **argv;
        int dir_fd;
        int error_fd;
};

_no_sanitize_address_ static int spawn_child(void *userdata) {
        struct spawn_args *a = userdata;

        dnsmasq_exec(a->argv, a->dir_fd, a->error_fd);
}

int dnsmasq_spawn(const char *group, const char *dir, int dir_fd, uid_t uid, struct dnsmasq_child *ret, char *msg) {
        char *argv[VMGR_DNSMASQ_ARGV_MAX], storage[VMGR_DNSMASQ_ARGV_STORAGE];
        _cleanup_close_ int error_read = -EBADF, error_write = -EBADF;
        int pipe_fds[2], pidfd = -EBADF, r;
        struct spawn_args a;
        sigset_t all, saved;
        pid_t pid;

        r = vmgr_dnsmasq_argv(VMGR_DNSMASQ_PATH, uid, group, dir, argv, ELEMENTSOF(argv), storage, sizeof(storage));
        if (r < 0)
                return netadm_fail(msg, r, "building the dnsmasq command line: %m");
        if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
                r = negative_errno();
                return netadm_fail(msg, r, "pipe: %m");
        }
        error_read = pipe_fds[0];
        error_write = pipe_fds[1];
        a = (struct spawn_args) { .argv = argv, .dir_fd = dir_fd, .error_fd = error_write };

        /* dnsmasq must end up vmgrd's child, not ours: CLONE_PARENT makes it
         * our parent's (vmgrd, a child-subreaper that supervises and reaps
         * it; the kernel then gives it our own exit signal, SIGCHLD from
         * vmgrd's fork, whatever the flags say), CLONE_PIDFD hands us
         * a pidfd for exactly this process. CLONE_VM | CLONE_VFORK, as
         * posix_spawn() does: no copy of our page tables and no copy-on-write
         * faults on either side, and we go on once the exec has begun. Its
         * own signal handlers, files, directory and credentials are copies
         * (no CLONE_SIGHAND, CLONE_FILES, CLONE_FS, CLONE_THREAD), so what it
         * changes before the exec stays its own; all signals stay blocked
         * until it has reset every handler, so none of ours runs in it. */
        sigfillset(&all);
        (void) sigprocmask(SIG_BLOCK, &all, &saved);
        pid = clone(spawn_child, spawn_stack + sizeof(spawn_stack),
                    CLONE_VM | CLONE_VFORK | CLONE_PARENT | CLONE_PIDFD, &a, &pidfd);
        r = pid < 0 ? negative_errno() : 0;
        (void) sigprocmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return netadm_fail(msg, r, "starting %s: clone: %m", VMGR_DNSMASQ_PATH);
        error_write = safe_close(error_write);

        *ret = (struct dnsmasq_child) {
                .pid = pid,
                .pidfd = pidfd,
                .exec_fd = TAKE_FD(error_read),
        };
        return 0;
}

void dnsmasq_child_kill(struct dnsmasq_child *c) {
        if (c->pidfd >= 0) {
                struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

                (void) pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
                /* Gone before we answer: nobody finds it serving afterwards. */
                while (poll(&p, 1, DNSMASQ_KILL_TIMEOUT_MS) < 0 && errno == EINTR)
                        ;
        }
        c->pidfd = safe_close(c->pidfd);
        c->exec_fd = safe_close(c->exec_fd);
}

int dnsmasq_child_wait(struct dnsmasq_child *c, char *msg) {
        ssize_t n;
        int e = 0;

        /* The helper looks for dnsmasq by its command line (GROUP_DELETE
         * stops it): answer only once the exec has happened, so that from
         * the reply on, it is found. EOF: the exec closed the pipe (or the
         * child died before it, which vmgrd sees as an early exit). */
        while ((n = read(c->exec_fd, &e, sizeof(e))) < 0 && errno == EINTR)
                ;
        c->exec_fd = safe_close(c->exec_fd);
        if (n == (ssize_t) sizeof(e)) {
                dnsmasq_child_kill(c);
                return netadm_fail(msg, e > 0 ? -e : -EIO, "starting %s: %s", VMGR_DNSMASQ_PATH,
                                   strerror(e > 0 ? e : EIO));
        }
        return 0;
}

int dnsmasq_start(const char *group, const char *dir, uid_t uid, pid_t *ret_pid, int *ret_pidfd, char *msg) {
        _cleanup_close_ int dir_fd = -EBADF;
        struct dnsmasq_child c;
        int r;

        dir_fd = dnsmasq_dir_open(dir, uid, msg);
        if (dir_fd < 0)
                return dir_fd;
        r = dnsmasq_spawn(group, dir, dir_fd, uid, &c, msg);
        if (r < 0)
                return r;
        r = dnsmasq_child_wait(&c, msg);
        if (r < 0)
                return r;
        *ret_pid = c.pid;
        *ret_pidfd = c.pidfd;
        return 0;
}

/* The identity of this network namespace as /proc shows it: every network
 * namespace has its own /proc/PID/net/dev entry, and anybody may stat
 * another process's (its ns/net link needs ptrace access). pid 0 is
 * ourselves. Returns 0 or -errno. */
static int netns_stat(pid_t pid, struct stat *ret) {
        char path[64];

        if (pid == 0)
                snprintf(path, sizeof(path), "/proc/self/net/dev");
        else
                snprintf(path, sizeof(path), "/proc/%d/net/dev", (int) pid);
        return stat(path, ret) < 0 ? negative_errno() : 0;
}

/* Whether the NUL-separated command line cmd (n bytes) is a dnsmasq's with
 * the argument "--interface=ifname". */
static bool cmdline_serves(const char *cmd, size_t n, const char *ifname) {
        char want[IFNAMSIZ + 16];
        const char *base;

        if (n == 0 || cmd[n - 1] != 0)
                return false;
        base = strrchr(cmd, '/');
        base = base ? base + 1 : cmd;
        if (!streq(base, "dnsmasq"))
                return false;
        snprintf(want, sizeof(want), "--interface=%s", ifname);
        for (const char *a = cmd + strlen(cmd) + 1; a < cmd + n; a += strlen(a) + 1)
                if (streq(a, want))
                        return true;
        return false;
}

/* Read /proc/PID/FILE into buf. Returns the length or -errno. */
static ssize_t proc_read(pid_t pid, const char *file, char *buf, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        char path[64];
        size_t n = 0;

        snprintf(path, sizeof(path), "/proc/%d/%.16s", (int) pid, file);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        while (n < size) {
                ssize_t k = read(fd, buf + n, size - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        return (ssize_t) n;
}

/* The real uid and the permitted capabilities in /proc/PID/status. Returns 0 or -errno. */
static int proc_status(pid_t pid, uid_t *ret_uid, uint64_t *ret_permitted) {
        char buf[4096], *p, *q;
        unsigned long long caps;
        unsigned long u;
        ssize_t n;

        n = proc_read(pid, "status", buf, sizeof(buf) - 1);
        if (n < 0)
                return (int) n;
        buf[n] = 0;
        p = strstr(buf, "\nUid:");
        q = strstr(buf, "\nCapPrm:");
        if (!p || sscanf(p + 5, "%lu", &u) != 1 || !q || sscanf(q + 8, "%llx", &caps) != 1)
                return -EBADMSG;
        *ret_uid = (uid_t) u;
        *ret_permitted = caps;
        return 0;
}

/* Whether capability set caps holds one of the three network capabilities:
 * without them a dnsmasq can neither answer DHCP (port 67) nor send router
 * advertisements (a raw socket). */
static bool caps_can_serve(uint64_t caps) {
        for (size_t i = 0; i < ELEMENTSOF(netadm_caps); i++)
                if (caps & (UINT64_C(1) << netadm_caps[i]))
                        return true;
        return false;
}

/* Whether the process behind pidfd has exited. */
static bool pidfd_exited(int pidfd, int timeout_ms) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int n;

        while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
                ;
        return n != 0;
}

/* Call found for every live dnsmasq in this network namespace, of any uid,
 * whose command line serves ifname, except us and process skip (0: none), with its uid, its permitted capabilities
 * and a pidfd that pins it: the command line is read again once the pidfd
 * is open, and the process checked alive after its status is read, so a pid
 * reused meanwhile is never taken for it. found returns 0 to go on or a
 * negative errno to stop with. Returns 0 or that errno. */
static int dnsmasq_scan(const char *ifname, pid_t skip,
                        int (*found)(pid_t pid, uid_t uid, uint64_t permitted, int pidfd, void *userdata),
                        void *userdata) {
        _cleanup_free_ char *cmd = NULL;
        struct stat self, st;
        DIR *d;
        int r;

        r = netns_stat(0, &self);
        if (r < 0)
                return r;
        cmd = malloc(DNSMASQ_CMDLINE_MAX);
        if (!cmd)
                return -ENOMEM;
        d = opendir("/proc");
        if (!d)
                return negative_errno();

        r = 0;
        for (struct dirent *de; r == 0 && (de = readdir(d));) {
                _cleanup_close_ int pidfd = -EBADF;
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                uint64_t permitted;
                ssize_t n;
                uid_t uid;

                if (*end || pid <= 0 || pid > INT32_MAX || pid == getpid() || pid == skip)
                        continue;
                /* Most processes are not dnsmasq: rule them out by their
                 * command line alone, then pin a candidate and read it again,
                 * so that what is checked below is the pinned process. */
                n = proc_read((pid_t) pid, "cmdline", cmd, DNSMASQ_CMDLINE_MAX);
                if (n <= 0 || !cmdline_serves(cmd, (size_t) n, ifname))
                        continue;
                pidfd = pidfd_open((pid_t) pid, 0);
                if (pidfd < 0)
                        continue;
                n = proc_read((pid_t) pid, "cmdline", cmd, DNSMASQ_CMDLINE_MAX);
                if (n <= 0 || !cmdline_serves(cmd, (size_t) n, ifname))
                        continue;
                if (netns_stat((pid_t) pid, &st) < 0 || st.st_dev != self.st_dev || st.st_ino != self.st_ino)
                        continue;
                if (proc_status((pid_t) pid, &uid, &permitted) < 0 || pidfd_exited(pidfd, 0))
                        continue;
                r = found((pid_t) pid, uid, permitted, pidfd, userdata);
        }
        closedir(d);
        return r;
}

struct dnsmasq_busy {
        const char *ifname;
        char *msg;
};

static int dnsmasq_busy_found(pid_t pid, uid_t uid, uint64_t permitted, int pidfd, void *userdata) {
        struct dnsmasq_busy *b = userdata;

        /* Anybody may start a dnsmasq naming any interface; only one with
         * the network capabilities can serve it. Counting the others would
         * let any local user block any bridge name. */
        if (!caps_can_serve(permitted))
                return 0;

        return netadm_fail(b->msg, -EBUSY, "dnsmasq %d of uid %u still serves interface %s; stop it first",
                           (int) pid, (unsigned) uid, b->ifname);
}

int dnsmasq_check_none_serves(const char *ifname, pid_t ours, char *msg) {
        struct dnsmasq_busy b = { .ifname = ifname, .msg = msg };
        int r;

        r = dnsmasq_scan(ifname, ours, dnsmasq_busy_found, &b);
        if (r < 0 && r != -EBUSY)
                return netadm_fail(msg, r, "looking for a dnsmasq serving %s: %m", ifname);
        return r;
}

struct dnsmasq_stop {
        uid_t uid;
        unsigned stopped;
        char *msg;
};

static int dnsmasq_stop_found(pid_t pid, uid_t uid, uint64_t permitted, int pidfd, void *userdata) {
        struct dnsmasq_stop *s = userdata;

        /* Only the caller's: we run as the caller and may signal nothing else. */
        if (uid != s->uid)
                return 0;
        if (pidfd_send_signal(pidfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH)
                return negative_errno();
        if (!pidfd_exited(pidfd, DNSMASQ_TERM_TIMEOUT_MS)) {
                (void) pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
                if (!pidfd_exited(pidfd, DNSMASQ_KILL_TIMEOUT_MS))
                        return netadm_fail(s->msg, -ETIMEDOUT, "dnsmasq %d did not exit after SIGKILL", (int) pid);
        }
        s->stopped++;
        return 0;
}

int dnsmasq_stop_serving(const char *ifname, uid_t uid, char *msg) {
        struct dnsmasq_stop s = { .uid = uid, .msg = msg };
        int r;

        r = dnsmasq_scan(ifname, 0, dnsmasq_stop_found, &s);
        if (r == -ETIMEDOUT)
                return r;
        if (r < 0)
                return netadm_fail(msg, r, "stopping the dnsmasq serving %s: %m", ifname);
        return (int) s.stopped;
}
