/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent-session.h"
#include "logline.h"
#include "log.h"
#include "macro.h"
#include "tokenbucket.h"
#include "vmgr-error.h"

/* Reconnect back-off: from 50 ms, doubling, up to 1 s. */
#define RETRY_MIN_USEC (50ULL * 1000ULL)
#define RETRY_MAX_USEC (1000ULL * 1000ULL)
/* Input is read only while less than this waits to go to the socket. */
#define OUTQ_DATA_MAX (256U * 1024U)
/* Most bytes that may wait for the agent: input stops at OUTQ_DATA_MAX, so
 * the rest is room for control messages. Only a guest that makes vmgrd
 * answer (PING, HELLO) without reading its port gets here; it loses its
 * session instead of growing vmgrd without end. */
#define OUTQ_MAX (2U * 1024U * 1024U)
/* After a guest broke a rule, the next connection waits this long, doubling
 * with each further breach up to the maximum; a breach this long after the
 * last one starts again from the minimum. */
#define PENALTY_MIN_USEC (1000ULL * 1000ULL)
#define PENALTY_MAX_USEC (64ULL * 1000ULL * 1000ULL)
#define PENALTY_FORGET_USEC (600ULL * 1000ULL * 1000ULL)
/* New sessions the guest may cause (an agent announcing a restart, or
 * ending the session): a burst of SESSIONS_BURST, then one per
 * SESSIONS_EVERY_SEC. Each session start logs the VM's stages and emits
 * signals; a guest that restarts its agent in a loop must not turn that
 * into an unbounded stream of vmgrd's lines in the group's log. A guest
 * reboot takes seconds, so reboot loops stay well within it. */
#define SESSIONS_BURST 30
#define SESSIONS_EVERY_SEC 2

typedef struct AgentStream {
        uint32_t id;                    /* 0: not used (/dev/null in the guest) */
        int fd;                         /* source (IN) or sink (OUT, ERR); -EBADF when memory or closed */
        sd_event_source *io;
        bool pollable;                  /* fd works with epoll (not a regular file) */
        bool eof;                       /* IN: EOF sent; OUT/ERR: EOF received */
        bool broken;                    /* sink: reader went away, bytes are dropped */
        /* IN */
        struct vmgr_agent_send_window send;
        uint8_t *mem;                   /* memory input or output */
        size_t mem_size, mem_off, mem_alloc, mem_cap;
        bool is_mem;
        /* OUT/ERR */
        struct vmgr_agent_recv_window recv;
        uint8_t *pending;               /* received, not yet written to fd (at most the window) */
        size_t pending_size;
} AgentStream;

struct AgentJob {
        AgentSession *session;          /* NULL once the session is gone */
        AgentJob *next, *prev;
        AgentJobKind kind;
        uint32_t id;
        bool started, finished, exited, answered;
        AgentStream streams[_AGENT_STREAM_MAX];
        AgentJobResult result;
        agent_job_done_t done, progress;
        void *userdata;
};

struct AgentSession {
        sd_event *event;
        char *socket_path;
        agent_session_changed_t changed;
        agent_session_log_t log;
        agent_session_message_t on_message;
        void *userdata;

        /* What our HELLO offers (agent_session_set_hello()). */
        uint16_t version_min, version_max;
        uint32_t window;                /* also each output stream's receive window */
        const char *hello_name;

        bool wanted;                    /* start() called, stop() not since */
        int fd;
        sd_event_source *io, *retry;
        uint64_t retry_usec;
        sd_event_source *keepalive;     /* while connected: PING when quiet, drop when silent */
        uint64_t keepalive_usec;        /* 0: off */
        uint64_t last_rx_usec;          /* CLOCK_MONOTONIC of the last bytes from the agent */
        struct vmgr_agent_decoder *decoder;
        uint8_t *outq;
        size_t outq_size, outq_alloc;

        /* A rule the guest broke: the session is dropped on the next turn of
         * the loop (not in the middle of whatever noticed it). */
        char violation[256];
        sd_event_source *violation_defer;
        agent_session_violation_t on_violation;
        unsigned n_penalties;           /* breaches in a row, for the back-off */
        uint64_t last_penalty_usec;
        uint64_t penalty_usec;          /* the next connection waits at least this long */
        struct vmgr_token_bucket sessions; /* guest-caused new sessions */

        bool connected;                 /* HELLO answered */
        uint16_t version;               /* the version the agent chose, while connected */
        bool refusal_logged;            /* the agent's refusal of this connection was logged */
        uint64_t nonce;
        uint32_t agent_window;
        uint32_t next_id;

        struct vmgr_agent_info *info;   /* latest INFO (strings in info_strings), or NULL */
        char *info_strings;

        AgentJob *jobs;
};

static void session_reset(AgentSession *s, int error, const char *why);
static int session_flush(AgentSession *s);
static void job_pump_input(AgentJob *j);
static void job_maybe_finish(AgentJob *j);
static void job_fail(AgentJob *j, int error, const char *message);

/* ---- output queue ------------------------------------------------------ */

static void session_violation(AgentSession *s, const char *why);

/* Queue bytes for the agent. Returns 0, -ENOBUFS past OUTQ_MAX (the session
 * is being dropped), or -ENOMEM. */
