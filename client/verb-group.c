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
#include "spec-build.h"
#include "verbs.h"
#include "vmgr-error.h"

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

/* sd-bus refuses to send strings that are not UTF-8, so such a name never
 * reaches vmgrd; say what vmgrd would have said. spec_path is the --spec
 * file or NULL; built says whether --vm options went into the spec.
 * Returns a verbs.h errno. */
static int log_unsendable(const char *name, const char *spec_path, bool built) {
        const char *reason;

        if (vmgr_name_check(name, &reason) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid group name \"%s\": %s", name, reason);
        if (spec_path && !built)
                return log_error_errno(-EBADMSG, "spec %s is not UTF-8 text", spec_label(spec_path));
        if (built)
                return log_error_errno(-EBADMSG, "the spec is not UTF-8 text; check the --vm options%s%s",
                                       spec_path ? " and spec " : "", spec_path ? spec_label(spec_path) : "");
        return log_error_errno(-EIO, "cannot build the call to vmgrd");
}

/* Replaces the VM object paths of a group's "VMs" with the VMs' names: what
 * a person or a script uses with the other verbs. Returns 0, or -ENOMEM. */
static int group_vms_to_names(struct json_object *props) {
        _cleanup_json_ struct json_object *names = NULL;
        struct json_object *paths;
        int r;

        if (!json_object_object_get_ex(props, "VMs", &paths) || !json_object_is_type(paths, json_type_array))
                return 0;

        names = json_object_new_array();
        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(paths); i++) {
                const char *path = json_object_get_string(json_object_array_get_idx(paths, i));
                _cleanup_free_ char *name = NULL;
                struct json_object *s;

                r = bus_vm_path_name(path, &name);
                if (r == -ENOMEM)
                        return r;
                /* Not a path as docs/dbus-api.md describes it: show it as it is. */
                s = json_object_new_string(r < 0 ? path : name);
                if (!s || json_object_array_add(names, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(props, "VMs", names) < 0)
                return -ENOMEM;
        names = NULL; /* props owns it now */
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

        if (group_vms_to_names(props) < 0)
                return log_error_errno(-ENOMEM, "%m");
        return output_object_order(props, group_property_order, ELEMENTSOF(group_property_order), ret) < 0
                       ? log_error_errno(-ENOMEM, "%m")
                       : 0;
}

/* Prints one group as show does. Returns 0, or -errno after logging. */
static int group_print(struct json_object *props, const struct ctl_options *o) {
        int r;

        r = o->json ? output_json(props) : output_properties(props);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}

/* Says why vmgrd refused a spec, naming where the offending part came from:
 * vmgrd only sees one JSON text, vmgrctl knows which VMs came from the file
 * and which from --vm. Returns the errno to exit with. */
static int log_invalid_spec(sd_bus *bus, const sd_bus_error *error, int r, const struct ctl_options *o,
                            size_t n_file) {
        const char *detail;
        size_t index;
        int n = 0;

        if (strempty(error->message))
                return bus_log_error(bus, error, r);
        detail = startswith(error->message, "invalid spec: ");
        if (!detail)
                return o->spec ? log_error_errno(-EBADMSG, "spec %s: %s", spec_label(o->spec), error->message)
                               : bus_log_error(bus, error, r);

        if (o->n_vms > 0 && sscanf(detail, "vms[%zu]%n", &index, &n) == 1 && n > 0 && index >= n_file &&
            index - n_file < o->n_vms)
                return log_error_errno(-EBADMSG, "invalid --vm '%s': %s", o->vms[index - n_file], detail);
        if (o->spec)
                return log_error_errno(-EBADMSG, "invalid spec %s%s: %s", streq(o->spec, "-") ? "" : "in ",
                                       spec_label(o->spec), detail);
        return bus_log_error(bus, error, r);
}

int verb_group_create(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *props = NULL;
        _cleanup_free_ char *file = NULL, *spec = NULL;
        const char *name = args[0], *path;
        size_t n_file = 0;
        int r;

        if (o->spec) {
                r = spec_read(o->spec, &file);
                if (r < 0)
                        return r;
        }
        r = spec_group_build(file, o->spec, o->vms, o->n_vms, &spec, &n_file);
        if (r < 0)
                return r;

        if (o->print_spec) {
                /* Exactly what would be sent; an empty spec prints nothing. */
                if (*spec)
                        printf("%s%s", spec, spec[strlen(spec) - 1] == '\n' ? "" : "\n");
                return 0;
        }

        r = bus_connect(&bus);
        if (r < 0)
                return r;

        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup", BUS_LONG_TIMEOUT_USEC,
                            &error, &reply, "ss", name, spec);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return log_unsendable(name, o->spec, o->n_vms > 0);
                if (sd_bus_error_has_name(&error, VMGR_ERROR_INVALID_SPEC) && (o->spec || o->n_vms > 0))
                        return log_invalid_spec(bus, &error, r, o, n_file);
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

int verb_group_show(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_json_ struct json_object *props = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (o->timings)
                return verb_group_timings(args, n_args, o);

        r = bus_connect(&bus);
        if (r < 0)
                return r;

        r = bus_group_lookup(bus, args[0], &path);
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
                        return log_unsendable(args[0], NULL, false);
                return bus_log_error(bus, &error, r);
        }
        return 0;
}
