/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-bench: the measuring end of tools/bench.
 *
 * Times vmgrd's D-Bus calls from one long-lived connection, so the figures
 * hold the daemon's work and the bus round trip but no process start-up or
 * connection set-up. Also prints what the comparison scripts need to repeat
 * vmgr's steps with other tools: the derived names and addresses, and the
 * exact dnsmasq argv vmgrd has its helper run. And it is the other side of
 * two baselines: a raw QEMU booted and timed to its guest agent's first
 * messages, and the agent driven directly on its socket (bench-agent.c).
 *
 * Timings go to stdout as "KEY MILLISECONDS" lines, one sample each, for
 * tools/bench to collect; failures go to stderr and exit non-zero.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "addressing.h"
#include "bench-agent.h"
#include "macro.h"
#include "netadm-proto.h"
#include "vmgr-config.h"
#include "vmgr-error.h"

#define RUNS_MAX 10000
#define BATCH_MAX 64
/* Longer than any creation or deletion may take (dnsmasq's readiness timeout
 * is 10 s by default), so a slow call is measured rather than cut off. */
#define CALL_TIMEOUT_USEC (120ULL * 1000 * 1000)
/* WaitReady: long enough for 32 TCG guests booting at once on 2 cores. */
#define READY_TIMEOUT_USEC (900ULL * 1000 * 1000)
#define READY_CALL_TIMEOUT_USEC (READY_TIMEOUT_USEC + 10ULL * 1000 * 1000)
/* Run's own limit, and how long a raw QEMU may take to its agent. */
#define RUN_TIMEOUT_USEC (30ULL * 1000 * 1000)
#define BOOT_TIMEOUT_MS (300.0 * 1000)
#define INFLIGHT_MAX 100

/* Say "vmgr-bench: WHAT: WHY" for a failed bus call, WHAT given
 * printf-style: why is the reply's message, or r's words when the call
 * failed without one. Returns r. */
_printf_(3, 4) static int bus_call_failed(const sd_bus_error *error, int r, const char *format, ...) {
        char what[512];
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(what, sizeof(what), format, ap);
        va_end(ap);
        if (error->message)
                fprintf(stderr, "vmgr-bench: %s: %s\n", what, error->message);
        else
                vmgr_print_error(r, "vmgr-bench: %s: %m", what);
        return r;
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
                vmgr_print_error(r, "vmgr-bench: cannot connect to the bus in DBUS_SESSION_BUS_ADDRESS: %m");
                return r;
        }
        /* For the batch's asynchronous calls too. */
        r = sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, VMGR_BUS_NAME, VMGR_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", &error,
                               NULL, NULL);
        if (r < 0) {
                return bus_call_failed(&error, r, "vmgrd does not answer");
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
        t0 = bench_now_ms();
        r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &error, &reply);
        t1 = bench_now_ms();
        if (r < 0) {
                return bus_call_failed(&error, r, "%s('%s'): %s", method, name, error.name ?: "error");
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

/* ---- many calls at once ---------------------------------------------------- */

/* A set of asynchronous calls on one connection, each timed from sending
 * to its reply. A call's reply handler may send the next call. */
typedef struct Pending Pending;
typedef struct Flight {
        sd_bus *bus;
        unsigned outstanding;
        int error;              /* the first failure */
} Flight;

typedef int (*pending_done_t)(Pending *p, sd_bus_message *reply);

struct Pending {
        Flight *flight;
        unsigned index;
        double started;
        double took;
        pending_done_t done;
        void *userdata;
};

static int pending_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        p->took = bench_now_ms() - p->started;
        p->flight->outstanding--;
        if (e) {
                fprintf(stderr, "vmgr-bench: call %u: %s: %s\n", p->index, e->name, e->message ?: "");
                if (p->flight->error == 0)
                        p->flight->error = -EIO;
                return 0;
        }
        if (p->done) {
                r = p->done(p, reply);
                if (r < 0 && p->flight->error == 0)
                        p->flight->error = r;
        }
        return 0;
}

/* Send m as call p of flight f (p's index, done and userdata set by the
 * caller), with a timeout. Returns 0 or -errno. */
