/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmgrctl daemon reexec: Manager.Reexec, then wait until the new vmgrd has
 * claimed the bus name (it does so once every group is adopted again).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "time-util.h"
#include "verbs.h"
#include "vmgr-error.h"

/* A re-exec with many groups adopts them all before claiming the name. */
#define REEXEC_TIMEOUT_USEC (120ULL * 1000000ULL)
#define REEXEC_POLL_USEC (20ULL * 1000ULL)

int verb_daemon_reexec(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char before[256], now[256];
        uint64_t deadline;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        bus_name_owner(bus, before, sizeof(before));

        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "Reexec", BUS_LONG_TIMEOUT_USEC, &error,
                            NULL, "");
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return log_error_errno(-ERRNO_UNREACHABLE, "vmgrd is not running");
                return bus_log_error(bus, &error, r);
        }

        /* The old vmgrd's connection goes with its exec; the new one claims
         * the name under another unique name once its groups are adopted. */
        deadline = now_monotonic_usec() + REEXEC_TIMEOUT_USEC;
        for (;;) {
                bus_name_owner(bus, now, sizeof(now));
                if (*now && !streq(now, before))
                        break;
                if (now_monotonic_usec() > deadline)
                        return log_error_errno(-ETIMEDOUT, "vmgrd did not come back within %llu s: %m",
                                               (unsigned long long) (REEXEC_TIMEOUT_USEC / 1000000ULL));
                (void) nanosleep(&(struct timespec) { .tv_nsec = REEXEC_POLL_USEC * 1000 }, NULL);
        }
        if (!o->quiet)
                printf("vmgrd re-executed (now %s)\n", now);
        return 0;
}
