/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The VM operations' state machine (daemon/vm-machine.c), driven without a
 * daemon, libvirt or the helper: a fake VM takes the machine's actions the
 * way vm.c does (states, TAP flags, the XML, the queued removal) and the test
 * feeds made-up completions, checking the exact actions of every step.
 */

#include <errno.h>
#include <stdarg.h>

#include "macro.h"
#include "test.h"
#include "vm-machine.h"
#include "vmgr-error.h"

typedef struct FakeVM {
        VMOp op;
        int step;
        VMFacts f;
        VMActionKind pending;   /* the work in flight, to apply when it is DONE */
        enum vmgr_nic pending_nic;
        bool late;              /* the next DONE/FAILED is of the op numbered f.input_seq */
        int r;                  /* what the last feed returned */
        char actions[512];      /* ... and the actions it asked for */
} FakeVM;

static bool taken[256];         /* rows of the transition table some scenario took */

static const char *nic_name(enum vmgr_nic nic) {
        return nic == VMGR_NIC_PRIMARY ? "primary" : "ipv4";
}

static const char *virt_name(VirtAction v) {
        static const char *const names[] = { "create", "destroy", "shutdown", "reboot" };
        return names[v];
}

static void note_taken(VMOp op, int from, VMInput input, int to) {
        for (unsigned i = 0; i < vm_machine_n_transitions(); i++) {
                unsigned ops;
                int f, t;
                VMInput in;

                vm_machine_transition(i, &ops, &f, &in, &t);
                if ((ops & (1U << op)) && f == from && in == input && t == to)
                        taken[i] = true;
        }
}

/* Append a word (or, after "/", a detail) to the actions. */
_printf_(2, 3) static void append(FakeVM *v, const char *fmt, ...) {
        size_t n = strlen(v->actions);
        va_list ap;

        if (n && *fmt != '/' && n + 1 < sizeof(v->actions)) {
                v->actions[n++] = ' ';
                v->actions[n] = 0;
        }
        va_start(ap, fmt);
        vsnprintf(v->actions + n, sizeof(v->actions) - n, fmt, ap);
        va_end(ap);
}

