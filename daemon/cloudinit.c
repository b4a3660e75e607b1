/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloud-init.h"
#include "cloudinit.h"
#include "fs-util.h"
#include "guest-image.h"
#include "install-path.h"
#include "macro.h"
#include "spawn.h"
#include "vmgr-error.h"

#include "vmgr-config.h"

#define XORRISO_TIMEOUT_USEC (60ULL * 1000 * 1000)

/* The agent's unit or udev rule (name): under the datadir of the install
 * our own binary belongs to (a prefix, a destdir), else under the
 * configured one (lib/install-path.h). Returns 0 with the path in buf, or
 * -ENOENT with the paths tried in tried (tried_size bytes). */
static int find_agent_data(const char *name, char buf[PATH_MAX], char *tried, size_t tried_size) {
        char rel[PATH_MAX];
        VmgrInstallPiece piece = { VMGR_INSTALL_DATADIR, rel, NULL };

        if (snprintf(rel, sizeof(rel), "vmgr/agent/%s", name) >= (int) sizeof(rel))
                return -ENAMETOOLONG;
        return vmgr_install_find(&piece, R_OK, buf, tried, tried_size);
}

/* Copy the regular file from to a new file to with mode. Returns 0 or -errno. */
static int copy_file(const char *from, const char *to, mode_t mode) {
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        char buf[65536];
        ssize_t n;

        in = open(from, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in < 0)
                return -errno;
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, mode);
        if (out < 0)
                return -errno;
        while ((n = read(in, buf, sizeof(buf))) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = write(out, buf + done, (size_t) (n - done));
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        done += w;
                }
        }
        return close(TAKE_FD(out)) < 0 ? -errno : 0;
}

/* Write one text file of the seed into staging. Returns 0 or -errno. */
static int put_text(const char *staging, const char *name, const char *text, char *error, size_t error_size) {
        char path[PATH_MAX];
        int r;

        if (snprintf(path, sizeof(path), "%s/%s", staging, name) >= (int) sizeof(path))
                return vmgr_error_printf(error, error_size, -ENAMETOOLONG, "cloud-init seed: %s/%s: path too long",
                                         staging, name);
        r = write_file_atomic(path, text, strlen(text), 0644);
        if (r < 0)
                return vmgr_error_printf(error, error_size, r, "cloud-init seed: cannot write %s: %m", path);
        return 0;
}

/* Copy vmgr-agent, its unit and its udev rule into staging. Returns 0 or -errno. */
static int put_agent(const char *staging, char *error, size_t error_size) {
        static const struct {
                const char *name;
                mode_t mode;
        } files[] = {
                { VMGR_CLOUD_INIT_AGENT, 0755 },
                { VMGR_CLOUD_INIT_AGENT_UNIT, 0644 },
                { VMGR_CLOUD_INIT_AGENT_RULE, 0644 },
        };
        char from[PATH_MAX], to[PATH_MAX], tried[VMGR_ERROR_MAX];
        int r;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                r = i == 0 ? guest_image_find_agent(from, tried, sizeof(tried))
                           : find_agent_data(files[i].name, from, tried, sizeof(tried));
                if (r < 0)
                        return vmgr_error_printf(error, error_size, r,
                                                 "cloud_init.install_agent: %s is not installed (looked for %s)",
                                                 files[i].name, tried);
                if (snprintf(to, sizeof(to), "%s/%s", staging, files[i].name) >= (int) sizeof(to))
                        return vmgr_error_printf(error, error_size, -ENAMETOOLONG,
                                                 "cloud-init seed: %s: path too long", staging);
                r = copy_file(from, to, files[i].mode);
                if (r < 0)
                        return vmgr_error_printf(error, error_size, r, "cloud-init seed: cannot copy %s: %m", from);
        }
        return 0;
}

/* Cut xorriso's stderr down to the line that says what failed (its first
 * line is a banner), without the "xorriso : FAILURE : " prefix. */
