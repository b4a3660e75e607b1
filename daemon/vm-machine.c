/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>

#include "vmgr-error.h"
#include "macro.h"
#include "vm-machine.h"

#define OP(o) (1U << (o))
#define STARTING_OPS (OP(VM_OP_START) | OP(VM_OP_RESTART))

/*
 * Every step change an operation can make: (ops, from, input) -> to, when the
 * guard in words holds. vm_machine_feed() hands an input to an operation only
 * when its step has a row for it (any other input is not for this step and
 * changes nothing), and checks the step it chose against the rows. Inputs
 * that change no step are not here: a libvirt event while no Shutdown waits
 * only moves the VM's state (see vm_machine_feed()). A DONE or FAILED of an
 * operation that is over (input_seq is not op_seq) reaches no row.
 */
typedef struct Transition {
        unsigned ops;
        int from;
        VMInput input;
        int to;
        const char *when;
} Transition;

static const Transition transitions[] = {
        /* Start, and Restart once its domain is gone. */
        { OP(VM_OP_START), VM_STEP_NEW, VM_INPUT_BEGIN, START_TAP, "no TAP yet" },
        { OP(VM_OP_START), VM_STEP_NEW, VM_INPUT_BEGIN, START_TAP4, "an IPv4 NIC but no TAP for it" },
        { OP(VM_OP_START), VM_STEP_NEW, VM_INPUT_BEGIN, START_PREPARE, "no domain XML yet" },
        { OP(VM_OP_START), VM_STEP_NEW, VM_INPUT_BEGIN, START_TEMPLATE, "all made before, warm start wanted" },
        { OP(VM_OP_START), VM_STEP_NEW, VM_INPUT_BEGIN, START_CREATE, "all made before" },
        { OP(VM_OP_RESTART), VM_STEP_NEW, VM_INPUT_BEGIN, RESTART_DESTROY, "always" },
        { OP(VM_OP_RESTART), RESTART_DESTROY, VM_INPUT_DONE, START_TAP, "as Start" },
        { OP(VM_OP_RESTART), RESTART_DESTROY, VM_INPUT_DONE, START_TAP4, "as Start" },
        { OP(VM_OP_RESTART), RESTART_DESTROY, VM_INPUT_DONE, START_PREPARE, "as Start" },
        { OP(VM_OP_RESTART), RESTART_DESTROY, VM_INPUT_DONE, START_TEMPLATE, "as Start" },
        { OP(VM_OP_RESTART), RESTART_DESTROY, VM_INPUT_DONE, START_CREATE, "as Start" },
        { OP(VM_OP_RESTART), RESTART_DESTROY, VM_INPUT_FAILED, START_DONE, "fails" },
        { STARTING_OPS, START_TAP, VM_INPUT_DONE, START_TAP4, "an IPv4 NIC" },
        { STARTING_OPS, START_TAP, VM_INPUT_DONE, START_PREPARE, "no IPv4 NIC, no XML yet" },
        { STARTING_OPS, START_TAP, VM_INPUT_DONE, START_TEMPLATE, "no IPv4 NIC, XML made, warm start wanted" },
        { STARTING_OPS, START_TAP, VM_INPUT_DONE, START_CREATE, "no IPv4 NIC, XML made" },
        { STARTING_OPS, START_TAP, VM_INPUT_FAILED, START_DONE, "fails" },
        { STARTING_OPS, START_TAP4, VM_INPUT_DONE, START_PREPARE, "no XML yet" },
        { STARTING_OPS, START_TAP4, VM_INPUT_DONE, START_TEMPLATE, "XML made, warm start wanted" },
        { STARTING_OPS, START_TAP4, VM_INPUT_DONE, START_CREATE, "XML made" },
        { STARTING_OPS, START_TAP4, VM_INPUT_FAILED, START_DONE, "fails" },
        { STARTING_OPS, START_PREPARE, VM_INPUT_DONE, START_TEMPLATE, "warm start wanted" },
        { STARTING_OPS, START_PREPARE, VM_INPUT_DONE, START_CREATE, "a cold boot" },
        { STARTING_OPS, START_PREPARE, VM_INPUT_FAILED, START_DONE, "fails; starting -> stopped/defined" },
        /* Warm start: the snapshot is there (or its build ended) and linked
         * into the VM's directory: restore it; none: boot cold. */
        { STARTING_OPS, START_TEMPLATE, VM_INPUT_DONE, START_RESTORE, "a snapshot to restore" },
        { STARTING_OPS, START_TEMPLATE, VM_INPUT_COLD, START_CREATE, "none (or it could not be used)" },
        { STARTING_OPS, START_TEMPLATE, VM_INPUT_FAILED, START_DONE, "fails; starting -> stopped/defined" },
        { STARTING_OPS, START_CREATE, VM_INPUT_DONE, START_DONE, "starting -> running" },
        { STARTING_OPS, START_CREATE, VM_INPUT_FAILED, START_DONE, "fails; starting -> stopped/defined" },
        { STARTING_OPS, START_RESTORE, VM_INPUT_DONE, START_DONE, "starting -> running" },
        /* Its half-made domain destroyed: the VM boots as if there were no snapshot. */
        { STARTING_OPS, START_RESTORE, VM_INPUT_COLD, START_CREATE, "the restore failed" },
        { STARTING_OPS, START_RESTORE, VM_INPUT_FAILED, START_DONE, "fails; starting -> stopped/defined" },

        /* Snapshot: of a template (vmgrd's own) or VM.Snapshot's. */
        { OP(VM_OP_SNAPSHOT), VM_STEP_NEW, VM_INPUT_BEGIN, SNAPSHOT_DONE, "fails: the VM does not run" },
        { OP(VM_OP_SNAPSHOT), VM_STEP_NEW, VM_INPUT_BEGIN, SNAPSHOT_SAVE, "the VM runs" },
        { OP(VM_OP_SNAPSHOT), SNAPSHOT_SAVE, VM_INPUT_DONE, SNAPSHOT_DONE, "committed; the VM runs on" },
        { OP(VM_OP_SNAPSHOT), SNAPSHOT_SAVE, VM_INPUT_FAILED, SNAPSHOT_DONE, "fails; the VM runs on" },

        /* Kill. */
        { OP(VM_OP_KILL), VM_STEP_NEW, VM_INPUT_BEGIN, KILL_DESTROY, "always; -> stopping" },
        { OP(VM_OP_KILL), KILL_DESTROY, VM_INPUT_DONE, KILL_DONE, "-> stopped" },
        { OP(VM_OP_KILL), KILL_DESTROY, VM_INPUT_FAILED, KILL_DONE, "fails" },

        /* Shutdown: the agent, else the power button; the guest's STOPPED event
         * ends it; at the deadline the domain is destroyed. */
        { OP(VM_OP_SHUTDOWN), VM_STEP_NEW, VM_INPUT_BEGIN, SHUTDOWN_DONE, "the VM does not run" },
        { OP(VM_OP_SHUTDOWN), VM_STEP_NEW, VM_INPUT_BEGIN, SHUTDOWN_AGENT, "-> stopping; arm the deadline" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_AGENT, VM_INPUT_AGENT_SHUTDOWN_OK, SHUTDOWN_WAIT_GUEST, "" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_AGENT, VM_INPUT_AGENT_SHUTDOWN_FAILED, SHUTDOWN_ACPI, "or no agent" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_AGENT, VM_INPUT_DEADLINE, SHUTDOWN_HARD_STOP, "" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_AGENT, VM_INPUT_DOMAIN_STOPPED, SHUTDOWN_DONE, "-> stopped" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_AGENT, VM_INPUT_PREEMPT, SHUTDOWN_DONE, "fails: cut short" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI, VM_INPUT_DONE, SHUTDOWN_WAIT_GUEST, "" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI, VM_INPUT_FAILED, SHUTDOWN_DONE, "fails" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI, VM_INPUT_DEADLINE, SHUTDOWN_ACPI_OVERDUE, "libvirt still busy" },
        /* The guest may power off before libvirt's power button call returns:
         * the event ends the operation and that call's late DONE is dropped
         * (input_seq); so is it when Kill or Remove cuts the wait short. */
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI, VM_INPUT_DOMAIN_STOPPED, SHUTDOWN_DONE, "-> stopped" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI, VM_INPUT_DOMAIN_CRASHED, SHUTDOWN_DONE, "-> stopped -> crashed" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI, VM_INPUT_PREEMPT, SHUTDOWN_DONE, "fails: cut short" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI_OVERDUE, VM_INPUT_DONE, SHUTDOWN_HARD_STOP, "" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI_OVERDUE, VM_INPUT_FAILED, SHUTDOWN_DONE, "fails" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI_OVERDUE, VM_INPUT_DOMAIN_STOPPED, SHUTDOWN_DONE, "-> stopped" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI_OVERDUE, VM_INPUT_DOMAIN_CRASHED, SHUTDOWN_DONE, "-> stopped -> crashed" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_ACPI_OVERDUE, VM_INPUT_PREEMPT, SHUTDOWN_DONE, "fails: cut short" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_WAIT_GUEST, VM_INPUT_DEADLINE, SHUTDOWN_HARD_STOP, "" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_WAIT_GUEST, VM_INPUT_DOMAIN_STOPPED, SHUTDOWN_DONE, "-> stopped" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_WAIT_GUEST, VM_INPUT_DOMAIN_CRASHED, SHUTDOWN_DONE, "-> stopped -> crashed" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_WAIT_GUEST, VM_INPUT_PREEMPT, SHUTDOWN_DONE, "fails: cut short" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_HARD_STOP, VM_INPUT_DONE, SHUTDOWN_DONE, "-> stopped" },
        { OP(VM_OP_SHUTDOWN), SHUTDOWN_HARD_STOP, VM_INPUT_FAILED, SHUTDOWN_DONE, "fails" },

        /* Reboot. */
        { OP(VM_OP_REBOOT), VM_STEP_NEW, VM_INPUT_BEGIN, REBOOT_DONE, "fails: the VM does not run" },
        { OP(VM_OP_REBOOT), VM_STEP_NEW, VM_INPUT_BEGIN, REBOOT_REQUEST, "the VM runs" },
        { OP(VM_OP_REBOOT), REBOOT_REQUEST, VM_INPUT_DONE, REBOOT_DONE, "" },
        { OP(VM_OP_REBOOT), REBOOT_REQUEST, VM_INPUT_FAILED, REBOOT_DONE, "fails" },

        /* Panic: begun by vmgrd when the guest's kernel panicked; a waiting
         * Shutdown gives way to it. The guest is dead: its QEMU (which may spin
         * or reboot) is destroyed, and the VM is crashed. */
        { OP(VM_OP_PANIC), VM_STEP_NEW, VM_INPUT_BEGIN, PANIC_DONE, "the VM does not run" },
        { OP(VM_OP_PANIC), VM_STEP_NEW, VM_INPUT_BEGIN, PANIC_DESTROY, "-> stopping" },
        { OP(VM_OP_PANIC), PANIC_DESTROY, VM_INPUT_DONE, PANIC_DONE, "-> crashed" },
        { OP(VM_OP_PANIC), PANIC_DESTROY, VM_INPUT_FAILED, PANIC_DONE, "fails; -> crashed" },

        /* Remove: the domain, the TAPs, the files; then the VM leaves its group. */
        { OP(VM_OP_REMOVE), VM_STEP_NEW, VM_INPUT_BEGIN, REMOVE_DESTROY, "a domain may run; -> stopping" },
        { OP(VM_OP_REMOVE), VM_STEP_NEW, VM_INPUT_BEGIN, REMOVE_TAP, "a TAP" },
        { OP(VM_OP_REMOVE), VM_STEP_NEW, VM_INPUT_BEGIN, REMOVE_TAP4, "only an IPv4 TAP" },
        { OP(VM_OP_REMOVE), VM_STEP_NEW, VM_INPUT_BEGIN, REMOVE_FILES, "no TAP" },
        { OP(VM_OP_REMOVE), REMOVE_DESTROY, VM_INPUT_DONE, REMOVE_TAP, "-> stopped; a TAP" },
        { OP(VM_OP_REMOVE), REMOVE_DESTROY, VM_INPUT_DONE, REMOVE_TAP4, "-> stopped; only an IPv4 TAP" },
        { OP(VM_OP_REMOVE), REMOVE_DESTROY, VM_INPUT_DONE, REMOVE_FILES, "-> stopped; no TAP" },
        { OP(VM_OP_REMOVE), REMOVE_DESTROY, VM_INPUT_FAILED, REMOVE_DONE, "fails" },
        { OP(VM_OP_REMOVE), REMOVE_TAP, VM_INPUT_DONE, REMOVE_TAP4, "an IPv4 TAP" },
        { OP(VM_OP_REMOVE), REMOVE_TAP, VM_INPUT_DONE, REMOVE_FILES, "no IPv4 TAP" },
        { OP(VM_OP_REMOVE), REMOVE_TAP, VM_INPUT_FAILED, REMOVE_DONE, "fails" },
        { OP(VM_OP_REMOVE), REMOVE_TAP4, VM_INPUT_DONE, REMOVE_FILES, "" },
        { OP(VM_OP_REMOVE), REMOVE_TAP4, VM_INPUT_FAILED, REMOVE_DONE, "fails" },
        { OP(VM_OP_REMOVE), REMOVE_FILES, VM_INPUT_DONE, REMOVE_DONE, "the VM leaves its group" },
};