static int outq_append(AgentSession *s, const void *p, size_t n) {
        if (s->violation[0])
                return -ENOBUFS; /* being dropped: nothing more for it */
        if (s->outq_size + n > OUTQ_MAX) {
                char why[160];

                snprintf(why, sizeof(why),
                         "the guest did not read its agent port while more than %u MiB of messages waited for it",
                         OUTQ_MAX / (1024U * 1024U));
                session_violation(s, why);
                return -ENOBUFS;
        }
        if (s->outq_size + n > s->outq_alloc) {
                size_t want = MIN((s->outq_size + n) * 2, (size_t) OUTQ_MAX);
                uint8_t *q = realloc(s->outq, want);
                if (!q)
                        return -ENOMEM;
                s->outq = q;
                s->outq_alloc = want;
        }
        memcpy(s->outq + s->outq_size, p, n);
        s->outq_size += n;
        return 0;
}

/* Queue one message. Returns 0 or -errno. */
static int session_send(AgentSession *s, const struct vmgr_agent_msg *m) {
        static uint8_t buf[VMGR_AGENT_WIRE_MAX];
        int n, r;

        if (s->fd < 0)
                return -ENOTCONN;
        n = vmgr_agent_msg_encode(m, buf, sizeof(buf));
        if (n < 0)
                return n;
        r = outq_append(s, buf, (size_t) n);
        if (r < 0)
                return r;
        return session_flush(s);
}

static void session_update_io(AgentSession *s) {
        if (s->io)
                (void) sd_event_source_set_io_events(s->io, EPOLLIN | (s->outq_size > 0 ? EPOLLOUT : 0));
}

/* Write what the socket takes now. Returns 0 or -errno (the connection broke). */
static int session_flush(AgentSession *s) {
        size_t off = 0;

        while (off < s->outq_size) {
                ssize_t n = send(s->fd, s->outq + off, s->outq_size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                off += (size_t) n;
        }
        memmove(s->outq, s->outq + off, s->outq_size - off);
        s->outq_size -= off;
        session_update_io(s);
        return 0;
}

/* ---- streams -------------------------------------------------------------- */

static AgentStream *job_stream(AgentJob *j, uint32_t id, AgentStreamSlot *slot) {
        for (AgentStreamSlot i = 0; i < _AGENT_STREAM_MAX; i++)
                if (j->streams[i].id == id) {
                        *slot = i;
                        return &j->streams[i];
                }
        return NULL;
}

static AgentJob *session_find_stream(AgentSession *s, uint32_t id, AgentStreamSlot *slot, AgentStream **ret) {
        for (AgentJob *j = s->jobs; j; j = j->next) {
                AgentStream *st = job_stream(j, id, slot);
                if (st) {
                        *ret = st;
                        return j;
                }
        }
        return NULL;
}

static AgentJob *session_find_job(AgentSession *s, uint32_t id) {
        for (AgentJob *j = s->jobs; j; j = j->next)
                if (j->id == id)
                        return j;
        return NULL;
}

static void stream_close(AgentStream *st) {
        st->io = sd_event_source_disable_unref(st->io);
        st->fd = safe_close(st->fd);
        free(st->pending);
        st->pending = NULL;
        st->pending_size = 0;
}

static void grant(AgentJob *j, AgentStream *st, size_t consumed) {
        uint32_t inc = vmgr_agent_recv_window_consume(&st->recv, consumed);

        if (inc > 0 && j->session && !st->eof) {
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_WINDOW, .id = st->id, .window = inc };
                (void) session_send(j->session, &m);
        }
}

/* The reader of a sink went away (EPIPE). As in a local pipeline, the
 * process writing to it gets SIGPIPE (`vmgrctl exec VM -- yes | head`
 * ends); one that ignores it writes on, and what it writes is dropped. */
static void sink_broke(AgentJob *j, AgentStream *st) {
        st->broken = true;
        if (j->kind == AGENT_JOB_EXEC)
                (void) agent_job_kill(j, SIGPIPE);
}

/* Write a sink's pending bytes to its fd; credit back what went. */
static void sink_flush(AgentJob *j, AgentStream *st) {
        size_t done = 0;

        while (done < st->pending_size && !st->broken) {
                ssize_t n = write(st->fd, st->pending + done, st->pending_size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        sink_broke(j, st); /* EPIPE: nobody reads; drop from here on */
                        break;
                }
                done += (size_t) n;
        }
        if (st->broken)
                done = st->pending_size;
        memmove(st->pending, st->pending + done, st->pending_size - done);
        st->pending_size -= done;
        if (done > 0)
                grant(j, st, done);
        if (st->io)
                (void) sd_event_source_set_enabled(st->io, st->pending_size > 0 ? SD_EVENT_ON : SD_EVENT_OFF);
        if (st->pending_size == 0 && st->eof)
                stream_close(st);
}

static int on_sink_writable(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        AgentJob *j = userdata;

        for (AgentStreamSlot i = AGENT_STREAM_OUT; i < _AGENT_STREAM_MAX; i++)
                if (j->streams[i].io == source)
                        sink_flush(j, &j->streams[i]);
        job_maybe_finish(j);
        return 0;
}

/* Append to a memory output; past its cap the process is killed and the rest dropped. */
static void mem_sink_append(AgentJob *j, AgentStream *st, const void *p, size_t n) {
        if (j->result.overflow)
                return;
        if (st->mem_size + n > st->mem_cap) {
                j->result.overflow = true;
                (void) agent_job_kill(j, SIGKILL);
                return;
        }
        if (st->mem_size + n > st->mem_alloc) {
                size_t want = st->mem_alloc ? st->mem_alloc : 4096;
                while (want < st->mem_size + n)
                        want *= 2;
                uint8_t *q = realloc(st->mem, want);
                if (!q) {
                        j->result.overflow = true;
                        (void) agent_job_kill(j, SIGKILL);
                        return;
                }
                st->mem = q;
                st->mem_alloc = want;
        }
        memcpy(st->mem + st->mem_size, p, n);
        st->mem_size += n;
}

