/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmgrctl snapshot list|create|delete: the user's snapshots (templates
 * vmgrd makes for warm starts, and named user snapshots) through the
 * Manager's ListSnapshots and DeleteSnapshot and the VM's Snapshot.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

/* Saving a VM's memory and disks under emulation takes seconds; a big one
 * longer. */
#define SNAPSHOT_TIMEOUT_USEC (UINT64_C(600) * UINT64_C(1000000))

static const struct output_column snapshot_list_columns[] = {
        { "NAME", "Name" },
        { "KIND", "Kind" },
        { "SIZE", "Size" },
        { "CREATED", "Created" },
        { "LAST-USED", "LastUsed" },
        { "SOURCE", "Source" },
};

/* usec since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into buf. Returns buf. */
static const char *time_format(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / 1000000u);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, 32, "%s", "");
        return buf;
}

/* One row of the list: a new object, or NULL when out of memory. */
static struct json_object *snapshot_row(const char *name, const char *kind, const char *shape, uint64_t size,
                                        uint64_t created, uint64_t last_used, const char *source) {
        _cleanup_json_ struct json_object *row = json_object_new_object();
        _cleanup_free_ char *full = NULL;
        char created_buf[32], used_buf[32];

        if (!row)
                return NULL;
        /* A template goes by "template:SHAPE", the name delete takes. */
        if (streq(kind, "template")) {
                if (asprintf(&full, "%s%s", "template:", name) < 0)
                        return NULL;
                name = full;
        }
        if (json_object_object_add(row, "Name", json_object_new_string(name)) < 0 ||
            json_object_object_add(row, "Kind", json_object_new_string(kind)) < 0 ||
            json_object_object_add(row, "Shape", json_object_new_string(shape)) < 0 ||
            json_object_object_add(row, "Size", json_object_new_uint64(size)) < 0 ||
            json_object_object_add(row, "Created", json_object_new_string(time_format(created, created_buf))) < 0 ||
            json_object_object_add(row, "LastUsed", json_object_new_string(time_format(last_used, used_buf))) < 0 ||
            json_object_object_add(row, "Source", json_object_new_string(source)) < 0)
                return NULL;
        return TAKE_PTR(row);
}

int verb_snapshot_list(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *rows = NULL;
        const char *name, *kind, *shape, *source;
        uint64_t size, created, last_used;
        int r;

        rows = json_object_new_array();
        if (!rows)
                return log_error_errno(-ENOMEM, "%m");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "ListSnapshots", BUS_LONG_TIMEOUT_USEC,
                            &error, &reply, NULL);
        if (r < 0)
                return bus_log_error(bus, &error, r);

        r = sd_bus_message_enter_container(reply, 'a', "(sssttts)");
        if (r < 0)
                return bus_log_parse_error(r);
        while ((r = sd_bus_message_read(reply, "(sssttts)", &name, &kind, &shape, &size, &created, &last_used,
                                        &source)) > 0) {
                struct json_object *row = snapshot_row(name, kind, shape, size, created, last_used, source);

                if (!row || json_object_array_add(rows, row) < 0) {
                        json_object_put(row);
                        return log_error_errno(-ENOMEM, "%m");
                }
        }
        if (r < 0)
                return bus_log_parse_error(r);

        if (o->json)
                r = output_json(rows);
        else
                r = output_table(rows, snapshot_list_columns, ELEMENTSOF(snapshot_list_columns), !o->quiet);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}

int verb_snapshot_create(char **args, size_t n_args, const struct ctl_options *o) {
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
        r = bus_call_method(bus, path, VMGR_VM_INTERFACE, "Snapshot", SNAPSHOT_TIMEOUT_USEC, &error, NULL, "s",
                            args[2]);
        if (r < 0) {
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_METHOD))
                        return log_error_errno(-ERRNO_NOT_FOUND, "group '%s' has no VM '%s'", args[0], args[1]);
                return bus_log_error(bus, &error, r);
        }
        if (!o->quiet)
                printf("snapshot %s saved from %s/%s\n", args[2], args[0], args[1]);
        return 0;
}

int verb_snapshot_delete(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteSnapshot", BUS_LONG_TIMEOUT_USEC,
                            &error, NULL, "s", args[0]);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        return 0;
}
