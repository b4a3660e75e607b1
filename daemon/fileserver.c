/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A group's file server (fileserver.h): libmicrohttpd driven by vmgrd's
 * sd-event loop, serving files registered by fd.
 *
 * Why MHD without a thread of its own: vmgrd is one event loop, and every
 * piece of state here (the file list, the group) belongs to it. MHD in
 * external epoll mode gives its epoll fd to the loop and is run from it, so
 * no lock is needed and a request can never see a file list half changed.
 * Each response reads through its own dup() of the registered fd with
 * pread(), 64 KiB at a time, and MHD sends that with send(MSG_NOSIGNAL); no
 * sendfile(), which could raise SIGPIPE (vmgrd does not ignore it). A
 * response holds its dup until it is done, so unserving a file or stopping
 * the server never pulls the fd from under a running download; new requests
 * get 404.
 *
 * Who may connect, and for how long (docs/design.md, "The file server"):
 * only the group's guests, by source address, checked by MHD's accept
 * policy callback right after accept(), before a byte of the request is
 * read. Then three limits keep one guest from starving the others: a
 * number of connections per source address, a total, and a deadline for
 * each request to arrive whole, which MHD's inactivity timeout alone is not
 * (a client sending a byte every few seconds is never inactive).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-error.h"
#include "fileserver-util.h"
#include "fileserver.h"
#include "fs-util.h"
#include "log.h"

/* Files one group serves at once (registered or being hashed). */
#define FILESERVER_MAX_FILES 1024
/* Connections at once, over all guests of the group (at most 32 VMs by
 * default): 128 fds and at most 128 x 32 KiB of MHD buffers. Past it, new
 * connections wait in the listen backlog until one closes, which the
 * request deadline below makes happen within seconds. */
#define FILESERVER_MAX_CONNECTIONS 128
/* Connections at once from one source address: enough for a guest that
 * fetches several files, or one in segments, in parallel (aria2's most is
 * 16), and yet one guest holds at most an eighth of the total, so a guest
 * that opens connections without end starves neither itself nor others. */
#define FILESERVER_MAX_CONNECTIONS_PER_SOURCE 16
/* A request (line, headers and any body) must arrive whole within this long
 * of its connection's start or of the end of the response before it (the
 * wait between requests on a kept-alive connection). Clients send a GET in
 * one write right after connecting; 10 s leaves a loaded TCG guest room,
 * and bounds how long a connection that sends nothing useful (a slowloris,
 * one byte every few seconds) holds its slot. */
#define FILESERVER_REQUEST_TIMEOUT_SEC 10
/* A connection inactive this long is closed: in practice, one whose client
 * stopped reading its response (a request is bounded by the deadline above).
 * Generous, as a guest writing a large download to a slow disk may stall. */
#define FILESERVER_IDLE_TIMEOUT_SEC 60
/* At most one debug line per second about refused or timed-out connections,
 * each with the running total: a flood must not flood the log. */
#define FILESERVER_LOG_INTERVAL_USEC (1000ULL * 1000ULL)
/* Hashing reads this much at a time. */
#define HASH_CHUNK (1024 * 1024)
/* A response reads (and sends) this much per turn of the loop. MHD's own fd
 * responses read 4 KiB, which costs a loop iteration per 4 KiB. */
#define RESPONSE_BLOCK (64 * 1024)

/* A connection, from MHD's start notification until it is closed. */
typedef struct Connection Connection;
struct Connection {
        Connection *next, *prev;        /* in the server's awaiting list while deadline != 0 */
        FileServer *server;
        int fd;                         /* MHD's socket, for shutdown(); MHD closes it after telling us */
        uint64_t deadline;              /* CLOCK_MONOTONIC µs by which a whole request must be in; 0: none */
};

typedef struct ServedFile ServedFile;
struct ServedFile {
        ServedFile *next, *prev;
        char *name;
        int fd;                         /* our own dup, O_CLOEXEC */
        char *keep_path;                /* the kept copy a restarted vmgrd serves from (or NULL) */
        uint64_t size;                  /* at registration; never more is served */
        char sha256[SHA256_DIGEST_SIZE * 2 + 1];
};

/* A ServeFile call whose file is being hashed (or waits to be). */
typedef struct HashJob HashJob;
struct HashJob {
        HashJob *next, *prev;
        FileServer *server;             /* reference */
        ServedFile *file;               /* owned until it is served */
        fileserver_serve_done_t done;   /* called once, when served or failed */
        void *userdata;
        /* Written by the pool thread; read on the loop once it is done. */
        char sha256[SHA256_DIGEST_SIZE * 2 + 1];
        bool short_read;
        char keep_error[256];           /* why no copy was kept (logged; serving goes on) */
        const char *keep_dir;           /* the server's (the job holds a reference on it) */
};

