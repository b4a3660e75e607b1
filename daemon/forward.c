/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Port forwards (forward.h): vmgrd relays, on its own event loop.
 *
 * Why a relay in vmgrd and not the kernel's NAT or another tool
 * (docs/design.md, "Port forwards"): DNAT from 127.0.0.1 needs the
 * host-wide route_localnet sysctl, and from ::1 is impossible; host mode
 * would need the privileged helper to manage NAT rules for its callers;
 * pasta forwards only between namespaces.
 *
 * TCP: each accepted connection gets its own connection to the guest and
 * two pipes; bytes move socket -> pipe -> socket with splice(), never
 * through user space. One end's EOF becomes shutdown(SHUT_WR) of the other
 * once its pipe is drained, so half-closed protocols work; an error on
 * either end resets both. Each wakeup moves at most
 * FORWARD_SPLICES_PER_WAKEUP chunks per direction, and every source of this
 * file runs at a lower priority than the bus, so a busy stream neither
 * starves other streams nor keeps vmgrd from answering.
 *
 * UDP: one socket connected to the guest per client address (its
 * "mapping"), so the guest's answers find their way back; a mapping idle
 * for FORWARD_UDP_IDLE_USEC is closed.
 *
 * Limits (any local user can reach a forward on 127.0.0.1): connections and
 * mappings per forward, and every fd the relays hold counted against half
 * of vmgrd's RLIMIT_NOFILE, so that a flood is refused here and never makes
 * accept() or the bus fail for lack of fds.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forward.h"
#include "group.h"
#include "log.h"
#include "vm.h"
#include "vmgr-error.h"

/* Bytes moved by one splice() call, the default pipe's capacity. */
#define FORWARD_SPLICE_CHUNK (64 * 1024)
/* Chunks one direction moves per wakeup before others get their turn. */
#define FORWARD_SPLICES_PER_WAKEUP 4
/* Connections accepted, or datagrams read, per wakeup of a listener. */
#define FORWARD_ACCEPTS_PER_WAKEUP 16
#define FORWARD_DATAGRAMS_PER_WAKEUP 32
/* After accept() ran out of fds: how long the listener rests. */
#define FORWARD_RETRY_USEC (UINT64_C(100) * UINT64_C(1000))
/* fds per TCP connection: two sockets, two pipes. */
#define FORWARD_FDS_PER_CONNECTION 6
/* Below the bus (SD_EVENT_PRIORITY_NORMAL): a pending method call is
 * dispatched before any relay work. */
#define FORWARD_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 5)
/* Refusals are logged at most this often. */
#define FORWARD_REFUSAL_LOG_USEC (UINT64_C(1000000))

typedef struct ForwardConn ForwardConn;
typedef struct ForwardMapping ForwardMapping;

/* One direction of a TCP connection. */
typedef struct Relay {
        int from, to;                   /* the connection's sockets, not owned */
        int pipe[2];
        size_t pending;                 /* bytes in the pipe */
        bool eof;                       /* from has said EOF */
        bool shut;                      /* to got shutdown(SHUT_WR) */
} Relay;

struct ForwardConn {
        Forward *forward;
        ForwardConn *next, *prev;
        int client_fd, guest_fd;
        sd_event_source *client_io, *guest_io;
        uint32_t client_events, guest_events; /* what the sources wait for now; 0: off */
        bool connected;                 /* the guest accepted the connection */
        Relay up;                       /* client -> guest */
        Relay down;                     /* guest -> client */
};

union sockaddr_in46 {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
};

struct ForwardMapping {
        Forward *forward;
        ForwardMapping *next, *prev;
        union sockaddr_in46 client;
        socklen_t client_len;
        int fd;                         /* connected to the guest */
        sd_event_source *io;
        uint64_t last_usec;             /* CLOCK_MONOTONIC of the last datagram either way */
};

struct Forward {
        Group *group;
        Forward *next, *prev;
        char *vm;
        int protocol;
        uint16_t guest_port;
        struct vmgr_forward_address address;
        uint16_t port;

        int fd;
        sd_event_source *io, *retry_timer, *expire_timer;
        ForwardConn *conns;
        unsigned n_conns;
        ForwardMapping *mappings;
        unsigned n_mappings;