static void job_progress(AgentJob *j) {
        agent_job_done_t progress = TAKE_PTR(j->progress);

        if (progress)
                progress(j, j->userdata);
}

void agent_job_set_progress(AgentJob *j, agent_job_done_t progress) {
        j->progress = progress;
}

static void on_data(AgentSession *s, const struct vmgr_agent_msg *m) {
        AgentStreamSlot slot;
        AgentStream *st;
        AgentJob *j = session_find_stream(s, m->id, &slot, &st);

        if (!j || slot == AGENT_STREAM_IN || st->eof)
                return; /* may race with the stream's end */
        job_progress(j);
        if (vmgr_agent_recv_window_receive(&st->recv, m->data.size) < 0) {
                session_violation(s, "the guest agent sent more data than vmgrd allowed (flow control)");
                return;
        }
        if (st->is_mem || st->fd < 0 || st->broken) {
                if (st->is_mem)
                        mem_sink_append(j, st, m->data.data, m->data.size);
                grant(j, st, m->data.size);
                return;
        }
        /* The pending buffer never holds more than the window we granted. */
        if (!st->pending) {
                st->pending = malloc(s->window);
                if (!st->pending) {
                        st->broken = true;
                        grant(j, st, m->data.size);
                        return;
                }
        }
        memcpy(st->pending + st->pending_size, m->data.data, m->data.size);
        st->pending_size += m->data.size;
        sink_flush(j, st);
}

static void on_eof(AgentSession *s, const struct vmgr_agent_msg *m) {
        AgentStreamSlot slot;
        AgentStream *st;
        AgentJob *j = session_find_stream(s, m->id, &slot, &st);

        if (!j || slot == AGENT_STREAM_IN || st->eof)
                return;
        job_progress(j);
        st->eof = true;
        if (st->pending_size == 0)
                stream_close(st);
        job_maybe_finish(j);
}

static void on_window(AgentSession *s, const struct vmgr_agent_msg *m) {
        AgentStreamSlot slot;
        AgentStream *st;
        AgentJob *j = session_find_stream(s, m->id, &slot, &st);

        if (!j || slot != AGENT_STREAM_IN)
                return;
        if (vmgr_agent_send_window_grant(&st->send, m->window) < 0) {
                session_violation(s, "the guest agent granted more than 2^31-1 bytes of credit (flow control)");
                return;
        }
        job_pump_input(j);
}

/* ---- input streams --------------------------------------------------------- */

static int on_source_readable(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        job_pump_input(userdata);
        return 0;
}

/* A FILE_PUT's source failed part-way (error: -errno). The job fails and
 * no EOF goes to the agent: the agent moves its temporary file over the
 * target only on EOF, so the target stays as it was (protocol version 1
 * has no way to abort one transfer; the temporary file goes when the
 * session ends). */
static void put_source_failed(AgentJob *j, int error) {
        AgentStream *st = &j->streams[AGENT_STREAM_IN];
        char message[sizeof(j->result.message)];

        (void) vmgr_error_printf(message, sizeof(message), error, "cannot read the file to copy: %m");
        st->eof = true; /* nothing more on this stream, EOF included */
        stream_close(st);
        job_fail(j, error, message); /* may free j */
}

/* Send input while the agent grants credit and the socket keeps up. */
static void job_pump_input(AgentJob *j) {
        static uint8_t buf[VMGR_AGENT_DATA_MAX];
        AgentStream *st = &j->streams[AGENT_STREAM_IN];
        AgentSession *s = j->session;
        bool wait_readable = false;

        if (!s || !j->started || !st->id || st->eof)
                return;
        while (s->outq_size < OUTQ_DATA_MAX) {
                size_t want = vmgr_agent_send_window_take(&st->send, sizeof(buf));
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_DATA, .id = st->id };
                ssize_t n;

                if (want == 0)
                        break;
                if (st->is_mem) {
                        n = (ssize_t) (st->mem_size - st->mem_off < want ? st->mem_size - st->mem_off : want);
                        memcpy(buf, st->mem + st->mem_off, (size_t) n);
                        st->mem_off += (size_t) n;
                } else if (st->fd >= 0) {
                        n = read(st->fd, buf, want);
                        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                                st->send.credit += (uint32_t) want;
                                wait_readable = true;
                                break;
                        }
                        if (n < 0 && j->kind == AGENT_JOB_PUT) {
                                put_source_failed(j, -errno);
                                return;
                        }
                        if (n < 0)
                                n = 0; /* stdin: a broken source ends the stream, as a local pipe would */
                } else
                        n = 0;
                st->send.credit += (uint32_t) (want - (size_t) n);
                if (n == 0) {
                        struct vmgr_agent_msg eof = { .type = VMGR_AGENT_EOF, .id = st->id };
                        st->eof = true;
                        stream_close(st);
                        (void) session_send(s, &eof);
                        return;
                }
                m.data = (struct vmgr_agent_data) { buf, (size_t) n };
                if (session_send(s, &m) < 0)
                        return;
        }
        if (st->io)
                (void) sd_event_source_set_enabled(st->io, wait_readable ? SD_EVENT_ON : SD_EVENT_OFF);
}