static void xorriso_reason(char *err) {
        static const char *const severities[] = { " : FATAL : ", " : FAILURE : ", " : SORRY : " };

        for (size_t i = 0; i < ELEMENTSOF(severities); i++) {
                char *p = strstr(err, severities[i]);
                if (p) {
                        memmove(err, p + strlen(severities[i]), strlen(p + strlen(severities[i])) + 1);
                        break;
                }
        }
        spawn_first_line(err);
}

/* Make iso from the files in staging with xorriso. Returns 0 or -errno. */
static int make_volume(const char *staging, const char *iso, char *error, size_t error_size) {
        /* -no_rc first: no user's or system's xorriso startup files. No "--"
         * before the (absolute) directory: it would end the mkisofs emulation. */
        char *argv[] = { CLOUDINIT_XORRISO_PATH, "-no_rc", "-as", "mkisofs", "-quiet", "-V", VMGR_CLOUD_INIT_LABEL,
                         "-J", "-r", "-o", (char *) iso, (char *) staging, NULL };
        char err[400] = "";
        SpawnResult res;
        int r;

        r = spawn_run(argv, XORRISO_TIMEOUT_USEC, err, sizeof(err), &res);
        if (r == -ENOENT)
                return vmgr_error_printf(error, error_size, r,
                                         "cloud_init needs %s (Debian package xorriso), which is not installed",
                                         CLOUDINIT_XORRISO_PATH);
        if (r < 0)
                return vmgr_error_printf(error, error_size, r, "cannot run %s: %m", CLOUDINIT_XORRISO_PATH);
        xorriso_reason(err);
        if (!spawn_exited_with(&res, 0)) {
                if (res.timed_out)
                        snprintf(error, error_size, "xorriso made no cloud-init seed in %llu s",
                                 XORRISO_TIMEOUT_USEC / 1000000);
                else
                        snprintf(error, error_size, "xorriso failed to make the cloud-init seed: %s",
                                 *err ? err : "no message");
                return -EIO;
        }
        return 0;
}

int cloudinit_seed_write(const char *dir, unsigned uid, const char *group, const VmgrVMSpec *vm, char **ret_path,
                         char *error, size_t error_size) {
        _cleanup_(vmgr_cloud_init_seed_done) VmgrCloudInitSeed seed = {};
        _cleanup_free_ char *staging = NULL, *iso = NULL, *tmp = NULL;
        int r;

        r = vmgr_cloud_init_seed_build(uid, group, vm, &seed);
        if (r < 0)
                return vmgr_error_printf(error, error_size, r, "cannot build the cloud-init seed: %m");

        if (asprintf(&staging, "%s/cidata.d", dir) < 0) {
                staging = NULL;
                return -ENOMEM;
        }
        if (asprintf(&iso, "%s/cidata.iso", dir) < 0) {
                iso = NULL;
                return -ENOMEM;
        }
        if (asprintf(&tmp, "%s/cidata.iso.tmp", dir) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }

        /* What an earlier attempt left. */
        (void) rm_rf(staging);
        (void) unlink(tmp);
        if (mkdir(staging, 0700) < 0)
                return vmgr_error_printf(error, error_size, -errno, "cloud-init seed: cannot create %s: %m", staging);

        if ((r = put_text(staging, "meta-data", seed.meta_data, error, error_size)) < 0 ||
            (r = put_text(staging, "user-data", seed.user_data, error, error_size)) < 0 ||
            (r = put_text(staging, "network-config", seed.network_config, error, error_size)) < 0 ||
            (seed.vendor_data && (r = put_text(staging, "vendor-data", seed.vendor_data, error, error_size)) < 0) ||
            (vm->cloud_init.install_agent && (r = put_agent(staging, error, error_size)) < 0))
                goto finish;

        r = make_volume(staging, tmp, error, error_size);
        if (r < 0)
                goto finish;
        if (rename(tmp, iso) < 0) {
                r = vmgr_error_printf(error, error_size, -errno, "cloud-init seed: cannot rename %s: %m", tmp);
                goto finish;
        }
        *ret_path = TAKE_PTR(iso);

finish:
        (void) rm_rf(staging);
        if (r < 0)
                (void) unlink(tmp);
        return r;
}
