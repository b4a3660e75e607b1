/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmgr-error.h"
#include "test.h"

static void test_strerror(void) {
        char buf[64];

        /* errno values of either sign: strerror()'s words. */
        CHECK_STREQ(vmgr_strerror(ENOENT, buf, sizeof(buf)), strerror(ENOENT));
        CHECK_STREQ(vmgr_strerror(-EACCES, buf, sizeof(buf)), strerror(EACCES));
        /* vmgr's own codes: not "Unknown error 65542". */
        CHECK_STREQ(vmgr_strerror(-VMGR_ERR_NO_SUCH_VM, buf, sizeof(buf)), "No such VM");
        CHECK_STREQ(vmgr_strerror(VMGR_ERR_TIMEOUT, buf, sizeof(buf)), "Timed out");
        for (int c = _VMGR_ERR_BASE + 1; c < _VMGR_ERR_MAX; c++) {
                const char *w = vmgr_strerror(-c, buf, sizeof(buf));
                CHECK(w && *w);
                CHECK(!strstr(w, "nknown"));
        }
        /* Above the table (codes the daemon adds on top): still a number. */
        CHECK_STREQ(vmgr_strerror(-_VMGR_ERR_MAX, buf, sizeof(buf)), "vmgr error 65550");
}

static void test_printf(void) {
        char buf[VMGR_ERROR_MAX], small[12];

        CHECK(vmgr_error_printf(buf, sizeof(buf), -ENOENT, "Cannot create %s: %m", "/x") == -ENOENT);
        CHECK_STREQ(buf, "Cannot create /x: No such file or directory");
        /* A positive error is returned negated, like log_internal(). */
        CHECK(vmgr_error_printf(buf, sizeof(buf), EPERM, "%m") == -EPERM);
        CHECK_STREQ(buf, "Operation not permitted");

        CHECK(vmgr_error_printf(buf, sizeof(buf), -VMGR_ERR_NO_SUCH_GROUP, "group '%s': %m (%d)", "g", 7) ==
              -VMGR_ERR_NO_SUCH_GROUP);
        CHECK_STREQ(buf, "group 'g': No such group (7)");

        /* Two %m, a literal "%%m", and arguments after them still line up. */
        vmgr_error_printf(buf, sizeof(buf), -EIO, "%m/%m %%m %s %u", "s", 3u);
        CHECK_STREQ(buf, "Input/output error/Input/output error %m s 3");

        /* Without %m errno is not consulted at all. */
        errno = EBADF;
        vmgr_error_printf(buf, sizeof(buf), -ENOENT, "%d%%", 50);
        CHECK_STREQ(buf, "50%");

        /* Cut to the buffer's size, never past it. */
        vmgr_error_printf(small, sizeof(small), -ENOENT, "abc %m");
        CHECK_STREQ(small, "abc No such");
}

static void test_print(void) {
        char buf[256] = "";
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);
        size_t n;

        CHECK(f && saved >= 0);
        fflush(stderr);
        CHECK(dup2(fileno(f), STDERR_FILENO) == STDERR_FILENO);
        CHECK(vmgr_print_error(-VMGR_ERR_BUSY, "prog: %s: %m", "x") == -VMGR_ERR_BUSY);
        CHECK(vmgr_print_error(ENOENT, "prog: %m") == -ENOENT);
        fflush(stderr);
        CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        close(saved);
        rewind(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        CHECK_STREQ(buf, "prog: x: Busy\nprog: No such file or directory\n");
        fclose(f);
}

int main(void) {
        test_strerror();
        test_printf();
        test_print();
        TEST_DONE();
}
