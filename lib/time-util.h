/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Clocks. Deadlines, timeouts and stage timings use CLOCK_MONOTONIC (it
 * never jumps), in microseconds as sd-event does.
 */

#include <stdint.h>

/* CLOCK_MONOTONIC in microseconds. */
uint64_t now_monotonic_usec(void);

/* The largest timeout a caller may give that still is one: anything above
 * (2^64-1, sd-bus's "infinity", among them) means no limit, like 0. Below
 * it, now + timeout cannot overflow a CLOCK_MONOTONIC deadline (sd-event
 * refuses one that does with EOVERFLOW) for the next 292 000 years of uptime. */
#define TIMEOUT_USEC_MAX (UINT64_MAX / 2)

/* A caller's timeout_usec for a relative timer: itself, or 0 (no limit) for
 * 0 and for anything above TIMEOUT_USEC_MAX. */
static inline uint64_t timeout_usec_or_unlimited(uint64_t usec) {
        return usec > TIMEOUT_USEC_MAX ? 0 : usec;
}
