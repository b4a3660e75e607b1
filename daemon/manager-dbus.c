/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-error.h"
#include "bus-util.h"
#include "group.h"
#include "log.h"
#include "adopt.h"
#include "manager.h"
#include "netns.h"
#include "vm.h"
#include "vmgr-config.h"

/* Find a group by a caller-supplied name, with the right error for a bad or unknown one. */
static int lookup_group(Manager *m, const char *name, Group **ret, sd_bus_error *error) {
        const char *why;
        Group *g;

        if (vmgr_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid group name \"%s\": %s", name, why);
        g = manager_find_group(m, name);
        if (!g)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_GROUP, "no group '%s'", name);
        *ret = g;
        return 0;
}

static int method_create_group(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(vmgr_spec_freep) VmgrSpec *spec = NULL;
        char spec_error[VMGR_SPEC_ERROR_MAX];
        const char *name, *spec_json, *why;
        Group *g;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &spec_json);
        if (r < 0)
                return r;
        r = bus_check_caller(msg, error);
        if (r < 0)
                return r;
        if (m->shutting_down)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "vmgrd is shutting down");
        if (vmgr_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid group name \"%s\": %s", name, why);

        r = vmgr_spec_parse(spec_json, &spec, spec_error);
        if (r == -EINVAL)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_SPEC, "invalid spec: %s", spec_error);
        if (r < 0)
                return r;

        if (!manager_find_group(m, name)) {
                r = manager_stale_retry(m, name);
                if (r < 0)
                        return vmgr_bus_error_set(error, -VMGR_ERR_BUSY,
                                                  "group '%s' was left by a previous vmgrd and its network cannot be "
                                                  "deleted yet (%m); vmgrd's log says more",
                                                  name);
        }
        r = group_new(m, name, spec_json, spec, &g, error);
        if (r < 0)
                return r;
        spec = NULL; /* the group owns it now */

        (void) sd_bus_emit_object_added(m->bus, g->object_path);
        (void) sd_bus_emit_signal(m->bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GroupNew", "so", g->name,
                                  g->object_path);
        r = group_start(g, msg);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot create group '%s': %m", name);
        return 1; /* the reply follows once the group runs, or failed */
}

static int method_delete_group(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Group *g;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = bus_check_caller(msg, error);
        if (r < 0)
                return r;
        r = lookup_group(m, name, &g, error);
        if (r < 0)
                return r;
        r = group_delete(g, msg);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot delete group '%s': %m", name);
        return 1;
}

