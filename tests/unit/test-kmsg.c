/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>

#include "kmsg.h"
#include "test.h"

/* Parse s (its whole length) and check the text. */
static struct kmsg_record parse_ok(const char *s, const char *text) {
        struct kmsg_record r;
        char buf[KMSG_RECORD_MAX];

        CHECK(kmsg_parse(s, strlen(s), &r) == 0);
        CHECK(r.text_len == strlen(text));
        memcpy(buf, r.text, r.text_len);
        buf[r.text_len] = 0;
        CHECK_STREQ(buf, text);
        return r;
}

static void test_records(void) {
        struct kmsg_record r;

        /* The kernel's own line: facility 0. */
        r = parse_ok("5,0,0,-;Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)\n",
                     "Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)");
        CHECK(r.priority == 5 && r.facility == 0 && r.seq == 0 && r.usec == 0 && !r.continuation);

        /* Written to /dev/kmsg without a prefix: LOG_USER, default level 4. */
        r = parse_ok("12,1234,5678901,-;hello-from-test\n", "hello-from-test");
        CHECK(r.priority == 4 && r.facility == 1 && r.seq == 1234 && r.usec == 5678901);

        /* Continuation lines (dictionary) are not part of the text. */
        r = parse_ok("6,339,5140900,-;NET: Registered protocol family 10\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A03:00\n",
                     "NET: Registered protocol family 10");
        CHECK(r.priority == 6 && r.seq == 339);

        /* Escapes stay as the kernel wrote them. */
        parse_ok("4,7,8,-;tab\\x09and backslash\\x5c\n", "tab\\x09and backslash\\x5c");

        /* A fragment of a continued line; later fields after FLAGS are skipped. */
        r = parse_ok("6,171,0,c,caller=T1;[\n", "[");
        CHECK(r.continuation);

        /* Linux 3.5: no FLAGS field. */
        r = parse_ok("5,0,0;Linux version 3.5.0\n", "Linux version 3.5.0");
        CHECK(r.seq == 0 && !r.continuation);

        /* No trailing newline, empty text, a NUL ends the text. */
        parse_ok("6,1,2,-;no newline", "no newline");
        parse_ok("6,1,2,-;\n", "");
        CHECK(kmsg_parse("6,1,2,-;ab\0cd\n", 14, &r) == 0 && r.text_len == 2);

        /* Large numbers. */
        r = parse_ok("191,18446744073709551615,18446744073709551615,-;x\n", "x");
        CHECK(r.seq == UINT64_MAX && r.usec == UINT64_MAX && r.priority == 7 && r.facility == 23);
}

static void test_malformed(void) {
        static const char *const bad[] = {
                "",
                ";text\n",
                "6;text\n",
                "6,1;text\n",
                "6,1,2",
                "6,1,2,-",
                "6,1,2,-\ntext",
                "x,1,2,-;text\n",
                "6,x,2,-;text\n",
                "6,1,x,-;text\n",
                "-6,1,2,-;text\n",
                "6,,2,-;text\n",
                "6,1,2x;text\n",
                "6,18446744073709551616,2,-;text\n", /* overflows */
                "2048,1,2,-;text\n",                 /* facility beyond 8 bits */
        };
        struct kmsg_record r;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (kmsg_parse(bad[i], strlen(bad[i]), &r) != -EINVAL)
                        fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
                CHECK(kmsg_parse(bad[i], strlen(bad[i]), &r) == -EINVAL);
        }
}

static void test_state(void) {
        const char *boot = "0123abcd-0123-4567-89ab-0123456789ab";
        const char *other = "ffffffff-0123-4567-89ab-0123456789ab";
        char buf[KMSG_STATE_SIZE + 1];
        uint64_t seq = 0;

        CHECK(kmsg_state_format(buf, boot, 0) == KMSG_STATE_SIZE);
        CHECK_STREQ(buf, "0123abcd-0123-4567-89ab-0123456789ab 00000000000000000000\n");
        CHECK(kmsg_state_parse(buf, boot, &seq) == 1 && seq == 0);
        CHECK(kmsg_state_format(buf, boot, UINT64_MAX) == KMSG_STATE_SIZE);
        CHECK(kmsg_state_parse(buf, boot, &seq) == 1 && seq == UINT64_MAX);
        CHECK(kmsg_state_format(buf, boot, 4711) == KMSG_STATE_SIZE);
        CHECK(kmsg_state_parse(buf, boot, &seq) == 1 && seq == 4711);
        /* Another boot's sequence numbers mean nothing in this one. */
        seq = 1;
        CHECK(kmsg_state_parse(buf, other, &seq) == 0 && seq == 1);
        /* Without the newline too (a line read with it cut off). */
        CHECK(kmsg_state_parse("0123abcd-0123-4567-89ab-0123456789ab 12", boot, &seq) == 1 && seq == 12);

        CHECK(kmsg_state_format(buf, "short", 1) == -EINVAL);
        CHECK(kmsg_state_parse("", boot, &seq) == -EINVAL);
        CHECK(kmsg_state_parse("garbage", boot, &seq) == -EINVAL);
        CHECK(kmsg_state_parse("0123abcd-0123-4567-89ab-0123456789ab x", boot, &seq) == -EINVAL);
        CHECK(kmsg_state_parse("0123abcd-0123-4567-89ab-0123456789ab 12x", boot, &seq) == -EINVAL);
        CHECK(kmsg_state_parse("0123abcd-0123-4567-89ab-0123456789ab ", boot, &seq) == -EINVAL);
        CHECK(kmsg_state_parse(buf, "short", &seq) == -EINVAL);
}

int main(void) {
        test_records();
        test_malformed();
        test_state();
        TEST_DONE();
}
