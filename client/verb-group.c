/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* vmgrctl group create|list|show|delete: thin calls to vmgrd's Manager and
 * Group objects. Names go to vmgrd unchecked, so its validation (and error
 * sentence) is the only one. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addressing.h"
#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

/* Specs are small JSON documents; anything this big is a mistake. */
#define SPEC_SIZE_MAX (1024 * 1024)

/* Properties print in this order; any others vmgrd adds later follow in the
 * order it sends them. */
static const char *const group_property_order[] = {
        "Name", "State", "Bridge", "Prefix6", "Gateway6", "Management6", "Logs6", "Files6", "Subnet4", "Gateway4",
        "Dnsmasq", "DnsmasqRestarts", "RuntimeDirectory", "VMs",
};

static const struct output_column group_list_columns[] = {
        { "NAME", "Name" },
        { "STATE", "State" },
        { "BRIDGE", "Bridge" },
        { "PREFIX6", "Prefix6" },
        { "SUBNET4", "Subnet4" },
};

/* Returns the rest of s after prefix, or NULL if s does not start with it. */
static const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

static const char *spec_label(const char *path) {
        return streq(path, "-") ? "on standard input" : path;
}

/* Reads a spec file, or stdin for "-". Returns 0 and a NUL-terminated
 * string, or -errno after logging. */
static int spec_read(const char *path, char **ret) {
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

/* sd-bus refuses to send strings that are not UTF-8, so such a name never
 * reaches vmgrd; say what vmgrd would have said. Returns a verbs.h errno. */
static int log_unsendable(const char *name, const char *spec_path) {
        const char *reason;

        if (vmgr_name_check(name, &reason) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid group name \"%s\": %s", name, reason);
        if (spec_path)
                return log_error_errno(-EBADMSG, "spec %s is not UTF-8 text", spec_label(spec_path));
        return log_error_errno(-EIO, "cannot build the call to vmgrd");
}

/* Copies props with the keys in group_property_order first. Returns 0, or -ENOMEM. */
static int group_props_order(struct json_object *props, struct json_object **ret) {
        _cleanup_json_ struct json_object *out = NULL;
        struct json_object *v;

        out = json_object_new_object();
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < ELEMENTSOF(group_property_order); i++)
                if (json_object_object_get_ex(props, group_property_order[i], &v) &&
                    json_object_object_add(out, group_property_order[i], json_object_get(v)) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }

        json_object_object_foreach(props, key, val)
                if (!json_object_object_get_ex(out, key, NULL) &&
                    json_object_object_add(out, key, json_object_get(val)) < 0) {
                        json_object_put(val);
                        return -ENOMEM;
                }

        *ret = TAKE_PTR(out);
        return 0;
}

/* Reads all org.vmgr1.Group properties of the group at path. Returns 0 and
 * the properties; 0 and NULL if the group went away meanwhile and missing_ok;
 * else -errno after logging. */
static int group_fetch(sd_bus *bus, const char *name, const char *path, bool missing_ok, struct json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *props = NULL;
        int r;

        r = bus_call_method(bus, path, "org.freedesktop.DBus.Properties", "GetAll", 0, &error, &reply, "s",
                            VMGR_GROUP_INTERFACE);
        if (r < 0) {
                /* Deleted between GetGroup/ListGroups and now. */
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                           SD_BUS_ERROR_UNKNOWN_METHOD, VMGR_ERROR_NO_SUCH_GROUP)) {
                        if (missing_ok) {
                                *ret = NULL;
                                return 0;
                        }
                        return log_error_errno(-ERRNO_NOT_FOUND, "no group '%s'", name);
                }
                return bus_log_error(bus, &error, r);
        }

        r = bus_message_read_properties(reply, &props);
        if (r < 0)
                return bus_log_parse_error(r);

        return group_props_order(props, ret) < 0 ? log_error_errno(-ENOMEM, "%m") : 0;
}

/* Prints one group as show does. Returns 0, or -errno after logging. */
static int group_print(struct json_object *props, const struct ctl_options *o) {
        int r;

        r = o->json ? output_json(props) : output_properties(props);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}

