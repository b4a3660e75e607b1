/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <stddef.h>

/*
 * vmgr's D-Bus error names (docs/dbus-api.md). The daemon maps -errno and
 * these conditions to names in one place (daemon/bus-error.c); the client
 * turns them back into one sentence.
 */

#define VMGR_ERROR_PREFIX "org.vmgr1.Error."
#define VMGR_ERROR_INVALID_NAME "org.vmgr1.Error.InvalidName"
#define VMGR_ERROR_INVALID_SPEC "org.vmgr1.Error.InvalidSpec"
#define VMGR_ERROR_GROUP_EXISTS "org.vmgr1.Error.GroupExists"
#define VMGR_ERROR_NO_SUCH_GROUP "org.vmgr1.Error.NoSuchGroup"
#define VMGR_ERROR_VM_EXISTS "org.vmgr1.Error.VMExists"
#define VMGR_ERROR_NO_SUCH_VM "org.vmgr1.Error.NoSuchVM"
#define VMGR_ERROR_ADDRESS_CONFLICT "org.vmgr1.Error.AddressConflict"
#define VMGR_ERROR_PERMISSION_DENIED "org.vmgr1.Error.PermissionDenied"
#define VMGR_ERROR_HELPER_FAILED "org.vmgr1.Error.HelperFailed"
#define VMGR_ERROR_LIMIT_EXCEEDED "org.vmgr1.Error.LimitExceeded"
#define VMGR_ERROR_BUSY "org.vmgr1.Error.Busy"
#define VMGR_ERROR_TIMEOUT "org.vmgr1.Error.Timeout"
#define VMGR_ERROR_FAILED "org.vmgr1.Error.Failed"
#define VMGR_ERROR_NO_SUCH_SNAPSHOT "org.vmgr1.Error.NoSuchSnapshot"
#define VMGR_ERROR_SNAPSHOT_EXISTS "org.vmgr1.Error.SnapshotExists"

/*
 * Error messages for a caller. Every function that fills a caller's buffer
 * with a sentence takes (char *error, size_t error_size); callers size the
 * buffer VMGR_ERROR_MAX unless a wire format fixes it (the helper's reply
 * message: VMGR_NETADM_MESSAGE_MAX). A longer sentence is cut, not
 * overflowed.
 */
#define VMGR_ERROR_MAX 512

#define VMGR_BUS_NAME "org.vmgr1"
#define VMGR_MANAGER_PATH "/org/vmgr1"
#define VMGR_GROUP_PATH_PREFIX "/org/vmgr1/group"
#define VMGR_MANAGER_INTERFACE "org.vmgr1.Manager"
#define VMGR_GROUP_INTERFACE "org.vmgr1.Group"
#define VMGR_VM_INTERFACE "org.vmgr1.VM"

/*
 * vmgr's own failure codes. Functions return them negated, like -errno, so
 * one int carries either; they sit above any errno value.
 */
enum vmgr_error_code {
        _VMGR_ERR_BASE = 0x10000,
        VMGR_ERR_INVALID_NAME,
        VMGR_ERR_INVALID_SPEC,
        VMGR_ERR_GROUP_EXISTS,
        VMGR_ERR_NO_SUCH_GROUP,
        VMGR_ERR_VM_EXISTS,
        VMGR_ERR_NO_SUCH_VM,
        VMGR_ERR_ADDRESS_CONFLICT,
        VMGR_ERR_HELPER_FAILED,
        VMGR_ERR_LIMIT_EXCEEDED,
        VMGR_ERR_BUSY,
        VMGR_ERR_TIMEOUT,
        VMGR_ERR_NO_SUCH_SNAPSHOT,
        VMGR_ERR_SNAPSHOT_EXISTS,
        _VMGR_ERR_MAX,
};

/* The words for error: strerror()'s for an errno value, a short phrase for
 * one of vmgr's own codes above; either sign. Thread-safe: the text is
 * written to buf (size bytes) or is a constant. Returns the text. */
const char *vmgr_strerror(int error, char *buf, size_t size);

/* vsnprintf() into buf, where every %m in fmt stands for
 * vmgr_strerror(error) (glibc's own %m knows only errno and would print
 * "Unknown error 65542" for vmgr's codes). Returns what vsnprintf returns. */
__attribute__((format(printf, 4, 0))) int vmgr_vsnprintf_error(char *buf, size_t size, int error, const char *fmt,
                                                               va_list ap);

/* Write the sentence fmt (%m: error's words) into a caller's error buffer,
 * so that failing with a reason is one statement. Returns -abs(error). */
__attribute__((format(printf, 4, 5))) int vmgr_error_printf(char *buf, size_t size, int error, const char *fmt,
                                                            ...);

/* Print fmt and a newline to stderr, %m being error's words: the logging of
 * vmgr's programs that have no other (the helper, vmgr-introspect, the test
 * and benchmark drivers). Returns -abs(error). */
__attribute__((format(printf, 2, 3))) int vmgr_print_error(int error, const char *fmt, ...);