/* Feed an input and take the actions as vm.c does; returns them as words. */
static const char *feed(FakeVM *v, VMInput input, VMOp arg) {
        VMMachineResult res;
        VMOp op = v->op;
        int from = v->step;
        bool finished = false;

        /* A completion names the op that made the call; by default the one in flight. */
        if (!v->late)
                v->f.input_seq = v->f.op_seq;
        v->late = false;

        /* The completion's effect on the VM, as vm.c applies it before feeding DONE. */
        if (input == VM_INPUT_DONE && v->f.input_seq == v->f.op_seq) {
                if (v->pending == VM_ACTION_TAP_CREATE || v->pending == VM_ACTION_TAP_DELETE) {
                        bool created = v->pending == VM_ACTION_TAP_CREATE;
                        if (v->pending_nic == VMGR_NIC_PRIMARY)
                                v->f.tap_created = created;
                        else
                                v->f.tap4_created = created;
                }
                if (v->pending == VM_ACTION_PREPARE)
                        v->f.xml_prepared = true;
        }

        v->actions[0] = 0;
        v->r = vm_machine_feed(v->op, v->step, &v->f, input, arg, &res);
        if (v->r == -ESTALE) {
                CHECK(res.op == v->op && res.step == v->step && res.n_actions == 0);
                return "stale";
        }
        if (v->r == -EALREADY) {
                CHECK(res.op == v->op && res.step == v->step && res.n_actions == 0);
                return "already-running";
        }
        if (v->r < 0)
                return "busy";
        if (input == VM_INPUT_BEGIN) {
                op = arg, from = VM_STEP_NEW;
                v->f.op_seq++; /* vm_operation() numbers each op */
        }
        if (res.op != v->op || res.step != v->step || input == VM_INPUT_BEGIN)
                note_taken(op, from, input == VM_INPUT_REMOVE ? VM_INPUT_PREEMPT : input, res.step);
        v->op = res.op;
        v->step = res.step;

        for (unsigned i = 0; i < res.n_actions; i++) {
                const VMAction *a = &res.actions[i];

                if (finished && v->op != VM_OP_NONE)
                        break;
                switch (a->kind) {
                case VM_ACTION_SET_STATE:
                        v->f.state = a->state;
                        append(v, "state:%s", vm_state_to_string(a->state));
                        break;
                case VM_ACTION_MARK_STARTED:
                        v->f.ever_started = true;
                        v->f.warm_wanted = false; /* only a first start restores (vm_warm_wanted()) */
                        append(v, "%s", "started");
                        break;
                case VM_ACTION_TAP_CREATE:
                case VM_ACTION_TAP_DELETE:
                        v->pending = a->kind;
                        v->pending_nic = a->nic;
                        append(v, a->kind == VM_ACTION_TAP_CREATE ? "tap-create:%s" : "tap-delete:%s",
                               nic_name(a->nic));
                        break;
                case VM_ACTION_PREPARE:
                        v->pending = a->kind;
                        append(v, "%s", "prepare");
                        break;
                case VM_ACTION_VIRT:
                        v->pending = a->kind;
                        append(v, "virt:%s", virt_name(a->virt));
                        break;
                case VM_ACTION_FIND_SNAPSHOT:
                        v->pending = a->kind;
                        append(v, "%s", "find-snapshot");
                        break;
                case VM_ACTION_RESTORE:
                        v->pending = a->kind;
                        append(v, "%s", "restore");
                        break;
                case VM_ACTION_SAVE:
                        v->pending = a->kind;
                        append(v, "%s", "save");
                        break;
                case VM_ACTION_AGENT_SHUTDOWN:
                        append(v, "%s", "agent-shutdown");
                        break;
                case VM_ACTION_DROP_AGENT_SHUTDOWN:
                        append(v, "%s", "drop-agent-shutdown");
                        break;
                case VM_ACTION_ARM_DEADLINE:
                        append(v, "%s", "arm-deadline");
                        break;
                case VM_ACTION_REBOOT_REQUESTED:
                        append(v, "%s", "reboot-requested");
                        break;
                case VM_ACTION_NOTE_STOPPED:
                        append(v, "%s", "note-stopped");
                        break;
                case VM_ACTION_NOTE_CRASHED:
                        append(v, "%s", "note-crashed");
                        break;
                case VM_ACTION_NOTE_PANICKED:
                        append(v, "%s", "note-panicked");
                        break;
                case VM_ACTION_REMOVE_FILES:
                        v->pending = a->kind;
                        append(v, "%s", "remove-files");
                        break;
                case VM_ACTION_QUEUE_REMOVE:
                        v->f.remove_requested = true;
                        append(v, "%s", "queue-remove");
                        break;
                case VM_ACTION_BEGIN_REMOVE:
                        append(v, "%s", "begin-remove");
                        break;
                case VM_ACTION_FINISH: {
                        static const char *const reasons[] = { "ok", "failed", "not-running", "cut-short" };
                        append(v, "finish:%s", reasons[a->reason]);
                        if (a->reason == VM_FINISH_NOT_RUNNING)
                                CHECK(a->error == -ESRCH);
                        if (a->reason == VM_FINISH_CUT_SHORT) {
                                CHECK(a->error == -ECANCELED);
                                append(v, "/by-%s", vm_op_to_string(a->by));
                        }
                        if (a->failed_state != _VM_STATE_MAX) {
                                v->f.state = a->failed_state; /* vm_op_finish() */
                                append(v, "/%s", vm_state_to_string(a->failed_state));
                        }
                        if (a->unlink)
                                append(v, "/unlink");
                        if (a->then_remove)
                                append(v, "/then-remove");
                        v->op = VM_OP_NONE;
                        finished = true;
                        break;
                }
                case _VM_ACTION_KIND_MAX:
                        CHECK(false);
                }
        }
        return v->actions;
}

/* Feed the DONE or FAILED of a call that the op numbered seq made. */
static const char *feed_late(FakeVM *v, VMInput input, uint64_t seq) {
        v->f.input_seq = seq;
        v->late = true;
        return feed(v, input, VM_OP_NONE);
}

/* vm_operation(): a Kill or Remove first cuts a waiting Shutdown short. */
static const char *begin(FakeVM *v, VMOp op, char *preempted, size_t size) {
        if (vm_machine_preempts(op))
                snprintf(preempted, size, "%s", feed(v, VM_INPUT_PREEMPT, op));
        else
                snprintf(preempted, size, "%s", "");
        return feed(v, VM_INPUT_BEGIN, op);
}

