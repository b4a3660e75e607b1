/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "adopt.h"
#include "bus-error.h"
#include "dnsmasq.h"
#include "fs-util.h"
#include "group.h"
#include "grouplog.h"
#include "kvconf.h"
#include "log.h"
#include "manager.h"
#include "netns.h"
#include "outbound.h"
#include "child.h"
#include "spawn.h"
#include "spec.h"
#include "strv.h"
#include "virt.h"
#include "vm-snapshot.h"
#include "vm.h"
#include "vmgr-error.h"

#define SHUTDOWN_TIMEOUT_USEC (60ULL * 1000000ULL)
#define VMGR_LOCK_NAME "vmgrd.lock"
/* Up to 3 s for the lock, in 20 ms steps. */
#define LOCK_WAIT_STEP_USEC 20000
#define LOCK_WAIT_TRIES 150
#define CHILDREN_GRACE_USEC (2ULL * 1000000ULL)

static int config_assign(const char *key, const char *value, void *userdata, char *error, size_t error_size) {
        ManagerConfig *c = userdata;
        unsigned *target, min, max;

        if (streq(key, "max_groups"))
                target = &c->max_groups, min = 1, max = 4096;
        else if (streq(key, "max_vms_per_group"))
                target = &c->max_vms_per_group, min = 1, max = 256;
        else if (streq(key, "agent_keepalive_sec"))
                target = &c->agent_keepalive_sec, min = 1, max = 3600;
        else if (streq(key, "dnsmasq_ready_timeout_sec"))
                target = &c->dnsmasq_ready_timeout_sec, min = 1, max = 600;
        else if (streq(key, "snapshot_cache_max_mib")) {
                unsigned mib;
                if (vmgr_parse_uint(value, 0, 1u << 30, &mib) < 0) {
                        snprintf(error, error_size, "snapshot_cache_max_mib must be an integer between 0 and %u",
                                 1u << 30);
                        return -EINVAL;
                }
                c->snapshot_cache_max_mib = mib;
                return 0;
        } else if (streq(key, "warm_start")) {
                if (streq(value, "true") || streq(value, "yes") || streq(value, "1"))
                        c->warm_start = true;
                else if (streq(value, "false") || streq(value, "no") || streq(value, "0"))
                        c->warm_start = false;
                else {
                        snprintf(error, error_size, "warm_start must be true or false");
                        return -EINVAL;
                }
                return 0;
        }
        else if (streq(key, "user")) {
                if (!*value || strlen(value) > 64) {
                        snprintf(error, error_size, "user must be a user name");
                        return -EINVAL;
                }
                snprintf(c->user, sizeof(c->user), "%s", value);
                return 0;
        } else if (streq(key, "network_mode")) {
                int mode = network_mode_from_string(value);
                if (mode < 0) {
                        snprintf(error, error_size, "network_mode must be auto, host or namespace");
                        return -EINVAL;
                }
                c->network_mode = mode;
                return 0;
        } else if (streq(key, "accelerator")) {
                int a = vmgr_accel_from_string(value);
                if (a < 0) {
                        snprintf(error, error_size, "accelerator must be auto, kvm or tcg");
                        return -EINVAL;
                }
                c->accelerator = a;
                return 0;
        } else {
                snprintf(error, error_size, "unknown key \"%s\"", key);
                return -EINVAL;
        }
        if (vmgr_parse_uint(value, min, max, target) < 0) {
                snprintf(error, error_size, "%s must be an integer between %u and %u", key, min, max);
                return -EINVAL;
        }
        return 0;
}

int manager_config_load(ManagerConfig *config, const char *path) {
        ManagerConfig c = {
                .max_groups = 64,
                .max_vms_per_group = 32,
                .dnsmasq_ready_timeout_sec = 10,
                .agent_keepalive_sec = 10,
                .user = "vmgr",
                .warm_start = true,
                .snapshot_cache_max_mib = 8192,
        };
        char error[VMGR_ERROR_MAX];
        _cleanup_fclose_ FILE *f = NULL;
        int r;

        if (path) {
                f = fopen(path, "re");
                if (!f)
                        return log_error_errno(errno, "Cannot open config file %s: %m", path);
                r = vmgr_kvconf_parse(f, config_assign, &c, error, sizeof(error));
                if (r < 0)
                        return log_error_errno(r, "Config file %s, %s", path, error);
        }
        *config = c;
        return 0;
}

