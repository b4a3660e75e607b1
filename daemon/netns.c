/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "netns.h"

#define NETNS_MAGIC 0x766e7331u /* "vns1" */
#define NETNS_HOLDER_NAME "vmgrd-netns"
/* The holder answers within microseconds; a second means it is wedged. */
#define NETNS_REPLY_TIMEOUT_MS 1000
#define NETNS_START_TIMEOUT_MS 5000
/* The holder's end: up to 1 s for SIGTERM, 5 s for SIGKILL, then files. */
#define NETNS_END_TIMEOUT_MS 8000

/* vmgrd -> holder: make a socket. */
struct netns_request {
        uint32_t magic;
        int32_t family;
        int32_t type;
        int32_t protocol;
};

/* holder -> vmgrd: 0 and the fd, or -errno. Also the holder's first
 * message, once its namespaces are set up (no fd). */
struct netns_reply {
        uint32_t magic;
        int32_t error;
        char stage[48];         /* what failed, for the start-up message */
};

struct Netns {
        pid_t pid;
        int pidfd;
        int sock;
        int userns_fd, netns_fd, pidns_fd, mntns_fd;
};

static int clone3_call(struct clone_args *args) {
        return (int) syscall(SYS_clone3, args, sizeof(*args));
}

/* --- the holder ------------------------------------------------------ */

/* In the holder: bring lo up (the groups' service addresses live on it). */
static int holder_loopback_up(void) {
        struct ifreq ifr = {};
        int fd, r = 0;

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        strcpy(ifr.ifr_name, "lo");
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                r = -errno;
        else {
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                        r = -errno;
        }
        (void) close(fd);
        return r;
}

/* In the holder: a /proc of our PID namespace, and a /sys of our network
 * namespace, in a mount namespace of our own (everything else is vmgrd's
 * view, and follows it: the new mount namespace receives vmgrd's mounts).
 * Programs inside find themselves under their own pid in /proc (libvirt
 * reads /proc/PID of its QEMUs, the sanitizers /proc/PID/task).
 * Returns 0 or -errno. */
static int holder_mount_proc(void) {
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        /* Best effort: nothing of vmgr's reads /sys/class/net, but people in
         * `vmgrctl enter` may. */
        (void) mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
        return 0;
}

/* In the holder: let the user's processes in here send ICMP echo through
 * ping sockets (a new network namespace allows nobody), so that `vmgrctl
 * enter -- ping` needs no capability. Returns 0 or -errno. */
static int holder_allow_ping(gid_t gid) {
        char buf[64];
        int fd, len, r = 0;

        len = snprintf(buf, sizeof(buf), "%u %u\n", (unsigned) gid, (unsigned) gid);
        fd = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, buf, (size_t) len) != len)
                r = -errno ?: -EIO;
        (void) close(fd);
        return r;
}

static void holder_report(int sock, int error, const char *stage) {
        struct netns_reply rep = { .magic = NETNS_MAGIC, .error = error };

        strncpy(rep.stage, stage, sizeof(rep.stage) - 1);
        (void) vmgr_datagram_send(sock, &rep, sizeof(rep), -EBADF);
}

/* Serve one socket request. Returns 0, or -errno when the connection is over. */
static int holder_serve(int sock) {
        struct netns_request req;
        struct netns_reply rep = { .magic = NETNS_MAGIC };
        int n, fd = -EBADF, base;

        n = vmgr_datagram_receive(sock, &req, sizeof(req), MSG_DONTWAIT, NULL, NULL);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n <= 0)
                return n < 0 ? n : -ECONNRESET;
        base = req.type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
        if ((size_t) n != sizeof(req) || req.magic != NETNS_MAGIC)
                return -EBADMSG;
        if ((req.family != AF_INET && req.family != AF_INET6) || (base != SOCK_STREAM && base != SOCK_DGRAM))
                rep.error = -EAFNOSUPPORT;
        else {
                fd = socket(req.family, req.type | SOCK_CLOEXEC, req.protocol);
                if (fd < 0)
                        rep.error = -errno;
        }
        n = vmgr_datagram_send(sock, &rep, sizeof(rep), fd);
        if (fd >= 0)
                (void) close(fd);
        return n;
}

