/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * logs, group collect and group show --timings: a group's log stream, its
 * evidence bundle and its stage timings.
 */

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

/* FollowLogs' lines, each VM's prefix in its own colour on a terminal;
 * *lines counts the lines printed. */
static int print_stream(int fd, bool colour, uint64_t *lines) {
        static const char *const colours[] = { "\033[32m", "\033[34m", "\033[35m", "\033[36m", "\033[33m", "\033[31m" };
        _cleanup_fclose_ FILE *f = fdopen(fd, "re");
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        ssize_t n;

        if (!f) {
                int r = -errno;
                close(fd);
                return log_error_errno(errno_generic(r), "cannot read the log stream: %m");
        }
        while ((n = getline(&line, &size, f)) > 0) {
                const char *end = memchr(line, ']', (size_t) n);

                if (!colour || line[0] != '[' || !end) {
                        fputs(line, stdout);
                } else {
                        const char *c = "\033[1m"; /* vmgrd's own lines */
                        if (strncmp(line, "[vm=", 4) == 0) {
                                const char *space = memchr(line, ' ', (size_t) (end - line));
                                unsigned h = 5381;
                                for (const char *p = line + 4; p < (space ?: end); p++)
                                        h = h * 33 + (unsigned char) *p;
                                c = colours[h % ELEMENTSOF(colours)];
                        }
                        printf("%s%.*s\033[0m%s", c, (int) (end - line + 1), line, end + 1);
                }
                if (fflush(stdout) != 0)
                        return errno == EPIPE ? 0 : log_error_errno(errno_generic(-errno), "cannot write: %m");
                (*lines)++;
        }
        return 0;
}

/* The stream ended: was vmgrd replaced (a re-exec, a restart after a
 * crash: another owner of its name within REFOLLOW_WAIT_USEC) with the
 * group adopted, rather than the group deleted or vmgrd stopped? The bus
 * may name the dead vmgrd as the owner for a moment after the stream ended. */
#define REFOLLOW_WAIT_USEC (10ULL * 1000000ULL)
static bool vmgrd_replaced(sd_bus *bus, const char *before, const char *group) {
        char now[256];

        for (uint64_t waited = 0; waited < REFOLLOW_WAIT_USEC; waited += 50000) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                bool exists, deleted;

                bus_name_owner(bus, now, sizeof(now));
                if (*now) {
                        /* Any other error: the owner is going away. */
                        exists = sd_bus_call_method(bus, VMGR_BUS_NAME, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE,
                                                    "GetGroup", &error, NULL, "s", group) >= 0;
                        deleted = sd_bus_error_has_name(&error, VMGR_ERROR_NO_SUCH_GROUP);
                        if (deleted)
                                return false;
                        /* The new vmgrd claims its name once it adopted its groups. */
                        if (exists && !streq(now, before))
                                return true;
                }
                (void) usleep(50000);
        }
        return false;
}

/* FollowLogs on path, leaving out the first skip lines; *ret is the stream. */
static int follow_logs(sd_bus *bus, const char *path, const char *vm, bool follow, uint64_t skip, int *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        int fd, r;

        r = sd_bus_message_new_method_call(bus, &call, VMGR_BUS_NAME, path, VMGR_GROUP_INTERFACE, "FollowLogs");
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(call, "{sv}", "follow", "b", follow);
        if (r >= 0 && vm)
                r = sd_bus_message_append(call, "{sv}", "vms", "as", 1, vm);
        if (r >= 0 && skip > 0)
                r = sd_bus_message_append(call, "{sv}", "skip", "t", skip);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0)
                return bus_log_parse_error(r);
        r = sd_bus_call(bus, call, 0, &error, &reply);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0)
                return bus_log_parse_error(r);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return log_error_errno(errno_generic(-errno), "cannot take the log stream: %m");
        *ret = fd;
        return 0;
}

int verb_logs(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *path = NULL;
        const char *vm = n_args > 1 ? args[1] : NULL;
        uint64_t lines = 0;
        char owner[256];
        int fd = -EBADF, r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        if (vm) {
                _cleanup_free_ char *vm_path = NULL;
                r = bus_vm_lookup(bus, args[0], vm, &vm_path); /* says so if there is no such VM */
                if (r < 0)
                        return r;
        }

        for (;;) {
                bus_name_owner(bus, owner, sizeof(owner));
                r = follow_logs(bus, path, vm, o->follow, lines, &fd);
                if (r < 0)
                        return r;
                r = print_stream(fd, isatty(STDOUT_FILENO) > 0, &lines);
                if (r < 0 || !o->follow)
                        return r;
                /* With -f, the stream ends when the group is deleted or
                 * vmgrd stops; and when vmgrd re-executes itself or was
                 * restarted after a crash, with the group adopted: then go
                 * on after the lines already printed. */
                if (!vmgrd_replaced(bus, owner, args[0]))
                        return 0;
        }
}

