/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench-agent.h"
#include "macro.h"

/* What our HELLO grants the agent per stream, as vmgrd does. */
#define BENCH_AGENT_WINDOW (256U * 1024U)
/* The agent runs at most this many processes at once. */
#define BENCH_AGENT_INFLIGHT_MAX 128

double bench_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

int bench_agent_connect(BenchAgent *a, const char *path, double timeout_ms, bool (*alive)(void *), void *userdata) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        double deadline = bench_now_ms() + timeout_ms;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        *a = (BenchAgent) { .fd = -EBADF, .next_id = 1 };

        for (;;) {
                _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
                        int r = vmgr_agent_decoder_new(&a->decoder);
                        if (r < 0)
                                return r;
                        a->fd = TAKE_FD(fd);
                        return 0;
                }
                /* Not there yet (ENOENT), or QEMU has bound but not listened (ECONNREFUSED). */
                if (errno != ENOENT && errno != ECONNREFUSED)
                        return -errno;
                if (alive && !alive(userdata))
                        return -ESRCH;
                if (bench_now_ms() >= deadline)
                        return -ETIMEDOUT;
                (void) usleep(1000);
        }
}

void bench_agent_done(BenchAgent *a) {
        a->fd = safe_close(a->fd);
        a->decoder = vmgr_agent_decoder_free(a->decoder);
}

static int write_all(int fd, const void *buf, size_t size) {
        const uint8_t *p = buf;

        while (size > 0) {
                ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int bench_agent_send(BenchAgent *a, const struct vmgr_agent_msg *m) {
        static uint8_t wire[VMGR_AGENT_WIRE_MAX];
        int n = vmgr_agent_msg_encode(m, wire, sizeof(wire));

        if (n < 0)
                return n;
        return write_all(a->fd, wire, (size_t) n);
}

int bench_agent_send_hello(BenchAgent *a) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_HELLO };
        uint8_t zero = 0;
        int r;

        if (getrandom(&a->nonce, sizeof(a->nonce), 0) != sizeof(a->nonce))
                a->nonce = (uint64_t) (bench_now_ms() * 1e6) * 2654435761ULL;
        a->nonce |= 1; /* 0 is the agent's announcement */
        a->connected = false;
        m.hello = (struct vmgr_agent_hello) { VMGR_AGENT_VERSION_MIN, VMGR_AGENT_VERSION_MAX, BENCH_AGENT_WINDOW,
                                              a->nonce, "vmgr-bench" };
        r = write_all(a->fd, &zero, 1);
        if (r < 0)
                return r;
        return bench_agent_send(a, &m);
}

int bench_agent_receive(BenchAgent *a, double timeout_ms, const struct vmgr_agent_msg **ret) {
        double deadline = bench_now_ms() + timeout_ms;

        for (;;) {
                const struct vmgr_agent_msg *m;
                const char *reason;
                int r = vmgr_agent_decoder_next(a->decoder, &m, &reason);

                if (r > 0) {
                        if (m->type == VMGR_AGENT_HELLO) {
                                if (m->hello.nonce == 0) {
                                        /* The agent (re)started: greet it again, as vmgrd does. */
                                        r = bench_agent_send_hello(a);
                                        if (r < 0)
                                                return r;
                                } else if (!a->connected && m->hello.nonce == a->nonce) {
                                        a->connected = true;
                                        a->agent_window = m->hello.initial_window;
                                }
                        }
                        *ret = m;
                        return 1;
                }
                if (r < 0)
                        continue; /* a dropped frame: left over from an earlier connection */

                double left = deadline - bench_now_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = a->fd, .events = POLLIN };
                r = poll(&p, 1, (int) left + 1);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;

                size_t size;
                void *space = vmgr_agent_decoder_space(a->decoder, &size);
                ssize_t n = read(a->fd, space, size);
                if (n < 0 && errno != EINTR && errno != EAGAIN)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                if (n > 0)
                        vmgr_agent_decoder_advance(a->decoder, (size_t) n);
        }
}

int bench_agent_start_session(BenchAgent *a, double timeout_ms) {
        double deadline = bench_now_ms() + timeout_ms;
        int r;

        r = bench_agent_send_hello(a);
        if (r < 0)
                return r;
        while (!a->connected) {
                const struct vmgr_agent_msg *m;

                r = bench_agent_receive(a, deadline - bench_now_ms(), &m);
                if (r < 0)
                        return r;
                if (m->type == VMGR_AGENT_ERROR && m->id == 0)
                        return -m->error.error;
        }
        return 0;
}

