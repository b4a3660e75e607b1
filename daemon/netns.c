/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
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
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "netns.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; older kernels say ENOPROTOOPT */
#endif

/* "vns2": the protocol with operations (vns1 made sockets only). */
#define NETNS_MAGIC 0x766e7332u
#define NETNS_HOLDER_NAME "vmgrd-netns"
/* Where a holder whose vmgrd has gone waits for the next one. */
#define NETNS_SOCKET_NAME "netns.sock"
/* The holder answers within microseconds; a second means it is wedged. */
#define NETNS_REPLY_TIMEOUT_MS 1000
#define NETNS_START_TIMEOUT_MS 5000
/* The holder's end: up to 1 s for SIGTERM, 5 s for SIGKILL, then files. */
#define NETNS_END_TIMEOUT_MS 8000
/* Without vmgrd, how often the holder looks whether it still keeps
 * anything (vmgrd's children inside die a moment after vmgrd). */
#define NETNS_DETACHED_CHECK_MS 200

enum {
        NETNS_OP_SOCKET = 1,    /* family, type, protocol -> a socket */
        NETNS_OP_END,           /* stop everything and exit (no reply) */
        NETNS_OP_LOCK,          /* fd: vmgrd's lock, to hold while ending */
        NETNS_OP_PIDFD,         /* pid (ours) -> a pidfd */
        NETNS_OP_STORE_FD,      /* key, fd -> kept */
        NETNS_OP_DROP_FD,       /* key */
        NETNS_OP_FETCH_FD,      /* key -> a copy of the fd kept */
};

/* vmgrd -> holder. */
struct netns_request {
        uint32_t magic;
        uint32_t op;
        int32_t family;
        int32_t type;
        int32_t protocol;
        int32_t pid;
        char key[NETNS_FD_KEY_MAX + 1]; /* NUL-terminated */
};

/* holder -> vmgrd: 0 (and an fd for SOCKET, PIDFD, FETCH_FD), or -errno.
 * Also the holder's start-up messages, and its answer to a connection on
 * its socket (no fd). */
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

/* What the holder keeps. It is a clone of a threaded process: no malloc,
 * so the fd store is a fixed array. */
typedef struct HolderState {
        int sock;               /* the attached vmgrd, or -1: none */
        int listen_fd;          /* RUNTIME/netns.sock, or -1 */
        int lock_fd;            /* an open file description with vmgrd's flock, or -1 */
        int runtime_fd;
        const char *lock_name;
        struct stat sock_file;  /* RUNTIME/netns.sock as we made it */
        unsigned n_fds;
        struct {
                char key[NETNS_FD_KEY_MAX + 1];
                int fd;
        } fds[NETNS_FD_STORE_MAX];
} HolderState;

static HolderState holder_state;

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

/* The slot of key in the fd store, or -1. */
static int holder_fd_find(HolderState *h, const char *key) {
        for (unsigned i = 0; i < h->n_fds; i++)
                if (strcmp(h->fds[i].key, key) == 0)
                        return (int) i;
        return -1;
}

/* Keep fd (taken) under key, in place of what was there. Returns 0 or
 * -errno (fd closed). */
static int holder_fd_store(HolderState *h, const char *key, int fd) {
        int i = holder_fd_find(h, key);

        if (i >= 0) {
                (void) close(h->fds[i].fd);
                h->fds[i].fd = fd;
                return 0;
        }
        if (h->n_fds >= NETNS_FD_STORE_MAX) {
                (void) close(fd);
                return -ENOSPC;
        }
        memcpy(h->fds[h->n_fds].key, key, strlen(key) + 1);
        h->fds[h->n_fds].fd = fd;
        h->n_fds++;
        return 0;
}

/* Close and forget the fd kept under key. Returns 0 or -ENOENT. */
static int holder_fd_drop(HolderState *h, const char *key) {
        int i = holder_fd_find(h, key);

        if (i < 0)
                return -ENOENT;
        (void) close(h->fds[i].fd);
        h->n_fds--;
        if ((unsigned) i != h->n_fds)
                memcpy(&h->fds[i], &h->fds[h->n_fds], sizeof(h->fds[i]));
        return 0;
}

