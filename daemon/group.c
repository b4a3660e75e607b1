/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus-error.h"
#include "collect.h"
#include "dnsmasq.h"
#include "fileserver.h"
#include "forward.h"
#include "fs-util.h"
#include "group.h"
#include "group-state.h"
#include "grouplog.h"
#include "json-util.h"
#include "log.h"
#include "outbound.h"
#include "time-util.h"
#include "vm.h"
#include "worker.h"

static const char *const state_names[_GROUP_STATE_MAX] = {
        [GROUP_CREATING] = "creating",
        [GROUP_RUNNING] = "running",
        [GROUP_DELETING] = "deleting",
        [GROUP_FAILED] = "failed",
};

const char *group_state_to_string(GroupState s) {
        return (unsigned) s < _GROUP_STATE_MAX ? state_names[s] : NULL;
}

static const char *const stage_names[_GROUP_STAGE_MAX] = {
        [GROUP_STAGE_NETWORK_CREATED] = "network_created",
        [GROUP_STAGE_DNSMASQ_READY] = "dnsmasq_ready",
        [GROUP_STAGE_VMS_STARTED] = "vms_started",
        [GROUP_STAGE_RUNNING] = "running",
};

const char *group_stage_to_string(GroupStage stage) {
        return (unsigned) stage < _GROUP_STAGE_MAX ? stage_names[stage] : NULL;
}


void group_stage_mark(Group *g, GroupStage stage) {
        g->timings[stage] = now_monotonic_usec() - g->start_usec;
        (void) group_emit_changed(g, "Timings", NULL);
}

static void group_dnsmasq_ready(Group *g, int error, const char *message);
static void group_dnsmasq_stopped(Group *g);
static void group_dnsmasq_changed(Group *g);
static void group_leases_changed(Group *g);

static const DnsmasqCallbacks dnsmasq_callbacks = {
        .ready = group_dnsmasq_ready,
        .stopped = group_dnsmasq_stopped,
        .changed = group_dnsmasq_changed,
        .leases_changed = group_leases_changed,
};

static Group *group_free(Group *g) {
        if (!g)
                return NULL;
        while (g->vms) {
                VM *vm = g->vms;
                g->vms = vm->next;
                vm->group = NULL;
                vm_unref(vm);
        }
        dnsmasq_free(g->dnsmasq);
        group_log_free(g->log);
        fileserver_stop(g->fileserver);
        while (g->forwards)
                forward_free(g->forwards);
        sd_bus_message_unref(g->create_call);
        for (size_t i = 0; i < g->n_delete_calls; i++)
                sd_bus_message_unref(g->delete_calls[i]);
        free(g->delete_calls);
        vmgr_spec_free(g->spec);
        free(g->name);
        free(g->object_path);
        free(g->spec_json);
        free(g->runtime_dir);
        free(g->state_file);
        free(g->state_subdir);
        free(g->create_message);
        free(g);
        return NULL;
}

Group *group_ref(Group *g) {
        if (g)
                g->n_ref++;
        return g;
}

Group *group_unref(Group *g) {
        if (!g)
                return NULL;
        if (--g->n_ref > 0)
                return NULL;
        return group_free(g);
}

int group_path_for(const char *name, char **ret) {
        return sd_bus_path_encode(VMGR_GROUP_PATH_PREFIX, name, ret);
}

VM *group_find_vm(Group *g, const char *name) {
        for (VM *vm = g->vms; vm; vm = vm->next)
                if (streq(vm->name, name))
                        return vm;
        return NULL;
}

void group_attach_vm(Group *g, VM *vm) {
        vm->group = g;
        vm->next = g->vms;
        if (g->vms)
                g->vms->prev = vm;
        g->vms = vm;
        g->n_vms++;
}

void group_detach_vm(Group *g, VM *vm) {
        LIST_REMOVE(g->vms, vm);
        vm->next = vm->prev = NULL;
        g->n_vms--;
        vm->group = NULL;
        (void) group_emit_changed(g, "VMs", NULL);
        if (g->state == GROUP_RUNNING)
                group_save(g);
}

/* Refuse a group whose derived bridge, /64 or /24 another group of ours
 * already uses. Returns 0 or -VMGR_ERR_ADDRESS_CONFLICT with error set. */
static int check_collisions(Manager *m, const char *name, const struct vmgr_group_addrs *a, sd_bus_error *error) {
        for (Group *o = m->groups; o; o = o->next) {
                const char *what = vmgr_group_addrs_collision(a, &o->addrs);
                if (what)
                        return vmgr_bus_error_set(error, -VMGR_ERR_ADDRESS_CONFLICT,
                                                  "the %s derived for group '%s' collides with group '%s'; "
                                                  "choose another name",
                                                  what, name, o->name);
        }
        return 0;
}

