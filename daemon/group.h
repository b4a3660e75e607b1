/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "addressing.h"
#include "manager.h"
#include "spec.h"

typedef struct Dnsmasq Dnsmasq;
typedef struct GroupLog GroupLog;
typedef struct FileServer FileServer;
typedef struct Forward Forward;
typedef struct VM VM;
typedef struct ReadyWaiter ReadyWaiter;
typedef struct GroupFilesJob GroupFilesJob;

typedef enum GroupState {
        GROUP_CREATING,
        GROUP_RUNNING,
        GROUP_DELETING,
        GROUP_FAILED,
        _GROUP_STATE_MAX,
} GroupState;

/* What a group goes through while it is created, in order. */
typedef enum GroupStage {
        GROUP_STAGE_NETWORK_CREATED,
        GROUP_STAGE_DNSMASQ_READY,
        GROUP_STAGE_VMS_STARTED,
        GROUP_STAGE_RUNNING,
        _GROUP_STAGE_MAX,
} GroupStage;

#define GROUP_STAGE_NOT_YET UINT64_MAX

struct Group {
        unsigned n_ref;
        Manager *manager;               /* NULL once removed from the manager */
        Group *next, *prev;

        char *name;
        char *object_path;
        char *spec_json;
        VmgrSpec *spec;
        struct vmgr_group_addrs addrs;
        GroupState state;

        char *runtime_dir;              /* <runtime>/groups/<name> */
        char *state_file;               /* <state>/groups/<name>.json */
        char *state_subdir;             /* <state>/groups/<name>/: VM disks and consoles */

        Dnsmasq *dnsmasq;
        GroupLog *log;                  /* every line of the group's VMs and of vmgrd about it (grouplog.h) */
        FileServer *fileserver;         /* HTTP on the files address while the network is up */
        Forward *forwards;              /* port forwards to its VMs (forward.h), newest first */
        unsigned n_forwards;
        VM *vms;                        /* list, newest first */
        unsigned n_vms;
        unsigned vms_pending;           /* VM operations the group waits for */
        int vms_error;                  /* the first failure among them */
        char vms_message[512];
        bool network_created;           /* the helper made the network */
        bool network_deleting;          /* a GROUP_DELETE is out (teardown) */
        bool dnsmasq_down;              /* teardown: dnsmasq has stopped */
        bool dnsmasq_early;             /* GROUP_START started dnsmasq with the network */
        int files_error;                /* making the state directory or log failed while the helper worked */
        GroupFilesJob *files_jobs;      /* state writes and file removal, in order; the first is on the pool */
        uint64_t files_queued, files_done; /* how many such jobs were queued, and finished */

        sd_bus_message *create_call;    /* pending CreateGroup, replied when running or undone */
        int create_error;               /* why creation failed, replied once undone */
        char *create_message;
        sd_bus_message **delete_calls;  /* pending Delete/DeleteGroup calls */
        size_t n_delete_calls;
        bool delete_requested;          /* delete once creation has finished */
        bool collected;                 /* collect_on_delete was done (or tried) */
        ReadyWaiter *ready_waiters;     /* pending WaitReady calls (vm-ready.c) */

        /* What a restarted vmgrd took over (group-state.c), for its log line. */
        bool adopting;                  /* until libvirt said which of its domains run */
        unsigned adopted_files, adopted_forwards;
        int adopted_dnsmasq_pid;

        uint64_t created_usec;          /* CLOCK_REALTIME */
        uint64_t start_usec;            /* CLOCK_MONOTONIC when creation began */
        uint64_t timings[_GROUP_STAGE_MAX]; /* usec since start_usec, or GROUP_STAGE_NOT_YET */
};

const char *group_stage_to_string(GroupStage stage);
/* Record that a stage completed now and emit PropertiesChanged for Timings. */
void group_stage_mark(Group *g, GroupStage stage);

const char *group_state_to_string(GroupState s);

/* Make a group object in state "creating" and add it to the manager.
 * Returns 0 or -VMGR_ERR_* / -errno; error (if set) describes a refusal. */
int group_new(Manager *m, const char *name, const char *spec_json, VmgrSpec *spec, Group **ret,
              sd_bus_error *error);

Group *group_ref(Group *g);
Group *group_unref(Group *g);
static inline void group_unrefp(Group **g) {
        group_unref(*g);
}

/* Create the network and dnsmasq; reply to call (may be NULL) when done.
 * Returns 0 if started (the reply comes later), -errno otherwise. */
int group_start(Group *g, sd_bus_message *call);

/* Tear the group down and reply to call (may be NULL) when it is gone. */
int group_delete(Group *g, sd_bus_message *call);

/* Set the state and emit PropertiesChanged. */
void group_set_state(Group *g, GroupState state);

/* Add a VM to a running group and start it; reply to call with its path.
 * spec is moved in. Returns 0 (reply later) or -errno / -VMGR_ERR_*. */
int group_add_vm(Group *g, VmgrVMSpec *spec, const char *spec_json, sd_bus_message *call);

/* Remove one VM; reply to call when it is gone. */
int group_remove_vm(Group *g, VM *vm, sd_bus_message *call);

/* The group's directories and its log (an adopted group; group_start()
 * makes them in two steps). Returns 0 or -errno. */
int group_make_files(Group *g);

/* Write the group's state file atomically on the worker pool, after any
 * earlier write of it; a failure is logged. */
void group_save(Group *g);

/* The VM of g named name, or NULL. */
VM *group_find_vm(Group *g, const char *name);

/* Put vm (new, in no group) at the head of g's list and point it at g. The
 * list holds the caller's reference from then on. */
void group_attach_vm(Group *g, VM *vm);

/* Take vm out of g's list, clear its group and emit PropertiesChanged for
 * VMs. The reference the list held is the caller's now. */
void group_detach_vm(Group *g, VM *vm);

/* Readiness of every VM of a group (vm-ready.c). Reply to call once every
 * VM is ready, or with Timeout after timeout_usec (0: no limit). Returns 0
 * or -errno. */
int group_wait_ready(Group *g, sd_bus_message *call, uint64_t timeout_usec);
/* Fail a group's waiters (the group goes away). */
void group_ready_cancel(Group *g);

/* Bus face (group-dbus.c). */
extern const sd_bus_vtable group_vtable[];
int group_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error);
int group_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
int group_emit_changed(Group *g, const char *property, ...);
int group_path_for(const char *name, char **ret);
