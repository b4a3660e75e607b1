/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dnsmasq.h"
#include "log.h"
#include "child.h"

#define DNSMASQ_STOP_TIMEOUT_USEC (3ULL * 1000000ULL)
#define DNSMASQ_RESTART_DELAY_USEC (100ULL * 1000ULL)

struct Dnsmasq {
        Group *group;
        const DnsmasqCallbacks *cb;
        DnsmasqState state;
        pid_t pid;                      /* as vmgrd's PID namespace sees it */
        pid_t own_pid;                  /* as dnsmasq sees itself: what its pid file says */
        int pidfd;
        sd_event_source *exit_source, *watch_source, *timer_source;
        bool start_in_flight;           /* a helper call is pending */
        bool ready_reported;            /* the first start has been reported */
        bool pidfile_seen;              /* pid file written before we knew the pid */
        unsigned restarts;
        uint64_t restart_times[DNSMASQ_RESTART_BURST];
};

static const char *const state_names[_DNSMASQ_STATE_MAX] = {
        [DNSMASQ_STOPPED] = "stopped",
        [DNSMASQ_STARTING] = "starting",
        [DNSMASQ_RUNNING] = "running",
        [DNSMASQ_RESTARTING] = "restarting",
        [DNSMASQ_STOPPING] = "stopping",
        [DNSMASQ_FAILED] = "failed",
};

const char *dnsmasq_state_to_string(DnsmasqState s) {
        return (unsigned) s < _DNSMASQ_STATE_MAX ? state_names[s] : NULL;
}

DnsmasqState dnsmasq_state(Dnsmasq *d) {
        return d->state;
}

unsigned dnsmasq_restarts(Dnsmasq *d) {
        return d->restarts;
}

pid_t dnsmasq_pid(Dnsmasq *d) {
        return d->state == DNSMASQ_RUNNING ? d->pid : 0;
}

static sd_event *dnsmasq_event(Dnsmasq *d) {
        return d->group->manager->event;
}

static void set_state(Dnsmasq *d, DnsmasqState s) {
        if (d->state == s)
                return;
        d->state = s;
        d->cb->changed(d->group);
}

static void process_forget(Dnsmasq *d) {
        d->exit_source = sd_event_source_disable_unref(d->exit_source);
        d->pidfd = safe_close(d->pidfd);
        d->pid = d->own_pid = 0;
}

int dnsmasq_new(Group *g, const DnsmasqCallbacks *cb, Dnsmasq **ret) {
        Dnsmasq *d;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->group = g;
        d->cb = cb;
        d->pidfd = -EBADF;
        *ret = d;
        return 0;
}

Dnsmasq *dnsmasq_free(Dnsmasq *d) {
        if (!d)
                return NULL;
        if (d->pidfd >= 0)
                (void) pidfd_signal(d->pidfd, SIGKILL);
        process_forget(d);
        sd_event_source_disable_unref(d->watch_source);
        sd_event_source_disable_unref(d->timer_source);
        free(d);
        return NULL;
}

static int pidfile_path(Dnsmasq *d, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/dnsmasq.pid", d->group->runtime_dir);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* Read the pid from dnsmasq's pid file. Returns the pid or -errno. */
static int pidfile_read(Dnsmasq *d) {
        char path[4096];
        _cleanup_fclose_ FILE *f = NULL;
        int pid;

        if (pidfile_path(d, path, sizeof(path)) < 0)
                return -ENAMETOOLONG;
        f = fopen(path, "re");
        if (!f)
                return -errno;
        if (fscanf(f, "%d", &pid) != 1 || pid <= 0)
                return -EBADMSG;
        return pid;
}

/* The last non-empty line dnsmasq wrote, to explain a failure. */
static void last_words(Dnsmasq *d, char *buf, size_t size) {
        static const char *const files[] = { "dnsmasq.stderr", "dnsmasq.log" };

        snprintf(buf, size, "no message");
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                char path[4096], line[512], last[512] = "";
                _cleanup_fclose_ FILE *f = NULL;

                snprintf(path, sizeof(path), "%s/%s", d->group->runtime_dir, files[i]);
                f = fopen(path, "re");
                if (!f)
                        continue;
                while (fgets(line, sizeof(line), f)) {
                        line[strcspn(line, "\n")] = 0;
                        if (*line)
                                snprintf(last, sizeof(last), "%s", line);
                }
                if (*last) {
                        snprintf(buf, size, "%s", last);
                        return;
                }
        }
}

