/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A VM of a group: a transient libvirt domain on the group's bridge through
 * TAPs the helper made, with a qcow2 overlay (or the default guest's direct
 * kernel boot) and its console in a file that survives restarts.
 *
 * Operations run one at a time per VM; each is a chain of asynchronous steps
 * (helper calls, pool jobs, libvirt calls) and replies to its caller at the
 * end. Which step follows which is decided in vm-machine.c (its transition
 * table lists them all); vm.c carries the steps out. An operation in flight
 * holds a reference on the VM.
 */

#include <regex.h>
#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "addressing.h"
#include "macro.h"
#include "netadm-proto.h"
#include "spec.h"
#include "virt.h"

typedef struct Group Group;
typedef struct VM VM;
typedef struct AgentSession AgentSession;
typedef struct AgentJob AgentJob;
typedef struct ReadyWaiter ReadyWaiter;
typedef struct ConsoleFollower ConsoleFollower;
typedef struct JournalFollower JournalFollower;
typedef struct HostProbe HostProbe;
typedef struct SnapshotBuild SnapshotBuild;

/* What a VM goes through on its way to "ready", in order (vm-ready.c). */
typedef enum VMStage {
        VM_STAGE_QEMU_STARTED,
        VM_STAGE_RESTORED,              /* a clone: QEMU took its snapshot's state and runs */
        VM_STAGE_AGENT_CONNECTED,
        VM_STAGE_IDENTITY_APPLIED,      /* a clone: the agent applied its own identity */
        VM_STAGE_IPV6_CONFIGURED,
        VM_STAGE_IPV4_LEASED,
        VM_STAGE_PROBE_PASSED,
        VM_STAGE_HOST_PROBE_PASSED,
        VM_STAGE_CONSOLE_MATCHED,
        VM_STAGE_READY,
        _VM_STAGE_MAX,
} VMStage;

#define VM_STAGE_NOT_YET UINT64_MAX

typedef enum VMState {
        VM_DEFINED,
        VM_STARTING,
        VM_RUNNING,
        VM_READY,
        VM_STOPPING,
        VM_STOPPED,
        VM_CRASHED,
        _VM_STATE_MAX,
} VMState;

typedef enum VMOp {
        VM_OP_NONE,
        VM_OP_START,
        VM_OP_KILL,
        VM_OP_SHUTDOWN,
        VM_OP_REBOOT,
        VM_OP_RESTART,
        VM_OP_REMOVE,
        VM_OP_PANIC,            /* the guest panicked: its domain goes (vm-panic.c), no caller */
        VM_OP_SNAPSHOT,         /* save the running VM as a snapshot (vm-snapshot.c); it goes on */
        _VM_OP_MAX,
} VMOp;

/* Called when a VM's operation finished (error 0 or negative), for the group
 * that waits on it (creation, removal). */
typedef void (*vm_op_done_t)(VM *vm, int error, const char *message, void *userdata);

struct VM {
        unsigned n_ref;
        Group *group;                   /* NULL once removed */
        VM *next, *prev;

        char *name;
        char *object_path;
        char *domain_name;
        char uuid[37];
        VmgrVMSpec spec;
        struct vmgr_vm_addrs addrs;
        VMState state;

        char *spec_path;                /* "vms[N]." when it came from CreateGroup's spec, for messages */
        char *spec_json;                /* its own spec as JSON, for the state file (group-state.c) */
        bool adopting;                  /* adopted: keep the timings until the agent answers again */
        /* For the state file: an AddVM not answered yet, a removal begun.
         * A vmgrd that adopts the group finishes the removal of either. */
        bool adding, removing;
        sd_bus_message *add_call;       /* AddVM's, until the state file lists the VM (group.c) */
        uint64_t add_seq;               /* the group's files job whose state lists it */
        char *dir;                      /* <state>/groups/<g>/vms/<vm>: disks, console.log */
        char *console_log;
        ConsoleFollower *console;       /* its lines into the group's log, once QEMU made the file */
        char *agent_socket;
        char *xml;                      /* domain XML, made once */
        char *ipv4;                     /* leased address, "" until known */
        char *last_error;               /* why the last operation or the guest failed */

        bool tap_created, tap4_created;
        bool ever_started;              /* a domain ran at least once */

        /* The guest kernel's panic (vm-panic.c), once per boot. */
        bool panicked;                  /* seen since the last start */
        bool panic_pending;             /* its domain goes once the op in flight is done */
        char panic_message[256];        /* "guest kernel panicked: ...", for LastError */

        /* The operation in flight. */
        VMOp op;
        uint64_t op_seq;                /* its number: each call it makes carries it, and a late
                                         * completion of an earlier op is dropped (vm-machine.h) */
        Group *op_group;                /* reference held while it runs */
        int op_step;                    /* a StartStep, ShutdownStep, ... of op (vm-machine.h) */
        int op_error;                   /* why the step failed, for the machine's FINISH */
        char op_message[512];
        sd_bus_message *op_call;        /* caller to reply to, may be NULL */
        vm_op_done_t op_done;           /* internal waiter, may be NULL */
        void *op_userdata;
        uint64_t op_timeout_usec;       /* Shutdown's deadline */
        sd_event_source *op_timer;

