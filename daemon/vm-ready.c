/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * When is a VM "ready"? Once QEMU runs, the guest agent answered (if the VM
 * has one), the VM's derived IPv6 address is configured in the guest (the
 * agent says it is not tentative; without the agent, the address answers a
 * TCP connect from the host), its IPv4 lease is held (with an IPv4 NIC:
 * dnsmasq's lease), the spec's ready_probe, run through the agent, exited 0,
 * its ready_probe_host, run by vmgrd, passed, and a console line matched its
 * ready_console. Each stage's time is kept for the Timings property.
 *
 * WaitReady callers are a list of pending messages with one timer each:
 * nothing runs for them until a VM's readiness changes or a timer fires.
 */

#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent-session.h"
#include "bus-error.h"
#include "group.h"
#include "grouplog.h"
#include "journal-follow.h"
#include "guest-exec.h"
#include "host-probe.h"
#include "logline.h"
#include "log.h"
#include "time-util.h"
#include "vm-snapshot.h"
#include "vm.h"

/* A probe that did not pass runs again after this long. */
#define PROBE_RETRY_USEC (500ULL * 1000ULL)
/* Without the agent, ipv6_configured is a TCP connect to this port of the
 * derived address answered at all (the discard port: a refusal will do). */
#define ADDRESS_PROBE_PORT 9

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
        [VM_STAGE_RESTORED] = "restored",
        [VM_STAGE_AGENT_CONNECTED] = "agent_connected",
        [VM_STAGE_IDENTITY_APPLIED] = "identity_applied",
        [VM_STAGE_IPV6_CONFIGURED] = "ipv6_configured",
        [VM_STAGE_IPV4_LEASED] = "ipv4_leased",
        [VM_STAGE_PROBE_PASSED] = "probe_passed",
        [VM_STAGE_HOST_PROBE_PASSED] = "host_probe_passed",
        [VM_STAGE_CONSOLE_MATCHED] = "console_matched",
        [VM_STAGE_READY] = "ready",
};

const char *vm_stage_to_string(VMStage stage) {
        return (unsigned) stage < _VM_STAGE_MAX ? stage_names[stage] : NULL;
}

bool vm_stage_applies(const VmgrVMSpec *spec, VMStage stage) {
        switch (stage) {
        case VM_STAGE_RESTORED:
        case VM_STAGE_IDENTITY_APPLIED:
                /* Only a start that restores a snapshot has them: readiness
                 * asks for them through the VM (vm_ready_evaluate()). */
                return false;
        case VM_STAGE_AGENT_CONNECTED:
                return vmgr_vm_spec_has_agent(spec);
        case VM_STAGE_IPV4_LEASED:
                return spec->ipv4;
        case VM_STAGE_PROBE_PASSED:
                return spec->ready_probe;
        case VM_STAGE_HOST_PROBE_PASSED:
                return spec->host_probe.type != VMGR_HOST_PROBE_NONE;
        case VM_STAGE_CONSOLE_MATCHED:
                return spec->ready_console;
        default:
                return (unsigned) stage < _VM_STAGE_MAX;
        }
}

