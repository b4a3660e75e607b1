/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-agent's log forwarding: the guest's log to the host as LOG messages.
 *
 * Sources: /dev/kmsg (LOGS_KMSG) or journalctl's export output
 * (LOGS_JOURNAL), and the agent's own lines. Each is read in order and
 * only as far as one batch (LOG_BATCH_MAX frames) at a time: the next
 * batch is read once the previous one has left the output queue, while a
 * session exists and the queue is below the agent's limit for new output.
 * Until then the records wait where they are, in the kernel's ring or the
 * journal.
 *
 * What has left the queue is "sent": its position (the kmsg sequence
 * number, the journal cursor) is written to a file under /run after every
 * batch, so that an agent restarted within the same boot continues after
 * it. A session that ends with a batch still queued drops it with the
 * queue; the sources are rewound to the last sent position and the next
 * session gets those records.
 *
 * LOG has no credit window: a batch is at most LOG_BATCH_MAX frames, so
 * logs interleave with DATA instead of starving it.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal-export.h"
#include "kmsg.h"
#include "log-forward.h"
#include "log-text.h"
#include "macro.h"

#define LOG_BATCH_MAX 32
#define KMSG_READS_MAX 256 /* records read per batch, counting those skipped as sent already */
#define KMSG_BAD_RECORDS_LOGGED 10
#define LOG_STATE_DIR "/run/vmgr-agent" /* tmpfs: gone at reboot, as the sequence numbers are */
#define KMSG_STATE_PATH LOG_STATE_DIR "/kmsg-seq"
#define JOURNAL_CURSOR_PATH LOG_STATE_DIR "/journal.cursor"
#define JOURNAL_BUF_SIZE (64u * 1024u)
#define JOURNAL_BACKOFF_MIN_MSEC 1000
#define JOURNAL_BACKOFF_MAX_MSEC 60000
#define AGENT_LOG_RING 64       /* the agent's own lines waiting for a session */
#define LOGS_HELLO_WAIT_MSEC 2000 /* a host that connects says HELLO within this */
#define AGENT_LOG_TEXT_MAX 1024

enum logs_mode {
        LOGS_NONE,    /* nothing to forward but the agent's own lines */
        LOGS_KMSG,    /* /dev/kmsg */
        LOGS_JOURNAL, /* journalctl, where systemd-journald runs */
};

/* One of the agent's own log lines, kept for the host. */
struct agent_log {
        uint8_t priority;
        uint64_t realtime_usec;
        char text[AGENT_LOG_TEXT_MAX + 1];
};

/* The LOG frames in the output queue: what they forward, so that the
 * positions advance only once the frames have left the queue, and go back
 * if the queue is dropped with its session. */
struct log_batch {
        bool pending;
        uint64_t end; /* out once the queue's written count reaches this */
        bool has_kmsg;
        uint64_t kmsg_seq; /* the last record in it */
        bool has_journal; /* it has entries from journalctl */
        bool has_cursor;
        char cursor[JOURNAL_CURSOR_MAX + 1]; /* the last entry in it with a cursor */
        uint64_t agent_next;                 /* the agent's lines before this one are in it */
};

/* How far each source was sent. */
struct log_position {
        bool kmsg_have_sent;
        uint64_t kmsg_sent;
        char journal_sent[JOURNAL_CURSOR_MAX + 1];
        uint64_t agent_log_sent;
};

static struct {
        struct log_forward_ops ops;
        int epoll_fd;     /* the agent's, for our fds */
        int null_fd;      /* journalctl's stdin */
        void *kmsg_tag, *journal_tag; /* data.ptr of their epoll registrations */

        enum logs_mode logs_mode;
        char boot_id[64];
        struct log_batch batch;
        bool port_hup;                    /* the port says no host is connected */
        uint64_t port_connected_msec;     /* when it last said one is */
        bool logs_hup;                    /* the host hung up since the last HELLO */
        struct log_position hup_position; /* what was sent then */
        bool rewind_kmsg, rewind_journal; /* read again from the position sent */

