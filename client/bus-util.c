/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addressing.h"
#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

#define ADVICE_BUS "DBUS_SESSION_BUS_ADDRESS must point at the session bus vmgrd uses"
#define ADVICE_START "start it with 'systemctl --user start vmgrd' or run 'vmgrd'"

/* Says that the bus could not be reached and why, naming the address that
 * was tried the way sd_bus_open_user() chooses it. Returns -EHOSTDOWN. */
static int log_bus_unreachable(const char *address, int r) {
        const char *env = secure_getenv("DBUS_SESSION_BUS_ADDRESS");
        const char *runtime = secure_getenv("XDG_RUNTIME_DIR");

        if (address)
                log_error_errno(r, "cannot connect to the bus at '%s'%s: %m; " ADVICE_BUS, address,
                                env ? "" : " (DBUS_SESSION_BUS_ADDRESS is not set)");
        else if (env)
                log_error_errno(r, "cannot connect to the bus at '%s': %m; " ADVICE_BUS, env);
        else if (runtime)
                log_error_errno(r, "cannot connect to the bus at 'unix:path=%s/bus' (DBUS_SESSION_BUS_ADDRESS is not set): %m; " ADVICE_BUS,
                                runtime);
        else
                log_error_errno(r, "cannot find the session bus: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set; " ADVICE_BUS);
        return -ERRNO_UNREACHABLE;
}

int bus_connect(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_user(&bus);
        if (r < 0)
                return log_bus_unreachable(NULL, r);

        *ret = bus;
        return 0;
}

int bus_call_method(sd_bus *bus, const char *path, const char *interface, const char *member, uint64_t timeout_usec,
                    sd_bus_error *error, sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, VMGR_BUS_NAME, path, interface, member);
        if (r < 0)
                return r;

        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }

        return sd_bus_call(bus, m, timeout_usec, error, ret_reply);
}

/* The errors vmgrd sends with a sentence written for people, and the errno
 * (verbs.h) each exits with: vmgr's own, and the standard names vmgrd uses for
 * arguments it refuses (a usage error, exit 2) and for a name it does not know
 * (a served file, a forward: not found, exit 3). The sentence here is the
 * default, used when vmgrd sent no message. */
static const struct {
        const char *name;
        const char *sentence;
        int errno_value;
} vmgrd_errors[] = {
        { SD_BUS_ERROR_INVALID_ARGS, "invalid arguments", -ERRNO_USAGE },
        { SD_BUS_ERROR_FILE_NOT_FOUND, "not found", -ERRNO_NOT_FOUND },
        { SD_BUS_ERROR_FILE_EXISTS, "it exists already", -EEXIST },
        { VMGR_ERROR_INVALID_NAME, "invalid name", -ERRNO_USAGE },
        { VMGR_ERROR_INVALID_SPEC, "invalid spec", -EBADMSG },
        { VMGR_ERROR_GROUP_EXISTS, "the group already exists", -EEXIST },
        { VMGR_ERROR_NO_SUCH_GROUP, "no such group", -ERRNO_NOT_FOUND },
        { VMGR_ERROR_VM_EXISTS, "the VM already exists", -EEXIST },
        { VMGR_ERROR_NO_SUCH_VM, "no such VM", -ERRNO_NOT_FOUND },
        { VMGR_ERROR_SNAPSHOT_EXISTS, "the snapshot already exists", -EEXIST },
        { VMGR_ERROR_NO_SUCH_SNAPSHOT, "no such snapshot", -ERRNO_NOT_FOUND },
        { VMGR_ERROR_ADDRESS_CONFLICT, "the group's addresses conflict with another group", -EADDRINUSE },
        { VMGR_ERROR_PERMISSION_DENIED, "permission denied", -EPERM },
        { VMGR_ERROR_HELPER_FAILED, "the network helper vmgr-netadm failed", -EIO },
        { VMGR_ERROR_LIMIT_EXCEEDED, "a limit was exceeded", -E2BIG },
        { VMGR_ERROR_BUSY, "the group is busy", -EBUSY },
        { VMGR_ERROR_TIMEOUT, "the operation timed out", -ETIMEDOUT },
        { VMGR_ERROR_FAILED, "the operation failed", -EIO },
};