static int method_get_group(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Group *g;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = lookup_group(m, name, &g, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", g->object_path);
}

static int method_list_groups(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(so)");
        if (r < 0)
                return r;
        /* Oldest first: the list is kept newest first, so walk it from the end. */
        Group *last = m->groups;
        while (last && last->next)
                last = last->next;
        for (Group *g = last; g; g = g->prev) {
                r = sd_bus_message_append(reply, "(so)", g->name, g->object_path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", VMGR_VERSION);
}

static int property_get_network_mode(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "s", network_mode_to_string(m->network_mode));
}

/* The user and network namespaces of namespace mode, for a harness to
 * setns() into (docs/dbus-api.md). Only vmgrd's user (and root) get here:
 * the access check refuses everyone else first, and they could not use the
 * fds anyway (joining a user namespace needs CAP_SYS_ADMIN in it). */
static int method_open_namespaces(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = bus_check_caller(msg, error);
        if (r < 0)
                return r;
        if (!m->netns)
                return vmgr_bus_error_set(error, -VMGR_BUS_ERR_NOT_SUPPORTED,
                                         "vmgrd runs in host mode: its guests are reachable from its own network "
                                         "namespace, there is none to enter");
        return sd_bus_reply_method_return(msg, "hh", netns_userns_fd(m->netns), netns_netns_fd(m->netns));
}

static int property_get_groups_adopted(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "u", m->groups_adopted);
}

/* Replace this vmgrd with the installed binary, keeping every group: the
 * new one adopts them as after a crash (docs/design.md). The reply goes
 * out first; the caller then sees the bus name change owner. */
static int method_reexec(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = bus_check_caller(msg, error);
        if (r < 0)
                return r;
        r = manager_reexec_check(m, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(msg, NULL);
        if (r < 0)
                return r;
        return manager_reexec_schedule(m);
}

/* A snapshot method call waiting for the worker pool: the store blocks on
 * the file system. The call holds the message; the Manager outlives the
 * pool (manager_free() drains the pool first). */
typedef struct SnapshotCall {
        Manager *manager;
        sd_bus_message *call;
        SnapshotKind kind;
        char name[65];
        SnapshotMeta *list;
        size_t n;
} SnapshotCall;

static void snapshot_call_free(SnapshotCall *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n; i++)
                snapshot_meta_done(&c->list[i]);
        free(c->list);
        sd_bus_message_unref(c->call);
        free(c);
}

/* Queue work for msg. Returns 1 (the reply follows) or a negative errno with error set. */
static int snapshot_call_submit(Manager *m, sd_bus_message *msg, SnapshotKind kind, const char *name,
                                worker_work_t work, worker_done_t done, sd_bus_error *error) {
        SnapshotCall *c;
        int r;

        if (!m->snapshots)
                return vmgr_bus_error_set(error, -VMGR_BUS_ERR_NOT_SUPPORTED, "vmgrd has no snapshot store");
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        c->call = sd_bus_message_ref(msg);
        c->kind = kind;
        snprintf(c->name, sizeof(c->name), "%s", name ?: "");
        r = worker_submit(m->workers, work, done, c);
        if (r < 0) {
                snapshot_call_free(c);
                return vmgr_bus_error_set(error, r, "cannot reach the snapshot store: %m");
        }
        return 1;
}

static int list_snapshots_work(void *userdata) {
        SnapshotCall *c = userdata;

        return snapshot_store_list(c->manager->snapshots, &c->list, &c->n);
}

/* Oldest first, templates and user snapshots alike. */
static int snapshot_compare_created(const void *a, const void *b) {
        const SnapshotMeta *x = a, *y = b;

        if (x->created_usec != y->created_usec)
                return x->created_usec < y->created_usec ? -1 : 1;
        return strcmp(x->name, y->name);
}

static int list_snapshots_reply(SnapshotCall *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (c->n > 0)
                qsort(c->list, c->n, sizeof(*c->list), snapshot_compare_created);
        r = sd_bus_message_new_method_return(c->call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssttts)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->n; i++) {
                const SnapshotMeta *s = &c->list[i];
                r = sd_bus_message_append(reply, "(sssttts)", s->name,
                                          s->kind == SNAPSHOT_TEMPLATE ? "template" : "user", s->shape,
                                          s->size_bytes, s->created_usec, s->last_used_usec, s->source ?: "");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void list_snapshots_done(int result, void *userdata) {
        SnapshotCall *c = userdata;

        if (result >= 0)
                result = list_snapshots_reply(c);
        if (result < 0)
                (void) vmgr_bus_reply_error(c->call, result, "cannot list the snapshots: %m");
        snapshot_call_free(c);
}

static int method_list_snapshots(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        int r;

        r = bus_check_caller(msg, error);
        if (r < 0)
                return r;
        return snapshot_call_submit(userdata, msg, SNAPSHOT_USER, NULL, list_snapshots_work, list_snapshots_done,
                                    error);
}

static int delete_snapshot_work(void *userdata) {
        SnapshotCall *c = userdata;

        return snapshot_store_delete(c->manager->snapshots, c->kind, c->name);
}

static void delete_snapshot_done(int result, void *userdata) {
        SnapshotCall *c = userdata;
        const char *kind = c->kind == SNAPSHOT_TEMPLATE ? "template" : "snapshot";

        if (result == -ENOENT)
                (void) vmgr_bus_reply_error(c->call, -VMGR_ERR_NO_SUCH_SNAPSHOT, "no %s '%s'", kind, c->name);
        else if (result < 0)
                (void) vmgr_bus_reply_error(c->call, result, "cannot delete %s '%s': %m", kind, c->name);
        else
                (void) sd_bus_reply_method_return(c->call, NULL);
        snapshot_call_free(c);
}

/* DeleteSnapshot(name): a user snapshot by its name, a template as
 * "template:SHAPE". The name is checked here, before it reaches a path
 * (and again by the store). */
static int method_delete_snapshot(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        SnapshotKind kind = SNAPSHOT_USER;
        const char *name, *why;
        int r;

        r = bus_method_begin(msg, error, "s", &name);
        if (r < 0)
                return r;
        if (strncmp(name, SNAPSHOT_TEMPLATE_PREFIX, strlen(SNAPSHOT_TEMPLATE_PREFIX)) == 0) {
                kind = SNAPSHOT_TEMPLATE;
                name += strlen(SNAPSHOT_TEMPLATE_PREFIX);
                if (strlen(name) != 64 || strspn(name, "0123456789abcdef") != 64)
                        return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME,
                                                  "invalid template name: \"template:\" and 64 lowercase hex digits");
        } else if (vmgr_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid snapshot name \"%s\": %s", name,
                                          why);
        return snapshot_call_submit(userdata, msg, kind, name, delete_snapshot_work, delete_snapshot_done, error);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("NetworkMode", "s", property_get_network_mode, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("GroupsAdopted", "u", property_get_groups_adopted, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Reexec", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reexec,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenNamespaces", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", user_ns, "h", net_ns),
                                method_open_namespaces, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateGroup", SD_BUS_ARGS("s", name, "s", spec_json), SD_BUS_RESULT("o", group),
                                method_create_group, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteGroup", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_delete_group,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetGroup", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", group), method_get_group,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListGroups", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(so)", groups), method_list_groups,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListSnapshots", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssttts)", snapshots), method_list_snapshots,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteSnapshot", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_delete_snapshot,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("GroupNew", SD_BUS_ARGS("s", name, "o", group), 0),
        SD_BUS_SIGNAL_WITH_ARGS("GroupRemoved", SD_BUS_ARGS("s", name, "o", group), 0),
        SD_BUS_VTABLE_END,
};

static int on_bus_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        log_warning("Lost the connection to the bus; deleting all groups and exiting");
        m->bus = sd_bus_flush_close_unref(m->bus);
        manager_shutdown(m);
        return 0;
}

/* Connect to the session bus as whoever we are now (the service user when
 * started as root). Returns 0 or -errno (logged). */
static int manager_open_bus(Manager *m) {
        int r;

        if (m->bus)
                return 0;
        r = sd_bus_open_user(&m->bus);
        if (r < 0)
                return log_error_errno(r,
                                       "Cannot connect to the session bus (DBUS_SESSION_BUS_ADDRESS=%s) as uid %u: "
                                       "%m; the bus must let vmgrd's user connect",
                                       getenv("DBUS_SESSION_BUS_ADDRESS") ?: "unset", (unsigned) geteuid());
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        return 0;
}

int manager_connect_bus(Manager *m) {
        int r;

        r = manager_open_bus(m);
        if (r < 0)
                return r;

        /* Before any object is published: no call reaches them unchecked. */
        r = bus_install_access_check(m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the check of callers: %m");
        r = sd_bus_match_signal(m->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_bus_disconnected, m);
        if (r >= 0)
                r = sd_bus_add_object_vtable(m->bus, NULL, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, manager_vtable,
                                             m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(m->bus, NULL, VMGR_GROUP_PATH_PREFIX, VMGR_GROUP_INTERFACE,
                                               group_vtable, group_object_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(m->bus, NULL, VMGR_GROUP_PATH_PREFIX, group_node_enumerator, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(m->bus, NULL, VMGR_GROUP_PATH_PREFIX, VMGR_VM_INTERFACE, vm_vtable,
                                               vm_object_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(m->bus, NULL, VMGR_GROUP_PATH_PREFIX, vm_node_enumerator, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(m->bus, NULL, VMGR_MANAGER_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to publish the D-Bus objects: %m");

        r = sd_bus_request_name(m->bus, VMGR_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "%s is already owned on this bus: is another vmgrd running?",
                                       VMGR_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Failed to claim %s as uid %u: %m; the bus must let vmgrd's user connect",
                                       VMGR_BUS_NAME, (unsigned) geteuid());
        return 0;
}
