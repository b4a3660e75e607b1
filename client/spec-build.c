/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "output.h"
#include "spec-build.h"
#include "verbs.h"

/* Specs are small JSON documents; anything this big is a mistake. */
#define SPEC_SIZE_MAX (1024 * 1024)

enum shorthand_type {
        SHORTHAND_FLAG,         /* no value: true */
        SHORTHAND_NUMBER,       /* decimal digits */
        SHORTHAND_PATH,         /* made absolute */
        SHORTHAND_REST,         /* the rest of the argument, commas included */
        SHORTHAND_CONST,        /* no value: the JSON text in .json */
        SHORTHAND_TCP_PORT,     /* decimal digits, as {"tcp": N} */
        SHORTHAND_STRING,       /* the value as it is (up to the next comma) */
};

static const struct {
        const char *key;        /* as written after the colon */
        const char *spec_key;   /* in the spec JSON */
        enum shorthand_type type;
        const char *json;       /* SHORTHAND_CONST's value */
} shorthand_keys[] = {
        { "ipv4", "ipv4", SHORTHAND_FLAG, NULL },
        { "vcpus", "vcpus", SHORTHAND_NUMBER, NULL },
        { "memory", "memory_mib", SHORTHAND_NUMBER, NULL },
        { "kernel", "kernel", SHORTHAND_PATH, NULL },
        { "initrd", "initrd", SHORTHAND_PATH, NULL },
        { "disk", "disk", SHORTHAND_PATH, NULL },
        { "agent", "agent", SHORTHAND_CONST, "true" },
        { "no-agent", "agent", SHORTHAND_CONST, "false" },
        { "uefi", "firmware", SHORTHAND_CONST, "\"uefi\"" },
        { "cloud-init", "cloud_init", SHORTHAND_CONST, "true" },
        { "install-agent", "cloud_init", SHORTHAND_CONST, "{\"install_agent\": true}" },
        { "journal", "journal", SHORTHAND_CONST, "\"gatewayd\"" },
        { "probe-tcp", "ready_probe_host", SHORTHAND_TCP_PORT, NULL },
        { "warm", "warm", SHORTHAND_CONST, "true" },
        { "cold", "warm", SHORTHAND_CONST, "false" },
        { "from-snapshot", "from_snapshot", SHORTHAND_STRING, NULL },
        { "cmdline", "cmdline", SHORTHAND_REST, NULL },
};

#define SHORTHAND_KEYS_TEXT                                                                                  \
        "ipv4, vcpus=N, memory=MIB, kernel=PATH, initrd=PATH, disk=PATH, agent, no-agent, uefi, cloud-init, " \
        "install-agent, journal, probe-tcp=PORT, warm, cold, from-snapshot=NAME, cmdline=TEXT (last)"

const char *spec_label(const char *path) {
        return streq(path, "-") ? "on standard input" : path;
}

int spec_read(const char *path, char **ret) {
        _cleanup_fclose_ FILE *owned = NULL;
        _cleanup_free_ char *buf = NULL;
        FILE *f = stdin;
        size_t n;

        if (!streq(path, "-")) {
                owned = fopen(path, "re");
                if (!owned)
                        return log_error_errno(errno_generic(-errno), "cannot open spec %s: %m", path);
                f = owned;
        }

        buf = malloc(SPEC_SIZE_MAX + 1);
        if (!buf)
                return log_error_errno(-ENOMEM, "cannot read spec %s: %m", spec_label(path));
        n = fread(buf, 1, SPEC_SIZE_MAX + 1, f);
        if (ferror(f))
                return log_error_errno(errno_generic(errno > 0 ? -errno : -EIO), "cannot read spec %s: %m",
                                       spec_label(path));
        if (n > SPEC_SIZE_MAX)
                return log_error_errno(-EFBIG, "spec %s is larger than %d bytes", spec_label(path), SPEC_SIZE_MAX);
        if (memchr(buf, 0, n))
                return log_error_errno(-EBADMSG, "spec %s contains a NUL byte; a spec is JSON text", spec_label(path));
        buf[n] = 0;

        *ret = TAKE_PTR(buf);
        return 0;
}

