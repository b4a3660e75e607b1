/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* vmgrd's logging: %m is the error passed in, vmgr's own codes included. */

#include <errno.h>
#include <string.h>

#include "log.h"
#include "vmgr-error.h"
#include "test.h"

static char last[VMGR_ERROR_MAX];

static void sink(int level, const char *group, const char *vm, const char *message, void *userdata) {
        snprintf(last, sizeof(last), "%s", message);
}

int main(void) {
        log_set_group_sink(sink, NULL);

        /* The error passed in, whatever errno says. */
        errno = EBADF;
        CHECK(log_group_errno(LOG_ERR, -ENOENT, "g", "Cannot create %s: %m", "/x") == -ENOENT);
        CHECK_STREQ(last, "Cannot create /x: No such file or directory");
        CHECK(errno == EBADF); /* and errno is left as it was */

        CHECK(log_group_errno(LOG_ERR, EACCES, "g", "open: %m") == -EACCES);
        CHECK_STREQ(last, "open: Permission denied");

        /* vmgr's codes are not errno values: glibc's %m would say "Unknown error". */
        CHECK(log_group_errno(LOG_ERR, -VMGR_ERR_NO_SUCH_VM, "g", "Cannot stop %s: %m", "a") == -VMGR_ERR_NO_SUCH_VM);
        CHECK_STREQ(last, "Cannot stop a: No such VM");

        /* Without an error, %m is errno as the caller left it. */
        errno = ENOSPC;
        CHECK(log_group(LOG_ERR, "g", "write: %m") == 0);
        CHECK_STREQ(last, "write: No space left on device");

        TEST_DONE();
}