int manager_new(Manager **ret) {
        Manager *m;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->lock_fd = -EBADF;
        r = sd_event_new(&m->event);
        if (r < 0) {
                free(m);
                return r;
        }
        *ret = m;
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        log_set_group_sink(NULL, NULL);
        vm_snapshot_manager_done(m);
        while (m->groups) {
                Group *g = m->groups;
                m->groups = g->next;
                g->manager = NULL;
                group_unref(g);
        }
        strv_free(m->stale_names);
        sd_event_source_disable_unref(m->stale_timer);
        sd_event_source_disable_unref(m->reexec_source);
        free(m->exe_path);
        sd_event_source_disable_unref(m->adoption_timer);
        netadm_client_free(m->netadm);
        virt_free(m->virt);
        worker_pool_free(m->workers);
        sd_event_source_disable_unref(m->netns_exit_source);
        netns_free(m->netns);
        sd_bus_flush_close_unref(m->bus);
        sd_event_source_disable_unref(m->sigchld_source);
        sd_event_source_disable_unref(m->sigterm_source);
        sd_event_source_disable_unref(m->sigint_source);
        sd_event_source_disable_unref(m->shutdown_timer);
        sd_event_source_disable_unref(m->finish_source);
        sd_event_unref(m->event);
        sockdir_free(m->sockdir);
        safe_close(m->lock_fd);
        free(m->state_dir);
        free(m->runtime_dir);
        free(m->netadm_path);
        free(m->mkguest_path);
        free(m->cache_dir);
        snapshot_store_free(m->snapshots);
        free(m);
        return NULL;
}

const char *network_mode_to_string(NetworkMode mode) {
        switch (mode) {
        case NETWORK_MODE_HOST:
                return "host";
        case NETWORK_MODE_NAMESPACE:
                return "namespace";
        default:
                return "auto";
        }
}

int network_mode_from_string(const char *s) {
        if (streq(s, "auto"))
                return NETWORK_MODE_AUTO;
        if (streq(s, "host"))
                return NETWORK_MODE_HOST;
        if (streq(s, "namespace"))
                return NETWORK_MODE_NAMESPACE;
        return -EINVAL;
}

int manager_guest_socket(Manager *m, int family, int type, int protocol) {
        int fd;

        if (m->netns)
                return netns_socket(m->netns, family, type, protocol);
        fd = socket(family, type | SOCK_CLOEXEC, protocol);
        return fd < 0 ? -errno : fd;
}

int manager_pidfd_open(Manager *m, pid_t pid) {
        if (m->netns)
                return netns_pidfd(m->netns, pid);
        return pidfd_open_pid(pid);
}

Group *manager_find_group(Manager *m, const char *name) {
        for (Group *g = m->groups; g; g = g->next)
                if (streq(g->name, name))
                        return g;
        return NULL;
}

#define WORKER_THREADS 4

/* Route a libvirt domain event to its VM. */
static void on_domain_event(Manager *m, const char *domain, VirtDomainEvent event, const char *why) {
        for (Group *g = m->groups; g; g = g->next)
                for (VM *vm = g->vms; vm; vm = vm->next)
                        if (streq(vm->domain_name, domain)) {
                                vm_domain_event(vm, event, why);
                                return;
                        }
        log_debug("Event for unknown domain %s: %s", domain, why);
}

/* Every connection after the first follows a restart of libvirtd. */
static void on_virt_connection(Manager *m, bool connected) {
        if (!connected)
                return;
        if (m->virt_connections++ > 0)
                manager_virt_reconnected(m);
}

static const VirtCallbacks virt_callbacks = {
        .domain_event = on_domain_event,
        .connection = on_virt_connection,
};

static int on_sigchld(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        /* Everything that ends up our child is reaped here: dnsmasq (unless its
         * watcher got it first), the helper, and any orphan re-parented to us. */
        (void) reap_children();
        return 0;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received %s; deleting all groups", strsignal((int) si->ssi_signo));
        manager_shutdown(m);
        return 0;
}

