/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A group's evidence bundle (Group.Collect, and the spec's collect_on_delete):
 * everything a test author needs to understand a failure, written into one
 * directory. What is in memory (state, timings, domain XML) is taken on the
 * event loop; the files are copied and the logs split on a worker thread.
 * The layout is documented in docs/dbus-api.md.
 */

#include <stddef.h>

typedef struct Group Group;

/* Called on the event loop when the bundle is written (error 0) or failed. */
typedef void (*collect_done_t)(Group *g, int error, const char *message, void *userdata);

/* Write g's bundle into dir (absolute; created if missing), as vmgrd's
 * user. Returns 0 (done will be called), or -ESTALE (g is gone) or another
 * -errno with a sentence in error (error_size bytes). */
int group_collect(Group *g, const char *dir, collect_done_t done, void *userdata, char *error, size_t error_size);
