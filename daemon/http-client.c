/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "http-client.h"
#include "macro.h"

/* curl has at most a few sockets per transfer open at once (happy
 * eyeballs: one per address family). */
#define HTTP_SOCKETS_MAX 8

typedef struct HttpSocket {
        curl_socket_t fd;
        sd_event_source *source;
} HttpSocket;

struct HttpRequest {
        sd_event *event;
        CURLM *multi;
        CURL *easy;
        sd_event_source *timer;
        HttpSocket sockets[HTTP_SOCKETS_MAX];
        struct curl_slist *headers;
        char *url, *interface;

        HttpSocketFunc open_socket;
        void *socket_userdata;
        unsigned keepalive_sec;
        uint64_t max_body, body_size, headers_size;
        HttpResponseFunc on_response;
        HttpBodyFunc on_body;
        HttpDoneFunc on_done;
        void *userdata;

        long status;
        bool running;           /* added to the multi handle, not finished */
        bool paused;            /* on_body asked to take its chunk later */
        int stop_error;         /* why a callback of ours stopped the transfer */
        char stop_text[128];
        int socket_error;       /* why open_socket failed */
        char error_buffer[CURL_ERROR_SIZE];
};

static bool curl_initialized;

static HttpSocket *socket_find(HttpRequest *r, curl_socket_t fd) {
        for (size_t i = 0; i < HTTP_SOCKETS_MAX; i++)
                if (r->sockets[i].source && r->sockets[i].fd == fd)
                        return &r->sockets[i];
        return NULL;
}

static void request_stop(HttpRequest *r, int error, const char *fmt, ...) _printf_(3, 4);

/* A callback of ours stops the transfer: remember why (the first reason wins). */
static void request_stop(HttpRequest *r, int error, const char *fmt, ...) {
        va_list ap;

        if (r->stop_error)
                return;
        r->stop_error = error;
        va_start(ap, fmt);
        vsnprintf(r->stop_text, sizeof(r->stop_text), fmt, ap);
        va_end(ap);
}

/* Map curl's result of a finished transfer to -errno and a phrase in text. */
static int result_to_error(HttpRequest *r, CURLcode code, char *text, size_t size) {
        long os_errno = 0;

        if (r->stop_error) {
                snprintf(text, size, "%s", r->stop_text);
                return r->stop_error;
        }
        if (code == CURLE_OK) {
                if (r->status >= 400) {
                        snprintf(text, size, "HTTP %ld", r->status);
                        return -EBADMSG;
                }
                snprintf(text, size, "HTTP %ld", r->status);
                return 0;
        }
        (void) curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
        if (code == CURLE_COULDNT_CONNECT && r->socket_error) {
                snprintf(text, size, "Cannot make a socket: %s", strerror(-r->socket_error));
                return r->socket_error;
        }
        if (code == CURLE_COULDNT_CONNECT && os_errno > 0) {
                snprintf(text, size, "%s", strerror((int) os_errno));
                return -(int) os_errno;
        }
        snprintf(text, size, "%s", r->error_buffer[0] ? r->error_buffer : curl_easy_strerror(code));
        switch (code) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        default:
                return -EIO;
        }
}

/* Collect finished transfers. Returns true if the request finished (and
 * on_done, which may have freed it, ran). */
