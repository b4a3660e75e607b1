/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-agent: the guest side of the agent protocol (docs/agent-protocol.md).
 *
 * One thread, one epoll loop. The virtio-serial port is registered
 * edge-triggered: while the host is not connected the port polls as
 * readable and hung up for as long as that lasts, and a level-triggered
 * registration would spin; the kernel wakes the port's waiters when the
 * host (dis)connects, which is all an edge needs. Child exits come through
 * a signalfd, address changes through a netlink socket (debounced by a
 * timerfd), and each pipe is registered only while there is something to
 * do with it (credit to send, or bytes to write), so that nothing spins and
 * nothing buffers more than the windows allow.
 *
 * The guest's log goes to the host as LOG messages, from /dev/kmsg or,
 * where systemd-journald runs, from `journalctl --follow` on a pipe; both
 * are read only while a session exists and the output queue has room, one
 * bounded batch at a time (log-forward.c).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-proto.h"
#include "identity.h"
#include "log-forward.h"
#include "macro.h"
#include "netinfo.h"
#include "vmgr-config.h"

/* Windows and limits. Worst case memory: STREAMS_MAX receive buffers of
 * RECV_WINDOW each, plus the output queue. */
#define RECV_WINDOW (128u * 1024u)     /* what our HELLO grants every stream we receive */
#define OUTQ_PRODUCE_MAX (256u * 1024u) /* no new DATA while the output queue holds more */
#define OUTQ_READ_MAX (1024u * 1024u)   /* stop reading requests while it holds more */
#define PROCS_MAX 128
#define STREAMS_MAX 384
#define BAD_FRAMES_LOGGED 10
#define INFO_DEBOUNCE_NSEC (50 * 1000 * 1000)
#define PORT_RETRY_SEC 1

static const char *const port_sysfs = "/sys/class/virtio-ports";

enum watch_kind {
        WATCH_PORT,
        WATCH_SIGNAL,
        WATCH_NETLINK,
        WATCH_INFO_TIMER,
        WATCH_STREAM,
        WATCH_KMSG,
        WATCH_JOURNAL,
};

/* Every epoll registration's data.ptr points at a struct starting with this. */
struct watch {
        enum watch_kind kind;
};

enum stream_kind {
        STREAM_STDIN,    /* host -> pipe */
        STREAM_STDOUT,   /* pipe -> host */
        STREAM_STDERR,   /* pipe -> host */
        STREAM_FILE_PUT, /* host -> file */
        STREAM_FILE_GET, /* file -> host */
};

struct proc;
struct file_op;

struct stream {
        struct watch watch;
        uint32_t id;
        enum stream_kind kind;
        int fd;
        bool registered; /* in epoll */
        bool dead;       /* freed after this loop iteration */
        struct proc *proc;
        struct file_op *file;
        /* to the host */
        struct vmgr_agent_send_window send;
        /* from the host */
        struct vmgr_agent_recv_window recv;
        uint8_t *buf;
        size_t buf_start, buf_len;
        bool eof_received;
        bool sink; /* the consumer is gone: drop DATA, still grant credit */
        struct stream *next_dead;
};

struct proc {
        uint32_t id;
        pid_t pid;
        struct stream *in;
};

struct file_op {
        uint32_t id;
        bool put;
        char *path, *tmp_path;
        uint64_t size;
        uint32_t mode;
        struct stream *stream;
        bool failed;
};

/* Output queue: encoded frames waiting for the port. */
struct outq {
        uint8_t *data;
        size_t start, len, cap;
        uint64_t written; /* bytes ever written from it to the port */
};

static struct {
        int epoll_fd;
        int port_fd;
        const char *port_path; /* --port, else found in sysfs */
        char found_path[sizeof("/dev/") + 256];
        bool port_readable, port_writable;
        int signal_fd, netlink_fd, timer_fd;
        int null_fd;
        struct vmgr_agent_decoder *decoder;
        struct outq outq;
        bool producers_paused;

        bool session;
        uint16_t version;     /* the session's protocol version */
        uint64_t nonce;
        uint32_t peer_window; /* the host's initial window for streams we send */
        unsigned bad_frames;
        uint8_t *last_info;
        size_t last_info_len;
        bool info_timer_armed;

        struct stream *streams[STREAMS_MAX];
        size_t n_streams;
        struct proc *procs[PROCS_MAX];
        size_t n_procs;
        struct file_op *files[STREAMS_MAX];
        size_t n_files;
        struct stream *graveyard;
        bool input_pending; /* decoded requests wait for room in the output queue */

        /* The last IDENTITY's: the machine's, not the session's (all zero
         * before one, e.g. in the template that was snapshotted). */
        uint8_t generation[VMGR_AGENT_GENERATION_SIZE];

        uint8_t scratch[VMGR_AGENT_DATA_MAX];
        bool quit;
} A = {
        .epoll_fd = -EBADF,
        .port_fd = -EBADF,
        .signal_fd = -EBADF,
        .netlink_fd = -EBADF,
        .timer_fd = -EBADF,
        .null_fd = -EBADF,
};

static struct watch watch_port = { WATCH_PORT }, watch_signal = { WATCH_SIGNAL }, watch_netlink = { WATCH_NETLINK },
                    watch_timer = { WATCH_INFO_TIMER }, watch_kmsg = { WATCH_KMSG },
                    watch_journal = { WATCH_JOURNAL };

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* --- output --------------------------------------------------------------- */

/* Make room for one more frame at the end of the queue. Returns 0 or -ENOMEM. */
static int outq_reserve(struct outq *q, size_t n) {
        if (q->cap - q->start - q->len >= n)
                return 0;
        if (q->start > 0) {
                memmove(q->data, q->data + q->start, q->len);
                q->start = 0;
                if (q->cap - q->len >= n)
                        return 0;
        }
        size_t cap = q->cap ? q->cap : 4 * VMGR_AGENT_WIRE_MAX;
        while (cap - q->len < n)
                cap *= 2;
        uint8_t *p = realloc(q->data, cap);
        if (!p)
                return -ENOMEM;
        q->data = p;
        q->cap = cap;
        return 0;
}

static void outq_clear(struct outq *q) {
        q->start = q->len = 0;
}

/* Queue raw bytes (the resync byte). Returns 0 or -ENOMEM. */
static int queue_bytes(const void *p, size_t n) {
        int r = outq_reserve(&A.outq, n);
        if (r < 0)
                return r;
        memcpy(A.outq.data + A.outq.start + A.outq.len, p, n);
        A.outq.len += n;
        return 0;
}

/* Encode m at the end of the output queue. Returns 0 or -errno; a message
 * the encoder refuses is a bug here, logged and dropped. */
