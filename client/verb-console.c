/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* vmgrctl console GROUP VM [-f] [--lines N]: prints a VM's console log,
 * read-only, straight from the file vmgrd names in ConsoleLog (it belongs to
 * the user vmgrd runs as, who is the one allowed to use vmgrctl). The file
 * grows across restarts of the VM; with -f it is followed like "tail -F":
 * through inotify, across the file being rotated or recreated, until the VM
 * object disappears (or vmgrd leaves the bus) or a signal stops it.
 *
 * On a terminal the guest's bytes must not drive the terminal: ESC, the
 * other C0 controls but \n and \t, DEL and the UTF-8 encoded C1 controls
 * (U+0080..U+009F, which some terminals honour as CSI and the like) are
 * shown in cat -v's caret notation: ^[ ^G ^? M-^[. A serial console ends
 * lines with CR LF; CRs right before a LF are dropped, any other CR shows as
 * ^M. Redirected to a file or pipe, the bytes are copied unchanged. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

#define CONSOLE_READ_SIZE (64 * 1024)
/* How often to look for the VM's directory while it does not exist (a VM
 * that was never started has none). */
#define CONSOLE_RETRY_USEC (UINT64_C(1000000))

/* CRs held back in case a LF follows: "\r\n" and "\r\r\n" (a program's
 * CR LF through a tty's ONLCR) are line ends; beyond that a CR shows. */
#define CONSOLE_PENDING_CR_MAX 2
/* The filter writes at most this much per byte read, plus this much once. */
#define FILTER_OUT_SIZE(n) (4 * (n) + 16)

/* What the terminal filter carries from one read to the next. */
struct console_filter {
        unsigned pending_cr;    /* CRs that may yet turn out to end a line */
        bool pending_c2;        /* a 0xC2 byte that may start a C1 control */
};

struct console {
        const char *group, *vm;
        char *vm_path, *group_path;
        char *log_path, *dir, *base;    /* ConsoleLog, its directory and file name */

        int fd;                         /* the console file we read, -EBADF if none yet */
        dev_t dev;
        ino_t ino;
        off_t offset;                   /* how far it was printed */

        bool terminal;                  /* filter for a terminal */
        struct console_filter filter;
        char *in, *out;                 /* read buffer and filtered output */

        sd_event *event;
        sd_event_source *dir_watch, *file_watch, *retry;
        dev_t dir_dev;                  /* the directory dir_watch watches */
        ino_t dir_ino;
        int result;                     /* what the follow loop ended with */
        int signal;                     /* the signal that ended it, or 0 */
};

static void console_done(struct console *c) {
        sd_event_source_disable_unref(c->dir_watch);
        sd_event_source_disable_unref(c->file_watch);
        sd_event_source_disable_unref(c->retry);
        sd_event_unref(c->event);
        safe_close(c->fd);
        free(c->vm_path);
        free(c->group_path);
        free(c->log_path);
        free(c->dir);
        free(c->base);
        free(c->in);
        free(c->out);
}

/* Appends the visible form of control character b (cat -v's), prefix "M-"
 * for a C1 control. Returns the new end of out. */
static char *caret(char *out, unsigned char b, bool c1) {
        if (c1) {
                *out++ = 'M';
                *out++ = '-';
        }
        *out++ = '^';
        *out++ = (char) (b == 0x7f ? '?' : (b & 0x7f) + 0x40);
        return out;
}

/* Filters n bytes for a terminal into out, which has room for
 * FILTER_OUT_SIZE(n) bytes. Returns the number of bytes written. at_end
 * flushes what is pending. */