int bus_log_error(sd_bus *bus, const sd_bus_error *error, int r) {
        const char *address = NULL;

        /* A failed connect, authentication or a dropped connection all leave
         * the bus closed, whatever error name sd-bus made up for it. */
        if (sd_bus_is_open(bus) <= 0) {
                (void) sd_bus_get_address(bus, &address);
                return log_bus_unreachable(address, r);
        }

        if (!sd_bus_error_is_set(error)) {
                log_error_errno(r, "cannot call vmgrd: %m");
                return errno_generic(r);
        }

        if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                log_error_errno(r, "vmgrd is not running on this bus; " ADVICE_START);
                return -ERRNO_UNREACHABLE;
        }
        if (sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY)) {
                log_error_errno(r, "vmgrd exited or stopped answering before it replied");
                return -ECONNRESET;
        }
        if (sd_bus_error_has_name(error, SD_BUS_ERROR_TIMEOUT) || r == -ETIMEDOUT) {
                log_error_errno(r, "vmgrd did not reply in time; it may still be working, check with 'vmgrctl group list'");
                return -ETIMEDOUT;
        }
        if (sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED)) {
                log_error_errno(r, "the bus refused the call to vmgrd: %s", strempty(error->message) ? "access denied" : error->message);
                return -EACCES;
        }

        /* These carry a sentence written for people already. */
        for (size_t i = 0; i < ELEMENTSOF(vmgrd_errors); i++)
                if (sd_bus_error_has_name(error, vmgrd_errors[i].name)) {
                        log_error_errno(r, "%s", strempty(error->message) ? vmgrd_errors[i].sentence : error->message);
                        return vmgrd_errors[i].errno_value;
                }

        if (strempty(error->message))
                log_error_errno(r, "vmgrd call failed: %s", error->name);
        else
                log_error_errno(r, "vmgrd call failed: %s (%s)", error->message, error->name);
        return errno_generic(r);
}

int bus_log_parse_error(int r) {
        log_error_errno(r, "cannot parse vmgrd's reply: %m");
        return errno_generic(r);
}

int bus_log_unsendable(const char *group, const char *vm) {
        const char *reason;

        if (vmgr_name_check(group, &reason) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid group name \"%s\": %s", group, reason);
        if (vm && vmgr_name_check(vm, &reason) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid VM name \"%s\": %s", vm, reason);
        return log_error_errno(-EIO, "cannot build the call to vmgrd");
}

/* Reads the one object path of a reply into a new string. Returns 0, or
 * -errno after logging. */
static int reply_read_path(sd_bus_message *reply, char **ret) {
        const char *path;
        char *copy;
        int r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_log_parse_error(r);
        copy = strdup(path);
        if (!copy)
                return log_error_errno(-ENOMEM, "%m");
        *ret = copy;
        return 0;
}

int bus_group_lookup(sd_bus *bus, const char *group, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GetGroup", 0, &error, &reply, "s", group);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return bus_log_unsendable(group, NULL);
                return bus_log_error(bus, &error, r);
        }
        return reply_read_path(reply, ret);
}

int bus_vm_lookup(sd_bus *bus, const char *group, const char *vm, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *group_path = NULL;
        int r;

        r = bus_group_lookup(bus, group, &group_path);
        if (r < 0)
                return r;

        r = bus_call_method(bus, group_path, VMGR_GROUP_INTERFACE, "GetVM", 0, &error, &reply, "s", vm);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return bus_log_unsendable(group, vm);
                /* Deleted between GetGroup and now. */
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                           SD_BUS_ERROR_UNKNOWN_METHOD))
                        return log_error_errno(-ERRNO_NOT_FOUND, "no group '%s'", group);
                return bus_log_error(bus, &error, r);
        }
        return reply_read_path(reply, ret);
}

int bus_vm_path_name(const char *path, char **ret) {
        _cleanup_free_ char *group = NULL, *vm = NULL;
        int r;

        r = sd_bus_path_decode_many(path, VMGR_GROUP_PATH_PREFIX "/%/vm/%", &group, &vm);
        if (r < 0)
                return r;
        if (r == 0 || strempty(vm))
                return -EINVAL;
        *ret = TAKE_PTR(vm);
        return 0;
}

int bus_get_all(sd_bus *bus, const char *path, const char *interface, struct json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct json_object *props = NULL;
        int r;

        r = bus_call_method(bus, path, "org.freedesktop.DBus.Properties", "GetAll", 0, &error, &reply, "s", interface);
        if (r < 0) {
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                           SD_BUS_ERROR_UNKNOWN_METHOD))
                        return 0;
                return bus_log_error(bus, &error, r);
        }

        r = bus_message_read_properties(reply, &props);
        if (r < 0)
                return bus_log_parse_error(r);
        *ret = props;
        return 1;
}

