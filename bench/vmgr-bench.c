/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-bench: the measuring end of tools/bench.
 *
 * Times vmgrd's D-Bus calls from one long-lived connection, so the figures
 * hold the daemon's work and the bus round trip but no process start-up or
 * connection set-up. Also prints what the comparison scripts need to repeat
 * vmgr's steps with other tools: the derived names and addresses, and the
 * exact dnsmasq argv vmgrd has its helper run.
 *
 * Timings go to stdout as "KEY MILLISECONDS" lines, one sample each, for
 * tools/bench to collect; failures go to stderr and exit non-zero.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "addressing.h"
#include "macro.h"
#include "netadm-proto.h"
#include "vmgr-config.h"
#include "vmgr-error.h"

#define RUNS_MAX 10000
#define BATCH_MAX 64
/* Longer than any creation or deletion may take (dnsmasq's readiness timeout
 * is 10 s by default), so a slow call is measured rather than cut off. */
#define CALL_TIMEOUT_USEC (120ULL * 1000 * 1000)
#define DNSMASQ_ARGV_MAX 32

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* Connect to the bus in DBUS_SESSION_BUS_ADDRESS and make one round trip to
 * vmgrd, so the timed calls find the connection and the daemon warm.
 * Returns 0 with the bus, or -errno after saying why. */
static int bus_connect_warm(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_open_user(&bus);
        if (r < 0) {
                fprintf(stderr, "vmgr-bench: cannot connect to the bus in DBUS_SESSION_BUS_ADDRESS: %s\n",
                        strerror(-r));
                return r;
        }
        /* For the batch's asynchronous calls too. */
        r = sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, VMGR_BUS_NAME, VMGR_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", &error,
                               NULL, NULL);
        if (r < 0) {
                fprintf(stderr, "vmgr-bench: vmgrd does not answer: %s\n", error.message ?: strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(bus);
        return 0;
}

/* Call a Manager method with one or two string arguments and wait for the
 * reply. Returns 0 with the call's duration in ms, or -errno after printing
 * the D-Bus error. */
static int manager_call_timed(sd_bus *bus, const char *method, const char *name, const char *spec,
                              double *ret_ms) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        double t0, t1;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, VMGR_BUS_NAME, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE,
                                           method);
        if (r >= 0)
                r = spec ? sd_bus_message_append(m, "ss", name, spec) : sd_bus_message_append(m, "s", name);
        if (r < 0)
                return r;

        /* Only the call itself: building the message is the client's business. */
        t0 = now_ms();
        r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &error, &reply);
        t1 = now_ms();
        if (r < 0) {
                fprintf(stderr, "vmgr-bench: %s('%s'): %s: %s\n", method, name, error.name ?: "error",
                        error.message ?: strerror(-r));
                return r;
        }
        *ret_ms = t1 - t0;
        return 0;
}

/* Create and delete the network-only group name, runs times, printing the
 * two halves of each cycle. Returns 0 or -errno. */
static int group_cycle(const char *name, unsigned runs) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = bus_connect_warm(&bus);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < runs; i++) {
                double create, delete;

                r = manager_call_timed(bus, "CreateGroup", name, "", &create);
                if (r < 0)
                        return r;
                r = manager_call_timed(bus, "DeleteGroup", name, NULL, &delete);
                if (r < 0)
                        return r;
                printf("create %.3f\ndelete %.3f\n", create, delete);
                fflush(stdout);
        }
        return 0;
}

struct batch_call {
        unsigned index;
        double started;
        double took;
        int error;      /* 1 while the reply is outstanding, then 0 or -errno */
};

/* Reply handler of one call of a batch: records its duration or error. */
static int batch_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct batch_call *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        c->took = now_ms() - c->started;
        if (e) {
                fprintf(stderr, "vmgr-bench: call %u: %s: %s\n", c->index, e->name, e->message ?: "");
                c->error = -EIO;
        } else
                c->error = 0;
        return 0;
}

/* Send count CreateGroup (or DeleteGroup) calls for PREFIX-0 ... at once and
 * wait for every reply. Prints each call's time and the whole batch's.
 * Returns 0 if all succeeded, or -errno. */
