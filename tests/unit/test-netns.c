/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/netns.c and lib/userns.c: the namespace holder of namespace mode
 * (its namespaces, its sockets, forking into it, and that everything in
 * there dies with it) and telling the initial user namespace from others.
 * Runs as any user on a kernel that allows user namespaces; skipped (77)
 * where it does not.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "macro.h"
#include "netns.h"
#include "test.h"
#include "userns.h"

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

/* Reap the intermediates netns_fork() leaves (our children too). */
static void reap_all(void) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

static void test_userns_detection(void) {
        pid_t pid;
        int status;

        CHECK(vmgr_userns_is_initial() >= 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
                /* Any user may make one; in there the map is not the identity. */
                _exit(unshare(CLONE_NEWUSER) < 0 ? 2 : vmgr_userns_is_initial() == 0 ? 0 : 1);
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_holder(Netns *n) {
        pid_t holder = netns_holder_pid(n);
        char comm[32] = "";
        char path[64];
        int fd;

        CHECK(holder > 0);
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) holder);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(read(fd, comm, sizeof(comm) - 1) > 0);
        close(fd);
        CHECK_STREQ(comm, "vmgrd-netns\n");

        /* New user, network, PID and mount namespaces; the fds are those. */
        CHECK(ns_inode(holder, "net") != ns_inode(getpid(), "net"));
        CHECK(ns_inode(holder, "user") != ns_inode(getpid(), "user"));
        CHECK(ns_inode(holder, "mnt") != ns_inode(getpid(), "mnt"));
        CHECK(fd_inode(netns_netns_fd(n)) == ns_inode(holder, "net"));
        CHECK(fd_inode(netns_userns_fd(n)) == ns_inode(holder, "user"));
}

static void test_socket(Netns *n) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        int fd, nsfd, flags;

        fd = netns_socket(n, AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(fd >= 0);
        /* Made in the holder's network namespace, not ours. */
        nsfd = ioctl(fd, SIOCGSKNS);
        CHECK(nsfd >= 0);
        CHECK(fd_inode(nsfd) == ns_inode(netns_holder_pid(n), "net"));
        close(nsfd);
        flags = fcntl(fd, F_GETFL);
        CHECK(flags >= 0 && (flags & O_NONBLOCK));
        CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC);
        /* lo is up in there. */
        CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        close(fd);

        fd = netns_socket(n, AF_INET, SOCK_DGRAM, 0);
        CHECK(fd >= 0);
        close(fd);
        /* Only IP sockets of two types. */
        CHECK(netns_socket(n, AF_UNIX, SOCK_STREAM, 0) == -EAFNOSUPPORT);
        CHECK(netns_socket(n, AF_INET, SOCK_RAW, 0) == -EAFNOSUPPORT);
        /* The holder still serves after refusing. */
        fd = netns_socket(n, AF_INET6, SOCK_DGRAM, 0);
        CHECK(fd >= 0);
        close(fd);
}

static void test_fork(Netns *n) {
        pid_t pid;
        int status;

        pid = netns_fork(n);
        CHECK(pid >= 0);
        if (pid == 0) {
                int ok = getppid() == 0; /* our parent lives outside our PID namespace */
                ok = ok && ns_inode(getpid(), "net") != 0;
                ok = ok && netns_child_keep_net_caps() == 0;
                ok = ok && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_ADMIN, 0, 0) == 1;
                ok = ok && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) == 0;
                _exit(ok ? 0 : 1);
        }
        /* Our own child (CLONE_PARENT), so waitpid() sees it, in the holder's namespaces. */
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        reap_all();

        /* exec works, and the program finds itself in the holder's network namespace. */
        pid = netns_fork(n);
        CHECK(pid >= 0);
        if (pid == 0) {
                char want[64];
                snprintf(want, sizeof(want), "test \"$(stat -L -c %%i /proc/self/ns/net)\" = %lu",
                         (unsigned long) fd_inode(netns_netns_fd(n)));
                execl("/bin/sh", "sh", "-c", want, (char *) NULL);
                _exit(127);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        reap_all();
}

