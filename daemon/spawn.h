/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Running a short-lived program from a worker thread and waiting for it
 * (qemu-img, the KVM probe), safely next to vmgrd's SIGCHLD reaper.
 *
 * vmgrd reaps its children from its event loop. A child started with
 * fork() from a worker thread could be reaped there first and its exit
 * status lost. So the program runs under a small supervisor process, cloned
 * with no exit signal: a waitid() without __WALL (P_ALL or P_PID) does not
 * see it, and it never execs (which would turn it into an ordinary child).
 * The supervisor waits for the program, its own child, and passes the status
 * up through a pipe; only our waitid(P_PIDFD, ..., __WALL) collects it.
 * The daemon's reaper must therefore never use __WALL or __WCLONE.
 */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct SpawnResult {
        int code;               /* CLD_EXITED, CLD_KILLED or CLD_DUMPED */
        int status;             /* exit status, or the signal that ended it */
        bool timed_out;         /* we killed it when the timeout passed */
        uint64_t usec;          /* from start to exit */
} SpawnResult;

/* Run argv[0] (an absolute path) with argv, stdin and stdout on /dev/null,
 * stderr captured into err (err_size bytes incl. the NUL; more is read and
 * dropped), an empty signal mask, default signal handling, no inherited fd
 * above 2, and SIGKILL should the calling thread end (vmgrd dying). Waits
 * for it to exit, at most timeout_usec (0: no limit), then kills it with
 * SIGKILL (and waits up to a second more for its stderr to close).
 * Blocks: call it from a worker thread, never the event loop.
 * Returns 0 and fills *ret when the program ran (whatever its status);
 * -errno when it could not be started (e.g. -ENOENT: no such program,
 * -EACCES: not executable). */
int spawn_run(char *const argv[], uint64_t timeout_usec, char *err, size_t err_size, SpawnResult *ret);

/* spawn_run(), with the program's stdout captured into out too (out_size
 * bytes incl. the NUL, at least 1; more is read and dropped), the same way
 * as stderr. For a program that prints its result (vmgr-mkguest). */
int spawn_run_stdout(char *const argv[], uint64_t timeout_usec, char *out, size_t out_size, char *err,
                     size_t err_size, SpawnResult *ret);

/* Whether res says "exited with status". */
static inline bool spawn_exited_with(const SpawnResult *res, int status) {
        return res->code == CLD_EXITED && res->status == status;
}

/* Cut s after its first line (at the first newline), strip trailing
 * whitespace. Returns s. */
char *spawn_first_line(char *s);