static const char *const op_names[_VM_OP_MAX] = {
        [VM_OP_NONE] = "none",
        [VM_OP_START] = "start",
        [VM_OP_KILL] = "kill",
        [VM_OP_SHUTDOWN] = "shutdown",
        [VM_OP_REBOOT] = "reboot",
        [VM_OP_RESTART] = "restart",
        [VM_OP_REMOVE] = "remove",
        [VM_OP_PANIC] = "panic",
        [VM_OP_SNAPSHOT] = "snapshot",
};

static const char *const input_names[_VM_INPUT_MAX] = {
        [VM_INPUT_BEGIN] = "begin",
        [VM_INPUT_REMOVE] = "remove",
        [VM_INPUT_PREEMPT] = "preempt",
        [VM_INPUT_DONE] = "done",
        [VM_INPUT_FAILED] = "failed",
        [VM_INPUT_DEADLINE] = "deadline",
        [VM_INPUT_AGENT_SHUTDOWN_OK] = "agent-shutdown-ok",
        [VM_INPUT_AGENT_SHUTDOWN_FAILED] = "agent-shutdown-failed",
        [VM_INPUT_DOMAIN_STARTED] = "domain-started",
        [VM_INPUT_DOMAIN_STOPPED] = "domain-stopped",
        [VM_INPUT_DOMAIN_CRASHED] = "domain-crashed",
        [VM_INPUT_COLD] = "cold",
};

