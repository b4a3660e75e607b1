/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "log-text.h"

void log_text_init(struct log_text *t) {
        t->buf[0] = 0;
        t->len = 0;
        t->full = false;
}

/* Length of the valid UTF-8 character (2..4 bytes) at s[0..n), or 0 if
 * there is none: overlong forms, surrogates and code points above
 * U+10FFFF are invalid (RFC 3629). */
static size_t utf8_char_len(const unsigned char *s, size_t n) {
        unsigned char c = s[0];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */

        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0; /* overlong */
                else if (c == 0xed)
                        hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90; /* overlong */
                else if (c == 0xf4)
                        hi = 0x8f; /* above U+10FFFF */
        } else
                return 0;
        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
        return len;
}

void log_text_append(struct log_text *t, const char *src, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *s = (const unsigned char *) src;
        size_t i = 0;

        while (i < n && !t->full) {
                unsigned char c = s[i];
                size_t k = 1;

                if (c >= 0x80)
                        k = utf8_char_len(s + i, n - i);
                if ((c < 0x20 || c == 0x7f) || k == 0) {
                        if (VMGR_AGENT_LOG_MAX - t->len < 4) {
                                t->full = true;
                                break;
                        }
                        t->buf[t->len++] = '\\';
                        t->buf[t->len++] = 'x';
                        t->buf[t->len++] = hex[c >> 4];
                        t->buf[t->len++] = hex[c & 15];
                        i++;
                        continue;
                }
                if (VMGR_AGENT_LOG_MAX - t->len < k) {
                        t->full = true;
                        break;
                }
                memcpy(t->buf + t->len, s + i, k);
                t->len += k;
                i += k;
        }
        t->buf[t->len] = 0;
}

void log_text_append_str(struct log_text *t, const char *s) {
        log_text_append(t, s, strlen(s));
}
