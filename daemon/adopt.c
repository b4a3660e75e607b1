/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a starting vmgrd does with what a previous one left: every group
 * whose state file says "running" is adopted (group-state.c), every other
 * one (being created or deleted, failed, unreadable, or whose bridge is
 * gone) is cleaned up. See docs/design.md, "Restart after a crash".
 */

#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "adopt.h"
#include "dnsmasq.h"
#include "domain-xml.h"
#include "fd-util.h"
#include "fs-util.h"
#include "group-state.h"
#include "group.h"
#include "log.h"
#include "macro.h"
#include "outbound.h"
#include "strv.h"
#include "virt.h"
#include "vm-snapshot.h"
#include "vm.h"

/* Longest time a restart waits for libvirt to say which domains run. */
#define ADOPT_TIMEOUT_USEC (60ULL * 1000000ULL)
/* How often the clean-up of a group a previous vmgrd left is tried again
 * after it failed (the helper could not run, say). */
#define STALE_RETRY_USEC (10ULL * 1000000ULL)

typedef struct Found {
        char name[VMGR_NAME_MAX + 1];
        json_object *state;     /* parsed, to adopt; NULL: to clean up */
} Found;

/* Undo a group a previous vmgrd left and that is not adopted. Returns 0,
 * or -errno when its network could not be deleted: the state file stays,
 * and the name stays reserved (manager_stale_reserved()). */
static int cleanup_stale_group(Manager *m, const char *name) {
        _cleanup_free_ char *dir = NULL, *state_file = NULL, *state_subdir = NULL;
        char message[VMGR_NETADM_MESSAGE_MAX] = "";
        int r;

        if (asprintf(&dir, "%s/groups/%s", m->runtime_dir, name) < 0 ||
            asprintf(&state_file, "%s/groups/%s.json", m->state_dir, name) < 0 ||
            asprintf(&state_subdir, "%s/groups/%s", m->state_dir, name) < 0)
                return -ENOMEM;

        dnsmasq_kill_stale(m, name, dir);

        r = netadm_client_call_sync(m->netadm, VMGR_NETADM_GROUP_DELETE, name, NULL, 0, NULL, message);
        if (r < 0) {
                if (*message)
                        return log_group_errno(LOG_ERR, r, name, "Could not delete the network of stale group: %s",
                                               message);
                return log_group_errno(LOG_ERR, r, name, "Could not delete the network of stale group: %m");
        }

        r = rm_rf(dir);
        if (r < 0)
                log_group_errno(LOG_WARNING, r, name, "Failed to remove %s: %m", dir);
        r = rm_rf(state_subdir);
        if (r < 0)
                log_group_errno(LOG_WARNING, r, name, "Failed to remove %s: %m", state_subdir);
        if (unlink(state_file) < 0 && errno != ENOENT)
                log_group_errno(LOG_WARNING, errno, name, "Failed to remove %s: %m", state_file);
        return 0;
}

static int stale_reserve(Manager *m, const char *name) {
        if (strv_contains(m->stale_names, name))
                return 0;
        size_t n = strv_length(m->stale_names);

        return strv_push_dup(&m->stale_names, &n, name);
}

static void stale_release(Manager *m, const char *name) {
        size_t j = 0;

        for (size_t i = 0; m->stale_names && m->stale_names[i]; i++) {
                if (streq(m->stale_names[i], name))
                        free(m->stale_names[i]);
                else
                        m->stale_names[j++] = m->stale_names[i];
        }
        if (m->stale_names)
                m->stale_names[j] = NULL;
}

int manager_stale_retry(Manager *m, const char *name) {
        int r;

        if (!strv_contains(m->stale_names, name))
                return 0;
        log_group(LOG_NOTICE, name, "Cleaning up the group left by a previous vmgrd again");
        r = cleanup_stale_group(m, name);
        if (r < 0)
                return r;
        stale_release(m, name);
        return 0;
}

void manager_stale_retry_all(Manager *m) {
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0;

        for (size_t i = 0; m->stale_names && m->stale_names[i]; i++)
                if (strv_push_dup(&names, &n, m->stale_names[i]) < 0)
                        return;
        for (size_t i = 0; names && names[i]; i++)
                (void) manager_stale_retry(m, names[i]);
}