static size_t filter_terminal(struct console_filter *f, const unsigned char *in, size_t n, char *out, bool at_end) {
        char *p = out;

        for (size_t i = 0; i < n; i++) {
                unsigned char b = in[i];

                if (f->pending_c2) {
                        f->pending_c2 = false;
                        if (b >= 0x80 && b <= 0x9f) {
                                p = caret(p, b, true);
                                continue;
                        }
                        *p++ = (char) 0xc2;
                }
                if (b == '\r') {
                        /* Bounded, so that what a later byte releases stays small. */
                        if (f->pending_cr == CONSOLE_PENDING_CR_MAX)
                                p = caret(p, '\r', false);
                        else
                                f->pending_cr++;
                        continue;
                }
                if (b == '\n')
                        f->pending_cr = 0;
                for (; f->pending_cr > 0; f->pending_cr--)
                        p = caret(p, '\r', false);

                if (b == 0xc2)
                        f->pending_c2 = true;
                else if ((b < 0x20 && b != '\n' && b != '\t') || b == 0x7f)
                        p = caret(p, b, false);
                else
                        *p++ = (char) b;
        }

        if (at_end) {
                for (; f->pending_cr > 0; f->pending_cr--)
                        p = caret(p, '\r', false);
                if (f->pending_c2) {
                        *p++ = (char) 0xc2;
                        f->pending_c2 = false;
                }
        }
        return (size_t) (p - out);
}

/* Writes n bytes of the log to stdout, filtered on a terminal. Returns 0,
 * or -EIO after logging. */
static int console_write(struct console *c, const char *buf, size_t n, bool at_end) {
        if (c->terminal) {
                n = filter_terminal(&c->filter, (const unsigned char *) buf, n, c->out, at_end);
                buf = c->out;
        }
        if (n > 0 && fwrite(buf, 1, n, stdout) != n)
                return output_flush() < 0 ? -EIO : log_error_errno(-EIO, "cannot write to standard output");
        return 0;
}

/* Copies the console file from c->offset to its end. Returns 0, or -errno
 * after logging. */
static int console_copy(struct console *c) {
        for (;;) {
                ssize_t k = read(c->fd, c->in, CONSOLE_READ_SIZE);
                int r;

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno_generic(-errno), "cannot read %s: %m", c->log_path);
                }
                if (k == 0)
                        break;
                c->offset += k;
                r = console_write(c, c->in, (size_t) k, false);
                if (r < 0)
                        return r;
        }
        return output_flush();
}

/* Finds where the last n lines of the open file begin: a LF ends a line,
 * and the file's last line counts even without one. Returns 0 and the
 * offset, or -errno. */
static int tail_offset(int fd, off_t size, unsigned n, off_t *ret) {
        char buf[8192];
        off_t end = size;
        unsigned seen = 0;

        if (n == 0) {
                *ret = size;
                return 0;
        }
        while (end > 0) {
                size_t len = end < (off_t) sizeof(buf) ? (size_t) end : sizeof(buf);
                off_t start = end - (off_t) len;
                ssize_t k = pread(fd, buf, len, start);

                if (k < 0)
                        return -errno;
                if ((size_t) k != len)
                        return -EIO; /* shrank meanwhile: take it from the top */
                for (size_t i = len; i-- > 0;) {
                        if (buf[i] != '\n' || start + (off_t) i == size - 1)
                                continue;
                        if (++seen == n) {
                                *ret = start + (off_t) i + 1;
                                return 0;
                        }
                }
                end = start;
        }
        *ret = 0;
        return 0;
}

static int on_file_changed(sd_event_source *s, const struct inotify_event *event, void *userdata);

/* Opens the console file if it exists, positioned at from_end lines before
 * its end (UINT_MAX: its start). Returns 1 if opened, 0 if there is no file,
 * or -errno after logging. */