        uint64_t refused;               /* connections reset, datagrams dropped */
        uint64_t refusal_logged_usec;
};

/* fds held by every relay of this vmgrd (sockets, pipes, UDP sockets). */
static unsigned forward_fds_in_use;

/* Half of the fds vmgrd may open: the rest stays for the bus, libvirt,
 * agents and the file server, whatever a flood does here. */
static unsigned forward_fd_budget(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return 512;
        return (unsigned) MIN(rl.rlim_cur / 2, (rlim_t) 1 << 20);
}

/* Raise the soft fd limit to the hard one (at most 65536), once: a relayed
 * TCP connection costs 6 fds, and the usual soft limit of 1024 would allow
 * only 85 of them. vmgrd uses no select(), which is what the soft limit
 * protects. */
static void forward_raise_fd_limit(void) {
        static bool done;
        struct rlimit rl;

        if (done)
                return;
        done = true;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? 65536 : MIN(rl.rlim_max, (rlim_t) 65536);
        if (rl.rlim_cur >= want)
                return;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(errno, "Cannot raise RLIMIT_NOFILE to %llu: %m", (unsigned long long) want);
}

/* True if n more fds fit the relays' budget. */
static bool forward_fds_available(unsigned n) {
        return forward_fds_in_use + n <= forward_fd_budget();
}

static uint64_t forward_now(Forward *f) {
        uint64_t now = 0;

        (void) sd_event_now(f->group->manager->event, CLOCK_MONOTONIC, &now);
        return now;
}

/* Count a refused connection or dropped datagram; say so at debug level at
 * most once a second, with the running total, so a flood cannot flood the log. */
static void forward_refused(Forward *f, const char *why) {
        uint64_t now = forward_now(f);

        f->refused++;
        if (f->refusal_logged_usec && now < f->refusal_logged_usec + FORWARD_REFUSAL_LOG_USEC)
                return;
        f->refusal_logged_usec = now;
        log_group(LOG_DEBUG, f->group->name, "Forward %s [%s]:%u: %s (%llu refused so far)",
                  vmgr_forward_protocol_to_string(f->protocol), f->address.text, f->port, why,
                  (unsigned long long) f->refused);
}

/* The running VM the forward leads to, or NULL if it is not running (then
 * there is nobody to connect to). */
static VM *forward_target(Forward *f) {
        VM *vm = group_find_vm(f->group, f->vm);

        if (!vm || (vm->state != VM_RUNNING && vm->state != VM_READY))
                return NULL;
        return vm;
}

/* A socket towards the guest at vm's IPv6 address and the forward's guest
 * port, from the group's management address, connecting (TCP) or connected
 * (UDP). Returns the fd or -errno. */
static int guest_socket_open(Forward *f, VM *vm, int type) {
        struct sockaddr_in6 src = {
                .sin6_family = AF_INET6,
                .sin6_addr = f->group->addrs.management6,
        };
        struct sockaddr_in6 dst = {
                .sin6_family = AF_INET6,
                .sin6_addr = vm->addrs.ipv6,
                .sin6_port = htons(f->guest_port),
        };
        _cleanup_close_ int fd = -EBADF;

        fd = manager_guest_socket(f->group->manager, AF_INET6, type, 0);
        if (fd < 0)
                return fd;
        /* Here, not as a socket() flag: the holder of the guests' namespace
         * need not pass flags on. */
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        if (type == SOCK_STREAM)
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
        /* The management address, as for all host-to-guest traffic: guests
         * (and the group's firewall) tell host traffic by it. */
        if (bind(fd, (struct sockaddr *) &src, sizeof(src)) < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &dst, sizeof(dst)) < 0 && errno != EINPROGRESS)
                return -errno;
        return TAKE_FD(fd);
}

/* Close fd so that its peer sees a reset, not an orderly end. */
static void close_with_reset(int fd) {
        struct linger l = { .l_onoff = 1, .l_linger = 0 };

        (void) setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        safe_close(fd);
}

/* ---- TCP ------------------------------------------------------------- */

