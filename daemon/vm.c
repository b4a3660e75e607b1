/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"
#include "agent-session.h"
#include "bus-error.h"
#include "cloudinit.h"
#include "disk.h"
#include "dnsmasq.h"
#include "domain-xml.h"
#include "forward.h"
#include "fs-util.h"
#include "group.h"
#include "grouplog.h"
#include "guest-image.h"
#include "json-util.h"
#include "log.h"
#include "snapshot-store.h"
#include "vm-machine.h"
#include "vm-snapshot.h"
#include "vm.h"

#define VM_KILL_TIMEOUT_USEC (10ULL * 1000000ULL)

static const char *const state_names[_VM_STATE_MAX] = {
        [VM_DEFINED] = "defined",
        [VM_STARTING] = "starting",
        [VM_RUNNING] = "running",
        [VM_READY] = "ready",
        [VM_STOPPING] = "stopping",
        [VM_STOPPED] = "stopped",
        [VM_CRASHED] = "crashed",
};

const char *vm_state_to_string(VMState s) {
        return (unsigned) s < _VM_STATE_MAX ? state_names[s] : NULL;
}

static Manager *vm_manager(VM *vm) {
        Group *g = vm->group ?: vm->op_group;
        return g ? g->manager : NULL;
}

static VM *vm_free(VM *vm) {
        if (!vm)
                return NULL;
        vm_ready_done(vm);
        console_follower_free(vm->console);
        sd_event_source_disable_unref(vm->op_timer);
        sd_bus_message_unref(vm->op_call);
        if (vm->queued_call) {
                (void) vmgr_bus_reply_error(vm->queued_call, -ECANCELED, "VM '%s' was removed", vm->name);
                sd_bus_message_unref(vm->queued_call);
        }
        if (vm->add_call) {
                (void) vmgr_bus_reply_error(vm->add_call, -ECANCELED, "VM '%s' was removed before it started", vm->name);
                sd_bus_message_unref(vm->add_call);
        }
        vmgr_vm_spec_done(&vm->spec);
        free(vm->name);
        free(vm->object_path);
        free(vm->domain_name);
        free(vm->dir);
        free(vm->console_log);
        free(vm->agent_socket);
        free(vm->xml);
        free(vm->ipv4);
        free(vm->last_error);
        free(vm->spec_path);
        free(vm->spec_json);
        free(vm->restore_xml);
        safe_close(vm->restore_fd);
        snapshot_build_abort(vm->template_build);
        sd_event_source_disable_unref(vm->template_timer);
        sd_event_source_disable_unref(vm->agent_recheck_timer);
        free(vm->snapshot_name);
        free(vm);
        return NULL;
}

VM *vm_ref(VM *vm) {
        if (vm)
                vm->n_ref++;
        return vm;
}

VM *vm_unref(VM *vm) {
        if (!vm || --vm->n_ref > 0)
                return NULL;
        return vm_free(vm);
}

void vm_set_state(VM *vm, VMState state) {
        VMState old = vm->state;

        if (vm->state == state)
                return;
        /* A stopped VM holds no address; the next lease shows up again. */
        if ((state == VM_STOPPED || state == VM_CRASHED || state == VM_DEFINED) && vm->ipv4 && *vm->ipv4) {
                free(vm->ipv4);
                vm->ipv4 = strdup("");
                (void) vm_emit_changed(vm, "IPv4", NULL);
        }
        if ((state == VM_STOPPED || state == VM_CRASHED || state == VM_DEFINED) && vm->group)
                forward_vm_stopped(vm->group, vm->name);
        /* A template it was to build is given up: its waiters boot cold. */
        if (state == VM_STOPPED || state == VM_CRASHED || state == VM_DEFINED)
                vm_template_abandon(vm);
        log_internal(LOG_INFO, 0, vm->group ? vm->group->name : NULL, vm->name, "VM is %s",
                     vm_state_to_string(state));
        if (state == VM_STARTING)
                vm->panicked = vm->panic_pending = false; /* a new boot */
        vm->state = state;
        (void) vm_emit_changed(vm, "State", NULL);
        vm_ready_state_changed(vm, old);
        /* The state file says what a restarted vmgrd finds (group-state.c). */
        if (vm->group && vm->group->state == GROUP_RUNNING &&
            (state == VM_RUNNING || state == VM_READY || state == VM_STOPPED || state == VM_CRASHED))
                group_save(vm->group);
}

void vm_set_error(VM *vm, const char *message) {
        char *copy = strdup(message ?: "");

        if (!copy)
                return;
        free(vm->last_error);
        vm->last_error = copy;
        (void) vm_emit_changed(vm, "LastError", NULL);
}

int vm_new(Group *g, VmgrVMSpec *spec, VM **ret) {
        Manager *m = g->manager;
        _cleanup_(vm_unrefp) VM *vm = NULL;
        _cleanup_free_ char *escaped = NULL;
        char buf[256];
        int r;

        if (group_find_vm(g, spec->name))
                return -VMGR_ERR_VM_EXISTS;

        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        vm->n_ref = 1;
        vm->state = VM_DEFINED;
        vm->restore_fd = -EBADF;
        for (size_t i = 0; i < _VM_STAGE_MAX; i++)
                vm->timings[i] = VM_STAGE_NOT_YET;
        /* vmgrd's uid is the one the helper sees and derives the TAPs with. */
        r = vmgr_vm_addrs_derive(geteuid(), g->name, spec->name, &vm->addrs);
        if (r < 0)
                return r;
        vm->name = strdup(spec->name);
        vm->ipv4 = strdup("");
        if (!vm->name || !vm->ipv4)
                return -ENOMEM;
        r = vmgr_domain_name(g->name, spec->name, buf, sizeof(buf));
        if (r < 0)
                return r;
        vm->domain_name = strdup(buf);
        if (!vm->domain_name)
                return -ENOMEM;
        r = vmgr_domain_uuid(g->name, spec->name, vm->uuid);
        if (r < 0)
                return r;

        r = sd_bus_path_encode(g->object_path, "vm", &escaped);
        if (r < 0)
                return r;
        r = sd_bus_path_encode(escaped, spec->name, &vm->object_path);
        if (r < 0)
                return r;

        if (asprintf(&vm->dir, "%s/groups/%s/vms/%s", m->state_dir, g->name, spec->name) < 0 ||
            asprintf(&vm->console_log, "%s/console.log", vm->dir) < 0 ||
            /* Short and fixed-length (the TAP name is unique per group and VM):
             * a socket path must fit in sockaddr_un, whatever the names. */
            asprintf(&vm->agent_socket, "%s/agent/%s.sock", sockdir_path(m->sockdir), vm->addrs.tap) < 0) {
                vm->dir = vm->console_log = vm->agent_socket = NULL;
                return -ENOMEM;
        }

        vm->spec = *spec;
        *spec = (VmgrVMSpec) {};

        group_attach_vm(g, vm);
        *ret = TAKE_PTR(vm); /* the group's list holds this reference */
        return 0;
}