/* ---- jobs ---------------------------------------------------------------- */

static void job_unlink(AgentJob *j) {
        AgentSession *s = j->session;

        if (!s)
                return;
        LIST_REMOVE(s->jobs, j);
        j->next = j->prev = NULL;
        j->session = NULL;
}

static void job_finish(AgentJob *j) {
        if (j->finished)
                return;
        j->finished = true;
        job_unlink(j);
        for (AgentStreamSlot i = 0; i < _AGENT_STREAM_MAX; i++)
                if (!j->streams[i].is_mem)
                        stream_close(&j->streams[i]);
        if (j->done)
                j->done(j, j->userdata); /* may free j */
}

static void job_fail(AgentJob *j, int error, const char *message) {
        if (j->finished)
                return;
        if (j->result.error == 0) {
                j->result.error = error;
                /* A longer sentence is cut to the result's size on purpose. */
                snprintf(j->result.message, sizeof(j->result.message), "%.*s",
                         (int) sizeof(j->result.message) - 1, message);
        }
        job_finish(j);
}

static void job_maybe_finish(AgentJob *j) {
        if (j->finished || !j->started)
                return;
        for (AgentStreamSlot i = AGENT_STREAM_OUT; i < _AGENT_STREAM_MAX; i++) {
                AgentStream *st = &j->streams[i];
                if (st->id && (!st->eof || st->pending_size > 0))
                        return;
        }
        if (j->kind == AGENT_JOB_EXEC ? j->exited : j->answered)
                job_finish(j);
}

int agent_job_new(AgentSession *s, AgentJobKind kind, agent_job_done_t done, void *userdata, AgentJob **ret) {
        AgentJob *j;

        if (!s->connected)
                return -ENOTCONN;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->kind = kind;
        j->done = done;
        j->userdata = userdata;
        for (AgentStreamSlot i = 0; i < _AGENT_STREAM_MAX; i++)
                j->streams[i].fd = -EBADF;
        j->session = s;
        j->next = s->jobs;
        if (s->jobs)
                s->jobs->prev = j;
        s->jobs = j;
        *ret = j;
        return 0;
}

AgentJob *agent_job_free(AgentJob *j) {
        if (!j)
                return NULL;
        if (j->session && j->started && j->kind == AGENT_JOB_EXEC && !j->exited)
                (void) agent_job_kill(j, SIGKILL);
        job_unlink(j);
        for (AgentStreamSlot i = 0; i < _AGENT_STREAM_MAX; i++) {
                stream_close(&j->streams[i]);
                free(j->streams[i].mem);
        }
        free(j);
        return NULL;
}

/* Whether fd (with its status flags) can be a FILE_PUT's source: a
 * directory or an fd not open for reading would fail at its first read, after
 * the agent made its temporary file. Returns 0, -EISDIR or -EBADF. */
static int put_source_check(int fd, int flags) {
        struct stat st;

        if ((flags & O_PATH) || (flags & O_ACCMODE) == O_WRONLY)
                return -EBADF;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        return 0;
}

int agent_job_set_fd(AgentJob *j, AgentStreamSlot slot, int fd) {
        AgentStream *st = &j->streams[slot];
        int flags, r;

        flags = fcntl(fd, F_GETFL);
        r = flags < 0 ? -errno : 0;
        if (r >= 0 && j->kind == AGENT_JOB_PUT && slot == AGENT_STREAM_IN)
                r = put_source_check(fd, flags);
        if (r >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                r = -errno;
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        st->fd = fd;
        if (slot == AGENT_STREAM_IN)
                r = sd_event_add_io(j->session->event, &st->io, fd, EPOLLIN, on_source_readable, j);
        else
                r = sd_event_add_io(j->session->event, &st->io, fd, EPOLLOUT, on_sink_writable, j);
        if (r == -EPERM) {
                /* A regular file: always ready, read or written as credit allows. */
                st->pollable = false;
                return 0;
        }
        if (r < 0)
                return r;
        st->pollable = true;
        return sd_event_source_set_enabled(st->io, SD_EVENT_OFF);
}

int agent_job_set_input_mem(AgentJob *j, const void *data, size_t size) {
        AgentStream *st = &j->streams[AGENT_STREAM_IN];

        st->mem = malloc(size ? size : 1);
        if (!st->mem)
                return -ENOMEM;
        if (size)
                memcpy(st->mem, data, size);
        st->mem_size = size;
        st->is_mem = true;
        return 0;
}

int agent_job_set_output_mem(AgentJob *j, AgentStreamSlot slot, size_t cap) {
        j->streams[slot].is_mem = true;
        j->streams[slot].mem_cap = cap;
        return 0;
}

/* Give every configured stream an id and its window. */
static void job_open_streams(AgentJob *j) {
        AgentSession *s = j->session;

        for (AgentStreamSlot i = 0; i < _AGENT_STREAM_MAX; i++) {
                AgentStream *st = &j->streams[i];
                if (st->fd < 0 && !st->is_mem)
                        continue;
                st->id = s->next_id++;
                if (i == AGENT_STREAM_IN)
                        vmgr_agent_send_window_init(&st->send, s->agent_window);
                else
                        vmgr_agent_recv_window_init(&st->recv, s->window);
        }
}

static int job_start(AgentJob *j, struct vmgr_agent_msg *m) {
        int r;

        m->id = j->id;
        r = session_send(j->session, m);
        if (r < 0)
                return r;
        j->started = true;
        job_pump_input(j);
        return 0;
}

int agent_job_start_exec(AgentJob *j, char *const *argv, char *const *env, const char *cwd) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_EXEC };

        if (!j->session)
                return -ENOTCONN;
        j->id = j->session->next_id++;
        job_open_streams(j);
        m.exec.stdin_stream = j->streams[AGENT_STREAM_IN].id;
        m.exec.stdout_stream = j->streams[AGENT_STREAM_OUT].id;
        m.exec.stderr_stream = j->streams[AGENT_STREAM_ERR].id;
        m.exec.cwd = cwd ?: "";
        for (; argv && argv[m.exec.argc]; m.exec.argc++) {
                if (m.exec.argc >= VMGR_AGENT_ARGS_MAX)
                        return -E2BIG;
                m.exec.argv[m.exec.argc] = argv[m.exec.argc];
        }
        for (; env && env[m.exec.envc]; m.exec.envc++) {
                if (m.exec.envc >= VMGR_AGENT_ENV_MAX)
                        return -E2BIG;
                m.exec.env[m.exec.envc] = env[m.exec.envc];
        }
        if (m.exec.argc == 0)
                return -EINVAL;
        return job_start(j, &m);
}