static int pending_send(Flight *f, Pending *p, sd_bus_message *m, uint64_t timeout_usec) {
        int r;

        p->flight = f;
        p->started = bench_now_ms();
        /* A floating slot: the bus owns it and frees it with itself. */
        r = sd_bus_call_async(f->bus, NULL, m, pending_reply, p, timeout_usec);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-bench: sending call %u: %m", p->index);
                return r;
        }
        f->outstanding++;
        return 0;
}

/* Process the bus until no call of f is outstanding (every async call times
 * out on its own, so this ends). Returns f's first error, or 0. */
static int flight_wait(Flight *f) {
        int r;

        while (f->outstanding > 0) {
                r = sd_bus_process(f->bus, NULL);
                if (r < 0) {
                        vmgr_print_error(r, "vmgr-bench: processing the bus: %m");
                        return r;
                }
                if (r > 0)
                        continue;
                r = sd_bus_wait(f->bus, UINT64_MAX);
                if (r < 0) {
                        vmgr_print_error(r, "vmgr-bench: waiting on the bus: %m");
                        return r;
                }
        }
        return f->error;
}

static int method_new(sd_bus *bus, sd_bus_message **ret, const char *path, const char *interface,
                      const char *method) {
        return sd_bus_message_new_method_call(bus, ret, VMGR_BUS_NAME, path, interface, method);
}

/* ---- batches of groups -------------------------------------------------- */

typedef enum BatchKind {
        BATCH_CREATE,   /* CreateGroup each */
        BATCH_DELETE,   /* DeleteGroup each */
        BATCH_UP,       /* CreateGroup each, then its Group.WaitReady */
} BatchKind;

typedef struct BatchGroup {
        Pending create;         /* CreateGroup, DeleteGroup */
        Pending ready;          /* Group.WaitReady (BATCH_UP) */
        double ready_at;        /* ms from the batch's start */
} BatchGroup;

typedef struct Batch {
        Flight flight;
        double t0;
        double created_at;      /* ms from the start until every CreateGroup returned */
        unsigned count, created;
        BatchGroup groups[BATCH_MAX];
} Batch;

static int batch_ready_done(Pending *p, sd_bus_message *reply) {
        Batch *b = p->userdata;

        b->groups[p->index].ready_at = bench_now_ms() - b->t0;
        return 0;
}

/* CreateGroup returned in an "up" batch: wait for the group's VMs. */
static int batch_created(Pending *p, sd_bus_message *reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Batch *b = p->userdata;
        BatchGroup *g = &b->groups[p->index];
        const char *path;
        int r;

        if (++b->created == b->count)
                b->created_at = bench_now_ms() - b->t0;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        r = method_new(b->flight.bus, &m, path, VMGR_GROUP_INTERFACE, "WaitReady");
        if (r >= 0)
                r = sd_bus_message_append(m, "t", READY_TIMEOUT_USEC);
        if (r < 0)
                return r;
        g->ready = (Pending) { .index = p->index, .done = batch_ready_done, .userdata = b };
        return pending_send(&b->flight, &g->ready, m, READY_CALL_TIMEOUT_USEC);
}

/* Send count CreateGroup (with spec), DeleteGroup or CreateGroup-then-
 * WaitReady calls for PREFIX-0 ... at once and wait for every reply. Prints
 * each call's time ("call", for up also "ready" from the CreateGroup's send
 * to the group's readiness) and the whole batch's ("total"; for up also
 * "created", when the last CreateGroup returned). Returns 0 if all
 * succeeded, or -errno. */
