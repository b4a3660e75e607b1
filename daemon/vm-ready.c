/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * When is a VM "ready"? Once QEMU runs, the guest agent answered, the VM's
 * derived IPv6 address is configured in the guest (not tentative), its IPv4
 * lease is held (with an IPv4 NIC) and the spec's ready_probe, run through
 * the agent, exited 0. Each stage's time is kept for the Timings property.
 *
 * WaitReady callers are a list of pending messages with one timer each:
 * nothing runs for them until a VM's readiness changes or a timer fires.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent-session.h"
#include "bus-error.h"
#include "group.h"
#include "grouplog.h"
#include "journal-follow.h"
#include "guest-exec.h"
#include "logline.h"
#include "log.h"
#include "time-util.h"
#include "vm.h"

/* A probe that did not pass runs again after this long. */
#define PROBE_RETRY_USEC (500ULL * 1000ULL)

struct ReadyWaiter {
        ReadyWaiter *next, *prev;
        ReadyWaiter **list;             /* the VM's or the group's list */
        VM *vm;                         /* reference; NULL for a group waiter */
        Group *group;                   /* reference; NULL for a VM waiter */
        sd_bus_message *call;
        sd_event_source *timer;
        uint64_t timeout_usec;
};

static const char *const stage_names[_VM_STAGE_MAX] = {
        [VM_STAGE_QEMU_STARTED] = "qemu_started",
        [VM_STAGE_AGENT_CONNECTED] = "agent_connected",
        [VM_STAGE_IPV6_CONFIGURED] = "ipv6_configured",
        [VM_STAGE_IPV4_LEASED] = "ipv4_leased",
        [VM_STAGE_PROBE_PASSED] = "probe_passed",
        [VM_STAGE_READY] = "ready",
};

const char *vm_stage_to_string(VMStage stage) {
        return (unsigned) stage < _VM_STAGE_MAX ? stage_names[stage] : NULL;
}


static sd_event *vm_event(VM *vm) {
        return vm->group && vm->group->manager ? vm->group->manager->event : NULL;
}

/* ---- waiters ------------------------------------------------------------ */

static void waiter_free(ReadyWaiter *w) {
        LIST_REMOVE(*w->list, w);
        sd_event_source_disable_unref(w->timer);
        sd_bus_message_unref(w->call);
        vm_unref(w->vm);
        group_unref(w->group);
        free(w);
}

/* Reply (error 0: success) and free the waiter. */
_printf_(3, 4) static void waiter_reply(ReadyWaiter *w, int error, const char *fmt, ...) {
        char message[1024] = "";
        va_list ap;

        if (error < 0) {
                va_start(ap, fmt);
                vsnprintf(message, sizeof(message), fmt, ap);
                va_end(ap);
                (void) vmgr_bus_reply_error(w->call, error, "%s", message);
        } else
                (void) sd_bus_reply_method_return(w->call, NULL);
        waiter_free(w);
}

/* The first stage a VM has not completed, as a phrase for an error message. */
static const char *vm_missing_stage(VM *vm) {
        for (VMStage s = 0; s < VM_STAGE_READY; s++)
                if (vm->timings[s] == VM_STAGE_NOT_YET) {
                        if (s == VM_STAGE_IPV4_LEASED && !vm->spec.ipv4)
                                continue;
                        if (s == VM_STAGE_PROBE_PASSED && !vm->spec.ready_probe)
                                continue;
                        return stage_names[s];
                }
        return stage_names[VM_STAGE_READY];
}

static int on_waiter_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        ReadyWaiter *w = userdata;
        char stages[768] = "";
        size_t off = 0;

        if (w->vm) {
                waiter_reply(w, -VMGR_ERR_TIMEOUT, "VM '%s' was not ready within %.1f s: stage %s did not complete",
                             w->vm->name, (double) w->timeout_usec / 1e6, vm_missing_stage(w->vm));
                return 0;
        }
        for (VM *vm = w->group->vms; vm && off < sizeof(stages) - 80; vm = vm->next)
                if (vm->state != VM_READY)
                        off += (size_t) snprintf(stages + off, sizeof(stages) - off, "%s%s (%s)", off ? ", " : "",
                                                 vm->name, vm_missing_stage(vm));
        waiter_reply(w, -VMGR_ERR_TIMEOUT, "group '%s' was not ready within %.1f s: not ready: %s", w->group->name,
                     (double) w->timeout_usec / 1e6, stages);
        return 0;
}