static int group_batch(const char *prefix, unsigned count, bool create) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        struct batch_call calls[BATCH_MAX] = {};
        double t0;
        int r;

        r = bus_connect_warm(&bus);
        if (r < 0)
                return r;

        t0 = now_ms();
        for (unsigned i = 0; i < count; i++) {
                char name[VMGR_NAME_MAX + 1];

                snprintf(name, sizeof(name), "%s-%u", prefix, i);
                calls[i] = (struct batch_call) { .index = i, .started = now_ms(), .error = 1 };
                /* Floating slots: the bus owns them and frees them with itself. */
                if (create)
                        r = sd_bus_call_method_async(bus, NULL, VMGR_BUS_NAME, VMGR_MANAGER_PATH,
                                                     VMGR_MANAGER_INTERFACE, "CreateGroup", batch_reply, &calls[i],
                                                     "ss", name, "");
                else
                        r = sd_bus_call_method_async(bus, NULL, VMGR_BUS_NAME, VMGR_MANAGER_PATH,
                                                     VMGR_MANAGER_INTERFACE, "DeleteGroup", batch_reply, &calls[i],
                                                     "s", name);
                if (r < 0) {
                        fprintf(stderr, "vmgr-bench: sending call %u: %s\n", i, strerror(-r));
                        return r;
                }
        }

        /* Async calls time out on their own (CALL_TIMEOUT_USEC), so this ends. */
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0) {
                        fprintf(stderr, "vmgr-bench: processing the bus: %s\n", strerror(-r));
                        return r;
                }
                if (r > 0)
                        continue;
                unsigned pending = 0;

                for (unsigned i = 0; i < count; i++)
                        if (calls[i].error > 0)
                                pending++;
                if (pending == 0)
                        break;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0) {
                        fprintf(stderr, "vmgr-bench: waiting on the bus: %s\n", strerror(-r));
                        return r;
                }
        }

        r = 0;
        for (unsigned i = 0; i < count; i++) {
                if (calls[i].error == 0)
                        printf("call %.3f\n", calls[i].took);
                else
                        r = calls[i].error;
        }
        if (r == 0)
                printf("total %.3f\n", now_ms() - t0);
        return r;
}

/* Print the group's derived names and addresses (and those of each VM given)
 * as shell assignments. Returns 0 or -EINVAL for an invalid name. */
static int addrs_print(const char *group, char **vms, int n_vms) {
        struct vmgr_group_addrs g;
        char buf[INET6_ADDRSTRLEN + 8];
        int r;

        r = vmgr_group_addrs_derive(group, &g);
        if (r < 0)
                return r;
        printf("bridge=%s\n", g.bridge);
        printf("prefix6=%s\n", vmgr_in6_prefix_format(&g.prefix6, 64, buf, sizeof(buf)));
        printf("gateway6=%s\n", inet_ntop(AF_INET6, &g.gateway6, buf, sizeof(buf)));
        printf("management6=%s\n", inet_ntop(AF_INET6, &g.management6, buf, sizeof(buf)));
        printf("logs6=%s\n", inet_ntop(AF_INET6, &g.logs6, buf, sizeof(buf)));
        printf("files6=%s\n", inet_ntop(AF_INET6, &g.files6, buf, sizeof(buf)));
        printf("subnet4=%s\n", vmgr_in4_prefix_format(&g.subnet4, 24, buf, sizeof(buf)));
        printf("gateway4=%s\n", inet_ntop(AF_INET, &g.gateway4, buf, sizeof(buf)));
        printf("dhcp4_first=%s\n", inet_ntop(AF_INET, &g.dhcp4_first, buf, sizeof(buf)));
        printf("dhcp4_last=%s\n", inet_ntop(AF_INET, &g.dhcp4_last, buf, sizeof(buf)));

        for (int i = 0; i < n_vms; i++) {
                struct vmgr_vm_addrs v;

                r = vmgr_vm_addrs_derive(group, vms[i], &v);
                if (r < 0)
                        return r;
                printf("tap_%d=%s\ntap4_%d=%s\n", i, v.tap, i, v.tap4);
        }
        return 0;
}

