/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"

int vmgr_fd_move_above_stdio(int fd) {
        int moved;

        if (fd > STDERR_FILENO)
                return fd;
        moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        if (moved < 0)
                moved = negative_errno();
        (void) safe_close(fd);
        return moved;
}

int vmgr_fd_dup_for_exec(int fd, int target) {
        if (fd == target)
                return fcntl(fd, F_SETFD, 0) < 0 ? negative_errno() : 0;
        return dup2(fd, target) < 0 ? negative_errno() : 0;
}

/* Room for one fd; the union aligns it for struct cmsghdr. */
union fd_control {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
};

int vmgr_write_all(int fd, const void *buf, size_t n) {
        const char *p = buf;

        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int vmgr_datagram_send(int sock, const void *buf, size_t len, int fd) {
        union fd_control control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (fd >= 0) {
                struct cmsghdr *cmsg;

                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                cmsg = CMSG_FIRSTHDR(&mh);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
        }
        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        return (size_t) n == len ? 0 : -EIO;
}

int vmgr_datagram_receive(int sock, void *buf, size_t size, int flags, int *ret_fd, bool *ret_refused) {
        union fd_control control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        _cleanup_close_ int fd = -EBADF;
        bool refused;
        ssize_t n;

        /* Without a control buffer the kernel closes any fd sent and says so with MSG_CTRUNC. */
        if (ret_fd) {
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
        }
        /* MSG_TRUNC: the real length, so an oversized datagram is seen as such. */
        do
                n = recvmsg(sock, &mh, MSG_TRUNC | MSG_CMSG_CLOEXEC | flags);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();

        refused = mh.msg_flags & MSG_CTRUNC;
        for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
                size_t nfds;

                if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
                        refused = true;
                        continue;
                }
                /* Take the first fd; any other is closed, not leaked. */
                nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < nfds; i++) {
                        int x;

                        memcpy(&x, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
                        if (fd < 0)
                                fd = x;
                        else {
                                (void) safe_close(x);
                                refused = true;
                        }
                }
        }

        if (refused && !ret_refused)
                return -EBADMSG;
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        if (ret_refused)
                *ret_refused = refused;
        /* The kernel counts a datagram's length in an int itself. */
        return (int) n;
}