/* Whether a process other than us is alive in our PID namespace (our
 * /proc is that namespace's). Zombies do not count: they hold no file. */
static bool holder_others_alive(void) {
        char buf[4096], stat[512], name[32];
        bool alive = false;
        int dfd;
        long n;

        dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return false;
        while (!alive && (n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0)
                for (long off = 0; off < n && !alive;) {
                        struct dirent64 *de = (struct dirent64 *) (buf + off);
                        const char *close_paren;
                        ssize_t len;
                        int fd;

                        off += de->d_reclen;
                        if (de->d_name[0] < '1' || de->d_name[0] > '9' || strcmp(de->d_name, "1") == 0)
                                continue;
                        if (snprintf(name, sizeof(name), "%s/stat", de->d_name) >= (int) sizeof(name))
                                continue;
                        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
                        if (fd < 0)
                                continue;
                        len = read(fd, stat, sizeof(stat) - 1);
                        (void) close(fd);
                        if (len <= 0)
                                continue;
                        stat[len] = 0;
                        close_paren = strrchr(stat, ')');
                        /* "PID (COMM) S ...": S is the state. */
                        if (close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X')
                                alive = true;
                }
        (void) close(dfd);
        return alive;
}

/* Signal every other process of our PID namespace and wait up to
 * timeout_ms for them to be gone, reaping those that are ours. */
static void holder_stop_all(int sig, int timeout_ms) {
        const struct timespec tick = { .tv_nsec = 5 * 1000 * 1000 };

        (void) kill(-1, sig);
        for (int waited = 0; waited < timeout_ms; waited += 5) {
                while (waitpid(-1, NULL, WNOHANG) > 0)
                        ;
                if (!holder_others_alive())
                        return;
                (void) nanosleep(&tick, NULL);
        }
}

/* Remove everything below the directory dfd, keeping the entry named keep
 * at the top (vmgrd's lock). Symlinks are removed, never followed. Only
 * syscalls: we are a clone of a threaded process. */
static void holder_remove_tree(int dfd, const char *keep, unsigned depth) {
        char buf[4096];
        bool removed;
        long n;

        do {
                removed = false;
                if (lseek(dfd, 0, SEEK_SET) < 0)
                        return;
                while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0)
                        for (long off = 0; off < n;) {
                                struct dirent64 *de = (struct dirent64 *) (buf + off);
                                int sub;

                                off += de->d_reclen;
                                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                                    (keep && strcmp(de->d_name, keep) == 0))
                                        continue;
                                if (de->d_type == DT_DIR && depth < 32) {
                                        sub = openat(dfd, de->d_name,
                                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                        if (sub >= 0) {
                                                holder_remove_tree(sub, NULL, depth + 1);
                                                (void) close(sub);
                                        }
                                        if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) == 0)
                                                removed = true;
                                } else if (unlinkat(dfd, de->d_name, 0) == 0)
                                        removed = true;
                        }
        } while (removed);
}

/* vmgrd is gone (our socket's EOF) or asked us to end (SIGTERM, also our
 * parent-death signal): stop everything in our namespaces, SIGTERM first so
 * that libvirtd removes its own files, then SIGKILL; remove what they left
 * in vmgrd's runtime directory (sockets, pid files, libvirt's run files),
 * keeping the lock; exit. We hold vmgrd's lock until then, so a new vmgrd
 * cannot start while we clean. The network namespace goes with us. */
_noreturn_ static void holder_end(int runtime_fd, const char *lock_name) {
        holder_stop_all(SIGTERM, 1000);
        holder_stop_all(SIGKILL, 5000);
        if (runtime_fd >= 0)
                holder_remove_tree(runtime_fd, lock_name, 0);
        _exit(0);
}

static void holder_on_signal(int sig) {
        (void) sig;
}

/* PID 1 of the new PID namespace, in the new user, network and mount
 * namespaces. Cloned from vmgrd, never exec'd: only async-signal-safe calls.
 * Keeps of vmgrd's fds only stdio, its socket, the lock (lock_fd, an open
 * file description with vmgrd's flock on it) and the runtime directory. */