        int kmsg_fd;
        bool kmsg_readable;
        int kmsg_state_fd;
        bool kmsg_have_sent;
        uint64_t kmsg_sent;     /* the last record out of the queue, by us or an earlier agent of this boot */
        uint64_t kmsg_expected; /* the next sequence number, if none were lost */
        char kmsg_buf[KMSG_RECORD_MAX + 1];

        pid_t journal_pid;
        int journal_fd;
        bool journal_readable;
        int journal_state_fd;
        char journal_sent[JOURNAL_CURSOR_MAX + 1]; /* the last entry out of the queue; "" if none */
        uint8_t *journal_buf;
        size_t journal_start, journal_len;
        struct journal_parser journal_parser;
        uint64_t journal_started_msec, journal_restart_msec;
        unsigned journal_backoff_msec;

        bool agent_log_to_host; /* false where stderr is the journal: it comes from there */
        struct agent_log agent_logs[AGENT_LOG_RING];
        uint64_t agent_log_head; /* lines logged */
        uint64_t agent_log_next; /* the next line to queue */
        uint64_t agent_log_sent; /* lines out of the queue */
} L = {
        .epoll_fd = -EBADF,
        .null_fd = -EBADF,
        .kmsg_fd = -EBADF,
        .kmsg_state_fd = -EBADF,
        .journal_fd = -EBADF,
        .journal_state_fd = -EBADF,
};

/* --- the agent's own lines ------------------------------------------------ */

static uint64_t timespec_usec(const struct timespec *ts) {
        return (uint64_t) ts->tv_sec * 1000000u + (uint64_t) ts->tv_nsec / 1000u;
}

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return timespec_usec(&ts);
}

/* Keep a line for the host (source agent). The ring keeps the last
 * AGENT_LOG_RING lines; older ones not sent by then are counted as lost. */
static void agent_log_push(uint8_t priority, const char *text) {
        struct agent_log *l = &L.agent_logs[L.agent_log_head % AGENT_LOG_RING];

        l->priority = priority;
        l->realtime_usec = now_usec(CLOCK_REALTIME);
        snprintf(l->text, sizeof(l->text), "%s", text);
        L.agent_log_head++;
}

/* Log to stderr with our prefix, and to the host unless !to_host. */
_printf_(3, 0) static void log_fullv(uint8_t priority, bool to_host, const char *fmt, va_list ap) {
        char text[AGENT_LOG_TEXT_MAX + 1];

        vsnprintf(text, sizeof(text), fmt, ap);
        fprintf(stderr, "vmgr-agent: %s\n", text);
        if (to_host && L.agent_log_to_host)
                agent_log_push(priority, text);
}

void log_info(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_fullv(6, true, fmt, ap);
        va_end(ap);
}

void log_warning(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_fullv(4, true, fmt, ap);
        va_end(ap);
}

void log_console(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_fullv(7, false, fmt, ap);
        va_end(ap);
}

int log_error_errno(int r, const char *fmt, ...) {
        va_list ap;

        errno = r < 0 ? -r : r;
        va_start(ap, fmt);
        log_fullv(3, true, fmt, ap);
        va_end(ap);
        return r;
}

/* --- log forwarding ------------------------------------------------------- */

static uint64_t now_msec(void) {
        return now_usec(CLOCK_MONOTONIC) / 1000u;
}

static void queue_log(uint8_t source, uint8_t priority, uint64_t realtime_usec, const char *text) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_LOG, .log = { source, priority, realtime_usec, text } };
        (void) L.ops.queue_msg(&m);
}

_printf_(2, 3) static void queue_log_agent(uint8_t priority, const char *fmt, ...) {
        char text[AGENT_LOG_TEXT_MAX + 1];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        queue_log(VMGR_AGENT_LOG_AGENT, priority, now_usec(CLOCK_REALTIME), text);
}

