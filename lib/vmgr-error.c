/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "vmgr-error.h"

const char *vmgr_strerror(int error, char *buf, size_t size) {
        static const char *const phrases[_VMGR_ERR_MAX - _VMGR_ERR_BASE] = {
                [VMGR_ERR_INVALID_NAME - _VMGR_ERR_BASE] = "Invalid name",
                [VMGR_ERR_INVALID_SPEC - _VMGR_ERR_BASE] = "Invalid spec",
                [VMGR_ERR_GROUP_EXISTS - _VMGR_ERR_BASE] = "Group exists",
                [VMGR_ERR_NO_SUCH_GROUP - _VMGR_ERR_BASE] = "No such group",
                [VMGR_ERR_VM_EXISTS - _VMGR_ERR_BASE] = "VM exists",
                [VMGR_ERR_NO_SUCH_VM - _VMGR_ERR_BASE] = "No such VM",
                [VMGR_ERR_NO_SUCH_SNAPSHOT - _VMGR_ERR_BASE] = "No such snapshot",
                [VMGR_ERR_SNAPSHOT_EXISTS - _VMGR_ERR_BASE] = "Snapshot exists",
                [VMGR_ERR_ADDRESS_CONFLICT - _VMGR_ERR_BASE] = "Address conflict",
                [VMGR_ERR_HELPER_FAILED - _VMGR_ERR_BASE] = "vmgr-netadm failed",
                [VMGR_ERR_LIMIT_EXCEEDED - _VMGR_ERR_BASE] = "Limit exceeded",
                [VMGR_ERR_BUSY - _VMGR_ERR_BASE] = "Busy",
                [VMGR_ERR_TIMEOUT - _VMGR_ERR_BASE] = "Timed out",
        };
        int code = error < 0 ? -error : error;

        if (code > _VMGR_ERR_BASE && code < _VMGR_ERR_MAX && phrases[code - _VMGR_ERR_BASE])
                return phrases[code - _VMGR_ERR_BASE];
        if (code >= _VMGR_ERR_BASE) {
                snprintf(buf, size, "vmgr error %d", code);
                return buf;
        }
        /* GNU strerror_r: returns the message, which may be a constant. */
        return strerror_r(code, buf, size);
}

int vmgr_vsnprintf_error(char *buf, size_t size, int error, const char *fmt, va_list ap) {
        char words[128], rewritten[1024];
        const char *w;
        size_t n = 0;

        if (!strstr(fmt, "%m"))
                return vsnprintf(buf, size, fmt, ap);

        /* Put the words into the format itself, their own '%' doubled, and
         * leave "%%m" (a literal "%m") alone. */
        w = vmgr_strerror(error, words, sizeof(words));
        for (const char *p = fmt; *p; p++) {
                if (n + 2 >= sizeof(rewritten))
                        goto too_long;
                if (p[0] == '%' && p[1] == '%') {
                        rewritten[n++] = *p++;
                        rewritten[n++] = *p;
                } else if (p[0] == '%' && p[1] == 'm') {
                        for (const char *c = w; *c; c++) {
                                if (n + 3 >= sizeof(rewritten))
                                        goto too_long;
                                if (*c == '%')
                                        rewritten[n++] = '%';
                                rewritten[n++] = *c;
                        }
                        p++;
                } else
                        rewritten[n++] = *p;
        }
        rewritten[n] = 0;
        return vsnprintf(buf, size, rewritten, ap);

too_long:
        /* No format is this long; glibc's %m is right for errno values. */
        errno = error < 0 ? -error : error;
        return vsnprintf(buf, size, fmt, ap);
}

int vmgr_error_printf(char *buf, size_t size, int error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vmgr_vsnprintf_error(buf, size, error, fmt, ap);
        va_end(ap);
        return error < 0 ? error : -error;
}

int vmgr_print_error(int error, const char *fmt, ...) {
        char buf[2 * VMGR_ERROR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vmgr_vsnprintf_error(buf, sizeof(buf), error, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s\n", buf);
        return error < 0 ? error : -error;
}
