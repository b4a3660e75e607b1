/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-util.h"
#include "grouplog.h"
#include "log.h"
#include "logline.h"
#include "macro.h"
#include "tokenbucket.h"

/* What a follower reads from the file at once: many lines, always at least
 * one whole line (a line is at most VMGR_LINE_MAX plus its prefix). */
#define FOLLOW_CHUNK (64U * 1024U)
/* A VM name and a source, in brackets. */
#define PREFIX_MAX 128
/* Console bytes read per wake-up, so that one chatty VM cannot hold the loop. */
#define CONSOLE_READ_MAX (256U * 1024U)
/* Drops are reported at most this often per VM and source. */
#define DROP_NOTICE_USEC (1000ULL * 1000ULL)
/* What a line costs from a budget beyond its text: the prefix and newline. */
#define LINE_OVERHEAD 32U

typedef struct Follower Follower;

struct Follower {
        GroupLog *log;
        Follower *next, *prev;
        int fd;
        sd_event_source *io;
        bool blocked;                   /* the pipe was full: wait for EPOLLOUT */
        uint64_t offset;                /* next byte of the file to read */
        uint64_t end;                   /* stop here (UINT64_MAX: follow) */
        char **vms;                     /* NULL: every VM */
        GroupLogSource sources;
        uint64_t skip;                  /* selected lines still to leave out */
        char *buf;                      /* selected lines not yet written */
        size_t buf_start, buf_len;
};

struct GroupLog {
        sd_event *event;
        char *path;
        int fd;
        uint64_t size;
        bool write_failed;              /* said so once */
        Follower *followers;
        unsigned n_followers;
};

/* What one VM's source may add to the log, and what it dropped. */
typedef struct Budget {
        GroupLog *log;
        const char *vm;                 /* the follower's */
        GroupLogSource source;
        const char *what;               /* "console output", for the notice */
        struct vmgr_token_bucket bucket;
        uint64_t dropped_bytes, dropped_lines;
        sd_event_source *notice;        /* armed while drops wait to be reported */
} Budget;

struct ConsoleFollower {
        GroupLog *log;
        sd_event *event;
        char *vm;
        char *path, *rotated_path;      /* console.log, console.log.1 */
        uint64_t console_max;
        Budget console, guest;
        int fd;                         /* the console file, read and truncated here, appended to by QEMU */
        int offset_fd;                  /* PATH.offset: where a restarted vmgrd goes on reading */
        uint64_t offset_saved;
        int inotify_fd;
        sd_event_source *inotify;       /* off while a read is scheduled */
        sd_event_source *timer;         /* the scheduled read */
        struct vmgr_line_splitter split;
        console_line_handler_t line_handler;
        void *line_userdata;
};

static const char *const source_names[] = {
        [0] = "console",
        [1] = "guest",
        [2] = "vmgrd",
};

GroupLogSource group_log_source_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(source_names); i++)
                if (streq(s, source_names[i]))
                        return 1 << i;
        return 0;
}

static const char *source_name(GroupLogSource s) {
        for (size_t i = 0; i < ELEMENTSOF(source_names); i++)
                if (s == (GroupLogSource) (1 << i))
                        return source_names[i];
        return "?";
}

static void follower_free(Follower *f) {
        GroupLog *l = f->log;

        if (f->prev)
                f->prev->next = f->next;
        else
                l->followers = f->next;
        if (f->next)
                f->next->prev = f->prev;
        l->n_followers--;
        sd_event_source_disable_unref(f->io);
        safe_close(f->fd);
        strv_free(f->vms);
        free(f->buf);
        free(f);
}

/* Does a line "[vm=NAME SOURCE] ..." or "[SOURCE] ..." pass f's selection? */
static bool follower_wants(const Follower *f, const char *line, size_t len) {
        const char *end = memchr(line, ']', MIN(len, (size_t) PREFIX_MAX));
        const char *p = line + 1, *space;
        char name[PREFIX_MAX], source[PREFIX_MAX];

        if (len < 3 || line[0] != '[' || !end)
                return f->sources == GROUP_LOG_ALL && !f->vms; /* not ours: only "everything" shows it */
        name[0] = 0;
        if (strncmp(p, "vm=", 3) == 0 && (space = memchr(p, ' ', (size_t) (end - p)))) {
                snprintf(name, sizeof(name), "%.*s", (int) (space - p - 3), p + 3);
                p = space + 1;
        }
        snprintf(source, sizeof(source), "%.*s", (int) (end - p), p);
        if (!(f->sources & group_log_source_from_string(source)))
                return false;
        if (!f->vms)
                return true;
        if (!name[0])
                return false; /* group-level lines belong to no VM */
        for (char *const *v = f->vms; *v; v++)
                if (streq(*v, name))
                        return true;
        return false;
}

