/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/bus-error.c, the one place failure codes become D-Bus error names:
 * vmgr's codes, the errno values with a meaning of their own, the standard
 * names for files and forwards, and the message made when none is given.
 */

#include <errno.h>
#include <string.h>

#include "bus-error.h"
#include "test.h"

/* Sets an error for code r with no message; checks name, message, return. */
static void check_set(int r, const char *name, const char *message) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        CHECK(vmgr_bus_error_set(&error, r, NULL) == r);
        CHECK_STREQ(error.name, name);
        CHECK_STREQ(error.message, message);
        sd_bus_error_free(&error);
}

int main(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        CHECK_STREQ(vmgr_error_name(-VMGR_ERR_NO_SUCH_VM), VMGR_ERROR_NO_SUCH_VM);
        CHECK_STREQ(vmgr_error_name(VMGR_ERR_BUSY), VMGR_ERROR_BUSY);
        CHECK_STREQ(vmgr_error_name(-EINVAL), SD_BUS_ERROR_INVALID_ARGS);
        CHECK_STREQ(vmgr_error_name(-EPERM), VMGR_ERROR_PERMISSION_DENIED);
        CHECK_STREQ(vmgr_error_name(-EACCES), VMGR_ERROR_PERMISSION_DENIED);
        CHECK_STREQ(vmgr_error_name(-ETIMEDOUT), VMGR_ERROR_TIMEOUT);
        CHECK_STREQ(vmgr_error_name(-EADDRINUSE), VMGR_ERROR_ADDRESS_CONFLICT);
        CHECK_STREQ(vmgr_error_name(-EBUSY), VMGR_ERROR_BUSY);
        CHECK_STREQ(vmgr_error_name(-VMGR_BUS_ERR_FILE_EXISTS), SD_BUS_ERROR_FILE_EXISTS);
        CHECK_STREQ(vmgr_error_name(-VMGR_BUS_ERR_FILE_NOT_FOUND), SD_BUS_ERROR_FILE_NOT_FOUND);
        CHECK_STREQ(vmgr_error_name(-VMGR_BUS_ERR_NOT_SUPPORTED), SD_BUS_ERROR_NOT_SUPPORTED);
        /* errno values without a name of their own stay generic: the
         * message carries the reason. */
        CHECK_STREQ(vmgr_error_name(-ENOENT), VMGR_ERROR_FAILED);
        CHECK_STREQ(vmgr_error_name(-EEXIST), VMGR_ERROR_FAILED);
        CHECK_STREQ(vmgr_error_name(-EIO), VMGR_ERROR_FAILED);
        CHECK_STREQ(vmgr_error_name(-ESRCH), VMGR_ERROR_FAILED); /* a VM that is not running */

        check_set(-VMGR_ERR_NO_SUCH_GROUP, VMGR_ERROR_NO_SUCH_GROUP, "NoSuchGroup");
        check_set(-VMGR_BUS_ERR_FILE_NOT_FOUND, SD_BUS_ERROR_FILE_NOT_FOUND, "FileNotFound");
        check_set(-EINVAL, SD_BUS_ERROR_INVALID_ARGS, strerror(EINVAL));

        CHECK(vmgr_bus_error_set(&error, -EINVAL, "the guest port must be %s", "1-65535") == -EINVAL);
        CHECK_STREQ(error.name, SD_BUS_ERROR_INVALID_ARGS);
        CHECK_STREQ(error.message, "the guest port must be 1-65535");
        sd_bus_error_free(&error);

        /* %m is r, whatever errno says; vmgr's codes have words too. */
        errno = EBADF;
        CHECK(vmgr_bus_error_set(&error, -ENOENT, "cannot serve '%s': %m", "f") == -ENOENT);
        CHECK_STREQ(error.message, "cannot serve 'f': No such file or directory");
        sd_bus_error_free(&error);
        CHECK(vmgr_bus_error_set(&error, -VMGR_ERR_TIMEOUT, "no answer: %m") == -VMGR_ERR_TIMEOUT);
        CHECK_STREQ(error.name, VMGR_ERROR_TIMEOUT);
        CHECK_STREQ(error.message, "no answer: Timed out");
        sd_bus_error_free(&error);

        TEST_DONE();
}