/* Adds key: value to an object, taking the value. Returns 0, or -ENOMEM after logging. */
static int object_add(struct json_object *o, const char *key, struct json_object *value) {
        if (!value || json_object_object_add(o, key, value) < 0) {
                json_object_put(value);
                return log_error_errno(-ENOMEM, "%m");
        }
        return 0;
}

/* Returns path if absolute, else a new string with the current directory in
 * front (lexically; the file need not exist yet). Returns 0, or -errno after
 * logging. */
static int path_absolute(const char *path, char **ret) {
        _cleanup_free_ char *cwd = NULL;
        char *abs;

        if (path[0] == '/')
                abs = strdup(path);
        else {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return log_error_errno(errno_generic(-errno), "cannot make '%s' an absolute path: %m", path);
                if (asprintf(&abs, "%s%s%s", cwd, streq(cwd, "/") ? "" : "/", path) < 0)
                        abs = NULL;
        }
        if (!abs)
                return log_error_errno(-ENOMEM, "%m");
        *ret = abs;
        return 0;
}

/* Parses decimal digits into a number that fits a JSON integer vmgrd reads
 * as unsigned. Returns 0, or -EINVAL. */
static int number_parse(const char *s, int64_t *ret) {
        int64_t n = 0;

        if (!*s || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        for (; *s; s++) {
                n = n * 10 + (*s - '0');
                if (n > UINT32_MAX)
                        return -EINVAL;
        }
        *ret = n;
        return 0;
}

/* Parses one "KEY[=VALUE]" item, the len bytes at item, and adds it to vm;
 * arg is the whole shorthand, for messages. Returns 0, or -EINVAL after
 * logging. */
static int shorthand_item(struct json_object *vm, const char *item, size_t len, const char *arg, const char *option) {
        _cleanup_free_ char *copy = NULL, *path = NULL;
        const char *eq, *value = NULL;
        size_t i;
        int64_t n;
        int r;

        copy = strndup(item, len);
        if (!copy)
                return log_error_errno(-ENOMEM, "%m");
        eq = strchr(copy, '=');
        if (eq) {
                copy[eq - copy] = 0;
                value = eq + 1;
        }

        if (!*copy)
                return log_error_errno(-ERRNO_USAGE, "%s '%s': empty key; write KEY[=VALUE] items separated by commas",
                                       option, arg);
        for (i = 0; i < ELEMENTSOF(shorthand_keys); i++)
                if (streq(shorthand_keys[i].key, copy))
                        break;
        if (i >= ELEMENTSOF(shorthand_keys))
                return log_error_errno(-ERRNO_USAGE, "%s '%s': unknown key '%s'; keys: " SHORTHAND_KEYS_TEXT, option,
                                       arg, copy);
        if (json_object_object_get_ex(vm, shorthand_keys[i].spec_key, NULL))
                return log_error_errno(-ERRNO_USAGE, "%s '%s': key '%s' is given twice", option, arg, copy);

        if (shorthand_keys[i].type == SHORTHAND_FLAG || shorthand_keys[i].type == SHORTHAND_CONST) {
                if (value)
                        return log_error_errno(-ERRNO_USAGE, "%s '%s': key '%s' is a flag and takes no value", option,
                                               arg, copy);
                if (shorthand_keys[i].type == SHORTHAND_CONST)
                        return object_add(vm, shorthand_keys[i].spec_key, json_tokener_parse(shorthand_keys[i].json));
                return object_add(vm, shorthand_keys[i].spec_key, json_object_new_boolean(true));
        }
        if (strempty(value))
                return log_error_errno(-ERRNO_USAGE, "%s '%s': key '%s' needs a value (%s=...)", option, arg, copy,
                                       copy);

        switch (shorthand_keys[i].type) {
        case SHORTHAND_NUMBER:
                if (number_parse(value, &n) < 0)
                        return log_error_errno(-ERRNO_USAGE, "%s '%s': %s must be a whole number, not '%s'", option,
                                               arg, copy, value);
                return object_add(vm, shorthand_keys[i].spec_key, json_object_new_int64(n));
        case SHORTHAND_TCP_PORT: {
                struct json_object *probe;

                if (number_parse(value, &n) < 0)
                        return log_error_errno(-ERRNO_USAGE, "%s '%s': %s must be a whole number, not '%s'", option,
                                               arg, copy, value);
                probe = json_object_new_object();
                if (!probe)
                        return log_error_errno(-ENOMEM, "%m");
                r = object_add(probe, "tcp", json_object_new_int64(n));
                if (r < 0) {
                        json_object_put(probe);
                        return r;
                }
                return object_add(vm, shorthand_keys[i].spec_key, probe);
        }
        case SHORTHAND_PATH:
                r = path_absolute(value, &path);
                if (r < 0)
                        return r;
                return object_add(vm, shorthand_keys[i].spec_key, json_object_new_string(path));
        default:
                return object_add(vm, shorthand_keys[i].spec_key, json_object_new_string(value));
        }
}

int spec_vm_shorthand_parse(const char *arg, const char *option, struct json_object **ret) {
        _cleanup_json_ struct json_object *vm = NULL;
        const char *colon = strchr(arg, ':'), *p;
        size_t name_len = colon ? (size_t) (colon - arg) : strlen(arg);
        int r;

        if (name_len == 0)
                return log_error_errno(-ERRNO_USAGE, "%s '%s': missing the VM name; write NAME[:KEY[=VALUE],...]",
                                       option, arg);
        if (colon && !colon[1])
                return log_error_errno(-ERRNO_USAGE, "%s '%s': nothing after ':'; keys: " SHORTHAND_KEYS_TEXT, option,
                                       arg);

        vm = json_object_new_object();
        if (!vm)
                return log_error_errno(-ENOMEM, "%m");
        r = object_add(vm, "name", json_object_new_string_len(arg, (int) name_len));
        if (r < 0)
                return r;

        for (p = colon ? colon + 1 : NULL; p;) {
                size_t len = strcspn(p, ",");

                /* cmdline swallows the rest: a kernel command line may hold commas. */
                if (strncmp(p, "cmdline=", strlen("cmdline=")) == 0)
                        len = strlen(p);
                r = shorthand_item(vm, p, len, arg, option);
                if (r < 0)
                        return r;
                p = p[len] == ',' ? p + len + 1 : NULL;
        }

        *ret = TAKE_PTR(vm);
        return 0;
}

/* Parses a spec file's text as a JSON object; white space alone is {}.
 * Returns 0, or -EBADMSG after logging where the JSON is broken. */
static int spec_parse_object(const char *text, const char *path, struct json_object **ret) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_tokener *tok;
        enum json_tokener_error jerr;
        size_t len = strlen(text), end;

        if (strspn(text, " \t\r\n") == len) {
                o = json_object_new_object();
                if (!o)
                        return log_error_errno(-ENOMEM, "%m");
                *ret = TAKE_PTR(o);
                return 0;
        }

        tok = json_tokener_new();
        if (!tok)
                return log_error_errno(-ENOMEM, "%m");
        o = json_tokener_parse_ex(tok, text, (int) len);
        jerr = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        /* Only white space may follow the value. */
        if (o && jerr == json_tokener_success && strspn(text + end, " \t\r\n") != len - end)
                return log_error_errno(-EBADMSG, "invalid spec %s%s: not valid JSON at byte %zu: trailing characters",
                                       streq(path, "-") ? "" : "in ", spec_label(path), end);
        if (!o || jerr != json_tokener_success)
                return log_error_errno(-EBADMSG, "invalid spec %s%s: not valid JSON at byte %zu: %s",
                                       streq(path, "-") ? "" : "in ", spec_label(path), end,
                                       jerr == json_tokener_continue || jerr == json_tokener_success
                                               ? "unexpected end of input"
                                               : json_tokener_error_desc(jerr));
        if (!json_object_is_type(o, json_type_object))
                return log_error_errno(-EBADMSG, "invalid spec %s%s: must be a JSON object",
                                       streq(path, "-") ? "" : "in ", spec_label(path));
        *ret = TAKE_PTR(o);
        return 0;
}

