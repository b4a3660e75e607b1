/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgrctl serve|unserve|served: a group's file server (Group.ServeFile,
 * UnserveFile, ServedFiles). serve opens the file here and hands vmgrd the
 * fd, so vmgrd serves what this user may read, wherever it lies.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addressing.h"
#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

/* Hashing a large file takes a while; vmgrd answers once it is done. */
#define SERVE_TIMEOUT_USEC UINT64_MAX
/* docs/dbus-api.md: the file server listens on the files address, port 8080. */
#define FILES_PORT 8080

static const struct output_column served_columns[] = {
        { "NAME", "Name" },
        { "SIZE", "Size" },
        { "SHA256", "SHA256" },
        { "URL", "URL" },
};

/* "http://[FILES6]:8080/" of the group at path, from its Files6 property:
 * the address derives from vmgrd's uid, which need not be ours (a root
 * vmgrd runs as its service user). Returns 0, or a verbs.h errno after logging. */
static int files_url_base(sd_bus *bus, const char *path, char *buf, size_t size) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *addr = NULL;
        int r;

        r = sd_bus_get_property_string(bus, VMGR_BUS_NAME, path, VMGR_GROUP_INTERFACE, "Files6", &error, &addr);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        snprintf(buf, size, "http://[%s]:%u/", addr, FILES_PORT);
        return 0;
}

static int json_add_string(struct json_object *o, const char *key, const char *value) {
        struct json_object *v = json_object_new_string(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* The group's served files as an array of {Name, Size, SHA256, URL}.
 * Returns 0, or a verbs.h errno after logging. */
static int served_fetch(sd_bus *bus, const char *path, struct json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *files = NULL;
        char base[INET6_ADDRSTRLEN + 32];
        const char *name, *sha256;
        uint64_t size;
        int r;

        r = files_url_base(bus, path, base, sizeof(base));
        if (r < 0)
                return r;
        r = sd_bus_get_property(bus, VMGR_BUS_NAME, path, VMGR_GROUP_INTERFACE, "ServedFiles", &error, &reply,
                                "a(sst)");
        if (r < 0)
                return bus_log_error(bus, &error, r);
        files = json_object_new_array();
        if (!files)
                return log_error_errno(-ENOMEM, "%m");
        r = sd_bus_message_enter_container(reply, 'a', "(sst)");
        if (r < 0)
                return bus_log_parse_error(r);
        while ((r = sd_bus_message_read(reply, "(sst)", &name, &sha256, &size)) > 0) {
                _cleanup_json_ struct json_object *f = json_object_new_object();
                _cleanup_free_ char *url = NULL;
                struct json_object *n;

                if (!f || asprintf(&url, "%s%s", base, name) < 0)
                        return log_error_errno(-ENOMEM, "%m");
                n = json_object_new_uint64(size);
                if (json_add_string(f, "Name", name) < 0 || !n || json_object_object_add(f, "Size", n) < 0 ||
                    json_add_string(f, "SHA256", sha256) < 0 || json_add_string(f, "URL", url) < 0 ||
                    json_object_array_add(files, f) < 0)
                        return log_error_errno(-ENOMEM, "%m");
                f = NULL;
        }
        if (r < 0)
                return bus_log_parse_error(r);
        *ret = TAKE_PTR(files);
        return 0;
}

int verb_serve(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL, *copy = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *name = o->name, *url;
        int r;

        if (!name) {
                copy = strdup(args[1]);
                if (!copy)
                        return log_error_errno(-ENOMEM, "%m");
                name = basename(copy);
        }
        /* O_NONBLOCK: a FIFO must not hang us here; vmgrd refuses it anyway. */
        fd = open(args[1], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_error_errno(errno == ENOENT ? -ENOENT : -EIO, "cannot read %s: %m", args[1]);

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        r = bus_call_method(bus, path, VMGR_GROUP_INTERFACE, "ServeFile", SERVE_TIMEOUT_USEC, &error, &reply, "sh",
                            name, fd);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return log_error_errno(-ERRNO_USAGE, "invalid file name \"%s\": not UTF-8", name);
                if (!o->name && sd_bus_error_has_name(&error, VMGR_ERROR_INVALID_NAME))
                        return log_error_errno(-ERRNO_USAGE, "%s; choose another with --name", error.message);
                return bus_log_error(bus, &error, r);
        }
        r = sd_bus_message_read(reply, "s", &url);
        if (r < 0)
                return bus_log_parse_error(r);

        if (o->json) {
                _cleanup_json_ struct json_object *files = NULL;

                r = served_fetch(bus, path, &files);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < json_object_array_length(files); i++) {
                        struct json_object *f = json_object_array_get_idx(files, i), *n;

                        if (json_object_object_get_ex(f, "Name", &n) && streq(json_object_get_string(n), name))
                                return output_json(f) < 0 ? log_error_errno(-ENOMEM, "%m") : 0;
                }
                /* Unserved meanwhile: what ServeFile said is all there is. */
                _cleanup_json_ struct json_object *f = json_object_new_object();
                if (!f || json_add_string(f, "Name", name) < 0 || json_add_string(f, "URL", url) < 0 ||
                    output_json(f) < 0)
                        return log_error_errno(-ENOMEM, "%m");
                return 0;
        }
        printf("%s\n", url);
        return 0;
}

int verb_unserve(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        r = bus_call_method(bus, path, VMGR_GROUP_INTERFACE, "UnserveFile", 0, &error, NULL, "s", args[1]);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return log_error_errno(-ERRNO_USAGE, "invalid file name \"%s\": not UTF-8", args[1]);
                return bus_log_error(bus, &error, r);
        }
        return 0;
}

int verb_served(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_json_ struct json_object *files = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        r = served_fetch(bus, path, &files);
        if (r < 0)
                return r;
        r = o->json ? output_json(files)
                    : output_table(files, served_columns, ELEMENTSOF(served_columns), !o->quiet);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}