int vm_adopt(Group *g, VmgrVMSpec *spec, const char *spec_json, const char *state, uint64_t start_usec,
             const uint64_t timings[], const char *last_error, bool unfinished, VM **ret) {
        _cleanup_free_ char *xml_path = NULL;
        VM *vm;
        int r;

        r = vm_new(g, spec, &vm);
        if (r < 0)
                return r;
        vm->spec_json = strdup(spec_json);
        if (!vm->spec_json)
                return -ENOMEM;
        /* The TAPs are there (the helper tags them with the group: they
         * live as long as its network), and so are the disks. */
        vm->tap_created = true;
        vm->tap4_created = vm->spec.ipv4;
        vm->ever_started = true;
        vm->removing = unfinished;
        if (asprintf(&xml_path, "%s/domain.xml", vm->dir) >= 0)
                (void) read_file(xml_path, 1024 * 1024, &vm->xml);
        vm->start_usec = start_usec;
        for (size_t i = 0; i < _VM_STAGE_MAX; i++)
                vm->timings[i] = timings[i];
        if (last_error && *last_error)
                vm->last_error = strdup(last_error);
        /* What it was, until libvirt tells (vm_adopt_domain()). */
        vm->state = state && streq(state, "stopped") ? VM_STOPPED
                    : state && streq(state, "crashed") ? VM_CRASHED
                                                         : VM_DEFINED;
        *ret = vm;
        return 0;
}

int vm_adopt_domain(VM *vm, bool running, vm_op_done_t removed, void *userdata) {
        if (vm->removing) {
                /* Half added or half removed: finish the removal (the
                 * domain, TAPs and files, whatever of them there is). */
                log_internal(LOG_NOTICE, 0, vm->group->name, vm->name,
                             "VM was being added or removed when vmgrd stopped; removing it");
                vm->state = running ? VM_RUNNING : VM_STOPPED;
                vm->removing = false;
                return vm_remove(vm, removed, userdata) >= 0 ? 1 : 0;
        }
        if (running) {
                vm->adopting = true;
                vm_set_state(vm, VM_RUNNING);
                return 0;
        }
        if (vm->state == VM_STOPPED || vm->state == VM_CRASHED)
                return 0; /* it was not running, and is not */
        vm_set_error(vm, "QEMU was gone when vmgrd restarted");
        vm_set_state(vm, VM_CRASHED);
        return 0;
}

/* Take the VM out of its group. Drops the group's reference. */
static void vm_unlink(VM *vm) {
        Group *g = vm->group;
        Manager *m;

        if (!g)
                return;
        /* Its last console lines go to the group's log, which may not outlive it. */
        vm->console = console_follower_free(vm->console);
        forward_remove_vm(g, vm->name);
        m = g->manager;
        vm_template_abandon(vm);
        if (m && m->bus)
                (void) sd_bus_emit_object_removed(m->bus, vm->object_path);
        group_detach_vm(g, vm);
        vm_ready_unlinked(vm, g);
        vm_unref(vm);
}

/* ---- operation plumbing ---------------------------------------------- */

/* vm-machine.c decides; the functions here and below carry its actions out.
 * Each completion (helper, pool, libvirt, agent, timer, domain event) is fed
 * back to it as an input. */

/* What an action needs besides the VM: the why of a domain event, the waiter
 * of a removal, the op whose call finished and why it failed. */
typedef struct VMActionContext {
        const char *why;
        vm_op_done_t done;
        void *userdata;
        int r;                  /* BEGIN_REMOVE: what vm_operation() returned */
        uint64_t seq;           /* DONE, FAILED: the op that made the call (vm->op_seq when it did) */
        int error;              /* FAILED: why, for the FINISH */
        const char *message;
} VMActionContext;

static int vm_machine_run(VM *vm, VMInput input, VMOp arg, VMActionContext *ctx);

static VMFacts vm_facts(VM *vm) {
        return (VMFacts) {
                .state = vm->state,
                .ever_started = vm->ever_started,
                .tap_created = vm->tap_created,
                .tap4_wanted = vm->spec.ipv4,
                .tap4_created = vm->tap4_created,
                .xml_prepared = vm->xml != NULL,
                .warm_wanted = vm_warm_wanted(vm),
                .has_deadline = vm->op_timeout_usec > 0,
                .remove_requested = vm->remove_requested,
                .panicked = vm->panicked,
                .op_seq = vm->op_seq,
                .input_seq = vm->op_seq,
        };
}

/* Begin the operation queued behind a snapshot's save; one that cannot
 * begin now fails its caller as vm_operation() would have. */
static void vm_op_dequeue(VM *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = TAKE_PTR(vm->queued_call);
        vm_op_done_t done = vm->queued_done;
        void *userdata = vm->queued_userdata;
        VMOp op = vm->queued_op;
        int r;

        vm->queued_op = VM_OP_NONE;
        vm->queued_done = NULL;
        vm->queued_userdata = NULL;
        r = vm_operation(vm, op, vm->queued_timeout_usec, call, done, userdata);
        if (r < 0) {
                char message[256];

                (void) vmgr_error_printf(message, sizeof(message), r, "cannot %s VM '%s': %m",
                                         vm_op_to_string(op), vm->name);
                if (call)
                        (void) vmgr_bus_reply_error(call, r, "%s", message);
                if (done)
                        done(vm, r, message, userdata);
        }
}

/* End the operation in flight as the machine's FINISH action a says: reply,
 * tell the waiter, drop its reference. */
static void vm_op_finish(VM *vm, const VMAction *a) {
        sd_bus_message *call = TAKE_PTR(vm->op_call);
        vm_op_done_t done = vm->op_done;
        void *userdata = vm->op_userdata;
        VMOp op = vm->op;
        Group *op_group = TAKE_PTR(vm->op_group);
        char message[512] = "";
        int error = a->error;

        switch (a->reason) {
        case VM_FINISH_OK:
                error = 0;
                break;
        case VM_FINISH_STEP_FAILED:
                error = vm->op_error;
                snprintf(message, sizeof(message), "%s", vm->op_message);
                break;
        case VM_FINISH_NOT_RUNNING:
                snprintf(message, sizeof(message), "VM '%s' is not running", vm->name);
                break;
        case VM_FINISH_CUT_SHORT:
                snprintf(message, sizeof(message), "the clean shutdown was cut short by %s", vm_op_to_string(a->by));
                break;
        }

        vm->op = VM_OP_NONE;
        vm->op_done = NULL;
        vm->op_userdata = NULL;
        vm->op_timer = sd_event_source_disable_unref(vm->op_timer);

        if (error < 0) {
                log_internal(LOG_ERR, error, vm->group ? vm->group->name : NULL, vm->name, "%s failed: %s",
                             vm_op_to_string(op), message);
                vm_set_error(vm, message);
                if (a->failed_state != _VM_STATE_MAX)
                        vm_set_state(vm, a->failed_state);
        }
        if (call) {
                if (error < 0)
                        (void) vmgr_bus_reply_error(call, error, "%s", message);
                else
                        (void) sd_bus_reply_method_return(call, NULL);
                sd_bus_message_unref(call);
        }
        if (a->unlink)
                vm_unlink(vm);
        if (done)
                done(vm, error, error < 0 ? message : NULL, userdata);

        if (a->then_remove && vm->remove_requested && vm->group) {
                vm->remove_requested = false;
                (void) vm_operation(vm, VM_OP_REMOVE, 0, NULL, vm->remove_done, vm->remove_userdata);
        }
        vm_panic_op_finished(vm);
        if (vm->queued_op != VM_OP_NONE && vm->op == VM_OP_NONE)
                vm_op_dequeue(vm);
        group_unref(op_group);
        vm_unref(vm); /* the operation's reference */
}

