/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvconf.h"
#include "macro.h"
#include "vmgr-error.h"

static char *strip(char *s) {
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = 0;
        return s;
}

int vmgr_kvconf_parse(FILE *f, vmgr_kvconf_handler_t handler, void *userdata, char *error, size_t error_size) {
        _cleanup_free_ char *line = NULL;
        size_t allocated = 0;
        unsigned lineno = 0;
        ssize_t n;

        while ((n = getline(&line, &allocated, f)) >= 0) {
                char reason[VMGR_ERROR_MAX] = "";
                char *s, *eq, *key, *value;
                int r;

                lineno++;
                if (n > 4096) {
                        snprintf(error, error_size, "line %u: line is too long", lineno);
                        return -EINVAL;
                }
                if (strlen(line) != (size_t) n) {
                        snprintf(error, error_size, "line %u: contains a NUL byte", lineno);
                        return -EINVAL;
                }
                s = strip(line);
                if (*s == 0 || *s == '#')
                        continue;
                eq = strchr(s, '=');
                if (!eq) {
                        snprintf(error, error_size, "line %u: expected \"key = value\"", lineno);
                        return -EINVAL;
                }
                *eq = 0;
                key = strip(s);
                value = strip(eq + 1);
                if (*key == 0) {
                        snprintf(error, error_size, "line %u: empty key", lineno);
                        return -EINVAL;
                }
                r = handler(key, value, userdata, reason, sizeof(reason));
                if (r < 0) {
                        if (*reason)
                                snprintf(error, error_size, "line %u: %s", lineno, reason);
                        else
                                (void) vmgr_error_printf(error, error_size, r, "line %u: %m", lineno);
                        return r;
                }
        }
        if (ferror(f)) {
                snprintf(error, error_size, "read error");
                return -EIO;
        }
        return 0;
}

int vmgr_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret) {
        unsigned long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != 0 || v < min || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}