int group_new(Manager *m, const char *name, const char *spec_json, VmgrSpec *spec, Group **ret,
              sd_bus_error *error) {
        _cleanup_(group_unrefp) Group *g = NULL;
        struct vmgr_group_addrs addrs;
        const char *why;
        int r;

        if (vmgr_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid group name \"%s\": %s", name, why);
        if (manager_find_group(m, name))
                return vmgr_bus_error_set(error, -VMGR_ERR_GROUP_EXISTS, "group '%s' already exists", name);
        if (m->n_groups >= m->config.max_groups)
                return vmgr_bus_error_set(error, -VMGR_ERR_LIMIT_EXCEEDED,
                                          "this vmgrd already holds %u groups, its limit (max_groups)",
                                          m->n_groups);
        if (spec->n_vms > m->config.max_vms_per_group)
                return vmgr_bus_error_set(error, -VMGR_ERR_LIMIT_EXCEEDED,
                                          "the spec has %zu VMs; the limit is %u (max_vms_per_group)", spec->n_vms,
                                          m->config.max_vms_per_group);

        if (spec->outbound) {
                r = outbound_check(m, error);
                if (r < 0)
                        return r;
        }

        /* Our uid, as the helper will see it (in root mode we run as the
         * service user by now): its names are the ones the helper makes. */
        r = vmgr_group_addrs_derive(geteuid(), name, &addrs);
        if (r < 0)
                return vmgr_bus_error_set(error, r, NULL);
        r = check_collisions(m, name, &addrs, error);
        if (r < 0)
                return r;

        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->n_ref = 1;
        g->addrs = addrs;
        g->state = GROUP_CREATING;
        g->name = strdup(name);
        g->spec_json = strdup(spec_json);
        if (!g->name || !g->spec_json)
                return -ENOMEM;
        if (asprintf(&g->runtime_dir, "%s/groups/%s", m->runtime_dir, name) < 0 ||
            asprintf(&g->state_file, "%s/groups/%s.json", m->state_dir, name) < 0 ||
            asprintf(&g->state_subdir, "%s/groups/%s", m->state_dir, name) < 0) {
                g->runtime_dir = g->state_file = g->state_subdir = NULL;
                return -ENOMEM;
        }
        r = group_path_for(name, &g->object_path);
        if (r < 0)
                return r;
        r = dnsmasq_new(g, &dnsmasq_callbacks, &g->dnsmasq);
        if (r < 0)
                return r;

        g->spec = spec;
        g->created_usec = (uint64_t) time(NULL) * 1000000ULL;
        g->start_usec = now_monotonic_usec();
        for (size_t i = 0; i < _GROUP_STAGE_MAX; i++)
                g->timings[i] = GROUP_STAGE_NOT_YET;

        /* The manager's list holds the reference we return. */
        g->manager = m;
        g->next = m->groups;
        if (m->groups)
                m->groups->prev = g;
        m->groups = g;
        m->n_groups++;

        *ret = TAKE_PTR(g);
        return 0;
}

void group_set_state(Group *g, GroupState state) {
        if (g->state == state)
                return;
        log_group(LOG_INFO, g->name, "Group is %s", group_state_to_string(state));
        g->state = state;
        (void) group_emit_changed(g, "State", NULL);
        if (state == GROUP_DELETING || state == GROUP_FAILED)
                group_ready_cancel(g);
}

/*
 * The group's files are written and removed on the worker pool, so that
 * fsync() and a recursive removal never stall the event loop. Jobs of one
 * group run one at a time in the order queued: a later state never lands
 * before an earlier one, and the removal comes after every write (which
 * would otherwise bring the state file back). Each job holds a reference
 * to the group; the paths it reads never change while the group lives.
 */
struct GroupFilesJob {
        Group *group;
        GroupFilesJob *next;
        char *text;                     /* the state to write; NULL: remove the group's files */
        bool sync_later;                /* renamed into place without waiting for fsync() (group_state_sync) */
        bool make_runtime_dir;          /* then make the runtime directory (the group's first state) */
        int errors[3];                  /* removal: runtime dir, state subdir, state file */
        void (*done)(Group *g, int r);  /* on the loop once the job ran; may be NULL */
};

static void group_files_job_free(GroupFilesJob *j) {
        free(j->text);
        free(j);
}

/* Write text to path through a temporary file and rename(), without
 * fsync(): the renamed file is what every later reader (a restarted vmgrd
 * included) sees at once; group_state_sync() makes it durable right after.
 * Returns 0 or -errno. */
