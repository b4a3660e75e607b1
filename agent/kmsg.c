/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kmsg.h"

/* Parse the decimal number at buf[*i..n) up to (not including) a byte
 * that is not a digit. Returns 0, or -EINVAL if there is no digit or it
 * overflows. */
static int parse_u64(const char *buf, size_t n, size_t *i, uint64_t *ret) {
        uint64_t v = 0;
        size_t start = *i;

        while (*i < n && buf[*i] >= '0' && buf[*i] <= '9') {
                unsigned d = (unsigned) (buf[*i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
                (*i)++;
        }
        if (*i == start)
                return -EINVAL;
        *ret = v;
        return 0;
}

int kmsg_parse(const char *buf, size_t n, struct kmsg_record *ret) {
        uint64_t pri, seq, usec;
        bool continuation = false;
        const char *text, *end;
        size_t i = 0;

        if (parse_u64(buf, n, &i, &pri) < 0 || pri > 0x7ff || i >= n || buf[i++] != ',')
                return -EINVAL;
        if (parse_u64(buf, n, &i, &seq) < 0 || i >= n || buf[i++] != ',')
                return -EINVAL;
        if (parse_u64(buf, n, &i, &usec) < 0 || i >= n)
                return -EINVAL;
        /* FLAGS and whatever later kernels add, up to ';' (Linux 3.5 had no FLAGS). */
        if (buf[i] == ',') {
                i++;
                continuation = i < n && buf[i] == 'c';
        } else if (buf[i] != ';')
                return -EINVAL;
        while (i < n && buf[i] != ';') {
                if (buf[i] == '\n' || buf[i] == 0)
                        return -EINVAL;
                i++;
        }
        if (i >= n)
                return -EINVAL;
        i++;

        text = buf + i;
        end = memchr(text, '\n', n - i);
        if (!end)
                end = buf + n;
        {
                const char *nul = memchr(text, 0, (size_t) (end - text));
                if (nul)
                        end = nul;
        }

        *ret = (struct kmsg_record) {
                .seq = seq,
                .usec = usec,
                .priority = (uint8_t) (pri & 7),
                .facility = (uint8_t) (pri >> 3),
                .continuation = continuation,
                .text = text,
                .text_len = (size_t) (end - text),
        };
        return 0;
}

int kmsg_state_format(char *buf, const char *boot_id, uint64_t seq) {
        if (strlen(boot_id) != 36)
                return -EINVAL;
        return snprintf(buf, KMSG_STATE_SIZE + 1, "%s %020" PRIu64 "\n", boot_id, seq);
}

int kmsg_state_parse(const char *s, const char *boot_id, uint64_t *ret_seq) {
        size_t len = strlen(boot_id), i;
        uint64_t seq;

        if (len != 36 || strlen(s) < 38 || s[36] != ' ')
                return -EINVAL;
        i = 37;
        if (parse_u64(s, strlen(s), &i, &seq) < 0 || (s[i] != '\n' && s[i] != 0))
                return -EINVAL;
        if (strncmp(s, boot_id, len) != 0)
                return 0;
        *ret_seq = seq;
        return 1;
}