_noreturn_ static void holder_main(int sync_fd, int sock, int lock_fd, int runtime_fd, const char *lock_name,
                                   gid_t gid) {
        struct sigaction sa = { .sa_handler = holder_on_signal };
        sigset_t mask;
        char c;
        int sfd, r;

        /* SIGTERM when vmgrd dies: handled below (PID 1 of a namespace
         * ignores a signal it has no handler for). Had vmgrd died already,
         * the read below sees EOF. */
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);
        (void) sigaction(SIGTERM, &sa, NULL);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        (void) sigprocmask(SIG_SETMASK, &mask, NULL);
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
                _exit(1);
        /* vmgrd started as root and dropped to its user is not dumpable,
         * nor are we then: our /proc/PID files would stay root's and vmgrd
         * could not write our uid map. We hold nothing secret. */
        if (prctl(PR_SET_DUMPABLE, 1) < 0)
                _exit(1);
        holder_report(sock, 0, "");
        /* vmgrd writes our uid and gid maps, then a byte. */
        if (read(sync_fd, &c, 1) != 1)
                _exit(1);
        (void) close(sync_fd);
        (void) prctl(PR_SET_NAME, NETNS_HOLDER_NAME);
        /* Nothing else of vmgrd's: not its event loop, its bus. */
        int keep[3] = { sock, lock_fd, runtime_fd };
        unsigned from = 3;
        for (int i = 0; i < 3; i++)
                for (int j = i + 1; j < 3; j++)
                        if (keep[j] < keep[i]) {
                                int t = keep[i];
                                keep[i] = keep[j];
                                keep[j] = t;
                        }
        for (int i = 0; i < 3; i++) {
                if (keep[i] < (int) from)
                        continue;
                if ((unsigned) keep[i] > from)
                        (void) syscall(SYS_close_range, from, (unsigned) keep[i] - 1, 0u);
                from = (unsigned) keep[i] + 1;
        }
        (void) syscall(SYS_close_range, from, ~0U, 0u);

        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                holder_report(sock, -errno, "signalfd");
                _exit(1);
        }
        r = holder_mount_proc();
        if (r < 0) {
                holder_report(sock, r, "mounting /proc");
                _exit(1);
        }
        r = holder_loopback_up();
        if (r < 0) {
                holder_report(sock, r, "bringing lo up");
                _exit(1);
        }
        r = holder_allow_ping(gid);
        if (r < 0) {
                holder_report(sock, r, "setting net.ipv4.ping_group_range");
                _exit(1);
        }
        holder_report(sock, 0, "");

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = sock, .events = POLLIN },
                        { .fd = sfd, .events = POLLIN },
                };

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        holder_end(runtime_fd, lock_name);
                }
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        bool term = false;

                        while (read(sfd, &si, sizeof(si)) > 0)
                                term = term || si.ssi_signo == SIGTERM;
                        /* Orphans of our PID namespace (dnsmasq, QEMU) end up ours. */
                        while (waitpid(-1, NULL, WNOHANG) > 0)
                                ;
                        if (term)
                                holder_end(runtime_fd, lock_name);
                }
                if (p[0].revents && holder_serve(sock) < 0)
                        holder_end(runtime_fd, lock_name); /* vmgrd is gone, or closed us */
        }
}

/* --- in vmgrd ------------------------------------------------------- */

static int write_proc_file(pid_t pid, const char *name, const char *text) {
        char path[64];
        ssize_t len = (ssize_t) strlen(text);
        int fd, r = 0;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, name);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, text, (size_t) len) != len)
                r = -errno ?: -EIO;
        (void) close(fd);
        return r;
}

/* Read a one-number sysctl; -1 when absent or unreadable. */
static long sysctl_number(const char *path) {
        FILE *f = fopen(path, "re");
        long v = -1;

        if (!f)
                return -1;
        if (fscanf(f, "%ld", &v) != 1)
                v = -1;
        fclose(f);
        return v;
}

