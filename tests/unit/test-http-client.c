/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/http-client.c against tests/http-test-server.py on loopback (in a
 * network namespace of its own when run as root): streaming, status,
 * headers both ways, the source address, a socket made by the caller, and
 * a server that misbehaves (redirects, endless headers or body, a stall,
 * an unasked-for gzip body, a refused connection), while the event loop
 * keeps running other requests.
 */

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http-client.h"
#include "macro.h"
#include "test.h"

typedef struct Result {
        bool done;
        int error;
        char text[512];
        long status;
        char body[4096];
        size_t body_len;
        uint64_t body_total;
        unsigned chunks;
        char served_by[64];
        unsigned sockets_made;
        uint64_t done_usec;
} Result;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static int on_response(HttpRequest *r, long status, void *userdata) {
        Result *res = userdata;
        const char *v = http_request_header(r, "X-Served-By");

        res->status = status;
        CHECK(http_request_status(r) == status);
        snprintf(res->served_by, sizeof(res->served_by), "%s", v ? v : "");
        return 0;
}

static int on_body(HttpRequest *r, const void *data, size_t n, void *userdata) {
        Result *res = userdata;
        size_t k = MIN(n, sizeof(res->body) - 1 - res->body_len);

        memcpy(res->body + res->body_len, data, k);
        res->body_len += k;
        res->body[res->body_len] = 0;
        res->body_total += n;
        res->chunks++;
        return 0;
}

static void on_done(HttpRequest *r, int error, const char *text, void *userdata) {
        Result *res = userdata;

        res->done = true;
        res->error = error;
        res->done_usec = now_usec();
        snprintf(res->text, sizeof(res->text), "%s", text);
}

static int make_socket(int family, int type, int protocol, void *userdata) {
        Result *res = userdata;
        int fd = socket(family, type | SOCK_CLOEXEC, protocol);

        res->sockets_made++;
        return fd < 0 ? -errno : fd;
}

static int port;
static int server_stdout = -1;

/* Run one request to path on the server to its end. */
static void run(sd_event *e, const char *path, HttpRequestOptions o, Result *res) {
        char url[256];
        HttpRequest *r;

        memset(res, 0, sizeof(*res));
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", port, path);
        o.url = url;
        o.on_response = on_response;
        o.on_body = on_body;
        o.on_done = on_done;
        o.userdata = res;
        CHECK(http_request_start(e, &o, &r) == 0);
        /* Never finished from within start. */
        CHECK(!res->done);
        while (!res->done)
                CHECK(sd_event_run(e, UINT64_MAX) >= 0);
        fprintf(stderr, "%s: error %d (%s), status %ld, %zu bytes\n", path, res->error, res->text, res->status,
                (size_t) res->body_total);
        http_request_free(r);
}

/* The server, in a child; its port into `port`. */
static pid_t server_start(const char *script) {
        int p[2];
        pid_t pid;
        char buf[32] = {};

        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                dup2(p[1], STDOUT_FILENO);
                execlp("python3", "python3", script, "127.0.0.1", (char *) NULL);
                _exit(127);
        }
        close(p[1]);
        /* Up to the newline; the pipe stays open, so that the server never
         * writes into a closed one (it may write the newline apart). */
        for (size_t n = 0; !strchr(buf, '\n');) {
                ssize_t k = read(p[0], buf + n, sizeof(buf) - 1 - n);
                CHECK(k > 0);
                n += (size_t) k;
        }
        server_stdout = p[0];
        port = atoi(buf);
        CHECK(port > 0);
        return pid;
}

/* As root: a network namespace of our own with lo up, so nothing leaves it. */
static void private_loopback(void) {
        struct ifreq ifr = {};
        int fd;

        if (geteuid() != 0)
                return;
        CHECK(unshare(CLONE_NEWNET) == 0);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        CHECK(ioctl(fd, SIOCGIFFLAGS, &ifr) == 0);
        ifr.ifr_flags |= IFF_UP;
        CHECK(ioctl(fd, SIOCSIFFLAGS, &ifr) == 0);
        close(fd);
}