struct FileServer {
        unsigned n_ref;
        Group *group;                   /* NULL once stopped */
        char *group_name;               /* for logs, also after the group is gone */
        char *keep_dir;                 /* <state>/groups/<name>/files: what survives vmgrd */
        sd_event *event;
        WorkerPool *workers;
        struct MHD_Daemon *mhd;
        sd_event_source *io_source, *timer_source;
        char url_base[INET6_ADDRSTRLEN + 16]; /* http://[ADDR]:PORT */

        /* Who may connect: fileserver_peer_allowed(). */
        struct in6_addr prefix6, gateway6;
        /* Connections waiting for a request, earliest deadline first (every
         * deadline is now + the same timeout, so appending keeps the order). */
        Connection *awaiting, *awaiting_tail;
        sd_event_source *deadline_source;
        unsigned n_connections;         /* open, as MHD told us */
        uint64_t n_refused, n_request_timeouts;
        uint64_t refused_log_next, timeout_log_next; /* CLOCK_MONOTONIC µs */

        ServedFile *files, *files_tail; /* served, oldest first */
        unsigned n_files;
        HashJob *jobs, *jobs_tail;      /* waiting; the first one is on the pool when hashing */
        unsigned n_jobs;
        bool hashing;
};

static FileServer *fileserver_ref(FileServer *s) {
        s->n_ref++;
        return s;
}

static ServedFile *served_file_free(ServedFile *f) {
        if (!f)
                return NULL;
        safe_close(f->fd);
        free(f->name);
        free(f->keep_path);
        free(f);
        return NULL;
}

static void fileserver_unref(FileServer *s) {
        if (!s || --s->n_ref > 0)
                return;
        /* Stopped before the last reference went: no files, jobs or MHD left. */
        sd_event_unref(s->event);
        free(s->group_name);
        free(s->keep_dir);
        free(s);
}

static ServedFile *find_file(FileServer *s, const char *name) {
        for (ServedFile *f = s->files; f; f = f->next)
                if (streq(f->name, name))
                        return f;
        return NULL;
}

static ServedFile *find_file_by_sha256(FileServer *s, const char *hex) {
        for (ServedFile *f = s->files; f; f = f->next)
                if (strcasecmp(f->sha256, hex) == 0)
                        return f;
        return NULL;
}

static bool name_is_taken(FileServer *s, const char *name) {
        if (find_file(s, name))
                return true;
        for (HashJob *j = s->jobs; j; j = j->next)
                if (streq(j->file->name, name))
                        return true;
        return false;
}

/* --- who may connect, and for how long ------------------------------------ */

static void fileserver_arm_timer(FileServer *s, bool at_once);
static void fileserver_run(FileServer *s);

/* Is it time for another rate-limited log line? Returns true and moves *next
 * on if so. */
static bool log_due(FileServer *s, uint64_t *next) {
        uint64_t now;

        if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0 || now < *next)
                return false;
        *next = now + FILESERVER_LOG_INTERVAL_USEC;
        return true;
}

/* MHD's accept policy: runs right after accept(), before anything is read
 * from the connection. MHD closes a refused one at once. */
static enum MHD_Result on_accept(void *userdata, const struct sockaddr *addr, socklen_t addrlen) {
        FileServer *s = userdata;
        char text[INET6_ADDRSTRLEN] = "?";

        if (fileserver_peer_allowed(addr, addrlen, &s->prefix6, &s->gateway6))
                return MHD_YES;

        s->n_refused++;
        if (log_due(s, &s->refused_log_next)) {
                if (addr && addr->sa_family == AF_INET6 && addrlen >= sizeof(struct sockaddr_in6))
                        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) addr)->sin6_addr, text, sizeof(text));
                log_group(LOG_DEBUG, s->group_name,
                          "File server: refused a connection from %s, not a guest of the group (%" PRIu64
                          " refused so far)",
                          text, s->n_refused);
        }
        return MHD_NO;
}

/* Set the deadline timer to the earliest deadline, or turn it off. */
static void fileserver_arm_deadline(FileServer *s) {
        if (!s->deadline_source)
                return; /* stopping */
        if (!s->awaiting) {
                (void) sd_event_source_set_enabled(s->deadline_source, SD_EVENT_OFF);
                return;
        }
        if (sd_event_source_set_time(s->deadline_source, s->awaiting->deadline) < 0 ||
            sd_event_source_set_enabled(s->deadline_source, SD_EVENT_ONESHOT) < 0)
                log_group(LOG_WARNING, s->group_name, "File server: cannot arm its request deadline timer");
}

static void awaiting_remove(FileServer *s, Connection *c) {
        LIST_REMOVE_WITH_TAIL(s->awaiting, s->awaiting_tail, c);
        c->next = c->prev = NULL;
        c->deadline = 0;
}

/* From now, a whole request must arrive on c within the request timeout. */
static void connection_await_request(Connection *c) {
        FileServer *s = c->server;
        uint64_t now;

        if (c->deadline != 0)
                return;
        if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0)
                now = 0;
        c->deadline = now + FILESERVER_REQUEST_TIMEOUT_SEC * 1000ULL * 1000ULL;
        c->prev = s->awaiting_tail;
        if (s->awaiting_tail)
                s->awaiting_tail->next = c;
        else
                s->awaiting = c;
        s->awaiting_tail = c;
        if (s->awaiting == c)
                fileserver_arm_deadline(s);
}