static int waiter_new(sd_event *event, ReadyWaiter **list, sd_bus_message *call, uint64_t timeout_usec,
                      ReadyWaiter **ret) {
        ReadyWaiter *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        timeout_usec = timeout_usec_or_unlimited(timeout_usec);
        if (timeout_usec > 0) {
                r = sd_event_add_time_relative(event, &w->timer, CLOCK_MONOTONIC, timeout_usec, 0, on_waiter_timeout,
                                               w);
                if (r < 0) {
                        free(w);
                        return r;
                }
        }
        w->timeout_usec = timeout_usec;
        w->call = sd_bus_message_ref(call);
        w->list = list;
        w->next = *list;
        if (*list)
                (*list)->prev = w;
        *list = w;
        *ret = w;
        return 0;
}

/* Whether the VM crashed, or its guest panicked and its domain is being
 * destroyed: it does not come back by itself. */
static bool vm_has_crashed(VM *vm) {
        return vm->state == VM_CRASHED || vm->op == VM_OP_PANIC;
}

/* Its waiters fail at once, with LastError (a guest kernel panic says its
 * message). */
static void waiter_reply_crashed(ReadyWaiter *w, VM *vm) {
        waiter_reply(w, -ESRCH, "VM '%s' crashed%s%s", vm->name, vm->last_error && *vm->last_error ? ": " : "",
                     vm->last_error ?: "");
}

static VM *group_crashed_vm(Group *g) {
        for (VM *vm = g->vms; vm; vm = vm->next)
                if (vm_has_crashed(vm))
                        return vm;
        return NULL;
}

static bool group_is_ready(Group *g) {
        for (VM *vm = g->vms; vm; vm = vm->next)
                if (vm->state != VM_READY)
                        return false;
        return true;
}

/* Answer a group's waiters if its VMs are all ready, or fail them if it goes away. */
static void group_ready_check(Group *g) {
        if (!g->ready_waiters)
                return;
        if (!g->manager || g->state == GROUP_DELETING || g->state == GROUP_FAILED) {
                group_ready_cancel(g);
                return;
        }
        if (group_crashed_vm(g)) {
                while (g->ready_waiters)
                        waiter_reply_crashed(g->ready_waiters, group_crashed_vm(g));
                return;
        }
        if (!group_is_ready(g))
                return;
        while (g->ready_waiters)
                waiter_reply(g->ready_waiters, 0, NULL);
}

void group_ready_cancel(Group *g) {
        while (g->ready_waiters)
                waiter_reply(g->ready_waiters, g->state == GROUP_FAILED ? -EIO : -VMGR_ERR_NO_SUCH_GROUP,
                             "group '%s' is %s", g->name, g->state == GROUP_FAILED ? "failed" : "being deleted");
}

/* Answer a VM's waiters once it is ready, or fail them once it goes away. */
static void vm_ready_notify(VM *vm) {
        _cleanup_(vm_unrefp) VM *hold = vm_ref(vm);

        if (!vm->group || vm->op == VM_OP_REMOVE || vm->remove_requested) {
                guest_exec_remove_vm(vm);
                while (vm->ready_waiters)
                        waiter_reply(vm->ready_waiters, -VMGR_ERR_NO_SUCH_VM, "VM '%s' is being removed", vm->name);
        } else if (vm->state == VM_READY)
                while (vm->ready_waiters)
                        waiter_reply(vm->ready_waiters, 0, NULL);
        else if (vm_has_crashed(vm))
                while (vm->ready_waiters)
                        waiter_reply_crashed(vm->ready_waiters, vm);
        if (vm->group)
                group_ready_check(vm->group);
}