static ForwardConn *conn_free(ForwardConn *c, bool reset) {
        Forward *f;

        if (!c)
                return NULL;
        f = c->forward;
        LIST_REMOVE(f->conns, c);
        f->n_conns--;
        forward_fds_in_use -= FORWARD_FDS_PER_CONNECTION;

        sd_event_source_disable_unref(c->client_io);
        sd_event_source_disable_unref(c->guest_io);
        if (reset) {
                close_with_reset(c->client_fd);
                close_with_reset(c->guest_fd);
        } else {
                safe_close(c->client_fd);
                safe_close(c->guest_fd);
        }
        safe_close(c->up.pipe[0]);
        safe_close(c->up.pipe[1]);
        safe_close(c->down.pipe[0]);
        safe_close(c->down.pipe[1]);
        free(c);
        return NULL;
}

/* Move what r's source has to its destination, at most
 * FORWARD_SPLICES_PER_WAKEUP chunks. Reads only into an empty pipe, so a
 * destination that does not take its bytes stops the reading. Returns 0,
 * or -errno if the connection is broken. */
static int relay_pump(Relay *r) {
        ssize_t n;

        for (unsigned i = 0; i < FORWARD_SPLICES_PER_WAKEUP; i++) {
                if (r->pending == 0 && !r->eof) {
                        n = splice(r->from, NULL, r->pipe[1], NULL, FORWARD_SPLICE_CHUNK,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                        if (n < 0) {
                                if (errno == EAGAIN)
                                        break;
                                return -errno;
                        }
                        if (n == 0)
                                r->eof = true;
                        r->pending += (size_t) n;
                }
                if (r->pending > 0) {
                        n = splice(r->pipe[0], NULL, r->to, NULL, r->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                        if (n < 0) {
                                if (errno == EAGAIN)
                                        break;
                                return -errno;
                        }
                        r->pending -= (size_t) n;
                        if (r->pending > 0)
                                break; /* the destination is full: wait until it is writable */
                }
                if (r->eof)
                        break;
        }
        /* Half-close: the source's EOF reaches the destination once every
         * byte before it has. */
        if (r->eof && r->pending == 0 && !r->shut) {
                if (shutdown(r->to, SHUT_WR) < 0 && errno != ENOTCONN)
                        return -errno;
                r->shut = true;
        }
        return 0;
}

/* Point an fd's source at what its two directions need now: reading when
 * the direction reading from it has room, writing when the one writing to
 * it has bytes waiting; off when neither (EPOLLHUP would wake us for
 * nothing). Returns 0 or -errno. */
static int conn_watch(sd_event_source *s, uint32_t *current, const Relay *reading, const Relay *writing) {
        uint32_t want = 0;
        int r;

        if (!reading->eof && reading->pending == 0)
                want |= EPOLLIN;
        if (writing->pending > 0)
                want |= EPOLLOUT;
        if (want == *current)
                return 0;
        if (want == 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_OFF);
        else {
                r = sd_event_source_set_io_events(s, want);
                if (r >= 0 && *current == 0)
                        r = sd_event_source_set_enabled(s, SD_EVENT_ON);
        }
        if (r < 0)
                return r;
        *current = want;
        return 0;
}

/* Both directions once more, then the sources. Frees c when both
 * directions are done or one broke. */
static void conn_run(ForwardConn *c) {
        int r;

        r = relay_pump(&c->up);
        if (r >= 0)
                r = relay_pump(&c->down);
        if (r < 0) {
                conn_free(c, true);
                return;
        }
        if (c->up.shut && c->down.shut) {
                conn_free(c, false);
                return;
        }
        r = conn_watch(c->client_io, &c->client_events, &c->up, &c->down);
        if (r >= 0)
                r = conn_watch(c->guest_io, &c->guest_events, &c->down, &c->up);
        if (r < 0) {
                log_group_errno(LOG_WARNING, r, c->forward->group->name, "Forward: cannot watch a connection: %m");
                conn_free(c, true);
        }
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ForwardConn *c = userdata;
        int error = 0;

        if (!c->connected) {
                /* The connection to the guest completed, or failed. */
                if (getsockopt(c->guest_fd, SOL_SOCKET, SO_ERROR, &error, &(socklen_t) { sizeof(error) }) < 0)
                        error = errno;
                if (error != 0) {
                        forward_refused(c->forward, "the guest did not accept the connection");
                        conn_free(c, true);
                        return 0;
                }
                c->connected = true;
                c->guest_events = EPOLLOUT;
                if (sd_event_source_set_enabled(c->client_io, SD_EVENT_ON) < 0) {
                        conn_free(c, true);
                        return 0;
                }
                c->client_events = EPOLLIN;
        }
        conn_run(c);
        return 0;
}

/* Relay a newly accepted connection: connect to the guest, then both
 * directions. Takes client_fd. Returns 0, or -errno (client_fd closed with
 * a reset, the refusal counted). */
static int conn_start(Forward *f, int client_fd) {
        _cleanup_free_ ForwardConn *c = NULL;
        const char *why;
        VM *vm;
        int r;

        if (f->n_conns >= FORWARD_MAX_CONNECTIONS) {
                why = "too many connections";
                r = -EBUSY;
                goto refuse;
        }
        if (!forward_fds_available(FORWARD_FDS_PER_CONNECTION)) {
                why = "vmgrd's relays hold as many fds as they may";
                r = -EMFILE;
                goto refuse;
        }
        vm = forward_target(f);
        if (!vm) {
                why = "the VM is not running";
                r = -EHOSTDOWN;
                goto refuse;
        }

        c = calloc(1, sizeof(ForwardConn));
        if (!c) {
                why = "out of memory";
                r = -ENOMEM;
                goto refuse;
        }
        *c = (ForwardConn) {
                .forward = f,
                .client_fd = client_fd,
                .guest_fd = -EBADF,
                .up.pipe = { -EBADF, -EBADF },
                .down.pipe = { -EBADF, -EBADF },
        };
        /* Owned by c from here on; its cleanup below closes it on failure. */
        client_fd = -EBADF;
        (void) setsockopt(c->client_fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));

        c->guest_fd = guest_socket_open(f, vm, SOCK_STREAM);
        if (c->guest_fd < 0) {
                why = "cannot connect to the guest";
                r = c->guest_fd;
                goto fail;
        }
        if (pipe2(c->up.pipe, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(c->down.pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                why = "cannot make a pipe";
                r = -errno;
                goto fail;
        }
        c->up.from = c->down.to = c->client_fd;
        c->up.to = c->down.from = c->guest_fd;

        r = sd_event_add_io(f->group->manager->event, &c->guest_io, c->guest_fd, EPOLLOUT, on_conn_io, c);
        if (r >= 0)
                r = sd_event_add_io(f->group->manager->event, &c->client_io, c->client_fd, EPOLLIN, on_conn_io, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->client_io, SD_EVENT_OFF);
        if (r < 0) {
                why = "cannot watch the connection";
                goto fail;
        }
        (void) sd_event_source_set_priority(c->guest_io, FORWARD_PRIORITY);
        (void) sd_event_source_set_priority(c->client_io, FORWARD_PRIORITY);

        c->next = f->conns;
        if (f->conns)
                f->conns->prev = c;
        f->conns = TAKE_PTR(c);
        f->n_conns++;
        forward_fds_in_use += FORWARD_FDS_PER_CONNECTION;
        return 0;

fail:
        sd_event_source_disable_unref(c->client_io);
        sd_event_source_disable_unref(c->guest_io);
        close_with_reset(c->client_fd);
        safe_close(c->guest_fd);
        safe_close(c->up.pipe[0]);
        safe_close(c->up.pipe[1]);
        safe_close(c->down.pipe[0]);
        safe_close(c->down.pipe[1]);
        forward_refused(f, why);
        return r;
refuse:
        close_with_reset(client_fd);
        forward_refused(f, why);
        return r;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Forward *f = userdata;

        f->retry_timer = sd_event_source_disable_unref(f->retry_timer);
        (void) sd_event_source_set_enabled(f->io, SD_EVENT_ON);
        return 0;
}

/* accept() found no fd: the pending connection would wake us again at
 * once, forever. Rest the listener a moment instead. */
static void forward_rest(Forward *f) {
        if (f->retry_timer)
                return;
        (void) sd_event_source_set_enabled(f->io, SD_EVENT_OFF);
        if (sd_event_add_time_relative(f->group->manager->event, &f->retry_timer, CLOCK_MONOTONIC,
                                       FORWARD_RETRY_USEC, 0, on_retry, f) < 0)
                (void) sd_event_source_set_enabled(f->io, SD_EVENT_ON);
}

static int on_tcp_listener(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Forward *f = userdata;

        for (unsigned i = 0; i < FORWARD_ACCEPTS_PER_WAKEUP; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno == EAGAIN)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                forward_refused(f, "vmgrd has no fd left to accept with");
                                forward_rest(f);
                                return 0;
                        }
                        continue; /* ECONNABORTED and the like: that one client's problem */
                }
                (void) conn_start(f, cfd);
        }
        return 0;
}