#define BEGIN(v, op) begin(v, op, preempted, sizeof(preempted))
#define STEP(v) vm_step_to_string((v)->op, (v)->step)

static FakeVM fresh(void) {
        return (FakeVM) { .f = { .state = VM_DEFINED, .tap4_wanted = true } };
}

static FakeVM running(void) {
        return (FakeVM) { .f = { .state = VM_RUNNING, .ever_started = true, .tap_created = true,
                                 .tap4_wanted = true, .tap4_created = true, .xml_prepared = true } };
}

static void test_start(void) {
        char preempted[512];
        FakeVM v = fresh();

        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(STEP(&v), "tap");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "tap-create:ipv4");
        CHECK_STREQ(STEP(&v), "tap4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "prepare");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "virt:create");
        CHECK_STREQ(STEP(&v), "create");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STARTED, 0), "state:running");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started finish:ok");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_RUNNING);

        /* Already running: refused, nothing done (Restart boots it again). */
        static const VMState active[] = { VM_STARTING, VM_RUNNING, VM_READY, VM_STOPPING };
        for (size_t i = 0; i < ELEMENTSOF(active); i++) {
                v.f.state = active[i];
                CHECK_STREQ(BEGIN(&v, VM_OP_START), "already-running");
                CHECK(v.r == -EALREADY && v.op == VM_OP_NONE && v.f.state == active[i]);
        }
        v.f.state = VM_RUNNING;

        /* Stopped by the guest, then started again: the TAPs and XML stay. */
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "note-stopped state:stopped");
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting virt:create");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started state:running finish:ok");

        /* Without an IPv4 NIC: straight from the TAP to preparing. */
        v = fresh();
        v.f.tap4_wanted = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "prepare");
        CHECK_STREQ(STEP(&v), "prepare");

        /* After a start that failed at the IPv4 TAP: Start begins there. */
        v = fresh();
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "tap-create:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/defined");
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "prepare");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/defined");
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting prepare");
}

static void test_start_fails(void) {
        char preempted[512];
        FakeVM v = fresh();

        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/defined");
        CHECK(v.op == VM_OP_NONE);

        /* A VM that ran before goes back to stopped. */
        v = running();
        v.f.state = VM_STOPPED;
        v.f.xml_prepared = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting prepare");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/stopped");

        /* The domain crashing while Start creates it: noted, and Start goes on. */
        v = running();
        v.f.state = VM_STOPPED;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting virt:create");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed");
        CHECK_STREQ(STEP(&v), "create");
        CHECK(v.f.state == VM_STARTING);
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started state:running finish:ok");

        /* ... or libvirt failing to create it. */
        v.f.state = VM_STOPPED;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting virt:create");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/stopped");
}

static void test_shutdown(void) {
        char preempted[512];
        FakeVM v = running();

        /* Through the agent; the guest's STOPPED event ends it. */
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(STEP(&v), "agent");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_OK, 0), "");
        CHECK_STREQ(STEP(&v), "wait-guest");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "drop-agent-shutdown state:stopped finish:ok");
        CHECK(v.op == VM_OP_NONE);

        /* Not running: nothing to do. */
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "finish:ok");
        v.f.state = VM_DEFINED;
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "finish:ok");

        /* The guest powers off before the agent answers. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "drop-agent-shutdown state:stopped finish:ok");

        /* The guest crashes while it shuts down: stopped, then crashed. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed state:stopped finish:ok state:crashed");
        CHECK(v.f.state == VM_CRASHED);

        /* The power button fails: libvirt says the domain is gone. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
}

static void test_shutdown_deadline(void) {
        char preempted[512];
        FakeVM v = running();

        /* No agent: the power button; the guest does not react; the deadline
         * passes and the domain is destroyed. */
        v.f.has_deadline = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping arm-deadline agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(STEP(&v), "acpi");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "");
        CHECK_STREQ(STEP(&v), "wait-guest");
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "virt:destroy");
        CHECK_STREQ(STEP(&v), "hard-stop");
        /* The destroyed domain's event is the hard stop's, not news. */
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped finish:ok");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_STOPPED);

        /* The deadline while the agent has not answered; its late answer is ignored. */
        v = running();
        v.f.has_deadline = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping arm-deadline agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_OK, 0), "");
        CHECK_STREQ(STEP(&v), "hard-stop");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");

        /* The deadline while libvirt still presses the power button: the
         * hard stop waits for that call. */
        v = running();
        v.f.has_deadline = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping arm-deadline agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "");
        CHECK_STREQ(STEP(&v), "acpi-overdue");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped finish:ok");

        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
}