/* Everything in the namespaces ends with the holder: a process there is
 * stopped (and reaped: netns_free() reaps our children while it waits). */
static void test_everything_dies(void) {
        Netns *n = NULL;
        pid_t pid;
        int pidfd;

        CHECK(netns_new(getuid(), getgid(), -1, NULL, NULL, &n) == 0);
        pid = netns_fork(n);
        CHECK(pid >= 0);
        if (pid == 0) {
                execl("/bin/sleep", "sleep", "60", (char *) NULL);
                _exit(127);
        }
        reap_all();
        pidfd = pidfd_open_pid(pid);
        CHECK(pidfd >= 0);
        CHECK(!pidfd_exited(pidfd));
        n = netns_free(n);
        CHECK(pidfd_exited(pidfd));
        close(pidfd);
}

/* When the holder ends, the runtime directory is emptied but for the lock,
 * and the lock stays held until then. */
static void test_runtime_cleanup(void) {
        char dir[] = "/tmp/test-netns.XXXXXX", outside[] = "/tmp/test-netns-outside.XXXXXX", path[256];
        Netns *n = NULL;
        int lock_fd, fd;
        pid_t pid;

        CHECK(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/lock", dir);
        lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHECK(lock_fd >= 0);
        CHECK(flock(lock_fd, LOCK_EX | LOCK_NB) == 0);
        snprintf(path, sizeof(path), "%s/a", dir);
        CHECK(mkdir(path, 0700) == 0);
        snprintf(path, sizeof(path), "%s/a/sock", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        close(fd);
        /* A symlink out of the tree is removed, never followed. */
        CHECK(mkdtemp(outside));
        snprintf(path, sizeof(path), "%s/keep", outside);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        close(fd);
        snprintf(path, sizeof(path), "%s/a/out", dir);
        CHECK(symlink(outside, path) == 0);

        CHECK(netns_new(getuid(), getgid(), lock_fd, dir, "lock", &n) == 0);
        /* A process inside writes a file of its own, as libvirtd or QEMU do. */
        pid = netns_fork(n);
        CHECK(pid >= 0);
        if (pid == 0) {
                snprintf(path, sizeof(path), "%s/a/inside", dir);
                _exit(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) < 0);
        }
        reap_all();
        close(lock_fd); /* as if vmgrd were gone: only the holder holds the lock now */
        snprintf(path, sizeof(path), "%s/lock", dir);
        fd = open(path, O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
        n = netns_free(n);
        /* Free once the holder has gone: its pidfd says so once it exited,
         * and the last reference to the lock's open file may go a moment
         * later (one run in ten here under load). */
        for (int i = 0; i < 200 && flock(fd, LOCK_EX | LOCK_NB) < 0; i++)
                (void) usleep(10000);
        CHECK(flock(fd, LOCK_EX | LOCK_NB) == 0);
        close(fd);
        snprintf(path, sizeof(path), "%s/a", dir);
        CHECK(access(path, F_OK) < 0 && errno == ENOENT);
        snprintf(path, sizeof(path), "%s/keep", outside);
        CHECK(access(path, F_OK) == 0);
        CHECK(unlink(path) == 0);
        CHECK(rmdir(outside) == 0);
        snprintf(path, sizeof(path), "%s/lock", dir);
        CHECK(unlink(path) == 0);
        CHECK(rmdir(dir) == 0);
}

int main(void) {
        Netns *n = NULL;
        int r;

        /* Where user namespaces are not allowed, namespace mode is not either. */
        r = netns_new(getuid(), getgid(), -1, NULL, NULL, &n);
        if (r == -EPERM || r == -ENOSPC || r == -EACCES) {
                printf("user namespaces are not allowed here; skipped\n");
                return 77;
        }
        CHECK(r == 0);
        test_userns_detection();
        test_holder(n);
        test_socket(n);
        test_fork(n);
        n = netns_free(n);
        test_everything_dies();
        test_runtime_cleanup();
        TEST_DONE();
}
