/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What vmgrctl prints. Every read verb builds one json-c value (an object of
 * "Key": value pairs, or an array of them) and hands it here, so the text and
 * the --json forms always carry the same keys and values.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "json-util.h"
#include "macro.h"


/* Prints "vmgrctl: <message>" on stderr. Returns r, so errors log and return in
 * one step; %m is the words for r (an -errno or -VMGR_ERR_* code, see
 * vmgr_strerror()). */
int log_error_errno(int r, const char *format, ...) _printf_(2, 3);

/* Like log_error_errno(), but %m is the words for reason, the failure that
 * really happened, while r (returned) chooses the exit status the verb
 * documents: "cannot write FILE: Permission denied", still exit 1. */
int log_error_reason(int r, int reason, const char *format, ...) _printf_(3, 4);

/* Formats one value for text output into a new string: strings as they are,
 * numbers in decimal, booleans as yes/no, arrays space-separated.
 * Returns 0, or -ENOMEM. */
int output_value_text(struct json_object *value, char **ret);

/* Prints a value as JSON on stdout: indented on a terminal, one line
 * otherwise (for pipes into jq and scripts). Returns 0, or -ENOMEM. */
int output_json(struct json_object *value);

/* Copies an object with the given keys first, in that order, then any
 * others in the object's order (properties vmgrd adds later still show).
 * Returns 0 and the new object, or -ENOMEM. */
int output_object_order(struct json_object *object, const char *const *keys, size_t n_keys,
                        struct json_object **ret);

/* Prints an object as "Key: value" lines, values aligned in one column, in
 * the object's key order. Returns 0, or -ENOMEM. */
int output_properties(struct json_object *object);

struct output_column {
        const char *header;     /* "NAME" */
        const char *key;        /* "Name" */
};

/* Prints an array of objects as a table of the given columns, each as wide as
 * its widest cell; an empty cell prints as "-" so awk-style field splitting
 * works. legend=false leaves out the header line. Returns 0, or -ENOMEM. */
int output_table(struct json_object *rows, const struct output_column *columns, size_t n_columns, bool legend);

/* Flushes stdout and reports a write error (full disk, closed pipe) once.
 * Returns 0, or -EIO after logging. */
int output_flush(void);