/* The work of op number seq failed, or could not be started: if that op is
 * still in flight, the machine fails it with this message. */
_printf_(4, 5) void vm_op_fail(VM *vm, uint64_t seq, int error, const char *fmt, ...) {
        char message[sizeof(vm->op_message)];
        VMActionContext ctx = { .seq = seq, .error = error, .message = message };
        va_list ap;

        va_start(ap, fmt);
        (void) vmgr_vsnprintf_error(message, sizeof(message), error, fmt, ap);
        va_end(ap);
        (void) vm_machine_run(vm, VM_INPUT_FAILED, VM_OP_NONE, &ctx);
}

/* The work of op number seq is done: if that op is still in flight, the
 * machine goes on. */
void vm_op_step_done(VM *vm, uint64_t seq) {
        VMActionContext ctx = { .seq = seq };

        (void) vm_machine_run(vm, VM_INPUT_DONE, VM_OP_NONE, &ctx);
}

void vm_op_cold(VM *vm, uint64_t seq) {
        VMActionContext ctx = { .seq = seq };

        (void) vm_machine_run(vm, VM_INPUT_COLD, VM_OP_NONE, &ctx);
}

static void vm_actions_run(VM *vm, const VMMachineResult *res, VMActionContext *ctx);

int vm_operation(VM *vm, VMOp op, uint64_t timeout_usec, sd_bus_message *call, vm_op_done_t done,
                 void *userdata) {
        VMMachineResult res;
        VMFacts facts;
        int r;

        if (!vm->group)
                return -VMGR_ERR_NO_SUCH_VM;
        if (vm->op == VM_OP_SNAPSHOT && (op == VM_OP_KILL || op == VM_OP_SHUTDOWN || op == VM_OP_REBOOT ||
                                         op == VM_OP_RESTART)) {
                if (vm->queued_op != VM_OP_NONE)
                        return -VMGR_ERR_BUSY;
                vm->queued_op = op;
                vm->queued_timeout_usec = timeout_usec;
                vm->queued_call = sd_bus_message_ref(call);
                vm->queued_done = done;
                vm->queued_userdata = userdata;
                return 0;
        }
        if (vm_machine_preempts(op))
                (void) vm_machine_run(vm, VM_INPUT_PREEMPT, op, NULL);

        facts = vm_facts(vm);
        facts.has_deadline = timeout_usec > 0;
        r = vm_machine_feed(vm->op, vm->op_step, &facts, VM_INPUT_BEGIN, op, &res);
        if (r < 0)
                return r;

        vm->op = res.op;
        vm->op_seq++;
        vm->op_step = res.step;
        vm->op_error = 0;
        vm->op_message[0] = 0;
        vm->op_call = sd_bus_message_ref(call);
        vm->op_done = done;
        vm->op_userdata = userdata;
        vm->op_timeout_usec = timeout_usec;
        vm->op_group = group_ref(vm->group); /* the group outlives our steps */
        vm_ref(vm);

        vm_actions_run(vm, &res, NULL);
        return 0;
}

int vm_remove(VM *vm, vm_op_done_t done, void *userdata) {
        VMActionContext ctx = { .done = done, .userdata = userdata };
        int r;

        if (!vm->group)
                return -VMGR_ERR_NO_SUCH_VM;
        r = vm_machine_run(vm, VM_INPUT_REMOVE, VM_OP_REMOVE, &ctx);
        r = r < 0 ? r : ctx.r;
        if (r >= 0 && !vm->removing && vm->group && vm->group->state == GROUP_RUNNING) {
                /* A vmgrd that adopts the group after a crash finishes it. */
                vm->removing = true;
                group_save(vm->group);
        }
        return r;
}

/* ---- steps done by the helper ------------------------------------------ */

/* A TAP call to the helper, and the op that made it. */
typedef struct HelperCall {
        VM *vm;                 /* a reference: the op may finish before the reply */
        uint64_t seq;
        enum vmgr_netadm_op op;
        enum vmgr_nic nic;
} HelperCall;

static void helper_call_free(HelperCall *c) {
        vm_unref(c->vm);
        free(c);
}

static void on_helper_reply(int error, const char *message, int pid, int pidfd, void *userdata) {
        HelperCall *c = userdata;
        VM *vm = c->vm;

        safe_close(pidfd);
        /* What the TAP is now holds whichever op asked. */
        if (error >= 0) {
                bool created = c->op == VMGR_NETADM_TAP_CREATE;
                if (c->nic == VMGR_NIC_PRIMARY)
                        vm->tap_created = created;
                else
                        vm->tap4_created = created;
        }
        if (error < 0)
                vm_op_fail(vm, c->seq, error == -EPERM ? -EPERM : -VMGR_ERR_HELPER_FAILED, "%s", message);
        else
                vm_op_step_done(vm, c->seq);
        helper_call_free(c);
}

static void helper_tap(VM *vm, enum vmgr_netadm_op op, enum vmgr_nic nic) {
        Manager *m = vm_manager(vm);
        HelperCall *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                vm_op_fail(vm, vm->op_seq, -ENOMEM, "out of memory");
                return;
        }
        *c = (HelperCall) { .vm = vm_ref(vm), .seq = vm->op_seq, .op = op, .nic = nic };
        r = netadm_client_call(m->netadm, op, vm->group->name, vm->name, nic, NULL, on_helper_reply, c);
        if (r < 0) {
                char words[128];

                helper_call_free(c);
                /* The operation fails as HelperFailed; the words say why (%m would be its words). */
                vm_op_fail(vm, vm->op_seq, -VMGR_ERR_HELPER_FAILED, "cannot ask vmgr-netadm for a TAP: %s",
                           vmgr_strerror(r, words, sizeof(words)));
        }
}

/* ---- preparing the domain (pool thread) ------------------------------ */

typedef struct PrepareJob {
        VM *vm;                 /* a reference; only its immutable fields are read on the thread */
        uint64_t seq;           /* the op that asked */
        char *group;
        char *cache_dir;
        char *mkguest;
        VmgrAccel accel;
        char *xml;
        /* Warm start: the spec is a user snapshot's (from_snapshot), the
         * shape and the clone's XML are made too. */
        bool warm;
        SnapshotStore *store;
        VmgrVMSpec snapshot_spec;
        char *snapshot_spec_json;
        bool has_snapshot_spec;
        const VmgrVMSpec *spec; /* vm->spec, or snapshot_spec */
        char shape[65];
        char *restore_xml;
        char error[VMGR_ERROR_MAX];
} PrepareJob;