/* ---- UDP ------------------------------------------------------------- */

/* One datagram at a time: the loop is single-threaded. */
static uint8_t datagram[65536];

static ForwardMapping *mapping_free(ForwardMapping *m) {
        Forward *f;

        if (!m)
                return NULL;
        f = m->forward;
        LIST_REMOVE(f->mappings, m);
        f->n_mappings--;
        forward_fds_in_use--;
        sd_event_source_disable_unref(m->io);
        safe_close(m->fd);
        free(m);
        return NULL;
}

static bool sockaddr_equal(const union sockaddr_in46 *a, const union sockaddr_in46 *b) {
        if (a->sa.sa_family != b->sa.sa_family)
                return false;
        if (a->sa.sa_family == AF_INET)
                return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
        return a->in6.sin6_port == b->in6.sin6_port &&
               memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(struct in6_addr)) == 0 &&
               a->in6.sin6_scope_id == b->in6.sin6_scope_id;
}

/* The guest answered: pass its datagrams back to the client. */
static int on_mapping_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ForwardMapping *m = userdata;
        Forward *f = m->forward;

        for (unsigned i = 0; i < FORWARD_DATAGRAMS_PER_WAKEUP; i++) {
                ssize_t n = recv(fd, datagram, sizeof(datagram), MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EAGAIN)
                                break;
                        continue; /* ECONNREFUSED: an ICMP error from the guest, nothing to pass on */
                }
                m->last_usec = forward_now(f);
                (void) sendto(f->fd, datagram, (size_t) n, MSG_DONTWAIT, &m->client.sa, m->client_len);
        }
        return 0;
}

