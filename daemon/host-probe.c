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
#include "http-client.h"
#include "macro.h"
#include "manager.h"

/* An HTTP probe reads the status line and headers (at most
 * HTTP_HEADERS_MAX), never more than this of a body. */
#define HOST_PROBE_HTTP_BODY_MAX 4096

struct HostProbe {
        Manager *manager;
        sd_event *event;
        HostProbeKind kind;
        struct sockaddr_in6 source, target;
        unsigned port;
        char *http_path;
        unsigned http_status;
        long http_status_seen;          /* the attempt's response status, 0 before it */
        HttpRequest *http;              /* the attempt's request */
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

int host_probe_options_from_spec(const VmgrHostProbe *spec, HostProbeOptions *ret) {
        switch (spec->type) {
        case VMGR_HOST_PROBE_TCP:
                *ret = (HostProbeOptions) { .kind = HOST_PROBE_TCP, .port = spec->port };
                return 0;
        case VMGR_HOST_PROBE_PING:
                *ret = (HostProbeOptions) { .kind = HOST_PROBE_PING };
                return 0;
        case VMGR_HOST_PROBE_HTTP:
                *ret = (HostProbeOptions) { .kind = HOST_PROBE_HTTP, .port = spec->port,
                                            .http_path = spec->http_path, .http_status = spec->http_status };
                return 0;
        default:
                return -EINVAL;
        }
}

const char *host_probe_last_error(const HostProbe *p) {
        return p->last_error;
}

/* End the attempt in flight: its socket, its sources. */
static void attempt_end(HostProbe *p) {
        p->http = http_request_free(p->http);
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
        if (p->kind == HOST_PROBE_HTTP)
                return snprintf(buf, size, "http port %u GET %.64s%s", p->port, p->http_path,
                                strlen(p->http_path) > 64 ? "..." : "");
        return snprintf(buf, size, "tcp port %u", p->port);
}

/* The attempt failed with error (-errno; -ETIMEDOUT for no answer in
 * time) or with why (a phrase, if not NULL): keep it and try again later. */
static void attempt_failed(HostProbe *p, int error, const char *why) {
        char what[128], buf[128];

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

static int on_http_response(HttpRequest *r, long status, void *userdata) {
        HostProbe *p = userdata;

        p->http_status_seen = status;
        return -ECANCELED; /* the status is all a probe wants: no body */
}

static void on_http_done(HttpRequest *r, int error, const char *text, void *userdata) {
        HostProbe *p = userdata;
        char why[128];

        if (p->http_status_seen == (long) p->http_status) {
                attempt_passed(p);
                return;
        }
        if (p->http_status_seen > 0) {
                snprintf(why, sizeof(why), "HTTP %ld, not %u", p->http_status_seen, p->http_status);
                attempt_failed(p, 0, why);
                return;
        }
        if (error == -ETIMEDOUT || !text || !*text) {
                attempt_failed(p, error < 0 ? error : -EIO, NULL);
                return;
        }
        snprintf(why, sizeof(why), "%s", text);
        why[0] = (char) tolower((unsigned char) why[0]);
        attempt_failed(p, error, why);
}

static int http_open_socket(int family, int type, int protocol, void *userdata) {
        HostProbe *p = userdata;

        return manager_guest_socket(p->manager, family, type, protocol);
}

static int attempt_http(HostProbe *p) {
        char target[INET6_ADDRSTRLEN], source[INET6_ADDRSTRLEN];
        _cleanup_free_ char *url = NULL;
        int r;

        inet_ntop(AF_INET6, &p->target.sin6_addr, target, sizeof(target));
        inet_ntop(AF_INET6, &p->source.sin6_addr, source, sizeof(source));
        if (asprintf(&url, "http://[%s]:%u%s", target, p->port, p->http_path) < 0)
                return -ENOMEM;
        p->http_status_seen = 0;
        r = http_request_start(p->event,
                               &(HttpRequestOptions) {
                                       .url = url,
                                       .source_address = source,
                                       .open_socket = http_open_socket,
                                       .socket_userdata = p,
                                       /* The attempt's own deadline ends it first;
                                        * these only keep curl bounded by itself. */
                                       .connect_timeout_usec = 2 * HOST_PROBE_ATTEMPT_USEC,
                                       .timeout_usec = 2 * HOST_PROBE_ATTEMPT_USEC,
                                       .max_body = HOST_PROBE_HTTP_BODY_MAX,
                                       .on_response = on_http_response,
                                       .on_done = on_http_done,
                                       .userdata = p,
                               },
                               &p->http);
        if (r < 0)
                attempt_failed(p, r, NULL);
        return 0;
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
        r = p->kind == HOST_PROBE_PING   ? attempt_ping(p)
            : p->kind == HOST_PROBE_HTTP ? attempt_http(p)
                                         : attempt_connect(p);
        if (r < 0)
                attempt_end(p);
        return r;
}

int host_probe_new(Manager *m, const HostProbeOptions *o, const struct in6_addr *source,
                   const struct in6_addr *target, host_probe_passed_t passed, void *userdata, HostProbe **ret) {
        HostProbe *p;
        int r;

        if ((unsigned) o->kind >= _HOST_PROBE_KIND_MAX || !passed ||
            (o->kind == HOST_PROBE_HTTP && (!o->http_path || o->http_path[0] != '/')))
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->fd = -EBADF;
        p->manager = m;
        p->event = sd_event_ref(m->event);
        p->kind = o->kind;
        p->http_status = o->http_status;
        if (o->kind == HOST_PROBE_HTTP && !(p->http_path = strdup(o->http_path))) {
                host_probe_free(p);
                return -ENOMEM;
        }
        p->source = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_addr = *source };
        p->target = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_addr = *target };
        p->port = o->port;
        p->passed = passed;
        p->userdata = userdata;
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
        free(p->http_path);
        free(p);
        return NULL;
}