/* A whole request is in: c is being answered, no deadline. */
static void connection_request_received(Connection *c) {
        FileServer *s = c->server;
        bool first;

        if (c->deadline == 0)
                return;
        first = s->awaiting == c;
        awaiting_remove(s, c);
        if (first)
                fileserver_arm_deadline(s);
}

/* Close every connection whose request is late. shutdown(), as MHD has no
 * call to close a connection from outside: MHD then reads EOF and closes it
 * on its next run; the fd stays MHD's until then. */
static int on_deadline(sd_event_source *source, uint64_t usec, void *userdata) {
        FileServer *s = userdata;
        Connection *c;
        uint64_t now;

        if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0)
                now = usec;
        while ((c = s->awaiting) && c->deadline <= now) {
                awaiting_remove(s, c);
                (void) shutdown(c->fd, SHUT_RDWR);
                s->n_request_timeouts++;
                if (log_due(s, &s->timeout_log_next))
                        log_group(LOG_DEBUG, s->group_name,
                                  "File server: closed a connection that sent no whole request within %u s (%" PRIu64
                                  " so far)",
                                  FILESERVER_REQUEST_TIMEOUT_SEC, s->n_request_timeouts);
        }
        fileserver_arm_deadline(s);
        fileserver_run(s);
        return 0;
}

/* MHD tells of each connection it starts and closes: track it, and start its
 * first request's deadline. */
static void on_connection(void *userdata, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        FileServer *s = userdata;
        const union MHD_ConnectionInfo *info;
        Connection *c;

        if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                s->n_connections--;
                c = *socket_context;
                if (!c)
                        return;
                connection_request_received(c);
                free(c);
                *socket_context = NULL;
                return;
        }

        s->n_connections++;
        info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = calloc(1, sizeof(*c));
        if (!c || !info) {
                /* Without a deadline it could be held open forever: drop it. */
                log_group(LOG_WARNING, s->group_name, "File server: cannot track a new connection; closing it");
                if (info)
                        (void) shutdown(info->connect_fd, SHUT_RDWR);
                free(c);
                return;
        }
        c->server = s;
        c->fd = info->connect_fd;
        *socket_context = c;
        connection_await_request(c);
}

/* MHD tells when a request is done, its response sent or not: on a kept-alive
 * connection the next request gets its own deadline. */
static void on_completed(void *userdata, struct MHD_Connection *mc, void **request,
                         enum MHD_RequestTerminationCode toe) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

        if (info && info->socket_context)
                connection_await_request(info->socket_context);
}

/* --- HTTP --------------------------------------------------------------- */

_printf_(2, 0) static void on_mhd_log(void *userdata, const char *fmt, va_list ap) {
        FileServer *s = userdata;
        char buf[512];
        size_t n;

        vsnprintf(buf, sizeof(buf), fmt, ap);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        log_group(LOG_DEBUG, s->group_name, "File server: %s", buf);
}

/* Queue a short text answer, with one extra header when name is set. */
static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text, const char *name,
                                    const char *value) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8") != MHD_YES ||
            (name && MHD_add_response_header(resp, name, value) != MHD_YES)) {
                MHD_destroy_response(resp);
                return MHD_NO;
        }
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* A body: length bytes of fd from offset, read with pread() as MHD asks. */
typedef struct FileBody {
        int fd;
        uint64_t offset;
} FileBody;

