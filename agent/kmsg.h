/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The kernel's log as /dev/kmsg gives it (Documentation/ABI/testing/dev-kmsg):
 * every read() returns one record,
 *
 *     PRI,SEQ,USEC,FLAGS[,MORE...];TEXT\n
 *     ␠KEY=VALUE\n            (zero or more continuation lines)
 *
 * PRI is facility << 3 | level (facility 0 for the kernel's own lines, 1
 * for lines written to /dev/kmsg without a prefix), SEQ the record's
 * sequence number (consecutive; a gap means records were overwritten
 * before they were read), USEC the kernel's timestamp (local_clock(),
 * microseconds since boot), FLAGS "-" or "c" (a fragment of a continued
 * line). TEXT has every byte below 0x20, from 0x7f and the backslash
 * escaped as \xNN by the kernel, so it is one line of ASCII.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest record the kernel returns (CONSOLE_EXT_LOG_MAX); a read()
 * with a smaller buffer fails with EINVAL. */
#define KMSG_RECORD_MAX 8192

struct kmsg_record {
        uint64_t seq;
        uint64_t usec;     /* since boot, by the kernel's local_clock() */
        uint8_t priority;  /* 0 (emerg) .. 7 (debug) */
        uint8_t facility;  /* 0 kernel, 1 user, ... */
        bool continuation; /* flag 'c' */
        const char *text;  /* in the buffer parsed, not NUL-terminated */
        size_t text_len;   /* up to the first newline or NUL */
};

/* Parse the record buf[0..n) read from /dev/kmsg. Returns 0, or -EINVAL
 * if its prefix is malformed. */
int kmsg_parse(const char *buf, size_t n, struct kmsg_record *ret);

/* The state file that lets a restarted agent skip what an earlier one of
 * the same boot sent: "BOOT_ID SEQ\n", SEQ the last record sent, written
 * with a fixed width so that it can be rewritten in place. */
#define KMSG_STATE_SIZE 58

/* Write the state line for boot_id (36 characters) and seq into buf
 * (KMSG_STATE_SIZE + 1 bytes). Returns its length, KMSG_STATE_SIZE, or
 * -EINVAL if boot_id does not have 36 characters. */
int kmsg_state_format(char *buf, const char *boot_id, uint64_t seq);

/* Read a state line. Returns 1 and *ret_seq if it is for boot_id, 0 if
 * it is for another boot, -EINVAL if it is malformed. */
int kmsg_state_parse(const char *s, const char *boot_id, uint64_t *ret_seq);
