/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-error.h"
#include "bus-util.h"
#include "macro.h"

int bus_emit_changed_va(sd_bus *bus, const char *path, const char *interface, const char *first, va_list ap) {
        const char *names[16];
        size_t n = 0;

        if (!bus)
                return 0;
        for (const char *p = first; p && n < ELEMENTSOF(names) - 1; p = va_arg(ap, const char *))
                names[n++] = p;
        names[n] = NULL;
        return sd_bus_emit_properties_changed_strv(bus, path, interface, (char **) names);
}

/* The uid of each unique name that called us. A unique name is never used
 * again in a bus's life and its uid (the bus took it from the socket when
 * the peer connected) never changes, so an entry stays right until the
 * name goes away; entries are dropped then (NameOwnerChanged), and all of
 * them if there are ever more than CALLERS_MAX (a missed signal costs only
 * a new look-up). */
typedef struct CallerUid {
        char *name;
        uid_t uid;
} CallerUid;

typedef struct BusAccess {
        sd_bus *bus;
        void *callers; /* tsearch() tree of CallerUid */
        size_t n_callers;
} BusAccess;

#define CALLERS_MAX 4096

/* The one bus vmgrd serves, once bus_install_access_check() ran. */
static BusAccess *bus_access;

static int caller_compare(const void *a, const void *b) {
        return strcmp(((const CallerUid *) a)->name, ((const CallerUid *) b)->name);
}

static void caller_free(void *p) {
        CallerUid *c = p;

        free(c->name);
        free(c);
}

/* Remember that name has uid; failing to (no memory) only costs a look-up later. */
static void caller_remember(BusAccess *a, const char *name, uid_t uid) {
        CallerUid *c, **slot;

        if (a->n_callers >= CALLERS_MAX) {
                tdestroy(a->callers, caller_free);
                a->callers = NULL;
                a->n_callers = 0;
        }
        c = malloc(sizeof(*c));
        if (!c)
                return;
        *c = (CallerUid) { .name = strdup(name), .uid = uid };
        slot = c->name ? tsearch(c, &a->callers, caller_compare) : NULL;
        if (!slot || *slot != c) {
                /* Out of memory, or known already: keep what the tree has. */
                caller_free(c);
                return;
        }
        a->n_callers++;
}

/* The uid of the peer that sent m: from the cache, else asked of the bus
 * (GetConnectionUnixUser: the uid the kernel gave the bus for the peer's
 * socket, not a /proc look-up that a reused pid could fool). Returns 0 or
 * -errno. */
static int sender_uid(sd_bus_message *m, uid_t *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = sd_bus_message_get_bus(m);
        BusAccess *a = bus_access && bus_access->bus == bus ? bus_access : NULL;
        const char *sender = sd_bus_message_get_sender(m);
        uint32_t uid;
        int r;

        /* vmgrd is only ever on a bus, where every message names its sender. */
        if (!sender || sender[0] != ':')
                return -ENXIO;
        if (a) {
                CallerUid key = { .name = (char *) sender }, **found;

                found = tfind(&key, &a->callers, caller_compare);
                if (found) {
                        *ret = (*found)->uid;
                        return 0;
                }
        }
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionUnixUser", &error, &reply, "s", sender);
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", &uid);
        if (r < 0)
                return r;
        if (a)
                caller_remember(a, sender, uid);
        *ret = uid;
        return 0;
}

int bus_check_caller(sd_bus_message *m, sd_bus_error *error) {
        uid_t uid;
        int r;

        r = sender_uid(m, &uid);
        if (r < 0) {
                char words[128];

                /* The reply says EPERM; the words say why (%m would be EPERM's). */
                return vmgr_bus_error_set(error, -EPERM, "cannot identify the caller: %s",
                                          vmgr_strerror(r, words, sizeof(words)));
        }
        if (uid != geteuid() && uid != 0)
                return vmgr_bus_error_set(error, -EPERM, "uid %u may not use the vmgrd of uid %u", (unsigned) uid,
                                          (unsigned) geteuid());
        return 0;
}

int bus_method_begin(sd_bus_message *m, sd_bus_error *error, const char *types, ...) {
        va_list ap;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_readv(m, types, ap);
        va_end(ap);
        return r;
}

int bus_read_strv_limited(sd_bus_message *m, size_t max, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        size_t n = 0;
        const char *s;
        int r;

        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &s)) > 0) {
                if (n >= max)
                        return -E2BIG;
                r = strv_push_dup(&l, &n, s);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

/* Runs before sd-bus dispatches any message: a method call from anyone but
 * vmgrd's own user or root is answered with PermissionDenied here, whatever
 * object, interface or method it names, so that no handler, property
 * getter, introspection or object enumeration ever runs for such a caller,
 * and its error cannot tell an existing group from a missing one. Only
 * org.freedesktop.DBus.Peer (Ping, GetMachineId) stays open: it says no
 * more than the bus already tells everyone (that org.vmgr1 has an owner;
 * the machine ID is world-readable) and lets anyone check that vmgrd is
 * alive. */
static int on_message_filter(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *interface;

        if (!sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        interface = sd_bus_message_get_interface(m);
        if (interface && streq(interface, "org.freedesktop.DBus.Peer"))
                return 0;
        return bus_check_caller(m, error);
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusAccess *a = userdata;
        const char *name, *old_owner, *new_owner;
        CallerUid key, **found;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || name[0] != ':' || new_owner[0])
                return 0;
        key.name = (char *) name;
        found = tfind(&key, &a->callers, caller_compare);
        if (found) {
                CallerUid *c = *found;

                (void) tdelete(&key, &a->callers, caller_compare);
                caller_free(c);
                a->n_callers--;
        }
        return 0;
}

static void bus_access_free(void *userdata) {
        BusAccess *a = userdata;

        tdestroy(a->callers, caller_free);
        if (bus_access == a)
                bus_access = NULL;
        free(a);
}

int bus_install_access_check(sd_bus *bus) {
        sd_bus_slot *filter = NULL;
        BusAccess *a;
        int r;

        if (bus_access)
                return -EBUSY;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->bus = bus;
        r = sd_bus_add_filter(bus, &filter, on_message_filter, a);
        if (r < 0) {
                free(a);
                return r;
        }
        /* The filter's slot owns the cache from now on and lives as long as the bus. */
        (void) sd_bus_slot_set_destroy_callback(filter, bus_access_free);
        (void) sd_bus_slot_set_floating(filter, 1);
        sd_bus_slot_unref(filter);
        bus_access = a;
        /* Only the bus driver's word counts; the match has the cache for userdata, so it goes with the bus too. */
        return sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                   "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, a);
}

int bus_append_timings(sd_bus_message *reply, const uint64_t *timings, unsigned n, const char *(*name)(unsigned)) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++)
                if (timings[i] != UINT64_MAX) {
                        r = sd_bus_message_append(reply, "{st}", name(i), timings[i]);
                        if (r < 0)
                                return r;
                }
        return sd_bus_message_close_container(reply);
}