static void timer_arm(Dnsmasq *d, uint64_t usec, sd_event_time_handler_t handler);
static int dnsmasq_start_internal(Dnsmasq *d);
static bool is_our_dnsmasq(pid_t pid, const char *pidfile);

/* The first start failed: report it once. */
static void report_start_failure(Dnsmasq *d, int error, const char *message) {
        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        set_state(d, DNSMASQ_FAILED);
        if (!d->ready_reported) {
                d->ready_reported = true;
                d->cb->ready(d->group, error, message);
        }
}

static void became_ready(Dnsmasq *d) {
        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        d->pidfile_seen = false;
        log_group(LOG_INFO, d->group->name, "dnsmasq is ready (pid %d)", (int) d->pid);
        set_state(d, DNSMASQ_RUNNING);
        if (!d->ready_reported) {
                d->ready_reported = true;
                d->cb->ready(d->group, 0, NULL);
        }
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Dnsmasq *d = userdata;
        _cleanup_(group_unrefp) _unused_ Group *hold = group_ref(d->group); /* callbacks may drop the group */
        int r;

        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        r = dnsmasq_start_internal(d);
        if (r < 0) {
                log_group_errno(LOG_ERR, r, d->group->name, "Failed to restart dnsmasq: %m");
                set_state(d, DNSMASQ_FAILED);
        }
        return 0;
}

/* dnsmasq died while the group runs: restart it unless it keeps dying. */
static void schedule_restart(Dnsmasq *d) {
        uint64_t now = 0, delay;
        unsigned recent = 0;

        (void) sd_event_now(dnsmasq_event(d), CLOCK_MONOTONIC, &now);
        for (size_t i = 0; i < DNSMASQ_RESTART_BURST; i++)
                if (d->restart_times[i] && now - d->restart_times[i] < DNSMASQ_RESTART_INTERVAL_USEC)
                        recent++;
        if (recent >= DNSMASQ_RESTART_BURST) {
                log_group(LOG_ERR, d->group->name,
                          "dnsmasq died %u times within %llu s; not restarting it again", recent,
                          (unsigned long long) (DNSMASQ_RESTART_INTERVAL_USEC / 1000000ULL));
                set_state(d, DNSMASQ_FAILED);
                return;
        }

        d->restart_times[d->restarts % DNSMASQ_RESTART_BURST] = now;
        d->restarts++;
        delay = DNSMASQ_RESTART_DELAY_USEC << recent;
        log_group(LOG_WARNING, d->group->name, "Restarting dnsmasq in %llu ms (restart %u)",
                  (unsigned long long) (delay / 1000), d->restarts);
        set_state(d, DNSMASQ_RESTARTING);
        d->cb->changed(d->group); /* the restart count changed too */
        timer_arm(d, delay, on_restart_timer);
}

static int on_process_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Dnsmasq *d = userdata;
        _cleanup_(group_unrefp) _unused_ Group *hold = group_ref(d->group); /* callbacks may drop the group */
        siginfo_t si = {};
        char why[512];

        /* Reap it here, before the generic SIGCHLD reaper, to learn how it ended. */
        if (waitid(P_PIDFD, (id_t) d->pidfd, &si, WEXITED | WNOHANG) >= 0 && si.si_pid > 0)
                snprintf(why, sizeof(why), si.si_code == CLD_EXITED ? "exited with status %d" : "was killed by signal %d",
                         si.si_status);
        else
                snprintf(why, sizeof(why), "exited");
        log_group(d->state == DNSMASQ_STOPPING ? LOG_DEBUG : LOG_WARNING, d->group->name, "dnsmasq (pid %d) %s",
                  (int) d->pid, why);
        process_forget(d);

        switch (d->state) {
        case DNSMASQ_STOPPING:
                d->timer_source = sd_event_source_disable_unref(d->timer_source);
                set_state(d, DNSMASQ_STOPPED);
                d->cb->stopped(d->group);
                break;
        case DNSMASQ_STARTING:
        case DNSMASQ_RESTARTING:
                if (!d->ready_reported) {
                        char words[400], message[1024];
                        last_words(d, words, sizeof(words));
                        snprintf(message, sizeof(message), "dnsmasq %s during start-up: %s", why, words);
                        report_start_failure(d, -EIO, message);
                } else
                        schedule_restart(d);
                break;
        case DNSMASQ_RUNNING:
                schedule_restart(d);
                break;
        default:
                break;
        }
        return 0;
}