static int group_batch(const char *prefix, unsigned count, BatchKind kind, const char *spec) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ Batch *b = NULL;
        int r;

        r = bus_connect_warm(&bus);
        if (r < 0)
                return r;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->flight.bus = bus;
        b->count = count;

        b->t0 = bench_now_ms();
        for (unsigned i = 0; i < count; i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                char name[VMGR_NAME_MAX + 1];

                snprintf(name, sizeof(name), "%s-%u", prefix, i);
                r = method_new(bus, &m, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE,
                               kind == BATCH_DELETE ? "DeleteGroup" : "CreateGroup");
                if (r >= 0)
                        r = kind == BATCH_DELETE ? sd_bus_message_append(m, "s", name)
                                                 : sd_bus_message_append(m, "ss", name, spec ?: "");
                if (r < 0)
                        return r;
                b->groups[i].create = (Pending) { .index = i, .done = kind == BATCH_UP ? batch_created : NULL,
                                                  .userdata = b };
                r = pending_send(&b->flight, &b->groups[i].create, m, CALL_TIMEOUT_USEC);
                if (r < 0)
                        return r;
        }
        r = flight_wait(&b->flight);
        if (r < 0)
                return r;

        for (unsigned i = 0; i < count; i++) {
                printf("call %.3f\n", b->groups[i].create.took);
                if (kind == BATCH_UP)
                        printf("ready %.3f\n", b->groups[i].ready_at);
        }
        if (kind == BATCH_UP)
                printf("created %.3f\n", b->created_at);
        printf("total %.3f\n", bench_now_ms() - b->t0);
        return 0;
}

/* ---- one VM: start to ready ---------------------------------------------- */

/* The guest's uptime at "ready" from its console ("vmgr-guest: uptime 2.61 s"),
 * in ms, or a negative number if it is not there (yet). */
static double console_uptime_ms(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char line[512];
        double s;

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                const char *p = strstr(line, "vmgr-guest: uptime ");
                if (p && sscanf(p, "vmgr-guest: uptime %lf s", &s) == 1)
                        return s * 1e3;
        }
        return -1;
}

/* Print a VM's Timings as "stage.NAME MS" lines and the guest's uptime at
 * ready from its console. Returns 0 or -errno. */
static int vm_print_timings(sd_bus *bus, const char *vm_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *console = NULL;
        const char *stage;
        uint64_t usec;
        double uptime;
        int r;

        r = sd_bus_get_property(bus, VMGR_BUS_NAME, vm_path, VMGR_VM_INTERFACE, "Timings", &error, &reply, "a{st}");
        if (r < 0) {
                return bus_call_failed(&error, r, "Timings of %s", vm_path);
        }
        r = sd_bus_message_enter_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "{st}", &stage, &usec)) > 0)
                printf("stage.%s %.3f\n", stage, (double) usec / 1e3);
        if (r < 0)
                return r;

        r = sd_bus_get_property_string(bus, VMGR_BUS_NAME, vm_path, VMGR_VM_INTERFACE, "ConsoleLog", &error,
                                       &console);
        if (r < 0)
                return r;
        uptime = console_uptime_ms(console);
        if (uptime >= 0)
                printf("guest_uptime %.3f\n", uptime);
        return 0;
}

/* CreateGroup(group, spec) with one VM, Group.WaitReady, its Timings, then
 * DeleteGroup. Prints "create" (the CreateGroup call), "ready" (from
 * sending CreateGroup to WaitReady's reply), the stages, "delete".
 * Returns 0 or -errno. */
static int vm_cycle(const char *group, const char *vm, const char *spec) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL, *vm_reply = NULL;
        const char *group_path, *vm_path;
        double t0, created, ready, deleted;
        int r;

        r = bus_connect_warm(&bus);
        if (r < 0)
                return r;

        r = method_new(bus, &m, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", group, spec);
        if (r < 0)
                return r;
        t0 = bench_now_ms();
        r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &error, &reply);
        created = bench_now_ms() - t0;
        if (r < 0) {
                return bus_call_failed(&error, r, "CreateGroup('%s')", group);
        }
        r = sd_bus_message_read(reply, "o", &group_path);
        if (r < 0)
                return r;

        m = sd_bus_message_unref(m);
        r = method_new(bus, &m, group_path, VMGR_GROUP_INTERFACE, "WaitReady");
        if (r >= 0)
                r = sd_bus_message_append(m, "t", READY_TIMEOUT_USEC);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, READY_CALL_TIMEOUT_USEC, &error, NULL);
        ready = bench_now_ms() - t0;
        if (r < 0) {
                return bus_call_failed(&error, r, "WaitReady('%s')", group);
        }

        r = sd_bus_call_method(bus, VMGR_BUS_NAME, group_path, VMGR_GROUP_INTERFACE, "GetVM", &error, &vm_reply,
                               "s", vm);
        if (r >= 0)
                r = sd_bus_message_read(vm_reply, "o", &vm_path);
        if (r < 0) {
                return bus_call_failed(&error, r, "GetVM('%s')", vm);
        }
        r = vm_print_timings(bus, vm_path);
        if (r < 0)
                return r;

        r = manager_call_timed(bus, "DeleteGroup", group, NULL, &deleted);
        if (r < 0)
                return r;
        printf("create %.3f\nready %.3f\ndelete %.3f\n", created, ready, deleted);
        return 0;
}