/* A hostname the guest init accepts: [A-Za-z0-9.-]. */
void vm_hostname(const char *name, char *buf, size_t size) {
        snprintf(buf, size, "%s", name);
        for (char *p = buf; *p; p++)
                if (*p == '_')
                        *p = '-';
}

static int prepare_disk(const char *cache_dir, const VmgrDiskSpec *d, const char *overlay, char *error,
                        size_t error_size) {
        _cleanup_free_ char *base = NULL;
        VmgrDiskFormat format;
        int r;

        if (!d->path)
                return disk_blank_create(overlay, d->size_mib, error, error_size);
        r = disk_base_get(cache_dir, d->path, d->format, &base, &format, error, error_size);
        if (r < 0)
                return r;
        return disk_overlay_create(base, format, overlay, error, error_size);
}

/* A disk image the spec names could not be used: an image that is missing,
 * unreadable or not what it claims is the spec's fault (InvalidSpec with
 * the JSON path); anything else (disk full, qemu-img) is not. */
static int spec_file_error(VM *vm, const char *key, int r, char *error, size_t size) {
        char why[400];

        if (r != -ENOENT && r != -EACCES && r != -EINVAL)
                return r;
        /* error is the message to wrap; copy it first, as it is also the output. */
        memcpy(why, error, sizeof(why) - 1);
        why[sizeof(why) - 1] = 0;
        snprintf(error, size, "%s%s: %.380s", vm->spec_path ?: "", key, why);
        return -VMGR_ERR_INVALID_SPEC;
}

/* Every file the spec names must exist and be readable by us. */
static int check_spec_files(VM *vm, const VmgrVMSpec *s, char *error, size_t size) {
        struct {
                const char *key, *path;
        } files[3 + VMGR_SPEC_MAX_EXTRA_DISKS] = {
                { "kernel", s->kernel },
                { "initrd", s->initrd },
                { "disk", s->disk.path },
        };
        char keys[VMGR_SPEC_MAX_EXTRA_DISKS][48];
        size_t n = 3;

        for (size_t i = 0; i < s->n_extra_disks; i++) {
                snprintf(keys[i], sizeof(keys[i]), "extra_disks[%zu].path", i);
                files[n].key = keys[i];
                files[n++].path = s->extra_disks[i].path;
        }
        for (size_t i = 0; i < n; i++) {
                struct stat st;

                if (!files[i].path)
                        continue;
                if (access(files[i].path, R_OK) < 0 || stat(files[i].path, &st) < 0) {
                        snprintf(error, size, "%s%s: %s: %m", vm->spec_path ?: "", files[i].key, files[i].path);
                        return -VMGR_ERR_INVALID_SPEC;
                }
                if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
                        snprintf(error, size, "%s%s: %s is not a file", vm->spec_path ?: "", files[i].key,
                                 files[i].path);
                        return -VMGR_ERR_INVALID_SPEC;
                }
        }
        return 0;
}

/* The VM's directory and the directory of its agent socket. */
static int prepare_dirs(PrepareJob *j) {
        VM *vm = j->vm;
        _cleanup_free_ char *vms_dir = NULL;
        int r;

        r = mkdir_p(vm->dir, 0700);
        if (r < 0)
                return vmgr_error_printf(j->error, sizeof(j->error), r, "cannot create %s: %m", vm->dir);
        vms_dir = strdup(vm->agent_socket);
        if (!vms_dir)
                return -ENOMEM;
        *strrchr(vms_dir, '/') = 0;
        r = mkdir_p(vms_dir, 0700);
        if (r < 0)
                return vmgr_error_printf(j->error, sizeof(j->error), r, "cannot create %s: %m", vms_dir);
        return 0;
}

/* What the VM boots: an overlay of the spec's disk (*ret_boot_disk), or
 * the spec's kernel, or the default guest's kernel and initrd, with the
 * kernel command line for either (kernel, initrd: PATH_MAX bytes). */
static int prepare_boot(PrepareJob *j, char **ret_boot_disk, char *kernel, char *initrd, char *cmdline,
                        size_t cmdline_size) {
        VM *vm = j->vm;
        const VmgrVMSpec *s = j->spec;
        char hostname[64];
        int r;

        if (s->disk.path) {
                if (asprintf(ret_boot_disk, "%s/disk.qcow2", vm->dir) < 0) {
                        *ret_boot_disk = NULL;
                        return -ENOMEM;
                }
                r = prepare_disk(j->cache_dir, &s->disk, *ret_boot_disk, j->error, sizeof(j->error));
                if (r < 0)
                        return spec_file_error(vm, "disk", r, j->error, sizeof(j->error));
        } else if (s->kernel) {
                snprintf(kernel, PATH_MAX, "%s", s->kernel);
                if (s->initrd)
                        snprintf(initrd, PATH_MAX, "%s", s->initrd);
                snprintf(cmdline, cmdline_size, "%s", s->cmdline ?: "console=ttyS0");
        } else {
                r = guest_image_get(j->mkguest, j->cache_dir, kernel, initrd, j->error, sizeof(j->error));
                if (r < 0)
                        return r;
                /* OVMF boots a kernel through its EFI stub: the vmlinuz that
                 * vmgr-mkguest keeps beside the PVH vmlinux (docs/guest.md). */
                char *base = strrchr(kernel, '/');
                base = base ? base + 1 : kernel;
                if (s->firmware == VMGR_FIRMWARE_UEFI && strncmp(base, "vmlinux-", 8) == 0)
                        base[6] = 'z';
                vm_hostname(vm->name, hostname, sizeof(hostname));
                /* no_timer_check: under TCG on a loaded host the kernel's check of the
                 * IO-APIC timer can fail and panic the guest at boot. quiet: the
                 * serial console is slow under emulation; panics and init's own
                 * "vmgr-guest:" lines still reach it (docs/guest.md). cryptomgr.notests:
                 * the kernel's known-answer self-tests of its crypto algorithms took
                 * 0.4-0.7 s of the boot under TCG; skipping them weakens no key.
                 * initcall_blacklist: tracing's set-up and a self-test, which the
                 * guest has no use for, cost about 0.2 s of a TCG boot
                 * (docs/guest.md, "Boot"). nolapic_timer, with one vCPU only:
                 * the local APIC timer's calibration is a 0.1 s wait, and TCG
                 * has no TSC deadline timer to skip it; a uniprocessor's ticks
                 * come from the HPET as well, while more vCPUs would each need
                 * an interrupt from another CPU per tick. noreplace-smp: a
                 * uniprocessor kernel rewrites every lock prefix of its text at
                 * boot, 0.17 s under TCG, to save a little per atomic operation
                 * on real hardware (more vCPUs: nothing to skip). */
                snprintf(cmdline, cmdline_size,
                         "console=ttyS0 quiet no_timer_check cryptomgr.notests "
                         "initcall_blacklist=trace_eval_init,tracer_init_tracefs,crypto_kdf108_init "
                         "noreplace-smp %svmgr.hostname=%s",
                         s->vcpus <= 1 ? "nolapic_timer " : "", hostname);
        }
        return 0;
}

