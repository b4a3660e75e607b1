/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The journal export format (systemd's "Journal Export Format", what
 * `journalctl --output=export` writes), parsed as a stream: entries are
 * separated by an empty line; a field is "NAME=VALUE\n" when its value is
 * printable text, else "NAME\n", its size as a little-endian u64, the
 * bytes, "\n". Field names are A-Z, 0-9 and _; names starting with "__"
 * are the entry's address (cursor, timestamps).
 *
 * Only the fields a LOG needs are kept, each up to its size; a value that
 * is longer is cut (a cut cursor or number counts as missing). Any other
 * field, however large, is skipped without being stored, so the parser's
 * memory is fixed whatever it is fed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent-proto.h"
#include "log-text.h"

#define JOURNAL_CURSOR_MAX 512
#define JOURNAL_NAME_MAX 64      /* field name (journald allows 64) */
#define JOURNAL_IDENT_MAX 256    /* SYSLOG_IDENTIFIER, _COMM kept */
#define JOURNAL_NUMBER_MAX 24    /* a decimal u64 and then some */
#define JOURNAL_BINARY_MAX (64u * 1024 * 1024) /* a larger binary field means we are out of step */

enum journal_field {
        JOURNAL_FIELD_OTHER,
        JOURNAL_FIELD_CURSOR,            /* __CURSOR */
        JOURNAL_FIELD_REALTIME,          /* __REALTIME_TIMESTAMP */
        JOURNAL_FIELD_MONOTONIC,         /* __MONOTONIC_TIMESTAMP */
        JOURNAL_FIELD_SOURCE_REALTIME,   /* _SOURCE_REALTIME_TIMESTAMP */
        JOURNAL_FIELD_SOURCE_MONOTONIC,  /* _SOURCE_MONOTONIC_TIMESTAMP */
        JOURNAL_FIELD_PRIORITY,          /* PRIORITY */
        JOURNAL_FIELD_IDENTIFIER,        /* SYSLOG_IDENTIFIER */
        JOURNAL_FIELD_COMM,              /* _COMM */
        JOURNAL_FIELD_PID,               /* _PID */
        JOURNAL_FIELD_SYSLOG_PID,        /* SYSLOG_PID */
        JOURNAL_FIELD_TRANSPORT,         /* _TRANSPORT */
        JOURNAL_FIELD_MESSAGE,           /* MESSAGE */
        _JOURNAL_FIELD_MAX,
};

/* One field's value as kept: the first `cap` bytes, NUL-terminated (the
 * value itself may contain NUL and newlines: use len). */
struct journal_value {
        char *buf;
        size_t cap, len;
        bool present, cut;
};

struct journal_entry {
        struct journal_value fields[_JOURNAL_FIELD_MAX];
        char cursor[JOURNAL_CURSOR_MAX + 1];
        char realtime[JOURNAL_NUMBER_MAX + 1], monotonic[JOURNAL_NUMBER_MAX + 1];
        char source_realtime[JOURNAL_NUMBER_MAX + 1], source_monotonic[JOURNAL_NUMBER_MAX + 1];
        char priority[JOURNAL_NUMBER_MAX + 1];
        char identifier[JOURNAL_IDENT_MAX + 1], comm[JOURNAL_IDENT_MAX + 1];
        char pid[JOURNAL_NUMBER_MAX + 1], syslog_pid[JOURNAL_NUMBER_MAX + 1];
        char transport[JOURNAL_NUMBER_MAX + 1];
        /* A LOG text holds at most this many bytes of a message, and
         * escaping only makes it longer: no need to keep more. */
        char message[VMGR_AGENT_LOG_MAX + 1];
};

struct journal_parser {
        int state;
        char name[JOURNAL_NAME_MAX + 1];
        size_t name_len;
        bool name_bad;
        uint8_t size_bytes[8];
        size_t size_have;
        uint64_t left;              /* bytes of a binary value still to come */
        struct journal_value *value; /* where the current value goes, or NULL */
        bool in_entry;              /* a field of the current entry was seen */
        unsigned errors;            /* lines or fields that broke the format, skipped */
        struct journal_entry entry;
};

/* Make p ready for the start of a stream. */
void journal_parser_init(struct journal_parser *p);

/* Consume bytes from buf[0..n) up to and including the end of the next
 * entry, or all of them. Returns how many were consumed, and sets
 * *ret_entry to the completed entry (valid until the next call) or NULL. */
size_t journal_parser_feed(struct journal_parser *p, const void *buf, size_t n,
                           const struct journal_entry **ret_entry);

/* What a LOG says of an entry. */
struct journal_log {
        uint8_t source;   /* VMGR_AGENT_LOG_KERNEL for _TRANSPORT=kernel, else ..._JOURNAL */
        uint8_t priority; /* PRIORITY, 6 (info) if missing or invalid */
        uint64_t realtime_usec;
        struct log_text text; /* "IDENT[PID]: MESSAGE", "IDENT: MESSAGE", or MESSAGE */
};

/* Turn e into a LOG's fields. The time is _SOURCE_REALTIME_TIMESTAMP (the
 * sender's clock) if there is one; for kernel lines, which have
 * _SOURCE_MONOTONIC_TIMESTAMP instead, the realtime of that monotonic
 * time by the entry's own pair of clocks; else __REALTIME_TIMESTAMP (when
 * journald received it). The identifier is SYSLOG_IDENTIFIER or _COMM,
 * the pid _PID or SYSLOG_PID. Returns 0, or -ENOMSG if e has no
 * MESSAGE. */
int journal_entry_to_log(const struct journal_entry *e, struct journal_log *ret);
