/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include "journal-export.h"

enum {
        STATE_NAME,      /* reading a field name, or the empty line that ends an entry */
        STATE_TEXT,      /* reading a text value up to '\n' */
        STATE_SIZE,      /* reading a binary value's le64 size */
        STATE_BINARY,    /* reading a binary value's bytes */
        STATE_BINARY_NL, /* the '\n' after a binary value */
        STATE_SKIP_LINE, /* out of step: drop bytes up to '\n' */
};

static const char *const field_names[_JOURNAL_FIELD_MAX] = {
        [JOURNAL_FIELD_CURSOR] = "__CURSOR",
        [JOURNAL_FIELD_REALTIME] = "__REALTIME_TIMESTAMP",
        [JOURNAL_FIELD_MONOTONIC] = "__MONOTONIC_TIMESTAMP",
        [JOURNAL_FIELD_SOURCE_REALTIME] = "_SOURCE_REALTIME_TIMESTAMP",
        [JOURNAL_FIELD_SOURCE_MONOTONIC] = "_SOURCE_MONOTONIC_TIMESTAMP",
        [JOURNAL_FIELD_PRIORITY] = "PRIORITY",
        [JOURNAL_FIELD_IDENTIFIER] = "SYSLOG_IDENTIFIER",
        [JOURNAL_FIELD_COMM] = "_COMM",
        [JOURNAL_FIELD_PID] = "_PID",
        [JOURNAL_FIELD_SYSLOG_PID] = "SYSLOG_PID",
        [JOURNAL_FIELD_TRANSPORT] = "_TRANSPORT",
        [JOURNAL_FIELD_MESSAGE] = "MESSAGE",
};

static void entry_bind(struct journal_entry *e) {
#define BIND(f, a) e->fields[f] = (struct journal_value) { .buf = e->a, .cap = sizeof(e->a) - 1 }
        BIND(JOURNAL_FIELD_CURSOR, cursor);
        BIND(JOURNAL_FIELD_REALTIME, realtime);
        BIND(JOURNAL_FIELD_MONOTONIC, monotonic);
        BIND(JOURNAL_FIELD_SOURCE_REALTIME, source_realtime);
        BIND(JOURNAL_FIELD_SOURCE_MONOTONIC, source_monotonic);
        BIND(JOURNAL_FIELD_PRIORITY, priority);
        BIND(JOURNAL_FIELD_IDENTIFIER, identifier);
        BIND(JOURNAL_FIELD_COMM, comm);
        BIND(JOURNAL_FIELD_PID, pid);
        BIND(JOURNAL_FIELD_SYSLOG_PID, syslog_pid);
        BIND(JOURNAL_FIELD_TRANSPORT, transport);
        BIND(JOURNAL_FIELD_MESSAGE, message);
#undef BIND
}

static void entry_clear(struct journal_entry *e) {
        for (size_t f = 1; f < _JOURNAL_FIELD_MAX; f++) {
                struct journal_value *v = &e->fields[f];
                v->len = 0;
                v->present = v->cut = false;
                v->buf[0] = 0;
        }
}

void journal_parser_init(struct journal_parser *p) {
        memset(p, 0, sizeof(*p));
        p->state = STATE_NAME;
        entry_bind(&p->entry);
        entry_clear(&p->entry);
}

static bool name_char_ok(char c, size_t pos) {
        return (c >= 'A' && c <= 'Z') || c == '_' || (pos > 0 && c >= '0' && c <= '9');
}

/* A field named p->name starts: choose where its value goes. */
static void field_start(struct journal_parser *p) {
        if (!p->in_entry) {
                entry_clear(&p->entry);
                p->in_entry = true;
        }
        p->value = NULL;
        for (size_t f = 1; f < _JOURNAL_FIELD_MAX; f++)
                if (strcmp(p->name, field_names[f]) == 0) {
                        p->value = &p->entry.fields[f];
                        /* The last of repeated fields wins. */
                        p->value->len = 0;
                        p->value->cut = false;
                        p->value->present = true;
                        break;
                }
}