/* An overlay for each of the spec's extra disks, at paths[i] (malloc'd,
 * the caller frees them even on failure). */
static int prepare_extra_disks(PrepareJob *j, char *paths[], const char *formats[]) {
        VM *vm = j->vm;
        const VmgrVMSpec *s = j->spec;
        int r;

        for (size_t i = 0; i < s->n_extra_disks; i++) {
                if (asprintf(&paths[i], "%s/extra%zu.qcow2", vm->dir, i) < 0) {
                        paths[i] = NULL;
                        return -ENOMEM;
                }
                formats[i] = "qcow2";
                r = prepare_disk(j->cache_dir, &s->extra_disks[i], paths[i], j->error, sizeof(j->error));
                if (r < 0) {
                        char key[48];
                        snprintf(key, sizeof(key), "extra_disks[%zu]", i);
                        return spec_file_error(vm, key, r, j->error, sizeof(j->error));
                }
        }
        return 0;
}

/* A snapshot's spec (JSON) for a VM called name: its "name" goes. Returns
 * 0, the spec and its JSON, or -EINVAL (error) or -ENOMEM. */
static int snapshot_spec_parse(const char *json, const char *name, VmgrVMSpec *ret, char **ret_json, char *error) {
        /* The default VM's spec may be empty. */
        _cleanup_json_ json_object *o = json && *json ? json_tokener_parse(json) : json_object_new_object();
        char *text;
        int r;

        if (!o || !json_object_is_type(o, json_type_object)) {
                snprintf(error, VMGR_SPEC_ERROR_MAX, "not a JSON object");
                return -EINVAL;
        }
        json_object_object_del(o, "name");
        text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        if (!text)
                return -ENOMEM;
        r = vmgr_vm_spec_parse(text, name, ret, error);
        if (r < 0) {
                free(text);
                return r;
        }
        *ret_json = text;
        return 0;
}

/* A VM from a user snapshot is the snapshot's VM under its own name: its
 * spec is the snapshot's. Returns 0 or -errno (j->error). */
static int prepare_snapshot_spec(PrepareJob *j) {
        VM *vm = j->vm;
        SnapshotMeta *list = NULL;
        size_t n = 0;
        char spec_error[VMGR_SPEC_ERROR_MAX];
        int r = -ENOENT;

        if (!j->store) {
                snprintf(j->error, sizeof(j->error), "%sfrom_snapshot: this vmgrd has no snapshot store",
                         vm->spec_path ?: "");
                return -VMGR_ERR_INVALID_SPEC;
        }
        if (snapshot_store_list(j->store, &list, &n) < 0)
                n = 0;
        for (size_t i = 0; i < n; i++)
                if (list[i].kind == SNAPSHOT_USER && streq(list[i].name, vm->spec.from_snapshot) && r == -ENOENT) {
                        r = snapshot_spec_parse(list[i].spec_json, vm->name, &j->snapshot_spec,
                                                &j->snapshot_spec_json, spec_error);
                        if (r < 0)
                                snprintf(j->error, sizeof(j->error), "snapshot '%s' holds a spec vmgrd cannot read: %.300s",
                                         vm->spec.from_snapshot, spec_error);
                }
        for (size_t i = 0; i < n; i++)
                snapshot_meta_done(&list[i]);
        free(list);
        if (r == -ENOENT) {
                snprintf(j->error, sizeof(j->error), "%sfrom_snapshot: there is no snapshot '%s'", vm->spec_path ?: "",
                         vm->spec.from_snapshot);
                return -VMGR_ERR_NO_SUCH_SNAPSHOT;
        }
        if (r < 0)
                return r;
        j->has_snapshot_spec = true;
        /* Its TAPs were made for the spec it was given. */
        if (j->snapshot_spec.ipv4 != vm->spec.ipv4) {
                snprintf(j->error, sizeof(j->error), "%sfrom_snapshot: snapshot '%s' %s an IPv4 NIC: say \"ipv4\": %s",
                         vm->spec_path ?: "", vm->spec.from_snapshot, j->snapshot_spec.ipv4 ? "has" : "has no",
                         j->snapshot_spec.ipv4 ? "true" : "false");
                return -VMGR_ERR_INVALID_SPEC;
        }
        free(j->snapshot_spec.from_snapshot);
        j->snapshot_spec.from_snapshot = strdup(vm->spec.from_snapshot);
        if (!j->snapshot_spec.from_snapshot)
                return -ENOMEM;
        j->spec = &j->snapshot_spec;
        return 0;
}

/* The VM's shape and its clone's XML. Returns 0 or -errno (j->error). */
static int prepare_warm(PrepareJob *j, VmgrDomainConfig *c) {
        const VmgrVMSpec *s = j->spec;
        const char *files[1 + VMGR_SPEC_MAX_EXTRA_DISKS];
        char hostname[64];
        size_t n = 0;
        int r;

        if (s->disk.path)
                files[n++] = s->disk.path;
        for (size_t i = 0; i < s->n_extra_disks; i++)
                if (s->extra_disks[i].path)
                        files[n++] = s->extra_disks[i].path;
        vm_hostname(j->vm->name, hostname, sizeof(hostname));
        r = vm_shape_compute(c, hostname, files, n, j->shape, j->error, sizeof(j->error));
        if (r < 0)
                return r;
        c->incoming_defer = true;
        r = vmgr_domain_xml(c, &j->restore_xml);
        c->incoming_defer = false;
        if (r < 0)
                return vmgr_error_printf(j->error, sizeof(j->error), r, "cannot build the clone's domain XML: %m");
        return 0;
}