static int on_expire(sd_event_source *s, uint64_t usec, void *userdata);

/* Arm the idle timer for the oldest mapping, or turn it off. */
static void forward_expire_arm(Forward *f) {
        uint64_t oldest = UINT64_MAX;

        for (ForwardMapping *m = f->mappings; m; m = m->next)
                oldest = MIN(oldest, m->last_usec);
        if (oldest == UINT64_MAX) {
                if (f->expire_timer)
                        (void) sd_event_source_set_enabled(f->expire_timer, SD_EVENT_OFF);
                return;
        }
        if (!f->expire_timer) {
                if (sd_event_add_time(f->group->manager->event, &f->expire_timer, CLOCK_MONOTONIC,
                                      oldest + FORWARD_UDP_IDLE_USEC, UINT64_C(1000000), on_expire, f) < 0)
                        return;
                (void) sd_event_source_set_priority(f->expire_timer, FORWARD_PRIORITY);
                return;
        }
        (void) sd_event_source_set_time(f->expire_timer, oldest + FORWARD_UDP_IDLE_USEC);
        (void) sd_event_source_set_enabled(f->expire_timer, SD_EVENT_ONESHOT);
}

static int on_expire(sd_event_source *s, uint64_t usec, void *userdata) {
        Forward *f = userdata;
        uint64_t now = forward_now(f);
        ForwardMapping *next;

        for (ForwardMapping *m = f->mappings; m; m = next) {
                next = m->next;
                if (m->last_usec + FORWARD_UDP_IDLE_USEC <= now)
                        mapping_free(m);
        }
        forward_expire_arm(f);
        return 0;
}

/* The mapping of client, made if there is none and room for one. Returns
 * it, or NULL (the datagram is to be dropped; counted). */