static int on_stale_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        /* Not while the helper is busy: the synchronous call needs it idle. */
        if (netadm_client_pending(m->netadm) == 0)
                manager_stale_retry_all(m);
        if (!m->stale_names || !m->stale_names[0] || m->shutting_down)
                return 0;
        (void) sd_event_source_set_time_relative(s, STALE_RETRY_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* Is the group's bridge there? (In our network namespace: the manager's
 * guest sockets are made there.) */
static bool bridge_exists(Manager *m, const char *bridge) {
        _cleanup_close_ int fd = manager_guest_socket(m, AF_INET, SOCK_DGRAM, 0);
        struct ifreq ifr = {};

        if (fd < 0)
                return true; /* cannot tell: the helper's GROUP_DELETE would find out */
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
        return ioctl(fd, SIOCGIFINDEX, &ifr) >= 0 || errno != ENODEV;
}

/* Read STATE/groups: each NAME.json, parsed (to adopt) or not (to clean). */
static int scan_state_files(Manager *m, Found **ret, size_t *ret_n) {
        _cleanup_free_ char *groups_dir = NULL;
        Found *found = NULL;
        size_t n = 0;
        DIR *d;
        struct dirent *de;

        if (asprintf(&groups_dir, "%s/groups", m->state_dir) < 0)
                return -ENOMEM;
        d = opendir(groups_dir);
        if (!d) {
                *ret = NULL;
                *ret_n = 0;
                return errno == ENOENT ? 0 : -errno;
        }
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                size_t len = strlen(de->d_name);
                char why[256];
                Found *f;
                int r;

                if (de->d_name[0] == '.')
                        continue;
                if (strstr(de->d_name, ".json.tmp.")) {
                        (void) unlinkat(dirfd(d), de->d_name, 0);
                        continue;
                }
                /* The file name is the group name; a file that is not "<valid name>.json" is not ours. */
                if (len <= 5 || len - 5 > VMGR_NAME_MAX || !streq(de->d_name + len - 5, ".json"))
                        continue;
                f = reallocarray(found, n + 1, sizeof(*found));
                if (!f)
                        break;
                found = f;
                f = &found[n];
                *f = (Found) {};
                memcpy(f->name, de->d_name, len - 5);
                f->name[len - 5] = 0;
                if (!vmgr_name_is_valid(f->name))
                        continue;
                n++;

                if (asprintf(&path, "%s/%s", groups_dir, de->d_name) < 0)
                        continue;
                r = read_file(path, 16 * 1024 * 1024, &text);
                if (r < 0) {
                        log_group_errno(LOG_WARNING, r, f->name, "Cannot read %s: %m; cleaning the group up", path);
                        continue;
                }
                r = group_state_parse(text, &f->state, why, sizeof(why));
                if (r < 0) {
                        log_group(LOG_NOTICE, f->name, "Cleaning up the group left by a previous vmgrd: %s", why);
                        f->state = NULL;
                }
        }
        closedir(d);
        *ret = found;
        *ret_n = n;
        return 0;
}

typedef struct KeepDomains {
        Found *found;
        size_t n;
} KeepDomains;

typedef struct KeepDomain {
        const char *domain;
        const char *group;
        bool match;
} KeepDomain;

static void match_vm(const char *vm, void *userdata) {
        KeepDomain *k = userdata;
        char buf[256];

        if (vmgr_domain_name(k->group, vm, buf, sizeof(buf)) >= 0 && streq(buf, k->domain))
                k->match = true;
}

/* virt_cleanup_stale(): keep the QEMU of every VM of a group we adopt. */
static bool keep_domain(const char *domain, void *userdata) {
        KeepDomains *kd = userdata;

        for (size_t i = 0; i < kd->n; i++) {
                KeepDomain k = { .domain = domain, .group = kd->found[i].name };

                if (!kd->found[i].state)
                        continue;
                group_state_vm_names(kd->found[i].state, match_vm, &k);
                if (k.match)
                        return true;
        }
        return false;
}

/* ---- which domains run: libvirt, on a pool thread ------------------------- */

