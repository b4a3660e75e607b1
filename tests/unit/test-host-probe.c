/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Readiness stages (which apply to a spec, which is missing first) and the
 * host probes of daemon/host-probe.c against loopback: a refused TCP connect
 * is the probe's last error and the probe goes on until a listener appears;
 * the address check passes on a refusal; a ping of ::1 passes where ping
 * sockets are allowed. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "host-probe.h"
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

static void probes(void) {
        Manager m = {};
        HostProbe *p = NULL;
        unsigned passed = 0;
        uint16_t port = 0;
        int fd;

        CHECK(sd_event_new(&m.event) >= 0);

        /* A port nobody listens on: refused, again and again. */
        fd = tcp_on_loopback(&port, 0);
        CHECK(host_probe_new(&m, HOST_PROBE_TCP, &in6addr_loopback, &in6addr_loopback, port, on_passed, &passed, &p) ==
              0);
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
        CHECK(host_probe_new(&m, HOST_PROBE_ADDRESS, &in6addr_loopback, &in6addr_loopback, port, on_passed, &passed,
                             &p) == 0);
        run_until(m.event, &passed, 2000 * 1000);
        CHECK(passed == 1);
        p = host_probe_free(p);
        close(fd);

        /* Ping: passes, or says why it may not run. */
        passed = 0;
        CHECK(host_probe_new(&m, HOST_PROBE_PING, &in6addr_loopback, &in6addr_loopback, 0, on_passed, &passed, &p) ==
              0);
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
                CHECK(host_probe_new(&m, HOST_PROBE_TCP, &in6addr_loopback, &in6addr_loopback, port, on_passed,
                                     &passed, &p) == 0);
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
        CHECK(host_probe_new(&m, HOST_PROBE_TCP, &in6addr_loopback, &in6addr_loopback, port, on_passed, &passed, &p) ==
              0);
        p = host_probe_free(p);
        close(fd);
        CHECK(sd_event_run(m.event, 0) >= 0);
        CHECK(passed == 0);

        sd_event_unref(m.event);
}

int main(void) {
        stages();
        probes();
        TEST_DONE();
}
