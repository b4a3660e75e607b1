/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Verbs that go through a VM's guest agent: exec (streams, exit status),
 * cp (either direction) and wait (for readiness, showing each stage).
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-util.h"
#include "copy-local.h"
#include "macro.h"
#include "fd-util.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

#define EXEC_WAIT_TIMEOUT_USEC UINT64_MAX

/* Copy our stdin to the process's and its stdout/stderr to ours until both
 * outputs end. Our stdin is dropped (not waited for) once they have. */
static int exec_pump(int in_fd, int out_fd, int err_fd) {
        static char inbuf[65536], buf[65536];
        size_t in_len = 0, in_off = 0;
        bool stdin_open = true;
        int r;

        if (fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK) < 0)
                return -errno;
        while (out_fd >= 0 || err_fd >= 0) {
                struct pollfd p[4] = {
                        { .fd = stdin_open && in_len == 0 ? STDIN_FILENO : -1, .events = POLLIN },
                        { .fd = in_len > 0 ? in_fd : -1, .events = POLLOUT },
                        { .fd = out_fd, .events = POLLIN },
                        { .fd = err_fd, .events = POLLIN },
                };

                if (poll(p, 4, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[0].revents) {
                        ssize_t k = read(STDIN_FILENO, inbuf, sizeof(inbuf));
                        if (k <= 0) {
                                stdin_open = false;
                                in_fd = safe_close(in_fd); /* EOF for the process */
                        } else {
                                in_len = (size_t) k;
                                in_off = 0;
                        }
                }
                if (p[1].revents) {
                        ssize_t k = write(in_fd, inbuf + in_off, in_len - in_off);
                        if (k < 0 && errno != EAGAIN && errno != EINTR) {
                                /* The process stopped reading: drop our input. */
                                stdin_open = false;
                                in_fd = safe_close(in_fd);
                                in_len = 0;
                        } else if (k > 0) {
                                in_off += (size_t) k;
                                if (in_off == in_len)
                                        in_len = 0;
                        }
                }
                for (int i = 2; i < 4; i++) {
                        int *fd = i == 2 ? &out_fd : &err_fd;
                        ssize_t k;

                        if (!p[i].revents)
                                continue;
                        k = read(*fd, buf, sizeof(buf));
                        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (k <= 0) {
                                *fd = safe_close(*fd);
                                continue;
                        }
                        r = vmgr_write_all(i == 2 ? STDOUT_FILENO : STDERR_FILENO, buf, (size_t) k);
                        if (r < 0)
                                *fd = safe_close(*fd); /* our reader went away: stop copying */
                }
        }
        safe_close(in_fd);
        return 0;
}

int verb_exec(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL, *wait_reply = NULL;
        _cleanup_free_ char *path = NULL, *process_path = NULL;
        const char *process;
        int fds[3], dups[3] = { -EBADF, -EBADF, -EBADF }, status, sig, r;

        (void) signal(SIGPIPE, SIG_IGN);
        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_vm_lookup(bus, args[0], args[1], &path);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &call, VMGR_BUS_NAME, path, VMGR_VM_INTERFACE, "Exec");
        if (r >= 0)
                r = sd_bus_message_append_strv(call, args + 2);
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "{sv}");
        if (r >= 0 && o->n_env > 0) {
                r = sd_bus_message_open_container(call, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(call, "s", "env");
                if (r >= 0)
                        r = sd_bus_message_open_container(call, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(call, o->env);
                if (r >= 0)
                        r = sd_bus_message_close_container(call);
                if (r >= 0)
                        r = sd_bus_message_close_container(call);
        }
        if (r >= 0 && o->cwd)
                r = sd_bus_message_append(call, "{sv}", "cwd", "s", o->cwd);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0)
                return log_error_errno(-EINVAL, "cannot build the call (arguments must be UTF-8)");
        r = sd_bus_call(bus, call, 0, &error, &reply);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        r = sd_bus_message_read(reply, "hhho", &fds[0], &fds[1], &fds[2], &process);
        if (r < 0)
                return bus_log_parse_error(r);
        for (int i = 0; i < 3; i++) {
                dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (dups[i] < 0) {
                        r = -errno;
                        for (int j = 0; j < i; j++)
                                safe_close(dups[j]);
                        return log_error_errno(r, "cannot take the process's pipes: %m");
                }
        }
        /* The reply holds the pipe ends too: drop it, or the process never sees EOF on stdin. */
        process_path = strdup(process);
        if (!process_path) {
                for (int i = 0; i < 3; i++)
                        safe_close(dups[i]);
                return log_error_errno(-ENOMEM, "%m");
        }
        reply = sd_bus_message_unref(reply);
        r = exec_pump(dups[0], dups[1], dups[2]);
        if (r < 0)
                return log_error_errno(r, "copying the process's streams failed: %m");

        r = bus_call_method(bus, process_path, "org.vmgr1.Process", "Wait", EXEC_WAIT_TIMEOUT_USEC, &error, &wait_reply,
                            "");
        if (r < 0)
                return bus_log_error(bus, &error, r);
        r = sd_bus_message_read(wait_reply, "ii", &status, &sig);
        if (r < 0)
                return bus_log_parse_error(r);
        /* The process's status is ours, as with ssh: 128+N when signal N killed it. */
        if (sig > 0)
                return 128 + sig;
        return status;
}

