/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The file server's pure parts (daemon/fileserver-util.c): the Range header
 * as RFC 9110 section 14 reads it, and the names files may be served under.
 */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fileserver-util.h"
#include "test.h"

/* Parses value for a file of size bytes; checks the verdict and, for a
 * partial answer, the range. */
static void check_range(const char *value, uint64_t size, HttpRange expected, uint64_t first, uint64_t last) {
        uint64_t f = 12345, l = 67890;
        HttpRange r = http_range_parse(value, size, &f, &l);

        if (r != expected)
                fprintf(stderr, "Range \"%s\" of %llu bytes: got %d, expected %d\n", value ? value : "(null)",
                        (unsigned long long) size, r, expected);
        CHECK(r == expected);
        if (expected == HTTP_RANGE_PARTIAL) {
                if (f != first || l != last)
                        fprintf(stderr, "Range \"%s\" of %llu bytes: got %llu-%llu, expected %llu-%llu\n", value,
                                (unsigned long long) size, (unsigned long long) f, (unsigned long long) l,
                                (unsigned long long) first, (unsigned long long) last);
                CHECK(f == first && l == last);
        } else
                /* Output parameters are written only for a partial answer. */
                CHECK(f == 12345 && l == 67890);
}

static void test_ranges(void) {
        /* The three forms. */
        check_range("bytes=0-499", 1000, HTTP_RANGE_PARTIAL, 0, 499);
        check_range("bytes=500-999", 1000, HTTP_RANGE_PARTIAL, 500, 999);
        check_range("bytes=500-", 1000, HTTP_RANGE_PARTIAL, 500, 999);
        check_range("bytes=-100", 1000, HTTP_RANGE_PARTIAL, 900, 999);
        check_range("bytes=0-0", 1000, HTTP_RANGE_PARTIAL, 0, 0);
        check_range("bytes=999-999", 1000, HTTP_RANGE_PARTIAL, 999, 999);
        check_range("bytes=0-", 1000, HTTP_RANGE_PARTIAL, 0, 999);

        /* LAST past the end is cut; a suffix longer than the file is all of it. */
        check_range("bytes=500-5000", 1000, HTTP_RANGE_PARTIAL, 500, 999);
        check_range("bytes=-5000", 1000, HTTP_RANGE_PARTIAL, 0, 999);
        check_range("bytes=-1000", 1000, HTTP_RANGE_PARTIAL, 0, 999);

        /* Case and whitespace. */
        check_range("Bytes=1-2", 10, HTTP_RANGE_PARTIAL, 1, 2);
        check_range("BYTES = 1 - 2 ", 10, HTTP_RANGE_PARTIAL, 1, 2);
        check_range("  bytes=\t3-", 10, HTTP_RANGE_PARTIAL, 3, 9);

        /* Unsatisfiable: FIRST at or past the end, empty suffixes, empty files. */
        check_range("bytes=1000-", 1000, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=1000-2000", 1000, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=5000-6000", 1000, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=-0", 1000, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=0-", 0, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=0-0", 0, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=-1", 0, HTTP_RANGE_UNSATISFIABLE, 0, 0);

        /* Numbers beyond 64 bits saturate instead of wrapping. */
        check_range("bytes=99999999999999999999999999-", 1000, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=18446744073709551616-", UINT64_MAX, HTTP_RANGE_UNSATISFIABLE, 0, 0);
        check_range("bytes=0-99999999999999999999999999", 1000, HTTP_RANGE_PARTIAL, 0, 999);
        check_range("bytes=-99999999999999999999999999", 1000, HTTP_RANGE_PARTIAL, 0, 999);
        check_range("bytes=18446744073709551614-", UINT64_MAX, HTTP_RANGE_PARTIAL, UINT64_MAX - 1, UINT64_MAX - 1);

        /* Ignored: no header, another unit, syntax errors, several ranges. */
        check_range(NULL, 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=-", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=5", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=500-100", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=a-b", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=+5-10", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=-5-10", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=0x10-", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=1-2;", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytesx=1-2", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("items=0-5", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes 0-5", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=0-1,5-6", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=0-1, -5", 1000, HTTP_RANGE_NONE, 0, 0);
        check_range("bytes=1000-,0-5", 1000, HTTP_RANGE_NONE, 0, 0);
}

static void check_name(const char *name, bool valid) {
        const char *reason = NULL;
        int r = served_name_check(name, &reason);

        if ((r == 0) != valid)
                fprintf(stderr, "name \"%s\": expected %s\n", name, valid ? "valid" : "invalid");
        CHECK((r == 0) == valid);
        CHECK(valid ? reason == NULL : (r == -EINVAL && reason && *reason));
}

static void test_names(void) {
        char longest[SERVED_NAME_MAX + 2];

        check_name("a", true);
        check_name("debian-12-amd64.qcow2", true);
        check_name("linux-image_6.1.0+deb12.tar.gz", true);
        check_name("A.B_C-D+E", true);
        check_name("sha256", true);
        check_name("0", true);

        check_name("", false);
        check_name(".", false);
        check_name("..", false);
        check_name(".hidden", false);
        check_name("-rf", false);
        check_name("a/b", false);
        check_name("/etc", false);
        check_name("../x", false);
        check_name("%2e%2e", false);
        check_name("a%2fb", false);
        check_name("a b", false);
        check_name("a?b", false);
        check_name("a#b", false);
        check_name("a\\b", false);
        check_name("a\nb", false);
        check_name("caf\xc3\xa9", false);

        memset(longest, 'x', SERVED_NAME_MAX);
        longest[SERVED_NAME_MAX] = 0;
        check_name(longest, true);
        longest[SERVED_NAME_MAX] = 'x';
        longest[SERVED_NAME_MAX + 1] = 0;
        check_name(longest, false);

        CHECK(sha256_hex_is_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        CHECK(sha256_hex_is_valid("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
        CHECK(!sha256_hex_is_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"));
        CHECK(!sha256_hex_is_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555"));
        CHECK(!sha256_hex_is_valid("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        CHECK(!sha256_hex_is_valid(""));
}

int main(void) {
        test_ranges();
        test_names();
        TEST_DONE();
}