static int queue_msg(const struct vmgr_agent_msg *m) {
        int r = outq_reserve(&A.outq, VMGR_AGENT_WIRE_MAX);
        if (r < 0)
                return log_error_errno(r, "out of memory for an outgoing %s", vmgr_agent_type_to_string(m->type));
        r = vmgr_agent_msg_encode(m, A.outq.data + A.outq.start + A.outq.len, VMGR_AGENT_WIRE_MAX);
        if (r < 0)
                return log_error_errno(r, "cannot encode %s: %m", vmgr_agent_type_to_string(m->type));
        A.outq.len += (size_t) r;
        return 0;
}

_printf_(3, 4) static void queue_error(uint32_t id, int error, const char *fmt, ...) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_ERROR, .id = id };
        char text[VMGR_AGENT_MESSAGE_MAX + 1];
        va_list ap;

        errno = error;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        m.error.error = error > 0 && error <= 4095 ? error : EIO;
        m.error.message = text;
        if (id == 0) {
                /* About the session: may be the first thing a new host reads,
                 * with a fresh decoder that waits for a delimiter. */
                static const uint8_t sync = 0;
                (void) queue_bytes(&sync, 1);
        }
        (void) queue_msg(&m);
}

static void queue_simple(enum vmgr_agent_type type, uint32_t id) {
        struct vmgr_agent_msg m = { .type = type, .id = id };
        (void) queue_msg(&m);
}

static void queue_window(uint32_t stream, uint32_t increment) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_WINDOW, .id = stream, .window = increment };
        if (increment > 0)
                (void) queue_msg(&m);
}

static void queue_done(uint32_t id, uint64_t size, uint32_t mode) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_DONE, .id = id, .done = { size, mode } };
        (void) queue_msg(&m);
}

/* HELLO: the reply to the host's (its nonce, the chosen version), or an
 * announcement (nonce 0, version 0: our whole range). */
static void queue_hello(uint64_t nonce, uint16_t version) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_HELLO };
        static const uint8_t sync = 0;

        m.hello.version_min = version ? version : VMGR_AGENT_VERSION_MIN;
        m.hello.version_max = version ? version : VMGR_AGENT_VERSION_MAX;
        m.hello.initial_window = RECV_WINDOW;
        m.hello.nonce = nonce;
        m.hello.software = "vmgr-agent " VMGR_VERSION;
        /* Ends whatever partial frame the host may be holding. */
        (void) queue_bytes(&sync, 1);
        (void) queue_msg(&m);
}

/* The output queue's end, for log forwarding: what was ever written from it
 * plus what it holds. */
static uint64_t queue_end(void) {
        return A.outq.written + A.outq.len;
}

/* Whether log forwarding may queue a batch: a session exists and the output
 * queue is below the limit for new output. */
static bool logs_can_queue(void) {
        return A.session && A.outq.len < OUTQ_PRODUCE_MAX;
}

/* --- streams -------------------------------------------------------------- */

static bool stream_outgoing(const struct stream *s) {
        return s->kind == STREAM_STDOUT || s->kind == STREAM_STDERR || s->kind == STREAM_FILE_GET;
}

static struct stream *stream_find(uint32_t id) {
        for (size_t i = 0; i < A.n_streams; i++)
                if (A.streams[i]->id == id)
                        return A.streams[i];
        return NULL;
}

/* Register or unregister s in epoll to match what it is waiting for: pipes
 * to the host while they have credit and the output queue has room, pipes
 * from the host while bytes wait to be written. Regular files are never
 * registered (epoll refuses them); pump() serves them. */
static void stream_update(struct stream *s) {
        uint32_t events = 0;
        bool want;
        struct epoll_event ev;

        if (s->dead || s->fd < 0 || s->kind == STREAM_FILE_GET || s->kind == STREAM_FILE_PUT)
                want = false;
        else if (stream_outgoing(s)) {
                want = s->send.credit > 0 && !A.producers_paused;
                events = EPOLLIN;
        } else {
                want = s->buf_len > 0;
                events = EPOLLOUT;
        }
        if (want == s->registered)
                return;
        ev = (struct epoll_event) { .events = events, .data.ptr = &s->watch };
        if (epoll_ctl(A.epoll_fd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->fd, &ev) < 0)
                log_error_errno(-errno, "epoll_ctl on stream %u: %m", s->id);
        else
                s->registered = want;
}