/* ---- VM.Run ------------------------------------------------------------------ */

typedef struct RunBatch {
        Flight flight;
        const char *vm_path;
        char **argv;
        unsigned count, sent;
        Pending *calls;
} RunBatch;

static int run_send_next(RunBatch *b);

static int run_done(Pending *p, sd_bus_message *reply) {
        RunBatch *b = p->userdata;
        int32_t status;
        int r;

        r = sd_bus_message_read(reply, "i", &status);
        if (r < 0)
                return r;
        if (status != 0) {
                fprintf(stderr, "vmgr-bench: Run %u exited with status %d\n", p->index, (int) status);
                return -EIO;
        }
        return run_send_next(b);
}

static int run_send_next(RunBatch *b) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        unsigned i = b->sent;
        int r;

        if (i >= b->count)
                return 0;
        r = method_new(b->flight.bus, &m, b->vm_path, VMGR_VM_INTERFACE, "Run");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, b->argv);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', "", 0);
        if (r >= 0)
                r = sd_bus_message_append(m, "t", RUN_TIMEOUT_USEC);
        if (r < 0)
                return r;
        b->calls[i] = (Pending) { .index = i, .done = run_done, .userdata = b };
        b->sent++;
        return pending_send(&b->flight, &b->calls[i], m, CALL_TIMEOUT_USEC);
}

/* VM.Run(argv, no stdin, timeout) count times on VM vm of group, inflight
 * at a time on one connection. Prints "call MS" per call and "total MS".
 * Returns 0 if every run exited 0, or -errno. */
static int vm_run(const char *group, const char *vm, char **argv, unsigned count, unsigned inflight) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ Pending *calls = NULL;
        _cleanup_free_ char *vm_path = NULL;
        const char *group_path;
        double t0, total;
        int r;

        r = bus_connect_warm(&bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, VMGR_BUS_NAME, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GetGroup", &error,
                               &reply, "s", group);
        if (r >= 0)
                r = sd_bus_message_read(reply, "o", &group_path);
        if (r >= 0) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *vm_reply = NULL;
                const char *p;

                r = sd_bus_call_method(bus, VMGR_BUS_NAME, group_path, VMGR_GROUP_INTERFACE, "GetVM", &error,
                                       &vm_reply, "s", vm);
                if (r >= 0)
                        r = sd_bus_message_read(vm_reply, "o", &p);
                if (r >= 0 && !(vm_path = strdup(p)))
                        r = -ENOMEM;
        }
        if (r < 0) {
                return bus_call_failed(&error, r, "VM '%s' of group '%s'", vm, group);
        }

        calls = calloc(count, sizeof(*calls));
        if (!calls)
                return -ENOMEM;
        RunBatch b = { .flight.bus = bus, .vm_path = vm_path, .argv = argv, .count = count, .calls = calls };

        t0 = bench_now_ms();
        for (unsigned i = 0; i < inflight && r >= 0; i++)
                r = run_send_next(&b);
        if (r >= 0)
                r = flight_wait(&b.flight);
        total = bench_now_ms() - t0;
        if (r < 0)
                return r;
        for (unsigned i = 0; i < count; i++)
                printf("call %.3f\n", calls[i].took);
        printf("total %.3f\n", total);
        return 0;
}

/* ---- the baselines: raw QEMU, the agent alone ---------------------------------- */

static pid_t qemu_pid;

static bool qemu_alive(void *userdata) {
        return waitpid(qemu_pid, NULL, WNOHANG) == 0;
}