static int state_write_unsynced(const char *path, const char *text) {
        char tmp[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(text);
        int r;

        r = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid());
        if (r < 0 || (size_t) r >= sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        for (size_t done = 0; done < len;) {
                ssize_t n = write(fd, text + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        (void) unlink(tmp);
                        return r;
                }
                done += (size_t) n;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

/* Pool thread: fsync() the state file as it is now, and its directory (the
 * rename). A file removed meanwhile has nothing left to keep. Returns 0 or -errno. */
static int group_state_sync_work(void *userdata) {
        Group *g = userdata;
        _cleanup_close_ int fd = -EBADF, dir_fd = -EBADF;
        _cleanup_free_ char *dir = NULL;
        char *slash;

        fd = open(g->state_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fsync(fd) < 0)
                return -errno;
        dir = strdup(g->state_file);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash && slash != dir)
                *slash = 0;
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0 || fsync(dir_fd) < 0)
                return -errno;
        return 0;
}

static void group_state_sync_done(int result, void *userdata) {
        Group *g = userdata;

        /* Cancelled by a pool shutting down: the file still matters to the next start. */
        if (result == -ECANCELED)
                result = group_state_sync_work(g);
        if (result < 0)
                log_group_errno(LOG_WARNING, result, g->name, "Failed to sync %s to disk: %m", g->state_file);
        group_unref(g);
}

/*
 * Make the state file just renamed into place durable, beside the group's
 * next steps rather than before them. The fsync() guards against losing the
 * OS (power, kernel crash) only: a vmgrd that dies sees the renamed file
 * either way, since it lives in the page cache. And when the OS goes, the
 * bridge, dnsmasq and QEMUs the file describes go with it, so whatever of
 * the file survives (this state, an older one, none) makes the next vmgrd
 * clean the group up, as it does for every group after a reboot. What the
 * fsync() still buys is that a state file soon exists on disk for the
 * group's own directory (its log, its VMs' disks), which is made after it.
 */
static void group_state_sync(Group *g) {
        if (g->manager && worker_submit(g->manager->workers, group_state_sync_work, group_state_sync_done,
                                        group_ref(g)) >= 0)
                return;
        group_state_sync_done(group_state_sync_work(g), g);
}

/* Pool thread (or the loop when the pool cannot take it). Returns 0 or -errno. */
static int group_files_work(void *userdata) {
        GroupFilesJob *j = userdata;
        Group *g = j->group;

        if (j->text && j->sync_later && j->make_runtime_dir) {
                /* After the state file, as every file of the group: a vmgrd
                 * that dies in between leaves nothing the next one does not
                 * know of. Here rather than on the loop, as the helper needs
                 * it first (dnsmasq's files) and a mkdir() may wait for the
                 * file system's journal. */
                int r = state_write_unsynced(g->state_file, j->text);
                return r < 0 ? r : mkdir_p(g->runtime_dir, 0700);
        }
        if (j->text && j->sync_later)
                return state_write_unsynced(g->state_file, j->text);
        if (j->text)
                return write_file_atomic(g->state_file, j->text, strlen(j->text), 0600);

        j->errors[0] = rm_rf(g->runtime_dir);
        j->errors[1] = rm_rf(g->state_subdir);
        j->errors[2] = unlink(g->state_file) < 0 && errno != ENOENT ? -errno : 0;
        return 0;
}

static void group_files_next(Group *g);

static void group_files_done(int result, void *userdata) {
        GroupFilesJob *j = userdata;
        Group *g = j->group;

        /* Cancelled by a pool shutting down: the files still matter to the next start. */
        if (result == -ECANCELED)
                result = group_files_work(j);

        g->files_jobs = j->next;
        if (j->text) {
                if (result < 0)
                        log_group_errno(LOG_ERR, result, g->name, "Failed to write %s: %m", g->state_file);
                else if (j->sync_later)
                        group_state_sync(g);
        } else {
                const char *paths[3] = { g->runtime_dir, g->state_subdir, g->state_file };
                for (size_t i = 0; i < 3; i++)
                        if (j->errors[i] < 0)
                                log_group_errno(LOG_WARNING, j->errors[i], g->name, "Failed to remove %s: %m",
                                                paths[i]);
        }
        /* The next job first: done may queue one, which must then wait
         * behind it rather than be handed to the pool a second time. */
        group_files_next(g);
        g->files_done++;
        if (j->done)
                j->done(g, result);
        group_files_job_free(j);
        group_unref(g);
}

/* Hand the first queued job to the pool; without a pool, run it here. */
static void group_files_next(Group *g) {
        GroupFilesJob *j = g->files_jobs;

        if (!j)
                return;
        if (g->manager && worker_submit(g->manager->workers, group_files_work, group_files_done, j) >= 0)
                return;
        group_files_done(group_files_work(j), j);
}

/* Queue a job (text moved in; NULL: remove the files); done runs once it
 * ran; sync_later: once renamed into place, not once on disk. Returns the
 * job (owned by the queue) or NULL when out of memory. */
static GroupFilesJob *group_files_queue_job(Group *g, char *text, bool sync_later, bool make_runtime_dir,
                                            void (*done)(Group *g, int r)) {
        GroupFilesJob *j, **p;

        j = calloc(1, sizeof(*j));
        if (!j) {
                free(text);
                return NULL;
        }
        j->group = group_ref(g);
        j->text = text;
        j->sync_later = sync_later;
        j->make_runtime_dir = make_runtime_dir;
        j->done = done;
        for (p = &g->files_jobs; *p; p = &(*p)->next)
                ;
        *p = j;
        g->files_queued++;
        if (g->files_jobs == j)
                group_files_next(g);
        return j;
}

static int group_files_queue(Group *g, char *text, bool sync_later, void (*done)(Group *g, int r)) {
        return group_files_queue_job(g, text, sync_later, false, done) ? 0 : -ENOMEM;
}

/* Queue a write of the group's state as it is now; done (may be NULL) runs
 * once it is on disk or failed; with sync_later once it is in place, its
 * fsync() following on the side (group_state_sync()). Returns 0 or -ENOMEM. */
static int group_save_as(Group *g, bool sync_later, void (*done)(Group *g, int r)) {
        char *text;
        int r;

        r = group_state_format(g, &text);
        if (r < 0)
                return r;
        return group_files_queue(g, text, sync_later, done);
}

static int group_save_then(Group *g, void (*done)(Group *g, int r)) {
        return group_save_as(g, false, done);
}

void group_save(Group *g) {
        int r;

        r = group_save_then(g, NULL);
        if (r < 0)
                log_group_errno(LOG_ERR, r, g->name, "Failed to write %s: %m", g->state_file);
}

/* Take the group out of the manager: its object and state vanish. Drops the
 * manager's reference. */
static void group_remove(Group *g) {
        Manager *m = g->manager;

        if (!m)
                return;
        /* Announce it while the object can still be found. */
        if (m->bus)
                (void) sd_bus_emit_object_removed(m->bus, g->object_path);
        LIST_REMOVE(m->groups, g);
        g->next = g->prev = NULL;
        m->n_groups--;
        g->manager = NULL;

        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GroupRemoved", "so",
                                          g->name, g->object_path);
        log_group(LOG_INFO, g->name, "Group removed");
        group_unref(g);
        manager_maybe_finish_shutdown(m);
}