/* The guest powers off while libvirt's power button call still runs: the
 * event ends Shutdown at once (it used to be lost, and Shutdown then waited
 * for a STOPPED event that had come already); the call's late answer moves
 * neither this nor the next operation. */
static void test_shutdown_acpi_race(void) {
        char preempted[512];
        FakeVM v = running();
        uint64_t seq;

        /* The event before the call returns. */
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        seq = v.f.op_seq;
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "drop-agent-shutdown state:stopped finish:ok");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_STOPPED);
        CHECK_STREQ(feed_late(&v, VM_INPUT_DONE, seq), "");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_STOPPED);
        /* ... or after the next operation began: it changes nothing. */
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting virt:create");
        CHECK(v.f.op_seq == seq + 1);
        CHECK_STREQ(feed_late(&v, VM_INPUT_DONE, seq), "stale");
        CHECK_STREQ(feed_late(&v, VM_INPUT_FAILED, seq), "stale");
        CHECK_STREQ(STEP(&v), "create");
        CHECK(v.op == VM_OP_START && v.f.state == VM_STARTING);
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started state:running finish:ok");

        /* The event after the call returned. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "");
        CHECK_STREQ(STEP(&v), "wait-guest");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "drop-agent-shutdown state:stopped finish:ok");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_STOPPED);

        /* The guest crashes during the call. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed state:stopped finish:ok state:crashed");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_CRASHED);

        /* The deadline passed during the call, then the guest stops: no hard stop. */
        v = running();
        v.f.has_deadline = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping arm-deadline agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "");
        CHECK_STREQ(STEP(&v), "acpi-overdue");
        seq = v.f.op_seq;
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "drop-agent-shutdown state:stopped finish:ok");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_STOPPED);
        v.f.has_deadline = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting virt:create");
        CHECK_STREQ(feed_late(&v, VM_INPUT_DONE, seq), "stale");
        CHECK_STREQ(STEP(&v), "create");
        v = running();
        v.f.has_deadline = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping arm-deadline agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed state:stopped finish:ok state:crashed");
}

