/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * NULL-terminated arrays of malloc'd strings ("strv"), the shape sd-bus
 * hands out and takes (node enumerators, read_strv) and the shape of an
 * argv. A NULL list is an empty one.
 */

#include <stdbool.h>
#include <stddef.h>

/* Free every string of l and l itself. Returns NULL, so that
 * "l = strv_free(l);" leaves nothing dangling. */
char **strv_free(char **l);

/* For _cleanup_(strv_freep). */
static inline void strv_freep(char ***l) {
        strv_free(*l);
}

/* Append a copy of s to *l, which holds *n strings, and keep it
 * NULL-terminated. Returns 0, or -ENOMEM after freeing the whole list (then
 * *l is NULL and *n is unchanged), so that a caller building a list has
 * nothing to clean up on failure. */
int strv_push_dup(char ***l, size_t *n, const char *s);

/* The number of strings in l. */
size_t strv_length(char *const *l);

/* Whether l holds a string equal to s. */
bool strv_contains(char *const *l, const char *s);