static void reply_delete_calls(Group *g, int r, const char *message) {
        for (size_t i = 0; i < g->n_delete_calls; i++) {
                if (r < 0)
                        (void) vmgr_bus_reply_error(g->delete_calls[i], r, "%s", message);
                else
                        (void) sd_bus_reply_method_return(g->delete_calls[i], NULL);
                g->delete_calls[i] = sd_bus_message_unref(g->delete_calls[i]);
        }
        g->n_delete_calls = 0;
}

/* Answer a CreateGroup call that failed, once the group is undone. */
static void group_reply_create_failure(Group *g) {
        if (!g->create_call)
                return;
        (void) vmgr_bus_reply_error(g->create_call, g->create_error < 0 ? g->create_error : -EIO, "%s",
                                    g->create_message ?: "cannot create the group");
        g->create_call = sd_bus_message_unref(g->create_call);
}

/* The files are gone: answer the callers and drop the object. */
static void group_files_removed(Group *g, int r) {
        (void) r; /* logged per path */
        group_ref(g);
        group_reply_create_failure(g);
        reply_delete_calls(g, 0, NULL);
        group_remove(g);
        group_unref(g);
}

/* What is left to undo after the network is gone: files (on the pool),
 * then the object. Callers learn it is gone only once both are. */
static void group_finish_removal(Group *g) {
        if (group_files_queue(g, NULL, false, group_files_removed) < 0) {
                /* Out of memory: remove them here rather than leave them behind. */
                GroupFilesJob j = { .group = g };
                (void) group_files_work(&j);
                group_files_removed(g, 0);
        }
}

static void group_delete_network_try(Group *g, bool retry);
static void group_teardown_maybe_finish(Group *g);

/* The helper deleted the network, or could not; retried says whether this
 * was the second try. When the helper died before answering, the network
 * may still be there: a new helper is asked once more. If the network
 * cannot be deleted, the group stays, failed, with its state file: its name
 * stays taken, DeleteGroup tries again, and a later vmgrd cleans up from
 * the state file. Drops the reference the call held. */
static void network_deleted(Group *g, int error, const char *message, bool retried) {
        if (error < 0 && netadm_error_reply_lost(error) && !retried && g->manager) {
                log_group(LOG_WARNING, g->name, "No answer to the deletion of the network (%s); asking again", message);
                group_delete_network_try(g, true);
                group_unref(g);
                return;
        }

        g->network_deleting = false;
        if (error < 0) {
                log_group_errno(LOG_ERR, error, g->name, "Failed to delete the network: %s", message);
                group_reply_create_failure(g);
                if (!g->manager || g->manager->shutting_down) {
                        /* Nothing more we can do; a later start cleans up from the state file. */
                        reply_delete_calls(g, -VMGR_ERR_HELPER_FAILED, message);
                        if (g->manager)
                                group_remove(g);
                } else {
                        group_set_state(g, GROUP_FAILED);
                        reply_delete_calls(g, -VMGR_ERR_HELPER_FAILED, message);
                        group_save(g);
                }
                group_unref(g);
                return;
        }

        g->network_created = false;
        g->network_deleting = false;
        group_teardown_maybe_finish(g);
        group_unref(g);
}

static void on_network_deleted(int error, const char *message, int pid, int pidfd, void *userdata) {
        network_deleted(userdata, error, message, false);
}

static void on_network_deleted_again(int error, const char *message, int pid, int pidfd, void *userdata) {
        network_deleted(userdata, error, message, true);
}

/* Ask the helper to delete the network (retry: for the second time);
 * network_deleted() follows. */
static void group_delete_network_try(Group *g, bool retry) {
        int r;

        r = netadm_client_call(g->manager->netadm, VMGR_NETADM_GROUP_DELETE, g->name, NULL, 0, NULL,
                               retry ? on_network_deleted_again : on_network_deleted, g);
        if (r < 0) {
                log_group_errno(LOG_ERR, r, g->name, "Failed to ask vmgr-netadm to delete the network: %m");
                network_deleted(group_ref(g), r, "vmgr-netadm could not be asked to delete the network", true);
                return;
        }
        group_ref(g);
}