static void test_kill_cuts_shutdown(void) {
        char preempted[512];
        FakeVM v = running();
        uint64_t seq;

        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "");
        CHECK_STREQ(BEGIN(&v, VM_OP_KILL), "state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown finish:cut-short/by-kill");
        CHECK_STREQ(STEP(&v), "destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped finish:ok");

        /* ... also while the agent has not answered yet. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(BEGIN(&v, VM_OP_KILL), "state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown finish:cut-short/by-kill");

        /* ... and while libvirt presses the power button: that call's late
         * answer is dropped and Kill goes on with its own step. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        seq = v.f.op_seq;
        CHECK_STREQ(BEGIN(&v, VM_OP_KILL), "state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown finish:cut-short/by-kill");
        CHECK_STREQ(feed_late(&v, VM_INPUT_DONE, seq), "stale");
        CHECK(v.r == -ESTALE);
        CHECK_STREQ(STEP(&v), "destroy");
        CHECK(v.f.state == VM_STOPPING);
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped finish:ok");

        /* ... also once the deadline passed during that call (its FAILED is dropped too). */
        v = running();
        v.f.has_deadline = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping arm-deadline agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "");
        seq = v.f.op_seq;
        v.f.has_deadline = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_KILL), "state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown finish:cut-short/by-kill");
        CHECK_STREQ(feed_late(&v, VM_INPUT_FAILED, seq), "stale");
        CHECK_STREQ(STEP(&v), "destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped finish:ok");

        /* Remove cuts it short as well and begins at once. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        seq = v.f.op_seq;
        CHECK_STREQ(feed(&v, VM_INPUT_REMOVE, 0), "drop-agent-shutdown finish:cut-short/by-remove begin-remove");
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopping virt:destroy");
        CHECK_STREQ(feed_late(&v, VM_INPUT_DONE, seq), "stale");
        CHECK_STREQ(STEP(&v), "destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped tap-delete:primary");

        /* Kill of an idle VM. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_KILL), "state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
}

static void test_remove(void) {
        char preempted[512];
        FakeVM v = fresh();

        /* Remove while Start runs: it waits, then follows. */
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_REMOVE, 0), "drop-agent-shutdown queue-remove");
        CHECK(v.f.remove_requested);
        CHECK_STREQ(feed(&v, VM_INPUT_REMOVE, 0), "busy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "tap-create:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "prepare");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "virt:create");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started state:running finish:ok/then-remove");
        /* vm_op_finish() clears the request and begins the removal. */
        v.f.remove_requested = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopping virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_REMOVE, 0), "busy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped tap-delete:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "tap-delete:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "remove-files");
        CHECK(!v.f.tap_created && !v.f.tap4_created);
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "finish:ok/unlink");

        /* A VM never started: only its files. */
        v = fresh();
        CHECK_STREQ(feed(&v, VM_INPUT_REMOVE, 0), "drop-agent-shutdown begin-remove");
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "remove-files");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "finish:ok/unlink");

        /* A crashed VM: its domain is destroyed first; a failed TAP deletion fails it. */
        v = running();
        v.f.state = VM_CRASHED;
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopping virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped tap-delete:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");

        /* Remove cuts a waiting Shutdown short and begins at once. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_OK, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_REMOVE, 0), "drop-agent-shutdown finish:cut-short/by-remove begin-remove");
}

static void test_restart_reboot(void) {
        char preempted[512];
        FakeVM v = running();

        CHECK_STREQ(BEGIN(&v, VM_OP_RESTART), "virt:destroy");
        CHECK_STREQ(STEP(&v), "destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:starting virt:create");
        CHECK_STREQ(STEP(&v), "create");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STARTED, 0), "state:running");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started finish:ok");

        /* Restart of a VM never started goes through all of Start's steps. */
        v = fresh();
        CHECK_STREQ(BEGIN(&v, VM_OP_RESTART), "virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/defined");
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_RESTART), "virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");

        /* Reboot. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_REBOOT), "reboot-requested virt:reboot");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "finish:ok");
        CHECK_STREQ(BEGIN(&v, VM_OP_REBOOT), "reboot-requested virt:reboot");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
        v.f.state = VM_STOPPED;
        CHECK_STREQ(BEGIN(&v, VM_OP_REBOOT), "finish:not-running");
        v.f.state = VM_CRASHED;
        CHECK_STREQ(BEGIN(&v, VM_OP_REBOOT), "finish:not-running");
}

static void test_busy_and_events(void) {
        char preempted[512];
        FakeVM v = fresh();

        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        for (VMOp op = VM_OP_START; op < _VM_OP_MAX; op++) {
                CHECK_STREQ(BEGIN(&v, op), "busy");
                CHECK(v.r == -VMGR_ERR_BUSY);
        }
        CHECK(v.op == VM_OP_START);
        CHECK_STREQ(STEP(&v), "tap");

        /* Inputs the step does not expect change nothing. */
        CHECK_STREQ(feed(&v, VM_INPUT_DEADLINE, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_OK, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "");
        CHECK_STREQ(STEP(&v), "tap");

        /* Without an operation, libvirt's events move the state. */
        v = running();
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed state:crashed");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STARTED, 0), "state:running");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STARTED, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "note-stopped state:stopped");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "");
}

/* The guest's kernel panicked: vm-panic.c notes it (facts.panicked) and
 * begins Panic, which destroys its domain; then the VM is crashed. */
