/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "install-path.h"
#include "macro.h"
#include "test.h"

static const VmgrInstallLayout upstream = { "/usr", "bin", "libexec", "share" };
static const VmgrInstallLayout debian = { "/usr", "bin", "lib/vmgr", "share" };
static const VmgrInstallPiece agent = { VMGR_INSTALL_LIBEXECDIR, "vmgr-agent", "agent" };

static void test_installed(void) {
        char c[VMGR_INSTALL_CANDIDATES_MAX][PATH_MAX];

        /* The configured install: one place, not the build tree's. */
        CHECK(vmgr_install_candidates(&upstream, "/usr/bin/vmgrd", &agent, c) == 1);
        CHECK_STREQ(c[0], "/usr/libexec/vmgr-agent");
        CHECK(vmgr_install_candidates(&debian, "/usr/bin/vmgrd", &agent, c) == 1);
        CHECK_STREQ(c[0], "/usr/lib/vmgr/vmgr-agent");

        /* A destdir: its own copy first, then the configured one. */
        CHECK(vmgr_install_candidates(&debian, "/tmp/b/destdir/usr/bin/vmgrd", &agent, c) == 2);
        CHECK_STREQ(c[0], "/tmp/b/destdir/usr/lib/vmgr/vmgr-agent");
        CHECK_STREQ(c[1], "/usr/lib/vmgr/vmgr-agent");

        /* Another prefix, pieces in bindir and datadir. */
        const VmgrInstallPiece mkguest = { VMGR_INSTALL_BINDIR, "vmgr-mkguest", "guest" };
        CHECK(vmgr_install_candidates(&upstream, "/opt/v/bin/vmgrd", &mkguest, c) == 2);
        CHECK_STREQ(c[0], "/opt/v/bin/vmgr-mkguest");
        CHECK_STREQ(c[1], "/usr/bin/vmgr-mkguest");
        const VmgrInstallPiece unit = { VMGR_INSTALL_DATADIR, "vmgr/agent/vmgr-agent.service", NULL };
        CHECK(vmgr_install_candidates(&upstream, "/opt/v/bin/vmgrd", &unit, c) == 2);
        CHECK_STREQ(c[0], "/opt/v/share/vmgr/agent/vmgr-agent.service");
        CHECK_STREQ(c[1], "/usr/share/vmgr/agent/vmgr-agent.service");

        /* Installed at the root: bindir "bin" directly under "/". */
        CHECK(vmgr_install_candidates(&upstream, "/bin/vmgrd", &agent, c) == 2);
        CHECK_STREQ(c[0], "/libexec/vmgr-agent");
}

static void test_build_tree(void) {
        char c[VMGR_INSTALL_CANDIDATES_MAX][PATH_MAX];

        CHECK(vmgr_install_candidates(&debian, "/src/build/daemon/vmgrd", &agent, c) == 2);
        CHECK_STREQ(c[0], "/src/build/agent/vmgr-agent");
        CHECK_STREQ(c[1], "/usr/lib/vmgr/vmgr-agent");

        /* A datadir piece is not built: only the configured place. */
        const VmgrInstallPiece rule = { VMGR_INSTALL_DATADIR, "vmgr/agent/90-vmgr-agent.rules", NULL };
        CHECK(vmgr_install_candidates(&debian, "/src/build/daemon/vmgrd", &rule, c) == 1);
        CHECK_STREQ(c[0], "/usr/share/vmgr/agent/90-vmgr-agent.rules");

        /* "bin" must be a whole directory name: /src/robin is no install. */
        CHECK(vmgr_install_candidates(&upstream, "/src/robin/vmgrd", &agent, c) == 2);
        CHECK_STREQ(c[0], "/src/agent/vmgr-agent");
}

static void test_no_exe(void) {
        char c[VMGR_INSTALL_CANDIDATES_MAX][PATH_MAX];

        /* Without /proc (or a relative name) only the configured path. */
        CHECK(vmgr_install_candidates(&debian, NULL, &agent, c) == 1);
        CHECK_STREQ(c[0], "/usr/lib/vmgr/vmgr-agent");
        CHECK(vmgr_install_candidates(&debian, "vmgrd", &agent, c) == 1);

        /* An absolute libexecdir (outside the prefix) stands for itself. */
        const VmgrInstallLayout outside = { "/usr", "bin", "/opt/helpers", "share" };
        CHECK(vmgr_install_candidates(&outside, "/d/usr/bin/vmgrd", &agent, c) == 1);
        CHECK_STREQ(c[0], "/opt/helpers/vmgr-agent");
}

static void test_too_long(void) {
        char c[VMGR_INSTALL_CANDIDATES_MAX][PATH_MAX], exe[PATH_MAX];

        memset(exe, 'x', sizeof(exe) - 1);
        exe[0] = '/';
        memcpy(exe + PATH_MAX - 12, "/bin/vmgrd", 11);
        CHECK(vmgr_install_candidates(&upstream, exe, &agent, c) == -ENAMETOOLONG);
}

static void test_find_missing(void) {
        const VmgrInstallPiece none = { VMGR_INSTALL_LIBEXECDIR, "vmgr-no-such-piece", "agent" };
        char buf[PATH_MAX] = "unchanged", tried[512];

        CHECK(vmgr_install_find(&none, R_OK, buf, tried, sizeof(tried)) == -ENOENT);
        CHECK_STREQ(buf, "unchanged");
        CHECK(strstr(tried, "/vmgr-no-such-piece") != NULL);
        /* The configured place is always among those named. */
        char configured[PATH_MAX];
        snprintf(configured, sizeof(configured), "%s/%s/vmgr-no-such-piece", vmgr_install_layout.prefix,
                 vmgr_install_layout.libexecdir);
        CHECK(strstr(tried, configured) != NULL);
}

int main(void) {
        test_installed();
        test_build_tree();
        test_no_exe();
        test_too_long();
        test_find_missing();
        TEST_DONE();
}
