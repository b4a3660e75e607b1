/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vmgrctl's side of the bus: connect, call, and turn whatever went wrong
 * into one sentence and an errno from verbs.h.
 */

#include <json-c/json.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/* Calls that make vmgrd build or tear down networks (and later VMs) may take
 * much longer than sd-bus's 25 s default. */
#define BUS_LONG_TIMEOUT_USEC (UINT64_C(120) * UINT64_C(1000000))

/* Connects to the session bus named by DBUS_SESSION_BUS_ADDRESS (else
 * $XDG_RUNTIME_DIR/bus), where vmgrd listens. Returns 0, or -EHOSTDOWN after
 * saying which address was tried. */
int bus_connect(sd_bus **ret);

/* Calls a method on vmgrd with the given timeout (0 = sd-bus default).
 * Returns 0 and the reply, or a negative errno with *error set by the call;
 * if the message could not even be built (a string argument that is not
 * UTF-8), *error stays unset. Logs nothing: callers decide what to say. */
int bus_call_method(sd_bus *bus, const char *path, const char *interface, const char *member, uint64_t timeout_usec,
                    sd_bus_error *error, sd_bus_message **ret_reply, const char *types, ...);

/* Logs why a call failed as one sentence and returns the errno that selects
 * the exit status (verbs.h): -EHOSTDOWN when the bus or vmgrd cannot be
 * reached; -ENXIO for a missing group or VM and for FileNotFound (no such
 * served file, forward); -EINVAL for an invalid name and for InvalidArgs
 * (arguments vmgrd refused); else a generic errno. r is what the call
 * returned. Every verb maps errors through here, so one error name means one
 * exit status whichever verb got it. */
int bus_log_error(sd_bus *bus, const sd_bus_error *error, int r);

/* Logs that a reply from vmgrd did not have the expected shape. Returns a
 * generic errno (never one of verbs.h's three). */
int bus_log_parse_error(int r);

/* Logs why a call naming a group (and VM) could not even be built: sd-bus
 * refuses strings that are not UTF-8, so such a name never reaches vmgrd;
 * says what vmgrd would have said. vm may be NULL. Returns a verbs.h errno. */
int bus_log_unsendable(const char *group, const char *vm);

/* Asks vmgrd for a group's object path (GetGroup). Returns 0 and a new
 * string, or -errno after logging (-ENXIO if there is no such group). */
int bus_group_lookup(sd_bus *bus, const char *group, char **ret);

/* Asks vmgrd for a VM's object path (GetGroup, then the group's GetVM).
 * Returns 0 and a new string, or -errno after logging (-ENXIO if there is no
 * such group or VM). */
int bus_vm_lookup(sd_bus *bus, const char *group, const char *vm, char **ret);

/* The VM name in a VM object path (/org/vmgr1/group/G/vm/V, docs/dbus-api.md),
 * as a new string. Returns 0, -EINVAL if path is not a VM path, or -ENOMEM. */
int bus_vm_path_name(const char *path, char **ret);

/* Reads all properties of interface at path (GetAll) into a JSON object as
 * bus_message_read_properties() does. Returns 1 and the properties; 0 if the
 * object is not there (gone meanwhile); else -errno after logging. */
int bus_get_all(sd_bus *bus, const char *path, const char *interface, struct json_object **ret);

/* Reads an a{sv} (a GetAll reply) into a JSON object, one key per property;
 * strings and object paths become strings, integers numbers, booleans
 * booleans, arrays of those arrays. Types vmgr does not use are skipped.
 * Returns 0, or a negative errno. */
int bus_message_read_properties(sd_bus_message *m, struct json_object **ret);

/* The unique name that owns vmgrd's bus name into buf, "" when it has none
 * (between a vmgrd that went away and the next). */
void bus_name_owner(sd_bus *bus, char *buf, size_t size);