/* Does an INFO show address want (done with DAD) on some link? */
static bool info_has_ipv6(const struct vmgr_agent_info *info, const struct in6_addr *want) {
        for (size_t i = 0; i < info->n_addrs; i++) {
                const struct vmgr_agent_addr *a = &info->addrs[i];
                if (a->family == VMGR_AGENT_FAMILY_IPV6 && memcmp(a->address, want, 16) == 0 &&
                    !(a->flags & (0x40 /* tentative */ | 0x08 /* DAD failed */)))
                        return true;
        }
        return false;
}

/* Is the session up with an INFO that shows userdata's IPv6 address? */
static bool agent_ready(BenchAgent *a, void *userdata) {
        const struct vmgr_agent_info *info = agent_session_info(a->session);

        return info && info_has_ipv6(info, userdata);
}

/* Start qemu_argv and time it to its agent's messages on socket: "socket"
 * (QEMU accepts a connection), "first" (the agent's first frame), "hello"
 * (the session is up, by vmgrd's rule) and "ready" (the first INFO that
 * shows ipv6 done with DAD: what vmgrd calls ready), all in ms from the
 * fork. Then the guest's uptime at ready from console. Then SIGTERM to QEMU
 * and "exit", unless pid_file is given: then QEMU's pid goes there and it
 * keeps running. Returns 0 or -errno. */
static int raw_boot(const char *socket, const char *console, const struct in6_addr *ipv6, const char *pid_file,
                    char **qemu_argv) {
        BenchAgent a = { .fd = -EBADF };
        double t0, t_socket, t_first = -1, t_hello = -1, t_ready = -1, t_kill, uptime;
        int r, status;

        t0 = bench_now_ms();
        qemu_pid = fork();
        if (qemu_pid < 0)
                return -errno;
        if (qemu_pid == 0) {
                /* QEMU's messages go with ours to stderr; stdout is for samples. */
                if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                        _exit(127);
                execvp(qemu_argv[0], qemu_argv);
                fprintf(stderr, "vmgr-bench: cannot execute %s: %m\n", qemu_argv[0]);
                _exit(127);
        }

        r = bench_agent_connect(&a, socket, BOOT_TIMEOUT_MS, qemu_alive, NULL);
        t_socket = bench_now_ms() - t0;
        if (r >= 0)
                r = bench_agent_begin(&a);
        if (r >= 0)
                r = bench_agent_wait(&a, BOOT_TIMEOUT_MS - (bench_now_ms() - t0), agent_ready, (void *) ipv6);
        if (r >= 0) {
                t_ready = bench_now_ms() - t0;
                t_first = a.t_first - t0;
                t_hello = a.t_hello - t0;
        }
        bench_agent_done(&a);
        if (r < 0)
                vmgr_print_error(r, "vmgr-bench: raw QEMU's agent at %s: %m", socket);

        if (r >= 0 && pid_file) {
                _cleanup_fclose_ FILE *f = fopen(pid_file, "we");
                if (!f || fprintf(f, "%d\n", (int) qemu_pid) < 0 || fflush(f) != 0)
                        r = -errno;
        } else {
                t_kill = bench_now_ms();
                (void) kill(qemu_pid, SIGTERM);
                while (waitpid(qemu_pid, &status, 0) < 0 && errno == EINTR)
                        ;
                if (r >= 0)
                        printf("exit %.3f\n", bench_now_ms() - t_kill);
        }
        if (r < 0)
                return r;
        printf("socket %.3f\nfirst %.3f\nhello %.3f\nready %.3f\n", t_socket, t_first, t_hello, t_ready);
        uptime = console ? console_uptime_ms(console) : -1;
        if (uptime >= 0)
                printf("guest_uptime %.3f\n", uptime);
        return 0;
}

static void print_call(unsigned i, double ms, void *userdata) {
        double *took = userdata;

        took[i] = ms;
}

/* Run argv count times through the agent on socket directly, inflight at a
 * time, in one session. Prints "call MS" per run and "total MS" (the
 * session's start not included). Returns 0 or -errno. */