/* Teardown: once dnsmasq has stopped and the network is gone (or was never
 * made), the files go. */
static void group_teardown_maybe_finish(Group *g) {
        if (g->state == GROUP_DELETING && g->dnsmasq_down && !g->network_created && !g->network_deleting)
                group_finish_removal(g);
}

static void group_dnsmasq_stopped(Group *g) {
        if (g->state != GROUP_DELETING)
                return;
        g->dnsmasq_down = true;
        group_teardown_maybe_finish(g);
}

static void group_dnsmasq_changed(Group *g) {
        (void) group_emit_changed(g, "Dnsmasq", "DnsmasqRestarts", NULL);
        if (g->state == GROUP_RUNNING && dnsmasq_state(g->dnsmasq) == DNSMASQ_FAILED) {
                log_group(LOG_ERR, g->name, "dnsmasq keeps failing; the group is marked failed");
                group_set_state(g, GROUP_FAILED);
        }
}

static void group_leases_changed(Group *g) {
        for (VM *vm = g->vms; vm; vm = vm->next)
                vm_update_ipv4(vm);
}

/* The VMs are gone: stop dnsmasq and delete the network at the same time
 * (the kernel's removal of the bridge is most of the teardown's time, and
 * dnsmasq's exit need not come before it: the helper's GROUP_DELETE stops
 * a dnsmasq still serving the bridge itself). A GROUP_CREATE the helper
 * refused was undone by the helper itself; and a bridge of the same name
 * owned by someone else must not even be asked about. (One whose answer
 * never came counts as created.) */
static void group_vm_removed_release(Group *g) {
        if (--g->vms_pending > 0)
                return;
        g->dnsmasq_down = false;
        if (g->network_created) {
                g->network_deleting = true;
                group_delete_network_try(g, false);
        }
        dnsmasq_stop(g->dnsmasq);
}

/* One VM of a group being torn down is gone. */
static void group_vm_removed(VM *vm, int error, const char *message, void *userdata) {
        Group *g = userdata;

        if (error < 0)
                log_group_errno(LOG_ERR, error, g->name, "Failed to remove VM '%s': %s", vm->name, message);
        group_vm_removed_release(g);
        group_unref(g);
}

static void group_teardown_now(Group *g);

static void group_collected(Group *g, int error, const char *message, void *userdata) {
        group_teardown_now(g);
        group_unref(g);
}

static void group_teardown_saved(Group *g, int r);

/* The spec's collect_on_delete first (the evidence of a failed test), then
 * the teardown; a bundle that cannot be written is logged and does not stop
 * it. The state file says "deleting" before anything is undone: a vmgrd
 * that dies meanwhile leaves a group the next one cleans up, never one it
 * adopts half deleted. */
static void group_teardown(Group *g) {
        group_set_state(g, GROUP_DELETING);
        if (group_save_as(g, true, group_teardown_saved) < 0)
                group_teardown_saved(g, -ENOMEM);
}

static void group_teardown_saved(Group *g, int r) {
        if (r < 0)
                log_group_errno(LOG_WARNING, r, g->name, "Cannot record the deletion in %s: %m; deleting all the same",
                                g->state_file);
        if (g->spec && g->spec->collect_on_delete && !g->collected) {
                char error[256]; /* the log line below says enough */

                g->collected = true;
                if (group_collect(g, g->spec->collect_on_delete, group_collected, group_ref(g), error,
                                  sizeof(error)) >= 0)
                        return;
                group_unref(g);
                log_group(LOG_WARNING, g->name, "Cannot collect into %s before deletion", g->spec->collect_on_delete);
        }
        group_teardown_now(g);
}

/* VMs first (their domains, TAPs and disks), then dnsmasq, then the network. */
static void group_teardown_now(Group *g) {
        VM *next;

        g->fileserver = fileserver_stop(g->fileserver);
        forward_remove_vm(g, NULL);
        g->vms_pending = 1; /* held while we walk the list */
        for (VM *vm = g->vms; vm; vm = next) {
                next = vm->next;
                if (vm_remove(vm, group_vm_removed, group_ref(g)) < 0)
                        group_unref(g); /* already being removed; that removal is not ours to count */
                else
                        g->vms_pending++;
        }
        group_vm_removed_release(g);
}