const char *vm_op_to_string(VMOp op) {
        return (unsigned) op < _VM_OP_MAX ? op_names[op] : NULL;
}

const char *vm_input_to_string(VMInput input) {
        return (unsigned) input < _VM_INPUT_MAX ? input_names[input] : NULL;
}

const char *vm_step_to_string(VMOp op, int step) {
        static const char *const start[] = { "tap", "tap4", "prepare", "template", "create", "restore", "done" };
        static const char *const snapshot[] = { "save", "done" };
        static const char *const kill[] = { "destroy", "done" };
        static const char *const shutdown[] = { "agent",      "acpi",      "acpi-overdue",
                                                "wait-guest", "hard-stop", "done" };
        static const char *const reboot[] = { "request", "done" };
        static const char *const remove[] = { "destroy", "tap", "tap4", "files", "done" };
        static const char *const panic[] = { "destroy", "done" };
        const char *const *names = NULL;
        size_t n = 0;

        if (step == VM_STEP_NEW)
                return "new";
        switch (op) {
        case VM_OP_RESTART:
                if (step == RESTART_DESTROY)
                        return "destroy";
                __attribute__((fallthrough));
        case VM_OP_START:
                names = start, n = ELEMENTSOF(start);
                break;
        case VM_OP_KILL:
                names = kill, n = ELEMENTSOF(kill);
                break;
        case VM_OP_SHUTDOWN:
                names = shutdown, n = ELEMENTSOF(shutdown);
                break;
        case VM_OP_REBOOT:
                names = reboot, n = ELEMENTSOF(reboot);
                break;
        case VM_OP_REMOVE:
                names = remove, n = ELEMENTSOF(remove);
                break;
        case VM_OP_PANIC:
                names = panic, n = ELEMENTSOF(panic);
                break;
        case VM_OP_SNAPSHOT:
                names = snapshot, n = ELEMENTSOF(snapshot);
                break;
        default:
                break;
        }
        return step >= 0 && (size_t) step < n ? names[step] : NULL;
}