/* vmgrd's messages about a group also go into the group's log. */
static void manager_log_sink(int level, const char *group, const char *vm, const char *message, void *userdata) {
        Manager *m = userdata;
        Group *g = manager_find_group(m, group);
        char line[2048 + 16];
        int n;

        if (!g || !g->log)
                return;
        n = snprintf(line, sizeof(line), "%s%s", level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " : "",
                     message);
        if (n > 0)
                group_log_append(g->log, vm, GROUP_LOG_VMGRD, line, MIN((size_t) n, sizeof(line) - 1));
}

/* Whether the helper would run in host mode for us: it says itself
 * (`vmgr-netadm --check`: capabilities, policy file, our group). Returns 1,
 * or 0 with the helper's reason in why. */
static int helper_admits_host_mode(Manager *m, char *why, size_t size) {
        char *argv[] = { m->netadm_path, (char *) "--check", NULL };
        SpawnResult res;
        int r;

        r = spawn_run(argv, 10 * 1000000ULL, why, size, &res);
        if (r < 0) {
                (void) vmgr_error_printf(why, size, r, "cannot run %s: %m", m->netadm_path);
                return 0;
        }
        if (spawn_exited_with(&res, 0))
                return 1;
        spawn_first_line(why);
        if (!why[0])
                snprintf(why, size, "%s --check failed", m->netadm_path);
        return 0;
}

static int on_netns_holder_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;

        /* Every group's network, libvirtd and QEMU went with it: nothing to save. */
        log_error("The namespace holder (pid %d) exited: every group's network is gone; exiting",
                  (int) netns_holder_pid(m->netns));
        m->netns_exit_source = sd_event_source_disable_unref(m->netns_exit_source);
        return sd_event_exit(m->event, 1);
}

/* Settle the network mode, and in namespace mode make the namespaces.
 * Returns 0 or -errno (logged). */