/* Open (creating) a state file under LOG_STATE_DIR and read its first line
 * into buf. Returns the fd or -errno. */
static int state_open(const char *path, char *buf, size_t size) {
        int fd;
        ssize_t n;

        if (mkdir(LOG_STATE_DIR, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        n = pread(fd, buf, size - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return fd;
}

/* Rewrite a state file in place: its lines have a fixed width, so one
 * pwrite() replaces the old one whole. No fsync: it lives in a tmpfs. */
static void state_write(int fd, const char *path, const char *buf, size_t n) {
        static bool failed;

        if (fd < 0)
                return;
        if (pwrite(fd, buf, n, 0) == (ssize_t) n)
                return;
        if (!failed)
                log_error_errno(negative_errno(), "cannot write %s: %m", path);
        failed = true;
}

/* Empty the state file at fd: a failure only means the next agent sends
 * again what this one sent (the state is a hint, never trusted further). */
static void state_clear(int fd) {
        if (ftruncate(fd, 0) < 0)
                log_warning("cannot empty a log state file: %m");
}

static void kmsg_save(void) {
        char line[KMSG_STATE_SIZE + 1];

        if (!L.kmsg_have_sent) {
                if (L.kmsg_state_fd >= 0)
                        state_clear(L.kmsg_state_fd);
        } else if (kmsg_state_format(line, L.boot_id, L.kmsg_sent) == KMSG_STATE_SIZE)
                state_write(L.kmsg_state_fd, KMSG_STATE_PATH, line, KMSG_STATE_SIZE);
}

static void journal_save(void) {
        /* The cursor, padded with spaces to a fixed width. */
        char line[JOURNAL_CURSOR_MAX + 2];

        snprintf(line, sizeof(line), "%-*s\n", JOURNAL_CURSOR_MAX, L.journal_sent);
        state_write(L.journal_state_fd, JOURNAL_CURSOR_PATH, line, JOURNAL_CURSOR_MAX + 1);
}

static void kmsg_close(void) {
        if (L.kmsg_fd >= 0)
                (void) epoll_ctl(L.epoll_fd, EPOLL_CTL_DEL, L.kmsg_fd, NULL);
        L.kmsg_fd = safe_close(L.kmsg_fd);
        L.kmsg_readable = false;
}

/* Queue up to max (+1) LOG frames from /dev/kmsg. Returns how many. */
static unsigned kmsg_produce(unsigned max) {
        /* local_clock(), the records' clock, counts from boot as
         * CLOCK_MONOTONIC does: their realtime is by today's offset. */
        int64_t offset = (int64_t) now_usec(CLOCK_REALTIME) - (int64_t) now_usec(CLOCK_MONOTONIC);
        static unsigned bad_records;
        unsigned frames = 0;

        for (unsigned reads = 0; frames < max && reads < KMSG_READS_MAX && L.kmsg_readable; reads++) {
                struct kmsg_record rec;
                struct log_text text;
                int64_t realtime;
                ssize_t n = read(L.kmsg_fd, L.kmsg_buf, KMSG_RECORD_MAX);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                L.kmsg_readable = false;
                                break;
                        }
                        /* Overwritten before we read them; the kernel moved us to
                         * the oldest record, whose number says how many. */
                        if (errno == EPIPE)
                                continue;
                        log_error_errno(negative_errno(), "cannot read /dev/kmsg, the kernel log is not forwarded any more: %m");
                        kmsg_close();
                        break;
                }
                if (kmsg_parse(L.kmsg_buf, (size_t) n, &rec) < 0) {
                        if (bad_records++ < KMSG_BAD_RECORDS_LOGGED)
                                log_warning("skipping a malformed /dev/kmsg record");
                        continue;
                }
                if (L.kmsg_have_sent && rec.seq <= L.kmsg_sent) {
                        /* Sent already, by us before a rewind or by an earlier agent. */
                        L.kmsg_expected = rec.seq + 1;
                        continue;
                }
                if (rec.seq > L.kmsg_expected) {
                        queue_log_agent(4, "%" PRIu64 " kernel log records were lost (overwritten before they were read)",
                                        rec.seq - L.kmsg_expected);
                        frames++;
                }
                L.kmsg_expected = rec.seq + 1;

                log_text_init(&text);
                log_text_append(&text, rec.text, rec.text_len);
                realtime = (int64_t) rec.usec + offset;
                queue_log(VMGR_AGENT_LOG_KERNEL, rec.priority, realtime > 0 ? (uint64_t) realtime : 0, text.buf);
                frames++;
                L.batch.has_kmsg = true;
                L.batch.kmsg_seq = rec.seq;
        }
        return frames;
}

static void journal_close_pipe(void) {
        if (L.journal_fd >= 0)
                (void) epoll_ctl(L.epoll_fd, EPOLL_CTL_DEL, L.journal_fd, NULL);
        L.journal_fd = safe_close(L.journal_fd);
        L.journal_readable = false;
        L.journal_start = L.journal_len = 0;
        journal_parser_init(&L.journal_parser);
}

/* Stop journalctl (reap_children() reaps it) and forget its output. */
static void journal_stop(void) {
        if (L.journal_pid > 0)
                (void) kill(L.journal_pid, SIGTERM);
        L.journal_pid = 0;
        journal_close_pipe();
}

/* journalctl ended: start it again after the back-off, which doubles
 * while it keeps failing and starts over after a long run. */
static void journal_schedule_restart(void) {
        uint64_t now = now_msec();

        if (now - L.journal_started_msec >= JOURNAL_BACKOFF_MAX_MSEC)
                L.journal_backoff_msec = JOURNAL_BACKOFF_MIN_MSEC;
        L.journal_restart_msec = now + L.journal_backoff_msec;
        L.journal_backoff_msec = L.journal_backoff_msec * 2 < JOURNAL_BACKOFF_MAX_MSEC ? L.journal_backoff_msec * 2
                                                                                       : JOURNAL_BACKOFF_MAX_MSEC;
}

/* Run journalctl with its stdout on a pipe, from the entry after the last
 * one sent (or the boot's first). Returns 0 or -errno. */
static int journal_start(void) {
        char after[sizeof("--after-cursor=") + JOURNAL_CURSOR_MAX];
        /* --quiet: no "-- Journal begins ..." or "-- Boot ... --" lines;
         * --output-fields: only what a LOG needs (the __ fields always come).
         * Not --cursor-file: with --follow journalctl writes it only when it
         * exits by itself, and only we know what has left for the host. */
        const char *argv[] = {
                "journalctl",
                "--boot",
                "--follow",
                "--no-tail",
                "--quiet",
                "--no-pager",
                "--output=export",
                "--output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,_COMM,_PID,SYSLOG_PID,_TRANSPORT,"
                "_SOURCE_REALTIME_TIMESTAMP,_SOURCE_MONOTONIC_TIMESTAMP",
                NULL, /* --after-cursor= */
                NULL,
        };
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = L.journal_tag };
        int pipefd[2], r;
        pid_t parent = getpid(), pid;

        L.journal_started_msec = now_msec();
        if (L.journal_sent[0]) {
                snprintf(after, sizeof(after), "--after-cursor=%s", L.journal_sent);
                argv[ELEMENTSOF(argv) - 2] = after;
        }
        if (!L.journal_buf) {
                L.journal_buf = malloc(JOURNAL_BUF_SIZE);
                if (!L.journal_buf)
                        return -ENOMEM;
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close(pipefd[0]);
                close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                sigset_t none;

                /* Not to outlive the agent, even one killed by SIGKILL. */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                        _exit(1);
                if (dup2(pipefd[1], STDOUT_FILENO) < 0 || dup2(L.null_fd, STDIN_FILENO) < 0)
                        _exit(1);
                signal(SIGPIPE, SIG_DFL);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                execvp(argv[0], (char *const *) argv);
                fprintf(stderr, "vmgr-agent: cannot run journalctl: %m\n");
                _exit(127);
        }
        close(pipefd[1]);
        if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0 || epoll_ctl(L.epoll_fd, EPOLL_CTL_ADD, pipefd[0], &ev) < 0) {
                r = negative_errno();
                close(pipefd[0]);
                (void) kill(pid, SIGTERM);
                return r;
        }
        L.journal_pid = pid;
        L.journal_fd = pipefd[0];
        L.journal_readable = true;
        L.journal_start = L.journal_len = 0;
        journal_parser_init(&L.journal_parser);
        log_info("forwarding the journal: journalctl running as pid %d%s", (int) pid,
                 L.journal_sent[0] ? ", after the last entry sent" : "");
        return 0;
}