static bool request_check_done(HttpRequest *r) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(r->multi, &left))) {
                char text[CURL_ERROR_SIZE + 64];
                int error;

                if (msg->msg != CURLMSG_DONE || msg->easy_handle != r->easy)
                        continue;
                error = result_to_error(r, msg->data.result, text, sizeof(text));
                /* Closes the connection (reuse is forbidden). */
                (void) curl_multi_remove_handle(r->multi, r->easy);
                r->running = false;
                (void) sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);
                if (r->on_done)
                        r->on_done(r, error, text, r->userdata);
                return true;
        }
        return false;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpRequest *r = userdata;
        int flags = 0, running;

        if (revents & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(r->multi, fd, flags, &running);
        (void) request_check_done(r);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HttpRequest *r = userdata;
        int running;

        (void) curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        (void) request_check_done(r);
        return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl waits for, or stop. */
static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        HttpRequest *r = userp;
        HttpSocket *hs = socket_find(r, fd);
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (hs) {
                        hs->source = sd_event_source_disable_unref(hs->source);
                        hs->fd = CURL_SOCKET_BAD;
                }
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;
        if (hs)
                return sd_event_source_set_io_events(hs->source, events) < 0 ? -1 : 0;
        for (size_t i = 0; i < HTTP_SOCKETS_MAX; i++)
                if (!r->sockets[i].source) {
                        if (sd_event_add_io(r->event, &r->sockets[i].source, fd, events, on_io, r) < 0)
                                return -1;
                        r->sockets[i].fd = fd;
                        return 0;
                }
        return -1;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be called after timeout_ms (-1: never). */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        HttpRequest *r = userp;
        uint64_t now;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(r->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_now(r->event, CLOCK_MONOTONIC, &now) < 0)
                return -1;
        /* Never call curl from here: the time source runs it from the loop. */
        if (sd_event_source_set_time(r->timer, now + (uint64_t) timeout_ms * 1000U) < 0 ||
            sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: our socket, close-on-exec, where the caller wants it. */
static curl_socket_t curl_open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
        HttpRequest *r = clientp;
        int fd;

        if (r->open_socket)
                fd = r->open_socket(a->family, a->socktype, a->protocol, r->socket_userdata);
        else {
                fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
                if (fd < 0)
                        fd = -errno;
        }
        if (fd < 0) {
                r->socket_error = fd;
                return CURL_SOCKET_BAD;
        }
        return fd;
}

/* CURLOPT_SOCKOPTFUNCTION: a dead peer is found after keepalive_sec * 4
 * at most (curl sets the idle time and interval, not the count). */
static int curl_sockopt_cb(void *clientp, curl_socket_t fd, curlsocktype purpose) {
        HttpRequest *r = clientp;
        int count = 3;

        if (r->keepalive_sec > 0)
                (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
        return CURL_SOCKOPT_OK;
}

/* CURLOPT_HEADERFUNCTION: count, and at the end of the headers tell the caller. */
static size_t curl_header_cb(char *buf, size_t size, size_t n, void *userdata) {
        HttpRequest *r = userdata;
        long status = 0;

        r->headers_size += n;
        if (r->headers_size > HTTP_HEADERS_MAX) {
                request_stop(r, -E2BIG, "the response headers are larger than %u bytes", HTTP_HEADERS_MAX);
                return 0;
        }
        if (!(n == 2 && buf[0] == '\r' && buf[1] == '\n') && !(n == 1 && buf[0] == '\n'))
                return n;
        (void) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200)
                return n; /* an interim response: the real one follows */
        r->status = status;
        if (r->on_response && r->on_response(r, status, r->userdata) < 0) {
                request_stop(r, -ECANCELED, "stopped after HTTP %ld", status);
                return 0;
        }
        return n;
}

/* CURLOPT_WRITEFUNCTION: a chunk of the body. */
static size_t curl_write_cb(char *buf, size_t size, size_t n, void *userdata) {
        HttpRequest *r = userdata;
        int k;

        r->body_size += n;
        if (r->max_body > 0 && r->body_size > r->max_body) {
                request_stop(r, -EFBIG, "the response is larger than %" PRIu64 " bytes", r->max_body);
                return 0;
        }
        k = r->on_body ? r->on_body(r, buf, n, r->userdata) : 0;
        if (k == HTTP_BODY_PAUSE) {
                /* curl keeps the chunk and hands it over again. */
                r->body_size -= n;
                r->paused = true;
                return CURL_WRITEFUNC_PAUSE;
        }
        if (k < 0) {
                request_stop(r, -ECANCELED, "stopped while reading the response");
                return 0;
        }
        return n;
}

/* Append each of headers (NULL-terminated, may be NULL) to *list. Returns 0 or -ENOMEM. */
static int headers_to_slist(const char *const *headers, struct curl_slist **list) {
        for (const char *const *h = headers; h && *h; h++) {
                struct curl_slist *l = curl_slist_append(*list, *h);
                if (!l)
                        return -ENOMEM;
                *list = l;
        }
        return 0;
}

/* Set the easy handle's options. Returns 0, or -EIO if curl refuses one. */
static int request_setup(HttpRequest *r, const HttpRequestOptions *o) {
        CURL *e = r->easy;
        bool ok = true;

#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
        SET(CURLOPT_URL, r->url);
        SET(CURLOPT_PROTOCOLS_STR, "http");
        SET(CURLOPT_REDIR_PROTOCOLS_STR, "http");
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_PROXY, "");
        SET(CURLOPT_NOPROXY, "*");
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        SET(CURLOPT_HTTP_CONTENT_DECODING, 0L);
        SET(CURLOPT_FORBID_REUSE, 1L);
        SET(CURLOPT_ERRORBUFFER, r->error_buffer);
        SET(CURLOPT_HEADERFUNCTION, curl_header_cb);
        SET(CURLOPT_HEADERDATA, r);
        SET(CURLOPT_WRITEFUNCTION, curl_write_cb);
        SET(CURLOPT_WRITEDATA, r);
        SET(CURLOPT_OPENSOCKETFUNCTION, curl_open_socket_cb);
        SET(CURLOPT_OPENSOCKETDATA, r);
        SET(CURLOPT_SOCKOPTFUNCTION, curl_sockopt_cb);
        SET(CURLOPT_SOCKOPTDATA, r);
        if (r->headers)
                SET(CURLOPT_HTTPHEADER, r->headers);
        if (r->interface)
                SET(CURLOPT_INTERFACE, r->interface);
        if (o->connect_timeout_usec > 0)
                SET(CURLOPT_CONNECTTIMEOUT_MS, (long) MIN(o->connect_timeout_usec / 1000U + 1U, (uint64_t) LONG_MAX));
        if (o->timeout_usec > 0)
                SET(CURLOPT_TIMEOUT_MS, (long) MIN(o->timeout_usec / 1000U + 1U, (uint64_t) LONG_MAX));
        if (o->keepalive_sec > 0) {
                SET(CURLOPT_TCP_KEEPALIVE, 1L);
                SET(CURLOPT_TCP_KEEPIDLE, (long) o->keepalive_sec);
                SET(CURLOPT_TCP_KEEPINTVL, (long) o->keepalive_sec);
        }
#undef SET
        return ok ? 0 : -EIO;
}

