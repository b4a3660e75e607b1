/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A process started in a guest with VM.Exec: an agent job whose stdin,
 * stdout and stderr are pipes the caller holds the other ends of, published
 * as an org.vmgr1.Process object under its VM's path. It belongs to the
 * caller's bus connection: when that goes away, the process is killed and
 * the object removed. It is also removed once it has finished and a Wait
 * call has been answered.
 */

#include <stdbool.h>
#include <systemd/sd-bus.h>

typedef struct AgentJob AgentJob;
typedef struct VM VM;

#define VMGR_PROCESS_INTERFACE "org.vmgr1.Process"
/* Processes one VM runs for Exec callers at once (the agent takes 128). */
#define VM_GUEST_EXECS_MAX 100U

typedef struct GuestExec GuestExec;
struct GuestExec {
        GuestExec *next, *prev;         /* every process of this vmgrd */
        VM *vm;                         /* reference */
        unsigned id;
        char *object_path;
        AgentJob *job;
        sd_bus_slot *slot;
        sd_bus_track *track;            /* the caller's connection */

        bool finished;
        int status, signal;
        int error;
        char message[256];
        sd_bus_message **waiters;       /* pending Wait calls */
        size_t n_waiters;
        sd_event_source *remove_source; /* removal after a Wait was answered */
};

/* Start argv (env: NAME=VALUE list, cwd: may be NULL) in the VM for the
 * caller of call, with its stdin/stdout/stderr on new pipes; the caller's
 * ends are returned in fds[3] (stdin write end, stdout and stderr read
 * ends). Returns 0, -VMGR_ERR_LIMIT_EXCEEDED or -errno. */
int guest_exec_start(VM *vm, sd_bus_message *call, char **argv, char **env, const char *cwd, int fds[3],
                     GuestExec **ret);

/* Bus face (guest-exec-dbus.c). */
extern const sd_bus_vtable guest_exec_vtable[];
/* Answer every pending Wait; remove the object if one was answered. */
void guest_exec_reply_waiters(GuestExec *p);
/* Kill (if running), unpublish and free. */
void guest_exec_remove(GuestExec *p);
/* Remove every process of a VM (the VM is being removed). */
void guest_exec_remove_vm(VM *vm);
