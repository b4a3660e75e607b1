/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Readiness stages (which apply to a spec, which is missing first) and the
 * host probes of daemon/host-probe.c against loopback: a refused TCP connect
 * is the probe's last error and the probe goes on until a listener appears;
 * the address check passes on a refusal; a ping of ::1 passes where ping
 * sockets are allowed; a silent peer (TCP or HTTP) ends each attempt at its
 * deadline without stopping the loop; HTTP passes on the wanted status only,
 * and endless headers never pass. */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dnsmasq.h"
#include "host-probe.h"
#include "macro.h"
#include "manager.h"
#include "spec.h"
#include "test.h"
#include "vm.h"

static void stages(void) {
        uint64_t timings[_VM_STAGE_MAX];
        char error[VMGR_SPEC_ERROR_MAX];
        VmgrVMSpec spec;

        for (size_t i = 0; i < _VM_STAGE_MAX; i++)
                timings[i] = VM_STAGE_NOT_YET;

        /* The default guest: its agent, no probes. */
        CHECK(vmgr_vm_spec_parse("", "v", &spec, error) == 0);
        CHECK(vm_stage_applies(&spec, VM_STAGE_AGENT_CONNECTED));
        CHECK(!vm_stage_applies(&spec, VM_STAGE_HOST_PROBE_PASSED));
        CHECK(!vm_stage_applies(&spec, VM_STAGE_CONSOLE_MATCHED));
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_QEMU_STARTED);
        timings[VM_STAGE_QEMU_STARTED] = 1;
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_AGENT_CONNECTED);
        timings[VM_STAGE_AGENT_CONNECTED] = 2;
        timings[VM_STAGE_IPV6_CONFIGURED] = 3;
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_READY);
        vmgr_vm_spec_done(&spec);

        /* Without the agent: agent_connected is skipped; the probes and the
         * console come in their order. */
        CHECK(vmgr_vm_spec_parse("{\"agent\": false, \"ipv4\": true, \"ready_probe_host\": {\"tcp\": 22},"
                                 " \"ready_console\": \"login:\"}",
                                 "v", &spec, error) == 0);
        for (size_t i = 0; i < _VM_STAGE_MAX; i++)
                timings[i] = VM_STAGE_NOT_YET;
        timings[VM_STAGE_QEMU_STARTED] = 1;
        CHECK(!vm_stage_applies(&spec, VM_STAGE_AGENT_CONNECTED));
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_IPV6_CONFIGURED);
        timings[VM_STAGE_IPV6_CONFIGURED] = 2;
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_IPV4_LEASED);
        timings[VM_STAGE_IPV4_LEASED] = 3;
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_HOST_PROBE_PASSED);
        timings[VM_STAGE_CONSOLE_MATCHED] = 4;
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_HOST_PROBE_PASSED);
        timings[VM_STAGE_HOST_PROBE_PASSED] = 5;
        CHECK(vm_stage_missing(&spec, timings) == VM_STAGE_READY);
        vmgr_vm_spec_done(&spec);

        CHECK_STREQ(vm_stage_to_string(VM_STAGE_HOST_PROBE_PASSED), "host_probe_passed");
        CHECK_STREQ(vm_stage_to_string(VM_STAGE_CONSOLE_MATCHED), "console_matched");
        for (VMStage s = 0; s < _VM_STAGE_MAX; s++)
                CHECK(vm_stage_to_string(s));
        CHECK(!vm_stage_to_string(_VM_STAGE_MAX));
}

static void on_passed(HostProbe *p, void *userdata) {
        (*(unsigned *) userdata)++;
}

/* Every 100 ms: counts the turns of a loop that no probe blocks. */
static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        (*(unsigned *) userdata)++;
        return sd_event_source_set_time_relative(s, 100 * 1000);
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/* Run the loop until *flag is set or usec have passed. */
static void run_until(sd_event *e, const unsigned *flag, uint64_t usec) {
        uint64_t end = now_usec() + usec;

        while (!*flag && now_usec() < end)
                CHECK(sd_event_run(e, 50 * 1000) >= 0);
}

