/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <systemd/sd-bus.h>

#include "strv.h" /* node enumerators hand sd-bus a strv */

/* Emit PropertiesChanged for the NULL-terminated list of property names
 * that starts with first. Returns what sd-bus returns. */
int bus_emit_changed_va(sd_bus *bus, const char *path, const char *interface, const char *first, va_list ap);

/* Only the daemon's own user (or root) may call methods, whatever the bus
 * policy allows. The uid is the one the bus saw when the caller connected,
 * cached per unique name once bus_install_access_check() ran. Returns 0, or
 * -EPERM with error set to PermissionDenied. */
int bus_check_caller(sd_bus_message *m, sd_bus_error *error);

/* The start of a method handler that takes arguments: bus_check_caller(),
 * then the arguments read as by sd_bus_message_read(m, types, ...).
 * Returns >= 0, or a negative errno (error set for a refused caller). */
int bus_method_begin(sd_bus_message *m, sd_bus_error *error, const char *types, ...);

/* Read an "as" argument into a NULL-terminated list (*ret, NULL when empty),
 * stopping with -E2BIG at its (max + 1)th string: a caller's huge array
 * costs no more than max strings to refuse (sd_bus_message_read_strv()
 * would copy all of it first, in time quadratic in its length). */
int bus_read_strv_limited(sd_bus_message *m, size_t max, char ***ret);

/* Check the caller of every method call that reaches bus (except
 * org.freedesktop.DBus.Peer) before it is dispatched, with
 * bus_check_caller(); install before publishing any object. The check and
 * its cache live as long as the bus. Returns 0 or -errno. */
int bus_install_access_check(sd_bus *bus);

/* Append stage timings as a{st}: name(i) and timings[i] for each of the n
 * stages that completed (timings[i] != UINT64_MAX). Returns 0 or -errno. */
int bus_append_timings(sd_bus_message *reply, const uint64_t *timings, unsigned n, const char *(*name)(unsigned));