/* A key is 1 to NETNS_FD_KEY_MAX bytes, NUL-terminated in its field. */
static bool holder_key_is_valid(const struct netns_request *req) {
        size_t len = strnlen(req->key, sizeof(req->key));

        return len > 0 && len < sizeof(req->key);
}

/* Answer one request of the attached vmgrd: *ret_fd is the fd to pass
 * back (or -EBADF); in_fd, an fd that came with the request, is taken.
 * Returns 0 or -errno for the reply. */
static int holder_handle(HolderState *h, const struct netns_request *req, int in_fd, int *ret_fd) {
        int base, fd;

        *ret_fd = -EBADF;
        switch (req->op) {
        case NETNS_OP_SOCKET:
                safe_close(in_fd);
                base = req->type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
                if ((req->family != AF_INET && req->family != AF_INET6) ||
                    (base != SOCK_STREAM && base != SOCK_DGRAM))
                        return -EAFNOSUPPORT;
                fd = socket(req->family, req->type | SOCK_CLOEXEC, req->protocol);
                if (fd < 0)
                        return -errno;
                *ret_fd = fd;
                return 0;
        case NETNS_OP_LOCK:
                /* The new vmgrd's lock: held from now on until we end,
                 * as with the vmgrd that made us. */
                if (in_fd < 0)
                        return -EBADF;
                safe_close(h->lock_fd);
                h->lock_fd = in_fd;
                return 0;
        case NETNS_OP_PIDFD:
                safe_close(in_fd);
                /* A pid of our namespace; 1 is us, and not vmgrd's to signal. */
                if (req->pid <= 1)
                        return -ESRCH;
                fd = (int) syscall(SYS_pidfd_open, (pid_t) req->pid, 0u);
                if (fd < 0)
                        return errno == EINVAL ? -ESRCH : -errno;
                *ret_fd = fd;
                return 0;
        case NETNS_OP_STORE_FD:
                if (!holder_key_is_valid(req)) {
                        safe_close(in_fd);
                        return -EINVAL;
                }
                if (in_fd < 0)
                        return -EBADF;
                return holder_fd_store(h, req->key, in_fd);
        case NETNS_OP_DROP_FD:
                safe_close(in_fd);
                return holder_key_is_valid(req) ? holder_fd_drop(h, req->key) : -EINVAL;
        case NETNS_OP_FETCH_FD: {
                int i;

                safe_close(in_fd);
                if (!holder_key_is_valid(req))
                        return -EINVAL;
                i = holder_fd_find(h, req->key);
                if (i < 0)
                        return -ENOENT;
                /* A copy to pass (and close once passed); ours stays. */
                fd = fcntl(h->fds[i].fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return -errno;
                *ret_fd = fd;
                return 0;
        }
        default:
                safe_close(in_fd);
                return -EOPNOTSUPP;
        }
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


/* Stop everything in our namespaces, SIGTERM first so that libvirtd
 * removes its own files, then SIGKILL; with clean_files, remove what they
 * left in vmgrd's runtime directory (sockets, pid files, libvirt's run
 * files, our own socket), keeping the lock; exit. The caller holds vmgrd's
 * lock, so that no vmgrd starts while we clean. The network namespace goes
 * with us, and every fd kept with our own. */
_noreturn_ static void holder_end(HolderState *h, bool clean_files) {
        if (h->listen_fd >= 0)
                (void) close(h->listen_fd);
        holder_stop_all(SIGTERM, 1000);
        holder_stop_all(SIGKILL, 5000);
        if (clean_files && h->runtime_fd >= 0)
                holder_remove_tree(h->runtime_fd, h->lock_name, 0);
        _exit(0);
}

/* Without vmgrd: take vmgrd's lock ourselves before an end, so that we
 * never empty the runtime directory under a vmgrd that started meanwhile.
 * Returns whether we hold it now (or there is none to honour). */
static bool holder_take_lock(HolderState *h) {
        int fd;

        if (h->lock_fd >= 0 || h->runtime_fd < 0 || !h->lock_name)
                return true;
        fd = openat(h->runtime_fd, h->lock_name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return false;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                (void) close(fd);
                return false;
        }
        h->lock_fd = fd;
        return true;
}

/* vmgrd's connection ended without an END: it died (kill -9, a crash) or
 * re-executes itself. If we keep nothing (no process but us in our PID
 * namespace) or cannot be found again (no runtime directory), end as
 * before: we still hold vmgrd's lock. Otherwise let the lock go, so that
 * the next vmgrd can start, and wait for it on our socket. */
static void holder_detach(HolderState *h) {
        h->sock = safe_close(h->sock);
        if (h->listen_fd < 0 || !holder_others_alive())
                holder_end(h, true);
        h->lock_fd = safe_close(h->lock_fd);
}

/* A connection on our socket: a vmgrd of our user, from outside our PID
 * namespace (nothing that runs in here: dnsmasq, QEMU, the helper, may
 * take vmgrd's place), while none is attached, becomes the attached one.
 * Every caller hears why (0, -EPERM, -EBUSY) before we hang up. */
static void holder_accept(HolderState *h) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int conn, error = 0;

        conn = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (conn < 0)
                return;
        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                error = -errno;
        /* A pid we can see is in our PID namespace; vmgrd's is not. */
        else if (cred.uid != getuid() || cred.pid != 0)
                error = -EPERM;
        else if (h->sock >= 0)
                error = -EBUSY;
        holder_report(conn, error, "");
        if (error < 0) {
                (void) close(conn);
                return;
        }
        h->sock = conn;
}

/* Serve one request of the attached vmgrd. Returns 0, or -errno when the
 * connection is over (EOF, or nonsense). An END request does not return. */
static int holder_serve(HolderState *h) {
        struct netns_request req;
        struct netns_reply rep = { .magic = NETNS_MAGIC };
        int n, in_fd = -EBADF, out_fd = -EBADF;
        bool refused;

        n = vmgr_datagram_receive(h->sock, &req, sizeof(req), MSG_DONTWAIT, &in_fd, &refused);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n <= 0)
                return n < 0 ? n : -ECONNRESET;
        if ((size_t) n != sizeof(req) || req.magic != NETNS_MAGIC) {
                safe_close(in_fd);
                return -EBADMSG;
        }
        if (req.op == NETNS_OP_END) {
                safe_close(in_fd);
                holder_end(h, true);
        }
        rep.error = holder_handle(h, &req, in_fd, &out_fd);
        n = vmgr_datagram_send(h->sock, &rep, sizeof(rep), out_fd);
        safe_close(out_fd);
        return n;
}