static int agent_run(const char *socket, char **argv, unsigned count, unsigned inflight) {
        _cleanup_free_ double *took = NULL;
        BenchAgent a = { .fd = -EBADF };
        double t0, total;
        int r;

        took = calloc(count, sizeof(*took));
        if (!took)
                return -ENOMEM;
        r = bench_agent_connect(&a, socket, 1000, NULL, NULL);
        if (r >= 0)
                r = bench_agent_start_session(&a, 30000);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-bench: agent at %s: %m", socket);
                bench_agent_done(&a);
                return r;
        }
        t0 = bench_now_ms();
        r = bench_agent_run_many(&a, argv, count, inflight, RUN_TIMEOUT_USEC / 1000.0, print_call, took);
        total = bench_now_ms() - t0;
        bench_agent_done(&a);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-bench: running %s through the agent: %m", argv[0]);
                return r;
        }
        for (unsigned i = 0; i < count; i++)
                printf("call %.3f\n", took[i]);
        printf("total %.3f\n", total);
        return 0;
}

/* Print the derived names and addresses of uid's group (and those of each VM
 * given) as shell assignments. Returns 0 or -EINVAL for an invalid name. */
static int addrs_print(unsigned uid, const char *group, char **vms, int n_vms) {
        struct vmgr_group_addrs g;
        char buf[INET6_ADDRSTRLEN + 8];
        int r;

        r = vmgr_group_addrs_derive(uid, group, &g);
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

                r = vmgr_vm_addrs_derive(uid, group, vms[i], &v);
                if (r < 0)
                        return r;
                char mac[VMGR_MAC_STRLEN];

                printf("tap_%d=%s\ntap4_%d=%s\n", i, v.tap, i, v.tap4);
                printf("mac_%d=%s\n", i, vmgr_mac_format(v.mac, mac));
                printf("ipv6_%d=%s\n", i, inet_ntop(AF_INET6, &v.ipv6, buf, sizeof(buf)));
        }
        return 0;
}

/* Print the argv vmgrd's helper starts the dnsmasq of uid's group with, one
 * argument per line. Returns 0 or -errno. */
static int dnsmasq_argv_print(unsigned uid, const char *group, const char *dir) {
        char *argv[VMGR_DNSMASQ_ARGV_MAX], storage[VMGR_DNSMASQ_ARGV_STORAGE];
        int n;

        n = vmgr_dnsmasq_argv(VMGR_DNSMASQ_PATH, uid, group, dir, argv, ELEMENTSOF(argv), storage, sizeof(storage));
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++)
                printf("%s\n", argv[i]);
        return 0;
}

/* Start the dnsmasq of uid's group, with vmgrd's argv, the helper's
 * environment (PATH alone) and DIR for its files, and print "ready MS": from
 * the fork to its pid file's close, seen through inotify as vmgrd sees it.
 * This is CreateGroup's floor, measured the way vmgrd measures it. dnsmasq
 * keeps running (its pid is in the pid file); the bridge must be up. Returns
 * 0 or -errno. */