int verb_group_collect(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL, *dir = NULL;
        int r;

        /* vmgrd's working directory is not ours: send an absolute path. */
        if (args[1][0] == '/')
                dir = strdup(args[1]);
        else {
                char cwd[PATH_MAX];
                if (!getcwd(cwd, sizeof(cwd)))
                        return log_error_errno(errno_generic(-errno), "cannot find the current directory: %m");
                if (asprintf(&dir, "%s/%s", cwd, args[1]) < 0)
                        dir = NULL;
        }
        if (!dir)
                return log_error_errno(-ENOMEM, "%m");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        r = bus_call_method(bus, path, VMGR_GROUP_INTERFACE, "Collect", BUS_LONG_TIMEOUT_USEC, &error, NULL, "s",
                            dir);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        if (!o->quiet)
                printf("%s\n", dir);
        return 0;
}

/* One Timings dict as a JSON object. */
static int read_timings(sd_bus *bus, const char *path, const char *interface, struct json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct json_object *o;
        const char *stage;
        uint64_t usec;
        int r;

        r = sd_bus_get_property(bus, VMGR_BUS_NAME, path, interface, "Timings", &error, &reply, "a{st}");
        if (r < 0)
                return bus_log_error(bus, &error, r);
        o = json_object_new_object();
        if (!o)
                return log_error_errno(-ENOMEM, "%m");
        r = sd_bus_message_enter_container(reply, 'a', "{st}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{st}", &stage, &usec)) > 0)
                json_object_object_add(o, stage, json_object_new_int64((int64_t) usec));
        if (r < 0) {
                json_object_put(o);
                return bus_log_parse_error(r);
        }
        *ret = o;
        return 0;
}

static void print_ms(struct json_object *timings, const char *stage, int width) {
        struct json_object *v;

        if (json_object_object_get_ex(timings, stage, &v))
                printf("  %*.1f", width, (double) json_object_get_int64(v) / 1000.0);
        else
                printf("  %*s", width, "-");
}

int verb_group_timings(char **args, size_t n_args, const struct ctl_options *o) {
        static const char *const group_stages[] = { "network_created", "dnsmasq_ready", "vms_started", "running" };
        static const char *const vm_stages[] = { "qemu_started",    "restored",     "agent_connected",
                                                 "identity_applied", "ipv6_configured", "ipv4_leased",
                                                 "probe_passed",    "host_probe_passed", "console_matched",
                                                 "ready" };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *all = NULL, *vms = NULL;
        struct json_object *group_timings = NULL;
        _cleanup_free_ char *path = NULL;
        const char *vm_path;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        all = json_object_new_object();
        vms = json_object_new_object();
        if (!all || !vms)
                return log_error_errno(-ENOMEM, "%m");
        r = read_timings(bus, path, VMGR_GROUP_INTERFACE, &group_timings);
        if (r < 0)
                return r;
        json_object_object_add(all, "group", group_timings);

        r = sd_bus_get_property(bus, VMGR_BUS_NAME, path, VMGR_GROUP_INTERFACE, "VMs", &error, &reply, "ao");
        if (r < 0)
                return bus_log_error(bus, &error, r);
        r = sd_bus_message_enter_container(reply, 'a', "o");
        while (r >= 0 && (r = sd_bus_message_read(reply, "o", &vm_path)) > 0) {
                _cleanup_free_ char *name = NULL;
                struct json_object *t;

                if (bus_vm_path_name(vm_path, &name) < 0)
                        return log_error_errno(-ENOMEM, "%m");
                r = read_timings(bus, vm_path, VMGR_VM_INTERFACE, &t);
                if (r < 0)
                        return r;
                json_object_object_add(vms, name, t);
        }
        if (r < 0)
                return bus_log_parse_error(r);

        if (o->json) {
                json_object_object_add(all, "vms", json_object_get(vms));
                r = output_json(all);
                return r < 0 ? log_error_errno(r, "%m") : 0;
        }

        /* Milliseconds: the group's since CreateGroup, each VM's since it was (last) started. */
        if (!o->quiet) {
                printf("%-8s", "GROUP");
                for (size_t i = 0; i < ELEMENTSOF(group_stages); i++)
                        printf("  %15s", group_stages[i]);
                printf("\n");
        }
        printf("%-8s", args[0]);
        for (size_t i = 0; i < ELEMENTSOF(group_stages); i++)
                print_ms(group_timings, group_stages[i], 15);
        printf("\n\n");
        if (!o->quiet) {
                printf("%-8s", "VM");
                for (size_t i = 0; i < ELEMENTSOF(vm_stages); i++)
                        printf("  %17s", vm_stages[i]);
                printf("\n");
        }
        json_object_object_foreach(vms, name, t) {
                printf("%-8s", name);
                for (size_t i = 0; i < ELEMENTSOF(vm_stages); i++)
                        print_ms(t, vm_stages[i], 17);
                printf("\n");
        }
        if (!o->quiet)
                printf("\n(ms: the group's since it was created, a VM's since it was last started)\n");
        return 0;
}