int agent_job_start_file(AgentJob *j, const char *path, uint32_t mode) {
        struct vmgr_agent_msg m = { .type = j->kind == AGENT_JOB_PUT ? VMGR_AGENT_FILE_PUT : VMGR_AGENT_FILE_GET };

        if (!j->session)
                return -ENOTCONN;
        j->id = j->session->next_id++;
        job_open_streams(j);
        m.file.stream = j->streams[j->kind == AGENT_JOB_PUT ? AGENT_STREAM_IN : AGENT_STREAM_OUT].id;
        if (!m.file.stream)
                return -EINVAL;
        m.file.mode = j->kind == AGENT_JOB_PUT ? mode : 0;
        m.file.path = path;
        return job_start(j, &m);
}

int agent_job_start_shutdown(AgentJob *j) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_SHUTDOWN };

        if (!j->session)
                return -ENOTCONN;
        j->id = j->session->next_id++;
        return job_start(j, &m);
}

int agent_job_start_reboot(AgentJob *j) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_REBOOT };

        if (!j->session)
                return -ENOTCONN;
        j->id = j->session->next_id++;
        return job_start(j, &m);
}

int agent_job_start_identity(AgentJob *j, const struct vmgr_agent_identity *id) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_IDENTITY };

        if (!j->session)
                return -ENOTCONN;
        if (j->kind != AGENT_JOB_IDENTITY)
                return -EINVAL;
        /* An agent that speaks only version 1 would drop it as an unknown
         * type and never answer. */
        if (j->session->version < VMGR_AGENT_VERSION_IDENTITY)
                return -EOPNOTSUPP;
        j->id = j->session->next_id++;
        m.identity = *id;
        /* Encoded (and so copied) at once by session_send(). */
        return job_start(j, &m);
}

int agent_job_kill(AgentJob *j, int signal) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_KILL, .id = j->id };

        if (!j->session || !j->started || j->exited)
                return -ESRCH;
        if (signal < 1 || signal > VMGR_AGENT_SIGNAL_MAX)
                return -EINVAL;
        m.kill.signal = (uint32_t) signal;
        m.kill.flags = VMGR_AGENT_KILL_GROUP;
        return session_send(j->session, &m);
}

const AgentJobResult *agent_job_result(const AgentJob *j) {
        return &j->result;
}

const void *agent_job_output(const AgentJob *j, AgentStreamSlot slot, size_t *size) {
        *size = j->streams[slot].mem_size;
        return j->streams[slot].mem ? (const void *) j->streams[slot].mem : (const void *) "";
}

/* ---- the session ------------------------------------------------------- */

/* Keep a copy of an INFO: its strings point into the decoder's frame. */
static int info_keep(AgentSession *s, const struct vmgr_agent_info *in) {
        size_t size = 0, off = 0;
        char *strings;

        size += strlen(in->hostname) + strlen(in->kernel) + strlen(in->boot_id) + 3;
        for (size_t i = 0; i < in->n_links; i++)
                size += strlen(in->links[i].name) + 1;
        strings = malloc(size);
        if (!strings)
                return -ENOMEM;
        if (!s->info) {
                s->info = malloc(sizeof(*s->info));
                if (!s->info) {
                        free(strings);
                        return -ENOMEM;
                }
        }
        *s->info = *in;
#define KEEP(p)                                   \
        do {                                      \
                size_t _n = strlen(p) + 1;        \
                memcpy(strings + off, (p), _n);   \
                (p) = strings + off;              \
                off += _n;                        \
        } while (0)
        KEEP(s->info->hostname);
        KEEP(s->info->kernel);
        KEEP(s->info->boot_id);
        for (size_t i = 0; i < s->info->n_links; i++)
                KEEP(s->info->links[i].name);
#undef KEEP
        free(s->info_strings);
        s->info_strings = strings;
        return 0;
}

static int send_hello(AgentSession *s) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_HELLO };
        uint8_t zero = 0;
        int r;

        if (getrandom(&s->nonce, sizeof(s->nonce), GRND_NONBLOCK) != sizeof(s->nonce)) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                s->nonce = ((uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec) * 2654435761ULL;
        }
        s->nonce |= 1; /* 0 is the agent's announcement */
        m.hello = (struct vmgr_agent_hello) { s->version_min, s->version_max, s->window, s->nonce, s->hello_name };
        r = outq_append(s, &zero, 1);
        if (r < 0)
                return r;
        return session_send(s, &m);
}

