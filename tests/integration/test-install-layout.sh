#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# An install with Debian's layout (libexecdir=lib/vmgr) run from a destdir:
# vmgrd finds its pieces from where it runs (lib/install-path.c), not only
# at the configured /usr/lib/vmgr, which this host does not have.
#   - the default guest is built with the agent from DESTDIR/usr/lib/vmgr and
#     its VM becomes ready (so the agent connected);
#   - with the agent removed, creating a VM with the default guest fails
#     with an error that names every path tried (the destdir's and the
#     configured one), in vmgrctl's output and in the VM's LastError,
#     instead of booting a guest that never becomes ready.
# The layout's build lives in BUILD/layout-lib-vmgr (configured and built on
# first use, incremental later), installed into its destdir each run.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools

layout_build=$VMGR_BUILD_DIR/layout-lib-vmgr
layout_destdir=$layout_build/destdir
if [ -z "${VMGR_IN_NETNS:-}" ]; then
        # Outside the namespaces, once: build and install the layout.
        if [ ! -e "$layout_build/meson-private/coredata.dat" ]; then
                meson setup "$layout_build" "$VMGR_SOURCE_DIR" -Dlibexecdir=lib/vmgr -Db_sanitize=none \
                        --buildtype=debugoptimized >"$VMGR_BUILD_DIR/layout-lib-vmgr.log" 2>&1 ||
                        { cat "$VMGR_BUILD_DIR/layout-lib-vmgr.log" >&2; exit 1; }
        fi
        ninja -C "$layout_build" >>"$VMGR_BUILD_DIR/layout-lib-vmgr.log" 2>&1 ||
                { tail -n 40 "$VMGR_BUILD_DIR/layout-lib-vmgr.log" >&2; exit 1; }
        rm -rf "$layout_destdir"
        meson install -C "$layout_build" --destdir "$layout_destdir" --quiet >/dev/null
        chmod -R a+rX "$layout_build"
fi
VMGR_DESTDIR=$layout_destdir
VMGRD=$VMGR_DESTDIR/usr/bin/vmgrd
VMGRCTL=$VMGR_DESTDIR/usr/bin/vmgrctl
VMGR_NETADM=$VMGR_DESTDIR/usr/lib/vmgr/vmgr-netadm

vmgr_enter_netns "$@"

check "the layout's install has vmgr-agent in DESTDIR/usr/lib/vmgr" test -x "$VMGR_DESTDIR/usr/lib/vmgr/vmgr-agent"
check "and nothing in DESTDIR/usr/libexec" test ! -e "$VMGR_DESTDIR/usr/libexec"
check "the configured /usr/lib/vmgr/vmgr-agent is not on this host" test ! -e /usr/lib/vmgr/vmgr-agent
# vmgr-mkimage --agent looks beside itself first: that place is the destdir's agent.
rel=$(grep -o '"\$self_dir/[^"]*/vmgr-agent"' "$VMGR_DESTDIR/usr/bin/vmgr-mkimage" | head -n 1 | tr -d '"')
rel=${rel#\$self_dir/}
check_eq "vmgr-mkimage's own agent path (usr/bin/$rel) is the destdir's" \
        "$(realpath "$VMGR_DESTDIR/usr/lib/vmgr/vmgr-agent")" "$(realpath -q "$VMGR_DESTDIR/usr/bin/$rel" || echo "(none)")"

vmgr_start_bus
vmgr_start_vmgrd

# --- with the agent: the default guest becomes ready --------------------------

out=$(vmgrctl_as_user group create g --vm a 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || printf '# %s\n' "$out"
check_eq "vmgrctl group create g --vm a (default guest)" 0 "$rc"
gpath=$(vmgr_group_path g)
out=$(busctl_as_user --timeout=200 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 180000000 2>&1) && rc=0 || rc=$?
check_eq "Group.WaitReady g: the agent from DESTDIR/usr/lib/vmgr connected" 0 "$rc${out:+ $out}"
check "vmgrctl group delete g" vmgrctl_as_user group delete g

# --- without the agent: an error naming the paths ---------------------------

vmgr_stop_vmgrd
mv "$VMGR_DESTDIR/usr/lib/vmgr/vmgr-agent" "$VMGR_TMP/vmgr-agent.moved"
# A fresh vmgrd: the image it built before is remembered per process.
vmgr_start_vmgrd
out=$(vmgrctl_as_user group create h --vm b 2>&1) && rc=0 || rc=$?
printf "# %s\n" "$out"
check "vmgrctl group create h --vm b fails without the agent (rc $rc)" test "$rc" -ne 0
check_match "the error says the agent is not installed" 'vmgr-agent is not installed' "$out"
check_match "the error names the destdir's path" "looked for .*$VMGR_DESTDIR/usr/lib/vmgr/vmgr-agent" "$out"
check_match "the error names the configured path" "(for |, )/usr/lib/vmgr/vmgr-agent" "$out"
hpath=$(vmgr_group_path h 2>/dev/null) || hpath=
if [ -n "$hpath" ]; then
        last=$(vmgr_vm_prop "$(vmgr_vm_path h b)" LastError 2>&1) || last=
        check_match "VM b's LastError names the paths" "vmgr-agent is not installed.*$VMGR_DESTDIR/usr/lib/vmgr/vmgr-agent" "$last"
        vmgrctl_as_user group delete h >/dev/null 2>&1 || true
else
        echo "# group h is gone after the failed create: its error was the call's"
fi
mv "$VMGR_TMP/vmgr-agent.moved" "$VMGR_DESTDIR/usr/lib/vmgr/vmgr-agent"

vmgr_finish
