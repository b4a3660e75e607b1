/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-error.h"
#include "child.h"
#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "netadm-proto.h"
#include "netns.h"
#include "outbound.h"
#include "spec.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

typedef enum PastaState {
        PASTA_STOPPED,
        PASTA_STARTING,                 /* spawned, its pid file not written yet */
        PASTA_RUNNING,
} PastaState;

/* A group waiting for outbound: for pasta to be ready, then for the helper. */
typedef struct OutboundWaiter {
        Group *group;                   /* referenced */
        outbound_handler_t handler;
        struct OutboundWaiter *next;
} OutboundWaiter;

typedef struct Outbound {
        Manager *manager;
        PastaState state;
        pid_t pid;
        int pidfd;
        uint64_t spawned_usec;
        char *pidfile, *logfile;
        sd_event_source *exit_source, *pidfile_source, *timer_source, *loop_exit_source;
        OutboundWaiter *waiters;        /* wait for pasta to be ready */
        uint64_t restart_window_usec;   /* start of the current restart window */
        unsigned restarts;              /* within it */
} Outbound;

/* One pasta per vmgrd, so one of these per process. */
static Outbound *outbound_global;

static int pasta_start(Outbound *o);

/* The namespace holder's pid, whose /proc/PID/ns/{user,net} pasta joins.
 * Returns it, or -EOPNOTSUPP when vmgrd has no namespace of its own. */
static pid_t outbound_holder_pid(Manager *m) {
        return m->netns ? netns_holder_pid(m->netns) : -EOPNOTSUPP;
}

/* Whether the routing table in /proc/net/FILE of vmgrd's own network
 * namespace has a default route through a real interface (the kernel keeps
 * an unreachable IPv6 one on lo). Returns true or false. */
static bool has_default_route(const char *file, bool ipv6) {
        _cleanup_fclose_ FILE *f = NULL;
        char line[512];

        f = fopen(file, "re");
        if (!f)
                return false;
        while (fgets(line, sizeof(line), f)) {
                char dest[64], mask[64], dev[64];
                unsigned flags;

                if (ipv6) {
                        /* dest plen src plen nexthop metric refcnt use flags dev */
                        if (sscanf(line, "%63s %63s %*s %*s %*s %*s %*s %*s %x %63s", dest, mask, &flags, dev) != 4)
                                continue;
                        if (streq(dest, "00000000000000000000000000000000") && streq(mask, "00") &&
                            !streq(dev, "lo") && !(flags & 0x0200 /* RTF_REJECT */))
                                return true;
                } else {
                        /* Iface Destination Gateway Flags RefCnt Use Metric Mask ... */
                        if (sscanf(line, "%63s %63s %*s %x %*s %*s %*s %63s", dev, dest, &flags, mask) != 4)
                                continue;
                        if (streq(dest, "00000000") && streq(mask, "00000000") && (flags & 0x0001 /* RTF_UP */))
                                return true;
                }
        }
        return false;
}

int outbound_check(Manager *m, sd_bus_error *error) {
        if (m->network_mode != NETWORK_MODE_NAMESPACE)
                return vmgr_bus_error_set(error, -EINVAL,
                                         "outbound is available in namespace mode only (vmgrd --network-mode "
                                         "namespace); this vmgrd runs in host mode, where the host itself would "
                                         "have to route and masquerade for the guests");
        if (access(OUTBOUND_PASTA_PATH, X_OK) < 0)
                return vmgr_bus_error_set(error, -EINVAL,
                                         "outbound needs pasta (%s, Debian package passt), which is not installed",
                                         OUTBOUND_PASTA_PATH);
        /* pasta itself says only "No external routable interface". */
        if (!has_default_route("/proc/net/route", false) && !has_default_route("/proc/net/ipv6_route", true))
                return vmgr_bus_error_set(error, -EINVAL,
                                         "outbound needs a default route in vmgrd's own network namespace, and it "
                                         "has none: pasta would have no interface to reach the host's network "
                                         "through; give it one, or create the group without outbound");
        return 0;
}

/* Run and free the waiter: the group hears how it went. */
static void waiter_finish(OutboundWaiter *w, int error, const char *message) {
        w->handler(w->group, error, message);
        group_unref(w->group);
        free(w);
}

static void on_helper_reply(int error, const char *message, int pid, int pidfd, void *userdata) {
        OutboundWaiter *w = userdata;

        if (error < 0)
                log_group_errno(LOG_ERR, error, w->group->name, "vmgr-netadm refused outbound: %s", message);
        else
                log_group(LOG_INFO, w->group->name, "Outbound: the guests reach the host's network through pasta");
        waiter_finish(w, error, message);
}

