/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where vmgr's installed pieces are (the helper, the guest agent,
 * vmgr-mkguest, the agent's unit files), for a program that knows only the
 * install layout it was configured with and where it runs from.
 *
 * meson's directories are relative to the prefix (libexecdir "libexec", or
 * "lib/vmgr" on Debian), so a copy installed anywhere - the configured
 * prefix, a destdir, another prefix - finds its pieces from its own
 * location: a binary in ROOT/BINDIR looks in ROOT/LIBEXECDIR. An
 * uninstalled binary in the build tree finds its neighbours there.
 */

#include <limits.h>
#include <stddef.h>

/* At most this many places are tried for one piece. */
#define VMGR_INSTALL_CANDIDATES_MAX 3

typedef enum VmgrInstallDir {
        VMGR_INSTALL_BINDIR,
        VMGR_INSTALL_LIBEXECDIR,
        VMGR_INSTALL_DATADIR,
} VmgrInstallDir;

/* A configured layout: prefix absolute, the directories relative to it
 * (an absolute one is used as it is, and only there). */
typedef struct VmgrInstallLayout {
        const char *prefix;
        const char *bindir;
        const char *libexecdir;
        const char *datadir;
} VmgrInstallLayout;

/* The layout this build was configured with (meson's options). */
extern const VmgrInstallLayout vmgr_install_layout;

/* One piece: name under the directory dir (datadir names may have slashes:
 * "vmgr/agent/vmgr-agent.service"), and, when it is built rather than
 * copied, build_subdir: the build tree's folder that has it ("agent"). */
typedef struct VmgrInstallPiece {
        VmgrInstallDir dir;
        const char *name;
        const char *build_subdir;
} VmgrInstallPiece;

/* The places to look for piece, in order, for a program running as exe (an
 * absolute path) configured with layout: the install exe belongs to when
 * exe is in ROOT/BINDIR (ROOT/DIR/NAME), the build tree when exe is in one
 * of its folders (EXEDIR/../BUILD_SUBDIR/NAME), the configured path
 * (PREFIX/DIR/NAME). Duplicates are left out. Writes up to
 * VMGR_INSTALL_CANDIDATES_MAX paths of size PATH_MAX into out.
 * Returns their number (>= 1), or -ENAMETOOLONG. */
int vmgr_install_candidates(const VmgrInstallLayout *layout, const char *exe, const VmgrInstallPiece *piece,
                            char out[][PATH_MAX]);

/* Find piece for the running program (/proc/self/exe) with this build's
 * layout: the first candidate that access(2) allows with mode (R_OK,
 * X_OK). Returns 0 with its path in buf, or -ENOENT with every path tried
 * in tried ("A, B, C", tried_size bytes) for an error message. */
int vmgr_install_find(const VmgrInstallPiece *piece, int mode, char buf[PATH_MAX], char *tried, size_t tried_size);
