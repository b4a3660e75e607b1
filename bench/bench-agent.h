/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A minimal, blocking client of the guest agent protocol
 * (docs/agent-protocol.md) for tools/bench: it talks to vmgr-agent on a
 * QEMU virtio-serial socket directly, without vmgrd, so that the benchmark
 * can time what the agent alone costs. One connection, one session; the
 * session starts by the same rule as vmgrd's (lone 0x00 + HELLO with a
 * nonce, HELLO again on the agent's announcement, connected once the agent
 * answers with the nonce of our latest HELLO).
 */

#include <stdbool.h>
#include <stdint.h>

#include "agent-proto.h"

typedef struct BenchAgent {
        int fd;
        struct vmgr_agent_decoder *decoder;
        uint64_t nonce;         /* of our latest HELLO */
        bool connected;         /* the agent answered it */
        uint32_t agent_window;  /* the agent's initial window */
        uint32_t next_id;       /* process and stream ids, never reused */
} BenchAgent;

/* Connect to the unix socket at path, retrying every millisecond for up to
 * timeout_ms while it does not exist or does not accept yet (QEMU creates it
 * while starting); stop early when alive() returns false (the QEMU died).
 * Returns 0 with a->fd set (the rest of *a zeroed), or -errno. */
int bench_agent_connect(BenchAgent *a, const char *path, double timeout_ms, bool (*alive)(void *), void *userdata);

/* Close the connection and free the decoder. */
void bench_agent_done(BenchAgent *a);

/* Send a lone 0x00 and a HELLO with a new nonce. Returns 0 or -errno. */
int bench_agent_send_hello(BenchAgent *a);

/* Send one message, blocking until all of it is written. Returns 0 or -errno. */
int bench_agent_send(BenchAgent *a, const struct vmgr_agent_msg *m);

/* Wait up to timeout_ms for the next message, handling the session's HELLOs
 * on the way (they are returned too, after a->connected was updated).
 * Returns 1 with *ret valid until the next call, -ETIMEDOUT, -ECONNRESET when
 * the agent's end hung up, or -errno. */
int bench_agent_receive(BenchAgent *a, double timeout_ms, const struct vmgr_agent_msg **ret);

/* Start a session and wait up to timeout_ms for it. Returns 0 or -errno. */
int bench_agent_start_session(BenchAgent *a, double timeout_ms);

/* Run argv[] (NULL-terminated) count times, at most inflight at once, as
 * vmgrd's Run does: EXEC with a stdin stream that gets EOF at once and
 * stdout and stderr streams (output is dropped), then wait for EXIT and the
 * EOF of both outputs. Only on a connected session with nothing else
 * running. Calls each(i, ms, userdata) as run i completes, ms after its
 * EXEC was sent. Returns 0 if every one exited 0, -EIO if one did not, or
 * -errno. */
int bench_agent_run_many(BenchAgent *a, char *const *argv, unsigned count, unsigned inflight, double timeout_ms,
                         void (*each)(unsigned i, double ms, void *userdata), void *userdata);

/* Milliseconds on CLOCK_MONOTONIC. */
double bench_now_ms(void);
