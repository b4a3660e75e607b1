/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One HTTP GET on sd-event, with libcurl's multi socket interface: curl's
 * sockets are sd-event io sources and its timeout one sd-event time source,
 * so nothing blocks and no thread is made, however slowly the server
 * answers. Each request has its own curl multi handle (requests share no
 * connection: vmgrd's requests go to different guests).
 *
 * The server may be hostile (a guest): only http:// is spoken, redirects are
 * not followed, no proxy is used whatever the environment says, no content
 * encoding is undone (no decompression bombs), the response headers are
 * capped at HTTP_HEADERS_MAX bytes and the body at max_body if given. The
 * body is handed over in chunks as it arrives and never kept.
 *
 * Callbacks: on_response once the headers are complete, on_body for each
 * chunk, then on_done once, always, unless the request is freed first.
 * on_response and on_body run inside curl: they must not free the request
 * (return < 0 to stop it instead: on_done follows). on_done may free it.
 * on_done is never called from http_request_start().
 */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Bytes of response headers (status line included) accepted. */
#define HTTP_HEADERS_MAX (64U * 1024U)

typedef struct HttpRequest HttpRequest;

/* Makes a socket for a connection in place of socket(family, type,
 * protocol), e.g. in another network namespace. Returns the fd
 * (close-on-exec) or -errno. */
typedef int (*HttpSocketFunc)(int family, int type, int protocol, void *userdata);
/* The response's headers are complete; status is the HTTP status (1xx
 * responses are skipped). Return < 0 to stop the request. */
typedef int (*HttpResponseFunc)(HttpRequest *r, long status, void *userdata);
/* A chunk of the body. Return 0 when it was taken, HTTP_BODY_PAUSE to
 * take it later (nothing more is read until http_request_resume(), which
 * hands it over again), or < 0 to stop the request. */
typedef int (*HttpBodyFunc)(HttpRequest *r, const void *data, size_t size, void *userdata);
#define HTTP_BODY_PAUSE 1
/* The request ended: error 0 when the whole response arrived with a status
 * below 400; otherwise -errno (-ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT,
 * -ECONNRESET, -EFBIG past max_body, -E2BIG past HTTP_HEADERS_MAX, -EBADMSG
 * for a status of 400 or more, -ECANCELED when a callback stopped it, -EIO)
 * and text, a short phrase saying what happened ("Connection refused",
 * "HTTP 503"). text is valid during the call only. */
typedef void (*HttpDoneFunc)(HttpRequest *r, int error, const char *text, void *userdata);

typedef struct HttpRequestOptions {
        const char *url;                /* http:// only */
        const char *const *headers;     /* "Name: value" each, NULL-terminated; may be NULL */
        const char *source_address;     /* numeric address to bind connections to; NULL: any */
        HttpSocketFunc open_socket;     /* NULL: socket() in vmgrd's own network namespace */
        void *socket_userdata;
        uint64_t connect_timeout_usec;  /* 0: curl's default (300 s) */
        uint64_t timeout_usec;          /* the whole request; 0: none */
        uint64_t max_body;              /* bytes; 0: no limit */
        unsigned keepalive_sec;         /* TCP keepalive: idle time and probe interval, 3 probes; 0: off */
        HttpResponseFunc on_response;   /* may be NULL */
        HttpBodyFunc on_body;           /* may be NULL: the body is dropped */
        HttpDoneFunc on_done;           /* may be NULL */
        void *userdata;
} HttpRequestOptions;

/* Start a GET as o says (o and its strings are copied). Returns 0 and the
 * request, -EINVAL (no URL, or not http://), -ENOMEM, or -EIO if curl
 * refuses an option (a libcurl without http). */
int http_request_start(sd_event *e, const HttpRequestOptions *o, HttpRequest **ret);

/* Stop the request if it still runs (on_done is not called), close its
 * connection and free it. Returns NULL; NULL is fine. */
HttpRequest *http_request_free(HttpRequest *r);

/* Read on after on_body returned HTTP_BODY_PAUSE: the chunk it did not
 * take comes again, maybe from within this call. Call it from the event
 * loop (a timer), never from a callback of r. Returns 0, or -EIO if curl
 * failed (on_done follows). */
int http_request_resume(HttpRequest *r);

/* The response's HTTP status, or 0 before its headers arrived. */
long http_request_status(const HttpRequest *r);

/* The value of the response header name (the first one if repeated), or
 * NULL; valid until the next callback. */
const char *http_request_header(HttpRequest *r, const char *name);