/* Read the next chunk of the file into f->buf, keeping the selected lines. */
static int follower_fill(Follower *f) {
        GroupLog *l = f->log;
        uint64_t limit = MIN(l->size, f->end);
        size_t want, keep = 0, used;
        ssize_t n;
        char *last;

        want = (size_t) MIN((uint64_t) FOLLOW_CHUNK, limit - f->offset);
        n = pread(l->fd, f->buf, want, (off_t) f->offset);
        if (n < 0)
                return -errno;
        if (n == 0)
                return -EIO; /* shorter than we wrote: someone truncated it */
        last = memrchr(f->buf, '\n', (size_t) n);
        used = last ? (size_t) (last - f->buf) + 1 : (size_t) n;
        for (size_t i = 0; i < used;) {
                char *nl = memchr(f->buf + i, '\n', used - i);
                size_t len = nl ? (size_t) (nl - (f->buf + i)) + 1 : used - i;

                if (follower_wants(f, f->buf + i, len) && f->skip > 0)
                        f->skip--;
                else if (follower_wants(f, f->buf + i, len)) {
                        memmove(f->buf + keep, f->buf + i, len);
                        keep += len;
                }
                i += len;
        }
        f->offset += used;
        f->buf_start = 0;
        f->buf_len = keep;
        return 0;
}

/* Write what f may write now. Frees f when it is done or its reader is gone. */
static void follower_pump(Follower *f) {
        for (;;) {
                if (f->buf_len == 0) {
                        uint64_t limit = MIN(f->log->size, f->end);

                        if (f->offset >= limit) {
                                if (f->offset >= f->end)
                                        follower_free(f); /* all it asked for: EOF for the reader */
                                return;
                        }
                        if (follower_fill(f) < 0) {
                                follower_free(f);
                                return;
                        }
                        continue;
                }
                ssize_t n = write(f->fd, f->buf + f->buf_start, f->buf_len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                f->blocked = true;
                                (void) sd_event_source_set_io_events(f->io, EPOLLOUT);
                                return;
                        }
                        follower_free(f); /* EPIPE: the reader went away */
                        return;
                }
                f->buf_start += (size_t) n;
                f->buf_len -= (size_t) n;
        }
}

static int on_follower_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Follower *f = userdata;

        if (revents & EPOLLERR) {
                follower_free(f); /* the read end is closed */
                return 0;
        }
        if (revents & EPOLLOUT) {
                f->blocked = false;
                /* Only the error is of interest until the pipe fills up again. */
                (void) sd_event_source_set_io_events(f->io, 0);
                follower_pump(f);
        }
        return 0;
}

int group_log_follow(GroupLog *l, int fd, char *const *vms, GroupLogSource sources, bool from_start, bool follow,
                     uint64_t skip) {
        _cleanup_close_ int owned = fd;
        Follower *f;
        int r;

        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->log = l;
        f->fd = TAKE_FD(owned);
        f->sources = sources ? sources : GROUP_LOG_ALL;
        f->skip = skip;
        f->offset = from_start ? 0 : l->size;
        f->end = follow ? UINT64_MAX : l->size;
        f->next = l->followers;
        if (l->followers)
                l->followers->prev = f;
        l->followers = f;
        l->n_followers++;

        if (vms && vms[0]) {
                size_t n = 0;
                for (char *const *v = vms; *v; v++)
                        if (strv_push_dup(&f->vms, &n, *v) < 0) {
                                follower_free(f);
                                return -ENOMEM;
                        }
        }
        f->buf = malloc(FOLLOW_CHUNK);
        if (!f->buf) {
                follower_free(f);
                return -ENOMEM;
        }
        r = sd_event_add_io(l->event, &f->io, f->fd, 0, on_follower_io, f);
        if (r < 0) {
                follower_free(f);
                return r;
        }
        follower_pump(f);
        return 0;
}

unsigned group_log_n_followers(const GroupLog *l) {
        return l ? l->n_followers : 0;
}