/* journalctl was reaped. */
static void journal_exited(int status) {
        L.journal_pid = 0;
        if (WIFEXITED(status))
                log_warning("journalctl exited with status %d", WEXITSTATUS(status));
        else
                log_warning("journalctl was killed by signal %d", WTERMSIG(status));
        journal_schedule_restart();
}

/* Queue up to max LOG frames from journalctl's output. Returns how many. */
static unsigned journal_produce(unsigned max) {
        unsigned frames = 0;

        if (L.journal_fd < 0 && L.journal_pid == 0 && now_msec() >= L.journal_restart_msec) {
                int r = journal_start();
                if (r < 0) {
                        log_error_errno(r, "cannot start journalctl: %m");
                        journal_schedule_restart();
                }
        }
        while (frames < max) {
                const struct journal_entry *e;
                const struct journal_value *cursor;
                struct journal_log l;
                size_t used;

                if (L.journal_len == 0) {
                        ssize_t n;

                        if (L.journal_fd < 0 || !L.journal_readable)
                                break;
                        n = read(L.journal_fd, L.journal_buf, JOURNAL_BUF_SIZE);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN) {
                                L.journal_readable = false;
                                break;
                        }
                        if (n <= 0) {
                                /* journalctl is gone, or going: reaped, it is restarted. */
                                pid_t pid = L.journal_pid;
                                if (n < 0)
                                        log_error_errno(negative_errno(), "reading from journalctl: %m");
                                journal_close_pipe();
                                if (pid > 0)
                                        (void) kill(pid, SIGTERM);
                                break;
                        }
                        L.journal_start = 0;
                        L.journal_len = (size_t) n;
                }
                used = journal_parser_feed(&L.journal_parser, L.journal_buf + L.journal_start, L.journal_len, &e);
                L.journal_start += used;
                L.journal_len -= used;
                if (!e)
                        continue;
                cursor = &e->fields[JOURNAL_FIELD_CURSOR];
                if (cursor->present && !cursor->cut && cursor->len > 0) {
                        memcpy(L.batch.cursor, cursor->buf, cursor->len + 1);
                        L.batch.has_cursor = true;
                }
                if (journal_entry_to_log(e, &l) < 0)
                        continue;
                queue_log(l.source, l.priority, l.realtime_usec, l.text.buf);
                frames++;
                L.batch.has_journal = true;
        }
        return frames;
}

