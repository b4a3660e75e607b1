/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small thread pool for work that may block: libvirt calls, disk image
 * copies, the accelerator probe. The event loop never waits for it: work
 * runs on a pool thread, and its completion runs back on the event loop
 * (woken through an eventfd). Callers keep whatever the job touches alive
 * (take a reference) until the completion has run.
 */

#include <systemd/sd-event.h>

typedef struct WorkerPool WorkerPool;

/* Runs on a pool thread; returns a result handed to the completion. */
typedef int (*worker_work_t)(void *userdata);
/* Runs on the event loop with the work's result. */
typedef void (*worker_done_t)(int result, void *userdata);

/* Returns 0 and a pool of n threads attached to event, or -errno. */
int worker_pool_new(sd_event *event, unsigned n, WorkerPool **ret);

/* Stop accepting work, wait for running jobs, join the threads. Completions
 * of jobs that finished are run first; queued jobs that never ran get
 * -ECANCELED. */
WorkerPool *worker_pool_free(WorkerPool *p);

/* Queue work. Returns 0 (done will be called exactly once) or -errno. */
int worker_submit(WorkerPool *p, worker_work_t work, worker_done_t done, void *userdata);

/* Run done(result, userdata) on the event loop soon. Safe from any thread:
 * this is how threads that are not pool threads (libvirt's event thread)
 * hand events to the loop. Returns 0 or -ENOMEM. */
int worker_post(WorkerPool *p, worker_done_t done, int result, void *userdata);

/* Jobs queued or running. */
unsigned worker_pool_busy(WorkerPool *p);