static ssize_t file_body_read(void *userdata, uint64_t pos, char *buf, size_t max) {
        FileBody *b = userdata;
        ssize_t n;

        do
                n = pread(b->fd, buf, max, (off_t) (b->offset + pos));
        while (n < 0 && errno == EINTR);
        /* A file that shrank or cannot be read: MHD drops the connection, so
         * the client sees a short body, never wrong bytes. */
        return n > 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void file_body_free(void *userdata) {
        FileBody *b = userdata;

        safe_close(b->fd);
        free(b);
}

/* MHD decodes %XX in the path before we see it; a %00 would cut the path
 * short at the NUL ("/x%00y" would be "/x"). Such a path stays undecoded, so
 * its '%' fails the name check: 404. */
static size_t unescape_path(void *userdata, struct MHD_Connection *c, char *s) {
        for (const char *p = s; (p = strchr(p, '%')); p++)
                if (p[1] == '0' && p[2] == '0')
                        return strlen(s);
        return MHD_http_unescape(s);
}

/* The file a request path names: /NAME or /sha256/HEX (MHD has decoded
 * %XX already, and cut off any query). Anything else is NULL. */
static ServedFile *lookup_path(FileServer *s, const char *url) {
        if (url[0] != '/')
                return NULL;
        url++;
        if (strncmp(url, "sha256/", 7) == 0 && sha256_hex_is_valid(url + 7))
                return find_file_by_sha256(s, url + 7);
        if (served_name_check(url, NULL) < 0)
                return NULL;
        return find_file(s, url);
}

/* Answer GET or HEAD for f: all of it, one range of it, or 416. */
static enum MHD_Result respond_file(FileServer *s, struct MHD_Connection *c, ServedFile *f, bool head) {
        char etag[sizeof(f->sha256) + 2], content_range[96];
        const char *range = NULL, *if_range;
        uint64_t first = 0, last = 0, length;
        struct MHD_Response *resp;
        enum MHD_Result ret;
        unsigned status;
        FileBody *body;

        snprintf(etag, sizeof(etag), "\"%s\"", f->sha256);
        /* Range is defined for GET only (RFC 9110 14.2); HEAD tells the whole size. */
        if (!head)
                range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
        /* If-Range: a range of this content only; anything else gets all of it. */
        if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
        if (range && if_range && !streq(if_range, etag))
                range = NULL;

        switch (http_range_parse(range, f->size, &first, &last)) {
        case HTTP_RANGE_UNSATISFIABLE:
                log_group(LOG_DEBUG, s->group_name, "File server: GET /%s Range \"%s\": 416", f->name, range);
                snprintf(content_range, sizeof(content_range), "bytes */%llu", (unsigned long long) f->size);
                return respond_text(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, "range not satisfiable\n",
                                    MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
        case HTTP_RANGE_PARTIAL:
                status = MHD_HTTP_PARTIAL_CONTENT;
                snprintf(content_range, sizeof(content_range), "bytes %llu-%llu/%llu", (unsigned long long) first,
                         (unsigned long long) last, (unsigned long long) f->size);
                length = last - first + 1;
                break;
        default:
                status = MHD_HTTP_OK;
                length = f->size;
                break;
        }
        log_group(LOG_DEBUG, s->group_name, "File server: %s /%s: %u, %llu bytes from %llu", head ? "HEAD" : "GET",
                  f->name, status, (unsigned long long) length, (unsigned long long) first);

        if (length == 0)
                resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        else {
                /* The response owns this dup; pread() leaves the shared offset alone. */
                body = malloc(sizeof(*body));
                if (!body)
                        return MHD_NO;
                body->offset = first;
                body->fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
                if (body->fd < 0) {
                        log_group_errno(LOG_WARNING, errno, s->group_name, "File server: cannot dup the fd of %s: %m",
                                        f->name);
                        free(body);
                        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot open the file\n", NULL, NULL);
                }
                resp = MHD_create_response_from_callback(length, RESPONSE_BLOCK, file_body_read, body,
                                                         file_body_free);
                if (!resp)
                        file_body_free(body);
        }
        if (!resp)
                return MHD_NO;
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream") != MHD_YES ||
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") != MHD_YES ||
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES ||
            (status == MHD_HTTP_PARTIAL_CONTENT &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, content_range) != MHD_YES)) {
                MHD_destroy_response(resp);
                return MHD_NO;
        }
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result on_request(void *userdata, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **request) {
        static int headers_seen;
        FileServer *s = userdata;
        const union MHD_ConnectionInfo *info;
        ServedFile *f;
        bool head;

        /* The first call has the headers only; answer once any body has been
         * read (and dropped), as MHD expects. */
        if (!*request) {
                *request = &headers_seen;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                *upload_data_size = 0;
                return MHD_YES;
        }

        /* The request is in whole: no more deadline, answering it may take long. */
        info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (info && info->socket_context)
                connection_request_received(info->socket_context);

        head = streq(method, MHD_HTTP_METHOD_HEAD);
        if (!head && !streq(method, MHD_HTTP_METHOD_GET)) {
                log_group(LOG_DEBUG, s->group_name, "File server: %s refused: 405", method);
                return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n",
                                    MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        }
        f = lookup_path(s, url);
        if (!f) {
                log_group(LOG_DEBUG, s->group_name, "File server: %s %s: 404", method, url);
                return respond_text(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL, NULL);
        }
        return respond_file(s, c, f, head);
}

/* Let MHD do what is due: accept, read, write, time out. */
static void fileserver_run(FileServer *s) {
        unsigned before = s->n_connections;

        if (MHD_run(s->mhd) != MHD_YES)
                log_group(LOG_WARNING, s->group_name, "File server: MHD_run() failed");
        /* At its connection limit MHD takes its listening socket out of its
         * epoll set, and puts it back only at the start of a run: once
         * connections closed, run again at once, or clients waiting in the
         * listen backlog would wait for some unrelated event or timeout. */
        fileserver_arm_timer(s, s->n_connections < before);
}

static int on_mhd_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        fileserver_run(userdata);
        return 0;
}

static int on_mhd_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        fileserver_run(userdata);
        return 0;
}