/* Log why a user namespace could not be made, naming the setting. */
static int log_userns_refused(int r, const char *what) {
        long max = sysctl_number("/proc/sys/user/max_user_namespaces");
        long apparmor = sysctl_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");

        if (max == 0)
                return log_error_errno(-r,
                                       "Namespace mode needs a user namespace, and %s failed (%m): user namespaces "
                                       "are disabled here (user.max_user_namespaces = 0); raise it, or run in host "
                                       "mode with the installed helper",
                                       what);
        if (apparmor > 0)
                return log_error_errno(-r,
                                       "Namespace mode needs a user namespace, and %s failed (%m): AppArmor restricts "
                                       "unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns "
                                       "= %ld); allow them for vmgrd with an AppArmor profile, or run in host mode",
                                       what, apparmor);
        return log_error_errno(-r,
                               "Namespace mode needs a user namespace, and %s failed (%m): user namespaces are not "
                               "allowed for this user here (check user.max_user_namespaces, "
                               "kernel.apparmor_restrict_unprivileged_userns, a seccomp filter or the container "
                               "vmgrd runs in), or run in host mode",
                               what);
}

static int open_ns(pid_t pid, const char *name) {
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* Wait up to timeout_ms for the holder's next report. Returns 0, the
 * holder's -errno (stage set), or -errno of our own. */
static int holder_wait_report(Netns *n, int timeout_ms, char stage[48]) {
        struct netns_reply rep;
        struct pollfd p = { .fd = n->sock, .events = POLLIN };
        int r;

        stage[0] = 0;
        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return -ETIMEDOUT;
        if (r < 0)
                return -errno;
        r = vmgr_datagram_receive(n->sock, &rep, sizeof(rep), MSG_DONTWAIT, NULL, NULL);
        if (r == 0)
                return -ECONNRESET;
        if (r < 0)
                return r;
        if ((size_t) r != sizeof(rep) || rep.magic != NETNS_MAGIC)
                return -EBADMSG;
        memcpy(stage, rep.stage, sizeof(rep.stage));
        stage[sizeof(rep.stage) - 1] = 0;
        return rep.error < 0 ? rep.error : 0;
}

/* Clone the holder into new user, network, PID and mount namespaces, where
 * it runs holder_main(). Returns 0 with n->pid, n->pidfd and n->sock set
 * and *ret_sync_fd the pipe end whose byte lets the holder go on once its
 * maps are written, or -errno after logging. */
static int holder_clone(Netns *n, gid_t gid, int lock_fd, int runtime_fd, const char *lock_name,
                        int *ret_sync_fd) {
        int sv[2], sync_pipe[2], pidfd = -EBADF;
        pid_t pid;
        int r;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Cannot create the namespace holder's socket: %m");
        if (pipe2(sync_pipe, O_CLOEXEC) < 0) {
                r = -errno;
                close(sv[0]);
                close(sv[1]);
                return log_error_errno(-r, "Cannot create a pipe: %m");
        }

        struct clone_args args = {
                .flags = CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_PIDFD,
                .pidfd = (uint64_t) (uintptr_t) &pidfd,
                .exit_signal = SIGCHLD,
        };
        pid = clone3_call(&args);
        if (pid == 0) {
                close(sv[0]);
                close(sync_pipe[1]);
                holder_main(sync_pipe[0], sv[1], lock_fd, runtime_fd, lock_name, gid);
        }
        r = pid < 0 ? -errno : 0;
        close(sv[1]);
        close(sync_pipe[0]);
        if (r < 0) {
                close(sync_pipe[1]);
                close(sv[0]);
                return log_userns_refused(r, "creating it");
        }
        n->pid = pid;
        n->pidfd = pidfd;
        n->sock = sv[0];
        *ret_sync_fd = sync_pipe[1];
        return 0;
}

/* Map our uid and gid into the holder's user namespace, each to itself:
 * nothing else exists in there (other owners show as the overflow id).
 * setgroups must be denied before an unprivileged process may write a gid
 * map. Returns 0 or -errno. */
static int holder_write_maps(pid_t pid, uid_t uid, gid_t gid) {
        char map[64];
        int r;

        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned) uid, (unsigned) uid);
        r = write_proc_file(pid, "uid_map", map);
        if (r < 0)
                return r;
        r = write_proc_file(pid, "setgroups", "deny");
        if (r < 0)
                return r;
        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned) gid, (unsigned) gid);
        return write_proc_file(pid, "gid_map", map);
}

/* Let the cloned holder go on: wait until it is dumpable (see holder_main()),
 * which makes its maps ours to write, write them, then send the byte it
 * waits for on sync_fd. Closes sync_fd in every case, so that a holder
 * left waiting reads EOF and exits. Returns 0 or -errno after logging. */
