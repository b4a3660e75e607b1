/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <systemd/sd-bus.h>

/* Emit PropertiesChanged for the NULL-terminated list of property names
 * that starts with first. Returns what sd-bus returns. */
int bus_emit_changed_va(sd_bus *bus, const char *path, const char *interface, const char *first, va_list ap);

/* Only the daemon's own user (or root) may call methods, whatever the bus
 * policy allows. Returns 0, or a negative code with error set. */
int bus_check_caller(sd_bus_message *m, sd_bus_error *error);
