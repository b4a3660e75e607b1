/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Minimal assertions for vmgr's unit tests: each test is its own
 * executable; a failed check prints where and why and the test exits 1.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned test_checks;

#define CHECK(expr)                                                                             \
        do {                                                                                    \
                test_checks++;                                                                  \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
                        exit(1);                                                                \
                }                                                                               \
        } while (0)

#define CHECK_STREQ(a, b)                                                                           \
        do {                                                                                        \
                const char *_a = (a), *_b = (b);                                                    \
                test_checks++;                                                                      \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                            \
                        fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
                                #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");                    \
                        exit(1);                                                                    \
                }                                                                                   \
        } while (0)

#define TEST_DONE()                                                    \
        do {                                                           \
                printf("%s: %u checks passed\n", __FILE__, test_checks); \
                return 0;                                              \
        } while (0)
