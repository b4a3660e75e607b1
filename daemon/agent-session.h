/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vmgrd's side of the guest agent protocol (docs/agent-protocol.md) for one
 * VM: the connection to the unix socket QEMU listens on for the agent's
 * virtio-serial port, the HELLO exchange, the guest's latest INFO, and jobs
 * (EXEC, FILE_PUT, FILE_GET, SHUTDOWN) with their byte streams multiplexed
 * on the one connection.
 *
 * Everything runs on the sd-event loop with non-blocking fds. The session
 * connects when asked to (QEMU runs), retries with a short back-off until
 * it gets through, and reconnects whenever the connection drops or the
 * agent announces a restart (a guest reboot); jobs of a session that ended
 * fail with -ECONNRESET.
 *
 * Everything the guest can make vmgrd hold is bounded: the queue of bytes
 * for the agent (answers to PINGs and HELLOs included) by OUTQ_MAX, the
 * decoder by the protocol's frame size, each output stream by its window,
 * memory outputs by their cap. A guest that passes a bound, breaks flow
 * control or restarts its sessions in a loop loses its session (see
 * agent_session_set_violation_handler()).
 *
 * Streams are flow-controlled end to end: input is read from its fd only
 * while the agent has granted credit, and output is credited back only once
 * it has been written to its fd, so a slow reader slows the writer in the
 * guest and vmgrd holds at most one window per stream.
 *
 * The agent's host-side test client (tests/agent-client.c) and the
 * benchmark's (bench/bench-agent.c) use this same code on sockets they
 * connect themselves (agent_session_attach()), so that their tests and
 * figures are those of what vmgrd ships.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "agent-proto.h"

typedef struct AgentSession AgentSession;
typedef struct AgentJob AgentJob;

/* Our receive window per stream (what our HELLO announces). */
#define AGENT_SESSION_WINDOW (256U * 1024U)

typedef enum AgentJobKind {
        AGENT_JOB_EXEC,
        AGENT_JOB_PUT,
        AGENT_JOB_GET,
        AGENT_JOB_SHUTDOWN,
        AGENT_JOB_IDENTITY,
} AgentJobKind;

/* The streams of a job: EXEC has all three, PUT only IN, GET only OUT. */
typedef enum AgentStreamSlot {
        AGENT_STREAM_IN,
        AGENT_STREAM_OUT,
        AGENT_STREAM_ERR,
        _AGENT_STREAM_MAX,
} AgentStreamSlot;

/* Called when the session connects, loses its session or gets a new INFO. */
typedef void (*agent_session_changed_t)(AgentSession *s, void *userdata);

/* Called for each LOG the agent sends (a guest log line). */
typedef void (*agent_session_log_t)(AgentSession *s, const struct vmgr_agent_log *log, void *userdata);

/* Called with each message the agent sends, before the session acts on it
 * (m is valid during the call only; the handler must not stop or free the
 * session). */
typedef void (*agent_session_message_t)(AgentSession *s, const struct vmgr_agent_msg *m, void *userdata);

/* Called when vmgrd drops the session because the guest broke a rule or
 * passed a bound (why: one sentence); the connection is made again later,
 * after a back-off that grows while the guest keeps doing it. */
typedef void (*agent_session_violation_t)(AgentSession *s, const char *why, void *userdata);

/* Called once when a job is finished (it may free the job). */
typedef void (*agent_job_done_t)(AgentJob *j, void *userdata);

/* A job's outcome, valid once its done callback ran. */
typedef struct AgentJobResult {
        int error;                      /* 0, or -errno: the agent's ERROR, a lost session, a local failure */
        char message[256];              /* why, when error < 0 */
        int status, signal;             /* EXEC: exit status, or -1 and the signal */
        uint64_t size;                  /* PUT/GET: bytes */
        uint32_t mode;                  /* GET: the file's mode */
        bool overflow;                  /* a memory output passed its cap (the process was killed) */
} AgentJobResult;

/* Make a session for socket_path (copied). changed (may be NULL) hears of
 * every change. Returns 0 or -ENOMEM. */
int agent_session_new(sd_event *event, const char *socket_path, agent_session_changed_t changed, void *userdata,
                      AgentSession **ret);
/* Stop it, fail its jobs, free it (NULL is fine). Returns NULL. */
AgentSession *agent_session_free(AgentSession *s);

/* While a session is established, PING the agent after interval_usec of
 * silence and drop the connection (and reconnect) after three intervals
 * without a byte from it: a hung agent or guest makes the VM not ready
 * instead of leaving callers waiting. 0 (the default) turns it off. */
void agent_session_set_keepalive(AgentSession *s, uint64_t interval_usec);

/* Hear of the guest's log lines (with the userdata given to new). */
void agent_session_set_log_handler(AgentSession *s, agent_session_log_t handler);

/* Hear of sessions dropped for the guest's misbehaviour (with the userdata given to new). */
void agent_session_set_violation_handler(AgentSession *s, agent_session_violation_t handler);

