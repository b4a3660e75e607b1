/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "macro.h"
#include "vmgr-error.h"

/*
 * Conditions the D-Bus standard names, beyond those errno values map to
 * (EINVAL: InvalidArgs). Daemon-local codes above vmgr's own, passed
 * negated like them, so that callers never spell an error name.
 */
enum {
        VMGR_BUS_ERR_FILE_EXISTS = _VMGR_ERR_MAX, /* org.freedesktop.DBus.Error.FileExists */
        VMGR_BUS_ERR_FILE_NOT_FOUND,              /* org.freedesktop.DBus.Error.FileNotFound */
        VMGR_BUS_ERR_NOT_SUPPORTED,               /* org.freedesktop.DBus.Error.NotSupported */
        _VMGR_BUS_ERR_MAX,
};

/*
 * The one place that turns a failure code (-errno or -VMGR_ERR_*) into a
 * D-Bus error name. The message is a sentence for the user (%m in fmt: the
 * words for r); when fmt is NULL a generic one is made from the code. Returns the (negative) code,
 * as sd-bus method handlers expect, after setting *error.
 */
_printf_(3, 4) int vmgr_bus_error_set(sd_bus_error *error, int r, const char *fmt, ...);

/* Reply to a pending method call with that error. Returns what sd-bus returns. */
_printf_(3, 4) int vmgr_bus_reply_error(sd_bus_message *m, int r, const char *fmt, ...);

/* The D-Bus error name for a failure code. */
const char *vmgr_error_name(int r);
