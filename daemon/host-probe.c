/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "host-probe.h"
#include "macro.h"
#include "manager.h"

struct HostProbe {
        Manager *manager;
        sd_event *event;
        HostProbeKind kind;
        struct sockaddr_in6 source, target;
        unsigned port;
        host_probe_passed_t passed;
        void *userdata;

        int fd;                         /* the attempt's socket, or -EBADF between attempts */
        sd_event_source *io;
        sd_event_source *timer;         /* the attempt's deadline, or the wait for the next one */
        bool raw;                       /* ping: a raw ICMPv6 socket (the ping socket was refused) */
        uint16_t ping_id, ping_seq;
        uint64_t ping_cookie;           /* the echo's payload: a reply must carry it */
        char last_error[HOST_PROBE_ERROR_MAX];
};

static int probe_attempt(HostProbe *p);

int host_probe_kind_from_spec(const VmgrHostProbe *spec) {
        switch (spec->type) {
        case VMGR_HOST_PROBE_TCP:
                return HOST_PROBE_TCP;
        case VMGR_HOST_PROBE_PING:
                return HOST_PROBE_PING;
        default:
                return -EOPNOTSUPP;
        }
}

const char *host_probe_last_error(const HostProbe *p) {
        return p->last_error;
}

/* End the attempt in flight: its socket, its sources. */
static void attempt_end(HostProbe *p) {
        p->io = sd_event_source_disable_unref(p->io);
        p->timer = sd_event_source_disable_unref(p->timer);
        p->fd = safe_close(p->fd);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        HostProbe *p = userdata;

        p->timer = sd_event_source_disable_unref(p->timer);
        if (probe_attempt(p) < 0)
                snprintf(p->last_error, sizeof(p->last_error), "cannot run the probe: out of memory");
        return 0;
}

/* What the probe is, for its error: "tcp port 8080", "ping". */
static int probe_what(const HostProbe *p, char *buf, size_t size) {
        if (p->kind == HOST_PROBE_PING)
                return snprintf(buf, size, "ping");
        return snprintf(buf, size, "tcp port %u", p->port);
}

/* The attempt failed with error (-errno; -ETIMEDOUT for no answer in
 * time) or with why (a phrase, if not NULL): keep it and try again later. */
static void attempt_failed(HostProbe *p, int error, const char *why) {
        char what[64], buf[128];

        attempt_end(p);
        probe_what(p, what, sizeof(what));
        if (!why) {
                if (error == -ETIMEDOUT)
                        snprintf(buf, sizeof(buf), "no answer within %.1f s", HOST_PROBE_ATTEMPT_USEC / 1e6);
                else {
                        snprintf(buf, sizeof(buf), "%s", strerror(-error));
                        buf[0] = (char) tolower((unsigned char) buf[0]);
                }
                why = buf;
        }
        snprintf(p->last_error, sizeof(p->last_error), "%s: %s", what, why);
        if (sd_event_add_time_relative(p->event, &p->timer, CLOCK_MONOTONIC, HOST_PROBE_RETRY_USEC, 0, on_retry, p) <
            0)
                p->timer = NULL; /* out of memory: the probe stops; the VM is not ready */
}

/* The attempt passed: stop and say so (the callback may free p). */
static void attempt_passed(HostProbe *p) {
        attempt_end(p);
        p->last_error[0] = 0;
        p->passed(p, p->userdata);
}

static int on_attempt_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        attempt_failed(userdata, -ETIMEDOUT, NULL);
        return 0;
}

static int on_connect(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HostProbe *p = userdata;
        int error = 0;
        socklen_t len = sizeof(error);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                error = errno;
        if (error == 0 || (p->kind == HOST_PROBE_ADDRESS && error == ECONNREFUSED))
                attempt_passed(p);
        else
                attempt_failed(p, -error, NULL);
        return 0;
}

/* Read one datagram: an echo reply carrying our sequence and cookie passes;
 * anything else is ignored (the attempt's deadline still runs). */
static int on_ping_reply(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HostProbe *p = userdata;
        uint8_t buf[256];
        struct icmp6_hdr h;
        uint64_t cookie;
        ssize_t n;

        for (;;) {
                n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        attempt_failed(p, -errno, NULL);
                        return 0;
                }
                if ((size_t) n < sizeof(h) + sizeof(cookie))
                        continue;
                memcpy(&h, buf, sizeof(h));
                memcpy(&cookie, buf + sizeof(h), sizeof(cookie));
                /* A ping socket's identifier is the kernel's, which matched it already. */
                if (h.icmp6_type != ICMP6_ECHO_REPLY || ntohs(h.icmp6_seq) != p->ping_seq ||
                    cookie != p->ping_cookie || (p->raw && ntohs(h.icmp6_id) != p->ping_id))
                        continue;
                attempt_passed(p);
                return 0;
        }
}

/* A socket from the guest network's namespace, bound to the source address.
 * Returns the fd or -errno. */
