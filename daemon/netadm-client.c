/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "log.h"
#include "macro.h"
#include "netadm-client.h"
#include "netns.h"

/* Every operation takes milliseconds; one that takes this long means the helper is stuck. */
#define NETADM_CALL_TIMEOUT_USEC (30ULL * 1000000ULL)

typedef struct NetadmCall NetadmCall;
struct NetadmCall {
        NetadmCall *next;
        uint32_t serial;
        enum vmgr_netadm_op op;
        uint64_t sent_usec;
        netadm_handler_t handler;
        void *userdata;
};

struct NetadmClient {
        sd_event *event;
        char *path;
        Netns *netns;                   /* namespace mode: the helper runs in there */
        int fd;
        pid_t pid;
        sd_event_source *io;
        sd_event_source *watchdog;      /* fires when the oldest call waited too long */
        uint32_t next_serial;
        NetadmCall *head, *tail;        /* FIFO: the helper answers in order */
        unsigned n_pending;
        bool freeing;                   /* no new call: a handler run from netadm_client_free() may try */
};

int netadm_client_new(sd_event *event, const char *path, Netns *netns, NetadmClient **ret) {
        NetadmClient *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->path = strdup(path);
        if (!c->path) {
                free(c);
                return -ENOMEM;
        }
        c->event = sd_event_ref(event);
        c->netns = netns;
        c->fd = -EBADF;
        c->next_serial = 1;
        *ret = c;
        return 0;
}

/* Complete every call sent to the helper that is gone with error r. The
 * queue is taken first: a handler may call again (undo what the lost call
 * did), which starts a new helper, and those calls wait for its replies. */
static void fail_pending(NetadmClient *c, int r, const char *message) {
        NetadmCall *lost = c->head;

        c->head = c->tail = NULL;
        c->n_pending = 0;
        while (lost) {
                NetadmCall *call = lost;
                lost = call->next;
                call->handler(r, message, 0, -EBADF, call->userdata);
                free(call);
        }
}

bool netadm_error_reply_lost(int error) {
        return error == -ECONNRESET || error == -ECONNABORTED || error == -ETIMEDOUT;
}

/* Forget the helper after it died or broke the protocol, then fail what was
 * sent to it. A helper still alive (a garbled reply, a read error) is
 * killed: it must not go on with requests vmgrd reports as failed. */
static void connection_drop(NetadmClient *c, int r, const char *message) {
        if (c->pid > 0)
                (void) kill(c->pid, SIGKILL);
        c->watchdog = sd_event_source_disable_unref(c->watchdog);
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
        c->pid = 0;
        fail_pending(c, r, message);
}

void netadm_client_close(NetadmClient *c) {
        if (!c)
                return;
        c->watchdog = sd_event_source_disable_unref(c->watchdog);
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
        c->pid = 0;
        fail_pending(c, -ECONNABORTED, "the connection to vmgr-netadm was closed");
}

void netadm_client_free(NetadmClient *c) {
        if (!c)
                return;
        c->freeing = true;
        netadm_client_close(c);
        sd_event_unref(c->event);
        free(c->path);
        free(c);
}

unsigned netadm_client_pending(NetadmClient *c) {
        return c->n_pending;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
        NetadmClient *c = userdata;

        log_error("vmgr-netadm did not answer a %s request within %llu s; killing it",
                  c->head ? vmgr_netadm_op_to_string(c->head->op) : "?",
                  (unsigned long long) (NETADM_CALL_TIMEOUT_USEC / 1000000ULL));
        connection_drop(c, -ETIMEDOUT, "vmgr-netadm did not answer in time (see vmgrd's log)");
        return 0;
}