static int holder_release(Netns *n, uid_t uid, gid_t gid, int sync_fd) {
        char stage[48];
        int r;

        r = holder_wait_report(n, NETNS_START_TIMEOUT_MS, stage);
        if (r < 0) {
                close(sync_fd);
                return log_error_errno(-r, "The namespace holder did not start: %m");
        }
        r = holder_write_maps(n->pid, uid, gid);
        if (r < 0) {
                close(sync_fd);
                return log_userns_refused(r, "mapping our uid into it");
        }
        if (write(sync_fd, "x", 1) != 1) {
                r = -errno;
                close(sync_fd);
                return log_error_errno(-r, "Cannot start the namespace holder: %m");
        }
        close(sync_fd);
        return 0;
}

/* Wait for the holder to report that its namespaces are set up (/proc, lo,
 * ping). Returns 0 or -errno after logging, naming the stage that failed. */
static int holder_wait_ready(Netns *n) {
        char stage[48];
        int r;

        r = holder_wait_report(n, NETNS_START_TIMEOUT_MS, stage);
        if (r < 0) {
                if (stage[0])
                        return log_error_errno(-r, "The namespace holder failed %s: %m", stage);
                return log_error_errno(-r, "The namespace holder did not start: %m");
        }
        return 0;
}

/* Open the holder's four namespaces, which vmgrd and its children enter.
 * Returns 0 or -errno after logging. */
static int holder_open_namespaces(Netns *n) {
        int r;

        n->userns_fd = open_ns(n->pid, "user");
        n->netns_fd = open_ns(n->pid, "net");
        n->pidns_fd = open_ns(n->pid, "pid");
        n->mntns_fd = open_ns(n->pid, "mnt");
        if (n->userns_fd < 0 || n->netns_fd < 0 || n->pidns_fd < 0 || n->mntns_fd < 0) {
                r = n->userns_fd < 0 ? n->userns_fd
                    : n->netns_fd < 0 ? n->netns_fd
                    : n->pidns_fd < 0 ? n->pidns_fd
                                      : n->mntns_fd;
                return log_error_errno(-r, "Cannot open the namespaces of the holder: %m");
        }
        return 0;
}