/* In the holder: listen on RUNTIME/netns.sock (mode 0600), where a new
 * vmgrd finds us once the one that made us is gone. Bound through our fd of
 * the directory: whatever its path, and the path's length, it is that
 * directory. Only the vmgrd that holds the lock makes a holder, so a file
 * there is a dead holder's: replaced. Returns the fd or -errno. */
static int holder_listen(int runtime_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        (void) unlinkat(runtime_fd, NETNS_SOCKET_NAME, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" NETNS_SOCKET_NAME, runtime_fd);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* The socket's mode: rw for our user only. */
        (void) umask(0177);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
                int r = -errno;
                (void) close(fd);
                return r;
        }
        return fd;
}

/* Without vmgrd: can a new one still find us? Not once the runtime
 * directory was removed (a user's runtime directory goes at the end of
 * their last session), or our socket in it, or another holder's replaced
 * it: then nobody ever will, and we would keep the groups forever. */
static bool holder_reachable(HolderState *h) {
        struct stat st;

        if (fstat(h->runtime_fd, &st) < 0 || st.st_nlink == 0)
                return false;
        return fstatat(h->runtime_fd, NETNS_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               st.st_ino == h->sock_file.st_ino && st.st_dev == h->sock_file.st_dev;
}

static void holder_on_signal(int sig) {
        (void) sig;
}

/* The holder's life after start-up: reap orphans, serve the attached
 * vmgrd, wait for a new one when it has gone, end when asked (END, or
 * SIGTERM), when there is nothing left to keep without vmgrd, or when no
 * vmgrd can find us any more. */
_noreturn_ static void holder_loop(HolderState *h, int sfd) {
        for (;;) {
                struct pollfd p[3] = {
                        { .fd = sfd, .events = POLLIN },
                        { .fd = h->listen_fd, .events = POLLIN },
                        { .fd = h->sock, .events = POLLIN },
                };
                int r;

                /* A negative fd is skipped by poll(). */
                r = poll(p, 3, h->sock >= 0 ? -1 : NETNS_DETACHED_CHECK_MS);
                if (r < 0 && errno != EINTR)
                        holder_end(h, h->sock >= 0 || holder_take_lock(h));
                if (r > 0 && p[0].revents) {
                        struct signalfd_siginfo si;
                        bool term = false;

                        while (read(sfd, &si, sizeof(si)) > 0)
                                term = term || si.ssi_signo == SIGTERM;
                        /* Orphans of our PID namespace (dnsmasq, QEMU) end up ours. */
                        while (waitpid(-1, NULL, WNOHANG) > 0)
                                ;
                        /* Asked to end: without vmgrd, clean its files only
                         * if we can hold its lock meanwhile. */
                        if (term)
                                holder_end(h, h->sock >= 0 || holder_take_lock(h));
                }
                if (r > 0 && p[2].revents && holder_serve(h) < 0)
                        holder_detach(h);
                else if (r > 0 && p[1].revents)
                        holder_accept(h);
                if (h->sock < 0 && !holder_others_alive() && holder_take_lock(h))
                        holder_end(h, true);
                /* Its files, if any are left, are no vmgrd's business now:
                 * removed only under the lock. */
                if (h->sock < 0 && !holder_reachable(h))
                        holder_end(h, holder_take_lock(h));
        }
}

/* PID 1 of the new PID namespace, in the new user, network and mount
 * namespaces. Cloned from vmgrd, never exec'd: only async-signal-safe calls.
 * Keeps of vmgrd's fds only stdio, its socket, the lock (lock_fd, an open
 * file description with vmgrd's flock on it) and the runtime directory. */
_noreturn_ static void holder_main(int sync_fd, int sock, int lock_fd, int runtime_fd, const char *lock_name,
                                   gid_t gid) {
        struct sigaction sa = { .sa_handler = holder_on_signal };
        HolderState *h = &holder_state;
        sigset_t mask;
        char c;
        int sfd, r;

        /* SIGTERM ends us: handled below (PID 1 of a namespace ignores a
         * signal it has no handler for). No parent-death signal: we outlive
         * vmgrd on purpose. Had vmgrd died already, the read below sees EOF. */
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);
        (void) sigaction(SIGTERM, &sa, NULL);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        (void) sigprocmask(SIG_SETMASK, &mask, NULL);
        /* vmgrd started as root and dropped to its user is not dumpable,
         * nor are we then: our /proc/PID files would stay root's and vmgrd
         * could not write our uid map. We hold nothing that our user's
         * own processes could not open themselves. */
        if (prctl(PR_SET_DUMPABLE, 1) < 0)
                _exit(1);
        holder_report(sock, 0, "");
        /* vmgrd writes our uid and gid maps, then a byte. */
        if (read(sync_fd, &c, 1) != 1)
                _exit(1);
        (void) close(sync_fd);
        (void) prctl(PR_SET_NAME, NETNS_HOLDER_NAME);
        /* Nothing else of vmgrd's: not its event loop, its bus. */
        close_all_but(3, (const int[]) { sock, lock_fd, runtime_fd }, 3);

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
        *h = (HolderState) {
                .sock = sock,
                .listen_fd = -1,
                .lock_fd = lock_fd,
                .runtime_fd = runtime_fd,
                .lock_name = lock_name,
        };
        if (runtime_fd >= 0) {
                r = holder_listen(runtime_fd);
                if (r < 0) {
                        holder_report(sock, r, "listening on " NETNS_SOCKET_NAME);
                        _exit(1);
                }
                h->listen_fd = r;
                if (fstatat(runtime_fd, NETNS_SOCKET_NAME, &h->sock_file, AT_SYMLINK_NOFOLLOW) < 0) {
                        holder_report(sock, -errno, "listening on " NETNS_SOCKET_NAME);
                        _exit(1);
                }
        }
        holder_report(sock, 0, "");
        holder_loop(h, sfd);
}