typedef struct RunSlot {
        bool used;
        unsigned index;
        uint32_t pid, in, out, err;
        bool exited, out_eof, err_eof;
        int status;
        double started;
} RunSlot;

static RunSlot *slot_find(RunSlot *slots, unsigned n, uint32_t id, bool process) {
        for (unsigned i = 0; i < n; i++) {
                if (!slots[i].used)
                        continue;
                if (process ? slots[i].pid == id : (slots[i].out == id || slots[i].err == id))
                        return &slots[i];
        }
        return NULL;
}

static int slot_start(BenchAgent *a, RunSlot *s, unsigned index, char *const *argv) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_EXEC };
        int r;

        *s = (RunSlot) { .used = true, .index = index, .started = bench_now_ms() };
        s->pid = a->next_id++;
        s->in = a->next_id++;
        s->out = a->next_id++;
        s->err = a->next_id++;
        m.id = s->pid;
        m.exec.stdin_stream = s->in;
        m.exec.stdout_stream = s->out;
        m.exec.stderr_stream = s->err;
        m.exec.cwd = "";
        for (; argv[m.exec.argc]; m.exec.argc++) {
                if (m.exec.argc >= VMGR_AGENT_ARGS_MAX)
                        return -E2BIG;
                m.exec.argv[m.exec.argc] = argv[m.exec.argc];
        }
        r = bench_agent_send(a, &m);
        if (r < 0)
                return r;
        /* Run's stdin is empty: end-of-file right after the EXEC. */
        return bench_agent_send(a, &(struct vmgr_agent_msg) { .type = VMGR_AGENT_EOF, .id = s->in });
}

int bench_agent_run_many(BenchAgent *a, char *const *argv, unsigned count, unsigned inflight, double timeout_ms,
                         void (*each)(unsigned i, double ms, void *userdata), void *userdata) {
        _cleanup_free_ RunSlot *slots = NULL;
        unsigned started = 0, done = 0, running = 0;
        bool all_zero = true;
        int r;

        if (!a->connected)
                return -ENOTCONN;
        if (inflight < 1 || inflight > BENCH_AGENT_INFLIGHT_MAX)
                return -EINVAL;
        slots = calloc(inflight, sizeof(*slots));
        if (!slots)
                return -ENOMEM;

        while (done < count) {
                const struct vmgr_agent_msg *m;
                RunSlot *s;

                for (unsigned i = 0; i < inflight && running < inflight && started < count; i++) {
                        if (slots[i].used)
                                continue;
                        r = slot_start(a, &slots[i], started++, argv);
                        if (r < 0)
                                return r;
                        running++;
                }

                r = bench_agent_receive(a, timeout_ms, &m);
                if (r < 0)
                        return r;
                switch (m->type) {
                case VMGR_AGENT_EXIT:
                        s = slot_find(slots, inflight, m->id, true);
                        if (!s)
                                continue;
                        s->exited = true;
                        s->status = m->exit.signal ? 128 + m->exit.signal : m->exit.status;
                        break;
                case VMGR_AGENT_EOF:
                        s = slot_find(slots, inflight, m->id, false);
                        if (!s)
                                continue;
                        if (m->id == s->out)
                                s->out_eof = true;
                        else
                                s->err_eof = true;
                        break;
                case VMGR_AGENT_DATA:
                        /* Output is dropped and its credit given back at once. */
                        r = bench_agent_send(a, &(struct vmgr_agent_msg) { .type = VMGR_AGENT_WINDOW, .id = m->id,
                                                                           .window = (uint32_t) m->data.size });
                        if (r < 0)
                                return r;
                        continue;
                case VMGR_AGENT_ERROR:
                        /* About the session, or one of ours could not be started. */
                        if (m->id == 0 || slot_find(slots, inflight, m->id, true))
                                return -m->error.error;
                        continue;
                case VMGR_AGENT_HELLO:
                        if (!a->connected)
                                return -ECONNRESET; /* the agent restarted: our processes are gone */
                        continue;
                default:
                        continue;
                }
                if (!(s->exited && s->out_eof && s->err_eof))
                        continue;
                if (s->status != 0)
                        all_zero = false;
                if (each)
                        each(s->index, bench_now_ms() - s->started, userdata);
                s->used = false;
                running--;
                done++;
        }
        return all_zero ? 0 : -EIO;
}
