/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bus-error.h"

const char *vmgr_error_name(int r) {
        static const char *const names[_VMGR_ERR_MAX - _VMGR_ERR_BASE] = {
                [VMGR_ERR_INVALID_NAME - _VMGR_ERR_BASE] = VMGR_ERROR_INVALID_NAME,
                [VMGR_ERR_INVALID_SPEC - _VMGR_ERR_BASE] = VMGR_ERROR_INVALID_SPEC,
                [VMGR_ERR_GROUP_EXISTS - _VMGR_ERR_BASE] = VMGR_ERROR_GROUP_EXISTS,
                [VMGR_ERR_NO_SUCH_GROUP - _VMGR_ERR_BASE] = VMGR_ERROR_NO_SUCH_GROUP,
                [VMGR_ERR_VM_EXISTS - _VMGR_ERR_BASE] = VMGR_ERROR_VM_EXISTS,
                [VMGR_ERR_NO_SUCH_VM - _VMGR_ERR_BASE] = VMGR_ERROR_NO_SUCH_VM,
                [VMGR_ERR_ADDRESS_CONFLICT - _VMGR_ERR_BASE] = VMGR_ERROR_ADDRESS_CONFLICT,
                [VMGR_ERR_HELPER_FAILED - _VMGR_ERR_BASE] = VMGR_ERROR_HELPER_FAILED,
                [VMGR_ERR_LIMIT_EXCEEDED - _VMGR_ERR_BASE] = VMGR_ERROR_LIMIT_EXCEEDED,
                [VMGR_ERR_BUSY - _VMGR_ERR_BASE] = VMGR_ERROR_BUSY,
                [VMGR_ERR_TIMEOUT - _VMGR_ERR_BASE] = VMGR_ERROR_TIMEOUT,
                [VMGR_ERR_NO_SUCH_SNAPSHOT - _VMGR_ERR_BASE] = VMGR_ERROR_NO_SUCH_SNAPSHOT,
                [VMGR_ERR_SNAPSHOT_EXISTS - _VMGR_ERR_BASE] = VMGR_ERROR_SNAPSHOT_EXISTS,
        };
        int code = r < 0 ? -r : r;

        if (code > _VMGR_ERR_BASE && code < _VMGR_ERR_MAX && names[code - _VMGR_ERR_BASE])
                return names[code - _VMGR_ERR_BASE];

        switch (code) {
        case VMGR_BUS_ERR_FILE_EXISTS:
                return SD_BUS_ERROR_FILE_EXISTS;
        case VMGR_BUS_ERR_FILE_NOT_FOUND:
                return SD_BUS_ERROR_FILE_NOT_FOUND;
        case VMGR_BUS_ERR_NOT_SUPPORTED:
                return SD_BUS_ERROR_NOT_SUPPORTED;
        case EINVAL:
                return SD_BUS_ERROR_INVALID_ARGS;
        case EPERM:
        case EACCES:
                return VMGR_ERROR_PERMISSION_DENIED;
        case ETIMEDOUT:
                return VMGR_ERROR_TIMEOUT;
        case EADDRINUSE:
                return VMGR_ERROR_ADDRESS_CONFLICT;
        case EBUSY:
                return VMGR_ERROR_BUSY;
        default:
                return VMGR_ERROR_FAILED;
        }
}

static void format_message(char *buf, size_t size, int r, const char *fmt, va_list ap) {
        int code = r < 0 ? -r : r;

        if (fmt)
                (void) vmgr_vsnprintf_error(buf, size, r, fmt, ap); /* %m: r's words */
        else if (code > _VMGR_ERR_BASE) {
                /* The name's last part: "NoSuchVM", "FileExists". */
                const char *name = vmgr_error_name(r), *dot = strrchr(name, '.');
                snprintf(buf, size, "%s", dot ? dot + 1 : name);
        }
        else
                (void) vmgr_error_printf(buf, size, code, "%m");
}

int vmgr_bus_error_set(sd_bus_error *error, int r, const char *fmt, ...) {
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        format_message(buf, sizeof(buf), r, fmt, ap);
        va_end(ap);

        sd_bus_error_set(error, vmgr_error_name(r), buf);
        return r < 0 ? r : -r;
}

int vmgr_bus_reply_error(sd_bus_message *m, int r, const char *fmt, ...) {
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        format_message(buf, sizeof(buf), r, fmt, ap);
        va_end(ap);

        return sd_bus_reply_method_errorf(m, vmgr_error_name(r), "%s", buf);
}