/* --- in vmgrd ------------------------------------------------------- */

static int netns_call(Netns *n, struct netns_request *req, int in_fd, int *ret_fd);

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

/* Close what n holds in vmgrd and free it. */
static void netns_close(Netns *n) {
        safe_close(n->sock);
        safe_close(n->pidfd);
        safe_close(n->userns_fd);
        safe_close(n->netns_fd);
        safe_close(n->pidns_fd);
        safe_close(n->mntns_fd);
        free(n);
}

/* Read /proc/PID/NAME (a small file) into buf. Returns 0 or -errno. */
static int read_proc_file(pid_t pid, const char *name, char *buf, size_t size) {
        char path[64];
        ssize_t len;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        len = read(fd, buf, size - 1);
        if (len < 0) {
                len = -errno;
                (void) close(fd);
                return (int) len;
        }
        (void) close(fd);
        buf[len] = 0;
        return 0;
}

/* Whether two fds are the same namespace (or file). */
static bool same_inode(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

/* Whether the namespace ns_fd is owned by the user namespace userns_fd. */
static bool ns_owned_by(int ns_fd, int userns_fd) {
        int owner = ioctl(ns_fd, NS_GET_USERNS);
        bool r;

        if (owner < 0)
                return false;
        r = same_inode(owner, userns_fd);
        (void) close(owner);
        return r;
}

/* The process at the other end of sock, as a pidfd: the kernel's own
 * (SO_PEERPIDFD, no pid to be reused meanwhile) or, on kernels before
 * 6.5, one opened from its pid. Checks the peer's uid. Returns the pidfd
 * or -errno. */
static int peer_pidfd(int sock, uid_t uid) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int pidfd;

        if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        if (cred.uid != uid)
                return -EPERM;
        len = sizeof(pidfd);
        if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0)
                return pidfd;
        if (errno != ENOPROTOOPT)
                return -errno;
        /* A pid of 0: the peer is in a PID namespace we cannot see. */
        return cred.pid > 0 ? pidfd_open_pid(cred.pid) : -ESRCH;
}