static int prepare_work(void *userdata) {
        PrepareJob *j = userdata;
        VM *vm = j->vm;
        const VmgrVMSpec *s;
        char reason[256] = "", cmdline[4200];
        char kernel[PATH_MAX] = "", initrd[PATH_MAX] = "";
        _cleanup_free_ char *boot_disk = NULL, *seed = NULL, *nvram = NULL;
        char *extra_paths[VMGR_SPEC_MAX_EXTRA_DISKS] = {};
        const char *extra_formats[VMGR_SPEC_MAX_EXTRA_DISKS] = {};
        VmgrAccel accel;
        int r;

        r = prepare_dirs(j);
        if (r < 0)
                return r;
        if (j->warm && vm->spec.from_snapshot) {
                r = prepare_snapshot_spec(j);
                if (r < 0)
                        return r;
        }
        s = j->spec;

        /* Files the spec names are checked here, as the user, so a typo is an
         * InvalidSpec with its JSON path rather than QEMU's complaint later. */
        r = check_spec_files(vm, j->spec, j->error, sizeof(j->error));
        if (r < 0)
                return r;

        r = accel_resolve(j->cache_dir, j->accel, &accel, reason, sizeof(reason));
        if (r < 0) {
                snprintf(j->error, sizeof(j->error), "accelerator: %s", reason);
                return r;
        }

        r = prepare_boot(j, &boot_disk, kernel, initrd, cmdline, sizeof(cmdline));
        if (r < 0)
                return r;
        r = prepare_extra_disks(j, extra_paths, extra_formats);
        if (r < 0)
                goto finish;
        if (s->cloud_init.enabled) {
                r = cloudinit_seed_write(vm->dir, geteuid(), j->group, s, &seed, j->error, sizeof(j->error));
                if (r < 0)
                        goto finish;
        }
        /* UEFI variables live with the disks: kept across stops and vmgrd
         * restarts (the XML names the file), removed with the VM. */
        if (s->firmware == VMGR_FIRMWARE_UEFI && asprintf(&nvram, "%s/nvram.fd", vm->dir) < 0) {
                nvram = NULL;
                r = -ENOMEM;
                goto finish;
        }

        VmgrDomainConfig c = {
                .uid = geteuid(),
                .group = j->group,
                .vm = vm->name,
                .vcpus = s->vcpus,
                .memory_mib = s->memory_mib,
                .accel = accel,
                .emulator = "/usr/bin/qemu-system-x86_64",
                .kernel = *kernel ? kernel : NULL,
                .initrd = *initrd ? initrd : NULL,
                .cmdline = *kernel ? cmdline : NULL,
                .boot_disk = boot_disk,
                .boot_disk_format = boot_disk ? "qcow2" : NULL,
                .extra_disks = (const char *const *) extra_paths,
                .extra_disk_formats = extra_formats,
                .n_extra_disks = s->n_extra_disks,
                .cloud_init_seed = seed,
                .ipv4 = s->ipv4,
                .console_log = vm->console_log,
                .agent_socket = vm->agent_socket,
                .firmware = s->firmware,
                .nvram = nvram,
                .genid = j->warm,
        };
        r = vmgr_domain_xml(&c, &j->xml);
        if (r < 0)
                vmgr_error_printf(j->error, sizeof(j->error), r, "cannot build the domain XML: %m");
        else {
                /* A restarted vmgrd starts the VM again from the same XML (same disks). */
                _cleanup_free_ char *xml_path = NULL;

                if (asprintf(&xml_path, "%s/domain.xml", vm->dir) < 0)
                        xml_path = NULL;
                r = xml_path ? write_file_atomic(xml_path, j->xml, strlen(j->xml), 0600) : -ENOMEM;
                if (r < 0)
                        vmgr_error_printf(j->error, sizeof(j->error), r, "cannot write the domain XML: %m");
        }
        if (r >= 0 && j->warm) {
                int k = prepare_warm(j, &c);
                /* Without a shape the VM boots cold; a user snapshot's cannot. */
                if (k < 0 && vm->spec.from_snapshot)
                        r = k;
                else if (k < 0) {
                        log_internal(LOG_WARNING, k, j->group, vm->name, "No warm start for this VM: %s", j->error);
                        *j->shape = 0;
                }
        }

finish:
        for (size_t i = 0; i < VMGR_SPEC_MAX_EXTRA_DISKS; i++)
                free(extra_paths[i]);
        return r;
}

static void prepare_job_free(PrepareJob *j) {
        vm_unref(j->vm);
        free(j->xml);
        free(j->restore_xml);
        free(j->snapshot_spec_json);
        if (j->has_snapshot_spec)
                vmgr_vm_spec_done(&j->snapshot_spec);
        free(j->group);
        free(j->cache_dir);
        free(j->mkguest);
        free(j);
}

static void prepare_done(int result, void *userdata) {
        PrepareJob *j = userdata;
        VM *vm = j->vm;

        if (result == -VMGR_ERR_INVALID_SPEC)
                vm_op_fail(vm, j->seq, result, "invalid spec: %s", j->error);
        else if (result == -VMGR_ERR_NO_SUCH_SNAPSHOT)
                vm_op_fail(vm, j->seq, result, "%s", j->error);
        else if (result < 0)
                vm_op_fail(vm, j->seq, result, "cannot prepare VM '%s': %s", vm->name, j->error);
        else {
                /* The XML depends on the spec only: a late one is as good as any. */
                if (!vm->xml)
                        vm->xml = TAKE_PTR(j->xml);
                if (j->seq == vm->op_seq) {
                        snprintf(vm->shape, sizeof(vm->shape), "%s", j->shape);
                        free(vm->restore_xml);
                        vm->restore_xml = TAKE_PTR(j->restore_xml);
                        /* From now on it is the snapshot's VM (its name and
                         * from_snapshot kept). */
                        if (j->has_snapshot_spec) {
                                vmgr_vm_spec_done(&vm->spec);
                                vm->spec = j->snapshot_spec;
                                j->snapshot_spec = (VmgrVMSpec) {};
                                j->has_snapshot_spec = false;
                                /* The state file's: a restarted vmgrd knows it as such. */
                                free(vm->spec_json);
                                vm->spec_json = TAKE_PTR(j->snapshot_spec_json);
                        }
                }
                vm_op_step_done(vm, j->seq);
        }
        prepare_job_free(j);
}

static void prepare(VM *vm) {
        Manager *m = vm_manager(vm);
        PrepareJob *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j) {
                vm_op_fail(vm, vm->op_seq, -ENOMEM, "out of memory");
                return;
        }
        j->vm = vm_ref(vm);
        j->seq = vm->op_seq;
        j->spec = &vm->spec;
        j->warm = vm_warm_wanted(vm);
        j->store = m->snapshots;
        j->accel = vm->group->spec->accelerator != VMGR_ACCEL_AUTO ? vm->group->spec->accelerator
                                                                    : (VmgrAccel) m->config.accelerator;
        j->group = strdup(vm->group->name);
        j->cache_dir = strdup(m->cache_dir);
        j->mkguest = strdup(m->mkguest_path);
        if (!j->group || !j->cache_dir || !j->mkguest) {
                prepare_job_free(j);
                vm_op_fail(vm, vm->op_seq, -ENOMEM, "out of memory");
                return;
        }
        r = worker_submit(m->workers, prepare_work, prepare_done, j);
        if (r < 0) {
                prepare_job_free(j);
                vm_op_fail(vm, vm->op_seq, r, "cannot prepare VM '%s': %m", vm->name);
        }
}

/* ---- removing the VM's files (pool thread) ------------------------------ */

typedef struct RemoveJob {
        VM *vm;                 /* a reference (none in remove_files()' local one) */
        uint64_t seq;           /* the op that asked */
        char *dir;
        char *agent_socket;
} RemoveJob;

static void remove_job_free(RemoveJob *j) {
        vm_unref(j->vm);
        free(j->dir);
        free(j->agent_socket);
        free(j);
}

/* Returns 0 or -errno from removing the VM's directory. */
static int remove_work(void *userdata) {
        RemoveJob *j = userdata;
        int r;

        r = rm_rf(j->dir);
        if (j->agent_socket)
                (void) unlink(j->agent_socket);
        return r;
}