static void value_append(struct journal_parser *p, const char *s, size_t n) {
        struct journal_value *v = p->value;
        size_t k;

        if (!v)
                return;
        k = v->cap - v->len < n ? v->cap - v->len : n;
        memcpy(v->buf + v->len, s, k);
        v->len += k;
        v->buf[v->len] = 0;
        if (k < n)
                v->cut = true;
}

static void name_reset(struct journal_parser *p) {
        p->name_len = 0;
        p->name_bad = false;
        p->name[0] = 0;
        p->value = NULL;
        p->state = STATE_NAME;
}

/* One byte of a field name (or of the empty line that ends an entry).
 * Returns true when it completed an entry. */
static bool name_byte(struct journal_parser *p, char c) {
        if (c == '\n') {
                if (p->name_len == 0) {
                        /* The empty line: the entry is complete. */
                        if (!p->in_entry)
                                return false;
                        p->in_entry = false;
                        return true;
                }
                if (p->name_bad) {
                        /* Not a field ("-- Boot ... --"?): a line to skip. */
                        p->errors++;
                        name_reset(p);
                        return false;
                }
                field_start(p);
                p->size_have = 0;
                p->state = STATE_SIZE;
        } else if (c == '=') {
                if (p->name_len == 0 || p->name_bad) {
                        p->errors++;
                        p->state = STATE_SKIP_LINE;
                        return false;
                }
                field_start(p);
                p->state = STATE_TEXT;
        } else if (p->name_len < JOURNAL_NAME_MAX && name_char_ok(c, p->name_len)) {
                p->name[p->name_len++] = c;
                p->name[p->name_len] = 0;
        } else
                p->name_bad = true;
        return false;
}

/* One byte of a binary field's little-endian 64-bit size; after the eighth,
 * on to its value (or to skipping the line if the size cannot be right). */
static void size_byte(struct journal_parser *p, char c) {
        p->size_bytes[p->size_have++] = (uint8_t) c;
        if (p->size_have < 8)
                return;
        p->left = 0;
        for (int b = 7; b >= 0; b--)
                p->left = p->left << 8 | p->size_bytes[b];
        if (p->left > JOURNAL_BINARY_MAX) {
                /* Out of step: whatever this is, it is not a field. */
                p->errors++;
                if (p->value)
                        p->value->present = false;
                p->value = NULL;
                p->state = STATE_SKIP_LINE;
                return;
        }
        p->state = p->left > 0 ? STATE_BINARY : STATE_BINARY_NL;
}

size_t journal_parser_feed(struct journal_parser *p, const void *buf, size_t n,
                           const struct journal_entry **ret_entry) {
        const char *s = buf;
        size_t i = 0;

        *ret_entry = NULL;
        while (i < n) {
                char c = s[i];
                const char *nl;
                size_t k;

                switch (p->state) {
                case STATE_NAME:
                        i++;
                        if (name_byte(p, c)) {
                                *ret_entry = &p->entry;
                                return i;
                        }
                        break;

                case STATE_TEXT:
                        nl = memchr(s + i, '\n', n - i);
                        k = nl ? (size_t) (nl - (s + i)) : n - i;
                        value_append(p, s + i, k);
                        i += k;
                        if (nl) {
                                i++;
                                name_reset(p);
                        }
                        break;

                case STATE_SIZE:
                        i++;
                        size_byte(p, c);
                        break;

                case STATE_BINARY:
                        k = n - i < p->left ? n - i : (size_t) p->left;
                        value_append(p, s + i, k);
                        i += k;
                        p->left -= k;
                        if (p->left == 0)
                                p->state = STATE_BINARY_NL;
                        break;

                case STATE_BINARY_NL:
                        i++;
                        if (c == '\n')
                                name_reset(p);
                        else {
                                p->errors++;
                                p->state = STATE_SKIP_LINE;
                        }
                        break;

                case STATE_SKIP_LINE:
                        nl = memchr(s + i, '\n', n - i);
                        if (!nl) {
                                i = n;
                                break;
                        }
                        i = (size_t) (nl - s) + 1;
                        name_reset(p);
                        break;
                }
        }
        return i;
}