static void stream_close_fd(struct stream *s) {
        if (s->registered) {
                (void) epoll_ctl(A.epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
                s->registered = false;
        }
        s->fd = safe_close(s->fd);
}

static int stream_new(uint32_t id, enum stream_kind kind, int fd, struct stream **ret) {
        struct stream *s;

        if (A.n_streams >= STREAMS_MAX)
                return -EMFILE;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->watch.kind = WATCH_STREAM;
        s->id = id;
        s->kind = kind;
        s->fd = fd;
        vmgr_agent_send_window_init(&s->send, A.peer_window);
        vmgr_agent_recv_window_init(&s->recv, RECV_WINDOW);
        A.streams[A.n_streams++] = s;
        stream_update(s);
        *ret = s;
        return 0;
}

/* Take s out of the session now; its memory goes after this loop iteration,
 * since epoll may still hold an event for it. */
static void stream_free(struct stream *s) {
        if (!s || s->dead)
                return;
        stream_close_fd(s);
        s->dead = true;
        for (size_t i = 0; i < A.n_streams; i++)
                if (A.streams[i] == s) {
                        A.streams[i] = A.streams[--A.n_streams];
                        break;
                }
        if (s->proc && s->proc->in == s)
                s->proc->in = NULL;
        s->next_dead = A.graveyard;
        A.graveyard = s;
}

static void graveyard_empty(void) {
        while (A.graveyard) {
                struct stream *s = A.graveyard;
                A.graveyard = s->next_dead;
                free(s->buf);
                free(s);
        }
}

/* Account n bytes of s's receive buffer as consumed, granting credit back. */
static void stream_consumed(struct stream *s, size_t n) {
        queue_window(s->id, vmgr_agent_recv_window_consume(&s->recv, n));
}

/* --- file transfers ------------------------------------------------------- */

static struct file_op *file_find(uint32_t id) {
        for (size_t i = 0; i < A.n_files; i++)
                if (A.files[i]->id == id)
                        return A.files[i];
        return NULL;
}

static void file_free(struct file_op *f) {
        if (!f)
                return;
        if (f->tmp_path)
                (void) unlink(f->tmp_path);
        if (f->stream) {
                f->stream->file = NULL;
                stream_free(f->stream);
        }
        for (size_t i = 0; i < A.n_files; i++)
                if (A.files[i] == f) {
                        A.files[i] = A.files[--A.n_files];
                        break;
                }
        free(f->path);
        free(f->tmp_path);
        free(f);
}

/* A FILE_PUT that cannot go on: report it, keep draining its stream. */
static void file_put_fail(struct file_op *f, int error, const char *what) {
        queue_error(f->id, error, "%s %s: %m", what, f->path);
        if (f->tmp_path) {
                (void) unlink(f->tmp_path);
                f->tmp_path = mfree(f->tmp_path);
        }
        f->failed = true;
        if (f->stream) {
                stream_close_fd(f->stream);
                f->stream->sink = true;
                if (f->stream->eof_received) {
                        f->stream->file = NULL;
                        stream_free(f->stream);
                        f->stream = NULL;
                }
        }
        if (!f->stream)
                file_free(f);
}

/* The host's EOF on a FILE_PUT: sync, move into place, report. */
static void file_put_finish(struct file_op *f) {
        struct stream *s = f->stream;

        if (fsync(s->fd) < 0)
                return file_put_fail(f, errno, "cannot write");
        if (rename(f->tmp_path, f->path) < 0)
                return file_put_fail(f, errno, "cannot rename into");
        f->tmp_path = mfree(f->tmp_path);
        queue_done(f->id, f->size, f->mode);
        file_free(f);
}

static void handle_file_put(const struct vmgr_agent_msg *m) {
        _cleanup_free_ char *dir = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct file_op *f;
        struct stream *s;
        char *slash;
        int r;

        if (file_find(m->id))
                return queue_error(m->id, EEXIST, "request %u is already running", m->id);
        if (stream_find(m->file.stream))
                return queue_error(m->id, EBUSY, "stream %u is in use", m->file.stream);
        if (A.n_files >= STREAMS_MAX)
                return queue_error(m->id, EMFILE, "too many transfers");

        /* A temporary file next to the target, renamed over it at the end:
         * nobody sees a half-written file. */
        dir = strdup(m->file.path);
        if (!dir)
                return queue_error(m->id, ENOMEM, "out of memory");
        slash = strrchr(dir, '/');
        slash[1] = 0;
        if (asprintf(&tmp, "%s.#vmgr-agent.XXXXXX", dir) < 0) {
                tmp = NULL;
                return queue_error(m->id, ENOMEM, "out of memory");
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                free(TAKE_PTR(tmp));
                return queue_error(m->id, errno, "cannot create a file in %s: %m", dir);
        }
        if (fchmod(fd, m->file.mode) < 0) {
                r = errno;
                (void) unlink(tmp);
                return queue_error(m->id, r, "cannot set the mode of %s: %m", m->file.path);
        }

        f = calloc(1, sizeof(*f));
        if (!f || !(f->path = strdup(m->file.path))) {
                free(f);
                (void) unlink(tmp);
                return queue_error(m->id, ENOMEM, "out of memory");
        }
        f->id = m->id;
        f->put = true;
        f->mode = m->file.mode;
        f->tmp_path = TAKE_PTR(tmp);
        r = stream_new(m->file.stream, STREAM_FILE_PUT, fd, &s);
        if (r < 0) {
                (void) unlink(f->tmp_path);
                free(f->tmp_path);
                free(f->path);
                free(f);
                return queue_error(m->id, -r, "cannot take stream %u: %m", m->file.stream);
        }
        TAKE_FD(fd);
        s->file = f;
        f->stream = s;
        A.files[A.n_files++] = f;
}

static void handle_file_get(const struct vmgr_agent_msg *m) {
        _cleanup_close_ int fd = -EBADF;
        struct file_op *f;
        struct stream *s;
        struct stat st;
        int r;

        if (file_find(m->id))
                return queue_error(m->id, EEXIST, "request %u is already running", m->id);
        if (stream_find(m->file.stream))
                return queue_error(m->id, EBUSY, "stream %u is in use", m->file.stream);
        if (A.n_files >= STREAMS_MAX)
                return queue_error(m->id, EMFILE, "too many transfers");

        fd = open(m->file.path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return queue_error(m->id, errno, "cannot open %s: %m", m->file.path);
        if (fstat(fd, &st) < 0)
                return queue_error(m->id, errno, "cannot stat %s: %m", m->file.path);
        /* Pipes and devices could block the loop or never end. */
        if (!S_ISREG(st.st_mode))
                return queue_error(m->id, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "%s is not a regular file",
                                   m->file.path);

        f = calloc(1, sizeof(*f));
        if (!f || !(f->path = strdup(m->file.path))) {
                free(f);
                return queue_error(m->id, ENOMEM, "out of memory");
        }
        f->id = m->id;
        f->mode = st.st_mode & 07777;
        r = stream_new(m->file.stream, STREAM_FILE_GET, fd, &s);
        if (r < 0) {
                free(f->path);
                free(f);
                return queue_error(m->id, -r, "cannot take stream %u: %m", m->file.stream);
        }
        TAKE_FD(fd);
        s->file = f;
        f->stream = s;
        A.files[A.n_files++] = f;
}

/* --- processes ------------------------------------------------------------ */

static struct proc *proc_find(uint32_t id) {
        for (size_t i = 0; i < A.n_procs; i++)
                if (A.procs[i]->id == id)
                        return A.procs[i];
        return NULL;
}

static struct proc *proc_find_pid(pid_t pid) {
        for (size_t i = 0; i < A.n_procs; i++)
                if (A.procs[i]->pid == pid)
                        return A.procs[i];
        return NULL;
}

static void proc_free(struct proc *p) {
        for (size_t i = 0; i < A.n_procs; i++)
                if (A.procs[i] == p) {
                        A.procs[i] = A.procs[--A.n_procs];
                        break;
                }
        if (p->in)
                stream_free(p->in);
        /* stdout and stderr live on until their pipes end, without it. */
        for (size_t i = 0; i < A.n_streams; i++)
                if (A.streams[i]->proc == p)
                        A.streams[i]->proc = NULL;
        free(p);
}

/* Whether env entry e sets a name that one of the EXEC's entries sets. */
static bool env_overridden(const char *e, const struct vmgr_agent_exec *x) {
        size_t n = strcspn(e, "=");
        for (size_t i = 0; i < x->envc; i++)
                if (strncmp(x->env[i], e, n) == 0 && x->env[i][n] == '=')
                        return true;
        return false;
}

/* The environment of an EXEC: the agent's own without the names the
 * request sets (or nothing of it, with ENV_REPLACE), then the request's.
 * The strings are borrowed; free only the array. NULL when out of memory. */
static char **exec_environment(const struct vmgr_agent_exec *x) {
        char **envp;
        size_t n_env = 0;

        if (x->flags & VMGR_AGENT_EXEC_ENV_REPLACE)
                envp = calloc(x->envc + 1, sizeof(char *));
        else {
                size_t n = 0;
                while (environ[n])
                        n++;
                envp = calloc(n + x->envc + 1, sizeof(char *));
                for (size_t i = 0; envp && i < n; i++)
                        if (!env_overridden(environ[i], x))
                                envp[n_env++] = environ[i];
        }
        if (!envp)
                return NULL;
        for (size_t i = 0; i < x->envc; i++)
                envp[n_env++] = (char *) x->env[i];
        return envp;
}

/* Start an EXEC's program with the child's ends of pipes (or /dev/null
 * where ids[i] is 0) as its stdio, in x->cwd, with default signal
 * dispositions and an empty mask. Returns 0 or a positive errno. */
static int exec_spawn(const struct vmgr_agent_exec *x, const uint32_t ids[3], int pipes[3][2], char **envp,
                      pid_t *ret_pid) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        int r;

        posix_spawn_file_actions_init(&fa);
        for (int i = 0; i < 3; i++) {
                /* The child's ends: stdin reads pipes[0][0], stdout/stderr write [1]. */
                int child = !ids[i] ? A.null_fd : i == 0 ? pipes[0][0] : pipes[i][1];
                posix_spawn_file_actions_adddup2(&fa, child, i);
        }
        if (x->cwd[0])
                posix_spawn_file_actions_addchdir_np(&fa, x->cwd);
        posix_spawnattr_init(&attr);
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        /* Its own session and process group: KILL can reach its children. */
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
        r = posix_spawnp(ret_pid, x->argv[0], &fa, &attr, (char *const *) x->argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        return r;
}

static void handle_exec(const struct vmgr_agent_msg *m) {
        const struct vmgr_agent_exec *x = &m->exec;
        int pipes[3][2] = { { -EBADF, -EBADF }, { -EBADF, -EBADF }, { -EBADF, -EBADF } };
        const uint32_t ids[3] = { x->stdin_stream, x->stdout_stream, x->stderr_stream };
        _cleanup_free_ char **envp = NULL;
        struct stream *st[3] = {};
        struct proc *p = NULL;
        size_t n_streams = 0;
        pid_t pid;
        int r;

        if (proc_find(m->id))
                return queue_error(m->id, EEXIST, "process id %u is in use", m->id);
        if (A.n_procs >= PROCS_MAX)
                return queue_error(m->id, EAGAIN, "too many processes (%d)", PROCS_MAX);
        for (size_t i = 0; i < 3; i++)
                if (ids[i]) {
                        if (stream_find(ids[i]))
                                return queue_error(m->id, EBUSY, "stream %u is in use", ids[i]);
                        n_streams++;
                }
        if (A.n_streams + n_streams > STREAMS_MAX)
                return queue_error(m->id, EMFILE, "too many streams");

        envp = exec_environment(x);
        if (!envp)
                return queue_error(m->id, ENOMEM, "out of memory");

        p = calloc(1, sizeof(*p));
        if (!p)
                return queue_error(m->id, ENOMEM, "out of memory");

        for (size_t i = 0; i < 3; i++)
                if (ids[i] && pipe2(pipes[i], O_CLOEXEC) < 0) {
                        r = errno;
                        goto fail;
                }

        r = exec_spawn(x, ids, pipes, envp, &pid);
        if (r != 0)
                goto fail;

        p->id = m->id;
        p->pid = pid;
        A.procs[A.n_procs++] = p;
        pipes[0][0] = safe_close(pipes[0][0]);
        pipes[1][1] = safe_close(pipes[1][1]);
        pipes[2][1] = safe_close(pipes[2][1]);
        for (size_t i = 0; i < 3; i++) {
                int fd = i == 0 ? pipes[0][1] : pipes[i][0];
                if (!ids[i])
                        continue;
                (void) fcntl(fd, F_SETFL, O_NONBLOCK);
                /* Cannot fail: the counts were checked above. */
                if (stream_new(ids[i], i == 0 ? STREAM_STDIN : i == 1 ? STREAM_STDOUT : STREAM_STDERR, fd, &st[i]) < 0) {
                        close(fd);
                        continue;
                }
                st[i]->proc = p;
        }
        p->in = st[0];
        return;

fail:
        for (size_t i = 0; i < 3; i++) {
                safe_close(pipes[i][0]);
                safe_close(pipes[i][1]);
        }
        free(p);
        queue_error(m->id, r, "cannot run %s: %m", x->argv[0]);
}

static void handle_kill(const struct vmgr_agent_msg *m) {
        struct proc *p = proc_find(m->id);

        /* Not reaped yet, so its pid (and process group id) cannot have been reused. */
        if (!p)
                return queue_error(m->id, ESRCH, "no running process %u", m->id);
        if (kill((m->kill.flags & VMGR_AGENT_KILL_GROUP) ? -p->pid : p->pid, (int) m->kill.signal) < 0)
                queue_error(m->id, errno, "cannot signal process %u: %m", m->id);
}

/* Reap every child that has exited; report the session's. */
static void reap_children(void) {
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_EXIT };
                struct proc *p;

                if (pid <= 0)
                        return;
                if (log_forward_child_exited(pid, status))
                        continue;
                p = proc_find_pid(pid);
                if (!p)
                        continue; /* a power command, or left from an older session */
                m.id = p->id;
                if (WIFEXITED(status))
                        m.exit = (struct vmgr_agent_exit) { WEXITSTATUS(status), 0, false };
                else
                        m.exit = (struct vmgr_agent_exit) { -1, WTERMSIG(status), WCOREDUMP(status) };
                (void) queue_msg(&m);
                proc_free(p);
        }
}