/* Arm the watchdog for the oldest pending call, or disarm it. */
static void watchdog_update(NetadmClient *c) {
        if (!c->head) {
                c->watchdog = sd_event_source_disable_unref(c->watchdog);
                return;
        }
        uint64_t deadline = c->head->sent_usec + NETADM_CALL_TIMEOUT_USEC;
        if (c->watchdog) {
                (void) sd_event_source_set_time(c->watchdog, deadline);
                (void) sd_event_source_set_enabled(c->watchdog, SD_EVENT_ONESHOT);
        } else if (sd_event_add_time(c->event, &c->watchdog, CLOCK_MONOTONIC, deadline, 0, on_watchdog, c) < 0)
                log_warning("Cannot arm the vmgr-netadm watchdog");
}

/* Start the helper with our end of a socketpair as its fd 3. Returns 0 or -errno. */
static int helper_start(NetadmClient *c) {
        int sv[2];
        pid_t pid;
        int r;

        if (c->fd >= 0)
                return 0;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Failed to create the vmgr-netadm socket: %m");

        pid = netns_fork(c->netns);
        if (pid < 0) {
                r = pid;
                close(sv[0]);
                close(sv[1]);
                return log_error_errno(r, "Failed to fork vmgr-netadm: %m");
        }
        if (pid == 0) {
                /* A session of its own: a Ctrl-C meant for vmgrd must not reach the
                 * helper, which vmgrd still needs to tear the groups down. */
                (void) setsid();
                /* In namespace mode the network capabilities of the user
                 * namespace are all the helper gets (no file capabilities
                 * count in there, and it needs none). */
                if (c->netns && netns_child_keep_net_caps() < 0)
                        _exit(127);
                /* dup2 clears O_CLOEXEC on the new fd; if sv[1] already is 3, clear it by hand. */
                if (sv[1] == VMGR_NETADM_FD) {
                        if (fcntl(VMGR_NETADM_FD, F_SETFD, 0) < 0)
                                _exit(127);
                } else if (dup2(sv[1], VMGR_NETADM_FD) < 0)
                        _exit(127);
                child_prepare_exec(VMGR_NETADM_FD + 1);
                execl(c->path, "vmgr-netadm", (char *) NULL);
                fprintf(stderr, "vmgrd: failed to execute %s: %m\n", c->path);
                _exit(127);
        }

        close(sv[1]);
        c->fd = sv[0];
        c->pid = pid;
        r = sd_event_add_io(c->event, &c->io, c->fd, EPOLLIN, on_io, c);
        if (r < 0) {
                c->fd = safe_close(c->fd);
                return log_error_errno(r, "Failed to watch the vmgr-netadm socket: %m");
        }
        (void) sd_event_source_set_description(c->io, "netadm");
        log_debug("Started %s as pid %d", c->path, (int) pid);
        return 0;
}

/* Receive one reply and its optional fd. Returns 1 on a reply, 0 on EOF, -errno on error. */
static int reply_receive(int fd, struct vmgr_netadm_reply *reply, int *ret_fd, int flags) {
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = reply, .iov_len = sizeof(*reply) };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        int received_fd = -EBADF;
        ssize_t n;

        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_TRUNC | flags);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;

        for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg))
                if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
                    cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(&received_fd, CMSG_DATA(cmsg), sizeof(int));

        if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || vmgr_netadm_reply_validate(reply, (size_t) n) < 0 ||
            (reply->has_fd != 0) != (received_fd >= 0)) {
                safe_close(received_fd);
                return -EBADMSG;
        }

        *ret_fd = received_fd;
        return 1;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        NetadmClient *c = userdata;
        struct vmgr_netadm_reply reply;
        int pidfd = -EBADF;
        int r;

        r = reply_receive(fd, &reply, &pidfd, MSG_DONTWAIT);
        if (r == -EAGAIN || r == -EINTR)
                return 0;
        if (r <= 0 || !c->head || reply.serial != c->head->serial) {
                if (r == 0 || r == -ECONNRESET) {
                        /* EOF, or ECONNRESET when it died with a request unread. */
                        log_error("vmgr-netadm exited; failing %u pending call(s)", c->n_pending);
                        c->pid = 0; /* the SIGCHLD handler reaps it */
                } else if (r < 0)
                        log_error_errno(r, "Failed to read from vmgr-netadm: %m");
                else
                        log_error("vmgr-netadm sent an unexpected reply (serial %u)", reply.serial);
                safe_close(pidfd);
                connection_drop(c, -ECONNRESET, "vmgr-netadm exited unexpectedly (see vmgrd's log)");
                return 0;
        }

        NetadmCall *call = c->head;
        c->head = call->next;
        if (!c->head)
                c->tail = NULL;
        c->n_pending--;

        watchdog_update(c);
        call->handler(reply.error, reply.message, reply.pid, pidfd, call->userdata);
        free(call);
        return 0;
}

