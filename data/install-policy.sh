#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# meson install script: install the shipped helper policy SRC as DEST unless
# DEST exists. The policy is the administrator's (its pools are chosen for
# the host), so an install must never overwrite it, as a package manager
# keeps a changed conffile. DESTDIR, when set, is honoured like meson does.
set -eu
src=$1
dest=${DESTDIR:-}$2
if [ -e "$dest" ]; then
        echo "Keeping $dest (the shipped policy is $src)"
        exit 0
fi
install -d -m 0755 "$(dirname "$dest")"
install -m 0644 "$src" "$dest"
echo "Installing $dest: narrow ipv4_pool and ipv6_pool to networks this host never reaches otherwise"
