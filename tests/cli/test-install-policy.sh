#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# data/install-policy.sh, run by `meson install`: the helper's policy is
# installed where there is none and never overwrites the administrator's.
set -euo pipefail
script=$1 shipped=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }

DESTDIR=$tmp/dest "$script" "$shipped" /etc/vmgr/netadm.conf >/dev/null
live=$tmp/dest/etc/vmgr/netadm.conf
if cmp -s "$shipped" "$live"; then ok "installed where there was none"; else not_ok "installed where there was none"; fi
[ "$(stat -c %a "$live")" = 644 ] && ok "mode 0644" || not_ok "mode 0644 (got $(stat -c %a "$live"))"

printf 'ipv4_pool = 10.77.0.0/16\nipv6_pool = fd00:77::/32\n' >"$live"
DESTDIR=$tmp/dest "$script" "$shipped" /etc/vmgr/netadm.conf >/dev/null
if grep -q 10.77.0.0/16 "$live"; then ok "an administrator's policy is kept"; else not_ok "an administrator's policy is kept"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