        /* Kill, Shutdown, Reboot or Restart asked for while a snapshot is
         * being saved (a template's save, when the VM first gets its
         * address, takes under a second): it begins once the save is done,
         * instead of failing with Busy for a caller who cannot know. */
        VMOp queued_op;
        uint64_t queued_timeout_usec;
        sd_bus_message *queued_call;
        vm_op_done_t queued_done;
        void *queued_userdata;

        bool remove_requested;          /* remove once the operation in flight is done */
        vm_op_done_t remove_done;
        void *remove_userdata;

        /* The guest agent and readiness (vm-ready.c). */
        AgentSession *agent;
        uint64_t start_usec;            /* CLOCK_MONOTONIC when the last start began */
        uint64_t timings[_VM_STAGE_MAX]; /* usec since start_usec, or VM_STAGE_NOT_YET */
        AgentJob *probe_job;
        sd_event_source *probe_timer;
        HostProbe *address_probe;       /* without the agent: does the derived IPv6 answer? */
        HostProbe *host_probe;          /* the spec's ready_probe_host */
        regex_t *console_regex;         /* the spec's ready_console, compiled once */
        bool reset_pending;             /* without the agent: Reboot asked, libvirt has not seen the reset */
        ReadyWaiter *ready_waiters;
        AgentJob *shutdown_job;         /* clean power-off through the agent */
        char stale_boot_id[40];         /* after Reboot: the boot that is going away */
        unsigned n_guest_execs;         /* Exec processes (guest-exec.c) */
        unsigned guest_exec_counter;    /* the last process id given out */

        /* Warm start (vm-snapshot.c). */
        char shape[65];                 /* its shape's hash; "" when it has none (no warm start) */
        char *restore_xml;              /* a clone's domain XML: QEMU waits for the snapshot's state */
        int restore_fd;                 /* that state, from FIND_SNAPSHOT to RESTORE */
        SnapshotBuild *template_build;  /* it boots cold to build its shape's template when ready */
        bool template_saving;           /* ... and is being saved: not ready yet */
        sd_event_source *template_timer; /* waiting for a template being built */
        uint64_t template_wait_usec;    /* since when (CLOCK_MONOTONIC) */
        uint64_t template_wait_seq;     /* the op that waits */
        char *snapshot_name;            /* Snapshot op: the user snapshot's name; NULL: the template */
        bool restored;                  /* this start restored a snapshot: it takes its own identity */
        /* Adopted paused in a save and resumed (adopt.c): if its agent does
         * not answer in AGENT_RECHECK_USEC, its channel is opened again. */
        bool resumed_at_adoption;
        sd_event_source *agent_recheck_timer;
        bool identity_sent;
        bool identity_verify;           /* adopted with its identity applied: does the guest still have it? */
        /* A clone's NICs stay down on QEMU's side from the restore until the
         * agent has applied its identity: until then its guest has the
         * template's MACs. */
        bool links_up, links_job;
        AgentJob *dhcp_kick_job;        /* then its DHCP client is asked to hurry */
        uint8_t generation[16];         /* the identity's: only INFOs echoing it count for readiness */
        AgentJob *identity_job;

        /* Spec "journal": "gatewayd" (journal-follow.c). */
        JournalFollower *journal;       /* while QEMU runs */
        char *journal_cursor;           /* where it resumes: kept while QEMU is down, and in the state file */
        sd_event_source *journal_save_timer; /* a state write soon after new entries */
};

const char *vm_state_to_string(VMState s);

/* Set the state and emit PropertiesChanged. */
void vm_set_state(VM *vm, VMState state);
/* Set LastError (message: one sentence; NULL or "" clears it) and say so on the bus. */
void vm_set_error(VM *vm, const char *message);

/* Make a VM object in state "defined" and add it to the group. spec is moved
 * in (zeroed on success). Returns 0 or -errno / -VMGR_ERR_*. */
int vm_new(Group *g, VmgrVMSpec *spec, VM **ret);

/* A restarted vmgrd's VM from the group's state file: made as vm_new()
 * does, with what was made for it before taken as made (TAPs, disks,
 * domain XML), its timings and LastError restored. It stays "defined"
 * until vm_adopt_domain(). unfinished: the dead vmgrd was adding or
 * removing it. spec is moved in. Returns 0 or -errno. */
int vm_adopt(Group *g, VmgrVMSpec *spec, const char *spec_json, const char *state, uint64_t start_usec,
             const uint64_t timings[], const char *last_error, bool unfinished, VM **ret);

/* libvirt says whether an adopted VM's domain runs: running, it is followed
 * again (console, agent, readiness); not running, it is "crashed" (it was
 * running) or keeps the state it had, with LastError saying so. A VM whose
 * AddVM or removal the dead vmgrd did not finish is removed: returns 1 and
 * calls removed(userdata) once it is gone; otherwise returns 0. */