/* Reads one basic value of the given D-Bus type as JSON. Returns 0, or -errno. */
static int read_basic_json(sd_bus_message *m, char type, struct json_object **ret) {
        union {
                uint8_t u8;
                int16_t s16;
                uint16_t u16;
                int32_t s32;
                uint32_t u32;
                int64_t s64;
                uint64_t u64;
                double d;
                int b;
                const char *s;
        } v;
        struct json_object *j;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;

        switch (type) {
        case 's':
        case 'o':
        case 'g':
                j = json_object_new_string(v.s);
                break;
        case 'b':
                j = json_object_new_boolean(v.b);
                break;
        case 'y':
                j = json_object_new_int64(v.u8);
                break;
        case 'n':
                j = json_object_new_int64(v.s16);
                break;
        case 'q':
                j = json_object_new_int64(v.u16);
                break;
        case 'i':
                j = json_object_new_int64(v.s32);
                break;
        case 'u':
                j = json_object_new_int64(v.u32);
                break;
        case 'x':
                j = json_object_new_int64(v.s64);
                break;
        case 't':
                j = json_object_new_uint64(v.u64);
                break;
        case 'd':
                j = json_object_new_double(v.d);
                break;
        default:
                return -EOPNOTSUPP;
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

static bool type_is_json_basic(char t) {
        return t && strchr("sogbynqiuxtd", t);
}

/* Reads the value the message points at (of any type but a file
 * descriptor) as JSON: a dictionary (a{..}) as an object with its keys as
 * text, other arrays and structs as arrays, a variant as what it holds.
 * Returns 0, or -EOPNOTSUPP for a type with no JSON form, or -errno. */
static int read_value_json(sd_bus_message *m, struct json_object **ret) {
        _cleanup_json_ struct json_object *j = NULL;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        if (type_is_json_basic(type))
                return read_basic_json(m, type, ret);
        if (type != SD_BUS_TYPE_ARRAY && type != SD_BUS_TYPE_STRUCT && type != SD_BUS_TYPE_VARIANT)
                return -EOPNOTSUPP;

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        if (type == SD_BUS_TYPE_VARIANT) {
                r = read_value_json(m, &j);
                if (r < 0)
                        return r;
        } else if (type == SD_BUS_TYPE_ARRAY && contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN) {
                /* "{st}": the entry's contents are "st". */
                _cleanup_free_ char *entry = strndup(contents + 1, strlen(contents) - 2);

                j = json_object_new_object();
                if (!j || !entry)
                        return -ENOMEM;
                while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, entry)) > 0) {
                        _cleanup_json_ struct json_object *key = NULL, *value = NULL;

                        r = read_value_json(m, &key);
                        if (r < 0)
                                return r;
                        r = read_value_json(m, &value);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                        if (json_object_object_add(j, json_object_get_string(key), TAKE_PTR(value)) < 0)
                                return -ENOMEM;
                }
                if (r < 0)
                        return r;
        } else {
                j = json_object_new_array();
                if (!j)
                        return -ENOMEM;
                for (;;) {
                        struct json_object *item;

                        r = sd_bus_message_at_end(m, false);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                break;
                        r = read_value_json(m, &item);
                        if (r < 0)
                                return r;
                        if (json_object_array_add(j, item) < 0) {
                                json_object_put(item);
                                return -ENOMEM;
                        }
                }
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(j);
        return 0;
}

/* Reads the variant the message points at as JSON. Returns 1 and the value,
 * 0 if its type has no JSON form here (the variant is skipped), or -errno. */
static int read_variant_json(sd_bus_message *m, struct json_object **ret) {
        const char *contents;
        int r;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (strchr(contents, SD_BUS_TYPE_UNIX_FD)) {
                r = sd_bus_message_skip(m, "v");
                return r < 0 ? r : 0;
        }
        r = read_value_json(m, ret);
        if (r == -EOPNOTSUPP) {
                r = sd_bus_message_skip(m, "v");
                return r < 0 ? r : 0;
        }
        return r < 0 ? r : 1;
}

int bus_message_read_properties(sd_bus_message *m, struct json_object **ret) {
        _cleanup_json_ struct json_object *props = NULL;
        int r;

        props = json_object_new_object();
        if (!props)
                return -ENOMEM;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        for (;;) {
                _cleanup_json_ struct json_object *value = NULL;
                const char *name;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                r = read_variant_json(m, &value);
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (json_object_object_add(props, name, value) < 0)
                                return -ENOMEM;
                        value = NULL; /* props owns it now */
                }

                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(props);
        return 0;
}

void bus_name_owner(sd_bus *bus, char *buf, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *owner;

        buf[0] = 0;
        if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetNameOwner", NULL, &reply, "s", VMGR_BUS_NAME) >= 0 &&
            sd_bus_message_read(reply, "s", &owner) >= 0)
                snprintf(buf, size, "%s", owner);
}