static int console_open(struct console *c, unsigned from_end) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        off_t start = 0;
        int r;

        fd = open(c->log_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(errno_generic(-errno), "cannot open the console log %s: %m", c->log_path);
        }
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno_generic(-errno), "cannot read %s: %m", c->log_path);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(-EIO, "the console log %s is not a regular file", c->log_path);

        if (from_end != UINT_MAX && tail_offset(fd, st.st_size, from_end, &start) < 0)
                start = 0;
        if (lseek(fd, start, SEEK_SET) < 0)
                return log_error_errno(errno_generic(-errno), "cannot read %s: %m", c->log_path);

        if (c->event) {
                c->file_watch = sd_event_source_disable_unref(c->file_watch);
                r = sd_event_add_inotify_fd(c->event, &c->file_watch, fd, IN_MODIFY, on_file_changed, c);
                if (r < 0)
                        return log_error_errno(errno_generic(r), "cannot watch %s: %m", c->log_path);
        }

        safe_close(c->fd);
        c->fd = TAKE_FD(fd);
        c->dev = st.st_dev;
        c->ino = st.st_ino;
        c->offset = start;
        return 1;
}

/* Brings the output up to date with the console file: reads what was
 * added, starts over after a truncation, and when the file was replaced
 * (rotated, or the VM's files made anew) finishes the old one and begins the
 * new one from its start. Returns 0, or -errno after logging. */
static int dir_watch_lost(struct console *c);
static int retry_later(struct console *c);

static int console_poll(struct console *c) {
        struct stat st, now, dir;
        int r;

        if (c->fd < 0) {
                r = console_open(c, UINT_MAX);
                if (r <= 0)
                        return r;
                return console_copy(c);
        }

        r = console_copy(c);
        if (r < 0)
                return r;

        if (stat(c->log_path, &now) < 0) {
                /* Renamed away or deleted: whoever writes it may still do so
                 * (a rotation moves it first), so keep reading it until a new
                 * file takes its place. */
                if (errno != ENOENT)
                        return log_error_errno(errno_generic(-errno), "cannot read %s: %m", c->log_path);
                /* Deleted with its directory (the VM's files removed)? The
                 * watch then hears no more: the open file pins the old
                 * directory. Watch for a new one; and since the directory
                 * may go right after this look, look again while the file is
                 * missing. */
                if (c->dir_watch && (stat(c->dir, &dir) < 0 || dir.st_dev != c->dir_dev || dir.st_ino != c->dir_ino))
                        return dir_watch_lost(c);
                return retry_later(c);
        }
        if (now.st_dev != c->dev || now.st_ino != c->ino) {
                /* Replaced: what the old file had is printed; the new one starts at 0. */
                c->file_watch = sd_event_source_disable_unref(c->file_watch);
                c->fd = safe_close(c->fd);
                r = console_open(c, UINT_MAX);
                if (r <= 0)
                        return r;
                return console_copy(c);
        }

        if (fstat(c->fd, &st) >= 0 && st.st_size < c->offset) {
                /* Truncated: all of it is new. */
                if (lseek(c->fd, 0, SEEK_SET) < 0)
                        return log_error_errno(errno_generic(-errno), "cannot read %s: %m", c->log_path);
                c->offset = 0;
                return console_copy(c);
        }
        return 0;
}

/* Ends the follow loop with result r (0, or -errno already logged). */
static void console_stop(struct console *c, int r) {
        if (c->result >= 0)
                c->result = r;
        (void) sd_event_exit(c->event, 0);
}

static int on_file_changed(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        struct console *c = userdata;
        int r;

        r = console_poll(c);
        if (r < 0)
                console_stop(c, r);
        return 0;
}

static int watch_dir(struct console *c);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct console *c = userdata;
        int r;

        c->retry = sd_event_source_disable_unref(c->retry);
        r = c->dir_watch ? console_poll(c) : watch_dir(c);
        if (r < 0)
                console_stop(c, r);
        return 0;
}

/* Looks at the directory and the file again in a second, unless that is
 * already planned. Returns 0, or -errno after logging. */
static int retry_later(struct console *c) {
        int r;

        if (c->retry)
                return 0;
        r = sd_event_add_time_relative(c->event, &c->retry, CLOCK_MONOTONIC, CONSOLE_RETRY_USEC, 0, on_retry, c);
        if (r < 0)
                return log_error_errno(errno_generic(r), "cannot set a timer: %m");
        return 0;
}

