/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-error.h"
#include "bus-util.h"
#include "macro.h"

int bus_emit_changed_va(sd_bus *bus, const char *path, const char *interface, const char *first, va_list ap) {
        const char *names[16];
        size_t n = 0;

        if (!bus)
                return 0;
        for (const char *p = first; p && n < ELEMENTSOF(names) - 1; p = va_arg(ap, const char *))
                names[n++] = p;
        names[n] = NULL;
        return sd_bus_emit_properties_changed_strv(bus, path, interface, (char **) names);
}

int bus_check_caller(sd_bus_message *m, sd_bus_error *error) {
        sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r >= 0) {
                r = sd_bus_creds_get_euid(creds, &uid);
                sd_bus_creds_unref(creds);
        }
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot identify the caller: %s", strerror(-r));
        if (uid != geteuid() && uid != 0)
                return vmgr_bus_error_set(error, -EPERM, "uid %u may not use the vmgrd of uid %u", (unsigned) uid,
                                          (unsigned) geteuid());
        return 0;
}

int bus_append_timings(sd_bus_message *reply, const uint64_t *timings, unsigned n, const char *(*name)(unsigned)) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++)
                if (timings[i] != UINT64_MAX) {
                        r = sd_bus_message_append(reply, "{st}", name(i), timings[i]);
                        if (r < 0)
                                return r;
                }
        return sd_bus_message_close_container(reply);
}

char **strv_free(char **l) {
        if (l)
                for (char **p = l; *p; p++)
                        free(*p);
        free(l);
        return NULL;
}

int strv_push_dup(char ***l, size_t *n, const char *s) {
        char **grown, *copy;

        copy = strdup(s);
        grown = copy ? reallocarray(*l, *n + 2, sizeof(char *)) : NULL;
        if (!grown) {
                free(copy);
                *l = strv_free(*l);
                return -ENOMEM;
        }
        grown[(*n)++] = copy;
        grown[*n] = NULL;
        *l = grown;
        return 0;
}
