/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/netns.c: the namespace holder outlives a vmgrd that dies (here a
 * child process of the test, killed with SIGKILL, plays vmgrd) and is found
 * again: netns_attach(), netns_release(), netns_pidfd(), the fd store, and
 * who may attach (one vmgrd at a time, of the holder's user, from outside
 * its PID namespace). A holder with nothing to keep ends by itself; a clean
 * netns_free() still ends everything. Runs as any user on a kernel that
 * allows user namespaces (skipped, 77, where it does not); the check that
 * another user is refused runs as root only.
 */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "child.h"
#include "macro.h"
#include "netns.h"
#include "test.h"

static char dir[] = "/tmp/test-netns-survive.XXXXXX";
/* Every holder made, killed when a check fails: a holder keeps our stdout
 * and stderr, and the test runner waits for their end. */
static pid_t holders[16];
static unsigned n_holders;

static void kill_holders(void) {
        for (unsigned i = 0; i < n_holders; i++)
                (void) kill(holders[i], SIGKILL);
}

static ino_t ns_inode(pid_t pid, const char *name) {
        char path[64];
        struct stat st;

        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, name);
        return stat(path, &st) < 0 ? 0 : st.st_ino;
}

static ino_t fd_inode(int fd) {
        struct stat st;

        return fstat(fd, &st) < 0 ? 0 : st.st_ino;
}

static void path_in_dir(char *buf, size_t size, const char *name) {
        snprintf(buf, size, "%s/%s", dir, name);
}

/* Reap what has ended of our children (the holders are re-parented to us:
 * we are a subreaper, as vmgrd's own parent should be). */
static void reap_all(void) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

/* Open and lock the lock file as a vmgrd does. Returns the fd, or -1 when
 * someone holds it. */
static int take_lock(void) {
        char path[256];
        int fd;

        path_in_dir(path, sizeof(path), "lock");
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                CHECK(errno == EWOULDBLOCK);
                close(fd);
                return -1;
        }
        return fd;
}

/* take_lock(), waiting up to 3 s as vmgrd does: a holder whose vmgrd
 * died lets go of the lock a moment after. */
static int wait_lock(void) {
        int fd = -1;

        for (int i = 0; i < 300 && fd < 0; i++) {
                fd = take_lock();
                if (fd < 0)
                        usleep(10000);
        }
        return fd;
}

/* Wait up to ms for pidfd's process to end. */
static bool wait_exited(int pidfd, int ms) {
        for (int i = 0; i < ms / 10; i++) {
                reap_all();
                if (pidfd_exited(pidfd))
                        return true;
                usleep(10000);
        }
        return pidfd_exited(pidfd);
}

/* What a "crashed vmgrd" tells the test before it dies. */
struct crash_report {
        pid_t holder;
        int32_t status;
};

/* Fork a vmgrd stand-in that takes the lock, makes the namespaces in
 * dir, runs keep_process inside (a daemon whose pid in there it writes to
 * dir/inside.pid, as dnsmasq does, or one that outlives vmgrd by a moment,
 * or nothing), then dies by SIGKILL with the lock and the holder's socket
 * still open. Returns the holder's pid. */
