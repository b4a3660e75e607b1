/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>

#include "journal-export.h"
#include "log-text.h"
#include "test.h"

/* --- log_text ------------------------------------------------------------- */

static const char *escape(const char *s, size_t n) {
        static struct log_text t;

        log_text_init(&t);
        log_text_append(&t, s, n);
        CHECK(strlen(t.buf) == t.len);
        return t.buf;
}

static void test_log_text(void) {
        static char big[3 * VMGR_AGENT_LOG_MAX];
        struct log_text t;

        CHECK_STREQ(escape("plain text", 10), "plain text");
        CHECK_STREQ(escape("a\nb\tc\rd", 7), "a\\x0ab\\x09c\\x0dd");
        CHECK_STREQ(escape("nul\0x", 5), "nul\\x00x");
        CHECK_STREQ(escape("del\x7f", 4), "del\\x7f");
        /* A backslash is not escaped: only what would break a line. */
        CHECK_STREQ(escape("kernel\\x0a", 10), "kernel\\x0a");
        /* Valid UTF-8 stays. */
        CHECK_STREQ(escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
        /* Invalid UTF-8 is escaped byte by byte. */
        CHECK_STREQ(escape("\xc3", 1), "\\xc3");                 /* cut short */
        CHECK_STREQ(escape("\xc3(", 2), "\\xc3(");               /* bad continuation */
        CHECK_STREQ(escape("\xc0\x80", 2), "\\xc0\\x80");        /* overlong NUL */
        CHECK_STREQ(escape("\xe0\x80\x80", 3), "\\xe0\\x80\\x80"); /* overlong */
        CHECK_STREQ(escape("\xed\xa0\x80", 3), "\\xed\\xa0\\x80"); /* a surrogate */
        CHECK_STREQ(escape("\xf4\x90\x80\x80", 4), "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
        CHECK_STREQ(escape("\xf5\x80", 2), "\\xf5\\x80");
        CHECK_STREQ(escape("\xff", 1), "\\xff");

        /* Cut at the limit, never inside an escape or a character. */
        memset(big, 'a', sizeof(big));
        CHECK(strlen(escape(big, sizeof(big))) == VMGR_AGENT_LOG_MAX);
        log_text_init(&t);
        log_text_append(&t, big, VMGR_AGENT_LOG_MAX - 2);
        CHECK(!t.full);
        log_text_append(&t, "\n", 1);
        CHECK(t.full && t.len == VMGR_AGENT_LOG_MAX - 2);
        log_text_init(&t);
        log_text_append(&t, big, VMGR_AGENT_LOG_MAX - 1);
        log_text_append(&t, "\xc3\xa9", 2);
        CHECK(t.full && t.len == VMGR_AGENT_LOG_MAX - 1);
        log_text_append(&t, "b", 1); /* once cut, nothing more */
        CHECK(t.len == VMGR_AGENT_LOG_MAX - 1);
        log_text_init(&t);
        log_text_append(&t, big, VMGR_AGENT_LOG_MAX - 4);
        log_text_append_str(&t, "\x01");
        CHECK(!t.full && t.len == VMGR_AGENT_LOG_MAX);
        CHECK_STREQ(t.buf + VMGR_AGENT_LOG_MAX - 4, "\\x01");
}

/* --- the export format ---------------------------------------------------- */

#define LOGS_MAX 16

struct result {
        size_t n;
        int r[LOGS_MAX];
        struct journal_log log[LOGS_MAX];
        char cursor[LOGS_MAX][JOURNAL_CURSOR_MAX + 1];
        bool cursor_ok[LOGS_MAX];
        unsigned errors;
};

/* Feed buf[0..n) in pieces of `chunk` bytes and collect what comes out. */
static void parse(const void *buf, size_t n, size_t chunk, struct result *res) {
        static struct journal_parser p;
        const uint8_t *s = buf;
        size_t off = 0;

        memset(res, 0, sizeof(*res));
        journal_parser_init(&p);
        while (off < n) {
                size_t len = n - off < chunk ? n - off : chunk;

                while (len > 0) {
                        const struct journal_entry *e;
                        size_t used = journal_parser_feed(&p, s + off, len, &e);

                        CHECK(used <= len);
                        CHECK(used > 0);
                        off += used;
                        len -= used;
                        if (!e)
                                continue;
                        CHECK(res->n < LOGS_MAX);
                        res->r[res->n] = journal_entry_to_log(e, &res->log[res->n]);
                        {
                                const struct journal_value *c = &e->fields[JOURNAL_FIELD_CURSOR];
                                res->cursor_ok[res->n] = c->present && !c->cut && c->len > 0;
                                memcpy(res->cursor[res->n], c->buf, c->len + 1);
                        }
                        res->n++;
                }
        }
        res->errors = p.errors;
}

/* The same input in every chunking gives the same result. */
static void parse_all_ways(const void *buf, size_t n, struct result *res) {
        static struct result other;
        static const size_t chunks[] = { 1, 2, 3, 7, 64, 4096 };

        parse(buf, n, SIZE_MAX, res);
        for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
                parse(buf, n, chunks[i], &other);
                CHECK(other.n == res->n);
                CHECK(other.errors == res->errors);
                for (size_t j = 0; j < res->n; j++) {
                        CHECK(other.r[j] == res->r[j]);
                        if (res->r[j] < 0)
                                continue;
                        CHECK(other.log[j].source == res->log[j].source);
                        CHECK(other.log[j].priority == res->log[j].priority);
                        CHECK(other.log[j].realtime_usec == res->log[j].realtime_usec);
                        CHECK_STREQ(other.log[j].text.buf, res->log[j].text.buf);
                        CHECK_STREQ(other.cursor[j], res->cursor[j]);
                }
        }
}

/* A binary field: NAME\n, le64 size, data, \n. */
static size_t put_binary(char *out, const char *name, const void *data, uint64_t size) {
        size_t n = strlen(name), off = 0;

        memcpy(out, name, n);
        off += n;
        out[off++] = '\n';
        for (int i = 0; i < 8; i++)
                out[off++] = (char) (size >> (8 * i));
        memcpy(out + off, data, size);
        off += size;
        out[off++] = '\n';
        return off;
}

static size_t put_text(char *out, const char *s) {
        size_t n = strlen(s);
        memcpy(out, s, n);
        return n;
}

/* What journalctl --output=export writes, as of systemd 252. */
static const char sample[] =
        "__CURSOR=s=4e1f1c2a9b6e4a0c8f3b2d1e0a9c8b7d;i=1;b=0123abcd01234567890a0123456789ab;m=1a2b;t=5f0e1d2c3b4a5;x=1\n"
        "__REALTIME_TIMESTAMP=1700000005000000\n"
        "__MONOTONIC_TIMESTAMP=5000000\n"
        "_BOOT_ID=0123abcd01234567890a0123456789ab\n"
        "_SOURCE_MONOTONIC_TIMESTAMP=1000000\n"
        "_TRANSPORT=kernel\n"
        "PRIORITY=5\n"
        "SYSLOG_FACILITY=0\n"
        "SYSLOG_IDENTIFIER=kernel\n"
        "MESSAGE=Linux version 6.1.0-28-cloud-amd64\n"
        "\n"
        "__CURSOR=s=4e1f1c2a9b6e4a0c8f3b2d1e0a9c8b7d;i=2;b=0123abcd01234567890a0123456789ab;m=2b3c;t=5f0e1d2c3b4a6;x=2\n"
        "__REALTIME_TIMESTAMP=1700000010000000\n"
        "__MONOTONIC_TIMESTAMP=10000000\n"
        "_BOOT_ID=0123abcd01234567890a0123456789ab\n"
        "_TRANSPORT=syslog\n"
        "PRIORITY=6\n"
        "SYSLOG_IDENTIFIER=sshd\n"
        "SYSLOG_PID=99\n"
        "_PID=123\n"
        "_COMM=sshd\n"
        "_SOURCE_REALTIME_TIMESTAMP=1700000009999000\n"
        "MESSAGE=Server listening on 0.0.0.0 port 22.\n"
        "\n"
        "__CURSOR=s=4e1f1c2a9b6e4a0c8f3b2d1e0a9c8b7d;i=3;b=0123abcd01234567890a0123456789ab;m=3c4d;t=5f0e1d2c3b4a7;x=3\n"
        "__REALTIME_TIMESTAMP=1700000011000000\n"
        "__MONOTONIC_TIMESTAMP=11000000\n"
        "_TRANSPORT=stdout\n"
        "_COMM=myservice\n"
        "MESSAGE=no identifier, no pid, no priority\n"
        "\n";

static void test_sample(void) {
        static struct result res;

        parse_all_ways(sample, sizeof(sample) - 1, &res);
        CHECK(res.n == 3);
        CHECK(res.errors == 0);

        CHECK(res.r[0] == 0);
        CHECK(res.log[0].source == VMGR_AGENT_LOG_KERNEL);
        CHECK(res.log[0].priority == 5);
        /* The kernel's own time: journald's clocks minus the 4 s it read the line late. */
        CHECK(res.log[0].realtime_usec == 1700000001000000);
        CHECK_STREQ(res.log[0].text.buf, "Linux version 6.1.0-28-cloud-amd64");
        CHECK(res.cursor_ok[0]);
        CHECK_STREQ(res.cursor[0], "s=4e1f1c2a9b6e4a0c8f3b2d1e0a9c8b7d;i=1;b=0123abcd01234567890a0123456789ab;m=1a2b;t=5f0e1d2c3b4a5;x=1");

        CHECK(res.r[1] == 0);
        CHECK(res.log[1].source == VMGR_AGENT_LOG_JOURNAL);
        CHECK(res.log[1].priority == 6);
        CHECK(res.log[1].realtime_usec == 1700000009999000); /* the sender's */
        CHECK_STREQ(res.log[1].text.buf, "sshd[123]: Server listening on 0.0.0.0 port 22.");

        CHECK(res.r[2] == 0);
        CHECK(res.log[2].source == VMGR_AGENT_LOG_JOURNAL);
        CHECK(res.log[2].priority == 6);
        CHECK(res.log[2].realtime_usec == 1700000011000000);
        CHECK_STREQ(res.log[2].text.buf, "myservice: no identifier, no pid, no priority");
}

static void test_binary_and_odd(void) {
        static char buf[4 * 1024 * 1024];
        static char huge[1024 * 1024];
        static char longmsg[10000];
        static struct result res;
        size_t n = 0;

        /* A message with a newline, a NUL and a trailing newline: binary. */
        n += put_text(buf + n, "__CURSOR=c1\n__REALTIME_TIMESTAMP=1\nSYSLOG_IDENTIFIER=app\n_PID=7\nPRIORITY=3\n");
        n += put_binary(buf + n, "MESSAGE", "line1\nline2\0end\n", 16);
        n += put_text(buf + n, "\n");
        /* A huge field we do not keep, binary; then a junk line and extra blank lines. */
        memset(huge, 'x', sizeof(huge));
        n += put_text(buf + n, "\n\n-- Boot 0123 --\n");
        n += put_text(buf + n, "__CURSOR=c2\n");
        n += put_binary(buf + n, "COREDUMP", huge, sizeof(huge));
        n += put_text(buf + n, "MESSAGE=first\nMESSAGE=second wins\nPRIORITY=9\nSYSLOG_IDENTIFIER=\n\n");
        /* No MESSAGE at all. */
        n += put_text(buf + n, "__CURSOR=c3\nPRIORITY=1\n\n");
        /* A message longer than a LOG holds, and an over-long cursor. */
        memset(longmsg, 'm', sizeof(longmsg));
        n += put_text(buf + n, "__CURSOR=");
        for (int i = 0; i < JOURNAL_CURSOR_MAX + 10; i++)
                buf[n++] = 'c';
        n += put_text(buf + n, "\n");
        n += put_binary(buf + n, "MESSAGE", longmsg, sizeof(longmsg));
        n += put_text(buf + n, "_TRANSPORT=kernel\nSYSLOG_IDENTIFIER=kernel\n\n");
        /* Bad field names, a bad binary terminator, then a good entry. */
        n += put_text(buf + n, "lower=case\n=novalue\n9DIGIT=x\n");
        n += put_binary(buf + n, "X", "ab", 2);
        n -= 1;
        n += put_text(buf + n, "!broken\n");
        n += put_text(buf + n, "MESSAGE=after the junk \xc3\xa9 \xff\nSYSLOG_IDENTIFIER=ok\n\n");
        CHECK(n <= sizeof(buf));

        parse_all_ways(buf, n, &res);
        CHECK(res.n == 5);

        CHECK(res.r[0] == 0);
        CHECK(res.log[0].priority == 3);
        CHECK_STREQ(res.log[0].text.buf, "app[7]: line1\\x0aline2\\x00end");
        CHECK_STREQ(res.cursor[0], "c1");

        CHECK(res.r[1] == 0);
        CHECK(res.log[1].priority == 6); /* 9 is no priority */
        CHECK(res.log[1].realtime_usec == 0);
        CHECK_STREQ(res.log[1].text.buf, "second wins"); /* an empty identifier is none */
        CHECK_STREQ(res.cursor[1], "c2");

        CHECK(res.r[2] == -ENOMSG);
        CHECK(res.cursor_ok[2]);
        CHECK_STREQ(res.cursor[2], "c3");

        CHECK(res.r[3] == 0);
        CHECK(res.log[3].source == VMGR_AGENT_LOG_KERNEL);
        CHECK(res.log[3].text.len == VMGR_AGENT_LOG_MAX);
        CHECK(res.log[3].text.buf[0] == 'm' && res.log[3].text.buf[VMGR_AGENT_LOG_MAX - 1] == 'm');
        CHECK(!res.cursor_ok[3]); /* cut: no use to --after-cursor */

        CHECK(res.r[4] == 0);
        CHECK_STREQ(res.log[4].text.buf, "ok: after the junk \xc3\xa9 \\xff");
        /* "-- Boot", "lower=case", "=novalue", "9DIGIT=x", the X without its '\n'. */
        CHECK(res.errors == 5);
}

static void test_partial(void) {
        static struct journal_parser p;
        const struct journal_entry *e;
        const char *a = "MESSAGE=one\n", *b = "\nMESSAGE=two\n\n";

        /* Nothing comes out until the empty line; a fed part is consumed whole. */
        journal_parser_init(&p);
        CHECK(journal_parser_feed(&p, a, strlen(a), &e) == strlen(a) && !e);
        /* The first entry ends after one byte; the rest waits for the next call. */
        CHECK(journal_parser_feed(&p, b, strlen(b), &e) == 1 && e);
        CHECK(e->fields[JOURNAL_FIELD_MESSAGE].present);
        CHECK_STREQ(e->message, "one");
        CHECK(journal_parser_feed(&p, b + 1, strlen(b) - 1, &e) == strlen(b) - 1 && e);
        CHECK_STREQ(e->message, "two");
        CHECK(!e->fields[JOURNAL_FIELD_CURSOR].present);
        /* Blank lines alone make no entry. */
        CHECK(journal_parser_feed(&p, "\n\n\n", 3, &e) == 3 && !e);
}

/* What vmgrd's follower (daemon/journal-follow.c) relies on: a stream cut
 * mid-entry and a new one parsed from the start by a parser made ready
 * again gives only whole entries, none twice; a cursor sent as a binary
 * field keeps its NUL and CR LF in the value (len), so the follower can
 * tell it from a text cursor and refuse it. */
static void test_reconnect_and_cursor(void) {
        static struct journal_parser p;
        const struct journal_entry *e;
        const char *first = "__CURSOR=s=a;i=1\nMESSAGE=one\n\n__CURSOR=s=a;i=2\nMESS";
        const char *second = "__CURSOR=s=a;i=2\nMESSAGE=two\n\n";
        char bad[64];
        size_t n = 0, used;

        journal_parser_init(&p);
        used = journal_parser_feed(&p, first, strlen(first), &e);
        CHECK(e && strcmp(e->message, "one") == 0 && strcmp(e->cursor, "s=a;i=1") == 0);
        CHECK(journal_parser_feed(&p, first + used, strlen(first) - used, &e) == strlen(first) - used && !e);
        /* The connection broke: a new stream resumes after "s=a;i=1". */
        journal_parser_init(&p);
        CHECK(journal_parser_feed(&p, second, strlen(second), &e) == strlen(second) && e);
        CHECK_STREQ(e->message, "two");
        CHECK_STREQ(e->cursor, "s=a;i=2");

        n += put_binary(bad + n, "__CURSOR", "s=b\r\nX-A: 1\0z", 13);
        n += put_text(bad + n, "MESSAGE=m\n\n");
        journal_parser_init(&p);
        CHECK(journal_parser_feed(&p, bad, n, &e) == n && e);
        CHECK(e->fields[JOURNAL_FIELD_CURSOR].present && !e->fields[JOURNAL_FIELD_CURSOR].cut);
        CHECK(e->fields[JOURNAL_FIELD_CURSOR].len == 13);
        CHECK(strlen(e->cursor) == 11); /* up to the NUL */
        CHECK_STREQ(e->message, "m");
}

int main(void) {
        test_log_text();
        test_sample();
        test_binary_and_odd();
        test_partial();
        test_reconnect_and_cursor();
        TEST_DONE();
}