static int request_send(NetadmClient *c, enum vmgr_netadm_op op, uint32_t serial, const char *group, const char *vm,
                        enum vmgr_nic nic, const char *dir) {
        struct vmgr_netadm_request req;
        ssize_t n;
        int r;

        r = vmgr_netadm_request_init(&req, op, serial, group, vm, nic, dir);
        if (r < 0)
                return r;

        /* A helper that died since the last call is noticed here: start a new one, once. */
        for (int attempt = 0;; attempt++) {
                r = helper_start(c);
                if (r < 0)
                        return r;
                n = send(c->fd, &req, sizeof(req), MSG_NOSIGNAL);
                if (n >= 0)
                        break;
                r = -errno;
                if (attempt > 0 || (r != -EPIPE && r != -ECONNRESET && r != -ENOTCONN))
                        return r;
                log_warning("vmgr-netadm is gone; starting it again");
                c->pid = 0; /* dead: the SIGCHLD handler reaps it */
                connection_drop(c, -ECONNRESET, "vmgr-netadm exited unexpectedly (see vmgrd's log)");
        }
        if ((size_t) n != sizeof(req))
                return -EIO;
        return 0;
}

int netadm_client_call(NetadmClient *c, enum vmgr_netadm_op op, const char *group, const char *vm, enum vmgr_nic nic,
                       const char *dir, netadm_handler_t handler, void *userdata) {
        _cleanup_free_ NetadmCall *call = NULL;
        int r;

        if (c->freeing)
                return -ECONNABORTED;
        call = calloc(1, sizeof(*call));
        if (!call)
                return -ENOMEM;
        call->serial = c->next_serial++;
        call->op = op;
        call->handler = handler;
        call->userdata = userdata;
        call->sent_usec = now_monotonic_usec();

        r = request_send(c, op, call->serial, group, vm, nic, dir);
        if (r < 0)
                return r;

        if (c->tail)
                c->tail->next = call;
        else
                c->head = call;
        c->tail = TAKE_PTR(call);
        c->n_pending++;
        if (c->n_pending == 1)
                watchdog_update(c);
        return 0;
}

int netadm_client_call_sync(NetadmClient *c, enum vmgr_netadm_op op, const char *group, const char *vm,
                            enum vmgr_nic nic, const char *dir, char message[VMGR_NETADM_MESSAGE_MAX]) {
        struct vmgr_netadm_reply reply;
        uint32_t serial;
        int pidfd = -EBADF;
        int r;

        if (c->n_pending > 0)
                return -EBUSY;

        serial = c->next_serial++;
        r = request_send(c, op, serial, group, vm, nic, dir);
        if (r < 0)
                return r;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                if (poll(&p, 1, 30 * 1000) == 0)
                        return -ETIMEDOUT;
                r = reply_receive(c->fd, &reply, &pidfd, 0);
                if (r != -EINTR)
                        break;
        }
        if (r <= 0 || reply.serial != serial) {
                netadm_client_close(c);
                return r < 0 ? r : -ECONNRESET;
        }

        safe_close(pidfd);
        if (message)
                memcpy(message, reply.message, VMGR_NETADM_MESSAGE_MAX);
        return reply.error;
}