enum { KEEP_NOTHING, KEEP_DAEMON, KEEP_DYING_CHILD };
static pid_t crash_vmgrd(int keep) {
        struct crash_report rep = { .status = -1 };
        int report[2], status;
        pid_t pid;

        CHECK(pipe2(report, O_CLOEXEC) == 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                Netns *n = NULL;
                int lock_fd = take_lock();
                pid_t child;

                close(report[0]);
                if (lock_fd < 0 || netns_new(getuid(), getgid(), lock_fd, dir, "lock", &n) < 0)
                        _exit(1);
                rep.holder = netns_holder_pid(n);
                if (keep == KEEP_DAEMON) {
                        char script[512];

                        /* Daemonized: its parent exits, the holder inherits it. */
                        snprintf(script, sizeof(script), "sleep 60 </dev/null >/dev/null 2>&1 & echo $! >%s/inside.pid",
                                 dir);
                        child = netns_fork(n);
                        if (child == 0) {
                                execl("/bin/sh", "sh", "-c", script, (char *) NULL);
                                _exit(127);
                        }
                        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
                            WEXITSTATUS(status) != 0)
                                _exit(1);
                } else if (keep == KEEP_DYING_CHILD) {
                        /* Like the helper and libvirtd: vmgrd's own child
                         * inside, told of vmgrd's death by a signal, which
                         * takes a moment to end after the holder's EOF. */
                        int ready[2];
                        char c;

                        if (pipe2(ready, O_CLOEXEC) < 0)
                                _exit(1);
                        child = netns_fork(n);
                        if (child == 0) {
                                sigset_t mask;
                                int sig;

                                sigemptyset(&mask);
                                sigaddset(&mask, SIGUSR1);
                                sigprocmask(SIG_BLOCK, &mask, NULL);
                                prctl(PR_SET_PDEATHSIG, SIGUSR1);
                                (void) !write(ready[1], "x", 1);
                                sigwait(&mask, &sig);
                                usleep(500 * 1000);
                                _exit(0);
                        }
                        close(ready[1]);
                        /* Not before its parent-death signal is set. */
                        if (child < 0 || read(ready[0], &c, 1) != 1)
                                _exit(1);
                }
                rep.status = 0;
                if (write(report[1], &rep, sizeof(rep)) != sizeof(rep))
                        _exit(1);
                raise(SIGKILL);
                _exit(1);
        }
        close(report[1]);
        CHECK(read(report[0], &rep, sizeof(rep)) == sizeof(rep));
        close(report[0]);
        CHECK(rep.status == 0);
        CHECK(n_holders < ELEMENTSOF(holders));
        holders[n_holders++] = rep.holder;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        return rep.holder;
}

/* Connect to dir/netns.sock and return the holder's first word: 0
 * (attached), or its -errno; -errno of our own when the connection fails.
 * The raw protocol: magic, error, stage[48]. */
static int raw_attach(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct {
                uint32_t magic;
                int32_t error;
                char stage[48];
        } rep;
        struct pollfd p;
        int fd, r;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/netns.sock", dir);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        p = (struct pollfd) { .fd = fd, .events = POLLIN };
        r = poll(&p, 1, 2000) == 1 && recv(fd, &rep, sizeof(rep), 0) == sizeof(rep) ? rep.error : -ETIMEDOUT;
        close(fd);
        return r;
}

/* Run raw_attach() in a child made by make_child (fork, or netns_fork
 * into n), as uid when uid is not -1; its result. */
static int raw_attach_from(Netns *n, uid_t uid) {
        int status;
        pid_t pid;

        pid = n ? netns_fork(n) : fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                if (uid != (uid_t) -1 && (setgid(uid) < 0 || setuid(uid) < 0))
                        _exit(255);
                _exit((uint8_t) -raw_attach());
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        reap_all();
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 255);
        return -WEXITSTATUS(status);
}

/* A vmgrd dies with a daemon running inside: the holder stays, with its
 * namespaces and that process, lets go of the lock, and a new vmgrd
 * attaches to the same namespaces; its sockets and forks go there. */
