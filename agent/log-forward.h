/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vmgr-agent's log forwarding (log-forward.c): the kernel log or the
 * journal, and the agent's own lines, to the host as LOG messages, one
 * bounded batch at a time, each source's sent position kept under /run for
 * an agent restarted within the same boot. Its state is its own; the agent
 * gives it a way to queue messages, its epoll fd, and tells it about the
 * port, the session and children that exited.
 *
 * Also the agent's own logging (log_info() and co.): to stderr, and kept
 * for the host where stderr is not the journal already.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent-proto.h"
#include "macro.h"

/* What the log forwarding needs of the agent's output queue. */
struct log_forward_ops {
        /* Encode m at the end of the output queue. Returns 0 or -errno. */
        int (*queue_msg)(const struct vmgr_agent_msg *m);
        /* The queue's end: the bytes ever written from it to the port plus
         * those in it now. */
        uint64_t (*queue_end)(void);
};

enum log_forward_source {
        LOG_FORWARD_KMSG,
        LOG_FORWARD_JOURNAL,
};

/* First thing, before anything is logged: keep ops, and decide whether our
 * own lines go to the host (not where stderr is the journal: they come
 * from there). */
void log_forward_init(const struct log_forward_ops *ops);

/* Choose the source, open it and load what an earlier agent of this boot
 * sent. Its fds (/dev/kmsg, journalctl's pipe, which comes and goes) are
 * registered edge-triggered in epoll_fd with data.ptr kmsg_tag or
 * journal_tag: call log_forward_readable() when one fires. null_fd becomes
 * journalctl's stdin. Failures are logged; the agent runs on without them. */
void log_forward_setup(int epoll_fd, int null_fd, void *kmsg_tag, void *journal_tag);

/* An epoll event on the fd registered with source's tag. */
void log_forward_readable(enum log_forward_source source);

/* can_queue: a session exists and the output queue has room for new
 * output. log_forward_produce() queues the next batch if it is time for
 * one; log_forward_pending() says whether it would queue something now
 * (the loop should not sleep); log_forward_timeout_msec() returns the
 * milliseconds until logs are due without an fd saying so (the wait for a
 * HELLO ends, journalctl is to be started again), or -1. */
void log_forward_produce(bool can_queue);
bool log_forward_pending(bool can_queue);
int log_forward_timeout_msec(bool can_queue);

/* The port took bytes: written is the queue's count of bytes ever written. */
void log_forward_written(uint64_t written);

/* The port was (re)opened; hup: no host is connected. */
void log_forward_port_opened(bool hup);
/* An event on the port; hup: no host is connected now. */
void log_forward_port_event(bool hup, bool session);
/* A HELLO came, before the session it starts (or refuses) ends the old one. */
void log_forward_hello(void);
/* The session ends and the output queue is dropped with it: what its
 * pending batch forwarded goes again, in the next session. */
void log_forward_session_end(void);

/* A child was reaped. Returns true if it was journalctl (restarted later). */
bool log_forward_child_exited(pid_t pid, int status);

/* The agent exits: stop journalctl. */
void log_forward_stop(void);

/* SIGUSR1: the forwarding's state, to the console. */
void log_forward_log_state(void);

/* The agent's own logging: "vmgr-agent: TEXT" to stderr and, except
 * log_console() (debugging output that would flood the host), to the host
 * with its syslog priority. log_error_errno() sets errno to -r (for %m)
 * and returns r. */
_printf_(1, 2) void log_info(const char *fmt, ...);
_printf_(1, 2) void log_warning(const char *fmt, ...);
_printf_(1, 2) void log_console(const char *fmt, ...);
_printf_(2, 3) int log_error_errno(int r, const char *fmt, ...);
