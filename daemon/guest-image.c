/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest-image.h"
#include "install-path.h"
#include "macro.h"
#include "spawn.h"
#include "vmgr-error.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int guest_image_find_agent(char buf[PATH_MAX], char *tried, size_t tried_size) {
        static const VmgrInstallPiece agent = { VMGR_INSTALL_LIBEXECDIR, "vmgr-agent", "agent" };

        return vmgr_install_find(&agent, R_OK, buf, tried, tried_size);
}

static char cached_kernel[PATH_MAX], cached_initrd[PATH_MAX];

/* Run mkguest and read "KERNEL INITRD" from its stdout; its stderr becomes the error.
 * Returns 0, or -errno with the error in error (error_size bytes). */
static int run_mkguest(const char *mkguest, const char *cache_dir, char *kernel, char *initrd, char *error,
                       size_t error_size) {
        char out_dir[PATH_MAX], output[2 * PATH_MAX + 2] = "", errbuf[400] = "", agent[PATH_MAX],
                extra[PATH_MAX + 32] = "", tried[VMGR_ERROR_MAX];
        char *argv[] = { (char *) mkguest, "--print-path", "--output-dir", out_dir, NULL, NULL, NULL };
        SpawnResult res;
        int r;

        snprintf(out_dir, sizeof(out_dir), "%s/guest", cache_dir);
        /* Without its agent the guest would boot and never become ready,
         * and WaitReady would blame the guest: refuse, naming where we looked. */
        r = guest_image_find_agent(agent, tried, sizeof(tried));
        if (r < 0)
                return vmgr_error_printf(error, error_size, r,
                                         "building the default guest failed: vmgr-agent is not installed "
                                         "(looked for %s)", tried);
        snprintf(extra, sizeof(extra), "%s:/usr/bin/vmgr-agent", agent);
        argv[4] = "--extra";
        argv[5] = extra;
        r = spawn_run_stdout(argv, 0, output, sizeof(output), errbuf, sizeof(errbuf), &res);
        if (r < 0)
                return vmgr_error_printf(error, error_size, r,
                                         "building the default guest failed: cannot execute %s: %m", mkguest);
        spawn_first_line(errbuf);
        if (!spawn_exited_with(&res, 0)) {
                snprintf(error, error_size, "building the default guest failed: %s",
                         *errbuf ? errbuf : "vmgr-mkguest failed");
                return -EIO;
        }
        if (sscanf(output, "%4095s %4095s", kernel, initrd) != 2) {
                snprintf(error, error_size, "vmgr-mkguest printed no kernel and initramfs");
                return -EIO;
        }
        return 0;
}

int guest_image_get(const char *mkguest, const char *cache_dir, char kernel[PATH_MAX], char initrd[PATH_MAX],
                    char *error, size_t error_size) {
        int r = 0;

        pthread_mutex_lock(&lock);
        if (!*cached_kernel || access(cached_kernel, R_OK) < 0 || access(cached_initrd, R_OK) < 0)
                r = run_mkguest(mkguest, cache_dir, cached_kernel, cached_initrd, error, error_size);
        if (r >= 0) {
                memcpy(kernel, cached_kernel, PATH_MAX);
                memcpy(initrd, cached_initrd, PATH_MAX);
        } else
                *cached_kernel = 0;
        pthread_mutex_unlock(&lock);
        return r;
}