int http_request_start(sd_event *event, const HttpRequestOptions *o, HttpRequest **ret) {
        HttpRequest *r;
        int k;

        if (!o->url || strncmp(o->url, "http://", strlen("http://")) != 0)
                return -EINVAL;
        if (!curl_initialized) {
                /* Once, on the event loop's thread, before any other curl call. */
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -ENOMEM;
                curl_initialized = true;
        }

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        for (size_t i = 0; i < HTTP_SOCKETS_MAX; i++)
                r->sockets[i].fd = CURL_SOCKET_BAD;
        r->event = sd_event_ref(event);
        r->open_socket = o->open_socket;
        r->socket_userdata = o->socket_userdata;
        r->keepalive_sec = o->keepalive_sec;
        r->max_body = o->max_body;
        r->on_response = o->on_response;
        r->on_body = o->on_body;
        r->on_done = o->on_done;
        r->userdata = o->userdata;

        k = -ENOMEM;
        r->url = strdup(o->url);
        if (!r->url)
                goto fail;
        /* "host!" makes curl bind to the address, never look up an interface of that name. */
        if (o->source_address && asprintf(&r->interface, "host!%s", o->source_address) < 0) {
                r->interface = NULL;
                goto fail;
        }
        if (headers_to_slist(o->headers, &r->headers) < 0)
                goto fail;
        r->multi = curl_multi_init();
        r->easy = curl_easy_init();
        if (!r->multi || !r->easy)
                goto fail;
        k = sd_event_add_time(event, &r->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timer, r);
        if (k < 0)
                goto fail;
        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);

        k = -EIO;
        if (curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
            curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r) != CURLM_OK ||
            curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
            curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r) != CURLM_OK)
                goto fail;
        k = request_setup(r, o);
        if (k < 0)
                goto fail;
        /* Arms the timer (curl asks for a call at once): the transfer starts
         * from the event loop, never in here. */
        if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK) {
                k = -ENOMEM;
                goto fail;
        }
        r->running = true;
        *ret = r;
        return 0;

fail:
        http_request_free(r);
        return k;
}

HttpRequest *http_request_free(HttpRequest *r) {
        if (!r)
                return NULL;
        /* curl closes its sockets here and tells curl_socket_cb, which
         * drops their io sources; any left over go after. */
        if (r->running)
                (void) curl_multi_remove_handle(r->multi, r->easy);
        if (r->easy)
                curl_easy_cleanup(r->easy);
        if (r->multi)
                curl_multi_cleanup(r->multi);
        for (size_t i = 0; i < HTTP_SOCKETS_MAX; i++)
                r->sockets[i].source = sd_event_source_disable_unref(r->sockets[i].source);
        sd_event_source_disable_unref(r->timer);
        curl_slist_free_all(r->headers);
        free(r->url);
        free(r->interface);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

int http_request_resume(HttpRequest *r) {
        if (!r->running || !r->paused)
                return 0;
        r->paused = false;
        /* curl asks for a timeout of 0 through curl_timer_cb: the rest
         * happens from the loop (or right here, for the chunk it kept). */
        return curl_easy_pause(r->easy, CURLPAUSE_CONT) == CURLE_OK ? 0 : -EIO;
}

long http_request_status(const HttpRequest *r) {
        return r->status;
}

const char *http_request_header(HttpRequest *r, const char *name) {
        struct curl_header *h;

        if (curl_easy_header(r->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
                return NULL;
        return h->value;
}