/* Whether some row leaves (op, from) on input. */
static bool transition_expected(VMOp op, int from, VMInput input) {
        for (size_t i = 0; i < ELEMENTSOF(transitions); i++)
                if ((transitions[i].ops & OP(op)) && transitions[i].from == from && transitions[i].input == input)
                        return true;
        return false;
}

bool vm_machine_transition_allowed(VMOp op, int from, VMInput input, int to) {
        for (size_t i = 0; i < ELEMENTSOF(transitions); i++)
                if ((transitions[i].ops & OP(op)) && transitions[i].from == from &&
                    transitions[i].input == input && transitions[i].to == to)
                        return true;
        return false;
}

unsigned vm_machine_n_transitions(void) {
        return ELEMENTSOF(transitions);
}

void vm_machine_transition(unsigned i, unsigned *ops, int *from, VMInput *input, int *to) {
        assert(i < ELEMENTSOF(transitions));
        *ops = transitions[i].ops;
        *from = transitions[i].from;
        *input = transitions[i].input;
        *to = transitions[i].to;
}

/* One call of vm_machine_feed(). */
typedef struct Machine {
        VMOp op;
        int step;
        VMInput input;
        VMFacts f;              /* a copy: SET_STATE actions move .state along */
        VMMachineResult *ret;
        bool finished;
} Machine;