/* Whether /proc/PID/NAME (uid_map, gid_map) maps id to itself and
 * nothing else. Returns 0, -EPERM when it does not, or -errno. */
static int proc_map_is_identity(pid_t pid, const char *name, unsigned id) {
        char buf[256];
        unsigned a, b, count;
        int r, end = 0;

        r = read_proc_file(pid, name, buf, sizeof(buf));
        if (r < 0)
                return r;
        /* One line "ID ID 1", the kernel's padding aside. */
        if (sscanf(buf, " %u %u %u %n", &a, &b, &count, &end) != 3 || buf[end] != 0 || a != id || b != id ||
            count != 1)
                return -EPERM;
        return 0;
}

/* Is the process behind n->pidfd a holder of ours: PID 1 of a PID
 * namespace, in a user namespace that is a child of ours, owned by uid,
 * mapping uid and gid (only) to themselves, and owning the network, PID
 * and mount namespaces it is in? Sets n->pid and opens n's namespace fds
 * (the process checked alive after they were opened: not a reused pid).
 * Returns 0, -EPERM when it is not, or -errno. */
static int holder_identify(Netns *n, uid_t uid, gid_t gid) {
        char buf[1024];
        _cleanup_close_ int self_userns = -EBADF, parent = -EBADF;
        char *line, *last, *end;
        uid_t owner;
        int r;

        n->pid = pidfd_get_pid(n->pidfd);
        if (n->pid < 0)
                return n->pid;
        r = read_proc_file(n->pid, "status", buf, sizeof(buf));
        if (r < 0)
                return r;
        /* "NSpid:\tOURS\t...\t1": its pid in each PID namespace, ours first, its own last. */
        line = strstr(buf, "\nNSpid:\t");
        if (!line)
                return -EPERM;
        line += strlen("\nNSpid:\t");
        end = strchr(line, '\n');
        if (!end)
                return -EPERM;
        *end = 0;
        last = strrchr(line, '\t');
        if (!last || !streq(last, "\t1"))
                return -EPERM;
        r = proc_map_is_identity(n->pid, "uid_map", uid);
        if (r >= 0)
                r = proc_map_is_identity(n->pid, "gid_map", gid);
        if (r < 0)
                return r;

        n->userns_fd = open_ns(n->pid, "user");
        n->netns_fd = open_ns(n->pid, "net");
        n->pidns_fd = open_ns(n->pid, "pid");
        n->mntns_fd = open_ns(n->pid, "mnt");
        if (n->userns_fd < 0 || n->netns_fd < 0 || n->pidns_fd < 0 || n->mntns_fd < 0)
                return n->userns_fd < 0 ? n->userns_fd
                       : n->netns_fd < 0 ? n->netns_fd
                       : n->pidns_fd < 0 ? n->pidns_fd
                                         : n->mntns_fd;
        /* Still the process we were connected to: /proc/PID was its. */
        if (pidfd_signal(n->pidfd, 0) < 0)
                return -ESRCH;

        self_userns = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
        if (self_userns < 0)
                return -errno;
        parent = ioctl(n->userns_fd, NS_GET_PARENT);
        if (parent < 0 || !same_inode(parent, self_userns))
                return -EPERM;
        if (ioctl(n->userns_fd, NS_GET_OWNER_UID, &owner) < 0 || owner != uid)
                return -EPERM;
        if (!ns_owned_by(n->netns_fd, n->userns_fd) || !ns_owned_by(n->pidns_fd, n->userns_fd) ||
            !ns_owned_by(n->mntns_fd, n->userns_fd))
                return -EPERM;
        return 0;
}