static int probe_socket(HostProbe *p, int type, int protocol) {
        _cleanup_close_ int fd = -EBADF;
        int one = 1;

        fd = manager_guest_socket(p->manager, AF_INET6, type | SOCK_NONBLOCK, protocol);
        if (fd < 0)
                return fd;
        /* The helper put the source address on lo; FREEBIND spares a race
         * with that and lets daemon tests run without a real network. */
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *) &p->source, sizeof(p->source)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static int attempt_ping(HostProbe *p) {
        uint8_t packet[sizeof(struct icmp6_hdr) + sizeof(uint64_t)];
        struct icmp6_hdr h = { .icmp6_type = ICMP6_ECHO_REQUEST };
        int fd;

        /* An unprivileged ping socket where net.ipv4.ping_group_range allows
         * it; in namespace mode the holder may make a raw one instead. */
        p->raw = false;
        fd = probe_socket(p, SOCK_DGRAM, IPPROTO_ICMPV6);
        if (fd == -EACCES || fd == -EPERM) {
                fd = probe_socket(p, SOCK_RAW, IPPROTO_ICMPV6);
                if (fd == -EACCES || fd == -EPERM) {
                        attempt_failed(p, fd, "ping sockets are not permitted (net.ipv4.ping_group_range)");
                        return 0;
                }
                p->raw = true;
        }
        if (fd < 0) {
                attempt_failed(p, fd, NULL);
                return 0;
        }
        p->fd = fd;
        if (p->raw) {
                struct icmp6_filter filter;

                ICMP6_FILTER_SETBLOCKALL(&filter);
                ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
                if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter)) < 0) {
                        attempt_failed(p, -errno, NULL);
                        return 0;
                }
        }
        if (connect(fd, (struct sockaddr *) &p->target, sizeof(p->target)) < 0) {
                attempt_failed(p, -errno, NULL);
                return 0;
        }
        p->ping_seq++;
        if (getrandom(&p->ping_cookie, sizeof(p->ping_cookie), GRND_NONBLOCK) != sizeof(p->ping_cookie))
                p->ping_cookie ^= (uint64_t) (uintptr_t) p + p->ping_seq;
        h.icmp6_id = htons(p->ping_id);
        h.icmp6_seq = htons(p->ping_seq);
        memcpy(packet, &h, sizeof(h));
        memcpy(packet + sizeof(h), &p->ping_cookie, sizeof(p->ping_cookie));
        if (send(fd, packet, sizeof(packet), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
                attempt_failed(p, -errno, NULL);
                return 0;
        }
        return sd_event_add_io(p->event, &p->io, fd, EPOLLIN, on_ping_reply, p);
}

static int attempt_connect(HostProbe *p) {
        struct sockaddr_in6 sa = p->target;
        int fd;

        fd = probe_socket(p, SOCK_STREAM, 0);
        if (fd < 0) {
                attempt_failed(p, fd, NULL);
                return 0;
        }
        p->fd = fd;
        sa.sin6_port = htons((uint16_t) p->port);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
                if (p->kind == HOST_PROBE_ADDRESS && errno == ECONNREFUSED)
                        attempt_passed(p);
                else
                        attempt_failed(p, -errno, NULL);
                return 0;
        }
        return sd_event_add_io(p->event, &p->io, fd, EPOLLOUT, on_connect, p);
}

/* Start one attempt with its deadline. Returns 0 or -errno (then the probe
 * has stopped: nothing is scheduled). */
static int probe_attempt(HostProbe *p) {
        int r;

        r = sd_event_add_time_relative(p->event, &p->timer, CLOCK_MONOTONIC, HOST_PROBE_ATTEMPT_USEC, 0,
                                       on_attempt_timeout, p);
        if (r < 0)
                return r;
        r = p->kind == HOST_PROBE_PING ? attempt_ping(p) : attempt_connect(p);
        if (r < 0)
                attempt_end(p);
        return r;
}

int host_probe_new(Manager *m, HostProbeKind kind, const struct in6_addr *source, const struct in6_addr *target,
                   unsigned port, host_probe_passed_t passed, void *userdata, HostProbe **ret) {
        HostProbe *p;
        int r;

        if ((unsigned) kind >= _HOST_PROBE_KIND_MAX || !passed)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->event = sd_event_ref(m->event);
        p->kind = kind;
        p->source = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_addr = *source };
        p->target = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_addr = *target };
        p->port = port;
        p->passed = passed;
        p->userdata = userdata;
        p->fd = -EBADF;
        if (getrandom(&p->ping_id, sizeof(p->ping_id), GRND_NONBLOCK) != sizeof(p->ping_id))
                p->ping_id = (uint16_t) (uintptr_t) p;
        /* The first attempt on the next turn of the loop: a callback from
         * in here would come before the caller has its probe. */
        r = sd_event_add_time_relative(p->event, &p->timer, CLOCK_MONOTONIC, 0, 0, on_retry, p);
        if (r < 0) {
                host_probe_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

HostProbe *host_probe_free(HostProbe *p) {
        if (!p)
                return NULL;
        attempt_end(p);
        sd_event_unref(p->event);
        free(p);
        return NULL;
}