static int on_ready_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Dnsmasq *d = userdata;
        _cleanup_(group_unrefp) _unused_ Group *hold = group_ref(d->group); /* callbacks may drop the group */

        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        log_group(LOG_ERR, d->group->name, "dnsmasq did not write its pid file in time");
        if (d->pidfd >= 0)
                (void) pidfd_signal(d->pidfd, SIGKILL);
        if (!d->ready_reported)
                report_start_failure(d, -ETIMEDOUT, "dnsmasq did not become ready in time");
        return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Dnsmasq *d = userdata;

        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        log_group(LOG_WARNING, d->group->name, "dnsmasq did not stop on SIGTERM; killing it");
        if (d->pidfd >= 0)
                (void) pidfd_signal(d->pidfd, SIGKILL);
        return 0;
}

static void timer_arm(Dnsmasq *d, uint64_t usec, sd_event_time_handler_t handler) {
        int r;

        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        r = sd_event_add_time_relative(dnsmasq_event(d), &d->timer_source, CLOCK_MONOTONIC, usec, 0, handler, d);
        if (r < 0)
                log_group_errno(LOG_ERR, r, d->group->name, "Failed to arm a dnsmasq timer: %m");
}

static void check_ready(Dnsmasq *d) {
        if ((d->state == DNSMASQ_STARTING || d->state == DNSMASQ_RESTARTING) && d->pid > 0 &&
            pidfile_read(d) == d->own_pid)
                became_ready(d);
}

static int on_pidfile(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        Dnsmasq *d = userdata;
        _cleanup_(group_unrefp) _unused_ Group *hold = group_ref(d->group); /* callbacks may drop the group */

        if (event->len == 0)
                return 0;
        if (streq(event->name, "dnsmasq.leases")) {
                d->cb->leases_changed(d->group);
                return 0;
        }
        if (!streq(event->name, "dnsmasq.pid"))
                return 0;
        if (d->pid == 0)
                d->pidfile_seen = true; /* the helper's reply is still on its way */
        else
                check_ready(d);
        return 0;
}

static void on_started(int error, const char *message, int pid, int pidfd, void *userdata) {
        Dnsmasq *d = userdata;
        Group *g = d->group;
        int r;

        d->start_in_flight = false;

        if (error < 0) {
                log_group_errno(LOG_ERR, error, g->name, "vmgr-netadm could not start dnsmasq: %s", message);
                if (d->state == DNSMASQ_STOPPING) {
                        set_state(d, DNSMASQ_STOPPED);
                        d->cb->stopped(g);
                } else if (!d->ready_reported)
                        report_start_failure(d, error, message);
                else
                        set_state(d, DNSMASQ_FAILED);
                group_unref(g);
                return;
        }

        /* The helper reports the pid it sees, which in namespace mode is one
         * of the namespace's own: ask the pidfd for ours. */
        d->own_pid = pid;
        d->pid = pidfd_get_pid(pidfd);
        if (d->pid <= 0)
                d->pid = pid;
        d->pidfd = pidfd;
        r = sd_event_add_io(dnsmasq_event(d), &d->exit_source, d->pidfd, EPOLLIN, on_process_exit, d);
        if (r >= 0)
                /* Before the SIGCHLD reaper, so on_process_exit() can collect the status. */
                (void) sd_event_source_set_priority(d->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0) {
                log_group_errno(LOG_ERR, r, g->name, "Failed to watch dnsmasq: %m");
                (void) pidfd_signal(d->pidfd, SIGKILL);
                process_forget(d);
                report_start_failure(d, r, "failed to watch dnsmasq");
                group_unref(g);
                return;
        }

        if (d->state == DNSMASQ_STOPPING) {
                /* Stopped while the start was in flight. */
                (void) pidfd_signal(d->pidfd, SIGTERM);
                timer_arm(d, DNSMASQ_STOP_TIMEOUT_USEC, on_stop_timeout);
        } else if (d->pidfile_seen || pidfile_read(d) == d->pid)
                check_ready(d);

        group_unref(g);
}

