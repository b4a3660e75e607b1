/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-session.h"
#include "group.h"
#include "guest-exec.h"
#include "log.h"
#include "vm.h"
#include "vmgr-error.h"

static GuestExec *guest_execs;

void guest_exec_remove(GuestExec *p) {
        if (p->prev)
                p->prev->next = p->next;
        else if (guest_execs == p)
                guest_execs = p->next;
        if (p->next)
                p->next->prev = p->prev;
        if (p->vm && p->vm->n_guest_execs > 0)
                p->vm->n_guest_execs--;
        agent_job_free(p->job); /* kills it if it still runs */
        for (size_t i = 0; i < p->n_waiters; i++) {
                (void) sd_bus_reply_method_errorf(p->waiters[i], VMGR_ERROR_FAILED, "the process object was removed");
                sd_bus_message_unref(p->waiters[i]);
        }
        free(p->waiters);
        sd_event_source_disable_unref(p->remove_source);
        sd_bus_slot_unref(p->slot);
        sd_bus_track_unref(p->track);
        free(p->object_path);
        vm_unref(p->vm);
        free(p);
}

void guest_exec_remove_vm(VM *vm) {
        for (GuestExec *p = guest_execs, *next; p; p = next) {
                next = p->next;
                if (p->vm == vm)
                        guest_exec_remove(p);
        }
}

static void on_job_done(AgentJob *j, void *userdata) {
        GuestExec *p = userdata;
        const AgentJobResult *res = agent_job_result(j);

        p->finished = true;
        p->status = res->status;
        p->signal = res->signal;
        p->error = res->error;
        snprintf(p->message, sizeof(p->message), "%s", res->message);
        p->job = agent_job_free(p->job);
        guest_exec_reply_waiters(p);
}

static int on_track_empty(sd_bus_track *t, void *userdata) {
        GuestExec *p = userdata;

        /* The caller hung up: nobody can read the pipes or ask for the result. */
        guest_exec_remove(p);
        return 0;
}

int guest_exec_start(VM *vm, sd_bus_message *call, char **argv, char **env, const char *cwd, int fds[3],
                     GuestExec **ret) {
        sd_bus *bus = sd_bus_message_get_bus(call);
        int pipes[3][2] = { { -EBADF, -EBADF }, { -EBADF, -EBADF }, { -EBADF, -EBADF } };
        GuestExec *p;
        int r;

        if (vm->n_guest_execs >= VM_GUEST_EXECS_MAX)
                return -VMGR_ERR_LIMIT_EXCEEDED;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->vm = vm_ref(vm);
        p->next = guest_execs;
        if (guest_execs)
                guest_execs->prev = p;
        guest_execs = p;
        p->id = ++vm->guest_exec_counter;
        vm->n_guest_execs++;
        if (asprintf(&p->object_path, "%s/process/%u", vm->object_path, p->id) < 0) {
                p->object_path = NULL;
                r = -ENOMEM;
                goto fail;
        }
        for (int i = 0; i < 3; i++)
                if (pipe2(pipes[i], O_CLOEXEC) < 0) {
                        r = -errno;
                        goto fail;
                }
        r = agent_job_new(vm->agent, AGENT_JOB_EXEC, on_job_done, p, &p->job);
        if (r < 0)
                goto fail;
        /* Ours: stdin's read end, stdout's and stderr's write ends (taken even on failure). */
        r = agent_job_set_fd(p->job, AGENT_STREAM_IN, TAKE_FD(pipes[0][0]));
        if (r >= 0)
                r = agent_job_set_fd(p->job, AGENT_STREAM_OUT, TAKE_FD(pipes[1][1]));
        if (r >= 0)
                r = agent_job_set_fd(p->job, AGENT_STREAM_ERR, TAKE_FD(pipes[2][1]));
        if (r < 0)
                goto fail;
        r = sd_bus_track_new(bus, &p->track, on_track_empty, p);
        if (r >= 0)
                r = sd_bus_track_add_sender(p->track, call);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, &p->slot, p->object_path, VMGR_PROCESS_INTERFACE, guest_exec_vtable,
                                             p);
        if (r < 0)
                goto fail;
        r = agent_job_start_exec(p->job, argv, env, cwd);
        if (r < 0)
                goto fail;

        fds[0] = pipes[0][1];
        fds[1] = pipes[1][0];
        fds[2] = pipes[2][0];
        *ret = p;
        return 0;

fail:
        for (int i = 0; i < 3; i++) {
                safe_close(pipes[i][0]);
                safe_close(pipes[i][1]);
        }
        guest_exec_remove(p);
        return r;
}
