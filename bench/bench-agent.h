/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A client of the guest agent (docs/agent-protocol.md) for tools/bench: it
 * talks to vmgr-agent on a QEMU virtio-serial socket directly, without
 * vmgrd, so that the benchmark can time what the agent alone costs. The
 * protocol is spoken by vmgrd's own session code (daemon/agent-session.c)
 * on a loop of our own: the same HELLO, jobs and flow control, only the
 * D-Bus and process parts of vmgrd are left out. One connection, one
 * session.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "agent-session.h"

typedef struct BenchAgent {
        int fd;                 /* connected, until the session takes it over */
        const char *path;       /* the socket's (not copied) */
        sd_event *event;
        AgentSession *session;
        double t_first;         /* bench_now_ms() of the agent's first message, or -1 */
        double t_hello;         /* ... of the session coming up, or -1 */
        int refused;            /* the agent's ERROR about the session before it came up (-errno), or 0 */
} BenchAgent;

/* Connect to the unix socket at path, retrying every millisecond for up to
 * timeout_ms while it does not exist or does not accept yet (QEMU creates it
 * while starting); stop early when alive() returns false (the QEMU died).
 * Returns 0 with a->fd set (the rest of *a cleared), or -errno. */
int bench_agent_connect(BenchAgent *a, const char *path, double timeout_ms, bool (*alive)(void *), void *userdata);

/* Close the connection, free the session. */
void bench_agent_done(BenchAgent *a);

/* Begin a session on the connection (a lone 0x00 and a HELLO go out).
 * Returns 0 or -errno. */
int bench_agent_begin(BenchAgent *a);

/* Run the loop until until(a, userdata) holds (checked after each event),
 * for up to timeout_ms. Returns 0, -ETIMEDOUT, -ECONNRESET when the
 * connection ended, the agent's refusal of the session (-errno), or
 * -errno. */
int bench_agent_wait(BenchAgent *a, double timeout_ms, bool (*until)(BenchAgent *a, void *userdata),
                     void *userdata);

/* Begin a session and wait up to timeout_ms for it. Returns 0 or -errno. */
int bench_agent_start_session(BenchAgent *a, double timeout_ms);

/* Run argv[] (NULL-terminated) count times, at most inflight at once, as
 * vmgrd's Run does: EXEC with an empty stdin and stdout and stderr
 * collected in memory, finished at EXIT and the end of both outputs. Only
 * on a connected session with nothing else running. Calls each(i, ms,
 * userdata) as run i completes, ms after it was started. Returns 0 if
 * every one exited 0, -EIO if one did not, -ETIMEDOUT if nothing happened
 * for timeout_ms, or -errno. */
int bench_agent_run_many(BenchAgent *a, char *const *argv, unsigned count, unsigned inflight, double timeout_ms,
                         void (*each)(unsigned i, double ms, void *userdata), void *userdata);

/* Milliseconds on CLOCK_MONOTONIC. */
double bench_now_ms(void);