static void handle_power(const struct vmgr_agent_msg *m) {
        bool reboot = m->type == VMGR_AGENT_REBOOT;
        const char *argv_systemd[] = { "systemctl", reboot ? "reboot" : "poweroff", NULL };
        const char *argv_busybox[] = { reboot ? "reboot" : "poweroff", NULL };
        /* systemd's own tool where systemd runs, else sysvinit/busybox's. */
        const char *const *argv = access("/run/systemd/system", F_OK) == 0 ? argv_systemd : argv_busybox;
        posix_spawnattr_t attr;
        sigset_t none, all;
        pid_t pid;
        int r;

        posix_spawnattr_init(&attr);
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        r = posix_spawnp(&pid, argv[0], NULL, &attr, (char *const *) argv, environ);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return queue_error(m->id, r, "cannot run %s: %m", argv[0]);
        log_info("%s requested: running %s%s%s", reboot ? "reboot" : "power off", argv[0], argv[1] ? " " : "",
                 argv[1] ? argv[1] : "");
        queue_done(m->id, 0, 0);
}

/* --- session -------------------------------------------------------------- */

/* Forget the session: kill its processes, drop its streams and transfers
 * and whatever was queued for the host. */
static void session_end(const char *why) {
        if (A.session)
                log_info("session ended: %s (%zu processes killed)", why, A.n_procs);
        while (A.n_procs > 0) {
                struct proc *p = A.procs[0];
                (void) kill(-p->pid, SIGKILL);
                (void) kill(p->pid, SIGKILL);
                proc_free(p);
        }
        while (A.n_files > 0)
                file_free(A.files[0]);
        while (A.n_streams > 0)
                stream_free(A.streams[0]);
        log_forward_session_end();
        outq_clear(&A.outq);
        A.session = false;
        A.bad_frames = 0;
        A.last_info = mfree(A.last_info);
        A.last_info_len = 0;
}