/* Queue up to max (+1) of the agent's own lines. Returns how many. */
static unsigned agent_logs_produce(unsigned max) {
        unsigned frames = 0;

        if (L.agent_log_head - L.agent_log_next > AGENT_LOG_RING) {
                queue_log_agent(4, "%" PRIu64 " of the agent's log lines were lost (more than %d waited for a host)",
                                L.agent_log_head - AGENT_LOG_RING - L.agent_log_next, AGENT_LOG_RING);
                L.agent_log_next = L.agent_log_head - AGENT_LOG_RING;
                frames++;
        }
        while (frames < max && L.agent_log_next < L.agent_log_head) {
                const struct agent_log *l = &L.agent_logs[L.agent_log_next++ % AGENT_LOG_RING];
                struct log_text t;

                log_text_init(&t);
                log_text_append_str(&t, l->text);
                queue_log(VMGR_AGENT_LOG_AGENT, l->priority, l->realtime_usec, t.buf);
                frames++;
        }
        return frames;
}

/* Whether the host hung up and no HELLO came since: logs wait. A host that
 * connects says HELLO at once; if none came LOGS_HELLO_WAIT_MSEC after the
 * port said a host is there, the hang-up was reported late (the kernel
 * reports data and connections on separate queues) and the host is the
 * session's own. */
