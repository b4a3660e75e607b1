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

size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (strcmp(l[i], s) == 0)
                        return true;
        return false;
}