/* Returns the value of a VM object's "name" if it is a string, else NULL. */
static const char *vm_object_name(struct json_object *vm) {
        struct json_object *name;

        if (!json_object_is_type(vm, json_type_object) || !json_object_object_get_ex(vm, "name", &name) ||
            !json_object_is_type(name, json_type_string))
                return NULL;
        return json_object_get_string(name);
}

/* The JSON text vmgrctl sends: one line, "/" unescaped. Returns 0 and a new
 * string, or -ENOMEM after logging. */
static int spec_to_text(struct json_object *o, char **ret) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        char *copy = s ? strdup(s) : NULL;

        if (!copy)
                return log_error_errno(-ENOMEM, "%m");
        *ret = copy;
        return 0;
}

int spec_group_build(const char *spec_text, const char *spec_path, char *const *vms, size_t n_vms, char **ret,
                     size_t *ret_n_file) {
        _cleanup_json_ struct json_object *spec = NULL;
        struct json_object *array;
        size_t n_file;
        int r;

        if (n_vms == 0) {
                char *copy = strdup(spec_text ?: "");

                if (!copy)
                        return log_error_errno(-ENOMEM, "%m");
                *ret = copy;
                *ret_n_file = 0; /* not known: vmgrd reads the file */
                return 0;
        }

        if (spec_text) {
                r = spec_parse_object(spec_text, spec_path, &spec);
                if (r < 0)
                        return r;
        } else {
                spec = json_object_new_object();
                if (!spec)
                        return log_error_errno(-ENOMEM, "%m");
        }

        if (!json_object_object_get_ex(spec, "vms", &array)) {
                r = object_add(spec, "vms", json_object_new_array());
                if (r < 0)
                        return r;
                json_object_object_get_ex(spec, "vms", &array);
        } else if (!json_object_is_type(array, json_type_array))
                return log_error_errno(-EBADMSG, "invalid spec %s%s: vms: must be an array",
                                       streq(spec_path, "-") ? "" : "in ", spec_label(spec_path));
        n_file = json_object_array_length(array);

        for (size_t i = 0; i < n_vms; i++) {
                _cleanup_json_ struct json_object *vm = NULL;
                const char *name;
                size_t n;

                r = spec_vm_shorthand_parse(vms[i], "--vm", &vm);
                if (r < 0)
                        return r;
                name = vm_object_name(vm);

                n = json_object_array_length(array);
                for (size_t j = 0; j < n; j++) {
                        const char *other = vm_object_name(json_object_array_get_idx(array, j));

                        if (!other || !streq(other, name))
                                continue;
                        if (j < n_file)
                                return log_error_errno(-ERRNO_USAGE, "--vm '%s': VM name \"%s\" is in spec %s already",
                                                       vms[i], name, spec_label(spec_path));
                        return log_error_errno(-ERRNO_USAGE, "--vm '%s': VM name \"%s\" is given twice", vms[i],
                                               name);
                }

                if (json_object_array_add(array, vm) < 0)
                        return log_error_errno(-ENOMEM, "%m");
                vm = NULL; /* the array owns it now */
        }

        r = spec_to_text(spec, ret);
        if (r < 0)
                return r;
        *ret_n_file = n_file;
        return 0;
}

