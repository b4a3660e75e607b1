/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Choosing the accelerator: KVM where it really works, TCG otherwise.
 *
 * /dev/kvm answering is not enough: on some hosts (nested virtualisation
 * without the right support) QEMU with -accel kvm hangs or aborts. So KVM is
 * proven by booting a tiny guest the way the VMs boot: q35, SeaBIOS, and with
 * -cpu host (the domain's host-passthrough). The guest is a 512-byte boot
 * sector that switches to 64-bit long mode (paging, EFER via wrmsr, as a
 * kernel does), counts down from ten million, and writes to an
 * isa-debug-exit port, so QEMU exits with status 85. Natively that takes
 * milliseconds; where KVM traps on every instruction it takes seconds (15 s
 * measured), so a 3 s timeout tells the two apart, and a hang or an abort
 * is simply a failure. A negative answer counts only once the same guest
 * has finished under TCG, proving the probe itself sound.
 *
 * The answer is cached in CACHE_DIR/accel.json, keyed by the kernel
 * (uname release and version), the QEMU binary (path, size, mtime) and
 * /dev/kvm (device number). Probes are serialised by flock on
 * CACHE_DIR/accel.lock, so concurrent callers, threads or processes, probe
 * once. A missing or inaccessible /dev/kvm is decided at once, without
 * probe or cache.
 *
 * Blocking (up to about 3.5 s on a first probe): call from a worker thread.
 * Thread-safe.
 */

#include <stddef.h>

#include "spec.h"
#include "vmgr-error.h"

#define ACCEL_QEMU_PATH "/usr/bin/qemu-system-x86_64"
#define ACCEL_PROBE_TIMEOUT_USEC (3ULL * 1000000ULL)

/* Resolve requested to KVM or TCG: TCG is TCG (instant); KVM is KVM if the
 * probe succeeds; AUTO is KVM if the probe succeeds, else TCG.
 * Returns 0 and *ret; or -EOPNOTSUPP when KVM was requested and does not
 * work, -EINVAL for a bad argument, or another -errno if the probe could
 * not be run. reason (reason_size bytes) says why KVM is not used:
 * on failure, and also on success when AUTO resolved to TCG (for the log);
 * it is left alone otherwise. */
int accel_resolve(const char *cache_dir, VmgrAccel requested, VmgrAccel *ret, char *reason, size_t reason_size);

/* The same with another QEMU binary (absolute path) than ACCEL_QEMU_PATH. */
int accel_resolve_qemu(const char *cache_dir, const char *qemu, VmgrAccel requested, VmgrAccel *ret,
                       char *reason, size_t reason_size);
