/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "logline.h"
#include "test.h"

static char *strip(const char *in) {
        static char buf[256];
        size_t n = strlen(in);

        memcpy(buf, in, n);
        buf[vmgr_line_strip(buf, n)] = 0;
        return buf;
}

struct collected {
        char lines[8][VMGR_LINE_MAX + 1];
        size_t lens[8];
        unsigned n;
};

static void collect(const char *line, size_t len, void *userdata) {
        struct collected *c = userdata;

        CHECK(c->n < 8);
        memcpy(c->lines[c->n], line, len);
        c->lines[c->n][len] = 0;
        c->lens[c->n++] = len;
}

static void test_strip(void) {
        CHECK_STREQ(strip("plain text"), "plain text");
        CHECK_STREQ(strip("\x1b[1;31m" "red\x1b[0m and \x1b[32mgreen\x1b[m"), "red and green");
        CHECK_STREQ(strip("ok\r"), "ok");
        CHECK_STREQ(strip("printf's CR and the tty's\r\r"), "printf's CR and the tty's");
        CHECK_STREQ(strip("progress 10%\rprogress 100%"), "progress 100%");
        CHECK_STREQ(strip("\x1b]0;title\x07" "after"), "after");
        CHECK_STREQ(strip("\x1b]2;title\x1b\\after"), "after");
        CHECK_STREQ(strip("\x1bPdevice string\x1b\\" "x"), "x");
        CHECK_STREQ(strip("\x1b(Bcharset\x1b=keypad\x1b" "7save"), "charsetkeypadsave");
        CHECK_STREQ(strip("\x1b[?25lhidden cursor\x1b[?25h"), "hidden cursor");
        CHECK_STREQ(strip("bell\x07 back\x08space del\x7f"), "bell backspace del");
        CHECK_STREQ(strip("tab\tkept"), "tab\tkept");
        CHECK_STREQ(strip("utf-8 \xc3\xa9t\xc3\xa9"), "utf-8 \xc3\xa9t\xc3\xa9");
        CHECK_STREQ(strip("lone escape at the end\x1b"), "lone escape at the end");
        CHECK_STREQ(strip("cut CSI\x1b[12"), "cut CSI");
        CHECK_STREQ(strip("bad CSI\x1b[1\x01x"), "bad CSIx");
        CHECK_STREQ(strip(""), "");
}

static void feed(struct vmgr_line_splitter *s, const char *text, struct collected *c) {
        vmgr_line_feed(s, text, strlen(text), collect, c);
}

static void test_split(void) {
        struct vmgr_line_splitter s = { .len = 0 };
        struct collected c = { .n = 0 };
        static char big[VMGR_LINE_MAX + 10];

        /* Lines across feeds, CRLF, an escape split between two feeds. */
        feed(&s, "first li", &c);
        CHECK(c.n == 0);
        feed(&s, "ne\r\nsecond \x1b[3", &c);
        CHECK(c.n == 1);
        CHECK_STREQ(c.lines[0], "first line");
        feed(&s, "1mred\x1b[0m\n\nend", &c);
        CHECK(c.n == 3);
        CHECK_STREQ(c.lines[1], "second red");
        CHECK_STREQ(c.lines[2], "");
        vmgr_line_flush(&s, collect, &c);
        CHECK(c.n == 4);
        CHECK_STREQ(c.lines[3], "end");
        vmgr_line_flush(&s, collect, &c);
        CHECK(c.n == 4);

        /* A line that never ends comes out in pieces of VMGR_LINE_MAX. */
        c.n = 0;
        memset(big, 'x', sizeof(big));
        big[sizeof(big) - 1] = '\n';
        vmgr_line_feed(&s, big, sizeof(big), collect, &c);
        CHECK(c.n == 2);
        CHECK(c.lens[0] == VMGR_LINE_MAX);
        CHECK(c.lens[1] == sizeof(big) - 1 - VMGR_LINE_MAX);
}

int main(void) {
        test_strip();
        test_split();
        printf("%u checks passed\n", test_checks);
        return 0;
}