/* Splits "GROUP/VM:/path". Returns true and points into s (which it modifies). */
static bool split_remote(char *s, char **group, char **vm, char **path) {
        char *slash = strchr(s, '/'), *colon = strstr(s, ":/");

        if (!slash || !colon || slash > colon || slash == s || colon == slash + 1)
                return false;
        *slash = 0;
        *colon = 0;
        *group = s;
        *vm = slash + 1;
        *path = colon + 1;
        return true;
}

int verb_cp(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL, *src = strdup(args[0]), *dst = strdup(args[1]);
        _cleanup_close_ int fd = -EBADF;
        char *group, *vm, *remote;
        bool to_guest;
        int r;

        if (!src || !dst)
                return log_error_errno(-ENOMEM, "%m");
        if (split_remote(dst, &group, &vm, &remote))
                to_guest = true;
        else if (split_remote(src, &group, &vm, &remote))
                to_guest = false;
        else
                return log_error_errno(-ERRNO_USAGE, "one of the two must be GROUP/VM:/PATH; usage: vmgrctl cp SRC DST");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_vm_lookup(bus, group, vm, &path);
        if (r < 0)
                return r;

        if (to_guest) {
                struct stat st;

                fd = open(args[0], O_RDONLY | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0) {
                        r = -errno;
                        return log_error_reason(r == -ENOENT ? -ENOENT : -EIO, r, "cannot read %s: %m", args[0]);
                }
                r = bus_call_method(bus, path, VMGR_VM_INTERFACE, "CopyTo", EXEC_WAIT_TIMEOUT_USEC, &error, &reply,
                                    "hsu", fd, remote, (uint32_t) (st.st_mode & 07777));
                if (r < 0)
                        return bus_log_error(bus, &error, r);
                return 0;
        }

        int in;

        r = bus_call_method(bus, path, VMGR_VM_INTERFACE, "CopyFrom", BUS_LONG_TIMEOUT_USEC, &error, &reply, "s",
                            remote);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        r = sd_bus_message_read(reply, "h", &in);
        if (r < 0)
                return bus_log_parse_error(r);
        return copy_to_local(in, args[1]);
}

/* Prints the stages of the VM at path that are not in *shown yet. */
static void wait_show_stages(sd_bus *bus, const char *path, char **shown) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *name = NULL;
        const char *stage;
        uint64_t usec;

        if (sd_bus_get_property(bus, VMGR_BUS_NAME, path, VMGR_VM_INTERFACE, "Timings", NULL, &reply, "a{st}") < 0 ||
            sd_bus_message_enter_container(reply, 'a', "{st}") < 0 || bus_vm_path_name(path, &name) < 0)
                return;
        while (sd_bus_message_read(reply, "{st}", &stage, &usec) > 0) {
                char key[512];
                snprintf(key, sizeof(key), " %s:%s ", name, stage);
                if (*shown && strstr(*shown, key))
                        continue;
                printf("%-12s %-16s %8.3f s\n", name, stage, (double) usec / 1e6);
                fflush(stdout);
                char *n = NULL;
                if (asprintf(&n, "%s%s", *shown ?: " ", key + 1) >= 0) {
                        free(*shown);
                        *shown = n;
                }
        }
}

struct wait_state {
        bool done;
        int r;
        sd_bus_error error;
        const char *prefix;
        char *shown;
        bool verbose;
};

static int on_wait_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct wait_state *w = userdata;

        w->done = true;
        if (sd_bus_message_is_method_error(m, NULL)) {
                w->r = -sd_bus_message_get_errno(m) ?: -EIO;
                sd_bus_error_copy(&w->error, sd_bus_message_get_error(m));
        }
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct wait_state *w = userdata;
        const char *path = sd_bus_message_get_path(m);

        if (w->verbose && path && strncmp(path, w->prefix, strlen(w->prefix)) == 0 && strstr(path, "/vm/") &&
            !strstr(path, "/process/"))
                wait_show_stages(sd_bus_message_get_bus(m), path, &w->shown);
        return 0;
}

int verb_wait(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_free_ char *path = NULL;
        struct wait_state w = { .error = SD_BUS_ERROR_NULL, .verbose = isatty(STDOUT_FILENO) };
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = n_args > 1 ? bus_vm_lookup(bus, args[0], args[1], &path) : bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        w.prefix = path;
        r = sd_bus_match_signal(bus, NULL, VMGR_BUS_NAME, NULL, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                on_properties_changed, &w);
        if (r < 0)
                return log_error_reason(-EIO, r, "cannot watch vmgrd's signals: %m");
        r = sd_bus_message_new_method_call(bus, &call, VMGR_BUS_NAME, path,
                                           n_args > 1 ? VMGR_VM_INTERFACE : VMGR_GROUP_INTERFACE, "WaitReady");
        if (r >= 0)
                r = sd_bus_message_append(call, "t", o->timeout_usec);
        /* vmgrd answers within the timeout we asked for; the bus's own one is a little longer. */
        if (r >= 0)
                r = sd_bus_call_async(bus, NULL, call, on_wait_reply, &w,
                                      o->timeout_usec > 0 ? o->timeout_usec + UINT64_C(10000000) : UINT64_MAX);
        if (r < 0)
                return log_error_reason(-EIO, r, "cannot call WaitReady: %m");
        while (!w.done) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return bus_log_error(bus, &w.error, r);
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return log_error_errno(-EIO, "lost the bus");
        }
        free(w.shown);
        if (w.r < 0) {
                r = bus_log_error(bus, &w.error, w.r);
                sd_bus_error_free(&w.error);
                return r;
        }
        if (w.verbose)
                printf("ready\n");
        return 0;
}