void group_log_append(GroupLog *l, const char *vm, GroupLogSource source, const char *text, size_t len) {
        char line[PREFIX_MAX + VMGR_LINE_MAX + 1];
        const char *nl = memchr(text, '\n', len);
        int prefix;
        ssize_t n;

        if (!l)
                return;
        if (nl)
                len = (size_t) (nl - text);
        if (vm)
                prefix = snprintf(line, PREFIX_MAX, "[vm=%s %s] ", vm, source_name(source));
        else
                prefix = snprintf(line, PREFIX_MAX, "[%s] ", source_name(source));
        if (prefix < 0 || prefix >= PREFIX_MAX)
                return;
        len = MIN(len, (size_t) VMGR_LINE_MAX);
        memcpy(line + prefix, text, len);
        line[prefix + len] = '\n';

        /* One write with O_APPEND: the file only ever holds whole lines. */
        n = write(l->fd, line, (size_t) prefix + len + 1);
        if (n < 0 || (size_t) n != (size_t) prefix + len + 1) {
                if (!l->write_failed)
                        /* Not log_group(): that would come back here. */
                        log_warning_errno(n < 0 ? errno : EIO, "Cannot write to %s: %m; lines are lost",
                                          l->path);
                l->write_failed = true;
                if (n <= 0)
                        return;
        }
        l->size += (uint64_t) n;

        for (Follower *f = l->followers, *next; f; f = next) {
                next = f->next;
                if (!f->blocked)
                        follower_pump(f);
        }
}

int group_log_new(sd_event *event, const char *path, GroupLog **ret) {
        GroupLog *l;
        struct stat st;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(event);
        l->path = strdup(path);
        l->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (!l->path || l->fd < 0 || fstat(l->fd, &st) < 0) {
                int r = l->path ? -errno : -ENOMEM;
                group_log_free(l);
                return r;
        }
        l->size = (uint64_t) st.st_size;
        *ret = l;
        return 0;
}

GroupLog *group_log_free(GroupLog *l) {
        if (!l)
                return NULL;
        /* Whatever fits into the pipes now, then EOF. */
        while (l->followers) {
                Follower *f = l->followers;
                if (!f->blocked) {
                        f->end = MIN(f->end, l->size);
                        follower_pump(f);
                        if (l->followers != f)
                                continue; /* done and freed */
                }
                follower_free(f);
        }
        safe_close(l->fd);
        free(l->path);
        sd_event_unref(l->event);
        free(l);
        return NULL;
}

const char *group_log_path(const GroupLog *l) {
        return l->path;
}

/* --- consoles ------------------------------------------------------------------------- */

/* QEMU writes a serial console one byte at a time, and every write is an
 * inotify event: a change schedules one read this much later, and the
 * events in between cost no wake-up (the watch is off until then). */
#define CONSOLE_COALESCE_USEC (50ULL * 1000ULL)

static uint64_t monotonic_usec(sd_event *event) {
        uint64_t now = 0;

        (void) sd_event_now(event, CLOCK_MONOTONIC, &now);
        return now;
}

/* Write the line saying what b dropped since the last one. */
static void budget_report(Budget *b) {
        char text[256];

        if (b->dropped_lines == 0)
                return;
        snprintf(text, sizeof(text), "dropped %" PRIu64 " bytes (%" PRIu64 " lines) of %s (rate limit)",
                 b->dropped_bytes, b->dropped_lines, b->what);
        b->dropped_bytes = b->dropped_lines = 0;
        group_log_append(b->log, b->vm, GROUP_LOG_VMGRD, text, strlen(text));
}

static int on_budget_notice(sd_event_source *s, uint64_t usec, void *userdata) {
        Budget *b = userdata;

        b->notice = sd_event_source_disable_unref(b->notice);
        budget_report(b);
        return 0;
}

static void budget_init(Budget *b, GroupLog *l, const char *vm, GroupLogSource source, const char *what,
                        const GroupLogLimits *limits, uint64_t now) {
        *b = (Budget) { .log = l, .vm = vm, .source = source, .what = what };
        vmgr_token_bucket_init(&b->bucket, limits->rate, limits->burst, now);
}

static void budget_done(Budget *b) {
        b->notice = sd_event_source_disable_unref(b->notice);
        if (b->log)
                budget_report(b);
}

/* Append a line if the budget allows it, else count it as dropped and see
 * that a notice follows. */
static void budget_append(Budget *b, sd_event *event, const char *line, size_t len) {
        if (!b->log)
                return;
        if (vmgr_token_bucket_take(&b->bucket, len + LINE_OVERHEAD, monotonic_usec(event))) {
                group_log_append(b->log, b->vm, b->source, line, len);
                return;
        }
        b->dropped_bytes += len + 1;
        b->dropped_lines++;
        if (!b->notice)
                (void) sd_event_add_time_relative(event, &b->notice, CLOCK_MONOTONIC, DROP_NOTICE_USEC, 0,
                                                  on_budget_notice, b);
}

