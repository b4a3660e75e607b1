/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Test driver for tests/integration/test-netns-survive.sh: attaches to the
 * namespace holder a dead vmgrd left in RUNTIME_DIR, as the next vmgrd
 * would (daemon/netns.c's netns_attach()), and reports what it finds, one
 * "key value" line each:
 *
 *     vmgr-netns-attach RUNTIME_DIR [--pid-file FILE] [--end] [-- CMD...]
 *
 *   attach      1 (attached), 0 (no holder) or -errno; nothing else follows
 *               unless 1
 *   holder      the holder's pid
 *   net         the inode of the network namespace attached to
 *   socket-net  the inode of the network namespace of a socket made there
 *   second      what a second attach gets meanwhile (-errno)
 *   pid         with --pid-file: our pid of the process whose pid in the
 *               holder's namespace FILE holds (netns_pidfd()), or -errno
 *   cmd         with CMD: CMD's exit status, run in the namespaces
 *               (netns_fork()), its output on our stdout before
 *   end         with --end: the holder was ended (netns_free(), the clean
 *               stop); else it was let go of (netns_release())
 *
 * Takes vmgrd's lock (RUNTIME_DIR/vmgrd.lock) first, as vmgrd does, and
 * exits 2 if it is held. Exits 0 once it has reported.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "netns.h"

static unsigned long fd_inode(int fd) {
        struct stat st;

        return fstat(fd, &st) < 0 ? 0 : (unsigned long) st.st_ino;
}

int main(int argc, char *argv[]) {
        const char *dir, *pid_file = NULL;
        char lock[4096];
        char **cmd = NULL;
        bool end = false;
        Netns *n = NULL, *other = NULL;
        int lock_fd, r, fd;

        if (argc < 2) {
                fprintf(stderr, "usage: %s RUNTIME_DIR [--pid-file FILE] [--end] [-- CMD...]\n", argv[0]);
                return 1;
        }
        dir = argv[1];
        for (int i = 2; i < argc; i++) {
                if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc)
                        pid_file = argv[++i];
                else if (strcmp(argv[i], "--end") == 0)
                        end = true;
                else if (strcmp(argv[i], "--") == 0 && i + 1 < argc) {
                        cmd = argv + i + 1;
                        break;
                } else {
                        fprintf(stderr, "%s: unknown argument %s\n", argv[0], argv[i]);
                        return 1;
                }
        }

        snprintf(lock, sizeof(lock), "%s/vmgrd.lock", dir);
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
                fprintf(stderr, "%s: cannot take %s: %m\n", argv[0], lock);
                return 2;
        }

        r = netns_attach(getuid(), getgid(), lock_fd, dir, "vmgrd.lock", &n);
        printf("attach %d\n", r);
        if (r != 1)
                return 0;
        printf("holder %d\n", (int) netns_holder_pid(n));
        printf("net %lu\n", fd_inode(netns_netns_fd(n)));

        fd = netns_socket(n, AF_INET6, SOCK_STREAM, 0);
        if (fd >= 0) {
                int nsfd = ioctl(fd, SIOCGSKNS);
                printf("socket-net %lu\n", nsfd < 0 ? 0 : fd_inode(nsfd));
                if (nsfd >= 0)
                        close(nsfd);
                close(fd);
        } else
                printf("socket-net %d\n", fd);

        r = netns_attach(getuid(), getgid(), -1, dir, "vmgrd.lock", &other);
        printf("second %d\n", r);
        if (r == 1)
                other = netns_release(other);

        if (pid_file) {
                FILE *f = fopen(pid_file, "re");
                int pid = 0;

                if (!f || fscanf(f, "%d", &pid) != 1)
                        printf("pid %d\n", -ENOENT);
                else {
                        fd = netns_pidfd(n, pid);
                        printf("pid %d\n", fd < 0 ? fd : (int) pidfd_get_pid(fd));
                        if (fd >= 0)
                                close(fd);
                }
                if (f)
                        fclose(f);
        }

        if (cmd) {
                pid_t pid;
                int status = 0;

                fflush(stdout);
                pid = netns_fork(n);
                if (pid == 0) {
                        execvp(cmd[0], cmd);
                        _exit(127);
                }
                if (pid < 0)
                        printf("cmd %d\n", pid);
                else {
                        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        printf("cmd %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                }
        }

        if (end) {
                n = netns_free(n);
                printf("end 1\n");
        } else
                n = netns_release(n);
        /* The intermediates of netns_fork() are ours to reap. */
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        close(lock_fd);
        return 0;
}