typedef struct DomainList {
        Manager *manager;
        bool reconcile;         /* after a restart of libvirtd, not at adoption */
        char **active;          /* names of the domains that run */
        char **cut;             /* adoption: domains whose start was cut short, destroyed */
        char **resumed;         /* adoption: domains found paused in a save, resumed */
        char **problems;        /* adoption: "DOMAIN: what went wrong" */
} DomainList;

static void domain_list_free(DomainList *l) {
        strv_free(l->active);
        strv_free(l->cut);
        strv_free(l->resumed);
        strv_free(l->problems);
        free(l);
}

/* A domain of an adopted VM that libvirt has paused: a save or a restore
 * the previous vmgrd was killed in (vm_snapshot_paused_mend()). Returns
 * true if the domain runs on. Pool thread. */
static bool paused_domain_mend(DomainList *l, virDomainPtr dom, const char *name, size_t *n_cut,
                               size_t *n_resumed, size_t *n_problems) {
        char error[512] = "", *line = NULL;
        bool destroyed = false;
        int state, reason;

        if (virDomainGetState(dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_PAUSED)
                return true;
        /* Paused by QEMU itself (a disk I/O error, say) is not ours to mend. */
        if (reason != VIR_DOMAIN_PAUSED_USER && reason != VIR_DOMAIN_PAUSED_UNKNOWN &&
            reason != VIR_DOMAIN_PAUSED_MIGRATION && reason != VIR_DOMAIN_PAUSED_STARTING_UP)
                return true;
        if (vm_snapshot_paused_mend(dom, &destroyed, error, sizeof(error)) < 0) {
                if (asprintf(&line, "%s: %s", name, error) >= 0)
                        (void) strv_push_dup(&l->problems, n_problems, line);
                free(line);
        } else if (destroyed)
                (void) strv_push_dup(&l->cut, n_cut, name);
        else
                (void) strv_push_dup(&l->resumed, n_resumed, name);
        return !destroyed;
}

static int list_work(virConnectPtr conn, void *userdata) {
        DomainList *l = userdata;
        virDomainPtr *doms = NULL;
        size_t count = 0, n_cut = 0, n_resumed = 0, n_problems = 0;
        int n, r = 0;

        n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        if (n < 0)
                return -EIO;
        for (int i = 0; i < n; i++) {
                const char *name = virDomainGetName(doms[i]);
                if (r >= 0 && name && (l->reconcile || paused_domain_mend(l, doms[i], name, &n_cut, &n_resumed, &n_problems)))
                        r = strv_push_dup(&l->active, &count, name);
                virDomainFree(doms[i]);
        }
        free(doms);
        return r;
}

/* Every adopted group is whole again: say so, and let the bus name be claimed. */
static void adoption_complete(Manager *m) {
        for (Group *g = m->groups; g; g = g->next) {
                if (!g->adopting)
                        continue;
                g->adopting = false;
                log_group(LOG_NOTICE, g->name, "adopted: %u VM%s, dnsmasq pid %d, %u served file%s, %u forward%s",
                          g->n_vms, g->n_vms == 1 ? "" : "s", g->adopted_dnsmasq_pid, g->adopted_files,
                          g->adopted_files == 1 ? "" : "s", g->adopted_forwards, g->adopted_forwards == 1 ? "" : "s");
                group_save(g);
        }
        m->adopting = false;
}

/* A VM half added or half removed by the dead vmgrd is gone. */
static void unfinished_vm_removed(VM *vm, int error, const char *message, void *userdata) {
        Manager *m = userdata;

        if (error < 0)
                log_internal(LOG_ERR, error, vm->group ? vm->group->name : NULL, vm->name,
                             "Cannot remove the VM a previous vmgrd left half made: %s", message);
        if (--m->adoption_removals == 0 && m->adopting)
                adoption_complete(m);
}

static void adoption_finish(Manager *m, char **active, char **cut, char **resumed, bool known) {
        if (m->adoption_listed)
                return; /* libvirt's answer after the timeout, or the other way round */
        m->adoption_listed = true;
        m->adoption_timer = sd_event_source_disable_unref(m->adoption_timer);
        for (Group *g = m->groups; g; g = g->next) {
                VM *next;

                if (!g->adopting)
                        continue;
                for (VM *vm = g->vms; vm; vm = next) {
                        next = vm->next;
                        vm->resumed_at_adoption = strv_contains(resumed, vm->domain_name);
                        if (!vm->removing && strv_contains(cut, vm->domain_name)) {
                                vm_set_error(vm, "Its restore from a snapshot was cut short when vmgrd stopped");
                                vm_set_state(vm, VM_CRASHED);
                        }
                        /* Unknown (libvirt did not answer): as if its QEMU was gone. */
                        if ((vm->state == VM_DEFINED || vm->state == VM_STOPPED || vm->state == VM_CRASHED) &&
                            vm_adopt_domain(vm, known && strv_contains(active, vm->domain_name),
                                            unfinished_vm_removed, m) > 0)
                                m->adoption_removals++;
                }
        }
        /* The name is claimed once those removals are done too. */
        if (m->adoption_removals == 0)
                adoption_complete(m);
}

/* libvirtd was restarted while vmgrd runs: a QEMU that died meanwhile
 * sent no event (nobody was connected); its VM is crashed. */
static void reconcile_domains(Manager *m, char **active) {
        for (Group *g = m->groups; g; g = g->next)
                for (VM *vm = g->vms; vm; vm = vm->next)
                        if ((vm->state == VM_RUNNING || vm->state == VM_READY) && vm->op == VM_OP_NONE &&
                            !strv_contains(active, vm->domain_name))
                                vm_domain_event(vm, VIRT_DOMAIN_CRASHED, "QEMU was gone when libvirtd was restarted");
}

static void list_done(int result, void *userdata) {
        DomainList *l = userdata;
        Manager *m = l->manager;

        if (l->reconcile) {
                if (result < 0)
                        log_error_errno(result, "Cannot list libvirt's domains after its restart: %m");
                else
                        reconcile_domains(m, l->active);
        } else {
                if (result < 0)
                        log_error_errno(result, "Cannot list libvirt's domains; adopted VMs are taken as crashed: %m");
                for (char **p = l->problems; p && *p; p++)
                        log_warning("Adopting the domain %s", *p);
                if (m->adopting)
                        adoption_finish(m, l->active, l->cut, l->resumed, result >= 0);
        }
        domain_list_free(l);
}

void manager_virt_reconnected(Manager *m) {
        DomainList *l;

        if (m->adopting || m->shutting_down)
                return; /* adoption asks itself */
        l = calloc(1, sizeof(*l));
        if (!l)
                return;
        l->manager = m;
        l->reconcile = true;
        if (virt_call(m->virt, list_work, list_done, l) < 0)
                domain_list_free(l);
}

static int on_adoption_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_error("libvirtd did not say in time which domains run; adopted VMs are taken as crashed");
        adoption_finish(m, NULL, NULL, NULL, false);
        return 0;
}

