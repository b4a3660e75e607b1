/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Failing with a reason. Every refusal of the helper is one sentence in a
 * VMGR_NETADM_MESSAGE_MAX-byte buffer: the message of the reply to vmgrd,
 * or what the helper prints before it exits at start-up.
 */

#include <stdarg.h>
#include <stdio.h>

#include "macro.h"
#include "netadm-proto.h"

/* Write the sentence into msg and return error (a -errno), so that failing
 * with a reason is one statement. */
_printf_(3, 4) static inline int netadm_fail(char *msg, int error, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(msg, VMGR_NETADM_MESSAGE_MAX, format, ap);
        va_end(ap);
        return error;
}
