/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

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