void vm_ready_unlinked(VM *vm, Group *g) {
        /* A removed VM's state need not change (one never started stays
         * "defined"), so no state change would tell its waiters or its
         * group's: they would wait for their own timeouts, or forever. */
        vm_ready_notify(vm);
        group_ready_check(g);
}

int vm_wait_ready(VM *vm, sd_bus_message *call, uint64_t timeout_usec) {
        ReadyWaiter *w;
        int r;

        if (vm->state == VM_READY)
                return sd_bus_reply_method_return(call, NULL);
        r = waiter_new(vm_event(vm), &vm->ready_waiters, call, timeout_usec, &w);
        if (r < 0)
                return r;
        w->vm = vm_ref(vm);
        if (vm_has_crashed(vm))
                waiter_reply_crashed(w, vm);
        return 0;
}

int group_wait_ready(Group *g, sd_bus_message *call, uint64_t timeout_usec) {
        ReadyWaiter *w;
        int r;

        if (group_is_ready(g))
                return sd_bus_reply_method_return(call, NULL);
        r = waiter_new(g->manager->event, &g->ready_waiters, call, timeout_usec, &w);
        if (r < 0)
                return r;
        w->group = group_ref(g);
        if (group_crashed_vm(g))
                waiter_reply_crashed(w, group_crashed_vm(g));
        return 0;
}

/* ---- stages -------------------------------------------------------------- */

static void stage_mark(VM *vm, VMStage stage) {
        if (vm->timings[stage] != VM_STAGE_NOT_YET)
                return;
        vm->timings[stage] = now_monotonic_usec() - vm->start_usec;
        log_internal(LOG_INFO, 0, vm->group ? vm->group->name : NULL, vm->name, "%s after %.3f s",
                     stage_names[stage], (double) vm->timings[stage] / 1e6);
        (void) vm_emit_changed(vm, "Timings", NULL);
}

/* Forget the stages from first on (a new guest session, or a new start). */
static void stages_clear(VM *vm, VMStage first) {
        bool changed = false;

        for (VMStage s = first; s < _VM_STAGE_MAX; s++)
                if (vm->timings[s] != VM_STAGE_NOT_YET) {
                        vm->timings[s] = VM_STAGE_NOT_YET;
                        changed = true;
                }
        if (changed)
                (void) vm_emit_changed(vm, "Timings", NULL);
}

static void probe_cancel(VM *vm) {
        vm->probe_job = agent_job_free(vm->probe_job);
        vm->probe_timer = sd_event_source_disable_unref(vm->probe_timer);
}

/* Does the guest have the VM's derived IPv6 address, done with DAD? */
static bool guest_has_ipv6(VM *vm, const struct vmgr_agent_info *info) {
        if (!info)
                return false;
        for (size_t i = 0; i < info->n_addrs; i++) {
                const struct vmgr_agent_addr *a = &info->addrs[i];
                if (a->family == VMGR_AGENT_FAMILY_IPV6 && memcmp(a->address, &vm->addrs.ipv6, 16) == 0 &&
                    !(a->flags & (0x40 /* tentative */ | 0x08 /* DAD failed */)))
                        return true;
        }
        return false;
}

static void probe_start(VM *vm);

static int on_probe_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        VM *vm = userdata;

        vm->probe_timer = sd_event_source_disable_unref(vm->probe_timer);
        vm_ready_evaluate(vm);
        return 0;
}

static void on_probe_done(AgentJob *j, void *userdata) {
        VM *vm = userdata;
        int error = agent_job_result(j)->error;
        bool passed = error == 0 && agent_job_result(j)->status == 0;

        vm->probe_job = agent_job_free(vm->probe_job);
        if (passed) {
                stage_mark(vm, VM_STAGE_PROBE_PASSED);
                vm_ready_evaluate(vm);
                return;
        }
        if (error == -ECONNRESET || error == -ENOTCONN)
                return; /* the session went; it is evaluated again when it is back */
        if (vm_event(vm))
                (void) sd_event_add_time_relative(vm_event(vm), &vm->probe_timer, CLOCK_MONOTONIC, PROBE_RETRY_USEC,
                                                  0, on_probe_retry, vm);
}