/* Collect INFO and queue it if it differs from what the host has (or always, with force). */
static void send_info(bool force) {
        static struct netinfo ni;
        static uint8_t buf[VMGR_AGENT_WIRE_MAX];
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_INFO };
        int r, n;

        if (!A.session)
                return;
        r = netinfo_collect(&ni);
        if (r < 0)
                log_error_errno(r, "cannot read the network configuration: %m");
        m.info = ni.info;
        m.info.version = A.version;
        /* Version 1 has no generation (nor IDENTITY to set one). */
        if (A.version >= VMGR_AGENT_VERSION_IDENTITY)
                memcpy(m.info.generation, A.generation, sizeof(A.generation));
        n = vmgr_agent_msg_encode(&m, buf, sizeof(buf));
        if (n < 0) {
                log_error_errno(n, "cannot encode INFO: %m");
                return;
        }
        if (!force && A.last_info && A.last_info_len == (size_t) n && memcmp(A.last_info, buf, (size_t) n) == 0)
                return;
        free(A.last_info);
        A.last_info = malloc((size_t) n);
        A.last_info_len = A.last_info ? (size_t) n : 0;
        if (A.last_info)
                memcpy(A.last_info, buf, (size_t) n);
        (void) queue_bytes(buf, (size_t) n);
}

static void handle_hello(const struct vmgr_agent_msg *m) {
        log_forward_hello();
        if (m->hello.version_min > VMGR_AGENT_VERSION_MAX || m->hello.version_max < VMGR_AGENT_VERSION_MIN) {
                session_end("host speaks another protocol version");
                queue_error(0, EPROTONOSUPPORT, "protocol versions %u..%u are not supported; this agent speaks %d..%d",
                            m->hello.version_min, m->hello.version_max, VMGR_AGENT_VERSION_MIN,
                            VMGR_AGENT_VERSION_MAX);
                return;
        }
        session_end("new session");
        A.session = true;
        A.nonce = m->hello.nonce;
        A.peer_window = m->hello.initial_window;
        /* The highest version both speak. */
        A.version = m->hello.version_max < VMGR_AGENT_VERSION_MAX ? m->hello.version_max : VMGR_AGENT_VERSION_MAX;
        log_info("session started by %s (protocol %u)", m->hello.software[0] ? m->hello.software : "an unnamed host",
                 A.version);
        queue_hello(m->hello.nonce, A.version);
        send_info(true);
}

/* IDENTITY: become the machine the host says (after a restore). Answered
 * when everything is applied, then a fresh INFO (links and addresses
 * changed, and it carries the new generation). Synchronous: a few netlink
 * requests and file writes, nothing that waits on the network. */
static void handle_identity(const struct vmgr_agent_msg *m) {
        char why[VMGR_AGENT_MESSAGE_MAX];
        struct timespec t0, t1;
        int r;

        if (A.version < VMGR_AGENT_VERSION_IDENTITY)
                return queue_error(m->id, EPROTO, "IDENTITY is not part of protocol version %u", A.version);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        why[0] = 0;
        r = identity_apply(&m->identity, why, sizeof(why));
        if (r < 0) {
                log_warning("IDENTITY failed: %s", why);
                return queue_error(m->id, -r, "%s", why);
        }
        memcpy(A.generation, m->identity.generation, sizeof(A.generation));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        log_info("took the identity of %s (%u NICs, the RNG reseeded with %zu bytes from the host) in %ld ms",
                 m->identity.hostname, (unsigned) m->identity.n_nics, m->identity.entropy_size,
                 (long) ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
        queue_done(m->id, 0, 0);
        send_info(true);
}

/* A host that breaks the protocol loses its session. */
_printf_(1, 2) static void protocol_violation(const char *fmt, ...) {
        char text[VMGR_AGENT_MESSAGE_MAX + 1];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        log_warning("protocol violation: %s", text);
        session_end("protocol violation");
        queue_error(0, EPROTO, "%s", text);
}

/* DATA for stream s: into the file, into the pipe (buffered if it is full), or dropped. */
static void handle_data(struct stream *s, const struct vmgr_agent_msg *m) {
        const uint8_t *p = m->data.data;
        size_t n = m->data.size;

        if (vmgr_agent_recv_window_receive(&s->recv, n) < 0)
                return protocol_violation("stream %u: %zu bytes of DATA with %u bytes of credit", s->id, n,
                                          s->recv.credit);
        if (s->sink)
                return stream_consumed(s, n);

        if (s->kind == STREAM_FILE_PUT) {
                struct file_op *f = s->file;
                while (n > 0) {
                        ssize_t k = write(s->fd, p, n);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                stream_consumed(s, n + (size_t) (p - m->data.data));
                                return file_put_fail(f, errno, "cannot write");
                        }
                        p += k;
                        n -= (size_t) k;
                }
                f->size += m->data.size;
                return stream_consumed(s, m->data.size);
        }

        /* stdin: straight into the pipe when nothing is waiting before it. */
        if (s->buf_len == 0 && s->fd >= 0) {
                ssize_t k = write(s->fd, p, n);
                if (k > 0) {
                        p += k;
                        n -= (size_t) k;
                        stream_consumed(s, (size_t) k);
                } else if (k < 0 && errno == EPIPE) {
                        stream_close_fd(s);
                        s->sink = true;
                        return stream_consumed(s, n);
                }
        }
        if (n == 0)
                return;
        if (!s->buf) {
                s->buf = malloc(RECV_WINDOW);
                if (!s->buf) {
                        log_warning("stream %u: out of memory, input dropped", s->id);
                        s->sink = true;
                        return stream_consumed(s, n);
                }
        }
        /* The window guarantees it fits: buffered bytes never exceed RECV_WINDOW. */
        if (s->buf_start + s->buf_len + n > RECV_WINDOW) {
                memmove(s->buf, s->buf + s->buf_start, s->buf_len);
                s->buf_start = 0;
        }
        memcpy(s->buf + s->buf_start + s->buf_len, p, n);
        s->buf_len += n;
        stream_update(s);
}