/* The session (not the connection) ended: its jobs fail, INFO is forgotten. */
static void session_lost(AgentSession *s, int error, const char *why) {
        bool was = s->connected;

        s->connected = false;
        s->version = 0;
        s->keepalive = sd_event_source_disable_unref(s->keepalive);
        free(s->info);
        s->info = NULL;
        free(s->info_strings);
        s->info_strings = NULL;
        while (s->jobs)
                job_fail(s->jobs, error, why);
        if (was && s->changed)
                s->changed(s, s->userdata);
}

static void schedule_connect(AgentSession *s);

/* Drop the connection (and session); reconnect soon if still wanted. */
static void session_reset(AgentSession *s, int error, const char *why) {
        s->io = sd_event_source_disable_unref(s->io);
        s->fd = safe_close(s->fd);
        s->outq_size = 0;
        session_lost(s, error, why);
        if (s->wanted)
                schedule_connect(s);
}

static uint64_t now_usec(AgentSession *s) {
        uint64_t now = 0;

        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        return now;
}

static int on_violation_defer(sd_event_source *source, void *userdata) {
        AgentSession *s = userdata;
        uint64_t now = now_usec(s);
        char why[sizeof(s->violation)];

        s->violation_defer = sd_event_source_disable_unref(s->violation_defer);
        if (!s->violation[0])
                return 0;
        memcpy(why, s->violation, sizeof(why));
        if (s->n_penalties > 0 && now - s->last_penalty_usec > PENALTY_FORGET_USEC)
                s->n_penalties = 0;
        s->penalty_usec = PENALTY_MIN_USEC << MIN(s->n_penalties, 6U);
        s->penalty_usec = MIN(s->penalty_usec, PENALTY_MAX_USEC);
        s->n_penalties++;
        s->last_penalty_usec = now;
        log_warning("Agent at %s: %s; dropping the session, reconnecting in %" PRIu64 " s", s->socket_path, why,
                    s->penalty_usec / 1000000U);
        session_reset(s, -EPROTO, why);
        s->violation[0] = 0;
        if (s->on_violation)
                s->on_violation(s, why, s->userdata);
        return 0;
}

/* The guest broke a rule or passed a bound: drop its session on the next
 * turn of the loop, and take nothing more from it or for it until then. */
static void session_violation(AgentSession *s, const char *why) {
        if (s->violation[0] || s->fd < 0)
                return;
        snprintf(s->violation, sizeof(s->violation), "%s", why);
        /* Stop reading now; the reset happens outside of whoever noticed. */
        if (s->io)
                (void) sd_event_source_set_enabled(s->io, SD_EVENT_OFF);
        if (sd_event_add_defer(s->event, &s->violation_defer, on_violation_defer, s) < 0) {
                /* No memory for a deferred call: drop it here, the caller checks s->fd. */
                s->violation[0] = 0;
                session_reset(s, -EPROTO, why);
        }
}

/* The guest starts a new session (its agent announced itself, or ended the
 * session). Returns true if it may, false (and the session is being
 * dropped) if it does so too often. */
static bool session_churn_allowed(AgentSession *s) {
        char why[160];

        if (vmgr_token_bucket_take(&s->sessions, SESSIONS_EVERY_SEC, now_usec(s)))
                return true;
        snprintf(why, sizeof(why), "the guest agent restarted its session more than %u times, faster than once in %u s",
                 SESSIONS_BURST, SESSIONS_EVERY_SEC);
        session_violation(s, why);
        return false;
}

/* Silence this many intervals long means the agent hangs (or the guest does). */
#define KEEPALIVE_MISSED_MAX 3

static int on_keepalive(sd_event_source *source, uint64_t usec, void *userdata) {
        AgentSession *s = userdata;
        uint64_t quiet = usec > s->last_rx_usec ? usec - s->last_rx_usec : 0;

        if (quiet >= KEEPALIVE_MISSED_MAX * s->keepalive_usec) {
                char why[128];

                snprintf(why, sizeof(why), "the guest agent did not answer for %" PRIu64 " s",
                         (uint64_t) (quiet / 1000000U));
                log_warning("Agent at %s: %s, reconnecting", s->socket_path, why);
                session_reset(s, -ETIMEDOUT, why);
                return 0;
        }
        if (quiet >= s->keepalive_usec) {
                struct vmgr_agent_msg ping = { .type = VMGR_AGENT_PING, .ping.payload = usec };
                (void) session_send(s, &ping);
        }
        (void) sd_event_source_set_time(source, usec + s->keepalive_usec);
        (void) sd_event_source_set_enabled(source, SD_EVENT_ON);
        return 0;
}

/* The session began: watch that the agent stays alive. */
static void keepalive_arm(AgentSession *s) {
        if (s->keepalive_usec == 0 || s->keepalive)
                return;
        (void) sd_event_add_time_relative(s->event, &s->keepalive, CLOCK_MONOTONIC, s->keepalive_usec, 0,
                                          on_keepalive, s);
}

void agent_session_set_log_handler(AgentSession *s, agent_session_log_t handler) {
        s->log = handler;
}

void agent_session_set_violation_handler(AgentSession *s, agent_session_violation_t handler) {
        s->on_violation = handler;
}