static int dnsmasq_time(unsigned uid, const char *group, const char *dir) {
        static char *const envp[] = { (char *) VMGR_DNSMASQ_ENV_PATH, NULL };
        char *argv[VMGR_DNSMASQ_ARGV_MAX], storage[VMGR_DNSMASQ_ARGV_STORAGE], path[PATH_MAX], buf[4096]
                __attribute__((aligned(__alignof__(struct inotify_event))));
        _cleanup_close_ int in = -EBADF, pidfd = -EBADF;
        double t0;
        pid_t pid;
        int n;

        n = vmgr_dnsmasq_argv(VMGR_DNSMASQ_PATH, uid, group, dir, argv, ELEMENTSOF(argv), storage, sizeof(storage));
        if (n < 0)
                return n;
        snprintf(path, sizeof(path), "%s/dnsmasq.pid", dir);
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        in = inotify_init1(IN_CLOEXEC);
        if (in < 0 || inotify_add_watch(in, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0)
                return -errno;

        t0 = bench_now_ms();
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
                        _exit(127);
                execve(argv[0], argv, envp);
                _exit(127);
        }
        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0)
                return -errno;
        for (;;) {
                struct pollfd p[2] = { { .fd = in, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
                ssize_t k;
                int ready;

                ready = poll(p, 2, 10 * 1000);
                if (ready <= 0) {
                        /* errno only when poll() failed; 0 is the timeout. */
                        int e = ready < 0 ? -errno : -ETIMEDOUT;

                        (void) kill(pid, SIGKILL);
                        return e;
                }
                if (p[0].revents & POLLIN) {
                        k = read(in, buf, sizeof(buf));
                        if (k < 0)
                                return -errno;
                        for (char *e = buf; e < buf + k;) {
                                struct inotify_event *ev = (struct inotify_event *) e;

                                if (ev->len > 0 && streq(ev->name, "dnsmasq.pid")) {
                                        printf("ready %.3f\n", bench_now_ms() - t0);
                                        return 0;
                                }
                                e += sizeof(*ev) + ev->len;
                        }
                }
                if (p[1].revents & POLLIN) {
                        fprintf(stderr, "vmgr-bench: dnsmasq exited before writing its pid file\n");
                        return -ECHILD;
                }
        }
}

static void help(void) {
        printf("Usage: vmgr-bench cycle [--runs N] GROUP\n"
               "       vmgr-bench batch create|delete|up --count N [--spec JSON] PREFIX\n"
               "       vmgr-bench vm-cycle GROUP VM SPEC\n"
               "       vmgr-bench run [--runs N] [--inflight K] GROUP VM [--] ARGV...\n"
               "       vmgr-bench agent-run [--runs N] [--inflight K] SOCKET [--] ARGV...\n"
               "       vmgr-bench raw-boot --socket PATH --ipv6 ADDR [--console FILE] [--pid-file FILE]\n"
               "                           -- QEMU-ARGV...\n"
               "       vmgr-bench [--uid N] addrs GROUP [VM...]\n"
               "       vmgr-bench [--uid N] dnsmasq-argv GROUP DIR\n"
               "       vmgr-bench [--uid N] dnsmasq-time GROUP DIR\n\n"
               "cycle         CreateGroup + DeleteGroup of network-only group GROUP, N times (default 1),\n"
               "              on one bus connection; prints 'create MS' and 'delete MS' per cycle\n"
               "batch         send N CreateGroup (with --spec) or DeleteGroup calls for PREFIX-0 ...\n"
               "              PREFIX-(N-1) at once; prints 'call MS' per call and 'total MS'. 'up' follows\n"
               "              each CreateGroup with the group's WaitReady: also 'ready MS' per group (from\n"
               "              its CreateGroup) and 'created MS' (the last CreateGroup's reply)\n"
               "vm-cycle      CreateGroup with SPEC, Group.WaitReady, DeleteGroup; prints 'create', 'ready'\n"
               "              (from CreateGroup), 'delete', VM's Timings as 'stage.NAME' and 'guest_uptime'\n"
               "run           VM.Run(ARGV, no stdin) N times, K at once (default 1); 'call MS' each, 'total MS'\n"
               "agent-run     the same through the guest agent's socket directly, without vmgrd\n"
               "raw-boot      start QEMU-ARGV and time it to its agent on the socket: 'socket', 'first'\n"
               "              (the agent's first message), 'hello' (session up), 'ready' (INFO shows ADDR\n"
               "              done with DAD), 'guest_uptime'; then SIGTERM ('exit'), or with --pid-file\n"
               "              leave it running\n"
               "addrs         the derived names and addresses as shell assignments, of the group of\n"
               "              uid N (default: ours)\n"
               "dnsmasq-argv  the argv vmgrd runs the group's dnsmasq with, one per line (--uid as addrs)\n"
               "dnsmasq-time  start that dnsmasq (its files in DIR, the helper's environment) and print\n"
               "              'ready MS': from the fork to its pid file, seen through inotify as vmgrd\n"
               "              sees it; it keeps running\n\n"
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
        enum {
                OPT_SPEC = 0x100,
                OPT_SOCKET,
                OPT_CONSOLE,
                OPT_PID_FILE,
                OPT_IPV6,
                OPT_UID,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "runs", required_argument, NULL, 'n' },
                { "count", required_argument, NULL, 'c' },
                { "inflight", required_argument, NULL, 'k' },
                { "spec", required_argument, NULL, OPT_SPEC },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "console", required_argument, NULL, OPT_CONSOLE },
                { "pid-file", required_argument, NULL, OPT_PID_FILE },
                { "ipv6", required_argument, NULL, OPT_IPV6 },
                { "uid", required_argument, NULL, OPT_UID },
                {},
        };
        unsigned runs = 1, count = 0, inflight = 1;
        const char *verb, *spec = NULL, *socket = NULL, *console = NULL, *pid_file = NULL;
        struct in6_addr ipv6;
        bool have_ipv6 = false;
        /* Whose group addrs and dnsmasq-argv derive: the uid vmgrd runs as. */
        unsigned uid = (unsigned) getuid();
        char **pos;
        int c, npos, r;

        /* An ARGV passed on that has options of its own follows "--". */
        while ((c = getopt_long(argc, argv, "hn:c:k:", options, NULL)) >= 0)
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
                case 'k':
                        if (parse_count(optarg, INFLIGHT_MAX, &inflight) < 0) {
                                fprintf(stderr, "vmgr-bench: --inflight takes a number from 1 to %d\n",
                                        INFLIGHT_MAX);
                                return 2;
                        }
                        break;
                case OPT_SPEC:
                        spec = optarg;
                        break;
                case OPT_SOCKET:
                        socket = optarg;
                        break;
                case OPT_CONSOLE:
                        console = optarg;
                        break;
                case OPT_PID_FILE:
                        pid_file = optarg;
                        break;
                case OPT_IPV6:
                        if (inet_pton(AF_INET6, optarg, &ipv6) != 1) {
                                fprintf(stderr, "vmgr-bench: --ipv6 takes an IPv6 address\n");
                                return 2;
                        }
                        have_ipv6 = true;
                        break;
                case OPT_UID: {
                        char *end;
                        unsigned long u;

                        errno = 0;
                        u = strtoul(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || *optarg == '-' || u > UINT32_MAX) {
                                fprintf(stderr, "vmgr-bench: --uid takes a number\n");
                                return 2;
                        }
                        uid = (unsigned) u;
                        break;
                }
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
                 (streq(pos[1], "create") || streq(pos[1], "delete") || streq(pos[1], "up")))
                r = group_batch(pos[2], count,
                                streq(pos[1], "create") ? BATCH_CREATE
                                : streq(pos[1], "up")   ? BATCH_UP
                                                        : BATCH_DELETE,
                                spec);
        else if (streq(verb, "vm-cycle") && npos == 4)
                r = vm_cycle(pos[1], pos[2], pos[3]);
        else if (streq(verb, "run") && npos >= 4 && inflight <= runs)
                r = vm_run(pos[1], pos[2], pos + 3, runs, inflight);
        else if (streq(verb, "agent-run") && npos >= 3 && inflight <= runs)
                r = agent_run(pos[1], pos + 2, runs, inflight);
        else if (streq(verb, "raw-boot") && npos >= 2 && socket && have_ipv6)
                r = raw_boot(socket, console, &ipv6, pid_file, pos + 1);
        else if (streq(verb, "addrs") && npos >= 2) {
                r = addrs_print(uid, pos[1], pos + 2, npos - 2);
                if (r < 0)
                        fprintf(stderr, "vmgr-bench: invalid group or VM name\n");
        } else if (streq(verb, "dnsmasq-argv") && npos == 3) {
                r = dnsmasq_argv_print(uid, pos[1], pos[2]);
                if (r < 0)
                        vmgr_print_error(r, "vmgr-bench: cannot build the dnsmasq argv: %m");
        } else if (streq(verb, "dnsmasq-time") && npos == 3) {
                r = dnsmasq_time(uid, pos[1], pos[2]);
                if (r < 0)
                        vmgr_print_error(r, "vmgr-bench: cannot time dnsmasq: %m");
        } else {
                fprintf(stderr, "vmgr-bench: invalid arguments; see --help\n");
                return 2;
        }
        return r < 0 ? 1 : 0;
}
