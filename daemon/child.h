/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Processes vmgrd spawns or inherits as child-subreaper.
 */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "time-util.h"

/* Close every fd >= from except the n_keep in keep (any order). Only
 * syscalls: safe in a child forked from a threaded process. */
void close_all_but(int from, const int *keep, size_t n_keep);

/* In a forked child before exec: default signal handlers, empty signal mask,
 * every fd >= first_to_close closed. Never fails (best effort). */
void child_prepare_exec(int first_to_close);

/* Reap every child that has exited, without blocking (not those spawn_run()
 * waits for itself: see spawn.h). Returns how many. */
int reap_children(void);

/* Send sig to every child of ours (after re-parenting, that is every
 * remaining descendant). Returns the number signalled. */
int signal_children(int sig);

/* Wait up to timeout_usec for all children to exit, reaping them.
 * Returns 0 when none is left, -ETIMEDOUT otherwise. */
int wait_children(uint64_t timeout_usec);

/* pidfd_open(2) and pidfd_send_signal(2). Return -errno on failure. */
int pidfd_open_pid(pid_t pid);
int pidfd_signal(int pidfd, int sig);

/* The pid of the process behind pidfd, as our PID namespace sees it (a
 * pid reported from inside another PID namespace means something else
 * here). Returns the pid, or -errno (-ESRCH: it has exited). */
pid_t pidfd_get_pid(int pidfd);

/* Whether the process behind pidfd has exited (pidfd readable). */
bool pidfd_exited(int pidfd);