static int manager_network_setup(Manager *m) {
        char why[512] = "";
        int r;

        switch (m->config.network_mode) {
        case NETWORK_MODE_HOST:
        case NETWORK_MODE_NAMESPACE:
                m->network_mode = m->config.network_mode;
                log_info("Network mode: %s (as configured)", network_mode_to_string(m->network_mode));
                break;
        default:
                if (helper_admits_host_mode(m, why, sizeof(why))) {
                        m->network_mode = NETWORK_MODE_HOST;
                        log_info("Network mode: host (the helper %s may work in this network namespace)",
                                 m->netadm_path);
                } else {
                        m->network_mode = NETWORK_MODE_NAMESPACE;
                        log_info("Network mode: namespace (host mode is not available: %s)", why);
                }
        }
        if (m->network_mode != NETWORK_MODE_NAMESPACE)
                return 0;

        /* The holder of a vmgrd that died (or re-executed itself) keeps its
         * groups running: go on in its namespaces, and adopt them. */
        r = netns_attach(geteuid(), getegid(), m->lock_fd, m->runtime_dir, VMGR_LOCK_NAME, &m->netns);
        if (r < 0)
                return r;
        if (r > 0)
                log_info("Attached to the namespaces a previous vmgrd left (holder pid %d)",
                         (int) netns_holder_pid(m->netns));
        else {
                r = netns_new(geteuid(), getegid(), m->lock_fd, m->runtime_dir, VMGR_LOCK_NAME, &m->netns);
                if (r < 0)
                        return r;
        }
        r = sd_event_add_io(m->event, &m->netns_exit_source, netns_holder_pidfd(m->netns), EPOLLIN,
                            on_netns_holder_exit, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the namespace holder: %m");
        log_info("Groups live in namespaces of vmgrd's own, held by pid %d; `vmgrctl enter` reaches them",
                 (int) netns_holder_pid(m->netns));
        return 0;
}

int manager_startup(Manager *m) {
        _cleanup_free_ char *groups_state = NULL, *groups_run = NULL, *lock = NULL, *probe = NULL;
        const char *why;
        int r;

        if (asprintf(&groups_state, "%s/groups", m->state_dir) < 0 ||
            asprintf(&groups_run, "%s/groups", m->runtime_dir) < 0 ||
            asprintf(&lock, "%s/" VMGR_LOCK_NAME, m->runtime_dir) < 0 ||
            /* The directory of a group with the longest name. */
            asprintf(&probe, "%s/groups/%0*d", m->runtime_dir, VMGR_NAME_MAX, 0) < 0)
                return log_oom();

        /* The helper accepts only plain paths for dnsmasq's files; say so now rather than at the first group. */
        if (vmgr_netadm_dir_check(probe, &why) < 0)
                return log_error_errno(EINVAL, "Runtime directory %s cannot be used: %s; pass another --runtime-dir",
                                       m->runtime_dir, why);

        r = mkdir_p(groups_state, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", groups_state);
        r = mkdir_p(groups_run, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", groups_run);

        m->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (m->lock_fd < 0)
                return log_error_errno(errno, "Cannot open %s: %m", lock);
        /* A namespace-mode vmgrd that was killed leaves its namespace holder
         * cleaning up for a moment, holding the lock: wait for that. */
        for (unsigned i = 0; flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0; i++) {
                if (errno == EWOULDBLOCK && i < LOCK_WAIT_TRIES) {
                        (void) usleep(LOCK_WAIT_STEP_USEC);
                        continue;
                }
                if (errno == EWOULDBLOCK)
                        return log_error_errno(EBUSY, "Another vmgrd already uses %s", m->runtime_dir);
                return log_error_errno(errno, "Cannot lock %s: %m", lock);
        }
        /* Locked: no other vmgrd reads or replaces RUNTIME/sockdir meanwhile. */
        r = sockdir_setup(m->runtime_dir, SOCKDIR_BASE, &m->sockdir);
        if (r < 0)
                return r;

        r = sd_event_add_signal(m->event, &m->sigchld_source, SIGCHLD | SD_EVENT_SIGNAL_PROCMASK, on_sigchld, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigterm_source, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_sigterm,
                                        m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigint_source, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_sigterm, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %m");
        (void) sd_event_source_set_priority(m->sigchld_source, SD_EVENT_PRIORITY_NORMAL + 10);

        r = manager_network_setup(m);
        if (r < 0)
                return r;

        r = netadm_client_new(m->event, m->netadm_path, m->netns, &m->netadm);
        if (r < 0)
                return log_oom();
        r = worker_pool_new(m->event, WORKER_THREADS, &m->workers);
        if (r < 0)
                return log_error_errno(r, "Failed to start worker threads: %m");
        r = snapshot_store_new(m->cache_dir, m->config.snapshot_cache_max_mib << 20, &m->snapshots);
        if (r < 0)
                return log_error_errno(r, "Cannot use the snapshot store in %s/snapshots: %m", m->cache_dir);
        r = virt_new(m, &virt_callbacks, &m->virt);
        if (r < 0)
                return r;

        log_set_group_sink(manager_log_sink, m);
        return manager_recover(m);
}

static int on_shutdown_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_error("Groups did not go away in time; killing all remaining processes");
        (void) signal_children(SIGKILL);
        (void) wait_children(CHILDREN_GRACE_USEC);
        m->exit_code = 1;
        return sd_event_exit(m->event, m->exit_code);
}

/* All groups are gone: stop the helper, make sure no descendant is left, exit. */
static int on_finish_shutdown(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        /* What a previous vmgrd left and could not be cleaned up yet goes too. */
        manager_stale_retry_all(m);
        netadm_client_close(m->netadm);
        m->virt = virt_free(m->virt);
        /* Namespace mode: SIGKILL to the holder ends everything left in its
         * namespaces (it ignores SIGTERM, as PID 1 of its namespace). */
        m->netns_exit_source = sd_event_source_disable_unref(m->netns_exit_source);
        m->netns = netns_free(m->netns);
        (void) signal_children(SIGTERM);
        if (wait_children(CHILDREN_GRACE_USEC) < 0) {
                log_warning("Some processes did not exit on SIGTERM; killing them");
                (void) signal_children(SIGKILL);
                if (wait_children(CHILDREN_GRACE_USEC) < 0) {
                        log_error("Some processes are still running after SIGKILL");
                        m->exit_code = 1;
                }
        }
        m->sockdir = sockdir_remove(m->sockdir);
        log_info("All groups deleted and all processes gone; exiting");
        return sd_event_exit(m->event, m->exit_code);
}

int manager_reexec_check(Manager *m, sd_bus_error *error) {
        if (m->shutting_down || m->reexec_source)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "vmgrd is %s",
                                          m->shutting_down ? "shutting down" : "re-executing already");
        if (!m->exe_path)
                return vmgr_bus_error_set(error, -VMGR_BUS_ERR_NOT_SUPPORTED,
                                          "vmgrd could not tell which file it was started from");
        for (Group *g = m->groups; g; g = g->next)
                if (g->state == GROUP_CREATING || g->state == GROUP_DELETING)
                        return vmgr_bus_error_set(error, -VMGR_ERR_BUSY,
                                                  "group '%s' is being %s; re-execute once it is done", g->name,
                                                  g->state == GROUP_CREATING ? "created" : "deleted");
        return 0;
}

/* Re-execute once every group's state file is on disk (each write is
 * queued on the pool) and the helper has answered every call, within a
 * second. */
static int on_reexec(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        bool pending = false;
        int r;

        /* State files on disk, and no helper call whose answer would be lost. */
        for (Group *g = m->groups; g; g = g->next)
                pending = pending || g->files_jobs;
        pending = pending || netadm_client_pending(m->netadm) > 0;
        if (pending && m->reexec_tries++ < 100) {
                (void) sd_event_source_set_time_relative(s, 10000);
                return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        log_info("Re-executing %s; every group is kept", m->exe_path);
        if (m->bus)
                (void) sd_bus_flush(m->bus);
        /* Every fd of ours is O_CLOEXEC: the lock, the bus and the helper's
         * socket close here; children (libvirtd, dnsmasq, QEMU) stay ours,
         * as the child-subreaper setting does. The namespace holder stays,
         * for the new image to attach to; pasta does not (it would hold
         * its interface name in there), the new image starts its own. */
        outbound_stop();
        if (m->netns) {
                m->netns_exit_source = sd_event_source_disable_unref(m->netns_exit_source);
                m->netns = netns_release(m->netns);
        }
        execv(m->exe_path, m->argv);
        r = -errno;
        log_error_errno(r, "Cannot re-execute %s: %m; going on as before", m->exe_path);
        if (m->network_mode == NETWORK_MODE_NAMESPACE &&
            (netns_attach(geteuid(), getegid(), m->lock_fd, m->runtime_dir, VMGR_LOCK_NAME, &m->netns) <= 0 ||
             sd_event_add_io(m->event, &m->netns_exit_source, netns_holder_pidfd(m->netns), EPOLLIN,
                             on_netns_holder_exit, m) < 0)) {
                log_error("Cannot attach to the namespace holder again; exiting");
                return sd_event_exit(m->event, 1);
        }
        m->reexec_source = sd_event_source_disable_unref(m->reexec_source);
        m->reexec_tries = 0;
        return 0;
}

int manager_reexec_schedule(Manager *m) {
        int r;

        r = sd_event_add_time_relative(m->event, &m->reexec_source, CLOCK_MONOTONIC, 0, 0, on_reexec, m);
        if (r < 0)
                return log_error_errno(r, "Cannot re-execute: %m");
        /* The guests' journal cursors as they are now (no entry is taken
         * from here on: journal-follow.c), for the next image to resume. */
        for (Group *g = m->groups; g; g = g->next)
                if (g->state == GROUP_RUNNING)
                        group_save(g);
        return 0;
}

void manager_maybe_finish_shutdown(Manager *m) {
        if (!m->shutting_down || m->n_groups > 0 || m->finish_source)
                return;
        /* Deferred: we may be deep inside a helper or group callback here. */
        if (sd_event_add_defer(m->event, &m->finish_source, on_finish_shutdown, m) < 0)
                (void) sd_event_exit(m->event, 1);
}

void manager_shutdown(Manager *m) {
        Group *next;

        if (m->shutting_down)
                return;
        m->shutting_down = true;
        (void) sd_notify(false, "STOPPING=1");

        (void) sd_event_add_time_relative(m->event, &m->shutdown_timer, CLOCK_MONOTONIC, SHUTDOWN_TIMEOUT_USEC, 0,
                                          on_shutdown_timeout, m);

        for (Group *g = m->groups; g; g = next) {
                next = g->next;
                (void) group_delete(g, NULL);
        }
        manager_maybe_finish_shutdown(m);
}