int spec_vm_build(const char *arg, const char *spec_text, const char *spec_path, char **ret_name, char **ret_spec) {
        _cleanup_json_ struct json_object *vm = NULL, *file = NULL;
        _cleanup_free_ char *name = NULL, *text = NULL;
        int r;

        r = spec_vm_shorthand_parse(arg, "VM", &vm);
        if (r < 0)
                return r;
        name = strdup(vm_object_name(vm));
        if (!name)
                return log_error_errno(-ENOMEM, "%m");

        if (spec_text && !strchr(arg, ':'))
                text = strdup(spec_text);
        else if (spec_text) {
                r = spec_parse_object(spec_text, spec_path, &file);
                if (r < 0)
                        return r;
                json_object_object_foreach(vm, key, value) {
                        if (json_object_object_get_ex(file, key, NULL)) {
                                if (streq(key, "name"))
                                        continue; /* vmgrd checks that it is the same */
                                return log_error_errno(-ERRNO_USAGE, "VM '%s': key \"%s\" is set in spec %s too",
                                                       arg, key, spec_label(spec_path));
                        }
                        r = object_add(file, key, json_object_get(value));
                        if (r < 0)
                                return r;
                }
                r = spec_to_text(file, &text);
                if (r < 0)
                        return r;
        } else {
                r = spec_to_text(vm, &text);
                if (r < 0)
                        return r;
        }
        if (!text)
                return log_error_errno(-ENOMEM, "%m");

        *ret_name = TAKE_PTR(name);
        *ret_spec = TAKE_PTR(text);
        return 0;
}
