/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "tokenbucket.h"

#define MICRO UINT64_C(1000000)

void vmgr_token_bucket_init(struct vmgr_token_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_usec) {
        /* Bounded so that neither burst * MICRO nor a refill (less than one
         * more second's worth than fills it) can overflow. */
        if (burst > UINT64_MAX / MICRO / 2)
                burst = UINT64_MAX / MICRO / 2;
        if (rate > burst)
                rate = burst;
        *b = (struct vmgr_token_bucket) {
                .rate = rate,
                .burst = burst,
                .micro = burst * MICRO,
                .last_usec = now_usec,
        };
}

/* Bring the tokens up to now. */
static void refill(struct vmgr_token_bucket *b, uint64_t now_usec) {
        uint64_t full = b->burst * MICRO, elapsed;

        if (now_usec <= b->last_usec)
                return;
        elapsed = now_usec - b->last_usec;
        b->last_usec = now_usec;
        if (b->rate == 0 || b->micro >= full)
                return;
        /* Time enough to fill the bucket fills it; this also keeps elapsed * rate small. */
        if (elapsed >= (full - b->micro) / b->rate + 1) {
                b->micro = full;
                return;
        }
        b->micro += elapsed * b->rate;
        if (b->micro > full)
                b->micro = full;
}

bool vmgr_token_bucket_take(struct vmgr_token_bucket *b, uint64_t n, uint64_t now_usec) {
        refill(b, now_usec);
        if (n > b->burst || n * MICRO > b->micro)
                return false;
        b->micro -= n * MICRO;
        return true;
}

uint64_t vmgr_token_bucket_available(struct vmgr_token_bucket *b, uint64_t now_usec) {
        refill(b, now_usec);
        return b->micro / MICRO;
}
