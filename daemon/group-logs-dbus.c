/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The bus face of a group's logs and evidence: FollowLogs, Collect and the
 * Timings property (docs/dbus-api.md).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-error.h"
#include "bus-util.h"
#include "collect.h"
#include "group.h"
#include "grouplog.h"
#include "log.h"
#include "vm.h"

static const char *group_stage_name(unsigned s) {
        return group_stage_to_string((GroupStage) s);
}

int group_property_get_timings(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;

        return bus_append_timings(reply, g->timings, _GROUP_STAGE_MAX, group_stage_name);
}

/* FollowLogs' options, read from an a{sv}. */
typedef struct FollowOptions {
        char **vms;
        GroupLogSource sources;
        bool from_start, follow;
} FollowOptions;

static int read_follow_options(sd_bus_message *m, Group *g, FollowOptions *o, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;
                int b;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "vms") || streq(key, "sources")) {
                        char **l = NULL;

                        r = sd_bus_message_enter_container(m, 'v', "as");
                        if (r < 0)
                                return vmgr_bus_error_set(error, -EINVAL, "option %s must be an array of strings",
                                                          key);
                        r = sd_bus_message_read_strv(m, &l);
                        if (r < 0)
                                return r;
                        if (streq(key, "vms")) {
                                strv_free(o->vms);
                                o->vms = l;
                                for (char **v = l; v && *v; v++)
                                        if (!group_find_vm(g, *v))
                                                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM,
                                                                          "group '%s' has no VM '%s'", g->name, *v);
                        } else {
                                o->sources = 0;
                                for (char **s = l; s && *s; s++) {
                                        GroupLogSource f = group_log_source_from_string(*s);
                                        if (!f) {
                                                r = vmgr_bus_error_set(error, -EINVAL,
                                                                       "unknown source \"%s\" (known: console, guest, vmgrd)",
                                                                       *s);
                                                strv_free(l);
                                                return r;
                                        }
                                        o->sources |= f;
                                }
                                strv_free(l);
                                if (!o->sources)
                                        return vmgr_bus_error_set(error, -EINVAL, "sources must not be empty");
                        }
                } else if (streq(key, "from_start") || streq(key, "follow")) {
                        r = sd_bus_message_enter_container(m, 'v', "b");
                        if (r < 0)
                                return vmgr_bus_error_set(error, -EINVAL, "option %s must be a boolean", key);
                        r = sd_bus_message_read(m, "b", &b);
                        if (r < 0)
                                return r;
                        if (streq(key, "from_start"))
                                o->from_start = b;
                        else
                                o->follow = b;
                } else
                        return vmgr_bus_error_set(error, -EINVAL,
                                                  "unknown option \"%s\" (known: vms, sources, from_start, follow)", key);
                r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int group_method_follow_logs(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        FollowOptions o = { .sources = GROUP_LOG_ALL, .from_start = true, .follow = true };
        _cleanup_close_ int read_end = -EBADF;
        int fds[2], r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        r = read_follow_options(m, g, &o, error);
        if (r < 0)
                goto out;
        if (!g->log || g->state == GROUP_DELETING) {
                r = vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "group '%s' is %s", g->name,
                                       group_state_to_string(g->state));
                goto out;
        }
        if (pipe2(fds, O_CLOEXEC) < 0) {
                r = vmgr_bus_error_set(error, -errno, "cannot make a pipe: %m");
                goto out;
        }
        read_end = fds[0];
        r = group_log_follow(g->log, fds[1], o.vms, o.sources, o.from_start, o.follow);
        if (r < 0) {
                r = vmgr_bus_error_set(error, r, "cannot follow the log: %s", strerror(-r));
                goto out;
        }
        r = sd_bus_reply_method_return(m, "h", read_end);
out:
        strv_free(o.vms);
        return r;
}
