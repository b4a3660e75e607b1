/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "strv.h"
#include "test.h"

static void test_push_dup(void) {
        _cleanup_(strv_freep) char **l = NULL;
        char word[] = "alpha";
        size_t n = 0;

        CHECK(strv_push_dup(&l, &n, word) == 0);
        CHECK(n == 1);
        CHECK_STREQ(l[0], "alpha");
        CHECK(l[1] == NULL);
        /* A copy: the caller's string may change or go away. */
        word[0] = 'A';
        CHECK_STREQ(l[0], "alpha");
        CHECK(l[0] != word);

        CHECK(strv_push_dup(&l, &n, "beta") == 0);
        CHECK(strv_push_dup(&l, &n, "") == 0);
        CHECK(n == 3);
        CHECK_STREQ(l[0], "alpha");
        CHECK_STREQ(l[1], "beta");
        CHECK_STREQ(l[2], "");
        CHECK(l[3] == NULL);
}

static void test_many(void) {
        _cleanup_(strv_freep) char **l = NULL;
        char buf[16];
        size_t n = 0;

        for (unsigned i = 0; i < 1000; i++) {
                snprintf(buf, sizeof(buf), "%u", i);
                CHECK(strv_push_dup(&l, &n, buf) == 0);
        }
        CHECK(n == 1000);
        CHECK_STREQ(l[0], "0");
        CHECK_STREQ(l[999], "999");
        CHECK(l[1000] == NULL);
}

static void test_free(void) {
        char **l = NULL;
        size_t n = 0;

        CHECK(strv_free(NULL) == NULL);
        CHECK(strv_push_dup(&l, &n, "x") == 0);
        l = strv_free(l);
        CHECK(l == NULL);

        /* An empty list (just the terminator) is freed too. */
        l = calloc(1, sizeof(char *));
        CHECK(l);
        CHECK(strv_free(l) == NULL);
}

int main(void) {
        test_push_dup();
        test_many();
        test_free();
        TEST_DONE();
}
