/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The decisions behind a VM's operations (Start, Kill, Shutdown, Reboot,
 * Restart, Remove, and Panic, which vmgrd begins itself when the guest's
 * kernel panicked), apart from their execution: given the operation in
 * flight, its step, what is known of the VM and an input (a caller's request,
 * a finished step, the shutdown deadline, the agent's answer, a libvirt
 * event), vm_machine_feed() says which step comes next and which actions
 * vm.c must take, in order. It calls nothing and changes nothing else, so the
 * unit test drives it with made-up completions.
 *
 * Every step change it makes is a row of the transition table in
 * vm-machine.c, which is where to check what can follow what.
 */

#include <stdbool.h>
#include <stdint.h>

#include "netadm-proto.h"
#include "vm.h"

/* The steps of each operation: the step names the work in flight, *_DONE
 * that the operation finished (well or not). */
typedef enum StartStep {
        START_TAP,              /* the helper makes the primary TAP */
        START_TAP4,             /* ... and the IPv4 one */
        START_PREPARE,          /* disks and domain XML, on the pool */
        START_TEMPLATE,         /* warm start: find (or wait for) the snapshot to restore */
        START_CREATE,           /* libvirt creates the domain (a cold boot) */
        START_RESTORE,          /* ... or a clone's, which takes the snapshot's state */
        START_DONE,
        _START_STEP_MAX,
} StartStep;

/* Restart destroys the domain, then goes on with Start's steps (StartStep). */
typedef enum RestartStep {
        RESTART_DESTROY = _START_STEP_MAX,
} RestartStep;

typedef enum KillStep {
        KILL_DESTROY,
        KILL_DONE,
} KillStep;

typedef enum ShutdownStep {
        SHUTDOWN_AGENT,         /* the guest agent was asked to power off */
        SHUTDOWN_ACPI,          /* libvirt presses the power button */
        SHUTDOWN_ACPI_OVERDUE,  /* ... and the deadline passed meanwhile */
        SHUTDOWN_WAIT_GUEST,    /* the guest shuts down; its STOPPED event ends this */
        SHUTDOWN_HARD_STOP,     /* the deadline passed: libvirt destroys the domain */
        SHUTDOWN_DONE,
} ShutdownStep;

typedef enum RebootStep {
        REBOOT_REQUEST,
        REBOOT_DONE,
} RebootStep;

/* The guest panicked (vm-panic.c): the domain destroyed, the VM crashed. */
typedef enum PanicStep {
        PANIC_DESTROY,
        PANIC_DONE,
} PanicStep;

typedef enum RemoveStep {
        REMOVE_DESTROY,
        REMOVE_TAP,
        REMOVE_TAP4,
        REMOVE_FILES,           /* the VM's directory goes, on the pool */
        REMOVE_DONE,
} RemoveStep;

/* Snapshot: the VM is saved (memory, devices, disks) and goes on. */
typedef enum SnapshotStep {
        SNAPSHOT_SAVE,
        SNAPSHOT_DONE,
} SnapshotStep;

/* The step before BEGIN: no operation yet. */
#define VM_STEP_NEW (-1)

typedef enum VMInput {
        VM_INPUT_BEGIN,                 /* vm_operation(): start op (arg) */
        VM_INPUT_REMOVE,                /* vm_remove(): remove now, or after the op in flight */
        VM_INPUT_PREEMPT,               /* Kill or Remove (arg) arrives: a waiting Shutdown gives way */
        VM_INPUT_DONE,                  /* the step's work succeeded */
        VM_INPUT_FAILED,                /* ... failed, or could not be started */
        VM_INPUT_DEADLINE,              /* Shutdown's timeout passed */
        VM_INPUT_AGENT_SHUTDOWN_OK,     /* the agent powers the guest off */
        VM_INPUT_AGENT_SHUTDOWN_FAILED, /* ... could not (or no agent) */
        VM_INPUT_DOMAIN_STARTED,        /* libvirt's events */
        VM_INPUT_DOMAIN_STOPPED,
        VM_INPUT_DOMAIN_CRASHED,
        VM_INPUT_COLD,                  /* no snapshot to restore (or the restore failed): boot cold */
        _VM_INPUT_MAX,
} VMInput;

typedef enum VirtAction {
        VIRT_CREATE,
        VIRT_DESTROY,
        VIRT_SHUTDOWN,
        VIRT_REBOOT,
} VirtAction;