/* MHD says when it must run next even without I/O: connection timeouts, and
 * at once (0) when a connection has more it can do now; or at once anyway. */
static void fileserver_arm_timer(FileServer *s, bool at_once) {
        MHD_UNSIGNED_LONG_LONG ms = 0;
        uint64_t now;

        if (!at_once && MHD_get_timeout(s->mhd, &ms) != MHD_YES) {
                (void) sd_event_source_set_enabled(s->timer_source, SD_EVENT_OFF);
                return;
        }
        if (ms > 3600ULL * 1000ULL)
                ms = 3600ULL * 1000ULL;
        if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0 ||
            sd_event_source_set_time(s->timer_source, now + ms * 1000ULL) < 0 ||
            sd_event_source_set_enabled(s->timer_source, SD_EVENT_ONESHOT) < 0)
                log_group(LOG_WARNING, s->group_name, "File server: cannot arm its timer");
}

/* A listening TCP socket on [addr]:port. Returns the fd or -errno. */
static int listen_on(Manager *m, const struct in6_addr *addr, uint16_t port) {
        struct sockaddr_in6 sa = {
                .sin6_family = AF_INET6,
                .sin6_port = htons(port),
                .sin6_addr = *addr,
        };
        _cleanup_close_ int fd = -EBADF;
        int one = 1;

        fd = manager_guest_socket(m, AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return fd;
        /* IPV6_FREEBIND: the helper puts the address on lo before we get
         * here; not checking that again lets the daemon tests run with a
         * helper that changes no network (tests/daemon/fake-netadm.c). */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int fileserver_start(Group *g, FileServer **ret) {
        char addr[INET6_ADDRSTRLEN];
        const union MHD_DaemonInfo *info;
        FileServer *s;
        int fd, r;

        inet_ntop(AF_INET6, &g->addrs.files6, addr, sizeof(addr));

        s = calloc(1, sizeof(*s));
        if (!s)
                return log_oom();
        s->n_ref = 1;
        s->group = g;
        s->event = sd_event_ref(g->manager->event);
        s->workers = g->manager->workers;
        s->prefix6 = g->addrs.prefix6;
        s->gateway6 = g->addrs.gateway6;
        snprintf(s->url_base, sizeof(s->url_base), "http://[%s]:%u", addr, FILESERVER_PORT);
        s->group_name = strdup(g->name);
        if (!s->group_name || asprintf(&s->keep_dir, "%s/files", g->state_subdir) < 0) {
                s->keep_dir = NULL;
                r = log_oom();
                goto fail;
        }

        fd = listen_on(g->manager, &g->addrs.files6, FILESERVER_PORT);
        if (fd < 0) {
                r = log_group_errno(LOG_ERR, fd, g->name, "File server: cannot listen on [%s]:%u: %m", addr,
                                    FILESERVER_PORT);
                goto fail;
        }
        /* From here MHD owns the socket and closes it when stopped. */
        /* The logger first: MHD logs about options given before it elsewhere. */
        s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, on_accept, s, on_request, s,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                  MHD_OPTION_LISTEN_SOCKET, fd,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned) FILESERVER_MAX_CONNECTIONS,
                                  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) FILESERVER_MAX_CONNECTIONS_PER_SOURCE,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) FILESERVER_IDLE_TIMEOUT_SEC,
                                  MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                  MHD_OPTION_UNESCAPE_CALLBACK, unescape_path, s,
                                  MHD_OPTION_END);
        if (!s->mhd) {
                safe_close(fd);
                r = log_group_errno(LOG_ERR, EIO, g->name, "File server: libmicrohttpd did not start");
                goto fail;
        }
        info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                r = log_group_errno(LOG_ERR, EIO, g->name, "File server: libmicrohttpd has no epoll fd");
                goto fail;
        }
        r = sd_event_add_io(s->event, &s->io_source, info->epoll_fd, EPOLLIN, on_mhd_io, s);
        if (r >= 0)
                /* Accuracy 1 µs: a timeout of 0 means "now", not "within sd-event's default 250 ms". */
                r = sd_event_add_time(s->event, &s->timer_source, CLOCK_MONOTONIC, 0, 1, on_mhd_timer, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->timer_source, SD_EVENT_OFF);
        if (r >= 0)
                /* Accuracy 100 ms: a deadline of seconds need not be more exact. */
                r = sd_event_add_time(s->event, &s->deadline_source, CLOCK_MONOTONIC, 0, 100 * 1000, on_deadline, s);
        if (r >= 0)
                fileserver_arm_deadline(s);
        if (r < 0) {
                log_group_errno(LOG_ERR, r, g->name, "File server: cannot watch libmicrohttpd: %m");
                goto fail;
        }
        (void) sd_event_source_set_description(s->io_source, "fileserver-io");
        (void) sd_event_source_set_description(s->timer_source, "fileserver-timer");
        (void) sd_event_source_set_description(s->deadline_source, "fileserver-deadline");

        log_group(LOG_DEBUG, g->name, "File server listening on %s/", s->url_base);
        *ret = s;
        return 0;