static void test_crash_and_attach(void) {
        char path[256], buf[64];
        pid_t holder, pid, inside_pid;
        int lock_fd, holder_pidfd, inside, fd, status;
        ino_t old_net, old_user;
        Netns *n = NULL;
        struct stat st;
        FILE *f;

        holder = crash_vmgrd(KEEP_DAEMON);
        holder_pidfd = pidfd_open_pid(holder);
        CHECK(holder_pidfd >= 0);
        old_net = ns_inode(holder, "net");
        old_user = ns_inode(holder, "user");
        CHECK(old_net != 0 && old_net != ns_inode(getpid(), "net"));

        /* Still there a while later, as is its daemon. */
        usleep(600 * 1000);
        CHECK(!pidfd_exited(holder_pidfd));
        path_in_dir(path, sizeof(path), "inside.pid");
        f = fopen(path, "re");
        CHECK(f);
        CHECK(fscanf(f, "%d", &inside_pid) == 1);
        fclose(f);
        CHECK(inside_pid > 1);

        /* The lock is free: a new vmgrd may start. The socket is the user's alone. */
        lock_fd = wait_lock();
        CHECK(lock_fd >= 0);
        path_in_dir(path, sizeof(path), "netns.sock");
        CHECK(stat(path, &st) == 0);
        CHECK(S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600 && st.st_uid == getuid());

        CHECK(netns_attach(getuid(), getgid(), lock_fd, dir, "lock", &n) == 1);
        CHECK(netns_holder_pid(n) == holder);
        CHECK(fd_inode(netns_netns_fd(n)) == old_net);
        CHECK(fd_inode(netns_userns_fd(n)) == old_user);

        /* A socket made in there. */
        fd = netns_socket(n, AF_INET6, SOCK_DGRAM, 0);
        CHECK(fd >= 0);
        {
                int nsfd = ioctl(fd, SIOCGSKNS);
                CHECK(nsfd >= 0);
                CHECK(fd_inode(nsfd) == old_net);
                close(nsfd);
        }
        close(fd);

        /* A fork in there, our own child, which sees the daemon (its PID namespace). */
        pid = netns_fork(n);
        CHECK(pid >= 0);
        if (pid == 0) {
                char script[256];
                snprintf(script, sizeof(script),
                         "test \"$(stat -L -c %%i /proc/self/ns/net)\" = %lu && test -d /proc/%d",
                         (unsigned long) old_net, (int) inside_pid);
                execl("/bin/sh", "sh", "-c", script, (char *) NULL);
                _exit(127);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        reap_all();

        /* The daemon's pid in there, to a pidfd of that very process. */
        inside = netns_pidfd(n, inside_pid);
        CHECK(inside >= 0);
        pid = pidfd_get_pid(inside);
        CHECK(pid > 0 && pid != inside_pid);
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        f = fopen(path, "re");
        CHECK(f);
        CHECK(fgets(buf, sizeof(buf), f));
        fclose(f);
        CHECK_STREQ(buf, "sleep\n");
        CHECK(netns_pidfd(n, 1) == -ESRCH);
        CHECK(netns_pidfd(n, 0) == -ESRCH);
        CHECK(netns_pidfd(n, -1) == -ESRCH);
        CHECK(netns_pidfd(n, 4000000) == -ESRCH);
        /* Our own pid means nothing in there (not visible: no such pid, or another process). */
        fd = netns_pidfd(n, getpid());
        CHECK(fd == -ESRCH || pidfd_get_pid(fd) != getpid());
        if (fd >= 0)
                close(fd);

        /* One vmgrd at a time: a second attach is refused, and says so. */
        {
                Netns *other = NULL;
                CHECK(netns_attach(getuid(), getgid(), -1, dir, "lock", &other) == -EBUSY);
                CHECK(!other);
        }
        CHECK(raw_attach_from(NULL, (uid_t) -1) == -EBUSY);
        /* The refused ones did not disturb the attached one. */
        fd = netns_socket(n, AF_INET, SOCK_STREAM, 0);
        CHECK(fd >= 0);
        close(fd);

        /* Release (re-exec): the holder keeps everything, again. */
        n = netns_release(n);
        usleep(300 * 1000);
        CHECK(!pidfd_exited(holder_pidfd));
        CHECK(pidfd_signal(inside, 0) == 0);

        /* The attack of a process inside (a QEMU a guest took over): while no
         * vmgrd is attached, it connects to the socket to take vmgrd's
         * place. Refused: only processes outside the PID namespace may. */
        CHECK(netns_attach(getuid(), getgid(), -1, dir, "lock", &n) == 1);
        CHECK(raw_attach_from(n, (uid_t) -1) == -EPERM); /* attached or not */
        n = netns_release(n);
        usleep(100 * 1000);
        {
                Netns *tmp = NULL;
                /* A fork into the namespaces needs the fds: attach, fork, release in the child's stead. */
                CHECK(netns_attach(getuid(), getgid(), -1, dir, "lock", &tmp) == 1);
                pid = netns_fork(tmp);
                CHECK(pid >= 0);
                if (pid == 0) {
                        /* Wait for the parent's release, then try. */
                        usleep(300 * 1000);
                        _exit((uint8_t) -raw_attach());
                }
                tmp = netns_release(tmp);
                CHECK(waitpid(pid, &status, 0) == pid);
                reap_all();
                CHECK(WIFEXITED(status));
                CHECK(-WEXITSTATUS(status) == -EPERM);
        }

        /* Another user (as root only: we can become one) is refused by the
         * holder itself, even where the file's mode would let it connect. */
        if (getuid() == 0) {
                CHECK(chmod(dir, 0755) == 0);
                path_in_dir(path, sizeof(path), "netns.sock");
                CHECK(chmod(path, 0666) == 0);
                CHECK(raw_attach_from(NULL, 65534) == -EPERM);
                CHECK(chmod(path, 0600) == 0);
                CHECK(chmod(dir, 0700) == 0);
        }

        /* The clean end, attached: everything goes, the lock is held until then. */
        CHECK(netns_attach(getuid(), getgid(), lock_fd, dir, "lock", &n) == 1);
        close(lock_fd);
        CHECK(take_lock() < 0);
        n = netns_free(n);
        CHECK(wait_exited(holder_pidfd, 2000));
        CHECK(pidfd_signal(inside, 0) == -ESRCH);
        path_in_dir(path, sizeof(path), "netns.sock");
        CHECK(access(path, F_OK) < 0 && errno == ENOENT);
        path_in_dir(path, sizeof(path), "inside.pid");
        CHECK(access(path, F_OK) < 0 && errno == ENOENT);
        lock_fd = take_lock();
        CHECK(lock_fd >= 0);
        /* No holder: 0, so that the caller makes one. */
        CHECK(netns_attach(getuid(), getgid(), lock_fd, dir, "lock", &n) == 0);
        CHECK(!n);
        close(lock_fd);
        close(inside);
        close(holder_pidfd);
}

/* A vmgrd dies with nothing inside, or only with a child of its own that
 * ends a moment later: the holder ends by itself, emptying the runtime
 * directory, and the next vmgrd finds no holder. */
static void test_nothing_to_keep(int keep) {
        char path[256];
        pid_t holder;
        int pidfd, lock_fd;
        Netns *n = NULL;

        holder = crash_vmgrd(keep);
        pidfd = pidfd_open_pid(holder);
        CHECK(pidfd >= 0 || errno == ESRCH);
        if (pidfd >= 0) {
                if (!wait_exited(pidfd, 3000))
                        fprintf(stderr, "holder %d (keep %d) still there\n", (int) holder, keep);
                CHECK(wait_exited(pidfd, 1));
                close(pidfd);
        }
        path_in_dir(path, sizeof(path), "netns.sock");
        CHECK(access(path, F_OK) < 0 && errno == ENOENT);
        lock_fd = take_lock();
        CHECK(lock_fd >= 0);
        CHECK(netns_attach(getuid(), getgid(), lock_fd, dir, "lock", &n) == 0);
        close(lock_fd);
}

/* A holder that no vmgrd can find any more (its socket was removed, or
 * replaced by a new holder's, or the whole runtime directory was removed:
 * the latter at the end of a user's last session) ends, with what it kept,
 * rather than keep it forever. */
enum { REMOVE_SOCKET, REPLACE_SOCKET, REMOVE_DIR };
static void test_unreachable(int how) {
        char path[256];
        pid_t holder, inside_pid;
        int pidfd, inside, lock_fd;
        Netns *n = NULL;
        FILE *f;

        holder = crash_vmgrd(KEEP_DAEMON);
        pidfd = pidfd_open_pid(holder);
        CHECK(pidfd >= 0);
        lock_fd = wait_lock();
        CHECK(lock_fd >= 0);
        /* Its daemon, for after. */
        CHECK(netns_attach(getuid(), getgid(), -1, dir, "lock", &n) == 1);
        path_in_dir(path, sizeof(path), "inside.pid");
        f = fopen(path, "re");
        CHECK(f);
        CHECK(fscanf(f, "%d", &inside_pid) == 1);
        fclose(f);
        inside = netns_pidfd(n, inside_pid);
        CHECK(inside >= 0);
        n = netns_release(n);
        usleep(300 * 1000);
        CHECK(!pidfd_exited(pidfd));

        if (how == REMOVE_DIR) {
                char cmd[300];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                CHECK(system(cmd) == 0);
        } else if (how == REMOVE_SOCKET) {
                path_in_dir(path, sizeof(path), "netns.sock");
                CHECK(unlink(path) == 0);
        } else
                /* A vmgrd that did not look for it first. */
                CHECK(netns_new(getuid(), getgid(), lock_fd, dir, "lock", &n) == 0);
        CHECK(wait_exited(pidfd, 3000));
        CHECK(wait_exited(inside, 1000));
        close(inside);
        close(pidfd);
        if (how != REMOVE_DIR) {
                /* It did not empty the directory under our lock. */
                path_in_dir(path, sizeof(path), "inside.pid");
                CHECK(access(path, F_OK) == 0);
                CHECK(unlink(path) == 0);
        }
        if (n) {
                /* The new holder is not disturbed. */
                int fd = netns_socket(n, AF_INET, SOCK_DGRAM, 0);
                CHECK(fd >= 0);
                close(fd);
                n = netns_free(n);
        }
        close(lock_fd);
        if (how == REMOVE_DIR)
                CHECK(mkdir(dir, 0700) == 0);
}

/* A dead holder's socket file: attach says "none" and removes it. */
static void test_stale_socket(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Netns *n = NULL;
        int fd;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/netns.sock", dir);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        close(fd);
        CHECK(access(sa.sun_path, F_OK) == 0);
        CHECK(netns_attach(getuid(), getgid(), -1, dir, "lock", &n) == 0);
        CHECK(access(sa.sun_path, F_OK) < 0 && errno == ENOENT);
}

/* Someone of our user listens on the socket and says "welcome" as a
 * holder would, but is no holder (not PID 1 of a PID namespace in a user
 * namespace of ours): netns_attach() refuses it, rather than run vmgrd's
 * helpers and sockets in whatever namespaces that process is in. */
static void test_fake_holder(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int ready[2], status, fd;
        Netns *n = NULL;
        pid_t pid;
        char c;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/netns.sock", dir);
        CHECK(pipe2(ready, O_CLOEXEC) == 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                struct {
                        uint32_t magic;
                        int32_t error;
                        char stage[48];
                } rep = { .magic = 0x766e7332u };
                int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

                if (l < 0 || bind(l, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
                        _exit(1);
                (void) !write(ready[1], "x", 1);
                for (;;) {
                        int conn = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                        if (conn >= 0 && send(conn, &rep, sizeof(rep), 0) < 0)
                                _exit(1);
                }
        }
        close(ready[1]);
        CHECK(read(ready[0], &c, 1) == 1);
        close(ready[0]);
        CHECK(netns_attach(getuid(), getgid(), -1, dir, "lock", &n) == -EPERM);
        CHECK(!n);
        CHECK(kill(pid, SIGKILL) == 0);
        CHECK(waitpid(pid, &status, 0) == pid);
        fd = access(sa.sun_path, F_OK);
        CHECK(fd == 0);
        CHECK(unlink(sa.sun_path) == 0);
}

/* The fd store: kept across a crash, bounded, gone at the clean end. */
static void test_fd_store(void) {
        char path[256], key[NETNS_FD_KEY_MAX + 2], buf[16] = "";
        int lock_fd, fd, copy, pidfd;
        struct stat st, st2;
        Netns *n = NULL;
        pid_t holder;

        holder = crash_vmgrd(KEEP_DAEMON);
        pidfd = pidfd_open_pid(holder);
        CHECK(pidfd >= 0);
        lock_fd = wait_lock();
        CHECK(lock_fd >= 0);
        CHECK(netns_attach(getuid(), getgid(), lock_fd, dir, "lock", &n) == 1);

        /* A file the caller deletes at once (ServeFile's case). */
        path_in_dir(path, sizeof(path), "served");
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK(write(fd, "payload", 7) == 7);
        CHECK(fstat(fd, &st) == 0);
        CHECK(netns_store_fd(n, "file:g/served", fd) == 0);
        close(fd);
        CHECK(unlink(path) == 0);

        CHECK(netns_fetch_fd(n, "nothing") == -ENOENT);
        CHECK(netns_drop_fd(n, "nothing") == -ENOENT);
        CHECK(netns_store_fd(n, "", 0) == -EINVAL);
        CHECK(netns_store_fd(n, NULL, 0) == -EINVAL);
        CHECK(netns_store_fd(n, "k", -1) == -EBADF);
        memset(key, 'k', sizeof(key) - 1);
        key[sizeof(key) - 1] = 0;
        CHECK(netns_store_fd(n, key, 0) == -EINVAL); /* NETNS_FD_KEY_MAX + 1 bytes */
        key[NETNS_FD_KEY_MAX] = 0;
        CHECK(netns_store_fd(n, key, 0) == 0); /* NETNS_FD_KEY_MAX bytes */
        CHECK(netns_drop_fd(n, key) == 0);

        /* Bounded: NETNS_FD_STORE_MAX fds, then ENOSPC; replacing one is fine. */
        for (int i = 1; i < NETNS_FD_STORE_MAX; i++) {
                snprintf(key, sizeof(key), "fill-%d", i);
                CHECK(netns_store_fd(n, key, 0) == 0);
        }
        CHECK(netns_store_fd(n, "one too many", 0) == -ENOSPC);
        CHECK(netns_store_fd(n, "fill-1", 1) == 0);
        for (int i = 1; i < NETNS_FD_STORE_MAX; i++) {
                snprintf(key, sizeof(key), "fill-%d", i);
                CHECK(netns_drop_fd(n, key) == 0);
        }

        /* vmgrd crashes (released without END); the next one gets the file back. */
        n = netns_release(n);
        close(lock_fd);
        lock_fd = wait_lock();
        CHECK(lock_fd >= 0);
        CHECK(netns_attach(getuid(), getgid(), lock_fd, dir, "lock", &n) == 1);
        copy = netns_fetch_fd(n, "file:g/served");
        CHECK(copy >= 0);
        CHECK(fcntl(copy, F_GETFD) == FD_CLOEXEC);
        CHECK(fstat(copy, &st2) == 0);
        CHECK(st2.st_ino == st.st_ino && st2.st_dev == st.st_dev);
        CHECK(pread(copy, buf, sizeof(buf) - 1, 0) == 7);
        CHECK_STREQ(buf, "payload");
        close(copy);
        /* Fetching does not take it away. */
        copy = netns_fetch_fd(n, "file:g/served");
        CHECK(copy >= 0);
        close(copy);
        CHECK(netns_drop_fd(n, "file:g/served") == 0);
        CHECK(netns_fetch_fd(n, "file:g/served") == -ENOENT);

        n = netns_free(n);
        CHECK(wait_exited(pidfd, 2000));
        close(pidfd);
        close(lock_fd);
}

int main(void) {
        Netns *n = NULL;
        char path[256];
        int r;

        /* Where user namespaces are not allowed, namespace mode is not either. */
        r = netns_new(getuid(), getgid(), -1, NULL, NULL, &n);
        if (r == -EPERM || r == -ENOSPC || r == -EACCES) {
                printf("user namespaces are not allowed here; skipped\n");
                return 77;
        }
        CHECK(r == 0);
        n = netns_free(n);

        /* The holders of our dead "vmgrds" are re-parented to us, as to
         * vmgrd's service manager. */
        CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
        CHECK(atexit(kill_holders) == 0);
        CHECK(mkdtemp(dir));

        test_crash_and_attach();
        test_nothing_to_keep(KEEP_NOTHING);
        test_nothing_to_keep(KEEP_DYING_CHILD);
        test_stale_socket();
        test_unreachable(REMOVE_SOCKET);
        test_unreachable(REPLACE_SOCKET);
        test_unreachable(REMOVE_DIR);
        test_fake_holder();
        test_fd_store();

        path_in_dir(path, sizeof(path), "lock");
        CHECK(unlink(path) == 0);
        CHECK(rmdir(dir) == 0);
        reap_all();
        TEST_DONE();
}