/* Stops watching the directory, which is gone, and looks for it again in a
 * second. Returns 0, or -errno after logging. */
static int dir_watch_lost(struct console *c) {
        c->dir_watch = sd_event_source_disable_unref(c->dir_watch);
        return retry_later(c);
}

static int on_dir_changed(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        struct console *c = userdata;
        int r = 0;

        if (event->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
                r = dir_watch_lost(c);
        else if ((event->mask & IN_Q_OVERFLOW) || (event->len > 0 && streq(event->name, c->base)))
                r = console_poll(c);
        if (r < 0)
                console_stop(c, r);
        return 0;
}

/* Watches the console file's directory for the file appearing, being renamed
 * or deleted, or, while the directory does not exist, looks again every
 * second; then catches up with the file. Returns 0, or -errno after logging. */
static int watch_dir(struct console *c) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        /* Opened here, so that the inode watched is the one recorded. */
        fd = open(c->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
                return dir_watch_lost(c);
        if (fd < 0 || fstat(fd, &st) < 0)
                return log_error_errno(errno_generic(-errno), "cannot watch %s: %m", c->dir);

        r = sd_event_add_inotify_fd(c->event, &c->dir_watch, fd,
                                    IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF |
                                            IN_MOVE_SELF,
                                    on_dir_changed, c);
        if (r < 0)
                return log_error_errno(errno_generic(r), "cannot watch %s: %m", c->dir);
        c->dir_dev = st.st_dev;
        c->dir_ino = st.st_ino;
        return console_poll(c);
}

/* InterfacesRemoved from vmgrd's object manager: the VM (or its group) is gone. */
static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct console *c = userdata;
        const char *path;

        if (sd_bus_message_read(m, "o", &path) < 0)
                return 0;
        if (streq(path, c->vm_path) || (c->group_path && streq(path, c->group_path)))
                console_stop(c, 0);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct console *c = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, VMGR_BUS_NAME))
                return 0;
        if (strempty(new_owner))
                console_stop(c, log_error_errno(-ERRNO_UNREACHABLE, "vmgrd left the bus; stopped following VM '%s'",
                                                c->vm));
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct console *c = userdata;

        console_stop(c, log_error_errno(-ERRNO_UNREACHABLE, "lost the connection to the bus; stopped following VM '%s'",
                                        c->vm));
        return 0;
}

/* The reader of our pipe went away (EPOLLERR on the write end): stop now,
 * as the next write would, rather than when the guest next prints. */
static int on_stdout_error(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct console *c = userdata;

        c->signal = SIGPIPE;
        console_stop(c, 0);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct console *c = userdata;

        c->signal = (int) si->ssi_signo;
        console_stop(c, 0);
        return 0;
}

/* Subscribes to what ends following: the VM or group object removed, vmgrd
 * leaving the bus, the bus connection lost. Done before looking the VM up,
 * so that a removal in between is not missed. Returns 0, or -errno after
 * logging. */
static int console_subscribe(struct console *c, sd_bus *bus) {
        int r;

        r = sd_bus_match_signal(bus, NULL, VMGR_BUS_NAME, VMGR_MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                                "InterfacesRemoved", on_interfaces_removed, c);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, c);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                        "Disconnected", on_disconnected, c);
        if (r < 0)
                return bus_log_error(bus, &SD_BUS_ERROR_NULL, r);
        return 0;
}