void agent_session_set_message_handler(AgentSession *s, agent_session_message_t handler) {
        s->on_message = handler;
}

void agent_session_set_hello(AgentSession *s, uint16_t version_min, uint16_t version_max, uint32_t window,
                             const char *name) {
        s->version_min = version_min;
        s->version_max = version_max;
        s->window = window;
        s->hello_name = name;
}

int agent_session_ping(AgentSession *s, uint32_t id, uint64_t payload) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_PING, .id = id, .ping.payload = payload };

        if (!s->connected)
                return -ENOTCONN;
        return session_send(s, &m);
}

void agent_session_set_keepalive(AgentSession *s, uint64_t interval_usec) {
        s->keepalive_usec = interval_usec;
}

/* A HELLO: the agent announcing a (re)start (nonce 0), or its answer to ours. */
static void handle_hello(AgentSession *s, const struct vmgr_agent_hello *h) {
        if (h->nonce == 0) {
                /* The agent (re)started, e.g. after a reboot: a new session. */
                if (!session_churn_allowed(s))
                        return;
                session_lost(s, -ECONNRESET, "the guest agent restarted");
                (void) send_hello(s);
                return;
        }
        if (s->connected || h->nonce != s->nonce)
                return;
        if (h->version_min != h->version_max || h->version_min < s->version_min || h->version_max > s->version_max) {
                /* The agent must pick one version of those we offered. */
                char why[160];

                snprintf(why, sizeof(why), "the guest agent answered HELLO with versions %u..%u, not one of %u..%u",
                         h->version_min, h->version_max, s->version_min, s->version_max);
                session_violation(s, why);
                return;
        }
        s->connected = true;
        s->version = h->version_min;
        s->agent_window = h->initial_window;
        keepalive_arm(s);
        if (s->changed)
                s->changed(s, s->userdata);
}

/* An ERROR's sentence as it may be shown: it goes to callers' terminals
 * (D-Bus errors, LastError) and the log, so without escape sequences. */
static void error_text(const struct vmgr_agent_error *e, char text[static VMGR_AGENT_MESSAGE_MAX + 1]) {
        size_t n = strlen(e->message);

        memcpy(text, e->message, n);
        text[vmgr_line_strip(text, n)] = 0;
}

/* A message other than HELLO before our HELLO was answered: left over from
 * an earlier connection or session, or the agent's refusal. An agent with no
 * version in common with us says so with an ERROR before any session; say it
 * once per connection, as nothing else would tell why the VM never gets ready. */
static void handle_before_session(AgentSession *s, const struct vmgr_agent_msg *m) {
        char text[VMGR_AGENT_MESSAGE_MAX + 1];

        if (m->type != VMGR_AGENT_ERROR || m->id != 0 || s->refusal_logged)
                return;
        error_text(&m->error, text);
        log_warning("Agent at %s refused the session: %s", s->socket_path, text);
        s->refusal_logged = true;
}

static void handle(AgentSession *s, const struct vmgr_agent_msg *m) {
        AgentJob *j;

        if (m->type == VMGR_AGENT_HELLO) {
                handle_hello(s, &m->hello);
                return;
        }
        if (!s->connected) {
                handle_before_session(s, m);
                return;
        }

        switch (m->type) {
        case VMGR_AGENT_INFO:
                if (info_keep(s, &m->info) >= 0 && s->changed)
                        s->changed(s, s->userdata);
                return;
        case VMGR_AGENT_DATA:
                on_data(s, m);
                return;
        case VMGR_AGENT_WINDOW:
                on_window(s, m);
                return;
        case VMGR_AGENT_EOF:
                on_eof(s, m);
                return;
        case VMGR_AGENT_EXIT:
                j = session_find_job(s, m->id);
                if (!j)
                        return;
                j->exited = true;
                j->result.status = m->exit.status;
                j->result.signal = m->exit.signal;
                job_maybe_finish(j);
                return;
        case VMGR_AGENT_DONE:
                j = session_find_job(s, m->id);
                if (!j)
                        return;
                j->answered = true;
                j->result.size = m->done.size;
                j->result.mode = m->done.mode;
                job_maybe_finish(j);
                return;
        case VMGR_AGENT_ERROR: {
                char text[VMGR_AGENT_MESSAGE_MAX + 1];

                error_text(&m->error, text);
                if (m->id == 0) {
                        if (!session_churn_allowed(s))
                                return;
                        log_warning("Agent at %s ended the session: %s", s->socket_path, text);
                        session_reset(s, -ECONNRESET, text);
                        return;
                }
                j = session_find_job(s, m->id);
                if (j)
                        job_fail(j, -m->error.error, text);
                return;
        }
        case VMGR_AGENT_LOG:
                if (s->log)
                        s->log(s, &m->log, s->userdata);
                return;
        case VMGR_AGENT_PING: {
                struct vmgr_agent_msg pong = { .type = VMGR_AGENT_PONG, .id = m->id, .ping = m->ping };
                (void) session_send(s, &pong);
                return;
        }
        default:
                return;
        }
}