/* Get ready for the answer of a helper call that starts dnsmasq: no stale
 * pid file, the directory watched, the state, the ready timeout. The call
 * holds a reference on the group. Returns 0 or -errno. */
static int start_prepare(Dnsmasq *d) {
        Group *g = d->group;
        char path[4096];
        int r;

        if (pidfile_path(d, path, sizeof(path)) < 0)
                return -ENAMETOOLONG;
        (void) unlink(path);
        d->pidfile_seen = false;

        if (!d->watch_source) {
                r = sd_event_add_inotify(dnsmasq_event(d), &d->watch_source, g->runtime_dir,
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY | IN_ONLYDIR, on_pidfile, d);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* dnsmasq has this long to write its pid file. */
static void ready_timer_arm(Dnsmasq *d) {
        timer_arm(d, (uint64_t) d->group->manager->config.dnsmasq_ready_timeout_sec * 1000000ULL, on_ready_timeout);
}

/* The call is out: count it as in flight. */
static void start_sent(Dnsmasq *d) {
        group_ref(d->group);
        d->start_in_flight = true;
        if (d->state != DNSMASQ_RESTARTING)
                set_state(d, DNSMASQ_STARTING);
}

static int dnsmasq_start_internal(Dnsmasq *d) {
        Group *g = d->group;
        int r;

        r = start_prepare(d);
        if (r < 0)
                return r;
        r = netadm_client_call(g->manager->netadm, VMGR_NETADM_DNSMASQ_START, g->name, NULL, 0, g->runtime_dir,
                               on_started, d);
        if (r < 0)
                return r;
        start_sent(d);
        ready_timer_arm(d);
        return 0;
}

int dnsmasq_start(Dnsmasq *d) {
        d->ready_reported = false;
        return dnsmasq_start_internal(d);
}

int dnsmasq_start_prepare(Dnsmasq *d) {
        d->ready_reported = false;
        return start_prepare(d);
}

void dnsmasq_start_sent(Dnsmasq *d) {
        /* "starting" only with the answer, after the network's part of it
         * (the order in which the group's properties change stays that of
         * GROUP_CREATE then DNSMASQ_START). */
        group_ref(d->group);
        d->start_in_flight = true;
}

void dnsmasq_start_answered(Dnsmasq *d, int error, const char *message, int pid, int pidfd) {
        Group *g = d->group;

        if (error < 0) {
                /* The group's creation failed with it, and the network's
                 * part of the answer says why: this dnsmasq never ran. */
                d->start_in_flight = false;
                if (d->state == DNSMASQ_STOPPING) {
                        set_state(d, DNSMASQ_STOPPED);
                        d->cb->stopped(g);
                }
                group_unref(g);
                return;
        }
        if (d->state == DNSMASQ_STOPPED)
                set_state(d, DNSMASQ_STARTING);
        /* Timed from the answer: until then the helper's own watchdog
         * applies, and a group being created has nothing else in flight
         * that could start its undo meanwhile. */
        if (d->state == DNSMASQ_STARTING)
                ready_timer_arm(d);
        on_started(error, message, pid, pidfd, d);
}

void dnsmasq_stop(Dnsmasq *d) {
        d->watch_source = sd_event_source_disable_unref(d->watch_source);

        if (d->pidfd >= 0) {
                set_state(d, DNSMASQ_STOPPING);
                (void) pidfd_signal(d->pidfd, SIGTERM);
                timer_arm(d, DNSMASQ_STOP_TIMEOUT_USEC, on_stop_timeout);
                return;
        }
        if (d->start_in_flight) {
                set_state(d, DNSMASQ_STOPPING); /* on_started() kills it */
                d->timer_source = sd_event_source_disable_unref(d->timer_source);
                return;
        }

        d->timer_source = sd_event_source_disable_unref(d->timer_source);
        set_state(d, DNSMASQ_STOPPED);
        d->cb->stopped(d->group);
}

int dnsmasq_lease_ipv4(const char *runtime_dir, const uint8_t mac[6], char ret[static INET_ADDRSTRLEN]) {
        char path[PATH_MAX], want[VMGR_MAC_STRLEN], line[512], found[INET_ADDRSTRLEN] = "";
        _cleanup_fclose_ FILE *f = NULL;

        vmgr_mac_format(mac, want);
        snprintf(path, sizeof(path), "%s/dnsmasq.leases", runtime_dir);
        f = fopen(path, "re");
        if (f)
                while (fgets(line, sizeof(line), f)) {
                        char lmac[64], ip[64];
                        if (sscanf(line, "%*s %63s %63s", lmac, ip) == 2 && strcasecmp(lmac, want) == 0 &&
                            strlen(ip) < sizeof(found))
                                strcpy(found, ip);
                }
        strcpy(ret, found);
        return 0;
}

/* Is pid a dnsmasq that writes pidfile, i.e. one of ours left behind? */
static bool is_our_dnsmasq(pid_t pid, const char *pidfile) {
        char path[64], want[4200];
        _cleanup_free_ char *cmdline = NULL;
        size_t len = 0;
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        cmdline = malloc(65536);
        if (!cmdline)
                return false;
        while ((n = read(fd, cmdline + len, 65535 - len)) > 0)
                len += (size_t) n;
        cmdline[len] = 0;
        snprintf(want, sizeof(want), "--pid-file=%s", pidfile);
        for (size_t i = 0; i < len; i += strlen(cmdline + i) + 1)
                if (streq(cmdline + i, want))
                        return true;
        return false;
}

void dnsmasq_kill_stale(Manager *m, const char *group, const char *runtime_dir) {
        char pidfile[4096];
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        int pid;

        snprintf(pidfile, sizeof(pidfile), "%s/dnsmasq.pid", runtime_dir);
        f = fopen(pidfile, "re");
        if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 1)
                return;
        /* The pid dnsmasq wrote is its namespace's in namespace mode. */
        pidfd = manager_pidfd_open(m, pid);
        if (pidfd < 0)
                return;
        pid = pidfd_get_pid(pidfd);
        if (pid <= 0)
                return;
        /* Check identity after taking the pidfd, so the pid cannot be reused in between. */
        if (!is_our_dnsmasq(pid, pidfile))
                return;
        log_group(LOG_INFO, group, "Killing dnsmasq (pid %d) left by a previous vmgrd", pid);
        if (pidfd_signal(pidfd, SIGKILL) < 0)
                return;
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        (void) poll(&p, 1, 2000);
}

int dnsmasq_adopt(Dnsmasq *d, unsigned restarts) {
        Group *g = d->group;
        char path[4096];
        _cleanup_close_ int pidfd = -EBADF;
        int pid, r;

        d->restarts = restarts;
        d->ready_reported = true; /* the group runs: a death from here on is a restart */
        if (pidfile_path(d, path, sizeof(path)) < 0)
                return -ENAMETOOLONG;
        r = sd_event_add_inotify(dnsmasq_event(d), &d->watch_source, g->runtime_dir,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY | IN_ONLYDIR, on_pidfile, d);
        if (r < 0)
                return r;

        pid = pidfile_read(d);
        if (pid > 1)
                pidfd = manager_pidfd_open(g->manager, pid);
        /* Identity after taking the pidfd: the pid cannot be reused in between. */
        if (pidfd >= 0) {
                pid_t own = pidfd_get_pid(pidfd);
                if (own <= 0 || !is_our_dnsmasq(own, path))
                        pidfd = safe_close(pidfd);
                else {
                        d->own_pid = pid;
                        d->pid = own;
                }
        }
        if (pidfd < 0) {
                log_group(LOG_WARNING, g->name, "dnsmasq of the group was gone when vmgrd started; restarting it");
                d->pid = d->own_pid = 0;
                set_state(d, DNSMASQ_RESTARTING);
                r = dnsmasq_start_internal(d);
                if (r < 0)
                        set_state(d, DNSMASQ_FAILED);
                return r < 0 ? r : 0;
        }
        d->pidfd = TAKE_FD(pidfd);
        r = sd_event_add_io(dnsmasq_event(d), &d->exit_source, d->pidfd, EPOLLIN, on_process_exit, d);
        if (r < 0) {
                process_forget(d);
                return r;
        }
        (void) sd_event_source_set_priority(d->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        d->state = DNSMASQ_RUNNING;
        return d->pid;
}