/* Reads the VM's ConsoleLog property. Returns 0, or -errno after logging. */
static int console_log_path(sd_bus *bus, struct console *c) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char *path = NULL, *slash;
        int r;

        r = sd_bus_get_property_string(bus, VMGR_BUS_NAME, c->vm_path, VMGR_VM_INTERFACE, "ConsoleLog", &error,
                                       &path);
        if (r < 0) {
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                           SD_BUS_ERROR_UNKNOWN_PROPERTY))
                        return log_error_errno(-ERRNO_NOT_FOUND, "group '%s' has no VM '%s'", c->group, c->vm);
                return bus_log_error(bus, &error, r);
        }
        c->log_path = path;
        slash = strrchr(path, '/');
        if (!slash || slash == path || !slash[1])
                return log_error_errno(-EIO, "vmgrd named no usable console log for VM '%s' (\"%s\")", c->vm, path);

        c->dir = strndup(path, (size_t) (slash - path));
        c->base = strdup(slash + 1);
        if (!c->dir || !c->base)
                return log_error_errno(-ENOMEM, "%m");
        return 0;
}

/* Follows the console until the loop ends. Returns 0, or -errno after logging. */
static int console_follow(struct console *c, sd_bus *bus) {
        int r;

        r = sd_bus_attach_event(bus, c->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(errno_generic(r), "cannot run the event loop: %m");
        r = sd_event_add_signal(c->event, NULL, SIGINT, on_signal, c);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGTERM, on_signal, c);
        if (r < 0)
                return log_error_errno(errno_generic(r), "cannot handle signals: %m");
        /* Pipes and terminals report their reader gone; files cannot be
         * watched (EPERM) and need not be. */
        r = sd_event_add_io(c->event, NULL, STDOUT_FILENO, EPOLLERR, on_stdout_error, c);
        if (r < 0 && r != -EPERM)
                return log_error_errno(errno_generic(r), "cannot watch standard output: %m");

        r = watch_dir(c);
        if (r < 0)
                return r;

        r = sd_event_loop(c->event);
        if (r < 0)
                return log_error_errno(errno_generic(r), "event loop failed: %m");
        if (c->result < 0)
                return c->result;

        /* The last words before the VM went away, and what the filter holds. */
        if (c->fd >= 0) {
                r = console_copy(c);
                if (r < 0)
                        return r;
        }
        return 0;
}

int verb_console(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(console_done) struct console c = {
                .group = args[0],
                .vm = args[1],
                .fd = -EBADF,
                .terminal = isatty(STDOUT_FILENO) > 0,
        };
        sigset_t mask;
        int r;

        c.in = malloc(CONSOLE_READ_SIZE);
        c.out = malloc(FILTER_OUT_SIZE(CONSOLE_READ_SIZE));
        if (!c.in || !c.out)
                return log_error_errno(-ENOMEM, "%m");

        if (o->follow) {
                /* sd-event takes signals through a signalfd: block them first. */
                sigemptyset(&mask);
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGTERM);
                if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                        return log_error_errno(errno_generic(-errno), "cannot block signals: %m");
                r = sd_event_new(&c.event);
                if (r < 0)
                        return log_error_errno(errno_generic(r), "cannot run the event loop: %m");
        }

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        if (o->follow) {
                r = console_subscribe(&c, bus);
                if (r < 0)
                        return r;
        }
        r = bus_group_lookup(bus, c.group, &c.group_path);
        if (r < 0)
                return r;
        r = bus_vm_lookup(bus, c.group, c.vm, &c.vm_path);
        if (r < 0)
                return r;
        r = console_log_path(bus, &c);
        if (r < 0)
                return r;

        r = console_open(&c, o->lines_set ? o->lines : UINT_MAX);
        if (r < 0)
                return r;

        if (!o->follow) {
                /* A VM that never started has no console output yet: nothing to print. */
                if (r > 0)
                        r = console_copy(&c);
        } else
                r = console_follow(&c, bus);

        if (r >= 0 && c.terminal)
                r = console_write(&c, NULL, 0, true);
        if (r >= 0)
                r = output_flush();

        if (c.signal > 0) {
                /* Die of the signal, as the shell that sent it expects. */
                signal(c.signal, SIG_DFL);
                sigemptyset(&mask);
                sigaddset(&mask, c.signal);
                (void) sigprocmask(SIG_UNBLOCK, &mask, NULL);
                raise(c.signal);
        }
        return r;
}