typedef enum VMActionKind {
        VM_ACTION_SET_STATE,            /* .state */
        VM_ACTION_MARK_STARTED,         /* a domain ran at least once */
        VM_ACTION_TAP_CREATE,           /* .nic, through the helper */
        VM_ACTION_TAP_DELETE,           /* .nic */
        VM_ACTION_PREPARE,              /* disks and XML on the pool */
        VM_ACTION_VIRT,                 /* .virt on libvirt's thread */
        VM_ACTION_FIND_SNAPSHOT,        /* the VM's template or from_snapshot: DONE to restore, COLD */
        VM_ACTION_RESTORE,              /* the clone's domain takes the snapshot's state */
        VM_ACTION_SAVE,                 /* save the running VM into a snapshot */
        VM_ACTION_AGENT_SHUTDOWN,       /* ask the agent to power off */
        VM_ACTION_DROP_AGENT_SHUTDOWN,  /* forget that request */
        VM_ACTION_ARM_DEADLINE,         /* Shutdown's timer */
        VM_ACTION_REBOOT_REQUESTED,     /* readiness: the boot is going away */
        VM_ACTION_NOTE_STOPPED,         /* log that the guest stopped by itself */
        VM_ACTION_NOTE_CRASHED,         /* log the crash and set LastError */
        VM_ACTION_NOTE_PANICKED,        /* log the guest's panic and set LastError (vm_panic_note()) */
        VM_ACTION_REMOVE_FILES,         /* the VM's directory, on the pool */
        VM_ACTION_QUEUE_REMOVE,         /* remove once the op in flight is done */
        VM_ACTION_BEGIN_REMOVE,         /* start Remove now */
        VM_ACTION_FINISH,               /* end the op: .error, .reason, ... */
        _VM_ACTION_KIND_MAX,
} VMActionKind;

/* Why an operation finished. */
typedef enum VMFinishReason {
        VM_FINISH_OK,
        VM_FINISH_STEP_FAILED,          /* the error of the step's work */
        VM_FINISH_NOT_RUNNING,          /* -ESRCH: Reboot of a VM that does not run */
        VM_FINISH_CUT_SHORT,            /* -ECANCELED: Shutdown gave way to .by */
} VMFinishReason;

typedef struct VMAction {
        VMActionKind kind;
        VMState state;                  /* SET_STATE */
        enum vmgr_nic nic;              /* TAP_* */
        VirtAction virt;                /* VIRT */
        /* FINISH: */
        int error;                      /* 0, or -errno for the reasons with their own */
        VMFinishReason reason;
        VMOp by;                        /* CUT_SHORT: the op that cut it */
        VMState failed_state;           /* the state a failed start leaves, _VM_STATE_MAX: none */
        bool unlink;                    /* a removal that succeeded: the VM leaves its group */
        bool then_remove;               /* a removal waits: start it */
} VMAction;

#define VM_MACHINE_MAX_ACTIONS 8

/* What the machine knows of the VM besides its op and step. */
typedef struct VMFacts {
        VMState state;
        bool ever_started;
        bool tap_created;
        bool tap4_wanted;               /* the spec asks for an IPv4 NIC */
        bool tap4_created;
        bool xml_prepared;
        bool warm_wanted;               /* this start may restore a snapshot (vm-snapshot.c) */
        bool has_deadline;              /* Shutdown got a timeout */
        bool remove_requested;
        bool panicked;                  /* the guest panicked since its start: LastError says so */
        /* Which operation is which: vm.c numbers each at its BEGIN. A DONE or
         * FAILED of a call an earlier operation made (it finished while the
         * call was out) must not move the one in flight now. */
        uint64_t op_seq;                /* the number of the op in flight */
        uint64_t input_seq;             /* DONE, FAILED: the number of the op that made the call */
} VMFacts;

typedef struct VMMachineResult {
        VMOp op;                        /* the op in flight (set by BEGIN) */
        int step;                       /* its step now */
        VMAction actions[VM_MACHINE_MAX_ACTIONS];
        unsigned n_actions;
} VMMachineResult;

/* Feed input (arg: the op of BEGIN and PREEMPT) to a VM running op at step.
 * Fills *ret with the next op and step and the actions to take in order; an
 * input the current step does not expect yields none. After a FINISH action
 * the op is over; actions after it apply only if no other op began.
 * Returns 0, -VMGR_ERR_BUSY (no actions) for a BEGIN while an op runs or a
 * REMOVE while a removal is under way or waiting, -EALREADY (no actions) for
 * a BEGIN of Start while the VM runs (starting, running, ready, stopping),
 * or -ESTALE (no actions, op
 * and step as they were) for a DONE or FAILED whose facts->input_seq is not
 * facts->op_seq: the completion of an operation that is over. */
int vm_machine_feed(VMOp op, int step, const VMFacts *facts, VMInput input, VMOp arg, VMMachineResult *ret);

/* Whether op cuts a waiting Shutdown short (feed PREEMPT before its BEGIN). */
bool vm_machine_preempts(VMOp op);

/* Names for logs and tests; NULL for an unknown value. */
const char *vm_input_to_string(VMInput input);
const char *vm_step_to_string(VMOp op, int step);
const char *vm_op_to_string(VMOp op);

/* Whether the transition table has the row (op, from, input) -> to. */
bool vm_machine_transition_allowed(VMOp op, int from, VMInput input, int to);
/* The number of rows in the table, and row i (for the tests: every row is taken). */
unsigned vm_machine_n_transitions(void);
void vm_machine_transition(unsigned i, unsigned *ops, int *from, VMInput *input, int *to);
