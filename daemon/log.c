/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "vmgr-error.h"

static int max_level = LOG_INFO;
static int use_journal = 0;
static log_group_sink_t group_sink;
static void *group_sink_userdata;
static pthread_t group_sink_thread;

void log_set_group_sink(log_group_sink_t sink, void *userdata) {
        group_sink = sink;
        group_sink_userdata = userdata;
        group_sink_thread = pthread_self();
}

/* JOURNAL_STREAM is "dev:ino" of the stream systemd connected to stdout/stderr;
 * log natively only when stderr still is that stream. */
static int stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return 0;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(void) {
        const char *level = getenv("VMGR_LOG_LEVEL");

        use_journal = stderr_is_journal();
        if (level && streq(level, "debug"))
                max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_internal(int level, int error, const char *group, const char *vm, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        error = error < 0 ? -error : error;
        if (level > max_level) {
                errno = saved;
                return -error;
        }

        /* %m is the error passed in (vmgr's own codes included), or errno
         * as the caller left it when there is none. */
        va_start(ap, fmt);
        (void) vmgr_vsnprintf_error(buf, sizeof(buf), error ?: saved, fmt, ap);
        va_end(ap);

        if (use_journal) {
                /* A field with an empty value is still a field; only add the ones we have. */
                if (group && vm)
                        sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, "GROUP=%s", group, "VM=%s", vm,
                                        error ? "ERRNO=%i" : NULL, error, NULL);
                else if (group)
                        sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, "GROUP=%s", group,
                                        error ? "ERRNO=%i" : NULL, error, NULL);
                else
                        sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, error ? "ERRNO=%i" : NULL, error,
                                        NULL);
        } else {
                if (group && vm)
                        fprintf(stderr, "vmgrd: [%s/%s] %s\n", group, vm, buf);
                else if (group)
                        fprintf(stderr, "vmgrd: [%s] %s\n", group, buf);
                else
                        fprintf(stderr, "vmgrd: %s\n", buf);
        }

        /* Only on the event loop's thread: the sink looks at groups. */
        if (group && group_sink && pthread_equal(pthread_self(), group_sink_thread)) {
                /* A message the sink itself logs is not about a group again. */
                log_group_sink_t sink = group_sink;
                group_sink = NULL;
                sink(level, group, vm, buf, group_sink_userdata);
                group_sink = sink;
        }

        errno = saved;
        return -error;
}
