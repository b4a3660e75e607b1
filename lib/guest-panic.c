/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "guest-panic.h"
#include "macro.h"

#define PANIC_PREFIX "Kernel panic - not syncing: "

/* Where the text of a kernel log line starts: after "[ 12.345678] " if the
 * line has such a time stamp (printk.time=1, Debian's default). */
static size_t after_timestamp(const char *line, size_t len) {
        size_t i = 0;

        if (len == 0 || line[0] != '[')
                return 0;
        for (i = 1; i < len && line[i] != ']'; i++)
                if (line[i] != ' ' && line[i] != '.' && (line[i] < '0' || line[i] > '9'))
                        return 0;
        if (i == len)
                return 0;
        for (i++; i < len && line[i] == ' '; i++)
                ;
        return i;
}

int vmgr_kernel_panic_message(const char *line, size_t len, char *buf, size_t size) {
        size_t start = after_timestamp(line, len), n = 0, max;
        const char *msg;

        if (size < 2 || len - start < strlen(PANIC_PREFIX) ||
            memcmp(line + start, PANIC_PREFIX, strlen(PANIC_PREFIX)) != 0)
                return 0;
        msg = line + start + strlen(PANIC_PREFIX);
        len -= start + strlen(PANIC_PREFIX);
        while (len > 0 && *msg == ' ')
                msg++, len--;
        max = MIN(size - 1, (size_t) VMGR_PANIC_MESSAGE_MAX);
        for (size_t i = 0; i < len && n < max; i++) {
                unsigned char ch = (unsigned char) msg[i];
                buf[n++] = ch >= 0x20 && ch < 0x7f ? (char) ch : '?';
        }
        while (n > 0 && buf[n - 1] == ' ')
                n--;
        if (n == 0)
                buf[n++] = '?';
        buf[n] = 0;
        return 1;
}
