/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>

#include "agent-session.h"
#include "bus-error.h"
#include "bus-util.h"
#include "guest-exec.h"
#include "log.h"

static int on_remove(sd_event_source *s, void *userdata) {
        guest_exec_remove(userdata);
        return 0;
}

void guest_exec_reply_waiters(GuestExec *p) {
        bool answered = false;

        if (!p->finished)
                return;
        for (size_t i = 0; i < p->n_waiters; i++) {
                if (p->error < 0)
                        (void) vmgr_bus_reply_error(p->waiters[i], p->error, "%s", p->message);
                else
                        (void) sd_bus_reply_method_return(p->waiters[i], "ii", p->status, p->signal);
                sd_bus_message_unref(p->waiters[i]);
                answered = true;
        }
        free(p->waiters);
        p->waiters = NULL;
        p->n_waiters = 0;
        /* Collected, like a reaped child. Deferred: we may be inside one of
         * the object's own method calls. */
        if (answered && !p->remove_source &&
            sd_event_add_defer(sd_bus_get_event(sd_bus_slot_get_bus(p->slot)), &p->remove_source, on_remove, p) < 0)
                log_oom();
}

static int method_wait(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestExec *p = userdata;
        sd_bus_message **l;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        l = realloc(p->waiters, (p->n_waiters + 1) * sizeof(*l));
        if (!l)
                return -ENOMEM;
        p->waiters = l;
        p->waiters[p->n_waiters++] = sd_bus_message_ref(m);
        guest_exec_reply_waiters(p);
        return 1;
}

static int method_kill(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestExec *p = userdata;
        int32_t sig;
        int r;

        r = bus_method_begin(m, error, "i", &sig);
        if (r < 0)
                return r;
        if (sig < 1 || sig > 64)
                return vmgr_bus_error_set(error, -EINVAL, "%d is not a signal number", (int) sig);
        if (p->finished || !p->job)
                return vmgr_bus_error_set(error, -ESRCH, "the process has exited");
        r = agent_job_kill(p->job, sig);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot signal the process: %m");
        return sd_bus_reply_method_return(m, NULL);
}

const sd_bus_vtable guest_exec_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "u", NULL, offsetof(GuestExec, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Wait", SD_BUS_NO_ARGS, SD_BUS_RESULT("i", exit_status, "i", signal), method_wait,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Kill", SD_BUS_ARGS("i", signal), SD_BUS_NO_RESULT, method_kill,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