static ForwardMapping *mapping_get(Forward *f, const union sockaddr_in46 *client, socklen_t len) {
        _cleanup_free_ ForwardMapping *m = NULL;
        VM *vm;
        int r;

        vm = forward_target(f);
        if (!vm) {
                forward_refused(f, "the VM is not running");
                return NULL;
        }
        for (ForwardMapping *i = f->mappings; i; i = i->next)
                if (sockaddr_equal(&i->client, client))
                        return i;

        if (f->n_mappings >= FORWARD_MAX_MAPPINGS) {
                forward_refused(f, "too many client addresses");
                return NULL;
        }
        if (!forward_fds_available(1)) {
                forward_refused(f, "vmgrd's relays hold as many fds as they may");
                return NULL;
        }
        m = calloc(1, sizeof(ForwardMapping));
        if (!m)
                return NULL;
        m->forward = f;
        m->client = *client;
        m->client_len = len;
        m->fd = guest_socket_open(f, vm, SOCK_DGRAM);
        if (m->fd < 0) {
                forward_refused(f, "cannot open a socket to the guest");
                return NULL;
        }
        r = sd_event_add_io(f->group->manager->event, &m->io, m->fd, EPOLLIN, on_mapping_io, m);
        if (r < 0) {
                safe_close(m->fd);
                forward_refused(f, "cannot watch a socket to the guest");
                return NULL;
        }
        (void) sd_event_source_set_priority(m->io, FORWARD_PRIORITY);
        m->next = f->mappings;
        if (f->mappings)
                f->mappings->prev = m;
        f->mappings = m;
        f->n_mappings++;
        forward_fds_in_use++;
        m->last_usec = forward_now(f);
        if (f->n_mappings == 1)
                forward_expire_arm(f);
        return TAKE_PTR(m);
}

static int on_udp_listener(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Forward *f = userdata;

        for (unsigned i = 0; i < FORWARD_DATAGRAMS_PER_WAKEUP; i++) {
                union sockaddr_in46 from = {};
                socklen_t len = sizeof(from);
                ForwardMapping *m;
                ssize_t n;

                n = recvfrom(fd, datagram, sizeof(datagram), MSG_DONTWAIT, &from.sa, &len);
                if (n < 0) {
                        if (errno == EAGAIN)
                                break;
                        continue;
                }
                if (from.sa.sa_family != AF_INET && from.sa.sa_family != AF_INET6)
                        continue;
                m = mapping_get(f, &from, len);
                if (!m)
                        continue;
                m->last_usec = forward_now(f);
                (void) send(m->fd, datagram, (size_t) n, MSG_DONTWAIT);
        }
        return 0;
}

/* ---- forwards --------------------------------------------------------- */

Forward *forward_free(Forward *f) {
        Group *g;

        if (!f)
                return NULL;
        while (f->conns)
                conn_free(f->conns, true);
        while (f->mappings)
                mapping_free(f->mappings);
        g = f->group;
        if (g) {
                LIST_REMOVE(g->forwards, f);
                g->n_forwards--;
                if (f->refused > 0)
                        log_group(LOG_INFO, g->name, "Forward %s [%s]:%u closed; it refused %llu connections or datagrams",
                                  vmgr_forward_protocol_to_string(f->protocol), f->address.text, f->port,
                                  (unsigned long long) f->refused);
        }
        sd_event_source_disable_unref(f->io);
        sd_event_source_disable_unref(f->retry_timer);
        sd_event_source_disable_unref(f->expire_timer);
        if (f->fd >= 0)
                forward_fds_in_use--;
        safe_close(f->fd);
        free(f->vm);
        free(f);
        return NULL;
}

Forward *forward_find(Group *g, int protocol, const char *address, uint16_t port) {
        struct vmgr_forward_address a;

        if (vmgr_forward_address_parse(address, &a) < 0)
                return NULL;
        for (Forward *f = g->forwards; f; f = f->next)
                if (f->protocol == protocol && f->port == port && streq(f->address.text, a.text))
                        return f;
        return NULL;
}

/* A socket listening on f's address and port (0: the kernel's choice,
 * written back to f->port). Returns the fd or -errno. */