/* A TCP socket on [::1]:port (0: any), listening if listen_too. Returns the fd. */
static int tcp_on_loopback(uint16_t *port, int listen_too) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT,
                                   .sin6_port = htons(*port) };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

        CHECK(fd >= 0);
        CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
        CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        CHECK(getsockname(fd, (struct sockaddr *) &sa, &len) == 0);
        *port = ntohs(sa.sin6_port);
        if (listen_too)
                CHECK(listen(fd, 4) == 0);
        return fd;
}

/* A probe against [::1] from [::1]. */
static HostProbe *probe_new(Manager *m, const HostProbeOptions *o, unsigned *passed) {
        HostProbe *p = NULL;

        CHECK(host_probe_new(m, o, &in6addr_loopback, &in6addr_loopback, on_passed, passed, &p) == 0);
        return p;
}

/* A one-shot HTTP server on the loop: each connection is accepted, its
 * request ignored, and answer written (all of it, as fast as the peer
 * reads), then closed; answer NULL: never a byte (a silent guest). */
typedef struct Server {
        int listen_fd, fd;
        sd_event_source *accept_source, *write_source;
        const char *answer;
        size_t len, off;
} Server;

static void server_close_conn(Server *sv) {
        sv->write_source = sd_event_source_disable_unref(sv->write_source);
        if (sv->fd >= 0)
                close(sv->fd);
        sv->fd = -1;
}

static int on_server_write(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Server *sv = userdata;
        char buf[4096];

        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) > 0)
                ;
        if (n == 0) { /* the probe has gone */
                server_close_conn(sv);
                return 0;
        }
        if (!sv->answer)
                return 0;
        while (sv->off < sv->len) {
                n = write(fd, sv->answer + sv->off, sv->len - sv->off);
                if (n <= 0) {
                        if (n < 0 && errno == EAGAIN)
                                return 0;
                        break;
                }
                sv->off += (size_t) n;
        }
        server_close_conn(sv);
        return 0;
}

static int on_server_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Server *sv = userdata;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0)
                return 0;
        server_close_conn(sv);
        sv->fd = c;
        sv->off = 0;
        CHECK(sd_event_add_io(sd_event_source_get_event(s), &sv->write_source, c,
                              sv->answer ? EPOLLIN | EPOLLOUT : EPOLLIN, on_server_write, sv) >= 0);
        return 0;
}

static void server_start(sd_event *e, Server *sv, const char *answer, size_t len, uint16_t *port) {
        *sv = (Server) { .fd = -1, .answer = answer, .len = len };
        *port = 0;
        sv->listen_fd = tcp_on_loopback(port, 1);
        CHECK(sd_event_add_io(e, &sv->accept_source, sv->listen_fd, EPOLLIN, on_server_accept, sv) >= 0);
}

static void server_stop(Server *sv) {
        server_close_conn(sv);
        sv->accept_source = sd_event_source_disable_unref(sv->accept_source);
        close(sv->listen_fd);
}

