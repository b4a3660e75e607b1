/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "fileserver-util.h"

bool fileserver_peer_allowed(const struct sockaddr *addr, socklen_t addrlen, const struct in6_addr *prefix6,
                             const struct in6_addr *gateway6) {
        const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *) addr;
        static const uint8_t zero_iid[8];

        if (!addr || addrlen < sizeof(struct sockaddr_in6) || addr->sa_family != AF_INET6)
                return false;
        /* The /64: the first 8 bytes. */
        if (memcmp(sa->sin6_addr.s6_addr, prefix6->s6_addr, 8) != 0)
                return false;
        if (memcmp(sa->sin6_addr.s6_addr + 8, zero_iid, sizeof(zero_iid)) == 0)
                return false;
        return memcmp(&sa->sin6_addr, gateway6, sizeof(*gateway6)) != 0;
}

int served_name_check(const char *name, const char **reason) {
        static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-";
        const char *why = NULL;
        size_t n = strlen(name);

        if (n == 0)
                why = "it is empty";
        else if (n > SERVED_NAME_MAX)
                why = "it is longer than 128 characters";
        else if (strspn(name, allowed) != n)
                why = "only letters, digits, '.', '_', '+' and '-' are allowed";
        else if (name[0] == '.' || name[0] == '-')
                why = "it must not start with '.' or '-'";

        if (why) {
                if (reason)
                        *reason = why;
                return -EINVAL;
        }
        return 0;
}

bool sha256_hex_is_valid(const char *s) {
        return strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64;
}

static const char *skip_ows(const char *p) {
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

/* Reads decimal digits at *p (at least one), saturating at UINT64_MAX.
 * Returns true and advances *p, or false when there is no digit. */
static bool parse_digits(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t n = 0;

        if (*s < '0' || *s > '9')
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                unsigned d = (unsigned) (*s - '0');
                n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
        }
        *p = s;
        *ret = n;
        return true;
}

HttpRange http_range_parse(const char *value, uint64_t size, uint64_t *ret_first, uint64_t *ret_last) {
        uint64_t first = 0, last = UINT64_MAX, suffix = 0;
        bool has_first, has_last;
        const char *p;

        if (!value)
                return HTTP_RANGE_NONE;
        p = skip_ows(value);
        if (strncasecmp(p, "bytes", 5) != 0)
                return HTTP_RANGE_NONE;
        p = skip_ows(p + 5);
        if (*p != '=')
                return HTTP_RANGE_NONE;
        p = skip_ows(p + 1);

        has_first = parse_digits(&p, &first);
        p = skip_ows(p);
        if (*p != '-')
                return HTTP_RANGE_NONE;
        p = skip_ows(p + 1);
        has_last = parse_digits(&p, has_first ? &last : &suffix);
        p = skip_ows(p);
        /* Anything else, a second range included, makes us ignore the header. */
        if (*p != '\0')
                return HTTP_RANGE_NONE;

        if (!has_first) {
                if (!has_last)
                        return HTTP_RANGE_NONE; /* "bytes=-" */
                if (suffix == 0 || size == 0)
                        return HTTP_RANGE_UNSATISFIABLE;
                *ret_first = suffix >= size ? 0 : size - suffix;
                *ret_last = size - 1;
                return HTTP_RANGE_PARTIAL;
        }

        if (has_last && last < first)
                return HTTP_RANGE_NONE;
        if (first >= size)
                return HTTP_RANGE_UNSATISFIABLE;
        *ret_first = first;
        *ret_last = last >= size ? size - 1 : last;
        return HTTP_RANGE_PARTIAL;
}