static bool state_is_active(VMState s) {
        return s == VM_STARTING || s == VM_RUNNING || s == VM_READY || s == VM_STOPPING;
}

/* Append an action; returns it for its arguments. */
static VMAction *emit(Machine *m, VMActionKind kind) {
        VMAction *a;

        assert(m->ret->n_actions < VM_MACHINE_MAX_ACTIONS);
        a = &m->ret->actions[m->ret->n_actions++];
        *a = (VMAction) { .kind = kind, .failed_state = _VM_STATE_MAX };
        return a;
}

static void set_state(Machine *m, VMState state) {
        emit(m, VM_ACTION_SET_STATE)->state = state;
        m->f.state = state;
}

static void go(Machine *m, int step) {
        m->step = step;
}

static void emit_virt(Machine *m, VirtAction virt, int step) {
        emit(m, VM_ACTION_VIRT)->virt = virt;
        go(m, step);
}

static void emit_tap(Machine *m, VMActionKind kind, enum vmgr_nic nic, int step) {
        emit(m, kind)->nic = nic;
        go(m, step);
}

/* End the operation: the FINISH action with what vm_op_finish() needs to know. */
static void finish(Machine *m, int step, int error, VMFinishReason reason, VMOp by) {
        VMAction *a = emit(m, VM_ACTION_FINISH);

        a->error = error;
        a->reason = reason;
        a->by = by;
        /* A start that failed left no domain running. */
        if (reason != VM_FINISH_OK && (m->op == VM_OP_START || m->op == VM_OP_RESTART) &&
            m->f.state == VM_STARTING)
                a->failed_state = m->f.ever_started ? VM_STOPPED : VM_DEFINED;
        /* A removed VM leaves its group before anyone hears of it. */
        a->unlink = m->op == VM_OP_REMOVE && reason == VM_FINISH_OK;
        /* A removal asked for while this operation ran goes next. */
        a->then_remove = m->f.remove_requested && m->op != VM_OP_REMOVE;
        go(m, step);
        m->finished = true;
}

static void fail_step(Machine *m, int step) {
        finish(m, step, 0, VM_FINISH_STEP_FAILED, VM_OP_NONE);
}

