/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench-agent.h"
#include "macro.h"

/* The agent runs at most this many processes at once. */
#define BENCH_AGENT_INFLIGHT_MAX 128
/* What vmgrd's Run collects per output (VM_RUN_OUTPUT_MAX). */
#define BENCH_RUN_OUTPUT_MAX (16U * 1024U * 1024U)

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
        *a = (BenchAgent) { .fd = -EBADF, .path = path, .t_first = -1, .t_hello = -1 };

        for (;;) {
                _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
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
        a->session = agent_session_free(a->session);
        a->event = sd_event_unref(a->event);
}

static void on_message(AgentSession *s, const struct vmgr_agent_msg *m, void *userdata) {
        BenchAgent *a = userdata;

        if (a->t_first < 0)
                a->t_first = bench_now_ms();
        /* The session ignores an ERROR before it is up; we would wait for nothing. */
        if (!agent_session_is_connected(s) && m->type == VMGR_AGENT_ERROR && m->id == 0)
                a->refused = -(int) m->error.error;
}

static void on_changed(AgentSession *s, void *userdata) {
        BenchAgent *a = userdata;

        if (a->t_hello < 0 && agent_session_is_connected(s))
                a->t_hello = bench_now_ms();
}

int bench_agent_begin(BenchAgent *a) {
        int r;

        r = sd_event_new(&a->event);
        if (r < 0)
                return r;
        r = agent_session_new(a->event, a->path, on_changed, a, &a->session);
        if (r < 0)
                return r;
        agent_session_set_hello(a->session, VMGR_AGENT_VERSION_MIN, VMGR_AGENT_VERSION_MAX, AGENT_SESSION_WINDOW,
                                "vmgr-bench");
        agent_session_set_message_handler(a->session, on_message);
        return agent_session_attach(a->session, TAKE_FD(a->fd));
}

int bench_agent_wait(BenchAgent *a, double timeout_ms, bool (*until)(BenchAgent *a, void *userdata),
                     void *userdata) {
        double deadline = bench_now_ms() + timeout_ms;

        for (;;) {
                double left = deadline - bench_now_ms();
                int r;

                if (until(a, userdata))
                        return 0;
                if (a->refused < 0)
                        return a->refused;
                if (!agent_session_has_connection(a->session))
                        return -ECONNRESET;
                if (left <= 0)
                        return -ETIMEDOUT;
                r = sd_event_run(a->event, (uint64_t) (left * 1000) + 1);
                if (r < 0)
                        return r;
        }
}

static bool is_connected(BenchAgent *a, void *userdata) {
        return agent_session_is_connected(a->session);
}

int bench_agent_start_session(BenchAgent *a, double timeout_ms) {
        int r = bench_agent_begin(a);

        if (r < 0)
                return r;
        return bench_agent_wait(a, timeout_ms, is_connected, NULL);
}

typedef struct RunSlot {
        AgentJob *job;          /* NULL: free */
        unsigned index;
        double started;
        bool done;
} RunSlot;

static void on_run_done(AgentJob *j, void *userdata) {
        ((RunSlot *) userdata)->done = true;
}

static int slot_start(BenchAgent *a, RunSlot *s, unsigned index, char *const *argv) {
        int r;

        *s = (RunSlot) { .index = index, .started = bench_now_ms() };
        r = agent_job_new(a->session, AGENT_JOB_EXEC, on_run_done, s, &s->job);
        if (r < 0)
                return r;
        r = agent_job_set_input_mem(s->job, "", 0);
        if (r >= 0)
                r = agent_job_set_output_mem(s->job, AGENT_STREAM_OUT, BENCH_RUN_OUTPUT_MAX);
        if (r >= 0)
                r = agent_job_set_output_mem(s->job, AGENT_STREAM_ERR, BENCH_RUN_OUTPUT_MAX);
        if (r >= 0)
                r = agent_job_start_exec(s->job, argv, NULL, NULL);
        return r;
}

int bench_agent_run_many(BenchAgent *a, char *const *argv, unsigned count, unsigned inflight, double timeout_ms,
                         void (*each)(unsigned i, double ms, void *userdata), void *userdata) {
        _cleanup_free_ RunSlot *slots = NULL;
        unsigned started = 0, done = 0;
        bool all_zero = true;
        int r = 0;

        if (!agent_session_is_connected(a->session))
                return -ENOTCONN;
        if (inflight < 1 || inflight > BENCH_AGENT_INFLIGHT_MAX)
                return -EINVAL;
        slots = calloc(inflight, sizeof(*slots));
        if (!slots)
                return -ENOMEM;

        while (r >= 0 && done < count) {
                for (unsigned i = 0; i < inflight && started < count && r >= 0; i++)
                        if (!slots[i].job)
                                r = slot_start(a, &slots[i], started++, argv);
                if (r < 0)
                        break;

                r = sd_event_run(a->event, (uint64_t) (timeout_ms * 1000));
                if (r == 0)
                        r = -ETIMEDOUT;
                for (unsigned i = 0; i < inflight; i++) {
                        RunSlot *s = &slots[i];
                        const AgentJobResult *res;

                        if (!s->job || !s->done)
                                continue;
                        res = agent_job_result(s->job);
                        if (res->error < 0) {
                                /* The session is gone, or the agent could not start it. */
                                if (r >= 0)
                                        r = res->error;
                        } else {
                                if (res->signal || res->status != 0)
                                        all_zero = false;
                                if (each)
                                        each(s->index, bench_now_ms() - s->started, userdata);
                        }
                        s->job = agent_job_free(s->job);
                        done++;
                }
        }
        for (unsigned i = 0; i < inflight; i++)
                agent_job_free(slots[i].job);
        if (r < 0)
                return r;
        return all_zero ? 0 : -EIO;
}