static void console_line(const char *line, size_t len, void *userdata) {
        ConsoleFollower *c = userdata;

        /* Before the budget: a guest that floods its console must not hide a
         * line the VM's owner waits for. */
        if (c->line_handler)
                c->line_handler(line, len, c->line_userdata);
        budget_append(&c->console, c->event, line, len);
}

void console_follower_set_line_handler(ConsoleFollower *c, console_line_handler_t handler, void *userdata) {
        if (!c)
                return;
        c->line_handler = handler;
        c->line_userdata = userdata;
}

void console_follower_guest_line(ConsoleFollower *c, const char *text, size_t len) {
        char line[VMGR_LINE_MAX];

        if (!c)
                return;
        /* The agent escapes control characters, but a guest need not run it. */
        len = MIN(len, sizeof(line));
        memcpy(line, text, len);
        len = vmgr_line_strip(line, len);
        budget_append(&c->guest, c->event, line, len);
}

/* The console file passed its cap: keep its content as PATH.1 (replacing
 * the one before) and truncate it; QEMU appends (O_APPEND), so it goes on
 * writing at the new end. Bytes written in the instant between the copy and
 * the truncation are lost, as with any copy-and-truncate rotation. */
static void console_rotate(ConsoleFollower *c) {
        _cleanup_close_ int out = -EBADF;
        struct stat st;
        loff_t off = 0;

        if (fstat(c->fd, &st) < 0)
                return;
        out = open(c->rotated_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        while (out >= 0 && off < st.st_size) {
                ssize_t n = copy_file_range(c->fd, &off, out, NULL, (size_t) (st.st_size - off), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* what was copied stays; the rest is lost with the truncation */
        }
        if (ftruncate(c->fd, 0) < 0) {
                log_warning_errno(errno, "Cannot truncate %s: %m", c->path);
                return;
        }
        (void) lseek(c->fd, 0, SEEK_SET);
}

static bool console_read_some(ConsoleFollower *c, bool bounded);

/* Record how far the group's log has the console: the start of the line
 * not yet complete. A vmgrd that starts after a crash or a re-exec goes on
 * from there, so no line is lost or repeated (but for a crash between the
 * append to the group's log and this write: then the lines of that one
 * read come again). */
static void console_offset_save(ConsoleFollower *c) {
        off_t pos = lseek(c->fd, 0, SEEK_CUR);
        char text[32];
        uint64_t off;
        int n;

        if (c->offset_fd < 0 || pos < 0)
                return;
        off = (uint64_t) pos > c->split.len ? (uint64_t) pos - c->split.len : 0;
        if (off == c->offset_saved)
                return;
        n = snprintf(text, sizeof(text), "%020" PRIu64 "\n", off);
        if (pwrite(c->offset_fd, text, (size_t) n, 0) == n)
                c->offset_saved = off;
}

/* Where to start reading: what PATH.offset says, if the file is that long. */
static void console_offset_restore(ConsoleFollower *c) {
        char text[32] = "";
        struct stat st;
        uint64_t off;

        if (c->offset_fd < 0 || pread(c->offset_fd, text, sizeof(text) - 1, 0) <= 0 ||
            sscanf(text, "%" SCNu64, &off) != 1 || fstat(c->fd, &st) < 0 || off > (uint64_t) st.st_size)
                return;
        if (lseek(c->fd, (off_t) off, SEEK_SET) >= 0)
                c->offset_saved = off;
}

/* Read what was appended; with bounded, at most CONSOLE_READ_MAX. Returns
 * true if it stopped before the end of the file. */
static bool console_read(ConsoleFollower *c, bool bounded) {
        bool more = console_read_some(c, bounded);

        console_offset_save(c);
        return more;
}

static bool console_read_some(ConsoleFollower *c, bool bounded) {
        char buf[16384];
        size_t total = 0;
        struct stat st;
        off_t pos = lseek(c->fd, 0, SEEK_CUR);

        if (fstat(c->fd, &st) >= 0 && pos >= 0) {
                /* Truncated (not by vmgrd, but it can be): start over. */
                if (st.st_size < pos) {
                        (void) lseek(c->fd, 0, SEEK_SET);
                        c->split.len = 0;
                } else if ((uint64_t) (st.st_size - pos) > 2 * c->console_max) {
                        /* Written faster than read, far beyond the cap: what
                         * was not read yet would be over the rate limit
                         * anyway; skip it, count it, and rotate. */
                        c->console.dropped_bytes += (uint64_t) (st.st_size - pos);
                        c->console.dropped_lines++;
                        if (!c->console.notice)
                                (void) sd_event_add_time_relative(c->event, &c->console.notice, CLOCK_MONOTONIC,
                                                                  DROP_NOTICE_USEC, 0, on_budget_notice,
                                                                  &c->console);
                        console_rotate(c);
                        return true;
                }
        }
        while (!bounded || total < CONSOLE_READ_MAX) {
                ssize_t n = read(c->fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return false;
                vmgr_line_feed(&c->split, buf, (size_t) n, console_line, c);
                total += (size_t) n;
        }
        return true;
}

static void console_schedule(ConsoleFollower *c, uint64_t delay_usec) {
        (void) sd_event_source_set_enabled(c->inotify, SD_EVENT_OFF);
        (void) sd_event_source_set_time_relative(c->timer, delay_usec);
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
}

static int on_console_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ConsoleFollower *c = userdata;
        struct stat st;

        if (console_read(c, true)) {
                console_schedule(c, 0); /* more is there: the next turn of the loop */
                return 0;
        }
        /* All read: rotate now if it is past its cap. */
        if (fstat(c->fd, &st) >= 0 && (uint64_t) st.st_size > c->console_max)
                console_rotate(c);
        (void) sd_event_source_set_enabled(c->inotify, SD_EVENT_ON);
        return 0;
}

static int on_console_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ConsoleFollower *c = userdata;
        char buf[4096];

        /* What the events say does not matter, only that there were some. */
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
        console_schedule(c, CONSOLE_COALESCE_USEC);
        return 0;
}

int console_follower_new(sd_event *event, GroupLog *l, const char *vm, const char *path,
                         const GroupLogLimits *limits, ConsoleFollower **ret) {
        ConsoleFollower *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->log = l;
        c->event = sd_event_ref(event);
        c->inotify_fd = -EBADF;
        c->fd = -EBADF;
        c->offset_fd = -EBADF;
        c->console_max = limits->console_max;
        c->vm = strdup(vm);
        c->path = strdup(path);
        if (!c->vm || !c->path || asprintf(&c->rotated_path, "%s.1", path) < 0) {
                c->rotated_path = NULL;
                console_follower_free(c);
                return -ENOMEM;
        }
        budget_init(&c->console, l, c->vm, GROUP_LOG_CONSOLE, "console output", limits, monotonic_usec(event));
        budget_init(&c->guest, l, c->vm, GROUP_LOG_GUEST, "guest log lines", limits, monotonic_usec(event));
        /* Read and write: vmgrd truncates it when it passes its cap. */
        c->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (c->fd < 0) {
                r = -errno;
                console_follower_free(c);
                return r;
        }
        {
                _cleanup_free_ char *offset_path = NULL;

                if (asprintf(&offset_path, "%s.offset", path) >= 0)
                        c->offset_fd = open(offset_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                console_offset_restore(c);
        }
        c->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (c->inotify_fd < 0 || inotify_add_watch(c->inotify_fd, path, IN_MODIFY) < 0) {
                r = -errno;
                console_follower_free(c);
                return r;
        }
        r = sd_event_add_io(event, &c->inotify, c->inotify_fd, EPOLLIN, on_console_inotify, c);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &c->timer, CLOCK_MONOTONIC, 0, 0, on_console_timer, c);
        if (r < 0) {
                console_follower_free(c);
                return r;
        }
        /* What is there already, on the next turn of the loop. */
        console_schedule(c, 0);
        *ret = c;
        return 0;
}

void console_follower_sync(ConsoleFollower *c) {
        if (c)
                (void) console_read(c, false);
}

ConsoleFollower *console_follower_free(ConsoleFollower *c) {
        if (!c)
                return NULL;
        /* Its owner is going away: the last lines go to the log only. */
        c->line_handler = NULL;
        if (c->fd >= 0 && c->log) {
                (void) console_read(c, false);
                vmgr_line_flush(&c->split, console_line, c);
        }
        budget_done(&c->console);
        budget_done(&c->guest);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->inotify);
        safe_close(c->inotify_fd);
        safe_close(c->offset_fd);
        safe_close(c->fd);
        sd_event_unref(c->event);
        free(c->vm);
        free(c->path);
        free(c->rotated_path);
        free(c);
        return NULL;
}