/* Write buffered stdin to its pipe; close it once drained after EOF. */
static void stdin_flush(struct stream *s) {
        while (s->buf_len > 0 && s->fd >= 0) {
                ssize_t k = write(s->fd, s->buf + s->buf_start, s->buf_len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        /* EPIPE: the reader is gone; what is left goes nowhere. */
                        stream_close_fd(s);
                        s->sink = true;
                        k = (ssize_t) s->buf_len;
                }
                s->buf_start += (size_t) k;
                s->buf_len -= (size_t) k;
                stream_consumed(s, (size_t) k);
        }
        if (s->buf_len == 0)
                s->buf_start = 0;
        if (s->eof_received && s->buf_len == 0) {
                struct proc *p = s->proc;
                if (p)
                        p->in = NULL;
                stream_free(s);
                return;
        }
        stream_update(s);
}

static void handle_eof(struct stream *s) {
        if (stream_outgoing(s) || s->eof_received)
                return; /* EOF on a stream we send: meaningless, dropped */
        s->eof_received = true;
        if (s->kind == STREAM_FILE_PUT) {
                struct file_op *f = s->file;
                if (!f || f->failed) {
                        if (f)
                                f->stream = NULL, file_free(f);
                        s->file = NULL;
                        return stream_free(s);
                }
                return file_put_finish(f);
        }
        stdin_flush(s);
}

static void handle_msg(const struct vmgr_agent_msg *m) {
        struct stream *s;

        if (m->type == VMGR_AGENT_HELLO)
                return handle_hello(m);
        if (!A.session) {
                /* An agent that restarted under a connected host says so. */
                if (m->type != VMGR_AGENT_ERROR && m->type != VMGR_AGENT_PONG)
                        queue_error(0, ENOTCONN, "no session: send HELLO first");
                return;
        }

        switch (m->type) {
        case VMGR_AGENT_EXEC:
                return handle_exec(m);
        case VMGR_AGENT_DATA:
                s = stream_find(m->id);
                /* Unknown streams: DATA racing with the stream's end. */
                if (s && !stream_outgoing(s))
                        handle_data(s, m);
                return;
        case VMGR_AGENT_WINDOW:
                s = stream_find(m->id);
                if (!s || !stream_outgoing(s))
                        return;
                if (vmgr_agent_send_window_grant(&s->send, m->window) < 0)
                        return protocol_violation("stream %u: WINDOW beyond %u bytes", s->id,
                                                  (unsigned) VMGR_AGENT_WINDOW_MAX);
                stream_update(s);
                return;
        case VMGR_AGENT_EOF:
                s = stream_find(m->id);
                if (s)
                        handle_eof(s);
                return;
        case VMGR_AGENT_KILL:
                return handle_kill(m);
        case VMGR_AGENT_FILE_PUT:
                return handle_file_put(m);
        case VMGR_AGENT_FILE_GET:
                return handle_file_get(m);
        case VMGR_AGENT_SHUTDOWN:
        case VMGR_AGENT_REBOOT:
                return handle_power(m);
        case VMGR_AGENT_IDENTITY:
                return handle_identity(m);
        case VMGR_AGENT_PING: {
                struct vmgr_agent_msg pong = { .type = VMGR_AGENT_PONG, .id = m->id, .ping = m->ping };
                (void) queue_msg(&pong);
                return;
        }
        default:
                /* INFO, EXIT, DONE, ERROR, PONG, LOG: the agent's own words. */
                if (A.bad_frames++ < BAD_FRAMES_LOGGED)
                        log_warning("ignoring %s from the host", vmgr_agent_type_to_string(m->type));
                return;
        }
}

/* --- the port ------------------------------------------------------------- */

/* Find the virtio-serial port by name in sysfs and return its /dev path in buf. Returns 0 or -ENOENT. */
static int port_find(char *buf, size_t size) {
        _cleanup_(closedirp) DIR *d = opendir(port_sysfs);
        struct dirent *de;

        if (!d)
                return -ENOENT;
        while ((de = readdir(d))) {
                char path[512], name[128];
                _cleanup_close_ int fd = -EBADF;
                ssize_t n;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s/name", port_sysfs, de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                n = read(fd, name, sizeof(name) - 1);
                if (n <= 0)
                        continue;
                name[n] = 0;
                name[strcspn(name, "\n")] = 0;
                if (streq(name, VMGR_AGENT_PORT_NAME)) {
                        snprintf(buf, size, "/dev/%s", de->d_name);
                        return 0;
                }
        }
        return -ENOENT;
}

/* Open the port and register it. Returns 0 or -errno. */
static int port_open(void) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &watch_port };
        const char *path = A.port_path;
        int fd;

        if (!path) {
                int r = port_find(A.found_path, sizeof(A.found_path));
                if (r < 0)
                        return r;
                path = A.found_path;
        }
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (epoll_ctl(A.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        A.port_fd = fd;
        A.port_readable = A.port_writable = true;
        log_info("listening on %s (%s)", path, VMGR_AGENT_PORT_NAME);
        return 0;
}


static void producers_resume_if_room(void);

/* Write the output queue to the port until it is empty or the port is full. */
static void port_flush(void) {
        while (A.outq.len > 0 && A.port_writable) {
                ssize_t n = write(A.port_fd, A.outq.data + A.outq.start, A.outq.len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                log_error_errno(-errno, "writing to the port: %m");
                        /* Not connected (EAGAIN until the host comes) or full. */
                        A.port_writable = false;
                        break;
                }
                A.outq.start += (size_t) n;
                A.outq.len -= (size_t) n;
                A.outq.written += (uint64_t) n;
        }
        if (A.outq.len == 0)
                A.outq.start = 0;
        log_forward_written(A.outq.written);
        producers_resume_if_room();
}

/* Read and handle requests while the output queue has room for the answers. */
static void port_input(void) {
        A.input_pending = false;
        for (;;) {
                const struct vmgr_agent_msg *m;
                const char *why = NULL;
                size_t room;
                void *space;
                ssize_t n;
                int r;

                while (A.outq.len < OUTQ_READ_MAX) {
                        r = vmgr_agent_decoder_next(A.decoder, &m, &why);
                        if (r == 0)
                                break;
                        if (r < 0) {
                                if (A.bad_frames++ < BAD_FRAMES_LOGGED)
                                        log_warning("dropped a bad frame from the host: %s", why);
                                continue;
                        }
                        handle_msg(m);
                }
                if (A.outq.len >= OUTQ_READ_MAX) {
                        A.input_pending = true;
                        return;
                }
                if (!A.port_readable)
                        return;

                space = vmgr_agent_decoder_space(A.decoder, &room);
                n = read(A.port_fd, space, room);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                log_error_errno(-errno, "reading from the port: %m");
                        A.port_readable = false;
                        return;
                }
                if (n == 0) {
                        /* virtio-serial reads 0 while no host is connected. That
                         * ends nothing: a new host's first bytes can arrive
                         * before the kernel learns that it connected (data and
                         * the port-open event come on different virtqueues), so
                         * its HELLO may be handled and answered already when
                         * read() says "nobody". The session, the output queue
                         * and the decoder stay; the next HELLO ends the session,
                         * the next edge (data or a connect) wakes us. */
                        A.port_readable = false;
                        return;
                }
                vmgr_agent_decoder_advance(A.decoder, (size_t) n);
        }
}

