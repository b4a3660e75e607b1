/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"
#include "vmgr-error.h"

/* Prints "vmgrctl: <message>" on stderr, %m being the words for reason. */
static void log_error_va(int reason, const char *format, va_list ap) {
        char buf[VMGR_ERROR_MAX];
        _cleanup_free_ char *big = NULL;
        const char *text = buf;
        va_list aq;
        int n;

        /* %m: reason's words, vmgr's own codes included (glibc's %m knows only errno). */
        va_copy(aq, ap);
        n = vmgr_vsnprintf_error(buf, sizeof(buf), reason, format, aq);
        va_end(aq);
        /* Print a long message (a path, a daemon's sentence) whole rather than cut. */
        if (n >= (int) sizeof(buf)) {
                big = malloc((size_t) n + 1);
                if (big) {
                        va_copy(aq, ap);
                        (void) vmgr_vsnprintf_error(big, (size_t) n + 1, reason, format, aq);
                        va_end(aq);
                        text = big;
                }
        }
        fprintf(stderr, "vmgrctl: %s\n", text);
}

int log_error_errno(int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_error_va(r, format, ap);
        va_end(ap);
        return r;
}

int log_error_reason(int r, int reason, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_error_va(reason, format, ap);
        va_end(ap);
        return r;
}

/* Appends one scalar in its text form to an open memstream. */
static void scalar_text(FILE *f, struct json_object *value) {
        switch (json_object_get_type(value)) {
        case json_type_null:
                break;
        case json_type_boolean:
                fputs(json_object_get_boolean(value) ? "yes" : "no", f);
                break;
        case json_type_string:
                fwrite(json_object_get_string(value), 1, (size_t) json_object_get_string_len(value), f);
                break;
        default:
                /* Numbers print in decimal; nested containers (Timings,
                 * ServedFiles) as compact JSON, which --json shows in full. */
                fputs(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), f);
                break;
        }
}

int output_value_text(struct json_object *value, char **ret) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        if (json_object_is_type(value, json_type_array)) {
                size_t n = json_object_array_length(value);

                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                fputc(' ', f);
                        scalar_text(f, json_object_array_get_idx(value, i));
                }
        } else
                scalar_text(f, value);

        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

int output_json(struct json_object *value) {
        int flags = JSON_C_TO_STRING_NOSLASHESCAPE;
        const char *s;

        flags |= isatty(STDOUT_FILENO) ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN;
        s = json_object_to_json_string_ext(value, flags);
        if (!s)
                return -ENOMEM;
        puts(s);
        return 0;
}

int output_object_order(struct json_object *object, const char *const *keys, size_t n_keys,
                        struct json_object **ret) {
        _cleanup_json_ struct json_object *out = NULL;
        struct json_object *v;

        out = json_object_new_object();
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < n_keys; i++)
                if (json_object_object_get_ex(object, keys[i], &v) &&
                    json_object_object_add(out, keys[i], json_object_get(v)) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }

        json_object_object_foreach(object, key, val)
                if (!json_object_object_get_ex(out, key, NULL) &&
                    json_object_object_add(out, key, json_object_get(val)) < 0) {
                        json_object_put(val);
                        return -ENOMEM;
                }

        *ret = TAKE_PTR(out);
        return 0;
}

int output_properties(struct json_object *object) {
        int width = 0;

        json_object_object_foreach(object, key, value_unused) {
                int n = (int) strlen(key);

                (void) value_unused;
                if (n > width)
                        width = n;
        }

        json_object_object_foreach(object, k, value) {
                _cleanup_free_ char *text = NULL;
                int r;

                r = output_value_text(value, &text);
                if (r < 0)
                        return r;
                if (*text)
                        printf("%s:%*s %s\n", k, width - (int) strlen(k), "", text);
                else
                        printf("%s:\n", k); /* no trailing blanks */
        }
        return 0;
}

int output_table(struct json_object *rows, const struct output_column *columns, size_t n_columns, bool legend) {
        size_t n_rows = json_object_array_length(rows);
        _cleanup_free_ char **cells = NULL;
        _cleanup_free_ int *widths = NULL;
        int r = 0;

        cells = calloc(n_rows * n_columns + 1, sizeof(char *));
        widths = calloc(n_columns, sizeof(int));
        if (!cells || !widths)
                return -ENOMEM;

        for (size_t c = 0; c < n_columns; c++)
                widths[c] = legend ? (int) strlen(columns[c].header) : 0;

        for (size_t i = 0; i < n_rows && r >= 0; i++)
                for (size_t c = 0; c < n_columns; c++) {
                        struct json_object *v = NULL;
                        char **cell = &cells[i * n_columns + c];

                        if (json_object_object_get_ex(json_object_array_get_idx(rows, i), columns[c].key, &v))
                                r = output_value_text(v, cell);
                        else
                                *cell = strdup("");
                        if (r < 0 || !*cell) {
                                r = -ENOMEM;
                                break;
                        }
                        if (!**cell) {
                                free(*cell);
                                *cell = strdup("-");
                                if (!*cell) {
                                        r = -ENOMEM;
                                        break;
                                }
                        }
                        if ((int) strlen(*cell) > widths[c])
                                widths[c] = (int) strlen(*cell);
                }

        if (r >= 0) {
                if (legend)
                        for (size_t c = 0; c < n_columns; c++) {
                                if (c + 1 < n_columns)
                                        printf("%-*s  ", widths[c], columns[c].header);
                                else
                                        printf("%s\n", columns[c].header);
                        }
                for (size_t i = 0; i < n_rows; i++)
                        for (size_t c = 0; c < n_columns; c++) {
                                const char *cell = cells[i * n_columns + c];

                                if (c + 1 < n_columns)
                                        printf("%-*s  ", widths[c], cell);
                                else
                                        printf("%s\n", cell);
                        }
        }

        for (size_t i = 0; i < n_rows * n_columns; i++)
                free(cells[i]);
        return r;
}

int output_flush(void) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                log_error_errno(errno > 0 ? -errno : -EIO, "cannot write to standard output: %m");
                return -EIO;
        }
        return 0;
}