/* Remove the agent sockets of VMs no longer there (QEMU bound them). */
static void remove_stale_agent_sockets(Manager *m) {
        _cleanup_free_ char *dir = NULL;
        DIR *d;
        struct dirent *de;

        if (asprintf(&dir, "%s/agent", m->runtime_dir) < 0)
                return;
        d = opendir(dir);
        if (!d)
                return;
        while ((de = readdir(d))) {
                bool used = false;

                if (de->d_name[0] == '.')
                        continue;
                for (Group *g = m->groups; g && !used; g = g->next)
                        for (VM *vm = g->vms; vm && !used; vm = vm->next) {
                                const char *base = strrchr(vm->agent_socket, '/');
                                used = base && streq(base + 1, de->d_name);
                        }
                if (!used)
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

static void on_outbound_adopted(Group *g, int error, const char *message) {
        if (error < 0)
                log_group_errno(LOG_ERR, error, g->name, "Outbound access is lost: %s", message);
}

/* A group whose state file says running but whose bridge is gone does not
 * match reality: it is cleaned up, not adopted. */
static void drop_groups_without_bridge(Manager *m, Found *found, size_t n) {
        for (size_t i = 0; i < n; i++) {
                struct vmgr_group_addrs addrs;

                if (!found[i].state)
                        continue;
                if (vmgr_group_addrs_derive(geteuid(), found[i].name, &addrs) < 0 || !bridge_exists(m, addrs.bridge)) {
                        log_group(LOG_WARNING, found[i].name,
                                  "Cleaning up the group left by a previous vmgrd: its bridge is gone");
                        json_object_put(found[i].state);
                        found[i].state = NULL;
                }
        }
}

/* Clean up a group not adopted; a failed clean-up reserves its name. */
static void clean_up_or_reserve(Manager *m, const char *name) {
        if (cleanup_stale_group(m, name) < 0 && stale_reserve(m, name) < 0)
                log_oom();
}

/* Adopt every group still to adopt; returns how many VMs they have. */
static unsigned adopt_groups(Manager *m, Found *found, size_t n) {
        unsigned n_vms = 0;

        for (size_t i = 0; i < n; i++) {
                Group *g;
                int r;

                if (!found[i].state)
                        continue;
                r = group_adopt(m, found[i].state, &g);
                json_object_put(found[i].state);
                found[i].state = NULL;
                if (r < 0) {
                        /* Not even made (its spec no longer parses, say):
                         * clean it up as any group not adopted. A group
                         * that was made is being deleted already. */
                        if (!manager_find_group(m, found[i].name))
                                clean_up_or_reserve(m, found[i].name);
                        continue;
                }
                g->adopting = true;
                /* pasta went with the old vmgrd: a new one, and the
                 * helper's rules again (adding them is idempotent). */
                if (g->spec->outbound && outbound_enable(g, on_outbound_adopted) < 0)
                        log_group(LOG_ERR, g->name, "Outbound access is lost: pasta cannot be started");
                n_vms += g->n_vms;
                m->groups_adopted++;
                group_unref(g);
        }
        return n_vms;
}

/* Ask libvirt which domains run; the adopted VMs follow its answer
 * (list_done()), or after ADOPT_TIMEOUT_USEC are taken as crashed. */
static void adoption_ask_libvirt(Manager *m) {
        DomainList *l = calloc(1, sizeof(*l));
        int r;

        if (!l) {
                adoption_finish(m, NULL, NULL, NULL, false);
                return;
        }
        l->manager = m;
        r = sd_event_add_time_relative(m->event, &m->adoption_timer, CLOCK_MONOTONIC, ADOPT_TIMEOUT_USEC, 0,
                                       on_adoption_timeout, m);
        if (r >= 0)
                r = virt_call(m->virt, list_work, list_done, l);
        if (r < 0) {
                domain_list_free(l);
                log_error_errno(r, "Cannot ask libvirtd which domains run: %m");
                adoption_finish(m, NULL, NULL, NULL, false);
        }
}

int manager_recover(Manager *m) {
        Found *found = NULL;
        size_t n = 0;
        unsigned n_vms;
        int r;

        r = scan_state_files(m, &found, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s/groups: %m", m->state_dir);
        drop_groups_without_bridge(m, found, n);

        /* QEMUs and libvirtd first: they hold the TAPs the network clean-up deletes. */
        virt_cleanup_stale(m->virt, keep_domain, &(KeepDomains) { .found = found, .n = n });
        outbound_kill_stale(m);

        for (size_t i = 0; i < n; i++)
                if (!found[i].state) {
                        log_group(LOG_NOTICE, found[i].name, "Cleaning up group left by a previous vmgrd");
                        clean_up_or_reserve(m, found[i].name);
                }

        m->adopting = true;
        n_vms = adopt_groups(m, found, n);
        free(found);
        remove_stale_agent_sockets(m);
        if (m->stale_names && m->stale_names[0] &&
            sd_event_add_time_relative(m->event, &m->stale_timer, CLOCK_MONOTONIC, STALE_RETRY_USEC, 0,
                                       on_stale_timer, m) < 0)
                log_warning("Cannot arm the timer that retries clean-ups; they are retried at CreateGroup and exit");

        if (n_vms == 0)
                adoption_finish(m, NULL, NULL, NULL, true);
        else
                adoption_ask_libvirt(m);
        return 0;
}

int manager_wait_recovered(Manager *m) {
        while (m->adopting) {
                int r = sd_event_run(m->event, UINT64_MAX);
                if (r < 0)
                        return log_error_errno(r, "Event loop failed while adopting groups: %m");
                if (sd_event_get_state(m->event) == SD_EVENT_FINISHED)
                        return -ECANCELED;
        }
        return 0;
}