static bool logs_held(void) {
        if (!L.logs_hup)
                return false;
        if (L.port_hup || now_msec() - L.port_connected_msec < LOGS_HELLO_WAIT_MSEC)
                return true;
        L.logs_hup = false;
        return false;
}

bool log_forward_pending(bool can_queue) {
        if (!can_queue || L.batch.pending || logs_held())
                return false;
        return L.agent_log_next < L.agent_log_head || L.kmsg_readable || L.journal_len > 0 || L.journal_readable;
}

int log_forward_timeout_msec(bool can_queue) {
        uint64_t now = now_msec(), due;

        /* Only when log_forward_produce() can act then: otherwise the loop would spin. */
        if (!can_queue || L.batch.pending)
                return -1;
        if (L.logs_hup) {
                if (L.port_hup)
                        return -1; /* until a host connects: a port event */
                due = L.port_connected_msec + LOGS_HELLO_WAIT_MSEC;
        } else if (L.logs_mode == LOGS_JOURNAL && L.journal_fd < 0 && L.journal_pid == 0)
                due = L.journal_restart_msec;
        else
                return -1;
        if (due <= now)
                return 0;
        return due - now > INT32_MAX ? INT32_MAX : (int) (due - now);
}

void log_forward_produce(bool can_queue) {
        unsigned frames;

        if (!can_queue || L.batch.pending || logs_held())
                return;
        frames = agent_logs_produce(LOG_BATCH_MAX);
        if (L.logs_mode == LOGS_KMSG && frames < LOG_BATCH_MAX && L.kmsg_fd >= 0)
                frames += kmsg_produce(LOG_BATCH_MAX - frames);
        else if (L.logs_mode == LOGS_JOURNAL && frames < LOG_BATCH_MAX)
                frames += journal_produce(LOG_BATCH_MAX - frames);
        if (frames == 0) {
                L.batch = (struct log_batch) {};
                return;
        }
        L.batch.agent_next = L.agent_log_next;
        L.batch.end = L.ops.queue_end();
        L.batch.pending = true;
}

void log_forward_written(uint64_t written) {
        /* The batch is sent once all of it left the queue. */
        if (!L.batch.pending || written < L.batch.end)
                return;
        if (L.batch.has_kmsg) {
                L.kmsg_have_sent = true;
                L.kmsg_sent = L.batch.kmsg_seq;
                kmsg_save();
        }
        if (L.batch.has_cursor) {
                memcpy(L.journal_sent, L.batch.cursor, sizeof(L.journal_sent));
                journal_save();
        }
        L.agent_log_sent = L.batch.agent_next;
        L.batch = (struct log_batch) {};
}

/* The port says the host hung up (the session goes on until the next
 * HELLO). Remember what was sent by then and read no more logs until the
 * next HELLO: once the next host connects, the batch waiting in the queue
 * is written to it before its HELLO is read, and a host ignores what comes
 * before the answer to its HELLO. */