/* --- producing DATA ------------------------------------------------------- */

/* Read from an outgoing stream into DATA frames while it has credit and the
 * queue has room. Returns true if the stream ended (and was freed). */
static bool stream_produce(struct stream *s) {
        while (!s->dead && A.outq.len < OUTQ_PRODUCE_MAX) {
                size_t want = vmgr_agent_send_window_take(&s->send, sizeof(A.scratch));
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_DATA, .id = s->id };
                ssize_t n;

                if (want == 0)
                        break;
                n = read(s->fd, A.scratch, want);
                if (n < 0 && errno == EINTR) {
                        s->send.credit += (uint32_t) want;
                        continue;
                }
                if (n < 0 && errno == EAGAIN) {
                        s->send.credit += (uint32_t) want;
                        break;
                }
                if (n <= 0) {
                        struct file_op *f = s->file;
                        s->send.credit += (uint32_t) want;
                        if (n < 0)
                                log_error_errno(-errno, "reading stream %u: %m", s->id);
                        queue_simple(VMGR_AGENT_EOF, s->id);
                        if (f) {
                                if (n < 0)
                                        queue_error(f->id, errno, "cannot read %s: %m", f->path);
                                else
                                        queue_done(f->id, f->size, f->mode);
                                f->stream = NULL;
                                s->file = NULL;
                                file_free(f);
                        }
                        stream_free(s);
                        return true;
                }
                s->send.credit += (uint32_t) (want - (size_t) n);
                m.data = (struct vmgr_agent_data) { A.scratch, (size_t) n };
                (void) queue_msg(&m);
                if (s->file)
                        s->file->size += (uint64_t) n;
                /* A pipe gives what it has; go back to epoll rather than spin. */
                if (s->kind != STREAM_FILE_GET)
                        break;
        }
        return false;
}

static void producers_pause_if_full(void) {
        if (A.producers_paused || A.outq.len < OUTQ_PRODUCE_MAX)
                return;
        A.producers_paused = true;
        for (size_t i = 0; i < A.n_streams; i++)
                stream_update(A.streams[i]);
}

static void producers_resume_if_room(void) {
        if (!A.producers_paused || A.outq.len >= OUTQ_PRODUCE_MAX / 2)
                return;
        A.producers_paused = false;
        for (size_t i = 0; i < A.n_streams; i++)
                stream_update(A.streams[i]);
}

/* Work that no fd announces: files to read, requests left unread while the
 * queue was full, the queue itself. */
static void pump(void) {
        for (int round = 0; round < 4; round++) {
                for (size_t i = 0; i < A.n_streams; i++) {
                        struct stream *s = A.streams[i];
                        if (s->kind == STREAM_FILE_GET && s->send.credit > 0 && A.outq.len < OUTQ_PRODUCE_MAX &&
                            stream_produce(s))
                                i--; /* freed: the last stream moved here */
                }
                port_flush();
                if (A.outq.len < OUTQ_READ_MAX && (A.port_readable || A.input_pending))
                        port_input();
                port_flush();
                producers_pause_if_full();
                if (A.outq.len > 0 && !A.port_writable)
                        return;
                if (!A.port_readable && !A.input_pending)
                        return;
        }
}

static bool pump_pending(void) {
        /* Logs to read, a readable file with credit, or requests left in the port. */
        if (log_forward_pending(logs_can_queue() && A.port_fd >= 0))
                return true;
        if (A.outq.len < OUTQ_PRODUCE_MAX)
                for (size_t i = 0; i < A.n_streams; i++)
                        if (A.streams[i]->kind == STREAM_FILE_GET && A.streams[i]->send.credit > 0)
                                return true;
        return (A.port_readable || A.input_pending) && A.outq.len < OUTQ_READ_MAX && A.port_fd >= 0;
}

/* --- events --------------------------------------------------------------- */

static void on_stream_event(struct stream *s, uint32_t events) {
        if (s->dead)
                return;
        if (stream_outgoing(s))
                (void) stream_produce(s);
        else
                stdin_flush(s);
        producers_pause_if_full();
}

/* SIGUSR1: say what the loop is waiting for, for debugging a stuck agent. */
static void log_state(void) {
        log_console("state: port %s%s%s, session %s, output queue %zu bytes%s%s, %zu processes, %zu streams, "
                 "%zu transfers",
                 A.port_fd < 0 ? "closed" : "open", A.port_readable ? " readable" : "",
                 A.port_writable ? " writable" : "", A.session ? "yes" : "no", A.outq.len,
                 A.producers_paused ? ", producers paused" : "", A.input_pending ? ", input pending" : "",
                 A.n_procs, A.n_streams, A.n_files);
        log_forward_log_state();
        for (size_t i = 0; i < A.n_streams; i++) {
                struct stream *s = A.streams[i];
                log_console("state: stream %u kind %d fd %d%s credit %u buffered %zu%s%s", s->id, s->kind, s->fd,
                         s->registered ? " registered" : "", stream_outgoing(s) ? s->send.credit : s->recv.credit,
                         s->buf_len, s->sink ? " sink" : "", s->eof_received ? " eof" : "");
        }
}