static void http_probes(Manager *m) {
        static const char ok200[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        static const char ok204[] = "HTTP/1.1 204 No Content\r\n\r\n";
        HostProbe *p;
        Server sv;
        unsigned passed = 0, never = 0;
        uint16_t port;
        char want[128];
        _cleanup_free_ char *huge = NULL;
        size_t huge_len = 0;

        /* 200 where 204 is wanted: not ready, and the error says both. */
        server_start(m->event, &sv, ok200, strlen(ok200), &port);
        p = probe_new(m, &(HostProbeOptions) { .kind = HOST_PROBE_HTTP, .port = port, .http_path = "/health",
                                               .http_status = 204 },
                      &passed);
        run_until(m->event, &never, 1200 * 1000);
        CHECK(passed == 0);
        snprintf(want, sizeof(want), "http port %u GET /health: HTTP 200, not 204", port);
        CHECK_STREQ(host_probe_last_error(p), want);
        p = host_probe_free(p);
        server_stop(&sv);

        /* The status wanted: passes. */
        server_start(m->event, &sv, ok204, strlen(ok204), &port);
        p = probe_new(m, &(HostProbeOptions) { .kind = HOST_PROBE_HTTP, .port = port, .http_path = "/",
                                               .http_status = 204 },
                      &passed);
        run_until(m->event, &passed, 2000 * 1000);
        CHECK(passed == 1);
        p = host_probe_free(p);
        server_stop(&sv);

        /* A server that accepts and never answers: each attempt ends at its deadline. */
        passed = 0;
        server_start(m->event, &sv, NULL, 0, &port);
        p = probe_new(m, &(HostProbeOptions) { .kind = HOST_PROBE_HTTP, .port = port, .http_path = "/",
                                               .http_status = 200 },
                      &passed);
        run_until(m->event, &never, 1300 * 1000);
        CHECK(passed == 0);
        snprintf(want, sizeof(want), "http port %u GET /: no answer within 1.0 s", port);
        CHECK_STREQ(host_probe_last_error(p), want);
        p = host_probe_free(p);
        server_stop(&sv);

        /* Headers without end (1 MiB of them, then the status wanted would
         * follow): refused past the client's cap, never passing. */
        huge = malloc(1024 * 1024 + 64);
        CHECK(huge);
        huge_len = (size_t) sprintf(huge, "HTTP/1.1 200 OK\r\n");
        while (huge_len < 1024 * 1024)
                huge_len += (size_t) sprintf(huge + huge_len, "X-Pad: %050d\r\n", 0);
        huge_len += (size_t) sprintf(huge + huge_len, "\r\n");
        server_start(m->event, &sv, huge, huge_len, &port);
        p = probe_new(m, &(HostProbeOptions) { .kind = HOST_PROBE_HTTP, .port = port, .http_path = "/",
                                               .http_status = 200 },
                      &passed);
        run_until(m->event, &never, 1300 * 1000);
        fprintf(stderr, "huge headers: %s\n", host_probe_last_error(p));
        CHECK(passed == 0);
        snprintf(want, sizeof(want), "http port %u GET /: ", port);
        CHECK(strncmp(host_probe_last_error(p), want, strlen(want)) == 0);
        p = host_probe_free(p);
        server_stop(&sv);
}

static void probes(void) {
        Manager m = {};
        HostProbe *p = NULL;
        unsigned passed = 0;
        uint16_t port = 0;
        int fd;

        CHECK(sd_event_new(&m.event) >= 0);
        (void) p;

        /* A port nobody listens on: refused, again and again. */
        fd = tcp_on_loopback(&port, 0);
        p = probe_new(&m, &(HostProbeOptions) { .kind = HOST_PROBE_TCP, .port = port }, &passed);
        CHECK_STREQ(host_probe_last_error(p), "");
        run_until(m.event, &passed, 1200 * 1000);
        CHECK(passed == 0);
        {
                char want[64];
                snprintf(want, sizeof(want), "tcp port %u: connection refused", port);
                CHECK_STREQ(host_probe_last_error(p), want);
        }
        /* Once something listens, the next attempt passes, once. */
        CHECK(listen(fd, 4) == 0);
        run_until(m.event, &passed, 3000 * 1000);
        CHECK(passed == 1);
        CHECK_STREQ(host_probe_last_error(p), "");
        run_until(m.event, &passed, 700 * 1000);
        CHECK(passed == 1);
        p = host_probe_free(p);
        close(fd);

        /* The address check: a refusal is an answer. */
        passed = 0;
        port = 0;
        fd = tcp_on_loopback(&port, 0);
        p = probe_new(&m, &(HostProbeOptions) { .kind = HOST_PROBE_ADDRESS, .port = port }, &passed);
        run_until(m.event, &passed, 2000 * 1000);
        CHECK(passed == 1);
        p = host_probe_free(p);
        close(fd);

        /* Ping: passes, or says why it may not run. */
        passed = 0;
        p = probe_new(&m, &(HostProbeOptions) { .kind = HOST_PROBE_PING, .port = 0 }, &passed);
        run_until(m.event, &passed, 2000 * 1000);
        if (passed != 1) {
                fprintf(stderr, "ping: %s\n", host_probe_last_error(p));
                CHECK_STREQ(host_probe_last_error(p),
                            "ping: ping sockets are not permitted (net.ipv4.ping_group_range)");
        }
        p = host_probe_free(p);

        /* A peer that never answers (a tarpit: its accept queue is full, so
         * the kernel drops our SYN): each attempt ends at its own deadline
         * with "no answer", and the loop goes on running meanwhile. */
        {
                unsigned ticks = 0, never = 0;
                sd_event_source *tick = NULL;
                int filler;
                struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
                char want[64];

                port = 0;
                fd = tcp_on_loopback(&port, 0);
                CHECK(listen(fd, 0) == 0);
                sa.sin6_port = htons(port);
                filler = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
                CHECK(connect(filler, (struct sockaddr *) &sa, sizeof(sa)) == 0);
                passed = 0;
                p = probe_new(&m, &(HostProbeOptions) { .kind = HOST_PROBE_TCP, .port = port }, &passed);
                CHECK(sd_event_add_time_relative(m.event, &tick, CLOCK_MONOTONIC, 100 * 1000, 0, on_tick, &ticks) >=
                      0);
                CHECK(sd_event_source_set_enabled(tick, SD_EVENT_ON) >= 0);
                run_until(m.event, &never, 1700 * 1000);
                snprintf(want, sizeof(want), "tcp port %u: no answer within 1.0 s", port);
                CHECK_STREQ(host_probe_last_error(p), want);
                CHECK(passed == 0);
                fprintf(stderr, "tarpit: %u ticks of 100 ms in 1.7 s\n", ticks);
                CHECK(ticks >= 12);
                sd_event_source_disable_unref(tick);
                p = host_probe_free(p);
                close(filler);
                close(fd);
        }

        /* Freed with an attempt in flight: nothing left behind (ASan). */
        passed = 0;
        port = 0;
        fd = tcp_on_loopback(&port, 1);
        p = probe_new(&m, &(HostProbeOptions) { .kind = HOST_PROBE_TCP, .port = port }, &passed);
        p = host_probe_free(p);
        close(fd);
        CHECK(sd_event_run(m.event, 0) >= 0);
        CHECK(passed == 0);

        http_probes(&m);
        sd_event_unref(m.event);
}

/* ipv4_leased without the agent is dnsmasq's lease: the line of the VM's
 * IPv4 MAC (any case), the last one if there are several; none: "". */
static void leases(void) {
        char dir[] = "/tmp/test-host-probe.XXXXXX", path[64], found[INET_ADDRSTRLEN];
        const uint8_t mac[6] = { 0x6a, 0x01, 0xab, 0xcd, 0xef, 0x01 };
        FILE *f;

        CHECK(mkdtemp(dir));
        CHECK(dnsmasq_lease_ipv4(dir, mac, found) == 0);
        CHECK_STREQ(found, "");
        snprintf(path, sizeof(path), "%s/dnsmasq.leases", dir);
        f = fopen(path, "we");
        CHECK(f);
        fprintf(f, "1700000000 6a:01:ab:cd:ef:02 10.1.2.3 other *\n");
        fprintf(f, "1700000000 6A:01:AB:CD:EF:01 10.1.2.4 vm *\n");
        fprintf(f, "garbage\n\n");
        fprintf(f, "1700000001 6a:01:ab:cd:ef:01 10.1.2.5 vm 01:6a:01:ab:cd:ef:01\n");
        fclose(f);
        CHECK(dnsmasq_lease_ipv4(dir, mac, found) == 0);
        CHECK_STREQ(found, "10.1.2.5");
        CHECK(unlink(path) == 0);
        CHECK(rmdir(dir) == 0);
}

int main(void) {
        leases();
        stages();
        probes();
        TEST_DONE();
}