/* Print the argv vmgrd's helper starts the group's dnsmasq with, one
 * argument per line. Returns 0 or -errno. */
static int dnsmasq_argv_print(const char *group, const char *dir) {
        char *argv[DNSMASQ_ARGV_MAX], storage[4096];
        int n;

        n = vmgr_dnsmasq_argv(VMGR_DNSMASQ_PATH, group, dir, argv, ELEMENTSOF(argv), storage, sizeof(storage));
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++)
                printf("%s\n", argv[i]);
        return 0;
}

static void help(void) {
        printf("Usage: vmgr-bench cycle [--runs N] GROUP\n"
               "       vmgr-bench batch create|delete --count N PREFIX\n"
               "       vmgr-bench addrs GROUP [VM...]\n"
               "       vmgr-bench dnsmasq-argv GROUP DIR\n\n"
               "cycle         CreateGroup + DeleteGroup of network-only group GROUP, N times (default 1),\n"
               "              on one bus connection; prints 'create MS' and 'delete MS' per cycle\n"
               "batch         send N CreateGroup (DeleteGroup) calls for PREFIX-0 ... PREFIX-(N-1) at once;\n"
               "              prints 'call MS' per call and 'total MS'\n"
               "addrs         the derived names and addresses as shell assignments\n"
               "dnsmasq-argv  the argv vmgrd runs the group's dnsmasq with, one per line\n\n"
               "Talks to vmgrd on the bus in DBUS_SESSION_BUS_ADDRESS. Times are CLOCK_MONOTONIC\n"
               "around each call, in milliseconds.\n");
}

/* Parse a count between 1 and max. Returns 0 or -EINVAL. */
static int parse_count(const char *s, unsigned max, unsigned *ret) {
        char *end;
        unsigned long n;

        errno = 0;
        n = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end || n == 0 || n > max)
                return -EINVAL;
        *ret = (unsigned) n;
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "runs", required_argument, NULL, 'n' },
                { "count", required_argument, NULL, 'c' },
                {},
        };
        unsigned runs = 1, count = 0;
        const char *verb;
        char **pos;
        int c, npos, r;

        while ((c = getopt_long(argc, argv, "hn:c:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'n':
                        if (parse_count(optarg, RUNS_MAX, &runs) < 0) {
                                fprintf(stderr, "vmgr-bench: --runs takes a number from 1 to %d\n", RUNS_MAX);
                                return 2;
                        }
                        break;
                case 'c':
                        if (parse_count(optarg, BATCH_MAX, &count) < 0) {
                                fprintf(stderr, "vmgr-bench: --count takes a number from 1 to %d\n", BATCH_MAX);
                                return 2;
                        }
                        break;
                default:
                        return 2;
                }

        pos = argv + optind;
        npos = argc - optind;
        if (npos < 1) {
                fprintf(stderr, "vmgr-bench: no command given; see --help\n");
                return 2;
        }
        verb = pos[0];

        if (streq(verb, "cycle") && npos == 2)
                r = group_cycle(pos[1], runs);
        else if (streq(verb, "batch") && npos == 3 && count > 0 &&
                 (streq(pos[1], "create") || streq(pos[1], "delete")))
                r = group_batch(pos[2], count, streq(pos[1], "create"));
        else if (streq(verb, "addrs") && npos >= 2) {
                r = addrs_print(pos[1], pos + 2, npos - 2);
                if (r < 0)
                        fprintf(stderr, "vmgr-bench: invalid group or VM name\n");
        } else if (streq(verb, "dnsmasq-argv") && npos == 3) {
                r = dnsmasq_argv_print(pos[1], pos[2]);
                if (r < 0)
                        fprintf(stderr, "vmgr-bench: cannot build the dnsmasq argv: %s\n", strerror(-r));
        } else {
                fprintf(stderr, "vmgr-bench: invalid arguments; see --help\n");
                return 2;
        }
        return r < 0 ? 1 : 0;
}