int netns_attach(uid_t uid, gid_t gid, int lock_fd, const char *runtime_dir, const char *lock_name, Netns **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct netns_request req = { .op = NETNS_OP_LOCK };
        _cleanup_free_ Netns *n = NULL;
        char stage[48];
        int r;

        (void) lock_name; /* the holder knows it from its start */
        /* Through the directory's fd, as the holder binds it: a socket path
         * must fit sockaddr_un, whatever the runtime directory. */
        _cleanup_close_ int dir_fd = open(runtime_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return log_error_errno(errno, "Cannot open %s: %m", runtime_dir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" NETNS_SOCKET_NAME, dir_fd);
        n = calloc(1, sizeof(*n));
        if (!n)
                return log_oom();
        n->pidfd = n->userns_fd = n->netns_fd = n->pidns_fd = n->mntns_fd = -EBADF;

        n->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (n->sock < 0)
                return log_error_errno(errno, "Cannot create a socket: %m");
        if (connect(n->sock, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                r = -errno;
                safe_close(n->sock);
                if (r == -ENOENT)
                        return 0;
                /* A dead holder's socket (we hold the lock: no holder is starting). */
                if (r == -ECONNREFUSED) {
                        (void) unlink(sa.sun_path);
                        return 0;
                }
                return log_error_errno(-r, "Cannot connect to %s: %m", sa.sun_path);
        }

        /* Its first word: welcome, or why not. */
        r = holder_wait_report(n, NETNS_REPLY_TIMEOUT_MS, stage);
        if (r == -EBUSY)
                r = log_error_errno(EBUSY, "The namespace holder at %s serves another vmgrd already", sa.sun_path);
        else if (r == -EPERM)
                r = log_error_errno(EPERM,
                                    "The namespace holder at %s refuses us: it serves only its own user, from "
                                    "outside its namespaces",
                                    sa.sun_path);
        else if (r < 0)
                r = log_error_errno(-r, "The namespace holder at %s does not answer: %m", sa.sun_path);
        if (r >= 0) {
                n->pidfd = peer_pidfd(n->sock, uid);
                r = n->pidfd < 0 ? n->pidfd : holder_identify(n, uid, gid);
                if (r < 0)
                        r = log_error_errno(-r,
                                            "The process at %s is not a namespace holder of this user (%m); stop "
                                            "it, or remove the socket",
                                            sa.sun_path);
        }
        /* From now on it holds our lock, as it held the lock of the vmgrd that made it. */
        if (r >= 0 && lock_fd >= 0) {
                r = netns_call(n, &req, lock_fd, NULL);
                if (r < 0)
                        r = log_error_errno(-r, "Cannot hand the lock to the namespace holder: %m");
        }
        if (r < 0) {
                /* Our EOF without END: a real holder goes on waiting. */
                netns_close(TAKE_PTR(n));
                return r;
        }

        log_debug("Attached to the namespace holder, pid %d", (int) n->pid);
        *ret = TAKE_PTR(n);
        return 1;
}

Netns *netns_free(Netns *n) {
        struct netns_request req = { .magic = NETNS_MAGIC, .op = NETNS_OP_END };

        if (!n)
                return NULL;
        /* END, then our socket's EOF (a holder still starting up reads the
         * EOF alone and exits): the holder stops everything in its
         * namespaces (SIGTERM, then SIGKILL) and removes what they left in
         * the runtime directory. Give it the time that takes, then make
         * sure. */
        if (n->sock >= 0)
                (void) vmgr_datagram_send(n->sock, &req, sizeof(req), -EBADF);
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
                /* Fails (ECHILD) for a holder we attached to: its parent reaps it. */
                (void) waitid(P_PIDFD, (id_t) n->pidfd, &si, WEXITED);
        }
        netns_close(n);
        return NULL;
}

Netns *netns_release(Netns *n) {
        if (!n)
                return NULL;
        /* EOF without END: the holder keeps everything and waits for the next vmgrd. */
        netns_close(n);
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

/* One round trip to the holder: req (magic set here) with in_fd attached
 * when >= 0, then its reply. *ret_fd (when given) is the fd that came with
 * a successful reply, which must bring one. Returns 0, the holder's -errno,
 * or -errno of our own. */
static int netns_call(Netns *n, struct netns_request *req, int in_fd, int *ret_fd) {
        struct netns_reply rep;
        struct pollfd p = { .fd = n->sock, .events = POLLIN };
        int r, fd = -EBADF;

        req->magic = NETNS_MAGIC;
        r = vmgr_datagram_send(n->sock, req, sizeof(*req), in_fd);
        if (r < 0)
                return r;
        do
                r = poll(&p, 1, NETNS_REPLY_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return -ETIMEDOUT;
        if (r < 0)
                return -errno;
        r = vmgr_datagram_receive(n->sock, &rep, sizeof(rep), MSG_DONTWAIT, ret_fd ? &fd : NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return -ECONNRESET;
        if ((size_t) r != sizeof(rep) || rep.magic != NETNS_MAGIC || (rep.error >= 0 && ret_fd && fd < 0) ||
            (rep.error < 0 && fd >= 0)) {
                safe_close(fd);
                return -EBADMSG;
        }
        if (rep.error < 0)
                return rep.error;
        if (ret_fd)
                *ret_fd = fd;
        return 0;
}

int netns_socket(Netns *n, int family, int type, int protocol) {
        struct netns_request req = {
                .op = NETNS_OP_SOCKET,
                .family = family,
                .type = type,
                .protocol = protocol,
        };
        int r, fd;

        r = netns_call(n, &req, -EBADF, &fd);
        return r < 0 ? r : fd;
}

int netns_pidfd(Netns *n, pid_t pid_in_ns) {
        struct netns_request req = { .op = NETNS_OP_PIDFD, .pid = (int32_t) pid_in_ns };
        int r, fd;

        if (pid_in_ns <= 1 || (pid_t) req.pid != pid_in_ns)
                return -ESRCH;
        r = netns_call(n, &req, -EBADF, &fd);
        return r < 0 ? r : fd;
}

/* A request naming key, or -EINVAL when key does not fit. */
static int netns_key_request(struct netns_request *req, unsigned op, const char *key) {
        size_t len = key ? strlen(key) : 0;

        if (len == 0 || len > NETNS_FD_KEY_MAX)
                return -EINVAL;
        *req = (struct netns_request) { .op = op };
        memcpy(req->key, key, len);
        return 0;
}

int netns_store_fd(Netns *n, const char *key, int fd) {
        struct netns_request req;
        int r;

        if (fd < 0)
                return -EBADF;
        r = netns_key_request(&req, NETNS_OP_STORE_FD, key);
        return r < 0 ? r : netns_call(n, &req, fd, NULL);
}

int netns_drop_fd(Netns *n, const char *key) {
        struct netns_request req;
        int r;

        r = netns_key_request(&req, NETNS_OP_DROP_FD, key);
        return r < 0 ? r : netns_call(n, &req, -EBADF, NULL);
}

int netns_fetch_fd(Netns *n, const char *key) {
        struct netns_request req;
        int r, fd;

        r = netns_key_request(&req, NETNS_OP_FETCH_FD, key);
        if (r >= 0)
                r = netns_call(n, &req, -EBADF, &fd);
        return r < 0 ? r : fd;
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
