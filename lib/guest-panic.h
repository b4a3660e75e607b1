/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A guest kernel's panic as its serial console shows it:
 *
 *     [    2.073351] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009
 *
 * The guest writes that text, so what comes out of it is bounded and plain:
 * it goes into a D-Bus property (which must be valid UTF-8) and into logs.
 * Pure: no I/O, no allocation.
 */

#include <stddef.h>

/* Bytes of the message kept, without the NUL. */
#define VMGR_PANIC_MESSAGE_MAX 200

/* Whether console line (len bytes, no newline, not NUL-terminated) is the
 * kernel's panic line: "Kernel panic - not syncing: MSG" at its start or
 * after the kernel's "[ SECONDS]" time stamp. If it is, MSG goes into buf
 * (size >= 2): at most VMGR_PANIC_MESSAGE_MAX bytes and size - 1, every byte
 * outside printable ASCII replaced with '?', spaces at its ends trimmed, "?"
 * if nothing is left. Returns 1 for a panic line, 0 otherwise (buf untouched). */
int vmgr_kernel_panic_message(const char *line, size_t len, char *buf, size_t size);
