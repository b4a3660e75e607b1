# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced after lib.sh by the tests that boot vmgr's Debian image
# (vmgr-mkimage, docs/guest.md). Call vmgr_test_debian_image before
# vmgr_enter_netns: a build needs Debian's archive, which the test's network
# namespace cannot reach; the script re-executed inside the namespaces calls
# it again and gets the cached image without the network.

# Where the images live: root builds them, and vmgrd's unprivileged test
# user reads them. Kept across tests and runs (the first build takes a
# minute or two, later calls less than a second).
VMGR_TEST_IMAGE_DIR=${VMGR_TEST_IMAGE_DIR:-/var/tmp/vmgr-test-images}

# vmgr_test_debian_image [--agent]: build vmgr's Debian test image (with the
# agent from this build's destdir with --agent, the stock image without) or
# take it from the cache; print its path. Exit 77 (skipped) when the tools
# it needs are missing, fail when the build does.
vmgr_test_debian_image() {
        local kind=stock args=() out t missing=()
        if [ "${1:-}" = --agent ]; then
                kind=agent
                args=(--agent-path "$VMGR_DESTDIR/usr/libexec/vmgr-agent")
        fi
        for t in mmdebstrap mkfs.vfat mcopy syslinux sfdisk qemu-img; do
                command -v "$t" >/dev/null || missing+=("$t")
        done
        if [ ${#missing[@]} -gt 0 ]; then
                echo "# skipped: missing ${missing[*]} (tools/deps installs them)" >&2
                exit 77
        fi
        install -d -m 0755 "$VMGR_TEST_IMAGE_DIR" "$VMGR_TEST_IMAGE_DIR/cache"
        if ! out=$("$VMGR_DESTDIR/usr/bin/vmgr-mkimage" debian "${args[@]}" \
                --cache-dir "$VMGR_TEST_IMAGE_DIR/cache" "$VMGR_TEST_IMAGE_DIR/debian-$kind.qcow2"); then
                echo "# error: vmgr-mkimage could not build the $kind Debian image" >&2
                return 1
        fi
        echo "$out"
}