int netns_new(uid_t uid, gid_t gid, int lock_fd, const char *runtime_dir, const char *lock_name, Netns **ret) {
        _cleanup_free_ Netns *n = NULL;
        _cleanup_close_ int runtime_fd = -EBADF;
        int sync_fd = -EBADF, r;

        n = calloc(1, sizeof(*n));
        if (!n)
                return log_oom();
        n->pidfd = n->sock = n->userns_fd = n->netns_fd = n->pidns_fd = n->mntns_fd = -EBADF;

        if (runtime_dir) {
                runtime_fd = open(runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (runtime_fd < 0)
                        return log_error_errno(errno, "Cannot open %s: %m", runtime_dir);
        }

        r = holder_clone(n, gid, lock_fd, runtime_fd, lock_name, &sync_fd);
        if (r < 0)
                return r;
        /* From here on a failure ends the holder: netns_free() closes its
         * socket and waits for it to exit. */
        r = holder_release(n, uid, gid, sync_fd);
        if (r >= 0)
                r = holder_wait_ready(n);
        if (r >= 0)
                r = holder_open_namespaces(n);
        if (r < 0) {
                (void) netns_free(TAKE_PTR(n));
                return r;
        }

        log_debug("Namespace holder running as pid %d", (int) n->pid);
        *ret = TAKE_PTR(n);
        return 0;
}

Netns *netns_free(Netns *n) {
        if (!n)
                return NULL;
        /* The holder takes our socket's EOF as the end: it stops everything
         * in its namespaces (SIGTERM, then SIGKILL) and removes what they
         * left in the runtime directory. Give it the time that takes, then
         * make sure. */
        n->sock = safe_close(n->sock);
        if (n->pidfd >= 0) {
                uint64_t deadline = now_monotonic_usec() + NETNS_END_TIMEOUT_MS * 1000ULL;
                siginfo_t si;

                /* As PID 1 of its namespace the holder is gone only once
                 * every pid there is free: our children in there (the
                 * helper, libvirtd) must be reaped meanwhile. */
                for (;;) {
                        struct pollfd p = { .fd = n->pidfd, .events = POLLIN };

                        (void) reap_children();
                        if (poll(&p, 1, 10) > 0)
                                break;
                        if (now_monotonic_usec() > deadline) {
                                (void) pidfd_signal(n->pidfd, SIGKILL);
                                deadline = UINT64_MAX;
                        }
                }
                (void) waitid(P_PIDFD, (id_t) n->pidfd, &si, WEXITED);
        }
        safe_close(n->pidfd);
        safe_close(n->userns_fd);
        safe_close(n->netns_fd);
        safe_close(n->pidns_fd);
        safe_close(n->mntns_fd);
        free(n);
        return NULL;
}

pid_t netns_holder_pid(const Netns *n) {
        return n->pid;
}

int netns_holder_pidfd(const Netns *n) {
        return n->pidfd;
}

int netns_userns_fd(const Netns *n) {
        return n->userns_fd;
}

int netns_netns_fd(const Netns *n) {
        return n->netns_fd;
}

int netns_socket(Netns *n, int family, int type, int protocol) {
        struct netns_request req = {
                .magic = NETNS_MAGIC,
                .family = family,
                .type = type,
                .protocol = protocol,
        };
        struct netns_reply rep;
        int r, fd = -EBADF;

        r = vmgr_datagram_send(n->sock, &req, sizeof(req), -EBADF);
        if (r < 0)
                return r;
        struct pollfd p = { .fd = n->sock, .events = POLLIN };
        do
                r = poll(&p, 1, NETNS_REPLY_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return -ETIMEDOUT;
        if (r < 0)
                return -errno;
        r = vmgr_datagram_receive(n->sock, &rep, sizeof(rep), MSG_DONTWAIT, &fd, NULL);
        if (r < 0)
                return r;
        if ((size_t) r != sizeof(rep) || rep.magic != NETNS_MAGIC || (rep.error >= 0) != (fd >= 0)) {
                safe_close(fd);
                return -EBADMSG;
        }
        return rep.error < 0 ? rep.error : fd;
}

pid_t netns_fork(Netns *n) {
        int report[2];
        int32_t result = -EIO;
        pid_t pid;
        int r;

        if (!n) {
                pid = fork();
                return pid < 0 ? -errno : pid;
        }

        if (pipe2(report, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(report[0]);
                close(report[1]);
                return r;
        }
        if (pid == 0) {
                /* The intermediate: single-threaded, so it may join a user
                 * namespace. Joining the PID namespace affects only its
                 * children, so it clones the real child, as a child of
                 * vmgrd's (CLONE_PARENT), and leaves. */
                struct clone_args args = { .flags = CLONE_PARENT };
                int32_t v;

                close(report[0]);
                if (setns(n->userns_fd, CLONE_NEWUSER) < 0 || setns(n->netns_fd, CLONE_NEWNET) < 0 ||
                    setns(n->pidns_fd, CLONE_NEWPID) < 0 || setns(n->mntns_fd, CLONE_NEWNS) < 0)
                        v = -errno;
                else {
                        v = clone3_call(&args);
                        if (v == 0) {
                                close(report[1]);
                                return 0;
                        }
                        if (v < 0)
                                v = -errno;
                }
                (void) !write(report[1], &v, sizeof(v));
                _exit(0);
        }

        close(report[1]);
        do
                r = (int) read(report[0], &result, sizeof(result));
        while (r < 0 && errno == EINTR);
        close(report[0]);
        /* The intermediate is reaped by vmgrd's SIGCHLD handling. */
        if (r != sizeof(result))
                return -EIO;
        return result;
}

int netns_child_keep_net_caps(void) {
        static const int caps[] = { CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE };
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = {};

        for (size_t i = 0; i < ELEMENTSOF(caps); i++) {
                d[caps[i] / 32].permitted |= 1u << (caps[i] % 32);
                d[caps[i] / 32].inheritable |= 1u << (caps[i] % 32);
        }
        d[0].effective = d[0].permitted;
        d[1].effective = d[1].permitted;
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(caps); i++)
                if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long) caps[i], 0, 0) < 0)
                        return -errno;
        return 0;
}
