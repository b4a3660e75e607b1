/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* vmgrctl vm list|show|add|remove|start|shutdown|kill|reboot|restart: thin
 * calls to a group's AddVM/RemoveVM/GetVM and to the org.vmgr1.VM objects.
 * Output names VMs and groups by name, never by object path: names are what
 * the other verbs (and scripts) take. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "spec-build.h"
#include "verbs.h"
#include "vmgr-error.h"

/* Properties print in this order; any others vmgrd adds later follow. */
static const char *const vm_property_order[] = {
        "Name", "Group", "State", "LastError", "Vcpus", "MemoryMiB", "UUID", "Tap", "MAC", "IPv6", "Tap4", "MAC4",
        "IPv4", "ConsoleLog",
};

static const struct output_column vm_list_columns[] = {
        { "NAME", "Name" },
        { "STATE", "State" },
        { "IPV6", "IPv6" },
        { "IPV4", "IPv4" },
};

/* Reads all org.vmgr1.VM properties of the VM at path, "Group" as the group's
 * name. Returns 1 and the properties, 0 if the VM went away meanwhile, or
 * -errno after logging. */
static int vm_fetch(sd_bus *bus, const char *group, const char *path, struct json_object **ret) {
        _cleanup_json_ struct json_object *props = NULL;
        struct json_object *name;
        int r;

        r = bus_get_all(bus, path, VMGR_VM_INTERFACE, &props);
        if (r <= 0)
                return r;

        name = json_object_new_string(group);
        if (!name || json_object_object_add(props, "Group", name) < 0) {
                json_object_put(name);
                return log_error_errno(-ENOMEM, "%m");
        }
        if (output_object_order(props, vm_property_order, ELEMENTSOF(vm_property_order), ret) < 0)
                return log_error_errno(-ENOMEM, "%m");
        return 1;
}

/* Prints one VM as show does. Returns 0, or -errno after logging. */
static int vm_print(struct json_object *props, const struct ctl_options *o) {
        int r;

        r = o->json ? output_json(props) : output_properties(props);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}

/* Fetches and prints the VM at path. Returns 0, or -errno after logging. */
static int vm_fetch_print(sd_bus *bus, const char *group, const char *vm, const char *path,
                          const struct ctl_options *o) {
        _cleanup_json_ struct json_object *props = NULL;
        int r;

        r = vm_fetch(bus, group, path, &props);
        if (r < 0)
                return r;
        if (r == 0)
                return log_error_errno(-ERRNO_NOT_FOUND, "group '%s' has no VM '%s'", group, vm);
        return vm_print(props, o);
}

/* Whether a call failed because its object went away after the lookup. */
static bool error_is_gone(const sd_bus_error *error) {
        return sd_bus_error_has_names(error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                      SD_BUS_ERROR_UNKNOWN_METHOD);
}

/* Reads the object paths of a group's VMs (property VMs), oldest first.
 * Returns 0 and the reply positioned at the array's items, or -errno after
 * logging. */
static int group_vm_paths(sd_bus *bus, const char *group, const char *group_path, sd_bus_message **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = bus_call_method(bus, group_path, "org.freedesktop.DBus.Properties", "Get", 0, &error, &reply, "ss",
                            VMGR_GROUP_INTERFACE, "VMs");
        if (r < 0) {
                if (error_is_gone(&error))
                        return log_error_errno(-ERRNO_NOT_FOUND, "no group '%s'", group);
                return bus_log_error(bus, &error, r);
        }
        r = sd_bus_message_enter_container(reply, 'v', "ao");
        if (r < 0)
                return bus_log_parse_error(r);
        r = sd_bus_message_enter_container(reply, 'a', "o");
        if (r < 0)
                return bus_log_parse_error(r);
        *ret = TAKE_PTR(reply);
        return 0;
}

int verb_vm_list(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *vms = NULL;
        _cleanup_free_ char *group_path = NULL;
        const char *group = args[0], *path;
        int r;

        vms = json_object_new_array();
        if (!vms)
                return log_error_errno(-ENOMEM, "%m");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, group, &group_path);
        if (r < 0)
                return r;
        r = group_vm_paths(bus, group, group_path, &reply);
        if (r < 0)
                return r;

        /* In the group's order (as its spec listed them), not sorted: the
         * order a test set its VMs up in is the one it reads best. */
        while ((r = sd_bus_message_read(reply, "o", &path)) > 0) {
                struct json_object *props = NULL;

                r = vm_fetch(bus, group, path, &props);
                if (r < 0)
                        return r;
                if (r > 0 && json_object_array_add(vms, props) < 0) {
                        json_object_put(props);
                        return log_error_errno(-ENOMEM, "%m");
                }
        }
        if (r < 0)
                return bus_log_parse_error(r);

        if (o->json)
                r = output_json(vms);
        else
                r = output_table(vms, vm_list_columns, ELEMENTSOF(vm_list_columns), !o->quiet);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}

int verb_vm_show(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_vm_lookup(bus, args[0], args[1], &path);
        if (r < 0)
                return r;
        return vm_fetch_print(bus, args[0], args[1], path, o);
}

/* Says why vmgrd refused a VM spec, naming where it came from. Returns the
 * errno to exit with. */