fail:
        fileserver_stop(s);
        return r;
}

/* --- registration --------------------------------------------------------- */

static void hash_job_free(HashJob *j) {
        served_file_free(j->file);
        fileserver_unref(j->server);
        free(j);
}

static void jobs_remove(FileServer *s, HashJob *j) {
        LIST_REMOVE_WITH_TAIL(s->jobs, s->jobs_tail, j);
        j->next = j->prev = NULL;
        s->n_jobs--;
}

/* Write all of buf. Returns 0 or -errno. */
static int write_all(int fd, const uint8_t *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Pool thread: a hard link to the caller's file, so that a restarted
 * vmgrd serves the same bytes even if the caller deleted the file. Returns
 * 0, or -errno when a copy must be written instead (another file system,
 * a file we do not own, one already deleted). */
static int keep_link(HashJob *j) {
        char proc[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", j->file->fd);
        (void) unlink(j->file->keep_path);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, j->file->keep_path, AT_SYMLINK_FOLLOW) < 0)
                return -errno;
        return 0;
}

/* Runs on a pool thread: SHA-256 of the file's first size bytes, and the
 * kept copy (a link, or else these bytes written out as they are read).
 * Touches only the job's own file, which nothing else reads meanwhile but
 * its name. A kept copy that cannot be made is reported in keep_error:
 * the file is served all the same, only not across a vmgrd restart. */
static int hash_work(void *userdata) {
        HashJob *j = userdata;
        struct sha256_ctx ctx;
        uint8_t digest[SHA256_DIGEST_SIZE];
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int copy_fd = -EBADF;
        uint64_t off = 0;

        buf = malloc(HASH_CHUNK);
        if (!buf)
                return -ENOMEM;
        /* Made with the first file kept: a group that serves none has no such directory. */
        if (j->file->keep_path && mkdir(j->keep_dir, 0700) < 0 && errno != EEXIST) {
                (void) vmgr_error_printf(j->keep_error, sizeof(j->keep_error), -errno, "cannot create %s: %m",
                                         j->keep_dir);
                free(j->file->keep_path);
                j->file->keep_path = NULL;
        }
        if (j->file->keep_path && keep_link(j) < 0) {
                if (asprintf(&tmp, "%s.tmp", j->file->keep_path) < 0)
                        return -ENOMEM;
                copy_fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (copy_fd < 0)
                        (void) vmgr_error_printf(j->keep_error, sizeof(j->keep_error), -errno,
                                                 "cannot write %s: %m", tmp);
        }
        sha256_init(&ctx);
        while (off < j->file->size) {
                size_t want = j->file->size - off < HASH_CHUNK ? (size_t) (j->file->size - off) : HASH_CHUNK;
                ssize_t n = pread(j->file->fd, buf, want, (off_t) off);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0) {
                        j->short_read = true;
                        return -EIO;
                }
                sha256_update(&ctx, (size_t) n, buf);
                int w;

                if (copy_fd >= 0 && (w = write_all(copy_fd, buf, (size_t) n)) < 0) {
                        (void) vmgr_error_printf(j->keep_error, sizeof(j->keep_error), w,
                                                 "cannot write %s: %m", tmp);
                        copy_fd = safe_close(copy_fd);
                        (void) unlink(tmp);
                }
                off += (uint64_t) n;
        }
        sha256_digest(&ctx, sizeof(digest), digest);
        for (size_t i = 0; i < sizeof(digest); i++)
                snprintf(j->sha256 + 2 * i, 3, "%02x", digest[i]);
        if (copy_fd >= 0 && (fsync(copy_fd) < 0 || rename(tmp, j->file->keep_path) < 0)) {
                (void) vmgr_error_printf(j->keep_error, sizeof(j->keep_error), -errno, "cannot write %s: %m",
                                         j->file->keep_path);
                (void) unlink(tmp);
        }
        if (j->keep_error[0]) {
                free(j->file->keep_path);
                j->file->keep_path = NULL;
        }
        return 0;
}

static void hash_next(FileServer *s);

/* Tell the job's caller that it failed: error and a sentence made from fmt
 * (%m: error's words). */