static void remove_done(int result, void *userdata) {
        RemoveJob *j = userdata;
        VM *vm = j->vm;

        /* Cancelled by a pool shutting down: the files still go. */
        if (result == -ECANCELED)
                result = remove_work(j);
        if (result < 0)
                log_internal(LOG_WARNING, result, vm->group ? vm->group->name : NULL, vm->name,
                             "Failed to remove %s: %m", j->dir);
        vm_op_step_done(vm, j->seq);
        remove_job_free(j);
}

/* Last step of removing a VM: its directory goes on the pool, then the op
 * finishes, so the caller hears "done" only once the files are gone. */
static void remove_files(VM *vm) {
        Manager *m = vm_manager(vm);
        RemoveJob *j;

        j = calloc(1, sizeof(*j));
        if (j) {
                j->vm = vm_ref(vm);
                j->seq = vm->op_seq;
                j->dir = strdup(vm->dir);
                j->agent_socket = vm->agent_socket ? strdup(vm->agent_socket) : NULL;
        }
        if (!j || !j->dir || (vm->agent_socket && !j->agent_socket)) {
                if (j)
                        remove_job_free(j);
                /* Out of memory: remove them here rather than leave them behind. */
                RemoveJob local = { .vm = vm, .dir = vm->dir, .agent_socket = vm->agent_socket };
                int r = remove_work(&local);
                if (r < 0)
                        log_internal(LOG_WARNING, r, vm->group ? vm->group->name : NULL, vm->name,
                                     "Failed to remove %s: %m", vm->dir);
                vm_op_step_done(vm, vm->op_seq);
                return;
        }
        if (!m || worker_submit(m->workers, remove_work, remove_done, j) < 0)
                remove_done(remove_work(j), j);
}

/* ---- libvirt steps (pool thread) ---------------------------------------- */

typedef struct VirtJob {
        VM *vm;                 /* a reference: the op may finish before the call */
        uint64_t seq;           /* the op that made the call */
        VirtAction action;
        char *domain;
        char *xml;
        char error[512];
} VirtJob;

/* Look the domain up; a missing domain is -ENOENT without an error message. */
static int lookup(virConnectPtr conn, VirtJob *j, virDomainPtr *ret) {
        virDomainPtr dom = virDomainLookupByName(conn, j->domain);

        if (!dom) {
                virErrorPtr e = virGetLastError();
                if (e && e->code == VIR_ERR_NO_DOMAIN)
                        return -ENOENT;
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                return -EIO;
        }
        *ret = dom;
        return 0;
}

static void virt_job_free(VirtJob *j) {
        vm_unref(j->vm);
        free(j->domain);
        free(j->xml);
        free(j);
}

static int virt_job_work(virConnectPtr conn, void *userdata) {
        VirtJob *j = userdata;
        virDomainPtr dom = NULL;
        int r = 0;

        switch (j->action) {
        case VIRT_CREATE:
                dom = virDomainCreateXML(conn, j->xml, 0);
                if (!dom) {
                        snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                        return -EIO;
                }
                break;
        case VIRT_DESTROY:
                r = lookup(conn, j, &dom);
                if (r == -ENOENT)
                        return 0; /* not running: nothing to destroy */
                if (r < 0)
                        return r;
                if (virDomainDestroy(dom) < 0) {
                        virErrorPtr e = virGetLastError();
                        /* "Not running" and "no such domain" (it went away
                         * since the lookup: a QEMU libvirtd could not take
                         * up again after a restart) are what we want. */
                        if (!e || (e->code != VIR_ERR_OPERATION_INVALID && e->code != VIR_ERR_NO_DOMAIN)) {
                                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                                r = -EIO;
                        }
                }
                break;
        case VIRT_SHUTDOWN:
        case VIRT_REBOOT:
                r = lookup(conn, j, &dom);
                if (r == -ENOENT) {
                        snprintf(j->error, sizeof(j->error), "the VM is not running");
                        return -ENOENT;
                }
                if (r < 0)
                        return r;
                if ((j->action == VIRT_SHUTDOWN ? virDomainShutdown(dom) : virDomainReboot(dom, 0)) < 0) {
                        snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                        r = -EIO;
                }
                break;
        }
        if (dom)
                virDomainFree(dom);
        return r;
}

static void virt_job_done(int result, void *userdata) {
        VirtJob *j = userdata;
        VM *vm = j->vm;

        if (result < 0)
                /* ENOENT: no such domain, the VM is not running: a matter of state, not of the
                 * call's arguments (EINVAL would be InvalidArgs). */
                vm_op_fail(vm, j->seq, result == -ENOENT ? -ESRCH : -EIO, "%s", j->error);
        else
                vm_op_step_done(vm, j->seq);
        virt_job_free(j);
}

static void virt_step(VM *vm, VirtAction action) {
        Manager *m = vm_manager(vm);
        VirtJob *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j) {
                vm_op_fail(vm, vm->op_seq, -ENOMEM, "out of memory");
                return;
        }
        j->vm = vm_ref(vm);
        j->seq = vm->op_seq;
        j->action = action;
        j->domain = strdup(vm->domain_name);
        j->xml = action == VIRT_CREATE ? strdup(vm->xml) : NULL;
        if (!j->domain || (action == VIRT_CREATE && !j->xml)) {
                virt_job_free(j);
                vm_op_fail(vm, vm->op_seq, -ENOMEM, "out of memory");
                return;
        }
        r = virt_call(m->virt, virt_job_work, virt_job_done, j);
        if (r < 0) {
                virt_job_free(j);
                vm_op_fail(vm, vm->op_seq, r, "cannot reach libvirtd: %m");
        }
}

/* ---- carrying out the machine's actions ---------------------------------- */

static int on_shutdown_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        VM *vm = userdata;

        vm->op_timer = sd_event_source_disable_unref(vm->op_timer);
        log_internal(LOG_WARNING, 0, vm->group ? vm->group->name : NULL, vm->name,
                     "Clean shutdown did not finish in time; stopping the VM hard");
        (void) vm_machine_run(vm, VM_INPUT_DEADLINE, VM_OP_NONE, NULL);
        return 0;
}

static void on_agent_shutdown_done(AgentJob *j, void *userdata) {
        VM *vm = userdata;
        int error = agent_job_result(j)->error;

        vm->shutdown_job = agent_job_free(vm->shutdown_job);
        (void) vm_machine_run(vm, error < 0 ? VM_INPUT_AGENT_SHUTDOWN_FAILED : VM_INPUT_AGENT_SHUTDOWN_OK,
                              VM_OP_NONE, NULL);
}

/* Ask the guest agent to power off; without a connected agent, or if it
 * cannot be asked, the machine falls back to ACPI. */