/* pasta is ready: ask the helper. Returns 0 if the waiter's handler will run, or -errno. */
static int waiter_send(Outbound *o, OutboundWaiter *w) {
        return netadm_client_call(o->manager->netadm, VMGR_NETADM_OUTBOUND_ENABLE, w->group->name, NULL, 0, NULL,
                                  on_helper_reply, w);
}

/* pasta came up, or will not: every waiting group goes on. */
static void waiters_release(Outbound *o, int error, const char *message) {
        OutboundWaiter *w;

        while ((w = o->waiters)) {
                int r = error;

                o->waiters = w->next;
                if (r >= 0) {
                        r = waiter_send(o, w);
                        if (r >= 0)
                                continue;
                        message = "cannot ask vmgr-netadm to enable outbound";
                }
                waiter_finish(w, r, message);
        }
}

/* Forget the process (it has exited, or is about to be killed). */
static void pasta_forget(Outbound *o) {
        o->exit_source = sd_event_source_disable_unref(o->exit_source);
        o->timer_source = sd_event_source_disable_unref(o->timer_source);
        o->pidfd = safe_close(o->pidfd);
        o->pid = 0;
        o->state = PASTA_STOPPED;
}

/* Tell every outbound group's log. */
static void groups_tell(Outbound *o, int level, const char *text) {
        for (Group *g = o->manager->groups; g; g = g->next)
                if (g->spec && g->spec->outbound)
                        log_group(level, g->name, "%s", text);
}

/* pasta's pid, as it wrote it to its pid file, or -errno. */
static pid_t pidfile_read(Outbound *o) {
        _cleanup_fclose_ FILE *f = NULL;
        int pid;

        f = fopen(o->pidfile, "re");
        if (!f)
                return -errno;
        if (fscanf(f, "%d", &pid) != 1 || pid <= 0)
                return -EBADMSG;
        return pid;
}

static int on_pidfile(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        Outbound *o = userdata;

        if (event->len == 0 || !streq(event->name, "pasta.pid") || o->state != PASTA_STARTING ||
            pidfile_read(o) != o->pid)
                return 0;

        /* pasta writes it once the namespace's interface is configured. */
        o->state = PASTA_RUNNING;
        o->timer_source = sd_event_source_disable_unref(o->timer_source);
        log_info("pasta (pid %d) is ready after %.1f ms", (int) o->pid,
                 (double) (now_monotonic_usec() - o->spawned_usec) / 1000.0);
        if (o->restarts > 0)
                groups_tell(o, LOG_NOTICE, "pasta is back: the guests reach the host's network again");
        waiters_release(o, 0, NULL);
        return 0;
}

static int on_ready_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Outbound *o = userdata;

        log_error("pasta did not come up within %llu s; killing it", OUTBOUND_READY_TIMEOUT_USEC / 1000000ULL);
        (void) pidfd_signal(o->pidfd, SIGKILL);
        pasta_forget(o);
        waiters_release(o, -ETIMEDOUT, "pasta did not come up in time (vmgrd's log has its messages)");
        return 0;
}

static int on_restart(sd_event_source *s, uint64_t usec, void *userdata) {
        Outbound *o = userdata;
        int r;

        o->timer_source = sd_event_source_disable_unref(o->timer_source);
        r = pasta_start(o);
        if (r < 0)
                groups_tell(o, LOG_ERR, "pasta cannot be restarted: the guests have lost the host's network");
        return 0;
}

static int on_pasta_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Outbound *o = userdata;
        PastaState was = o->state;
        siginfo_t si = {};
        char how[64] = "exited";
        uint64_t now = now_monotonic_usec();
        int r;

        /* Before the SIGCHLD reaper (priority), so the status is still ours. */
        if (waitid((idtype_t) P_PIDFD, (id_t) o->pidfd, &si, WEXITED | WNOHANG) >= 0 && si.si_pid > 0)
                snprintf(how, sizeof(how), si.si_code == CLD_EXITED ? "exited with status %d" : "was killed by signal %d",
                         si.si_status);
        pasta_forget(o);

        if (o->manager->shutting_down)
                return 0;
        if (was == PASTA_STARTING) {
                log_error("pasta %s before it was ready", how);
                waiters_release(o, -ENETUNREACH,
                                "pasta exited before it was ready (vmgrd's log has its messages; it needs a routable "
                                "interface in vmgrd's network namespace)");
                return 0;
        }

        log_warning("pasta %s; outbound groups have lost the host's network", how);
        groups_tell(o, LOG_WARNING, "pasta exited: the guests have lost the host's network until it is back");
        if (now - o->restart_window_usec > OUTBOUND_RESTART_INTERVAL_USEC) {
                o->restart_window_usec = now;
                o->restarts = 0;
        }
        if (o->restarts >= OUTBOUND_RESTART_BURST) {
                log_error("pasta exited %u times within %llu s; not restarting it", o->restarts,
                          OUTBOUND_RESTART_INTERVAL_USEC / 1000000ULL);
                groups_tell(o, LOG_ERR, "pasta keeps exiting and is not restarted: the guests have lost the host's "
                                        "network");
                return 0;
        }
        o->restarts++;
        /* A second's pause, so that a pasta that exits at once does not spin. */
        r = sd_event_add_time_relative(o->manager->event, &o->timer_source, CLOCK_MONOTONIC, 1000000ULL, 0,
                                       on_restart, o);
        if (r < 0)
                log_error_errno(r, "Cannot arm pasta's restart timer: %m");
        return 0;
}