/* Go on with Start's steps at step, passing those with nothing to do. */
static void start_from(Machine *m, StartStep step) {
        switch (step) {
        case START_TAP:
                if (!m->f.tap_created)
                        return emit_tap(m, VM_ACTION_TAP_CREATE, VMGR_NIC_PRIMARY, START_TAP);
                __attribute__((fallthrough));
        case START_TAP4:
                if (m->f.tap4_wanted && !m->f.tap4_created)
                        return emit_tap(m, VM_ACTION_TAP_CREATE, VMGR_NIC_IPV4, START_TAP4);
                __attribute__((fallthrough));
        case START_PREPARE:
                if (!m->f.xml_prepared) {
                        emit(m, VM_ACTION_PREPARE);
                        return go(m, START_PREPARE);
                }
                __attribute__((fallthrough));
        case START_TEMPLATE:
                if (m->f.warm_wanted) {
                        emit(m, VM_ACTION_FIND_SNAPSHOT);
                        return go(m, START_TEMPLATE);
                }
                __attribute__((fallthrough));
        case START_CREATE:
                return emit_virt(m, VIRT_CREATE, START_CREATE);
        case START_RESTORE:
                emit(m, VM_ACTION_RESTORE);
                return go(m, START_RESTORE);
        case START_DONE:
        default:
                emit(m, VM_ACTION_MARK_STARTED);
                if (m->f.state == VM_STARTING)
                        set_state(m, VM_RUNNING);
                return finish(m, START_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
        }
}

/* Start and Restart: bring the domain up. */
static void start_step(Machine *m) {
        switch (m->input) {
        case VM_INPUT_BEGIN:
                if (m->op == VM_OP_RESTART)
                        return emit_virt(m, VIRT_DESTROY, RESTART_DESTROY);
                /* A Start of a VM that runs never gets here (-EALREADY). */
                set_state(m, VM_STARTING);
                return start_from(m, START_TAP);
        case VM_INPUT_DONE:
                switch (m->step) {
                case RESTART_DESTROY:
                        set_state(m, VM_STARTING);
                        return start_from(m, START_TAP);
                case START_TAP:
                        return start_from(m, START_TAP4);
                case START_TAP4:
                        return start_from(m, START_PREPARE);
                case START_PREPARE:
                        return start_from(m, START_TEMPLATE);
                case START_TEMPLATE:
                        return start_from(m, START_RESTORE);
                default:
                        return start_from(m, START_DONE);
                }
        case VM_INPUT_COLD:
                return start_from(m, START_CREATE);
        default:
                return fail_step(m, START_DONE);
        }
}

static void kill_step(Machine *m) {
        switch (m->input) {
        case VM_INPUT_BEGIN:
                set_state(m, VM_STOPPING);
                return emit_virt(m, VIRT_DESTROY, KILL_DESTROY);
        case VM_INPUT_DONE:
                set_state(m, VM_STOPPED);
                return finish(m, KILL_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
        default:
                return fail_step(m, KILL_DONE);
        }
}

/* The guest is gone while Shutdown waited for it: the shutdown is done. */
static void shutdown_stopped(Machine *m) {
        set_state(m, VM_STOPPED);
        finish(m, SHUTDOWN_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
}

static void shutdown_step(Machine *m) {
        switch (m->input) {
        case VM_INPUT_BEGIN:
                if (!state_is_active(m->f.state))
                        return finish(m, SHUTDOWN_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
                set_state(m, VM_STOPPING);
                if (m->f.has_deadline)
                        emit(m, VM_ACTION_ARM_DEADLINE);
                /* A clean power-off: through the guest agent when it is connected
                 * (it works even early in boot, when a power button press is
                 * lost), else ACPI; vm.c answers AGENT_SHUTDOWN_FAILED without an
                 * agent. */
                emit(m, VM_ACTION_AGENT_SHUTDOWN);
                return go(m, SHUTDOWN_AGENT);
        case VM_INPUT_AGENT_SHUTDOWN_OK:
                return go(m, SHUTDOWN_WAIT_GUEST); /* the STOPPED event ends this */
        case VM_INPUT_AGENT_SHUTDOWN_FAILED:
                return emit_virt(m, VIRT_SHUTDOWN, SHUTDOWN_ACPI); /* the agent could not: the power button */
        case VM_INPUT_DONE:
                if (m->step == SHUTDOWN_ACPI)
                        return go(m, SHUTDOWN_WAIT_GUEST); /* the STOPPED event ends this */
                if (m->step == SHUTDOWN_ACPI_OVERDUE)
                        return emit_virt(m, VIRT_DESTROY, SHUTDOWN_HARD_STOP);
                return shutdown_stopped(m);
        case VM_INPUT_DEADLINE:
                /* libvirt's power button call still runs: the hard stop follows it. */
                if (m->step == SHUTDOWN_ACPI)
                        return go(m, SHUTDOWN_ACPI_OVERDUE);
                return emit_virt(m, VIRT_DESTROY, SHUTDOWN_HARD_STOP);
        case VM_INPUT_DOMAIN_STOPPED:
                emit(m, VM_ACTION_DROP_AGENT_SHUTDOWN);
                return shutdown_stopped(m);
        case VM_INPUT_DOMAIN_CRASHED:
                return shutdown_stopped(m);
        default:
                return fail_step(m, SHUTDOWN_DONE);
        }
}

static void reboot_step(Machine *m) {
        switch (m->input) {
        case VM_INPUT_BEGIN:
                if (!state_is_active(m->f.state))
                        return finish(m, REBOOT_DONE, -ESRCH, VM_FINISH_NOT_RUNNING, VM_OP_NONE);
                emit(m, VM_ACTION_REBOOT_REQUESTED);
                return emit_virt(m, VIRT_REBOOT, REBOOT_REQUEST);
        case VM_INPUT_DONE:
                return finish(m, REBOOT_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
        default:
                return fail_step(m, REBOOT_DONE);
        }
}

static void panic_step(Machine *m) {
        switch (m->input) {
        case VM_INPUT_BEGIN:
                if (!state_is_active(m->f.state))
                        return finish(m, PANIC_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
                /* WaitReady fails from here on (vm-ready.c); "crashed" once the
                 * domain is gone, so that Start works at once. libvirt destroys
                 * it too after a pvpanic event (on_crash), and our destroy waits
                 * for that: QEMU took about 1.5 s to exit under TCG. */
                emit(m, VM_ACTION_NOTE_PANICKED);
                set_state(m, VM_STOPPING);
                return emit_virt(m, VIRT_DESTROY, PANIC_DESTROY);
        case VM_INPUT_DONE:
                set_state(m, VM_CRASHED);
                return finish(m, PANIC_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
        default:
                set_state(m, VM_CRASHED);
                return fail_step(m, PANIC_DONE);
        }
}

/* Snapshot: the VM is stopped, saved and goes on, all in the SAVE step's
 * work; its state does not change. */
static void snapshot_step(Machine *m) {
        switch (m->input) {
        case VM_INPUT_BEGIN:
                if (m->f.state != VM_RUNNING && m->f.state != VM_READY)
                        return finish(m, SNAPSHOT_DONE, -ESRCH, VM_FINISH_NOT_RUNNING, VM_OP_NONE);
                emit(m, VM_ACTION_SAVE);
                return go(m, SNAPSHOT_SAVE);
        case VM_INPUT_DONE:
                return finish(m, SNAPSHOT_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
        default:
                return fail_step(m, SNAPSHOT_DONE);
        }
}

/* Go on with Remove's steps at step, passing those with nothing to do. */
static void remove_from(Machine *m, RemoveStep step) {
        switch (step) {
        case REMOVE_DESTROY:
                if (state_is_active(m->f.state) || m->f.state == VM_CRASHED) {
                        set_state(m, VM_STOPPING);
                        return emit_virt(m, VIRT_DESTROY, REMOVE_DESTROY);
                }
                __attribute__((fallthrough));
        case REMOVE_TAP:
                if (m->f.state != VM_DEFINED)
                        set_state(m, VM_STOPPED);
                if (m->f.tap_created)
                        return emit_tap(m, VM_ACTION_TAP_DELETE, VMGR_NIC_PRIMARY, REMOVE_TAP);
                __attribute__((fallthrough));
        case REMOVE_TAP4:
                if (m->f.tap4_created)
                        return emit_tap(m, VM_ACTION_TAP_DELETE, VMGR_NIC_IPV4, REMOVE_TAP4);
                __attribute__((fallthrough));
        case REMOVE_FILES:
                /* The caller hears "done" only once the files are gone. */
                emit(m, VM_ACTION_REMOVE_FILES);
                return go(m, REMOVE_FILES);
        case REMOVE_DONE:
        default:
                return finish(m, REMOVE_DONE, 0, VM_FINISH_OK, VM_OP_NONE);
        }
}

static void remove_step(Machine *m) {
        switch (m->input) {
        case VM_INPUT_BEGIN:
                return remove_from(m, REMOVE_DESTROY);
        case VM_INPUT_DONE:
                switch (m->step) {
                case REMOVE_DESTROY:
                        return remove_from(m, REMOVE_TAP);
                case REMOVE_TAP:
                        return remove_from(m, REMOVE_TAP4);
                case REMOVE_TAP4:
                        return remove_from(m, REMOVE_FILES);
                default:
                        return remove_from(m, REMOVE_DONE);
                }
        default:
                return fail_step(m, REMOVE_DONE);
        }
}

/* Hand the input to the op in flight if its step expects it. */
static void op_step(Machine *m) {
        int from = m->step;

        if (m->op == VM_OP_NONE || !transition_expected(m->op, from, m->input))
                return;
        switch (m->op) {
        case VM_OP_START:
        case VM_OP_RESTART:
                start_step(m);
                break;
        case VM_OP_KILL:
                kill_step(m);
                break;
        case VM_OP_SHUTDOWN:
                shutdown_step(m);
                break;
        case VM_OP_REBOOT:
                reboot_step(m);
                break;
        case VM_OP_REMOVE:
                remove_step(m);
                break;
        case VM_OP_PANIC:
                panic_step(m);
                break;
        case VM_OP_SNAPSHOT:
                snapshot_step(m);
                break;
        default:
                break;
        }
        assert(vm_machine_transition_allowed(m->op, from, m->input, m->step));
}

/* A clean shutdown that is still waiting for the guest, or for libvirt's
 * power button call, gives way to a hard stop: the guest may never act on the
 * power button (one pressed early in boot is lost), and Kill, removal and
 * vmgrd's own exit must still work. That call's late answer is dropped (its
 * op_seq is over); only a Shutdown already destroying the domain
 * (HARD_STOP) keeps going, and Kill then finds it Busy. */
static void preempt(Machine *m, VMOp by) {
        int from = m->step;

        emit(m, VM_ACTION_DROP_AGENT_SHUTDOWN);
        if (m->op == VM_OP_SHUTDOWN && transition_expected(m->op, from, VM_INPUT_PREEMPT)) {
                finish(m, SHUTDOWN_DONE, -ECANCELED, VM_FINISH_CUT_SHORT, by);
                assert(vm_machine_transition_allowed(m->op, from, VM_INPUT_PREEMPT, m->step));
        }
}

bool vm_machine_preempts(VMOp op) {
        return op == VM_OP_KILL || op == VM_OP_REMOVE || op == VM_OP_PANIC;
}

int vm_machine_feed(VMOp op, int step, const VMFacts *facts, VMInput input, VMOp arg, VMMachineResult *ret) {
        Machine m = { .op = op, .step = step, .input = input, .f = *facts, .ret = ret };

        *ret = (VMMachineResult) { .op = op, .step = step };
        if ((input == VM_INPUT_DONE || input == VM_INPUT_FAILED) && facts->input_seq != facts->op_seq)
                return -ESTALE;
        switch (input) {
        case VM_INPUT_BEGIN:
                if (op != VM_OP_NONE)
                        return -VMGR_ERR_BUSY;
                /* Refused, not "done": a caller who asks to start a VM that
                 * runs expects a fresh boot, and Restart is what gives one. */
                if (arg == VM_OP_START && state_is_active(facts->state))
                        return -EALREADY;
                m.op = arg;
                m.step = VM_STEP_NEW;
                op_step(&m);
                break;

        case VM_INPUT_REMOVE:
                if (op == VM_OP_REMOVE || facts->remove_requested)
                        return -VMGR_ERR_BUSY;
                m.input = VM_INPUT_PREEMPT;
                preempt(&m, VM_OP_REMOVE);
                emit(&m, op == VM_OP_NONE || m.finished ? VM_ACTION_BEGIN_REMOVE : VM_ACTION_QUEUE_REMOVE);
                break;

        case VM_INPUT_PREEMPT:
                preempt(&m, arg);
                break;

        case VM_INPUT_DOMAIN_STARTED:
                if (m.f.state == VM_STARTING || m.f.state == VM_STOPPED || m.f.state == VM_CRASHED ||
                    m.f.state == VM_DEFINED)
                        set_state(&m, VM_RUNNING);
                break;

        case VM_INPUT_DOMAIN_STOPPED:
                op_step(&m);
                /* A snapshot's save then fails by itself; the VM is stopped meanwhile. */
                if (!m.finished && (op == VM_OP_NONE || op == VM_OP_SNAPSHOT) && state_is_active(m.f.state)) {
                        emit(&m, VM_ACTION_NOTE_STOPPED);
                        set_state(&m, VM_STOPPED);
                }
                break;

        case VM_INPUT_DOMAIN_CRASHED:
                /* After a panic libvirt reports the crash too (on_crash destroys the
                 * domain): LastError keeps the panic's message. */
                if (!m.f.panicked)
                        emit(&m, VM_ACTION_NOTE_CRASHED);
                op_step(&m);
                /* Other operations see to the state themselves. */
                if (m.finished || op == VM_OP_NONE || op == VM_OP_SHUTDOWN || op == VM_OP_SNAPSHOT)
                        set_state(&m, VM_CRASHED);
                break;

        default:
                op_step(&m);
                break;
        }
        ret->op = m.op;
        ret->step = m.step;
        return 0;
}