int vm_adopt_domain(VM *vm, bool running, vm_op_done_t removed, void *userdata);

VM *vm_ref(VM *vm);
VM *vm_unref(VM *vm);
static inline void vm_unrefp(VM **vm) {
        vm_unref(*vm);
}

/* Start an operation. call (may be NULL) gets the reply; done (may be NULL)
 * is called when it finished. Returns 0 if started, -VMGR_ERR_BUSY when
 * another operation is in flight, other -errno on failure to start. */
int vm_operation(VM *vm, VMOp op, uint64_t timeout_usec, sd_bus_message *call, vm_op_done_t done,
                 void *userdata);

/* The work of the op numbered seq (vm->op_seq when it began) is done, or
 * failed (the op fails with the message), or found no snapshot to restore
 * (the VM boots cold): the machine goes on if that op is still in flight. */
void vm_op_step_done(VM *vm, uint64_t seq);
_printf_(4, 5) void vm_op_fail(VM *vm, uint64_t seq, int error, const char *fmt, ...);
void vm_op_cold(VM *vm, uint64_t seq);

/* The guest's hostname for a VM name: [A-Za-z0-9.-]. */
void vm_hostname(const char *name, char *buf, size_t size);

/* Remove the VM: its domain destroyed, TAPs and files deleted, the object gone.
 * If an operation is in flight, removal follows it. done (may be NULL) is
 * called at the end. Returns 0, or -VMGR_ERR_BUSY if a removal is already
 * under way. */
int vm_remove(VM *vm, vm_op_done_t done, void *userdata);

/* Domain events, routed by the manager. */
void vm_domain_event(VM *vm, VirtDomainEvent event, const char *why);

/* A guest kernel panic (vm-panic.c): the VM becomes "crashed" with
 * LastError "guest kernel panicked: MESSAGE" and its domain is destroyed.
 * Seen on a console line (len bytes, stripped of terminal controls): */
void vm_panic_console_line(VM *vm, const char *line, size_t len);
/* ... or through pvpanic (libvirt's CRASHED event, detail PANICKED): */
void vm_panic_pvpanic(VM *vm);
/* The LastError and log line of the panic (the machine's NOTE_PANICKED). */
void vm_panic_note(VM *vm);
/* An operation finished: a panic that had to wait for it goes on. */
void vm_panic_op_finished(VM *vm);

/* Re-read the IPv4 lease from the group's dnsmasq leases. */
void vm_update_ipv4(VM *vm);

/* Readiness (vm-ready.c). */
/* VM.Snapshot(name): save the running VM as user snapshot name (memory,
 * devices, disks); it goes on running. Replies to call when done (or fails
 * it). Returns 0 once the operation is under way or call was answered
 * with why it cannot be (not ready: Busy; no agent, or started cold only),
 * or -errno with nothing sent (vm-snapshot.c). */
int vm_snapshot_create(VM *vm, const char *name, sd_bus_message *call);

const char *vm_stage_to_string(VMStage stage);
/* Whether a VM of this spec goes through stage (agent_connected only with
 * the agent, probe stages only with their probe, ...). */
bool vm_stage_applies(const VmgrVMSpec *spec, VMStage stage);
/* The first stage that applies and is not in timings (VM_STAGE_NOT_YET), or
 * VM_STAGE_READY if there is none. */
VMStage vm_stage_missing(const VmgrVMSpec *spec, const uint64_t timings[]);
/* Follow a state change: timings, the agent connection, waiters. */
void vm_ready_state_changed(VM *vm, VMState old);
/* Something readiness depends on changed (the IPv4 lease). */
void vm_ready_evaluate(VM *vm);
/* The guest was asked to reboot: not ready until a new boot's agent answers
 * (without the agent: until libvirt saw the reset, then the new boot passes
 * the stages again). */
void vm_ready_reboot_requested(VM *vm);
/* Forget a clone's identity: a new start, or its guest reboots (a boot of
 * its own, whose agent knows no generation). */
void vm_identity_forget(VM *vm);
/* libvirt saw the guest reset (a reboot, asked for or the guest's own). */
void vm_ready_guest_reset(VM *vm);
/* Free what readiness holds (the VM is being freed). */
void vm_ready_done(VM *vm);

/* The VM has left g (it was removed): its WaitReady callers fail with
 * NoSuchVM, and g's are answered if every VM left is ready. */
void vm_ready_unlinked(VM *vm, Group *g);
/* Reply to call once the VM is ready, or with Timeout after timeout_usec
 * (0: no limit). Returns 0 or -errno. */
int vm_wait_ready(VM *vm, sd_bus_message *call, uint64_t timeout_usec);

/* Bus face (vm-dbus.c). */
extern const sd_bus_vtable vm_vtable[];
int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error);
int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
int vm_emit_changed(VM *vm, const char *property, ...);
