/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lib/guest-panic.c: which console lines are a kernel's panic line, and what
 * of the guest's text comes out of one.
 */

#include <string.h>

#include "guest-panic.h"
#include "test.h"

/* The message of line s, or NULL if it is not a panic line. */
static const char *message(const char *s, size_t size) {
        static char buf[512];

        memset(buf, 'x', sizeof(buf));
        if (vmgr_kernel_panic_message(s, strlen(s), buf, size) == 0) {
                CHECK(buf[0] == 'x');
                return NULL;
        }
        CHECK(strlen(buf) < size);
        return buf;
}

#define PANIC(line) message((line), 512)

static void test_lines(void) {
        /* The kernel's lines, as Debian's cloud kernel prints them. */
        CHECK_STREQ(PANIC("[    2.073351] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009"),
                    "Attempted to kill init! exitcode=0x00000009");
        CHECK_STREQ(PANIC("[   12.500000] Kernel panic - not syncing: sysrq triggered crash"), "sysrq triggered crash");
        CHECK_STREQ(PANIC("[ 1234.5] Kernel panic - not syncing: Fatal exception"), "Fatal exception");
        /* printk.time=0 */
        CHECK_STREQ(PANIC("Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"),
                    "VFS: Unable to mount root fs on unknown-block(0,0)");
        /* Trailing spaces go; an empty message is "?". */
        CHECK_STREQ(PANIC("[    1.0] Kernel panic - not syncing: oops   "), "oops");
        CHECK_STREQ(PANIC("Kernel panic - not syncing: "), "?");
        CHECK_STREQ(PANIC("Kernel panic - not syncing:    "), "?");

        /* Not panic lines: the end marker, the text elsewhere in a line, other prefixes. */
        CHECK(!PANIC("[    2.079907] ---[ end Kernel panic - not syncing: Fatal exception ]---"));
        CHECK(!PANIC("echo 'Kernel panic - not syncing: x'"));
        CHECK(!PANIC("[ 1.0 x] Kernel panic - not syncing: x"));
        CHECK(!PANIC("[    1.0 Kernel panic - not syncing: x"));
        CHECK(!PANIC("Kernel panic - not syncing"));
        CHECK(!PANIC("Kernel panic - not syncing:x"));
        CHECK(!PANIC(""));
        CHECK(!PANIC("["));
        CHECK(!PANIC("[]"));
        CHECK(!PANIC("kernel panic - not syncing: x"));
}

/* The guest's bytes: only printable ASCII comes out, and at most the cap. */
static void test_untrusted(void) {
        char line[8192], buf[512];
        size_t n;

        CHECK_STREQ(PANIC("Kernel panic - not syncing: a\tb\x1b[31mc\x7f\xc3\xa9\xff"), "a?b?[31mc????");
        /* Not NUL-terminated: only len bytes are read. */
        memcpy(line, "Kernel panic - not syncing: abcdef", 34);
        CHECK(vmgr_kernel_panic_message(line, 31, buf, sizeof(buf)) == 1);
        CHECK_STREQ(buf, "abc");
        /* A NUL inside the line is a byte like any other. */
        CHECK(vmgr_kernel_panic_message("Kernel panic - not syncing: a\0b", 31, buf, sizeof(buf)) == 1);
        CHECK_STREQ(buf, "a?b");

        n = (size_t) snprintf(line, sizeof(line), "[    3.0] Kernel panic - not syncing: ");
        memset(line + n, 'A', sizeof(line) - n);
        CHECK(vmgr_kernel_panic_message(line, sizeof(line), buf, sizeof(buf)) == 1);
        CHECK(strlen(buf) == VMGR_PANIC_MESSAGE_MAX);
        /* A smaller buffer caps it further. */
        CHECK(vmgr_kernel_panic_message(line, sizeof(line), buf, 10) == 1);
        CHECK_STREQ(buf, "AAAAAAAAA");
        CHECK(vmgr_kernel_panic_message(line, sizeof(line), buf, 1) == 0);
        /* A time stamp that never closes. */
        memset(line, ' ', sizeof(line));
        line[0] = '[';
        CHECK(vmgr_kernel_panic_message(line, sizeof(line), buf, sizeof(buf)) == 0);
}

int main(void) {
        test_lines();
        test_untrusted();
        TEST_DONE();
}