int group_delete(Group *g, sd_bus_message *call) {
        if (call) {
                sd_bus_message **a = reallocarray(g->delete_calls, g->n_delete_calls + 1, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                g->delete_calls = a;
                g->delete_calls[g->n_delete_calls++] = sd_bus_message_ref(call);
        }

        switch (g->state) {
        case GROUP_CREATING:
                g->delete_requested = true; /* creation finishes first */
                return 0;
        case GROUP_DELETING:
                return 0; /* already on its way */
        default:
                group_teardown(g);
                return 0;
        }
}

/* Creation failed: undo whatever was made, then tell the caller (from
 * group_finish_removal()), so that a retry right after the error finds
 * nothing in its way. Errors from the helper's network work are mapped to
 * what they mean for the caller; a VM's own failure keeps its code. */
static void group_creation_failed(Group *g, int r, const char *message, bool from_helper) {
        int reply_error = r;

        log_group_errno(LOG_ERR, r, g->name, "Failed to create the group: %s", message);

        if (from_helper) {
                /* EADDRNOTAVAIL: the name's networks lie outside the helper's
                 * pools; like a conflict, another name is the remedy. */
                if (r == -EADDRINUSE || r == -EEXIST || r == -EADDRNOTAVAIL)
                        reply_error = -VMGR_ERR_ADDRESS_CONFLICT;
                /* EBUSY: a dnsmasq still serves the bridge's name. */
                else if (r == -EBUSY)
                        reply_error = -VMGR_ERR_BUSY;
                else if (r == -EPERM || r == -EACCES)
                        reply_error = -EPERM;
                else if (r == -ETIMEDOUT)
                        reply_error = -VMGR_ERR_TIMEOUT;
                else if (r == -EDQUOT)
                        reply_error = -VMGR_ERR_LIMIT_EXCEEDED;
                else
                        reply_error = -VMGR_ERR_HELPER_FAILED;
        }

        g->create_error = reply_error;
        free(g->create_message);
        if (asprintf(&g->create_message, "cannot create group '%s': %s", g->name, message) < 0)
                g->create_message = NULL;
        group_teardown(g);
}


static void group_creation_succeeded(Group *g) {
        int r;

        group_stage_mark(g, GROUP_STAGE_RUNNING);
        group_set_state(g, GROUP_RUNNING);
        /* Not waited for: a DeleteGroup right after must not wait for it either. */
        r = group_save_as(g, true, NULL);
        if (r < 0)
                log_group_errno(LOG_ERR, r, g->name, "Failed to write %s: %m", g->state_file);

        if (g->create_call) {
                (void) sd_bus_reply_method_return(g->create_call, "o", g->object_path);
                g->create_call = sd_bus_message_unref(g->create_call);
        }
        if (g->delete_requested)
                group_teardown(g);
}

static void group_creation_failed(Group *g, int r, const char *message, bool from_helper);
static void group_creation_succeeded(Group *g);

static void group_vm_started_release(Group *g) {
        if (--g->vms_pending > 0 || g->state != GROUP_CREATING)
                return;
        if (g->vms_error < 0)
                group_creation_failed(g, g->vms_error, g->vms_message, false);
        else {
                group_stage_mark(g, GROUP_STAGE_VMS_STARTED);
                group_creation_succeeded(g);
        }
}

/* One of the VMs the group was created with has started, or failed to. */
static void group_vm_started(VM *vm, int error, const char *message, void *userdata) {
        Group *g = userdata;

        if (error < 0 && g->vms_error == 0) {
                g->vms_error = error;
                snprintf(g->vms_message, sizeof(g->vms_message), "VM '%s': %s", vm->name, message);
        }
        group_vm_started_release(g);
        group_unref(g);
}

static void vm_announce(VM *vm) {
        Group *g = vm->group;

        if (g->manager->bus)
                (void) sd_bus_emit_object_added(g->manager->bus, vm->object_path);
        (void) group_emit_changed(g, "VMs", NULL);
}

/* The spec of the group's VM i as JSON of its own, for the state file
 * (AddVM's spec_json is the same thing). NULL when out of memory. */
static char *group_spec_vm_json(Group *g, size_t i) {
        _cleanup_(json_object_putp) json_object *o = json_tokener_parse(g->spec_json);
        json_object *vms, *vm;
        const char *text;

        if (!o || !json_object_object_get_ex(o, "vms", &vms) || !(vm = json_object_array_get_idx(vms, i)))
                return NULL;
        text = json_object_to_json_string_ext(vm, JSON_C_TO_STRING_PLAIN);
        return text ? strdup(text) : NULL;
}

/* The network is up: make the spec's VMs and start them all at once. */
static void group_create_vms(Group *g) {
        int r = 0;

        g->vms_pending = 1;
        for (size_t i = 0; i < g->spec->n_vms && r >= 0; i++) {
                VM *vm;

                r = vm_new(g, &g->spec->vms[i], &vm);
                if (r < 0) {
                        g->vms_error = r;
                        (void) vmgr_error_printf(g->vms_message, sizeof(g->vms_message), r, "cannot make VM: %m");
                        break;
                }
                if (asprintf(&vm->spec_path, "vms[%zu].", i) < 0)
                        vm->spec_path = NULL;
                vm->spec_json = group_spec_vm_json(g, i);
                vm_announce(vm);
                r = vm_operation(vm, VM_OP_START, 0, NULL, group_vm_started, group_ref(g));
                if (r < 0) {
                        group_unref(g);
                        g->vms_error = r;
                        snprintf(g->vms_message, sizeof(g->vms_message), "cannot start VM '%s'", vm->name);
                } else
                        g->vms_pending++;
        }
        group_vm_started_release(g);
}

static void group_dnsmasq_ready(Group *g, int error, const char *message) {
        if (g->state != GROUP_CREATING)
                return;
        if (error < 0)
                group_creation_failed(g, error, message, true);
        else {
                group_stage_mark(g, GROUP_STAGE_DNSMASQ_READY);
                group_create_vms(g);
        }
}

typedef struct AddVMFailure {
        sd_bus_message *call;
        int error;
        char message[512];
} AddVMFailure;

/* The VM that failed to start is gone: now the caller may hear of it (and retry the name). */
static void group_vm_add_undone(VM *vm, int error, const char *message, void *userdata) {
        AddVMFailure *f = userdata;

        (void) vmgr_bus_reply_error(f->call, f->error, "cannot start VM '%s': %s", vm->name, f->message);
        sd_bus_message_unref(f->call);
        free(f);
}

static void group_vm_added(VM *vm, int error, const char *message, void *userdata) {
        sd_bus_message *call = userdata;
        AddVMFailure *f;

        if (error >= 0) {
                vm->adding = false;
                if (vm->group)
                        group_save(vm->group);
                (void) sd_bus_reply_method_return(call, "o", vm->object_path);
                sd_bus_message_unref(call);
                return;
        }

        f = calloc(1, sizeof(*f));
        if (f) {
                f->call = call;
                f->error = error;
                snprintf(f->message, sizeof(f->message), "%s", message);
                /* Removal runs right after this operation ends. */
                if (vm->group && vm_remove(vm, group_vm_add_undone, f) >= 0)
                        return;
                free(f);
        }
        (void) vmgr_bus_reply_error(call, error, "cannot start VM '%s': %s", vm->name, message);
        sd_bus_message_unref(call);
}

/* The state file lists the VMs being added as unfinished: start them now.
 * A failed write is logged and does not stop them (as before it existed,
 * a crash then leaves their TAPs for root to remove). */
static void group_vms_add_saved(Group *g, int r) {
        VM *next;

        if (r < 0)
                log_group_errno(LOG_WARNING, r, g->name, "Cannot record a new VM in %s: %m; starting it all the same",
                                g->state_file);
        for (VM *vm = g->vms; vm; vm = next) {
                sd_bus_message *call = vm->add_call;

                next = vm->next;
                /* Added after the state that was just written. */
                if (!call || vm->add_seq > g->files_done)
                        continue;
                vm->add_call = NULL;
                r = vm_operation(vm, VM_OP_START, 0, NULL, group_vm_added, call);
                if (r < 0) {
                        (void) vmgr_bus_reply_error(call, r, "cannot start VM '%s': %s", vm->name, strerror(-r));
                        sd_bus_message_unref(call);
                        (void) vm_remove(vm, NULL, NULL);
                }
        }
}

int group_add_vm(Group *g, VmgrVMSpec *spec, const char *spec_json, sd_bus_message *call) {
        VM *vm;
        int r;

        if (g->state != GROUP_RUNNING)
                return -VMGR_ERR_BUSY;
        if (g->n_vms >= g->manager->config.max_vms_per_group)
                return -VMGR_ERR_LIMIT_EXCEEDED;
        r = vm_new(g, spec, &vm);
        if (r < 0)
                return r;
        vm->spec_json = strdup(spec_json);
        if (!vm->spec_json) {
                (void) vm_remove(vm, NULL, NULL);
                return -ENOMEM;
        }
        /* Listed before its TAPs exist: a vmgrd that adopts the group after
         * a crash removes what there is of it. So it starts once the state
         * file saying so is on disk (group_vms_add_saved). */
        vm->adding = true;
        vm->add_call = sd_bus_message_ref(call);
        vm_announce(vm);
        r = group_save_then(g, group_vms_add_saved);
        if (r < 0) {
                vm->add_call = sd_bus_message_unref(vm->add_call);
                (void) vm_remove(vm, NULL, NULL);
                return r;
        }
        vm->add_seq = g->files_queued;
        return 0;
}

static void group_vm_removed_reply(VM *vm, int error, const char *message, void *userdata) {
        sd_bus_message *call = userdata;

        if (error < 0)
                (void) vmgr_bus_reply_error(call, error, "cannot remove VM '%s': %s", vm->name, message);
        else
                (void) sd_bus_reply_method_return(call, NULL);
        sd_bus_message_unref(call);
}

int group_remove_vm(Group *g, VM *vm, sd_bus_message *call) {
        int r;

        r = vm_remove(vm, group_vm_removed_reply, sd_bus_message_ref(call));
        if (r < 0)
                sd_bus_message_unref(call);
        return r;
}

static void group_start_services(Group *g);
static void on_outbound_enabled(Group *g, int error, const char *message);

static void on_network_created(int error, const char *message, int pid, int pidfd, void *userdata) {
        Group *g = userdata;
        int r;

        if (error < 0) {
                /* A helper that answers has undone its own work. One that died
                 * may have left a bridge, addresses or a route: the undo asks a
                 * new helper to delete whatever of the group's is there. */
                if (netadm_error_reply_lost(error))
                        g->network_created = true;
                group_creation_failed(g, error, message, true);
                group_unref(g);
                return;
        }
        g->network_created = true;
        group_stage_mark(g, GROUP_STAGE_NETWORK_CREATED);
        log_group(LOG_DEBUG, g->name, "Network created (bridge %s)", g->addrs.bridge);

        if (g->files_error < 0) {
                group_creation_failed(g, g->files_error, "cannot make the group's directory or its log", false);
                group_unref(g);
                return;
        }

        if (g->spec->outbound) {
                r = outbound_enable(g, on_outbound_enabled);
                if (r < 0)
                        group_creation_failed(g, r, "cannot start pasta for outbound (vmgrd's log says why)", false);
                group_unref(g);
                return;
        }
        group_start_services(g);
        group_unref(g);
}

/* The answer to GROUP_START: the network's part as for GROUP_CREATE (the
 * file server starts), then dnsmasq's as for DNSMASQ_START (ready once its
 * pid file is there, which it may be already). On failure the helper has
 * undone both, dnsmasq killed; one that died before answering may have left
 * a network, which the undo deletes, and a dnsmasq, which GROUP_DELETE
 * stops. Drops the reference the call held. */
static void on_group_started(int error, const char *message, int pid, int pidfd, void *userdata) {
        Group *g = userdata;

        on_network_created(error, message, 0, -EBADF, group_ref(g));
        dnsmasq_start_answered(g->dnsmasq, error, message, pid, pidfd);
        group_unref(g);
}

/* Outbound is in place (or failed): on with the group's services. */
static void on_outbound_enabled(Group *g, int error, const char *message) {
        if (g->state != GROUP_CREATING)
                return;
        if (error < 0)
                group_creation_failed(g, error, message, false);
        else
                group_start_services(g);
}

/* The network is there: the file server, then dnsmasq (unless GROUP_START
 * started it with the network). */
static void group_start_services(Group *g) {
        int r;

        r = fileserver_start(g, &g->fileserver);
        if (r < 0) {
                group_creation_failed(g, r, "cannot start the file server", false);
                return;
        }
        if (g->dnsmasq_early)
                return;
        r = dnsmasq_start(g->dnsmasq);
        if (r < 0)
                group_creation_failed(g, r, "failed to start dnsmasq", true);
}

/* The group's state directory and its log. Returns 0 or -errno. */
static int group_make_state_files(Group *g) {
        _cleanup_free_ char *log_path = NULL;
        int r;

        r = mkdir_p(g->state_subdir, 0700);
        if (r < 0)
                return r;
        if (asprintf(&log_path, "%s/group.log", g->state_subdir) < 0)
                return -ENOMEM;
        return group_log_new(g->manager->event, log_path, &g->log);
}

int group_make_files(Group *g) {
        int r;

        r = mkdir_p(g->runtime_dir, 0700);
        if (r < 0)
                return r;
        return group_make_state_files(g);
}

/* The first state file is in place and the runtime directory made (or
 * not): the network, then the group's own directory and log. */
static void group_start_saved(Group *g, int r) {
        Manager *m = g->manager;
        char message[VMGR_ERROR_MAX];

        if (!m)
                return; /* vmgrd is going away; the next start cleans up from the state file */
        if (r < 0)
                goto fail;

        /* One request makes the network and starts dnsmasq, which the
         * helper starts as soon as the bridge is ours: it starts up while
         * the bridge gets its addresses and rules. An outbound group starts
         * dnsmasq once pasta is in place, so it makes its network alone. */
        if (!g->spec->outbound && dnsmasq_start_prepare(g->dnsmasq) >= 0) {
                r = netadm_client_call(m->netadm, VMGR_NETADM_GROUP_START, g->name, NULL, 0, g->runtime_dir,
                                       on_group_started, g);
                if (r < 0)
                        goto fail;
                group_ref(g);
                g->dnsmasq_early = true;
                dnsmasq_start_sent(g->dnsmasq);
        } else {
                r = netadm_client_call(m->netadm, VMGR_NETADM_GROUP_CREATE, g->name, NULL, 0, NULL,
                                       on_network_created, g);
                if (r < 0)
                        goto fail;
                group_ref(g);
        }

        /* While the helper works: the helper needs none of it, and a
         * mkdir() or a new file may wait for the file system's journal. A
         * failure fails the creation once the helper has answered
         * (on_network_created()), so that the undo knows what there is. */
        r = group_make_state_files(g);
        if (r < 0) {
                log_group_errno(LOG_ERR, r, g->name, "Failed to make %s or its log: %m", g->state_subdir);
                g->files_error = r;
        }
        return;

fail:
        /* Nothing is on the network yet: remove the files, then answer (group_files_removed()). */
        g->log = group_log_free(g->log);
        g->create_error = r;
        (void) vmgr_error_printf(message, sizeof(message), r, "cannot create group '%s': %m", g->name);
        free(g->create_message);
        g->create_message = strdup(message); /* NULL: the reply says "cannot create the group" */
        group_finish_removal(g);
}

int group_start(Group *g, sd_bus_message *call) {
        char *text;
        int r;

        g->create_call = sd_bus_message_ref(call);

        /* The state file comes first: if we die from here on, the next start
         * knows what to clean up. The rest continues once it is in place
         * (renamed: what a restarted vmgrd reads), its fsync() on the side. */
        r = group_state_format(g, &text);
        if (r >= 0 && !group_files_queue_job(g, text, true, true, group_start_saved))
                r = -ENOMEM;
        if (r < 0) {
                g->create_call = sd_bus_message_unref(g->create_call);
                group_remove(g);
                return r;
        }
        return 0;
}
