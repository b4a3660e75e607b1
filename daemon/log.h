/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vmgrd's logging: to the journal (with GROUP= and VM= fields) when stderr is
 * connected to it, otherwise one line per message on stderr.
 */

#include <errno.h>
#include <syslog.h>

#include "macro.h"

void log_setup(void);

/* Also hand every message about a group (one with a group name) to sink,
 * which must not log about a group itself. NULL turns it off. */
typedef void (*log_group_sink_t)(int level, const char *group, const char *vm, const char *message, void *userdata);
void log_set_group_sink(log_group_sink_t sink, void *userdata);
void log_set_max_level(int level);

/* Log a message; returns -abs(error) so "return log_error_errno(r, ...)" works.
 * In fmt, %m is the words for error (a -errno, errno or -VMGR_ERR_* code;
 * see vmgr_strerror()), or for errno when error is 0. */
_printf_(5, 6) int log_internal(int level, int error, const char *group, const char *vm, const char *fmt, ...);

#define log_full_level(level, ...) log_internal((level), 0, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, NULL, NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), NULL, NULL, __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, (e), NULL, NULL, __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, (e), NULL, NULL, __VA_ARGS__)

#define log_oom() log_internal(LOG_ERR, ENOMEM, NULL, NULL, "Out of memory")

/* The same, about one group (and VM): the journal gets GROUP= and VM= fields. */
#define log_group(level, g, ...) log_internal((level), 0, (g), NULL, __VA_ARGS__)
#define log_group_errno(level, e, g, ...) log_internal((level), (e), (g), NULL, __VA_ARGS__)