static void on_signal(void) {
        struct signalfd_siginfo si;

        while (read(A.signal_fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                if (si.ssi_signo == SIGCHLD)
                        continue;
                if (si.ssi_signo == SIGUSR1) {
                        log_state();
                        continue;
                }
                log_info("received %s, exiting", strsignal((int) si.ssi_signo));
                A.quit = true;
        }
        reap_children();
}

static void info_timer_arm(void) {
        struct itimerspec its = { .it_value.tv_nsec = INFO_DEBOUNCE_NSEC };

        if (A.info_timer_armed)
                return;
        if (timerfd_settime(A.timer_fd, 0, &its, NULL) == 0)
                A.info_timer_armed = true;
}

static void on_netlink(void) {
        int r = netinfo_monitor_drain(A.netlink_fd);
        if (r < 0)
                log_error_errno(r, "netlink monitor: %m");
        if (r != 0) {
                identity_recheck();
                info_timer_arm();
        }
}

static void on_info_timer(void) {
        uint64_t ticks;

        /* Only to consume the expiry; nothing depends on the count. */
        if (read(A.timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
                log_warning("reading the INFO timer: %m");
        A.info_timer_armed = false;
        send_info(false);
}

static void on_port(uint32_t events) {
        /* Woken on every change: the mask says whether a host is connected now. */
        bool hup = events & EPOLLHUP;

        log_forward_port_event(hup, A.session);
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                A.port_readable = true;
        if (events & EPOLLOUT)
                A.port_writable = true;
        if ((events & EPOLLHUP) && !(events & EPOLLOUT)) {
                /* Hung up: reads will say 0 once the last bytes are consumed. */
                A.port_readable = true;
        }
}

/* --- setup ---------------------------------------------------------------- */

static int setup(void) {
        struct epoll_event ev;
        sigset_t mask;
        int r;

        /* Children get fds 0-2 by dup2; none of our pipes may land there. */
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
                        return log_error_errno(-EBADF, "cannot fill fd %d with /dev/null", fd);
        A.null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (A.null_fd < 0)
                return log_error_errno(-errno, "cannot open /dev/null: %m");

        /* Writes to a pipe whose reader is gone fail with EPIPE instead. */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR1);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "sigprocmask: %m");

        A.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (A.epoll_fd < 0)
                return log_error_errno(-errno, "epoll_create1: %m");
        A.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (A.signal_fd < 0)
                return log_error_errno(-errno, "signalfd: %m");
        ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = &watch_signal };
        if (epoll_ctl(A.epoll_fd, EPOLL_CTL_ADD, A.signal_fd, &ev) < 0)
                return log_error_errno(-errno, "epoll_ctl: %m");

        A.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (A.timer_fd < 0)
                return log_error_errno(-errno, "timerfd_create: %m");
        ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = &watch_timer };
        if (epoll_ctl(A.epoll_fd, EPOLL_CTL_ADD, A.timer_fd, &ev) < 0)
                return log_error_errno(-errno, "epoll_ctl: %m");

        A.netlink_fd = netinfo_monitor_open();
        if (A.netlink_fd < 0)
                log_error_errno(A.netlink_fd, "cannot watch address changes, INFO is sent once per session: %m");
        else {
                ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = &watch_netlink };
                if (epoll_ctl(A.epoll_fd, EPOLL_CTL_ADD, A.netlink_fd, &ev) < 0)
                        return log_error_errno(-errno, "epoll_ctl: %m");
        }

        r = vmgr_agent_decoder_new(&A.decoder);
        if (r < 0)
                return log_error_errno(r, "out of memory");
        A.peer_window = RECV_WINDOW;
        return 0;
}

static void help(void) {
        printf("Usage: vmgr-agent [--port PATH]\n\n"
               "The vmgr guest agent. Serves the host over the virtio-serial port\n"
               "named %s (found in %s unless --port is given).\n",
               VMGR_AGENT_PORT_NAME, port_sysfs);
}

/* Parse the command line. Returns 1 to go on, 0 to exit with 0 (help,
 * version), -EINVAL to exit with 2 (said on stderr). */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "port", required_argument, NULL, 'p' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "p:hV", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        A.port_path = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("vmgr-agent %s, protocol %d..%d\n", VMGR_VERSION, VMGR_AGENT_VERSION_MIN,
                               VMGR_AGENT_VERSION_MAX);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "vmgr-agent: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

/* With the port closed, try to open it again. Returns how long to sleep
 * before the next try in ms, or -1 when it is open (or was already). */
static int port_reopen(bool *waiting_logged) {
        struct pollfd p = { .events = POLLOUT };
        bool hup;
        int r;

        if (A.port_fd >= 0)
                return -1;
        r = port_open();
        if (r < 0) {
                if (!*waiting_logged)
                        log_error_errno(r, "waiting for the port %s: %m", VMGR_AGENT_PORT_NAME);
                *waiting_logged = true;
                return PORT_RETRY_SEC * 1000;
        }
        /* A host connected before we (re)started learns that we did; one that
         * is not there will say HELLO. */
        vmgr_agent_decoder_reset(A.decoder);
        p.fd = A.port_fd;
        hup = poll(&p, 1, 0) < 0 || (p.revents & POLLHUP);
        log_forward_port_opened(hup);
        if (!hup)
                queue_hello(0, 0);
        return -1;
}

/* Hand one epoll event to the watch it belongs to. */
static void dispatch(const struct epoll_event *e) {
        struct watch *w = e->data.ptr;

        switch (w->kind) {
        case WATCH_PORT:
                on_port(e->events);
                break;
        case WATCH_SIGNAL:
                on_signal();
                break;
        case WATCH_NETLINK:
                on_netlink();
                break;
        case WATCH_INFO_TIMER:
                on_info_timer();
                break;
        case WATCH_STREAM:
                on_stream_event((struct stream *) w, e->events);
                break;
        case WATCH_KMSG:
                log_forward_readable(LOG_FORWARD_KMSG);
                break;
        case WATCH_JOURNAL:
                log_forward_readable(LOG_FORWARD_JOURNAL);
                break;
        }
}

int main(int argc, char *argv[]) {
        bool waiting_logged = false;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        /* The console is a line-buffered terminal or a file; say things when they happen. */
        setvbuf(stderr, NULL, _IOLBF, 0);

        log_forward_init(&(const struct log_forward_ops) { .queue_msg = queue_msg, .queue_end = queue_end });

        if (setup() < 0)
                return 1;
        log_info("starting (version %s, protocol %d..%d)", VMGR_VERSION, VMGR_AGENT_VERSION_MIN,
                 VMGR_AGENT_VERSION_MAX);
        log_forward_setup(A.epoll_fd, A.null_fd, &watch_kmsg, &watch_journal);

        while (!A.quit) {
                struct epoll_event events[64];
                int timeout, n;

                timeout = port_reopen(&waiting_logged);
                if (A.port_fd >= 0) {
                        log_forward_produce(logs_can_queue());
                        pump();
                }
                if (pump_pending())
                        timeout = 0;
                else {
                        int t = log_forward_timeout_msec(logs_can_queue());
                        if (t >= 0 && (timeout < 0 || t < timeout))
                                timeout = t;
                }

                n = epoll_wait(A.epoll_fd, events, ELEMENTSOF(events), timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(-errno, "epoll_wait: %m"), 1;
                }
                for (int i = 0; i < n; i++)
                        dispatch(&events[i]);
                graveyard_empty();
        }

        session_end("agent exiting");
        log_forward_stop();
        graveyard_empty();
        return 0;
}