VMStage vm_stage_missing(const VmgrVMSpec *spec, const uint64_t timings[]) {
        for (VMStage s = 0; s < VM_STAGE_READY; s++)
                if (timings[s] == VM_STAGE_NOT_YET && vm_stage_applies(spec, s))
                        return s;
        return VM_STAGE_READY;
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

/* What the probe behind a missing stage last said, or NULL. */
static const char *vm_stage_detail(VM *vm, VMStage stage) {
        HostProbe *p = stage == VM_STAGE_HOST_PROBE_PASSED ? vm->host_probe
                       : stage == VM_STAGE_IPV6_CONFIGURED ? vm->address_probe
                                                            : NULL;

        return p && *host_probe_last_error(p) ? host_probe_last_error(p) : NULL;
}

/* The first stage a VM has not completed, as a phrase for an error
 * message: its name, and in *detail what its probe last said ("" if nothing). */
static const char *vm_missing_stage(VM *vm, const char **detail) {
        VMStage stage = vm_stage_missing(&vm->spec, vm->timings);

        *detail = vm_stage_detail(vm, stage) ?: "";
        return stage_names[stage];
}

static int on_waiter_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        ReadyWaiter *w = userdata;
        char stages[768] = "";
        const char *stage, *detail;
        size_t off = 0;

        if (w->vm) {
                stage = vm_missing_stage(w->vm, &detail);
                waiter_reply(w, -VMGR_ERR_TIMEOUT, "VM '%s' was not ready within %.1f s: stage %s did not complete%s%s%s",
                             w->vm->name, (double) w->timeout_usec / 1e6, stage, *detail ? " (" : "", detail,
                             *detail ? ")" : "");
                return 0;
        }
        for (VM *vm = w->group->vms; vm && off < sizeof(stages) - 80; vm = vm->next)
                if (vm->state != VM_READY) {
                        stage = vm_missing_stage(vm, &detail);
                        int n = snprintf(stages + off, sizeof(stages) - off, "%s%s (%s%s%s)", off ? ", " : "",
                                         vm->name, stage, *detail ? ": " : "", detail);
                        off = n < 0 ? off : MIN(off + (size_t) n, sizeof(stages) - 1);
                }
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
static void stages_clear_but(VM *vm, VMStage first, VMStage keep) {
        bool changed = false;

        for (VMStage s = first; s < _VM_STAGE_MAX; s++)
                if (s != keep && vm->timings[s] != VM_STAGE_NOT_YET) {
                        vm->timings[s] = VM_STAGE_NOT_YET;
                        changed = true;
                }
        if (changed)
                (void) vm_emit_changed(vm, "Timings", NULL);
}

static void stages_clear(VM *vm, VMStage first) {
        stages_clear_but(vm, first, _VM_STAGE_MAX);
}

/* Stop every probe (they start again from the next evaluation that needs them). */
static void probe_cancel(VM *vm) {
        vm->probe_job = agent_job_free(vm->probe_job);
        vm->probe_timer = sd_event_source_disable_unref(vm->probe_timer);
        vm->address_probe = host_probe_free(vm->address_probe);
        vm->host_probe = host_probe_free(vm->host_probe);
}

static void on_address_probe_passed(HostProbe *p, void *userdata) {
        VM *vm = userdata;

        vm->address_probe = host_probe_free(vm->address_probe);
        stage_mark(vm, VM_STAGE_IPV6_CONFIGURED);
        vm_ready_evaluate(vm);
}

static void on_host_probe_passed(HostProbe *p, void *userdata) {
        VM *vm = userdata;

        vm->host_probe = host_probe_free(vm->host_probe);
        /* The derived address answered: it is configured, whatever the
         * check of port 9 says (a guest's firewall may drop that). */
        stage_mark(vm, VM_STAGE_IPV6_CONFIGURED);
        stage_mark(vm, VM_STAGE_HOST_PROBE_PASSED);
        vm_ready_evaluate(vm);
}

/* Start a host probe into *slot unless one runs. */
static void host_probe_start(VM *vm, HostProbe **slot, const HostProbeOptions *o, host_probe_passed_t passed) {
        int r;

        if (*slot || !vm->group || !vm->group->manager)
                return;
        r = host_probe_new(vm->group->manager, o, &vm->group->addrs.management6, &vm->addrs.ipv6, passed, vm, slot);
        if (r < 0)
                log_internal(LOG_WARNING, r, vm->group->name, vm->name, "Cannot run a probe from the host: %m");
}

/* A console line: does it match ready_console? Only lines of the boot that
 * runs now count: the follower has read the old boot's when the stages were
 * cleared (vm_ready_state_changed, vm_ready_reboot_requested). */
static void ready_console_line(VM *vm, const char *line, size_t len) {
        char text[VMGR_LINE_MAX + 1];

        if (!vm->console_regex || vm->timings[VM_STAGE_CONSOLE_MATCHED] != VM_STAGE_NOT_YET ||
            (vm->state != VM_RUNNING && vm->state != VM_READY) || vm->reset_pending)
                return;
        len = MIN(len, (size_t) VMGR_LINE_MAX);
        memcpy(text, line, len);
        text[len] = 0;
        if (regexec(vm->console_regex, text, 0, NULL, 0) != 0)
                return;
        stage_mark(vm, VM_STAGE_CONSOLE_MATCHED);
        vm_ready_evaluate(vm);
}

/* Compile ready_console once per VM. The spec parser compiled it already,
 * so a failure here is out of memory. */
static void console_regex_compile(VM *vm) {
        if (vm->console_regex || !vm->spec.ready_console)
                return;
        vm->console_regex = calloc(1, sizeof(regex_t));
        if (!vm->console_regex)
                return;
        if (regcomp(vm->console_regex, vm->spec.ready_console, REG_EXTENDED | REG_NOSUB) != 0) {
                free(vm->console_regex);
                vm->console_regex = NULL;
                log_internal(LOG_WARNING, ENOMEM, vm->group ? vm->group->name : NULL, vm->name,
                             "Cannot compile ready_console: %m");
        }
}

/* Does the guest have the VM's derived IPv6 address, done with DAD? */
static bool guest_has_ipv6(VM *vm, const struct vmgr_agent_info *info) {
        if (!info)
                return false;
        /* A clone counts only INFOs of its own identity: one from before
         * (the template's addresses, sent before the restore) never makes
         * it ready. */
        if (vm->restored && memcmp(info->generation, vm->generation, sizeof(vm->generation)) != 0)
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

/* An adopted clone whose identity was applied, whose agent now knows no
 * generation: its guest booted afresh since (a Restart that the vmgrd
 * killed in its middle never wrote down, or a reboot). It is a cold boot
 * from here, or no INFO would ever count for it. */
static void identity_verify(VM *vm, const struct vmgr_agent_info *info) {
        static const uint8_t zero[sizeof(vm->generation)] = {};

        if (!vm->identity_verify || !info)
                return;
        vm->identity_verify = false;
        if (vm->restored && memcmp(info->generation, zero, sizeof(zero)) == 0) {
                log_internal(LOG_INFO, 0, vm->group ? vm->group->name : NULL, vm->name,
                             "The clone's guest has booted afresh since it took its identity; a cold boot from here");
                vm_identity_forget(vm);
        }
}

void vm_ready_evaluate(VM *vm) {
        const struct vmgr_agent_info *info = agent_session_info(vm->agent);
        bool has_agent = vmgr_vm_spec_has_agent(&vm->spec);
        bool up = (vm->state == VM_RUNNING || vm->state == VM_READY) && !vm->reset_pending;
        /* After a Reboot the old guest's agent may still answer for a while.
         * Without an agent, there is none to wait for. */
        bool agent = up && (!has_agent || (agent_session_is_connected(vm->agent) &&
                                           !(*vm->stale_boot_id &&
                                             (!info || streq(info->boot_id, vm->stale_boot_id)))));
        bool ipv6;
        identity_verify(vm, agent ? info : NULL);
        ipv6 = has_agent && agent && guest_has_ipv6(vm, info);
        bool ipv4 = !vm->spec.ipv4 || (up && vm->ipv4 && *vm->ipv4) ||
                    vm->timings[VM_STAGE_IPV4_LEASED] != VM_STAGE_NOT_YET;
        bool ready;

        if (agent && has_agent)
                stage_mark(vm, VM_STAGE_AGENT_CONNECTED);
        if (ipv6)
                stage_mark(vm, VM_STAGE_IPV6_CONFIGURED);
        if (vm->spec.ipv4 && up && ipv4)
                stage_mark(vm, VM_STAGE_IPV4_LEASED);
        ipv6 = vm->timings[VM_STAGE_IPV6_CONFIGURED] != VM_STAGE_NOT_YET;
        /* The first VM of its shape is saved as its template once its guest
         * is up on the network: before the spec's probes (they are the
         * spec's, not the shape's, and run again in each clone; one that
         * never passes must not hold the build up) and before it is
         * declared ready, so that nobody's commands see it paused. */
        if (up && vm->state == VM_RUNNING && agent && has_agent && ipv6 && ipv4 &&
            (vm->template_saving || vm_template_save_begin(vm) > 0))
                return;
        /* Without the agent, the host asks the address itself. */
        if (up && !has_agent && !ipv6)
                host_probe_start(vm, &vm->address_probe,
                                 &(HostProbeOptions) { .kind = HOST_PROBE_ADDRESS, .port = ADDRESS_PROBE_PORT },
                                 on_address_probe_passed);
        if (agent && ipv6 && ipv4 && vm->spec.ready_probe && vm->timings[VM_STAGE_PROBE_PASSED] == VM_STAGE_NOT_YET)
                probe_start(vm);
        /* From the host, once the agent saw the address (before, every
         * attempt would only say "no route to host"); without the agent at
         * once, as its passing shows the address too. */
        if (up && (ipv6 || !has_agent) && vm_stage_applies(&vm->spec, VM_STAGE_HOST_PROBE_PASSED) &&
            vm->timings[VM_STAGE_HOST_PROBE_PASSED] == VM_STAGE_NOT_YET) {
                HostProbeOptions o;
                if (host_probe_options_from_spec(&vm->spec.host_probe, &o) >= 0)
                        host_probe_start(vm, &vm->host_probe, &o, on_host_probe_passed);
        }

        /* Stages are milestones: a guest that was ready stays so until its
         * agent session ends (reboot) or QEMU stops, even if INFO briefly
         * shows its address tentative again. */
        /* A clone: its own identity first (the agent is connected). */
        if (agent && vm->restored)
                vm_identity_send(vm);

        ready = up && vm_stage_missing(&vm->spec, vm->timings) == VM_STAGE_READY && ipv4 &&
                (!vm->restored || vm->timings[VM_STAGE_IDENTITY_APPLIED] != VM_STAGE_NOT_YET);
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
                uint64_t identity_applied = vm->timings[VM_STAGE_IDENTITY_APPLIED];

                probe_cancel(vm);
                /* Except a matched console line: a session can end without
                 * a reboot (a stuck agent), and the line would not come
                 * again; a reboot's reset clears it (vm_ready_guest_reset). */
                if (!vm->adopting)
                        stages_clear_but(vm, VM_STAGE_AGENT_CONNECTED, VM_STAGE_CONSOLE_MATCHED);
                /* The same for a clone's identity: the guest keeps it. One
                 * not applied yet is sent to the next session. */
                if (vm->restored && identity_applied != VM_STAGE_NOT_YET)
                        vm->timings[VM_STAGE_IDENTITY_APPLIED] = identity_applied;
                else if (vm->identity_job) {
                        vm->identity_job = agent_job_free(vm->identity_job);
                        vm->identity_sent = false;
                }
        } else
                vm->adopting = false;
        vm_ready_evaluate(vm);
}

/* Every console line of the VM, as it is read. */
static void on_console_line(const char *line, size_t len, void *userdata) {
        VM *vm = userdata;

        vm_panic_console_line(vm, line, len);
        ready_console_line(vm, line, len);
}

/* How long an agent gets to answer on a channel opened while its guest
 * was paused: long enough for a busy TCG guest, short beside WaitReady. */
#define AGENT_RECHECK_USEC (10ULL * 1000000ULL)

/* A guest adopted paused in a save and resumed (adopt.c): the previous
 * vmgrd's session ended and this one's began while the guest could not
 * see either, and once in a few such kills its agent never sees the new
 * one (the test kills within 100 ms of the pause showed it). If it has
 * not answered by now, the channel is closed and opened again, which the
 * guest sees as a new session. Once: an agent that does not answer then
 * is reported as any other. */
static int on_agent_recheck(sd_event_source *s, uint64_t usec, void *userdata) {
        VM *vm = userdata;

        vm->agent_recheck_timer = sd_event_source_disable_unref(vm->agent_recheck_timer);
        vm->resumed_at_adoption = false;
        if (!vm->agent || agent_session_is_connected(vm->agent) || vm->state != VM_RUNNING)
                return 0;
        log_internal(LOG_NOTICE, 0, vm->group ? vm->group->name : NULL, vm->name,
                     "The guest agent has not answered since its VM was resumed; opening its channel again");
        agent_session_stop(vm->agent);
        agent_session_start(vm->agent);
        return 0;
}

static void agent_recheck_arm(VM *vm) {
        if (vm->agent_recheck_timer || !vm_event(vm))
                return;
        if (sd_event_add_time_relative(vm_event(vm), &vm->agent_recheck_timer, CLOCK_MONOTONIC, AGENT_RECHECK_USEC,
                                       0, on_agent_recheck, vm) < 0)
                vm->agent_recheck_timer = NULL;
}

void vm_ready_state_changed(VM *vm, VMState old) {
        switch (vm->state) {
        case VM_STARTING:
                /* The last boot's console lines are read now: they must not count. */
                console_follower_sync(vm->console);
                *vm->stale_boot_id = 0;
                vm->reset_pending = false;
                if (vm->agent)
                        agent_session_stop(vm->agent);
                probe_cancel(vm);
                /* Whether this start restores a snapshot is found later (vm-snapshot.c). */
                vm_identity_forget(vm);
                vm->start_usec = now_monotonic_usec();
                stages_clear(vm, VM_STAGE_QEMU_STARTED);
                break;
        case VM_RUNNING:
                if (old == VM_READY)
                        break;
                if (vm->start_usec == 0)
                        vm->start_usec = now_monotonic_usec(); /* started by itself (after a crash, or by libvirt) */
                stage_mark(vm, VM_STAGE_QEMU_STARTED);
                console_regex_compile(vm);
                /* Without an agent vmgrd does not even connect to its channel:
                 * a guest could answer there only with what it chose to. */
                if (vmgr_vm_spec_has_agent(&vm->spec) && !vm->agent && vm_event(vm) &&
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
                        if (vm->resumed_at_adoption)
                                agent_recheck_arm(vm);
                }
                vm_ready_evaluate(vm);
                break;
        case VM_READY:
        case VM_STOPPING:
                break;
        default:
                /* QEMU is gone. */
                vm->reset_pending = false;
                vm_journal_stop(vm);
                probe_cancel(vm);
                if (vm->agent)
                        agent_session_stop(vm->agent);
                stages_clear(vm, VM_STAGE_AGENT_CONNECTED);
                break;
        }
        vm_ready_notify(vm);
}

/* A new start, or a clone's guest reboots: a boot of its own, not a
 * restore, whose agent knows no generation. */
void vm_identity_forget(VM *vm) {
        vm->restored = false;
        vm->identity_sent = false;
        vm->identity_verify = false;
        vm->links_up = false;
        memset(vm->generation, 0, sizeof(vm->generation));
        vm->identity_job = agent_job_free(vm->identity_job);
        vm->dhcp_kick_job = agent_job_free(vm->dhcp_kick_job);
}

void vm_ready_reboot_requested(VM *vm) {
        const struct vmgr_agent_info *info = agent_session_info(vm->agent);

        vm_identity_forget(vm);

        snprintf(vm->stale_boot_id, sizeof(vm->stale_boot_id), "%s", info && *info->boot_id ? info->boot_id : "");
        /* Without the agent, only libvirt's reset tells the old boot from
         * the new one: until then the old guest, still shutting down,
         * would answer every probe. */
        if (!vmgr_vm_spec_has_agent(&vm->spec))
                vm->reset_pending = true;
        /* What the old boot printed is read before its stages go. */
        console_follower_sync(vm->console);
        probe_cancel(vm);
        stages_clear(vm, VM_STAGE_AGENT_CONNECTED);
        vm_ready_evaluate(vm);
}

void vm_ready_guest_reset(VM *vm) {
        if (vm->state != VM_RUNNING && vm->state != VM_READY)
                return;
        /* The old boot's lines are read before its match is forgotten. */
        console_follower_sync(vm->console);
        vm_identity_forget(vm);
        if (vmgr_vm_spec_has_agent(&vm->spec)) {
                /* The end of the agent's session clears the other stages;
                 * console_matched is the last before ready. */
                stages_clear(vm, VM_STAGE_CONSOLE_MATCHED);
                vm_ready_evaluate(vm);
                return;
        }
        vm->reset_pending = false;
        probe_cancel(vm);
        stages_clear(vm, VM_STAGE_AGENT_CONNECTED);
        vm_ready_evaluate(vm);
}

void vm_ready_done(VM *vm) {
        vm_journal_done(vm);
        probe_cancel(vm);
        if (vm->console_regex) {
                regfree(vm->console_regex);
                free(vm->console_regex);
                vm->console_regex = NULL;
        }
        vm->shutdown_job = agent_job_free(vm->shutdown_job);
        vm->identity_job = agent_job_free(vm->identity_job);
        vm->dhcp_kick_job = agent_job_free(vm->dhcp_kick_job);
        vm->agent = agent_session_free(vm->agent);
        /* Waiters hold references, so there are none left here. */
}
