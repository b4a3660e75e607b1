/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The text of a LOG message: at most VMGR_AGENT_LOG_MAX bytes of valid
 * UTF-8 without control characters, so that it is one line on any
 * display and a valid D-Bus string. Bytes that would break that are
 * written as \xNN, the way the kernel writes them in /dev/kmsg.
 */

#include <stdbool.h>
#include <stddef.h>

#include "agent-proto.h"

struct log_text {
        char buf[VMGR_AGENT_LOG_MAX + 1]; /* NUL-terminated */
        size_t len;
        bool full; /* something did not fit and was cut */
};

/* Empty t. */
void log_text_init(struct log_text *t);

/* Append src[0..n): control characters (below 0x20, and 0x7f) and bytes
 * that are not part of a valid UTF-8 character become \xNN; everything
 * else is copied. What does not fit is cut before the escape or character
 * that would not fit whole (t->full is set then). */
void log_text_append(struct log_text *t, const char *src, size_t n);

/* Append a NUL-terminated string the same way. */
void log_text_append_str(struct log_text *t, const char *s);
