/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
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

/* What a follower reads from the file at once: many lines, always at least
 * one whole line (a line is at most VMGR_LINE_MAX plus its prefix). */
#define FOLLOW_CHUNK (64U * 1024U)
/* A VM name and a source, in brackets. */
#define PREFIX_MAX 128
/* Console bytes read per wake-up, so that one chatty VM cannot hold the loop. */
#define CONSOLE_READ_MAX (256U * 1024U)

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

struct ConsoleFollower {
        GroupLog *log;
        sd_event *event;
        char *vm;
        int fd;                         /* the console file */
        int inotify_fd;
        sd_event_source *inotify;       /* off while a read is scheduled */
        sd_event_source *timer;         /* the scheduled read */
        struct vmgr_line_splitter split;
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

                if (follower_wants(f, f->buf + i, len)) {
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

int group_log_follow(GroupLog *l, int fd, char *const *vms, GroupLogSource sources, bool from_start, bool follow) {
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

static void console_line(const char *line, size_t len, void *userdata) {
        ConsoleFollower *c = userdata;

        group_log_append(c->log, c->vm, GROUP_LOG_CONSOLE, line, len);
}

/* Read what was appended; with bounded, at most CONSOLE_READ_MAX. Returns
 * true if it stopped before the end of the file. */
static bool console_read(ConsoleFollower *c, bool bounded) {
        char buf[16384];
        size_t total = 0;
        struct stat st;

        /* Truncated (not by vmgrd, but it can be): start over. */
        if (fstat(c->fd, &st) >= 0 && (uint64_t) st.st_size < (uint64_t) lseek(c->fd, 0, SEEK_CUR)) {
                (void) lseek(c->fd, 0, SEEK_SET);
                c->split.len = 0;
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

        if (console_read(c, true))
                console_schedule(c, 0); /* more is there: the next turn of the loop */
        else
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

int console_follower_new(sd_event *event, GroupLog *l, const char *vm, const char *path, ConsoleFollower **ret) {
        ConsoleFollower *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->log = l;
        c->event = sd_event_ref(event);
        c->inotify_fd = -EBADF;
        c->vm = strdup(vm);
        c->fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (!c->vm || c->fd < 0) {
                r = c->vm ? -errno : -ENOMEM;
                console_follower_free(c);
                return r;
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
        if (c->fd >= 0 && c->log) {
                (void) console_read(c, false);
                vmgr_line_flush(&c->split, console_line, c);
        }
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->inotify);
        safe_close(c->inotify_fd);
        safe_close(c->fd);
        sd_event_unref(c->event);
        free(c->vm);
        free(c);
        return NULL;
}
