/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "install-path.h"
#include "macro.h"

#include "vmgr-config.h"

const VmgrInstallLayout vmgr_install_layout = {
        .prefix = VMGR_PREFIX,
        .bindir = VMGR_BINDIR,
        .libexecdir = VMGR_LIBEXECDIR,
        .datadir = VMGR_DATADIR,
};

static const char *layout_dir(const VmgrInstallLayout *layout, VmgrInstallDir dir) {
        switch (dir) {
        case VMGR_INSTALL_BINDIR:
                return layout->bindir;
        case VMGR_INSTALL_LIBEXECDIR:
                return layout->libexecdir;
        case VMGR_INSTALL_DATADIR:
                return layout->datadir;
        }
        return NULL;
}

/* Append path to out[*n] unless it is already there. Returns 0 or -ENAMETOOLONG. */
static int push_candidate(char out[][PATH_MAX], int *n, const char *a, const char *b, const char *c) {
        char path[PATH_MAX];

        if (snprintf(path, sizeof(path), "%s/%s/%s", a, b, c) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        for (int i = 0; i < *n; i++)
                if (streq(out[i], path))
                        return 0;
        memcpy(out[(*n)++], path, sizeof(path));
        return 0;
}

int vmgr_install_candidates(const VmgrInstallLayout *layout, const char *exe, const VmgrInstallPiece *piece,
                            char out[][PATH_MAX]) {
        const char *dir = layout_dir(layout, piece->dir);
        char exe_dir[PATH_MAX];
        int n = 0, r;

        if (!dir)
                return -EINVAL;
        if (exe && exe[0] == '/' && snprintf(exe_dir, sizeof(exe_dir), "%s", exe) < (int) sizeof(exe_dir)) {
                *strrchr(exe_dir, '/') = 0;

                /* Installed: exe is ROOT/BINDIR/vmgrd, whatever ROOT is
                 * (the prefix, a destdir + prefix, another prefix). */
                size_t len = strlen(exe_dir), blen = strlen(layout->bindir);
                bool installed = layout->bindir[0] != '/' && len > blen &&
                                 streq(exe_dir + len - blen, layout->bindir) && exe_dir[len - blen - 1] == '/';
                if (installed && dir[0] != '/') {
                        char root[PATH_MAX];
                        snprintf(root, sizeof(root), "%.*s", (int) (len - blen - 1), exe_dir);
                        r = push_candidate(out, &n, root, dir, piece->name);
                        if (r < 0)
                                return r;
                }
                /* Uninstalled: exe is BUILD/daemon/vmgrd, the piece BUILD/SUBDIR/NAME.
                 * Not tried for an installed exe: it would only lengthen the
                 * list of places an error message names. */
                char *parent = strrchr(exe_dir, '/');
                if (!installed && piece->build_subdir && parent) {
                        const char *base = strrchr(piece->name, '/');
                        base = base ? base + 1 : piece->name;
                        *parent = 0;
                        r = push_candidate(out, &n, exe_dir, piece->build_subdir, base);
                        if (r < 0)
                                return r;
                }
        }
        /* The configured place; an absolute directory stands for itself. */
        if (dir[0] == '/') {
                char path[PATH_MAX];
                if (snprintf(path, sizeof(path), "%s/%s", dir, piece->name) >= (int) sizeof(path))
                        return -ENAMETOOLONG;
                bool seen = false;
                for (int i = 0; i < n; i++)
                        seen = seen || streq(out[i], path);
                if (!seen)
                        memcpy(out[n++], path, sizeof(path));
        } else {
                r = push_candidate(out, &n, layout->prefix, dir, piece->name);
                if (r < 0)
                        return r;
        }
        return n;
}

int vmgr_install_find(const VmgrInstallPiece *piece, int mode, char buf[PATH_MAX], char *tried, size_t tried_size) {
        char exe[PATH_MAX], cand[VMGR_INSTALL_CANDIDATES_MAX][PATH_MAX];
        ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        int n;

        /* No /proc: only the configured place is tried. */
        exe[len > 0 ? len : 0] = 0;
        /* The kernel marks a replaced executable; its directory still is ours. */
        if (len > 10 && streq(exe + len - 10, " (deleted)"))
                exe[len - 10] = 0;
        n = vmgr_install_candidates(&vmgr_install_layout, exe, piece, cand);
        if (n < 0)
                return n;
        if (tried_size > 0)
                *tried = 0;
        for (int i = 0; i < n; i++) {
                if (access(cand[i], mode) == 0) {
                        memcpy(buf, cand[i], PATH_MAX);
                        return 0;
                }
                if (tried_size > 0) {
                        size_t used = strlen(tried);
                        snprintf(tried + used, tried_size - used, "%s%s", i ? ", " : "", cand[i]);
                }
        }
        return -ENOENT;
}
