/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Failing with a reason. Every refusal of the helper is one sentence in a
 * VMGR_NETADM_MESSAGE_MAX-byte buffer: the message of the reply to vmgrd,
 * or what the helper prints before it exits at start-up.
 */

#include "netadm-proto.h"
#include "vmgr-error.h"

/* Write the sentence into msg and return error (a -errno), so that failing
 * with a reason is one statement; %m in format is error's words. */
#define netadm_fail(msg, error, ...) vmgr_error_printf((msg), VMGR_NETADM_MESSAGE_MAX, (error), __VA_ARGS__)