static int on_socket_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        AgentSession *s = userdata;

        if (revents & EPOLLOUT) {
                if (session_flush(s) < 0) {
                        session_reset(s, -ECONNRESET, "the connection to the guest agent broke");
                        return 0;
                }
                /* Room again: inputs that waited for the socket go on. */
                for (AgentJob *j = s->jobs, *next; j; j = next) {
                        next = j->next;
                        job_pump_input(j);
                }
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                /* A bounded amount per wake-up, so that one VM cannot starve the loop. */
                for (int round = 0; round < 16 && s->fd >= 0 && !s->violation[0]; round++) {
                        size_t size;
                        void *space = vmgr_agent_decoder_space(s->decoder, &size);
                        ssize_t n = read(s->fd, space, size);
                        const struct vmgr_agent_msg *m;
                        const char *reason;
                        int r;

                        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                                break;
                        if (n <= 0) {
                                session_reset(s, -ECONNRESET, "the connection to the guest agent was lost");
                                return 0;
                        }
                        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &s->last_rx_usec);
                        vmgr_agent_decoder_advance(s->decoder, (size_t) n);
                        while (s->fd >= 0 && !s->violation[0] &&
                               (r = vmgr_agent_decoder_next(s->decoder, &m, &reason)) != 0)
                                if (r > 0) {
                                        if (s->on_message)
                                                s->on_message(s, m, s->userdata);
                                        handle(s, m);
                                }
                }
        }
        return 0;
}

/* A new connection on fd (connected, non-blocking): watch it and greet the
 * agent. Returns 0 (also when the greeting failed: the connection is then
 * reset) or -errno when fd cannot be watched (fd closed). */
static int session_use_fd(AgentSession *s, int fd) {
        int r;

        r = sd_event_add_io(s->event, &s->io, fd, EPOLLIN, on_socket_io, s);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        s->fd = fd;
        s->retry_usec = 0;
        s->refusal_logged = false;
        vmgr_agent_decoder_reset(s->decoder);
        if (send_hello(s) < 0)
                session_reset(s, -ECONNRESET, "cannot greet the guest agent");
        return 0;
}

static void session_connect(AgentSession *s) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(s->socket_path) >= sizeof(sa.sun_path))
                return; /* checked when the VM was made */
        strcpy(sa.sun_path, s->socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                schedule_connect(s); /* QEMU has not made it yet, or is gone */
                return;
        }
        if (session_use_fd(s, TAKE_FD(fd)) < 0)
                schedule_connect(s);
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        AgentSession *s = userdata;

        s->retry = sd_event_source_disable_unref(s->retry);
        if (s->wanted && s->fd < 0)
                session_connect(s);
        return 0;
}

static void schedule_connect(AgentSession *s) {
        if (s->retry)
                return;
        s->retry_usec = s->retry_usec ? s->retry_usec * 2 : RETRY_MIN_USEC;
        if (s->retry_usec > RETRY_MAX_USEC)
                s->retry_usec = RETRY_MAX_USEC;
        /* A guest that broke a rule waits longer (once). */
        (void) sd_event_add_time_relative(s->event, &s->retry, CLOCK_MONOTONIC,
                                          s->penalty_usec > s->retry_usec ? s->penalty_usec : s->retry_usec, 0,
                                          on_retry, s);
        s->penalty_usec = 0;
}

int agent_session_new(sd_event *event, const char *socket_path, agent_session_changed_t changed, void *userdata,
                      AgentSession **ret) {
        AgentSession *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->fd = -EBADF;
        s->next_id = 1;
        s->version_min = VMGR_AGENT_VERSION_MIN;
        s->version_max = VMGR_AGENT_VERSION_MAX;
        s->window = AGENT_SESSION_WINDOW;
        s->hello_name = "vmgrd";
        s->event = sd_event_ref(event);
        vmgr_token_bucket_init(&s->sessions, 1, (uint64_t) SESSIONS_BURST * SESSIONS_EVERY_SEC, now_usec(s));
        s->changed = changed;
        s->userdata = userdata;
        s->socket_path = strdup(socket_path);
        if (!s->socket_path || vmgr_agent_decoder_new(&s->decoder) < 0) {
                agent_session_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

void agent_session_start(AgentSession *s) {
        if (s->wanted)
                return;
        s->wanted = true;
        s->retry_usec = 0;
        session_connect(s);
}

int agent_session_attach(AgentSession *s, int fd) {
        int flags, r;

        if (s->wanted || s->fd >= 0) {
                safe_close(fd);
                return -EBUSY;
        }
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        /* Not wanted: when this connection ends, session_reset() does not
         * reconnect (there is no path to connect to again). */
        return session_use_fd(s, fd);
}

void agent_session_stop(AgentSession *s) {
        s->wanted = false;
        s->violation_defer = sd_event_source_disable_unref(s->violation_defer);
        s->violation[0] = 0;
        s->retry = sd_event_source_disable_unref(s->retry);
        s->io = sd_event_source_disable_unref(s->io);
        s->fd = safe_close(s->fd);
        s->outq_size = 0;
        session_lost(s, -ENOTCONN, "the VM is not running");
}

AgentSession *agent_session_free(AgentSession *s) {
        if (!s)
                return NULL;
        s->changed = NULL;
        agent_session_stop(s);
        vmgr_agent_decoder_free(s->decoder);
        free(s->outq);
        free(s->socket_path);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

bool agent_session_is_connected(const AgentSession *s) {
        return s && s->connected;
}

bool agent_session_has_connection(const AgentSession *s) {
        return s && s->fd >= 0;
}

uint16_t agent_session_version(const AgentSession *s) {
        return s->connected ? s->version : 0;
}

const struct vmgr_agent_info *agent_session_info(const AgentSession *s) {
        return s ? s->info : NULL;
}