/* Parse the decimal number in v. Returns 0, or -EINVAL if v is missing,
 * cut, empty, or not a number. */
static int value_u64(const struct journal_value *v, uint64_t *ret) {
        uint64_t x = 0;

        if (!v->present || v->cut || v->len == 0)
                return -EINVAL;
        for (size_t i = 0; i < v->len; i++) {
                unsigned d;
                if (v->buf[i] < '0' || v->buf[i] > '9')
                        return -EINVAL;
                d = (unsigned) (v->buf[i] - '0');
                if (x > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                x = x * 10 + d;
        }
        *ret = x;
        return 0;
}

static bool value_nonempty(const struct journal_value *v) {
        return v->present && v->len > 0;
}

int journal_entry_to_log(const struct journal_entry *e, struct journal_log *ret) {
        const struct journal_value *f = e->fields, *ident = NULL, *pid = NULL, *msg = &f[JOURNAL_FIELD_MESSAGE];
        uint64_t prio, t = 0, mono, src_mono;
        size_t msg_len;

        if (!msg->present)
                return -ENOMSG;

        ret->source = VMGR_AGENT_LOG_JOURNAL;
        if (f[JOURNAL_FIELD_TRANSPORT].present && strcmp(f[JOURNAL_FIELD_TRANSPORT].buf, "kernel") == 0)
                ret->source = VMGR_AGENT_LOG_KERNEL;
        ret->priority = value_u64(&f[JOURNAL_FIELD_PRIORITY], &prio) == 0 && prio <= 7 ? (uint8_t) prio : 6;

        if (value_u64(&f[JOURNAL_FIELD_SOURCE_REALTIME], &t) < 0 || t == 0) {
                t = 0;
                (void) value_u64(&f[JOURNAL_FIELD_REALTIME], &t);
                if (t > 0 && value_u64(&f[JOURNAL_FIELD_MONOTONIC], &mono) == 0 &&
                    value_u64(&f[JOURNAL_FIELD_SOURCE_MONOTONIC], &src_mono) == 0 && src_mono <= mono &&
                    mono - src_mono <= t)
                        t -= mono - src_mono;
        }
        ret->realtime_usec = t;

        if (ret->source != VMGR_AGENT_LOG_KERNEL) {
                if (value_nonempty(&f[JOURNAL_FIELD_IDENTIFIER]))
                        ident = &f[JOURNAL_FIELD_IDENTIFIER];
                else if (value_nonempty(&f[JOURNAL_FIELD_COMM]))
                        ident = &f[JOURNAL_FIELD_COMM];
                if (value_nonempty(&f[JOURNAL_FIELD_PID]))
                        pid = &f[JOURNAL_FIELD_PID];
                else if (value_nonempty(&f[JOURNAL_FIELD_SYSLOG_PID]))
                        pid = &f[JOURNAL_FIELD_SYSLOG_PID];
        }

        log_text_init(&ret->text);
        if (ident) {
                log_text_append(&ret->text, ident->buf, ident->len);
                if (pid) {
                        log_text_append_str(&ret->text, "[");
                        log_text_append(&ret->text, pid->buf, pid->len);
                        log_text_append_str(&ret->text, "]");
                }
                log_text_append_str(&ret->text, ": ");
        }
        /* A trailing newline is the end of the line, not part of it. */
        msg_len = msg->len;
        if (!msg->cut)
                while (msg_len > 0 && msg->buf[msg_len - 1] == '\n')
                        msg_len--;
        log_text_append(&ret->text, msg->buf, msg_len);
        return 0;
}
