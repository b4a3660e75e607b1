/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Clocks. Deadlines, timeouts and stage timings use CLOCK_MONOTONIC (it
 * never jumps), in microseconds as sd-event does.
 */

#include <stdint.h>

/* CLOCK_MONOTONIC in microseconds. */
uint64_t now_monotonic_usec(void);