int main(int argc, char **argv) {
        sd_event *e = NULL;
        Result res, stall, ok;
        HttpRequest *rs, *ro;
        char url[256];
        pid_t server;
        const char *hdrs[] = { "X-Test: forty-two", NULL };

        CHECK(argc == 2);
        private_loopback();
        signal(SIGPIPE, SIG_IGN);
        server = server_start(argv[1]);
        CHECK(sd_event_default(&e) >= 0);

        /* Only http:// is spoken. */
        CHECK(http_request_start(e, &(HttpRequestOptions) { .url = "https://127.0.0.1/" }, &rs) == -EINVAL);
        CHECK(http_request_start(e, &(HttpRequestOptions) { .url = "file:///etc/passwd" }, &rs) == -EINVAL);

        /* A plain GET: status, a response header, request headers, the
         * source address bound, the caller's socket. */
        run(e, "ok", (HttpRequestOptions) { .headers = hdrs, .source_address = "127.0.0.2", .open_socket = make_socket,
                                            .socket_userdata = &res }, &res);
        CHECK(res.error == 0);
        CHECK(res.status == 200);
        CHECK_STREQ(res.served_by, "http-test-server");
        CHECK_STREQ(res.body, "peer=127.0.0.2 x-test=forty-two range=\n");
        /* run() cleared res before the request: sockets_made counts this one. */
        CHECK(res.sockets_made == 1);

        /* A streamed body arrives in pieces as it is sent. */
        run(e, "chunked", (HttpRequestOptions) {}, &res);
        CHECK(res.error == 0);
        CHECK(res.chunks >= 2);
        CHECK(strncmp(res.body, "chunk 0\nchunk 1\n", 16) == 0);
        CHECK(strstr(res.body, "chunk 9\n"));

        /* An error status is an error, with the status in the text. */
        run(e, "status503", (HttpRequestOptions) {}, &res);
        CHECK(res.error == -EBADMSG);
        CHECK(res.status == 503);
        CHECK_STREQ(res.text, "HTTP 503");

        /* A redirect is not followed (its target would be refused). */
        run(e, "redirect", (HttpRequestOptions) {}, &res);
        CHECK(res.error == 0);
        CHECK(res.status == 302);
        CHECK_STREQ(res.body, "moved");

        /* A body nobody asked to be compressed is handed over as it came. */
        run(e, "gzip", (HttpRequestOptions) {}, &res);
        CHECK(res.error == 0);
        CHECK(res.body_total < 100000);
        CHECK((unsigned char) res.body[0] == 0x1f && (unsigned char) res.body[1] == 0x8b);

        /* Headers without end: stopped at HTTP_HEADERS_MAX. */
        run(e, "bigheaders", (HttpRequestOptions) {}, &res);
        CHECK(res.error == -E2BIG);
        CHECK(res.status == 0);

        /* A body without end: stopped at max_body. */
        run(e, "endless", (HttpRequestOptions) { .max_body = 1024 * 1024 }, &res);
        CHECK(res.error == -EFBIG);
        CHECK(res.body_total <= 1024 * 1024);
        CHECK(strstr(res.text, "larger than 1048576 bytes"));

        /* A callback stops a request. */
        /* (on_body returning < 0 is the same path as max_body.) */

        /* Nothing listens: refused, with the system's words. */
        {
                Result r2;
                HttpRequest *rr;

                memset(&r2, 0, sizeof(r2));
                CHECK(http_request_start(e,
                                         &(HttpRequestOptions) { .url = "http://127.0.0.1:1/",
                                                                 .connect_timeout_usec = 2000000,
                                                                 .on_done = on_done,
                                                                 .userdata = &r2 },
                                         &rr) == 0);
                while (!r2.done)
                        CHECK(sd_event_run(e, UINT64_MAX) >= 0);
                fprintf(stderr, "refused: %d (%s)\n", r2.error, r2.text);
                CHECK(r2.error == -ECONNREFUSED);
                CHECK_STREQ(r2.text, "Connection refused");
                http_request_free(rr);
        }

        /* A stalled server blocks nothing: another request completes while
         * it stalls, and the stalled one ends at its timeout. */
        memset(&stall, 0, sizeof(stall));
        memset(&ok, 0, sizeof(ok));
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/stall", port);
        CHECK(http_request_start(e,
                                 &(HttpRequestOptions) { .url = url, .timeout_usec = 1500000, .on_body = on_body,
                                                         .on_done = on_done, .userdata = &stall },
                                 &rs) == 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", port);
        CHECK(http_request_start(e, &(HttpRequestOptions) { .url = url, .on_body = on_body, .on_done = on_done, .userdata = &ok },
                                 &ro) == 0);
        {
                uint64_t start = now_usec();
                while (!stall.done)
                        CHECK(sd_event_run(e, UINT64_MAX) >= 0);
                CHECK(ok.done && ok.error == 0);
                CHECK(ok.done_usec < stall.done_usec);
                CHECK(stall.error == -ETIMEDOUT);
                CHECK(now_usec() - start >= 1400000);
        }
        http_request_free(ro);

        /* Freed while running: no callback, nothing left behind (ASan). */
        memset(&stall, 0, sizeof(stall));
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/stall", port);
        CHECK(http_request_start(e, &(HttpRequestOptions) { .url = url, .on_done = on_done, .userdata = &stall }, &ro) == 0);
        for (int i = 0; i < 20; i++)
                CHECK(sd_event_run(e, 10000) >= 0);
        http_request_free(ro);
        CHECK(!stall.done);

        /* rs (the stalled one, done) freed after its on_done, as a caller may. */
        http_request_free(rs);

        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
        close(server_stdout);
        sd_event_unref(e);
        TEST_DONE();
}