_printf_(3, 4) static void hash_job_fail(HashJob *j, int error, const char *fmt, ...) {
        char message[FILESERVER_ERROR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vmgr_vsnprintf_error(message, sizeof(message), error, fmt, ap);
        va_end(ap);
        j->done(error, NULL, message, j->userdata);
}

/* Serve f from now on (it goes last in the list). */
static void files_append(FileServer *s, ServedFile *f) {
        f->prev = s->files_tail;
        if (s->files_tail)
                s->files_tail->next = f;
        else
                s->files = f;
        s->files_tail = f;
        s->n_files++;
}

static void hash_done(int result, void *userdata) {
        HashJob *j = userdata;
        FileServer *s = j->server;
        ServedFile *f = j->file;
        _cleanup_free_ char *url = NULL;

        jobs_remove(s, j);
        s->hashing = false;

        if ((!s->group || result < 0) && f->keep_path)
                (void) unlink(f->keep_path);
        if (!s->group) {
                hash_job_fail(j, -VMGR_ERR_BUSY, "group '%s' is being deleted", s->group_name);
        } else if (result < 0) {
                if (j->short_read)
                        hash_job_fail(j, -EIO,
                                      "cannot serve '%s': the file shrank below its size of %llu bytes while it "
                                      "was read",
                                      f->name, (unsigned long long) f->size);
                else
                        hash_job_fail(j, result, "cannot serve '%s': reading it failed: %m", f->name);
        } else if (asprintf(&url, "%s/%s", s->url_base, f->name) < 0) {
                url = NULL;
                hash_job_fail(j, -ENOMEM, "%m");
        } else {
                memcpy(f->sha256, j->sha256, sizeof(f->sha256));
                files_append(s, f);
                j->file = NULL;
                log_group(LOG_INFO, s->group_name, "Serving %s (%llu bytes, sha256 %s) at %s", f->name,
                          (unsigned long long) f->size, f->sha256, url);
                if (j->keep_error[0])
                        log_group(LOG_WARNING, s->group_name,
                                  "%s will not be served again after a vmgrd restart: %s", f->name, j->keep_error);
                (void) group_emit_changed(s->group, "ServedFiles", NULL);
                group_save(s->group);
                j->done(0, url, NULL, j->userdata);
        }

        if (s->group)
                hash_next(s);
        hash_job_free(j);
}

/* Hash the first waiting file, one at a time per server, so that one group
 * registering many large files holds at most one worker thread. */
static void hash_next(FileServer *s) {
        HashJob *j = s->jobs;
        int r;

        if (s->hashing || !j)
                return;
        r = worker_submit(s->workers, hash_work, hash_done, j);
        if (r < 0) {
                jobs_remove(s, j);
                hash_job_fail(j, r, "cannot serve '%s': %m", j->file->name);
                hash_job_free(j);
                hash_next(s);
                return;
        }
        s->hashing = true;
}

FileServer *fileserver_stop(FileServer *s) {
        HashJob *j, *next;

        if (!s)
                return NULL;
        s->io_source = sd_event_source_disable_unref(s->io_source);
        s->timer_source = sd_event_source_disable_unref(s->timer_source);
        s->deadline_source = sd_event_source_disable_unref(s->deadline_source);
        if (s->mhd) {
                /* Closes the socket and every connection (each one's close
                 * notification frees its Connection); responses close their fds. */
                MHD_stop_daemon(s->mhd);
                s->mhd = NULL;
                /* Once per group: the totals the rate-limited debug lines counted. */
                if (s->n_refused > 0 || s->n_request_timeouts > 0)
                        log_group(LOG_INFO, s->group_name,
                                  "File server stopped; it refused %" PRIu64
                                  " connections from outside the group's guests and closed %" PRIu64
                                  " that sent no whole request within %u s",
                                  s->n_refused, s->n_request_timeouts, FILESERVER_REQUEST_TIMEOUT_SEC);
                else
                        log_group(LOG_DEBUG, s->group_name, "File server stopped");
        }
        while (s->files) {
                ServedFile *f = s->files;
                s->files = f->next;
                served_file_free(f);
        }
        s->files_tail = NULL;
        s->n_files = 0;
        s->group = NULL;
        /* Waiting registrations fail now; the one on the pool when it is done. */
        for (j = s->jobs; j; j = next) {
                next = j->next;
                if (s->hashing && j == s->jobs)
                        continue;
                jobs_remove(s, j);
                hash_job_fail(j, -VMGR_ERR_BUSY, "group '%s' is being deleted", s->group_name);
                hash_job_free(j);
        }
        fileserver_unref(s);
        return NULL;
}

/* --- served files -------------------------------------------------------------- */

static const char *file_type_name(mode_t mode) {
        switch (mode & S_IFMT) {
        case S_IFDIR:
                return "a directory";
        case S_IFIFO:
                return "a pipe";
        case S_IFSOCK:
                return "a socket";
        case S_IFCHR:
                return "a character device";
        case S_IFBLK:
                return "a block device";
        default:
                return "not a regular file";
        }
}

int fileserver_serve(FileServer *s, const char *name, int fd, fileserver_serve_done_t done, void *userdata,
                     char *error, size_t error_size) {
        struct stat st;
        HashJob *j;
        int flags, r;

        if (name_is_taken(s, name)) {
                snprintf(error, error_size, "group '%s' already serves a file named '%s'; unserve it first",
                         s->group_name, name);
                return -VMGR_BUS_ERR_FILE_EXISTS;
        }
        if (s->n_files + s->n_jobs >= FILESERVER_MAX_FILES) {
                snprintf(error, error_size, "group '%s' already serves %u files, the limit", s->group_name,
                         FILESERVER_MAX_FILES);
                return -VMGR_ERR_LIMIT_EXCEEDED;
        }
        if (fstat(fd, &st) < 0) {
                return vmgr_error_printf(error, error_size, -errno, "cannot serve '%s': fstat: %m", name);
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(error, error_size, "cannot serve '%s': the fd is %s; only regular files can be served",
                         name, file_type_name(st.st_mode));
                return -EINVAL;
        }
        flags = fcntl(fd, F_GETFL);
        if (flags < 0) {
                return vmgr_error_printf(error, error_size, -errno, "cannot serve '%s': %m", name);
        }
        if ((flags & O_PATH) || (flags & O_ACCMODE) == O_WRONLY) {
                snprintf(error, error_size, "cannot serve '%s': the fd is not open for reading", name);
                return -EINVAL;
        }

        j = calloc(1, sizeof(*j));
        if (!j)
                goto oom;
        j->server = fileserver_ref(s);
        j->file = calloc(1, sizeof(ServedFile));
        if (!j->file) {
                hash_job_free(j);
                goto oom;
        }
        j->file->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        j->file->name = strdup(name);
        j->file->size = (uint64_t) st.st_size;
        if (asprintf(&j->file->keep_path, "%s/%s", s->keep_dir, name) < 0)
                j->file->keep_path = NULL;
        if (j->file->fd < 0 || !j->file->name || !j->file->keep_path) {
                r = j->file->fd < 0 ? -errno : -ENOMEM;
                hash_job_free(j);
                return vmgr_error_printf(error, error_size, r, "cannot serve '%s': %m", name);
        }
        j->done = done;
        j->userdata = userdata;
        j->keep_dir = s->keep_dir;

        j->prev = s->jobs_tail;
        if (s->jobs_tail)
                s->jobs_tail->next = j;
        else
                s->jobs = j;
        s->jobs_tail = j;
        s->n_jobs++;
        hash_next(s);
        return 0;

oom:
        return vmgr_error_printf(error, error_size, -ENOMEM, "%m");
}

int fileserver_unserve(FileServer *s, const char *name, char *error, size_t error_size) {
        ServedFile *f;

        f = find_file(s, name);
        if (!f) {
                if (name_is_taken(s, name)) {
                        snprintf(error, error_size, "'%s' is still being hashed; unserve it once ServeFile returned",
                                 name);
                        return -VMGR_ERR_BUSY;
                }
                snprintf(error, error_size, "group '%s' serves no file named '%s'", s->group_name, name);
                return -VMGR_BUS_ERR_FILE_NOT_FOUND;
        }

        LIST_REMOVE_WITH_TAIL(s->files, s->files_tail, f);
        s->n_files--;
        log_group(LOG_INFO, s->group_name, "No longer serving %s", f->name);
        if (f->keep_path && unlink(f->keep_path) < 0 && errno != ENOENT)
                log_group_errno(LOG_WARNING, errno, s->group_name, "Cannot remove %s: %m", f->keep_path);
        served_file_free(f);
        if (s->group) {
                (void) group_emit_changed(s->group, "ServedFiles", NULL);
                group_save(s->group);
        }
        return 0;
}

int fileserver_adopt(FileServer *s, const char *name, const char *sha256, uint64_t size, char *error,
                     size_t error_size) {
        ServedFile *f;
        struct stat st;

        if (name_is_taken(s, name) || strlen(sha256) != SHA256_DIGEST_SIZE * 2) {
                snprintf(error, error_size, "'%s' is served twice or has no valid SHA-256", name);
                return -EINVAL;
        }
        f = calloc(1, sizeof(*f));
        if (!f)
                return vmgr_error_printf(error, error_size, -ENOMEM, "%m");
        f->fd = -EBADF;
        f->name = strdup(name);
        if (!f->name || asprintf(&f->keep_path, "%s/%s", s->keep_dir, name) < 0) {
                f->keep_path = NULL;
                served_file_free(f);
                return vmgr_error_printf(error, error_size, -ENOMEM, "%m");
        }
        f->fd = open(f->keep_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (f->fd < 0 || fstat(f->fd, &st) < 0) {
                int r = vmgr_error_printf(error, error_size, -errno, "cannot open %s: %m", f->keep_path);
                served_file_free(f);
                return r;
        }
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size < size) {
                snprintf(error, error_size, "%s is no longer the %" PRIu64 "-byte file that was served", f->keep_path,
                         size);
                served_file_free(f);
                return -ESTALE;
        }
        /* The hash is the one taken when it was first served: the API says
         * the file must not change while served, and the copy is ours. */
        f->size = size;
        memcpy(f->sha256, sha256, sizeof(f->sha256));
        files_append(s, f);
        return 0;
}

int fileserver_foreach_file(FileServer *s, fileserver_file_cb cb, void *userdata) {
        int r;

        for (ServedFile *f = s ? s->files : NULL; f; f = f->next) {
                r = cb(f->name, f->sha256, f->size, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}