static void test_panic(void) {
        char preempted[512];
        FakeVM v = running();
        uint64_t seq;

        v.f.panicked = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "note-panicked state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown");
        CHECK_STREQ(STEP(&v), "destroy");
        /* Start waits for the destroy (a domain of that name still runs);
         * meanwhile the VM is stopping. */
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "busy");
        /* pvpanic: libvirt destroys the domain too and says it crashed; LastError
         * keeps the panic's message and the state is the operation's. */
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:crashed finish:ok");
        CHECK(v.f.state == VM_CRASHED);
        /* ... or after it. */
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "state:crashed");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "");
        /* A crash without a panic still says why. */
        v = running();
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed state:crashed");

        /* The destroy fails: crashed all the same, with libvirt's reason. */
        v = running();
        v.f.panicked = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "note-panicked state:stopping virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "state:crashed finish:failed");
        CHECK(v.f.state == VM_CRASHED);

        /* Nothing runs (its QEMU went meanwhile): nothing to do. */
        v = running();
        v.f.state = VM_STOPPED;
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "finish:ok");
        CHECK(v.f.state == VM_STOPPED);

        /* A Shutdown waiting for the guest gives way: the guest will not power off. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_OK, 0), "");
        v.f.panicked = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "note-panicked state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown finish:cut-short/by-panic");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:crashed finish:ok");
        /* ... also while libvirt presses the power button (its late answer is dropped). */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_SHUTDOWN), "state:stopping agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_AGENT_SHUTDOWN_FAILED, 0), "virt:shutdown");
        seq = v.f.op_seq;
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "note-panicked state:stopping virt:destroy");
        CHECK_STREQ(preempted, "drop-agent-shutdown finish:cut-short/by-panic");
        CHECK_STREQ(feed_late(&v, VM_INPUT_DONE, seq), "stale");
        CHECK_STREQ(STEP(&v), "destroy");

        /* Other operations are not cut short: vm-panic.c begins Panic after them. */
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_KILL), "state:stopping virt:destroy");
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "busy");
        CHECK_STREQ(preempted, "drop-agent-shutdown");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped finish:ok");
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "finish:ok");
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_REBOOT), "reboot-requested virt:reboot");
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "busy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "finish:ok");
        CHECK_STREQ(BEGIN(&v, VM_OP_PANIC), "note-panicked state:stopping virt:destroy");

        /* Remove asked for during Panic follows it. */
        CHECK_STREQ(feed(&v, VM_INPUT_REMOVE, 0), "drop-agent-shutdown queue-remove");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:crashed finish:ok/then-remove");
}

/* The steps each operation passes over when their work is done already. */
static void test_skipped_steps(void) {
        char preempted[512];
        FakeVM v = running();

        /* Restart after a start that failed at the IPv4 TAP, or before the XML. */
        v.f.tap4_created = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_RESTART), "virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:starting tap-create:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "virt:create");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started state:running finish:ok");
        v.f.xml_prepared = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_RESTART), "virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:starting prepare");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "virt:create");

        /* Start with the XML made but a TAP missing. */
        v = running();
        v.f.state = VM_STOPPED;
        v.f.tap_created = false;
        v.f.tap4_wanted = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "virt:create");
        v = running();
        v.f.state = VM_STOPPED;
        v.f.tap4_created = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "virt:create");

        /* Remove of a stopped VM with its TAPs. */
        v = running();
        v.f.state = VM_STOPPED;
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopped tap-delete:primary");
        CHECK_STREQ(STEP(&v), "tap");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "tap-delete:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopped tap-delete:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "remove-files");

        /* ... of a defined one with only its primary TAP (a start that failed there). */
        v = fresh();
        v.f.tap_created = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "tap-delete:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "remove-files");

        /* ... of a running one with one TAP or none. */
        v = running();
        v.f.tap_created = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopping virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped tap-delete:ipv4");
        v = running();
        v.f.tap_created = v.f.tap4_created = false;
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopping virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:stopped remove-files");
        v = running();
        CHECK_STREQ(BEGIN(&v, VM_OP_REMOVE), "state:stopping virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
}

/* Warm start: a first start looks for a snapshot once the XML is made;
 * found, the clone's domain is restored, else (or if the restore fails) the
 * VM boots cold. */
