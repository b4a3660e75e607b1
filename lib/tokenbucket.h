/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A token bucket: what a guest may add to a log, or how often it may do
 * something, over time. It holds at most `burst` tokens and gains `rate`
 * tokens per second; taking n tokens succeeds only if n are there. Time is
 * passed in (microseconds of a monotonic clock), so the logic is pure and
 * testable. Fractions of a token are kept (micro-tokens), so that a slow
 * rate checked often still refills.
 */

#include <stdbool.h>
#include <stdint.h>

struct vmgr_token_bucket {
        uint64_t rate;          /* tokens per second */
        uint64_t burst;         /* most tokens held */
        uint64_t micro;         /* tokens held, times 1000000 */
        uint64_t last_usec;     /* when micro was last brought up to date */
};

/* Start full (a fresh guest may use its whole burst at once). */
void vmgr_token_bucket_init(struct vmgr_token_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_usec);

/* Take n tokens at now_usec. Returns true if there were that many (they are
 * taken), false if not (nothing is taken). A clock that goes back counts as
 * no time passing. */
bool vmgr_token_bucket_take(struct vmgr_token_bucket *b, uint64_t n, uint64_t now_usec);

/* Tokens held at now_usec (whole ones). */
uint64_t vmgr_token_bucket_available(struct vmgr_token_bucket *b, uint64_t now_usec);
