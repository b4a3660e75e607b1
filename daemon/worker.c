/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "macro.h"
#include "worker.h"

typedef struct Job Job;
struct Job {
        Job *next;
        worker_work_t work;
        worker_done_t done;
        void *userdata;
        int result;
};

struct WorkerPool {
        sd_event_source *source;
        int efd;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        Job *queue_head, *queue_tail;   /* waiting to run */
        Job *done_head, *done_tail;     /* finished, completion pending */
        unsigned busy;
        bool stopping;
        pthread_t *threads;
        unsigned n_threads;
};

static void list_append(Job **head, Job **tail, Job *j) {
        j->next = NULL;
        if (*tail)
                (*tail)->next = j;
        else
                *head = j;
        *tail = j;
}

static Job *list_pop(Job **head, Job **tail) {
        Job *j = *head;

        if (j) {
                *head = j->next;
                if (!*head)
                        *tail = NULL;
        }
        return j;
}

static void *worker_main(void *arg) {
        WorkerPool *p = arg;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                Job *j;

                while (!p->queue_head && !p->stopping)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->stopping && !p->queue_head)
                        break;
                j = list_pop(&p->queue_head, &p->queue_tail);
                pthread_mutex_unlock(&p->lock);

                j->result = j->work(j->userdata);

                pthread_mutex_lock(&p->lock);
                list_append(&p->done_head, &p->done_tail, j);
                uint64_t one = 1;
                (void) !write(p->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* Run the completions of finished jobs. */
static void run_completions(WorkerPool *p) {
        for (;;) {
                Job *j;

                pthread_mutex_lock(&p->lock);
                j = list_pop(&p->done_head, &p->done_tail);
                if (j)
                        p->busy--;
                pthread_mutex_unlock(&p->lock);
                if (!j)
                        return;
                j->done(j->result, j->userdata);
                free(j);
        }
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        WorkerPool *p = userdata;
        uint64_t n;

        (void) !read(fd, &n, sizeof(n));
        run_completions(p);
        return 0;
}

int worker_pool_new(sd_event *event, unsigned n, WorkerPool **ret) {
        WorkerPool *p;
        sigset_t all, saved;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->efd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(event, &p->source, p->efd, EPOLLIN, on_eventfd, p);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(p->source, "worker-pool");

        p->threads = calloc(n, sizeof(pthread_t));
        if (!p->threads) {
                r = -ENOMEM;
                goto fail;
        }
        /* Threads must not take the signals the event loop handles through signalfd. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        for (; p->n_threads < n; p->n_threads++) {
                r = -pthread_create(&p->threads[p->n_threads], NULL, worker_main, p);
                if (r < 0)
                        break;
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                goto fail;

        *ret = p;
        return 0;
fail:
        worker_pool_free(p);
        return r;
}

WorkerPool *worker_pool_free(WorkerPool *p) {
        Job *j;

        if (!p)
                return NULL;

        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        /* Jobs that have not started are cancelled. */
        while ((j = list_pop(&p->queue_head, &p->queue_tail))) {
                j->result = -ECANCELED;
                list_append(&p->done_head, &p->done_tail, j);
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);

        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        run_completions(p);

        free(p->threads);
        sd_event_source_disable_unref(p->source);
        safe_close(p->efd);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        free(p);
        return NULL;
}

int worker_submit(WorkerPool *p, worker_work_t work, worker_done_t done, void *userdata) {
        Job *j;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->work = work;
        j->done = done;
        j->userdata = userdata;

        pthread_mutex_lock(&p->lock);
        if (p->stopping) {
                pthread_mutex_unlock(&p->lock);
                free(j);
                return -ESHUTDOWN;
        }
        list_append(&p->queue_head, &p->queue_tail, j);
        p->busy++;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

int worker_post(WorkerPool *p, worker_done_t done, int result, void *userdata) {
        Job *j;
        uint64_t one = 1;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->done = done;
        j->result = result;
        j->userdata = userdata;

        pthread_mutex_lock(&p->lock);
        list_append(&p->done_head, &p->done_tail, j);
        p->busy++; /* balanced when the completion runs */
        (void) !write(p->efd, &one, sizeof(one));
        pthread_mutex_unlock(&p->lock);
        return 0;
}

unsigned worker_pool_busy(WorkerPool *p) {
        unsigned n;

        pthread_mutex_lock(&p->lock);
        n = p->busy;
        pthread_mutex_unlock(&p->lock);
        return n;
}