static void logs_host_hung_up(bool session) {
        if (!session || L.logs_hup)
                return;
        L.logs_hup = true;
        L.hup_position.kmsg_have_sent = L.kmsg_have_sent;
        L.hup_position.kmsg_sent = L.kmsg_sent;
        memcpy(L.hup_position.journal_sent, L.journal_sent, sizeof(L.journal_sent));
        L.hup_position.agent_log_sent = L.agent_log_sent;
}

void log_forward_hello(void) {
        /* If the host hung up since the last HELLO, the batch written after
         * that went to this host before its HELLO: go back to what was sent
         * when the old one hung up. */
        const struct log_position *h = &L.hup_position;

        if (!L.logs_hup)
                return;
        L.logs_hup = false;
        if (L.kmsg_have_sent != h->kmsg_have_sent || L.kmsg_sent != h->kmsg_sent) {
                L.kmsg_have_sent = h->kmsg_have_sent;
                L.kmsg_sent = h->kmsg_sent;
                L.rewind_kmsg = true;
                kmsg_save();
        }
        if (!streq(L.journal_sent, h->journal_sent)) {
                memcpy(L.journal_sent, h->journal_sent, sizeof(L.journal_sent));
                L.rewind_journal = true;
                journal_save();
        }
        L.agent_log_sent = h->agent_log_sent;
        L.agent_log_next = L.agent_log_sent;
}

/* The output queue is about to be dropped with its session: what the
 * pending batch forwarded goes again, from the last position sent. */
static void logs_rewind(void) {
        if (L.batch.pending) {
                L.agent_log_next = L.agent_log_sent;
                L.rewind_kmsg |= L.batch.has_kmsg;
                L.rewind_journal |= L.batch.has_journal;
        }
        if (L.rewind_kmsg && L.kmsg_fd >= 0) {
                /* Back to the oldest record; those sent are skipped again. */
                if (lseek(L.kmsg_fd, 0, SEEK_SET) < 0)
                        log_error_errno(negative_errno(), "cannot rewind /dev/kmsg: %m");
                L.kmsg_expected = L.kmsg_have_sent ? L.kmsg_sent + 1 : 0;
                L.kmsg_readable = true;
        }
        if (L.rewind_journal) {
                /* From the last cursor sent, at once. */
                journal_stop();
                L.journal_restart_msec = 0;
        }
        L.rewind_kmsg = L.rewind_journal = false;
        L.batch = (struct log_batch) {};
}