static int log_invalid_vm_spec(sd_bus *bus, const sd_bus_error *error, int r, const char *arg,
                               const struct ctl_options *o) {
        const char *prefix = "invalid spec: ", *detail;
        bool has_options = strchr(arg, ':');

        if (strempty(error->message) || strncmp(error->message, prefix, strlen(prefix)) != 0)
                return bus_log_error(bus, error, r);
        detail = error->message + strlen(prefix);

        if (o->spec && !has_options)
                return log_error_errno(-EBADMSG, "invalid spec %s%s: %s", streq(o->spec, "-") ? "" : "in ",
                                       spec_label(o->spec), detail);
        if (!o->spec && has_options)
                return log_error_errno(-EBADMSG, "invalid VM '%s': %s", arg, detail);
        return bus_log_error(bus, error, r);
}

int verb_vm_add(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *file = NULL, *name = NULL, *spec = NULL, *group_path = NULL;
        const char *group = args[0], *path;
        int r;

        if (o->spec) {
                r = spec_read(o->spec, &file);
                if (r < 0)
                        return r;
        }
        r = spec_vm_build(args[1], file, o->spec, &name, &spec);
        if (r < 0)
                return r;

        if (o->print_spec) {
                printf("%s%s", spec, *spec && spec[strlen(spec) - 1] == '\n' ? "" : "\n");
                return 0;
        }

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, group, &group_path);
        if (r < 0)
                return r;

        /* Returns once the VM runs (or failed to start and is gone again). */
        r = bus_call_method(bus, group_path, VMGR_GROUP_INTERFACE, "AddVM", BUS_LONG_TIMEOUT_USEC, &error, &reply,
                            "ss", name, spec);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error)) {
                        r = bus_log_unsendable(group, name);
                        if (r != -EIO)
                                return r;
                        return log_error_errno(-EBADMSG, "the spec is not UTF-8 text");
                }
                if (error_is_gone(&error))
                        return log_error_errno(-ERRNO_NOT_FOUND, "no group '%s'", group);
                if (sd_bus_error_has_name(&error, VMGR_ERROR_INVALID_SPEC))
                        return log_invalid_vm_spec(bus, &error, r, args[1], o);
                return bus_log_error(bus, &error, r);
        }

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_log_parse_error(r);
        if (o->quiet)
                return 0;
        return vm_fetch_print(bus, group, name, path, o);
}

int verb_vm_remove(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *group_path = NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &group_path);
        if (r < 0)
                return r;

        r = bus_call_method(bus, group_path, VMGR_GROUP_INTERFACE, "RemoveVM", BUS_LONG_TIMEOUT_USEC, &error, NULL,
                            "s", args[1]);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return bus_log_unsendable(args[0], args[1]);
                if (error_is_gone(&error))
                        return log_error_errno(-ERRNO_NOT_FOUND, "no group '%s'", args[0]);
                return bus_log_error(bus, &error, r);
        }
        return 0;
}

/* Looks the VM up and calls one of its methods, waiting up to timeout_usec
 * for the reply. shutdown_usec is Shutdown's argument. Returns 0, or -errno
 * after logging. */
static int vm_call(char **args, const char *member, uint64_t timeout_usec, const uint64_t *shutdown_usec) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_vm_lookup(bus, args[0], args[1], &path);
        if (r < 0)
                return r;

        if (shutdown_usec)
                r = bus_call_method(bus, path, VMGR_VM_INTERFACE, member, timeout_usec, &error, NULL, "t",
                                    *shutdown_usec);
        else
                r = bus_call_method(bus, path, VMGR_VM_INTERFACE, member, timeout_usec, &error, NULL, NULL);
        if (r < 0) {
                if (error_is_gone(&error))
                        return log_error_errno(-ERRNO_NOT_FOUND, "group '%s' has no VM '%s'", args[0], args[1]);
                return bus_log_error(bus, &error, r);
        }
        return 0;
}

int verb_vm_start(char **args, size_t n_args, const struct ctl_options *o) {
        return vm_call(args, "Start", BUS_LONG_TIMEOUT_USEC, NULL);
}

int verb_vm_kill(char **args, size_t n_args, const struct ctl_options *o) {
        return vm_call(args, "Kill", BUS_LONG_TIMEOUT_USEC, NULL);
}

int verb_vm_reboot(char **args, size_t n_args, const struct ctl_options *o) {
        return vm_call(args, "Reboot", BUS_LONG_TIMEOUT_USEC, NULL);
}

int verb_vm_restart(char **args, size_t n_args, const struct ctl_options *o) {
        return vm_call(args, "Restart", BUS_LONG_TIMEOUT_USEC, NULL);
}

int verb_vm_shutdown(char **args, size_t n_args, const struct ctl_options *o) {
        /* vmgrd replies after the clean shutdown, or after the hard stop that
         * follows the timeout: wait for both. 0 waits for the guest for ever,
         * and so does the call (UINT64_MAX: no D-Bus timeout). */
        uint64_t call_timeout = o->timeout_usec == 0 ? UINT64_MAX : o->timeout_usec + BUS_LONG_TIMEOUT_USEC;

        return vm_call(args, "Shutdown", call_timeout, &o->timeout_usec);
}
