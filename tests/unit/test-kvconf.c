/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>

#include "kvconf.h"
#include "vmgr-error.h"
#include "test.h"

static int collect(const char *key, const char *value, void *userdata, char *error, size_t error_size) {
        unsigned *sum = userdata, v;

        if (strcmp(key, "n") != 0) {
                snprintf(error, error_size, "unknown key \"%s\"", key);
                return -EINVAL;
        }
        if (vmgr_parse_uint(value, 0, 100, &v) < 0)
                return -EINVAL;
        *sum += v;
        return 0;
}

static void test_kvconf(void) {
        char text[] = "# comment\n\n n = 1 \nn=2\n", bad[] = "n = 1\nm = 2\n", noeq[] = "just words\n";
        char error[VMGR_ERROR_MAX];
        unsigned sum = 0, v;
        FILE *f;

        f = fmemopen(text, strlen(text), "r");
        CHECK(vmgr_kvconf_parse(f, collect, &sum, error, sizeof(error)) == 0);
        fclose(f);
        CHECK(sum == 3);
        f = fmemopen(bad, strlen(bad), "r");
        CHECK(vmgr_kvconf_parse(f, collect, &sum, error, sizeof(error)) == -EINVAL);
        fclose(f);
        CHECK_STREQ(error, "line 2: unknown key \"m\"");
        f = fmemopen(noeq, strlen(noeq), "r");
        CHECK(vmgr_kvconf_parse(f, collect, &sum, error, sizeof(error)) == -EINVAL);
        fclose(f);
        CHECK(strstr(error, "line 1"));

        /* A handler that fails without a reason: the error's own words. */
        char range[] = "n = 1\nn = 1000\n", small[10];
        f = fmemopen(range, strlen(range), "r");
        CHECK(vmgr_kvconf_parse(f, collect, &sum, error, sizeof(error)) == -EINVAL);
        fclose(f);
        CHECK_STREQ(error, "line 2: Invalid argument");
        /* The caller's size holds, however long the reason. */
        memset(small, 'x', sizeof(small));
        f = fmemopen(bad, strlen(bad), "r");
        CHECK(vmgr_kvconf_parse(f, collect, &sum, small, 6) == -EINVAL);
        fclose(f);
        CHECK_STREQ(small, "line ");
        CHECK(small[6] == 'x');

        CHECK(vmgr_parse_uint("42", 1, 100, &v) == 0 && v == 42);
        CHECK(vmgr_parse_uint("-1", 0, 100, &v) == -EINVAL);
        CHECK(vmgr_parse_uint(" 1", 0, 100, &v) == -EINVAL);
        CHECK(vmgr_parse_uint("101", 0, 100, &v) == -EINVAL);
        CHECK(vmgr_parse_uint("1x", 0, 100, &v) == -EINVAL);
        CHECK(vmgr_parse_uint("", 0, 100, &v) == -EINVAL);
}

int main(void) {
        test_kvconf();
        TEST_DONE();
}