static int forward_listen(Forward *f) {
        union sockaddr_in46 sa = { .sa = f->address.sockaddr.sa };
        socklen_t len = f->address.family == AF_INET ? sizeof(sa.in) : sizeof(sa.in6);
        _cleanup_close_ int fd = -EBADF;
        int type = f->protocol == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;

        if (f->address.family == AF_INET)
                sa.in.sin_port = htons(f->port);
        else
                sa.in6.sin6_port = htons(f->port);
        /* vmgrd's own namespace, not the guests': a plain socket(). */
        fd = socket(f->address.family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (f->address.family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int) { 1 }, sizeof(int));
        if (type == SOCK_STREAM)
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int) { 1 }, sizeof(int));
        if (bind(fd, &sa.sa, len) < 0)
                return -errno;
        if (type == SOCK_STREAM && listen(fd, 128) < 0)
                return -errno;
        if (getsockname(fd, &sa.sa, &len) < 0)
                return -errno;
        f->port = ntohs(f->address.family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
        return TAKE_FD(fd);
}

static void forward_freep(Forward **f) {
        forward_free(*f);
}

int forward_add(Group *g, const char *vm, int protocol, uint16_t guest_port, const char *address, uint16_t port,
                Forward **ret) {
        _cleanup_(forward_freep) Forward *f = NULL;
        int r;

        if (!vmgr_forward_protocol_to_string(protocol) || guest_port == 0)
                return -EINVAL;
        if (port != 0 && forward_find(g, protocol, address, port))
                return -EEXIST;
        if (g->n_forwards >= FORWARD_MAX_PER_GROUP)
                return -VMGR_ERR_LIMIT_EXCEEDED;
        if (!forward_fds_available(1))
                return -EMFILE;
        forward_raise_fd_limit();

        f = calloc(1, sizeof(Forward));
        if (!f)
                return -ENOMEM;
        f->fd = -EBADF;
        f->protocol = protocol;
        f->guest_port = guest_port;
        f->port = port;
        if (vmgr_forward_address_parse(address, &f->address) < 0)
                return -EINVAL;
        f->vm = strdup(vm);
        if (!f->vm)
                return -ENOMEM;
        r = forward_listen(f);
        if (r < 0)
                return r;
        f->fd = r;
        forward_fds_in_use++; /* forward_free() gives it back from here on */
        r = sd_event_add_io(g->manager->event, &f->io, f->fd, EPOLLIN,
                            protocol == IPPROTO_TCP ? on_tcp_listener : on_udp_listener, f);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(f->io, FORWARD_PRIORITY);

        /* Newest first in the list; Forwards lists oldest first. */
        f->group = g;
        f->next = g->forwards;
        if (g->forwards)
                g->forwards->prev = f;
        g->forwards = f;
        g->n_forwards++;
        log_group(LOG_INFO, g->name, "Forwarding %s [%s]:%u to VM %s port %u", vmgr_forward_protocol_to_string(protocol),
                  f->address.text, f->port, vm, guest_port);
        *ret = TAKE_PTR(f);
        return 0;
}

void forward_remove_vm(Group *g, const char *vm) {
        Forward *next;
        bool changed = false;

        for (Forward *f = g->forwards; f; f = next) {
                next = f->next;
                if (!vm || streq(f->vm, vm)) {
                        forward_free(f);
                        changed = true;
                }
        }
        if (changed)
                (void) group_emit_changed(g, "Forwards", NULL);
}

void forward_vm_stopped(Group *g, const char *vm) {
        for (Forward *f = g->forwards; f; f = f->next) {
                if (!streq(f->vm, vm))
                        continue;
                while (f->conns)
                        conn_free(f->conns, true);
                while (f->mappings)
                        mapping_free(f->mappings);
                forward_expire_arm(f);
        }
}

const char *forward_address(const Forward *f) {
        return f->address.text;
}

uint16_t forward_port(const Forward *f) {
        return f->port;
}

int forward_foreach(Group *g, forward_cb cb, void *userdata) {
        Forward *last = g->forwards;
        int r;

        while (last && last->next)
                last = last->next;
        for (Forward *f = last; f; f = f->prev) {
                r = cb(f->vm, f->protocol, f->guest_port, f->address.text, f->port, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}