static void probe_start(VM *vm) {
        int r;

        if (vm->probe_job || vm->probe_timer)
                return;
        r = agent_job_new(vm->agent, AGENT_JOB_EXEC, on_probe_done, vm, &vm->probe_job);
        if (r < 0)
                return;
        r = agent_job_start_exec(vm->probe_job, vm->spec.ready_probe, NULL, NULL);
        if (r < 0) {
                log_internal(LOG_WARNING, r, vm->group ? vm->group->name : NULL, vm->name,
                             "Cannot run the ready probe: %m");
                vm->probe_job = agent_job_free(vm->probe_job);
        }
}

void vm_ready_evaluate(VM *vm) {
        const struct vmgr_agent_info *info = agent_session_info(vm->agent);
        bool up = vm->state == VM_RUNNING || vm->state == VM_READY;
        /* After a Reboot the old guest's agent may still answer for a while. */
        bool agent = up && agent_session_is_connected(vm->agent) &&
                     !(*vm->stale_boot_id && (!info || streq(info->boot_id, vm->stale_boot_id)));
        bool ipv6 = agent && guest_has_ipv6(vm, info);
        bool ipv4 = !vm->spec.ipv4 || (up && vm->ipv4 && *vm->ipv4) ||
                    vm->timings[VM_STAGE_IPV4_LEASED] != VM_STAGE_NOT_YET;
        bool ready;

        if (agent)
                stage_mark(vm, VM_STAGE_AGENT_CONNECTED);
        if (ipv6)
                stage_mark(vm, VM_STAGE_IPV6_CONFIGURED);
        if (vm->spec.ipv4 && up && ipv4)
                stage_mark(vm, VM_STAGE_IPV4_LEASED);
        ipv6 = vm->timings[VM_STAGE_IPV6_CONFIGURED] != VM_STAGE_NOT_YET;
        if (agent && ipv6 && ipv4 && vm->spec.ready_probe && vm->timings[VM_STAGE_PROBE_PASSED] == VM_STAGE_NOT_YET)
                probe_start(vm);

        /* Stages are milestones: a guest that was ready stays so until its
         * agent session ends (reboot) or QEMU stops, even if INFO briefly
         * shows its address tentative again. */
        ready = vm->timings[VM_STAGE_AGENT_CONNECTED] != VM_STAGE_NOT_YET &&
                vm->timings[VM_STAGE_IPV6_CONFIGURED] != VM_STAGE_NOT_YET && ipv4 &&
                (!vm->spec.ready_probe || vm->timings[VM_STAGE_PROBE_PASSED] != VM_STAGE_NOT_YET);
        if (ready && vm->state == VM_RUNNING) {
                stage_mark(vm, VM_STAGE_READY);
                vm_set_state(vm, VM_READY);
        } else if (!(ready && agent) && vm->state == VM_READY)
                vm_set_state(vm, VM_RUNNING);
}

/* A guest log line: into the group's log as "[vm=NAME guest] SOURCE: text". */
static void on_agent_log(AgentSession *s, const struct vmgr_agent_log *log, void *userdata) {
        static const char *const sources[] = {
                [VMGR_AGENT_LOG_KERNEL] = "kernel",
                [VMGR_AGENT_LOG_JOURNAL] = "journal",
                [VMGR_AGENT_LOG_AGENT] = "agent",
        };
        VM *vm = userdata;
        char line[VMGR_LINE_MAX];
        int n;

        if (!vm->group || !vm->console || log->source >= ELEMENTSOF(sources) || !sources[log->source])
                return;
        n = snprintf(line, sizeof(line), "%s: %s", sources[log->source], log->text);
        /* Stripped and rate-limited with the VM's other guest lines. */
        if (n > 0)
                console_follower_guest_line(vm->console, line, MIN((size_t) n, sizeof(line) - 1));
}

/* The guest lost its agent session for breaking a rule: say why where the user looks. */
static void on_agent_violation(AgentSession *s, const char *why, void *userdata) {
        VM *vm = userdata;

        log_internal(LOG_WARNING, 0, vm->group ? vm->group->name : NULL, vm->name,
                     "Dropped the guest agent's session: %s", why);
        vm_set_error(vm, why);
}