/* Whether stderr is a stream to journald (systemd sets $JOURNAL_STREAM to
 * its device:inode): then our lines reach the host through the journal. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        return e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
               (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_forward_setup(int epoll_fd, int null_fd, void *kmsg_tag, void *journal_tag) {
        char line[JOURNAL_CURSOR_MAX + 2];
        int fd, r;

        L.epoll_fd = epoll_fd;
        L.null_fd = null_fd;
        L.kmsg_tag = kmsg_tag;
        L.journal_tag = journal_tag;

        fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                ssize_t n = read(fd, L.boot_id, sizeof(L.boot_id) - 1);
                L.boot_id[n > 0 ? n : 0] = 0;
                L.boot_id[strcspn(L.boot_id, "\n")] = 0;
                close(fd);
        }
        L.journal_backoff_msec = JOURNAL_BACKOFF_MIN_MSEC;
        journal_parser_init(&L.journal_parser);

        /* journald reads /dev/kmsg itself: its journal has the kernel's lines too. */
        if (access("/run/systemd/journal/socket", F_OK) == 0 || access("/run/systemd/system", F_OK) == 0) {
                L.logs_mode = LOGS_JOURNAL;
                fd = state_open(JOURNAL_CURSOR_PATH, line, sizeof(line));
                if (fd < 0) {
                        log_error_errno(fd, "cannot open %s, a restarted agent sends the journal again: %m",
                                        JOURNAL_CURSOR_PATH);
                        return;
                }
                L.journal_state_fd = fd;
                line[strcspn(line, " ")] = 0;
                if (strlen(line) < sizeof(L.journal_sent))
                        strcpy(L.journal_sent, line);
                state_clear(fd);
                journal_save();
                log_info("forwarding the journal%s", L.journal_sent[0] ? ", after the entries an earlier agent sent" : "");
                return;
        }

        L.logs_mode = LOGS_KMSG;
        L.kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (L.kmsg_fd < 0) {
                log_error_errno(negative_errno(), "cannot open /dev/kmsg, the kernel log is not forwarded: %m");
                return;
        }
        {
                struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = L.kmsg_tag };
                if (epoll_ctl(L.epoll_fd, EPOLL_CTL_ADD, L.kmsg_fd, &ev) < 0) {
                        log_error_errno(negative_errno(), "epoll_ctl on /dev/kmsg, the kernel log is not forwarded: %m");
                        kmsg_close();
                        return;
                }
        }
        L.kmsg_readable = true;
        fd = state_open(KMSG_STATE_PATH, line, sizeof(line));
        if (fd < 0) {
                log_error_errno(fd, "cannot open %s, a restarted agent sends the kernel log again: %m", KMSG_STATE_PATH);
                return;
        }
        L.kmsg_state_fd = fd;
        r = kmsg_state_parse(line, L.boot_id, &L.kmsg_sent);
        if (r > 0) {
                L.kmsg_have_sent = true;
                L.kmsg_expected = L.kmsg_sent + 1;
                log_info("forwarding the kernel log after record %" PRIu64 ", which an earlier agent sent", L.kmsg_sent);
        } else {
                if (r < 0 && line[0])
                        log_warning("ignoring %s: malformed", KMSG_STATE_PATH);
                state_clear(fd);
                log_info("forwarding the kernel log");
        }
}

/* --- the interface -------------------------------------------------------- */

void log_forward_init(const struct log_forward_ops *ops) {
        L.ops = *ops;
        L.agent_log_to_host = !stderr_is_journal();
}

void log_forward_readable(enum log_forward_source source) {
        if (source == LOG_FORWARD_KMSG && L.kmsg_fd >= 0)
                L.kmsg_readable = true;
        else if (source == LOG_FORWARD_JOURNAL && L.journal_fd >= 0)
                L.journal_readable = true;
}

void log_forward_port_opened(bool hup) {
        L.port_hup = hup;
        L.port_connected_msec = now_msec();
}

void log_forward_port_event(bool hup, bool session) {
        if (hup && !L.port_hup)
                logs_host_hung_up(session);
        if (!hup && L.port_hup)
                L.port_connected_msec = now_msec();
        L.port_hup = hup;
}

void log_forward_session_end(void) {
        logs_rewind();
        L.logs_hup = false; /* the next session starts with a HELLO and an empty queue */
}

bool log_forward_child_exited(pid_t pid, int status) {
        if (pid != L.journal_pid)
                return false;
        journal_exited(status);
        return true;
}

void log_forward_stop(void) {
        journal_stop();
}

void log_forward_log_state(void) {
        log_console("state: logs from %s%s%s%s, batch %s, kmsg sent %s%" PRIu64 ", journalctl pid %d fd %d%s buffered %zu, "
                    "agent lines %" PRIu64 " logged %" PRIu64 " queued %" PRIu64 " sent",
                    L.logs_mode == LOGS_KMSG ? "/dev/kmsg" : L.logs_mode == LOGS_JOURNAL ? "the journal" : "nowhere",
                    L.kmsg_readable ? ", kmsg readable" : "",
                    L.logs_hup ? ", the host hung up since the last HELLO" : "", L.agent_log_to_host ? "" : ", own lines through the journal",
                    L.batch.pending ? "queued" : "none", L.kmsg_have_sent ? "" : "none ", L.kmsg_sent,
                    (int) L.journal_pid, L.journal_fd, L.journal_readable ? " readable" : "", L.journal_len,
                    L.agent_log_head, L.agent_log_next, L.agent_log_sent);
}