/* Fork and exec pasta. Returns 0 (state PASTA_STARTING) or -errno (logged). */
static int pasta_spawn(Outbound *o, pid_t holder) {
        char netns[64], userns[64];
        pid_t parent = getpid(), pid;
        int r;

        snprintf(netns, sizeof(netns), "/proc/%d/ns/net", (int) holder);
        snprintf(userns, sizeof(userns), "/proc/%d/ns/user", (int) holder);
        /* Foreground, so that it stays our child; no port forwarded in
         * either direction (-t/-u: host to namespace, -T/-U: namespace to
         * host's loopback); no DHCP, DHCPv6 or router advertisements, which
         * nothing in the namespace asks for (--config-net sets the
         * addresses and routes itself; NDP stays, for the gateway's
         * address). The gateway address stays mapped to the host's
         * loopback (pasta's default). Its log goes to a file, never to
         * syslog. */
        char *const argv[] = {
                (char *) "pasta",
                (char *) "--foreground",
                (char *) "--quiet",
                (char *) "--config-net",
                (char *) "--ns-ifname", (char *) VMGR_OUTBOUND_IFNAME,
                (char *) "--tcp-ports", (char *) "none",
                (char *) "--udp-ports", (char *) "none",
                (char *) "--tcp-ns", (char *) "none",
                (char *) "--udp-ns", (char *) "none",
                (char *) "--no-dhcp",
                (char *) "--no-dhcpv6",
                (char *) "--no-ra",
                (char *) "--log-file", o->logfile,
                (char *) "--log-size", (char *) "1048576",
                (char *) "--pid", o->pidfile,
                (char *) "--netns", netns,
                (char *) "--userns", userns,
                NULL,
        };

        (void) unlink(o->pidfile);
        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "Cannot fork pasta: %m");
        if (pid == 0) {
                int fd;

                /* Dies with vmgrd, even on SIGKILL (this is the loop's
                 * thread, which lives as long as vmgrd); pasta keeps the
                 * setting through its own sandboxing. Its own session: a
                 * terminal's Ctrl-C reaches only vmgrd. */
                (void) setsid();
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
                        _exit(127);
                /* stderr stays vmgrd's: what pasta says before its log file
                 * is open ("No external routable interface") lands there.
                 * An ignored SIGPIPE would make this pasta refuse to start. */
                child_prepare_exec(3);
                execv(OUTBOUND_PASTA_PATH, argv);
                fprintf(stderr, "failed to execute %s: %m\n", OUTBOUND_PASTA_PATH);
                _exit(127);
        }

        o->pid = pid;
        o->spawned_usec = now_monotonic_usec();
        o->state = PASTA_STARTING;
        o->pidfd = pidfd_open_pid(pid);
        if (o->pidfd < 0) {
                r = o->pidfd;
                (void) kill(pid, SIGKILL);
                pasta_forget(o);
                return log_error_errno(r, "Cannot watch pasta: %m");
        }
        r = sd_event_add_io(o->manager->event, &o->exit_source, o->pidfd, EPOLLIN, on_pasta_exit, o);
        if (r >= 0)
                (void) sd_event_source_set_priority(o->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = sd_event_add_time_relative(o->manager->event, &o->timer_source, CLOCK_MONOTONIC,
                                               OUTBOUND_READY_TIMEOUT_USEC, 0, on_ready_timeout, o);
        if (r < 0) {
                (void) pidfd_signal(o->pidfd, SIGKILL);
                pasta_forget(o);
                return log_error_errno(r, "Cannot watch pasta: %m");
        }
        log_debug("Started pasta (pid %d) for the namespace of pid %d", (int) pid, (int) holder);
        return 0;
}