/* See every message from the agent (with the userdata given to new): for a
 * client that reports on the protocol itself, e.g. an agent's refusal of
 * our HELLO (ERROR with id 0 before the session is up, which the session
 * otherwise ignores) or PONGs. vmgrd sets none. */
void agent_session_set_message_handler(AgentSession *s, agent_session_message_t handler);

/* What our HELLOs offer: protocol versions, our receive window per stream
 * (also what each output stream of our jobs is granted), and our name
 * (static, not copied). Defaults: VMGR_AGENT_VERSION_MIN..MAX,
 * AGENT_SESSION_WINDOW, "vmgrd". Set before the connection starts. */
void agent_session_set_hello(AgentSession *s, uint16_t version_min, uint16_t version_max, uint32_t window,
                             const char *name);

/* Begin connecting (QEMU runs); retries until connected. Idempotent. */
void agent_session_start(AgentSession *s);
/* Hang up and stop retrying (QEMU is gone); jobs fail with -ENOTCONN. */
void agent_session_stop(AgentSession *s);

/* Begin a session on fd, a stream socket to the agent that the caller
 * connected itself (a client of the agent other than vmgrd), instead of
 * start(): fd is taken over (made non-blocking; closed with the
 * connection, also on failure) and the HELLO goes out at once. Nothing is
 * retried: when this connection ends, the session ends for good (see
 * agent_session_has_connection()). Returns 0, -EBUSY while started or
 * connected already, or -errno. */
int agent_session_attach(AgentSession *s, int fd);

/* Is a connection open (its session established or not)? */
bool agent_session_has_connection(const AgentSession *s);

/* Send a PING now; its PONG (same id and payload) reaches the message
 * handler. Returns 0, -ENOTCONN without a session, or -errno. */
int agent_session_ping(AgentSession *s, uint32_t id, uint64_t payload);

/* Is a session established (HELLO answered)? */
bool agent_session_is_connected(const AgentSession *s);
/* The protocol version the agent chose for this session, 0 without one.
 * IDENTITY needs VMGR_AGENT_VERSION_IDENTITY (an older agent cannot take a
 * clone's identity: its VM must not be restored from a snapshot). */
uint16_t agent_session_version(const AgentSession *s);
/* The latest INFO of this session, or NULL before the first one. Its
 * generation is the last IDENTITY's the agent applied (all zero before
 * one): an INFO with another generation than the one just sent describes
 * the machine before it took its identity. */
const struct vmgr_agent_info *agent_session_info(const AgentSession *s);

/* A new job on the session, not yet started. Returns 0, -ENOTCONN without
 * a session, or -ENOMEM. */
int agent_job_new(AgentSession *s, AgentJobKind kind, agent_job_done_t done, void *userdata, AgentJob **ret);
/* Forget a job: a process still running is killed, its fds closed; its done
 * callback is not called any more. NULL is fine. Returns NULL. */
AgentJob *agent_job_free(AgentJob *j);

/* Called once when the first DATA or EOF arrives on an output stream (a
 * FILE_GET's file opened fine), before the done callback. */
void agent_job_set_progress(AgentJob *j, agent_job_done_t progress);

/* Stream sources and sinks, set before starting. An fd is taken over (made
 * non-blocking, closed when done, also on failure). A memory input is
 * copied; a memory output collects up to cap bytes. Return 0 or -errno. */
int agent_job_set_fd(AgentJob *j, AgentStreamSlot slot, int fd);
int agent_job_set_input_mem(AgentJob *j, const void *data, size_t size);
int agent_job_set_output_mem(AgentJob *j, AgentStreamSlot slot, size_t cap);

/* Start the job. argv/env are NULL-terminated; cwd may be NULL. Return 0 or -errno (-E2BIG: too many args). */
int agent_job_start_exec(AgentJob *j, char *const *argv, char *const *env, const char *cwd);
int agent_job_start_file(AgentJob *j, const char *path, uint32_t mode);
int agent_job_start_shutdown(AgentJob *j);
/* REBOOT instead of SHUTDOWN, on a job of kind AGENT_JOB_SHUTDOWN. */
int agent_job_start_reboot(AgentJob *j);

/* IDENTITY (on a job of kind AGENT_JOB_IDENTITY): the guest becomes the
 * machine id describes (copied). Done when the agent has applied it: its
 * DONE (then a fresh INFO with id's generation follows), or its ERROR
 * (result.error, result.message), or the session's loss. Returns 0,
 * -EOPNOTSUPP if the agent's protocol version has no IDENTITY, -EINVAL if id
 * breaks the protocol's rules, or -errno. */
int agent_job_start_identity(AgentJob *j, const struct vmgr_agent_identity *id);

/* Signal an EXEC's process group. Returns 0, or -ESRCH once it has exited. */
int agent_job_kill(AgentJob *j, int signal);

const AgentJobResult *agent_job_result(const AgentJob *j);
/* A memory output's bytes; *size set. */
const void *agent_job_output(const AgentJob *j, AgentStreamSlot slot, size_t *size);