int verb_group_create(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *props = NULL;
        _cleanup_free_ char *spec = NULL;
        const char *name = args[0], *path;
        int r;

        if (o->spec) {
                r = spec_read(o->spec, &spec);
                if (r < 0)
                        return r;
        }

        r = bus_connect(&bus);
        if (r < 0)
                return r;

        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup", BUS_LONG_TIMEOUT_USEC,
                            &error, &reply, "ss", name, spec ?: "");
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return log_unsendable(name, o->spec);
                /* vmgrd cannot know which file the spec came from. */
                if (o->spec && sd_bus_error_has_name(&error, VMGR_ERROR_INVALID_SPEC) && !strempty(error.message)) {
                        const char *detail = startswith(error.message, "invalid spec: ");

                        if (detail)
                                return log_error_errno(-EBADMSG, "invalid spec %s%s: %s", streq(o->spec, "-") ? "" : "in ",
                                                       spec_label(o->spec), detail);
                        return log_error_errno(-EBADMSG, "spec %s: %s", spec_label(o->spec), error.message);
                }
                return bus_log_error(bus, &error, r);
        }

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_log_parse_error(r);

        if (o->quiet)
                return 0;

        r = group_fetch(bus, name, path, false, &props);
        if (r < 0)
                return r;
        return group_print(props, o);
}

/* Orders groups by name for list output. */
static int group_compare(const void *a, const void *b) {
        struct json_object *const *x = a, *const *y = b;
        struct json_object *nx = NULL, *ny = NULL;

        json_object_object_get_ex(*x, "Name", &nx);
        json_object_object_get_ex(*y, "Name", &ny);
        return strcmp(json_object_get_string(nx) ?: "", json_object_get_string(ny) ?: "");
}

int verb_group_list(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *groups = NULL;
        const char *name, *path;
        int r;

        groups = json_object_new_array();
        if (!groups)
                return log_error_errno(-ENOMEM, "%m");

        r = bus_connect(&bus);
        if (r < 0)
                return r;

        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "ListGroups", 0, &error, &reply, NULL);
        if (r < 0)
                return bus_log_error(bus, &error, r);

        r = sd_bus_message_enter_container(reply, 'a', "(so)");
        if (r < 0)
                return bus_log_parse_error(r);
        while ((r = sd_bus_message_read(reply, "(so)", &name, &path)) > 0) {
                struct json_object *props = NULL;

                r = group_fetch(bus, name, path, true, &props);
                if (r < 0)
                        return r;
                if (props && json_object_array_add(groups, props) < 0) {
                        json_object_put(props);
                        return log_error_errno(-ENOMEM, "%m");
                }
        }
        if (r < 0)
                return bus_log_parse_error(r);
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return bus_log_parse_error(r);

        json_object_array_sort(groups, group_compare);

        if (o->json)
                r = output_json(groups);
        else
                r = output_table(groups, group_list_columns, ELEMENTSOF(group_list_columns), !o->quiet);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}

/* Asks vmgrd for a group's object path. Returns 0 and a new string, or
 * -errno after logging (-ENXIO if there is no such group). */
static int group_lookup(sd_bus *bus, const char *name, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        char *copy;
        int r;

        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GetGroup", 0, &error, &reply, "s", name);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return log_unsendable(name, NULL);
                return bus_log_error(bus, &error, r);
        }

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_log_parse_error(r);

        copy = strdup(path);
        if (!copy)
                return log_error_errno(-ENOMEM, "%m");
        *ret = copy;
        return 0;
}

int verb_group_show(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_json_ struct json_object *props = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;

        r = group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;

        r = group_fetch(bus, args[0], path, false, &props);
        if (r < 0)
                return r;
        return group_print(props, o);
}

int verb_group_delete(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;

        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteGroup", BUS_LONG_TIMEOUT_USEC,
                            &error, NULL, "s", args[0]);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return log_unsendable(args[0], NULL);
                return bus_log_error(bus, &error, r);
        }
        return 0;
}