static void test_warm_start(void) {
        char preempted[512];
        FakeVM v = fresh();

        v.f.warm_wanted = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "tap-create:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "prepare");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "find-snapshot");
        CHECK_STREQ(STEP(&v), "template");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "restore");
        CHECK_STREQ(STEP(&v), "restore");
        /* libvirt's STARTED event comes while QEMU takes the state. */
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STARTED, 0), "state:running");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started finish:ok");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_RUNNING && !v.f.warm_wanted);

        /* A stopped clone starts cold: never a second restore. */
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "note-stopped state:stopped");
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting virt:create");

        /* No template (this VM builds it, or waited for nothing): cold. */
        v = fresh();
        v.f.warm_wanted = true;
        v.f.tap4_wanted = false;
        v.f.xml_prepared = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:primary");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "find-snapshot");
        CHECK_STREQ(feed(&v, VM_INPUT_COLD, 0), "virt:create");
        CHECK_STREQ(STEP(&v), "create");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "started state:running finish:ok");

        /* Everything made before: straight to the snapshot. A cold input
         * while no op waits for one changes nothing. */
        v = fresh();
        v.f.warm_wanted = v.f.tap_created = v.f.tap4_created = v.f.xml_prepared = true;
        CHECK_STREQ(feed(&v, VM_INPUT_COLD, 0), "");
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting find-snapshot");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "restore");
        /* The restore failed (its domain destroyed): cold. */
        CHECK_STREQ(feed(&v, VM_INPUT_COLD, 0), "virt:create");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/defined");

        /* A user snapshot that cannot be read fails the start; so does a restore that must not fall back. */
        v = fresh();
        v.f.warm_wanted = v.f.tap_created = v.f.xml_prepared = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting tap-create:ipv4");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "find-snapshot");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/defined");
        CHECK_STREQ(BEGIN(&v, VM_OP_START), "state:starting find-snapshot");
        /* A late completion of the op that failed is dropped. */
        CHECK_STREQ(feed_late(&v, VM_INPUT_DONE, v.f.op_seq - 1), "stale");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "restore");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed/defined");

        /* Restart of a VM that never ran: its first start may be warm. */
        v = running();
        v.f.ever_started = false;
        v.f.warm_wanted = true;
        CHECK_STREQ(BEGIN(&v, VM_OP_RESTART), "virt:destroy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "state:starting find-snapshot");
}

/* Snapshot: the VM is saved and goes on; nothing else runs meanwhile. */
static void test_snapshot(void) {
        char preempted[512];
        FakeVM v = running();

        CHECK_STREQ(BEGIN(&v, VM_OP_SNAPSHOT), "save");
        CHECK_STREQ(STEP(&v), "save");
        CHECK_STREQ(BEGIN(&v, VM_OP_KILL), "busy");
        CHECK(v.r == -VMGR_ERR_BUSY);
        CHECK_STREQ(BEGIN(&v, VM_OP_SNAPSHOT), "busy");
        CHECK_STREQ(feed(&v, VM_INPUT_DONE, 0), "finish:ok");
        CHECK(v.op == VM_OP_NONE && v.f.state == VM_RUNNING);

        /* A ready VM stays ready; a failed save leaves it running. */
        v.f.state = VM_READY;
        CHECK_STREQ(BEGIN(&v, VM_OP_SNAPSHOT), "save");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
        CHECK(v.f.state == VM_READY);

        /* The guest powers off during the save: stopped, and the save fails by itself. */
        CHECK_STREQ(BEGIN(&v, VM_OP_SNAPSHOT), "save");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_STOPPED, 0), "note-stopped state:stopped");
        CHECK_STREQ(STEP(&v), "save");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");

        /* Not running: refused. */
        CHECK_STREQ(BEGIN(&v, VM_OP_SNAPSHOT), "finish:not-running");
        v.f.state = VM_CRASHED;
        CHECK_STREQ(BEGIN(&v, VM_OP_SNAPSHOT), "finish:not-running");
        v.f.state = VM_RUNNING;
        CHECK_STREQ(BEGIN(&v, VM_OP_SNAPSHOT), "save");
        CHECK_STREQ(feed(&v, VM_INPUT_DOMAIN_CRASHED, 0), "note-crashed state:crashed");
        CHECK_STREQ(feed(&v, VM_INPUT_FAILED, 0), "finish:failed");
}

/* Every row of the table is a transition some scenario takes, and each
 * transition the machine made was in the table (it checks that itself). */
static void test_table_covered(void) {
        unsigned missing = 0;

        for (unsigned i = 0; i < vm_machine_n_transitions(); i++) {
                unsigned ops;
                int from, to;
                VMInput input;

                vm_machine_transition(i, &ops, &from, &input, &to);
                if (!taken[i])
                        fprintf(stderr, "row %u (ops %#x, %d --%s--> %d) not taken\n", i, ops, from,
                                vm_input_to_string(input), to);
                missing += !taken[i];
        }
        CHECK(missing == 0);
}

int main(void) {
        CHECK(vm_machine_n_transitions() <= sizeof(taken));
        test_start();
        test_start_fails();
        test_shutdown();
        test_shutdown_deadline();
        test_shutdown_acpi_race();
        test_kill_cuts_shutdown();
        test_remove();
        test_restart_reboot();
        test_busy_and_events();
        test_panic();
        test_skipped_steps();
        test_warm_start();
        test_snapshot();
        test_table_covered();
        TEST_DONE();
}
