/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The local half of "vmgrctl cp GROUP/VM:/PATH FILE": what the guest sends
 * is written here, so a local failure can be tested without a VM.
 */

/* Copies everything readable from in (until end-of-file) into dst, created
 * or truncated ("-": our stdout). Returns 0, or -EIO after logging the real
 * reason ("cannot write FILE: No space left on device"). */
int copy_to_local(int in, const char *dst);