static void shutdown_request(VM *vm) {
        if (agent_session_is_connected(vm->agent) &&
            agent_job_new(vm->agent, AGENT_JOB_SHUTDOWN, on_agent_shutdown_done, vm, &vm->shutdown_job) >= 0) {
                if (agent_job_start_shutdown(vm->shutdown_job) >= 0)
                        return;
                vm->shutdown_job = agent_job_free(vm->shutdown_job);
        }
        (void) vm_machine_run(vm, VM_INPUT_AGENT_SHUTDOWN_FAILED, VM_OP_NONE, NULL);
}

/* Take the actions of one machine step, in order. Actions that hand work
 * off come last in a list, and their completions come back through
 * vm_machine_run(). */
static void vm_actions_run(VM *vm, const VMMachineResult *res, VMActionContext *ctx) {
        _cleanup_(vm_unrefp) VM *hold = vm_ref(vm); /* FINISH drops the operation's reference */
        const char *why = ctx && ctx->why ? ctx->why : "";
        bool finished = false;

        for (unsigned i = 0; i < res->n_actions; i++) {
                const VMAction *a = &res->actions[i];

                /* What follows a FINISH applies only while no other operation began. */
                if (finished && vm->op != VM_OP_NONE)
                        break;
                switch (a->kind) {
                case VM_ACTION_SET_STATE:
                        vm_set_state(vm, a->state);
                        break;
                case VM_ACTION_MARK_STARTED:
                        vm->ever_started = true;
                        break;
                case VM_ACTION_TAP_CREATE:
                        helper_tap(vm, VMGR_NETADM_TAP_CREATE, a->nic);
                        break;
                case VM_ACTION_TAP_DELETE:
                        helper_tap(vm, VMGR_NETADM_TAP_DELETE, a->nic);
                        break;
                case VM_ACTION_PREPARE:
                        prepare(vm);
                        break;
                case VM_ACTION_VIRT:
                        virt_step(vm, a->virt);
                        break;
                case VM_ACTION_FIND_SNAPSHOT:
                        vm_snapshot_find(vm);
                        break;
                case VM_ACTION_RESTORE:
                        vm_snapshot_restore(vm);
                        break;
                case VM_ACTION_SAVE:
                        vm_snapshot_save(vm);
                        break;
                case VM_ACTION_AGENT_SHUTDOWN:
                        shutdown_request(vm);
                        break;
                case VM_ACTION_DROP_AGENT_SHUTDOWN:
                        vm->shutdown_job = agent_job_free(vm->shutdown_job);
                        break;
                case VM_ACTION_ARM_DEADLINE:
                        (void) sd_event_add_time_relative(vm_manager(vm)->event, &vm->op_timer, CLOCK_MONOTONIC,
                                                          vm->op_timeout_usec, 0, on_shutdown_deadline, vm);
                        break;
                case VM_ACTION_REBOOT_REQUESTED:
                        vm_ready_reboot_requested(vm);
                        break;
                case VM_ACTION_NOTE_STOPPED:
                        log_internal(LOG_INFO, 0, vm->group ? vm->group->name : NULL, vm->name, "VM %s", why);
                        break;
                case VM_ACTION_NOTE_CRASHED:
                        log_internal(LOG_ERR, 0, vm->group ? vm->group->name : NULL, vm->name, "VM crashed: %s",
                                     why);
                        vm_set_error(vm, why);
                        break;
                case VM_ACTION_NOTE_PANICKED:
                        vm_panic_note(vm);
                        break;
                case VM_ACTION_REMOVE_FILES:
                        remove_files(vm);
                        break;
                case VM_ACTION_QUEUE_REMOVE:
                        vm->remove_requested = true;
                        vm->remove_done = ctx->done;
                        vm->remove_userdata = ctx->userdata;
                        ctx->r = 0;
                        break;
                case VM_ACTION_BEGIN_REMOVE:
                        ctx->r = vm_operation(vm, VM_OP_REMOVE, 0, NULL, ctx->done, ctx->userdata);
                        break;
                case VM_ACTION_FINISH:
                        vm_op_finish(vm, a);
                        finished = true;
                        break;
                case _VM_ACTION_KIND_MAX:
                        break;
                }
        }
}

/* Feed input (arg: the op of a PREEMPT) to the machine and take its actions.
 * Returns 0, -VMGR_ERR_BUSY when the machine refused the input, or -ESTALE
 * when it dropped the completion of an operation that is over. */
static int vm_machine_run(VM *vm, VMInput input, VMOp arg, VMActionContext *ctx) {
        VMFacts facts = vm_facts(vm);
        VMMachineResult res;
        int r;

        if (ctx && ctx->seq > 0)
                facts.input_seq = ctx->seq;
        r = vm_machine_feed(vm->op, vm->op_step, &facts, input, arg, &res);
        if (r == -ESTALE)
                log_internal(LOG_DEBUG, 0, vm->group ? vm->group->name : NULL, vm->name,
                             "Dropped the late %s of an operation that is over (%s is in flight)",
                             vm_input_to_string(input), vm_op_to_string(vm->op));
        if (r < 0)
                return r;
        if (input == VM_INPUT_FAILED && ctx && ctx->message) {
                vm->op_error = ctx->error;
                snprintf(vm->op_message, sizeof(vm->op_message), "%s", ctx->message);
        }
        vm->op_step = res.step;
        vm_actions_run(vm, &res, ctx);
        return 0;
}

void vm_domain_event(VM *vm, VirtDomainEvent event, const char *why) {
        _cleanup_(vm_unrefp) VM *hold = vm_ref(vm);
        VMActionContext ctx = { .why = why };

        switch (event) {
        case VIRT_DOMAIN_STARTED:
                (void) vm_machine_run(vm, VM_INPUT_DOMAIN_STARTED, VM_OP_NONE, &ctx);
                break;
        case VIRT_DOMAIN_STOPPED:
                (void) vm_machine_run(vm, VM_INPUT_DOMAIN_STOPPED, VM_OP_NONE, &ctx);
                break;
        case VIRT_DOMAIN_CRASHED:
                (void) vm_machine_run(vm, VM_INPUT_DOMAIN_CRASHED, VM_OP_NONE, &ctx);
                break;
        case VIRT_DOMAIN_PANICKED:
                vm_panic_pvpanic(vm);
                break;
        case VIRT_DOMAIN_REBOOTED:
                /* libvirt reports one reboot more than once; it is news, not a state. */
                log_internal(LOG_DEBUG, 0, vm->group ? vm->group->name : NULL, vm->name, "VM rebooted");
                vm_ready_guest_reset(vm);
                break;
        }
}

/* The lease of our IPv4 MAC, as dnsmasq's leases file has it. */
void vm_update_ipv4(VM *vm) {
        char found[INET_ADDRSTRLEN];

        if (!vm->group || !vm->spec.ipv4)
                return;
        (void) dnsmasq_lease_ipv4(vm->group->runtime_dir, vm->addrs.mac4, found);
        if (streq(found, vm->ipv4))
                return;
        char *copy = strdup(found);
        if (!copy)
                return;
        free(vm->ipv4);
        vm->ipv4 = copy;
        (void) vm_emit_changed(vm, "IPv4", NULL);
        vm_ready_evaluate(vm);
}
