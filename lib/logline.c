/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "logline.h"

#define ESC 0x1b
#define BEL 0x07

/* Index just past the escape sequence that starts at line[i] (an ESC). */
static size_t skip_escape(const char *line, size_t len, size_t i) {
        unsigned char c;

        if (++i >= len)
                return len; /* a lone ESC at the end */
        c = (unsigned char) line[i];
        if (c == '[') {
                /* CSI: parameter bytes 0x30-0x3f, intermediates 0x20-0x2f, a final 0x40-0x7e. */
                for (i++; i < len; i++) {
                        c = (unsigned char) line[i];
                        if (c >= 0x40 && c <= 0x7e)
                                return i + 1;
                        if (c < 0x20 || c > 0x3f)
                                return i; /* malformed: stop before the stray byte */
                }
                return len;
        }
        if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
                /* A string, ended by BEL (OSC only, by custom) or ST (ESC \). */
                for (i++; i < len; i++) {
                        c = (unsigned char) line[i];
                        if (c == BEL)
                                return i + 1;
                        if (c == ESC && i + 1 < len && line[i + 1] == '\\')
                                return i + 2;
                }
                return len;
        }
        /* nF (ESC, intermediates 0x20-0x2f, final 0x30-0x7e) and Fp/Fe/Fs (ESC, one final). */
        while (i < len && (unsigned char) line[i] >= 0x20 && (unsigned char) line[i] <= 0x2f)
                i++;
        return i < len ? i + 1 : len;
}

size_t vmgr_line_strip(char *line, size_t len) {
        size_t out = 0;

        for (size_t i = 0; i < len;) {
                unsigned char c = (unsigned char) line[i];

                if (c == ESC) {
                        i = skip_escape(line, len, i);
                        continue;
                }
                if (c == '\r') {
                        /* Text follows: the terminal would write over what came before. */
                        while (i < len && line[i] == '\r')
                                i++;
                        if (i < len)
                                out = 0;
                        continue;
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                        i++;
                        continue;
                }
                line[out++] = line[i++];
        }
        return out;
}

static void emit(struct vmgr_line_splitter *s, vmgr_line_cb cb, void *userdata) {
        size_t n = vmgr_line_strip(s->buf, s->len);

        s->len = 0;
        cb(s->buf, n, userdata);
}

void vmgr_line_feed(struct vmgr_line_splitter *s, const char *p, size_t n, vmgr_line_cb cb, void *userdata) {
        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t take = nl ? (size_t) (nl - p) : n;
                size_t room = sizeof(s->buf) - s->len;

                if (take >= room) {
                        /* Too long for one line: emit a full piece, go on with the rest. */
                        memcpy(s->buf + s->len, p, room);
                        s->len += room;
                        p += room;
                        n -= room;
                        emit(s, cb, userdata);
                        continue;
                }
                memcpy(s->buf + s->len, p, take);
                s->len += take;
                p += take;
                n -= take;
                if (nl) {
                        p++, n--;
                        emit(s, cb, userdata);
                }
        }
}

void vmgr_line_flush(struct vmgr_line_splitter *s, vmgr_line_cb cb, void *userdata) {
        if (s->len > 0)
                emit(s, cb, userdata);
}
