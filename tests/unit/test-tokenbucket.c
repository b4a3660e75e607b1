/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdint.h>

#include "test.h"
#include "tokenbucket.h"

#define SEC UINT64_C(1000000)

int main(void) {
        struct vmgr_token_bucket b;
        uint64_t t = 5 * SEC, taken = 0;

        /* Starts full: the whole burst at once, then nothing. */
        vmgr_token_bucket_init(&b, 100, 1000, t);
        CHECK(vmgr_token_bucket_available(&b, t) == 1000);
        CHECK(vmgr_token_bucket_take(&b, 600, t));
        CHECK(!vmgr_token_bucket_take(&b, 401, t));
        CHECK(vmgr_token_bucket_available(&b, t) == 400); /* a refused take takes nothing */
        CHECK(vmgr_token_bucket_take(&b, 400, t));
        CHECK(!vmgr_token_bucket_take(&b, 1, t));

        /* Refills at the rate: 100 per second, in fractions too. */
        CHECK(vmgr_token_bucket_available(&b, t + SEC / 2) == 50);
        CHECK(vmgr_token_bucket_take(&b, 50, t + SEC / 2));
        CHECK(!vmgr_token_bucket_take(&b, 1, t + SEC / 2 + 9999));
        CHECK(vmgr_token_bucket_take(&b, 1, t + SEC / 2 + 10000));

        /* Checked every microsecond, a slow rate still refills (fractions are kept). */
        vmgr_token_bucket_init(&b, 3, 10, t);
        CHECK(vmgr_token_bucket_take(&b, 10, t));
        for (uint64_t u = 1; u <= 2 * SEC; u++)
                if (vmgr_token_bucket_take(&b, 1, t + u))
                        taken++;
        CHECK(taken == 6);

        /* Never more than the burst, however long it rested. */
        vmgr_token_bucket_init(&b, 100, 1000, t);
        CHECK(vmgr_token_bucket_take(&b, 1000, t));
        CHECK(vmgr_token_bucket_available(&b, t + 3600 * SEC) == 1000);
        CHECK(!vmgr_token_bucket_take(&b, 1001, t + 7200 * SEC));

        /* A clock going back adds nothing, and does not break later refills. */
        CHECK(vmgr_token_bucket_take(&b, 1000, t + 7200 * SEC));
        CHECK(vmgr_token_bucket_available(&b, t) == 0);
        CHECK(vmgr_token_bucket_available(&b, t + 7201 * SEC) == 100);

        /* Sustained over a minute: the burst plus the rate times the time, no more. */
        vmgr_token_bucket_init(&b, 64 * 1024, 1024 * 1024, 0);
        taken = 0;
        for (uint64_t u = 0; u <= 60 * SEC; u += 1000)
                if (vmgr_token_bucket_take(&b, 4096, u))
                        taken += 4096;
        CHECK(taken <= 1024 * 1024 + 60 * 64 * 1024);
        CHECK(taken >= 1024 * 1024 + 60 * 64 * 1024 - 4096);

        /* Huge values do not overflow. */
        vmgr_token_bucket_init(&b, UINT64_MAX, UINT64_MAX, 0);
        CHECK(vmgr_token_bucket_take(&b, UINT64_C(1) << 40, 0));
        CHECK(vmgr_token_bucket_available(&b, UINT64_MAX) > 0);
        /* A rate of 0: the burst and no more. */
        vmgr_token_bucket_init(&b, 0, 5, 0);
        CHECK(vmgr_token_bucket_take(&b, 5, 0));
        CHECK(!vmgr_token_bucket_take(&b, 1, 100 * SEC));

        TEST_DONE();
}