static void on_agent_changed(AgentSession *s, void *userdata) {
        VM *vm = userdata;

        if (!agent_session_is_connected(s)) {
                /* A new guest session (a reboot) goes through the stages
                 * again; not the first one after a restart of vmgrd, which
                 * finds the same boot (its timings stay). */
                probe_cancel(vm);
                if (!vm->adopting)
                        stages_clear(vm, VM_STAGE_AGENT_CONNECTED);
        } else
                vm->adopting = false;
        vm_ready_evaluate(vm);
}

/* Every console line of the VM, as it is read. */
static void on_console_line(const char *line, size_t len, void *userdata) {
        VM *vm = userdata;

        vm_panic_console_line(vm, line, len);
}

void vm_ready_state_changed(VM *vm, VMState old) {
        switch (vm->state) {
        case VM_STARTING:
                *vm->stale_boot_id = 0;
                if (vm->agent)
                        agent_session_stop(vm->agent);
                probe_cancel(vm);
                vm->start_usec = now_monotonic_usec();
                stages_clear(vm, VM_STAGE_QEMU_STARTED);
                break;
        case VM_RUNNING:
                if (old == VM_READY)
                        break;
                if (vm->start_usec == 0)
                        vm->start_usec = now_monotonic_usec(); /* started by itself (after a crash, or by libvirt) */
                stage_mark(vm, VM_STAGE_QEMU_STARTED);
                if (!vm->agent && vm_event(vm) &&
                    agent_session_new(vm_event(vm), vm->agent_socket, on_agent_changed, vm, &vm->agent) < 0)
                        log_internal(LOG_WARNING, ENOMEM, vm->group ? vm->group->name : NULL, vm->name,
                                     "Cannot watch the guest agent: out of memory");
                if (!vm->console && vm->group && vm->group->log &&
                    console_follower_new(vm_event(vm), vm->group->log, vm->name, vm->console_log,
                                         &(GroupLogLimits) {
                                                 .rate = (uint64_t) vm->spec.log_rate_kib * 1024U,
                                                 .burst = (uint64_t) vm->spec.log_burst_kib * 1024U,
                                                 .console_max = (uint64_t) vm->spec.console_log_max_kib * 1024U,
                                         },
                                         &vm->console) < 0)
                        log_internal(LOG_WARNING, errno, vm->group->name, vm->name,
                                     "Cannot follow the console log %s", vm->console_log);
                console_follower_set_line_handler(vm->console, on_console_line, vm);
                vm_journal_start(vm);
                if (vm->agent) {
                        agent_session_set_log_handler(vm->agent, on_agent_log);
                        agent_session_set_violation_handler(vm->agent, on_agent_violation);
                        agent_session_set_keepalive(vm->agent,
                                                    (uint64_t) vm->group->manager->config.agent_keepalive_sec *
                                                            1000000ULL);
                        agent_session_start(vm->agent);
                }
                vm_ready_evaluate(vm);
                break;
        case VM_READY:
        case VM_STOPPING:
                break;
        default:
                /* QEMU is gone. */
                vm_journal_stop(vm);
                probe_cancel(vm);
                if (vm->agent)
                        agent_session_stop(vm->agent);
                stages_clear(vm, VM_STAGE_AGENT_CONNECTED);
                break;
        }
        vm_ready_notify(vm);
}

void vm_ready_reboot_requested(VM *vm) {
        const struct vmgr_agent_info *info = agent_session_info(vm->agent);

        snprintf(vm->stale_boot_id, sizeof(vm->stale_boot_id), "%s", info && *info->boot_id ? info->boot_id : "");
        probe_cancel(vm);
        stages_clear(vm, VM_STAGE_AGENT_CONNECTED);
        vm_ready_evaluate(vm);
}

void vm_ready_done(VM *vm) {
        vm_journal_done(vm);
        probe_cancel(vm);
        vm->shutdown_job = agent_job_free(vm->shutdown_job);
        vm->agent = agent_session_free(vm->agent);
        /* Waiters hold references, so there are none left here. */
}