/* Start pasta for vmgrd's namespace. Returns 0 or -errno (logged). */
static int pasta_start(Outbound *o) {
        pid_t holder;
        int r;

        holder = outbound_holder_pid(o->manager);
        if (holder < 0)
                return log_error_errno(holder, "Cannot start pasta: vmgrd has no network namespace of its own");
        if (!o->pidfile_source) {
                r = sd_event_add_inotify(o->manager->event, &o->pidfile_source, o->manager->runtime_dir,
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY | IN_ONLYDIR, on_pidfile, o);
                if (r < 0)
                        return log_error_errno(r, "Cannot watch %s for pasta's pid file: %m", o->manager->runtime_dir);
        }
        return pasta_spawn(o, holder);
}

/* The loop is ending (vmgrd exits): pasta goes with it. */
static int on_loop_exit(sd_event_source *s, void *userdata) {
        Outbound *o = userdata;

        if (o->pidfd >= 0)
                (void) pidfd_signal(o->pidfd, SIGKILL);
        pasta_forget(o);
        waiters_release(o, -ECANCELED, "vmgrd is exiting");
        o->pidfile_source = sd_event_source_disable_unref(o->pidfile_source);
        o->loop_exit_source = sd_event_source_disable_unref(o->loop_exit_source);
        free(o->pidfile);
        free(o->logfile);
        free(o);
        outbound_global = NULL;
        return 0;
}

/* The one Outbound of this vmgrd, made on first use. Returns 0 or -errno. */
static int outbound_get(Manager *m, Outbound **ret) {
        Outbound *o;
        int r;

        if (outbound_global) {
                *ret = outbound_global;
                return 0;
        }
        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->manager = m;
        o->pidfd = -EBADF;
        if (asprintf(&o->pidfile, "%s/pasta.pid", m->runtime_dir) < 0 ||
            asprintf(&o->logfile, "%s/pasta.log", m->runtime_dir) < 0) {
                free(o->pidfile);
                free(o);
                return -ENOMEM;
        }
        r = sd_event_add_exit(m->event, &o->loop_exit_source, on_loop_exit, o);
        if (r < 0) {
                free(o->pidfile);
                free(o->logfile);
                free(o);
                return r;
        }
        *ret = outbound_global = o;
        return 0;
}

int outbound_enable(Group *g, outbound_handler_t handler) {
        Outbound *o;
        OutboundWaiter *w;
        int r;

        r = outbound_get(g->manager, &o);
        if (r < 0)
                return r;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->group = g;
        w->handler = handler;

        switch (o->state) {
        case PASTA_RUNNING:
                r = waiter_send(o, w);
                if (r < 0) {
                        free(w);
                        return r;
                }
                break;
        case PASTA_STOPPED:
                /* A restart timer may be pending: start now instead. */
                o->timer_source = sd_event_source_disable_unref(o->timer_source);
                r = pasta_start(o);
                if (r < 0) {
                        free(w);
                        return r;
                }
                __attribute__((fallthrough));
        case PASTA_STARTING:
                w->next = o->waiters;
                o->waiters = w;
                break;
        }
        group_ref(g);
        return 0;
}

void outbound_stop(void) {
        Outbound *o = outbound_global;

        if (!o || o->pidfd < 0)
                return;
        (void) pidfd_signal(o->pidfd, SIGKILL);
        struct pollfd p = { .fd = o->pidfd, .events = POLLIN };
        (void) poll(&p, 1, 2000);
}

void outbound_kill_stale(Manager *m) {
        _cleanup_free_ char *pidfile = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        char path[64], exe[PATH_MAX];
        const char *base;
        ssize_t n;
        int pid;

        if (asprintf(&pidfile, "%s/pasta.pid", m->runtime_dir) < 0)
                return;
        f = fopen(pidfile, "re");
        if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 1)
                return;
        pidfd = pidfd_open_pid(pid);
        if (pidfd < 0)
                return;
        /* Identity after taking the pidfd: the pid cannot be reused in between. */
        snprintf(path, sizeof(path), "/proc/%d/exe", pid);
        n = readlink(path, exe, sizeof(exe) - 1);
        if (n < 0)
                return;
        exe[n] = 0;
        base = strrchr(exe, '/');
        base = base ? base + 1 : exe;
        if (strncmp(base, "pasta", 5) != 0 && strncmp(base, "passt", 5) != 0)
                return;
        log_info("Stopping pasta (pid %d) left by a previous vmgrd; it is started again", pid);
        if (pidfd_signal(pidfd, SIGKILL) < 0)
                return;
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        (void) poll(&p, 1, 2000);
}
