/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.vmgr1.Group on the bus (docs/dbus-api.md): every property and method
 * of a group, at /org/vmgr1/group/NAME through a fallback vtable. Each
 * method checks its caller, reads and checks its arguments, calls the model
 * (group.c, fileserver.c, collect.c, grouplog.c, forward.c, vm-ready.c) and
 * replies, at once or when the model calls back.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-error.h"
#include "bus-util.h"
#include "collect.h"
#include "dnsmasq.h"
#include "fileserver-util.h"
#include "fileserver.h"
#include "forward.h"
#include "group.h"
#include "grouplog.h"
#include "vm.h"

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;

        return sd_bus_message_append(reply, "s", group_state_to_string(g->state));
}

/* The string form of one of the derived addresses, chosen by property name. */
static int property_get_address(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        const struct vmgr_group_addrs *a = &g->addrs;
        char buf[INET6_ADDRSTRLEN + 8];

        if (streq(property, "Bridge"))
                snprintf(buf, sizeof(buf), "%s", a->bridge);
        else if (streq(property, "Prefix6"))
                vmgr_in6_prefix_format(&a->prefix6, 64, buf, sizeof(buf));
        else if (streq(property, "Gateway6"))
                inet_ntop(AF_INET6, &a->gateway6, buf, sizeof(buf));
        else if (streq(property, "Management6"))
                inet_ntop(AF_INET6, &a->management6, buf, sizeof(buf));
        else if (streq(property, "Logs6"))
                inet_ntop(AF_INET6, &a->logs6, buf, sizeof(buf));
        else if (streq(property, "Files6"))
                inet_ntop(AF_INET6, &a->files6, buf, sizeof(buf));
        else if (streq(property, "Subnet4"))
                vmgr_in4_prefix_format(&a->subnet4, 24, buf, sizeof(buf));
        else if (streq(property, "Gateway4"))
                inet_ntop(AF_INET, &a->gateway4, buf, sizeof(buf));
        else
                return -EINVAL;
        return sd_bus_message_append(reply, "s", buf);
}

static int property_get_vms(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        VM *last = g->vms;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        if (r < 0)
                return r;
        /* Oldest first, as the spec listed them. */
        while (last && last->next)
                last = last->next;
        for (VM *vm = last; vm; vm = vm->prev) {
                r = sd_bus_message_append(reply, "o", vm->object_path);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* Find a VM by a caller-supplied name, with the right error for a bad or unknown one. */
static int lookup_vm(Group *g, const char *name, VM **ret, sd_bus_error *error) {
        const char *why;
        VM *vm;

        if (vmgr_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid VM name \"%s\": %s", name, why);
        vm = group_find_vm(g, name);
        if (!vm)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM, "group '%s' has no VM '%s'", g->name, name);
        *ret = vm;
        return 0;
}

static int method_get_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        const char *name;
        VM *vm;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        r = lookup_vm(g, name, &vm, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "o", vm->object_path);
}

static int method_add_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        char spec_error[VMGR_SPEC_ERROR_MAX];
        const char *name, *spec_json, *why;
        VmgrVMSpec spec;
        int r;

        r = bus_method_begin(m, error, "ss", &name, &spec_json);
        if (r < 0)
                return r;
        if (vmgr_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid VM name \"%s\": %s", name, why);
        if (group_find_vm(g, name))
                return vmgr_bus_error_set(error, -VMGR_ERR_VM_EXISTS, "group '%s' already has a VM '%s'", g->name,
                                          name);
        r = vmgr_vm_spec_parse(spec_json, name, &spec, spec_error);
        if (r == -EINVAL)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_SPEC, "invalid spec: %s", spec_error);
        if (r < 0)
                return r;
        r = group_add_vm(g, &spec, spec_json, m);
        vmgr_vm_spec_done(&spec);
        if (r == -VMGR_ERR_BUSY)
                return vmgr_bus_error_set(error, r, "group '%s' is %s; VMs can be added to a running group",
                                          g->name, group_state_to_string(g->state));
        if (r == -VMGR_ERR_LIMIT_EXCEEDED)
                return vmgr_bus_error_set(error, r, "group '%s' already has %u VMs, the limit (max_vms_per_group)",
                                          g->name, g->n_vms);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot add VM '%s': %m", name);
        return 1;
}

static int method_remove_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        const char *name;
        VM *vm;
        int r;

        r = bus_method_begin(m, error, "s", &name);
        if (r < 0)
                return r;
        r = lookup_vm(g, name, &vm, error);
        if (r < 0)
                return r;
        r = group_remove_vm(g, vm, m);
        if (r == -VMGR_ERR_BUSY)
                return vmgr_bus_error_set(error, r, "VM '%s' is already being removed", name);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot remove VM '%s': %m", name);
        return 1;
}

static int property_get_dnsmasq(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;

        return sd_bus_message_append(reply, "s", dnsmasq_state_to_string(dnsmasq_state(g->dnsmasq)));
}

static int property_get_dnsmasq_restarts(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error) {
        Group *g = userdata;

        return sd_bus_message_append(reply, "u", dnsmasq_restarts(g->dnsmasq));
}

static int method_delete(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;

        if (!g->manager)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_GROUP, "group '%s' is gone", g->name);
        r = group_delete(g, m);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot delete group '%s': %m", g->name);
        return 1; /* the reply follows when it is gone */
}

static const char *group_stage_name(unsigned s) {
        return group_stage_to_string((GroupStage) s);
}

static int property_get_timings(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;

        return bus_append_timings(reply, g->timings, _GROUP_STAGE_MAX, group_stage_name);
}

static int method_wait_ready(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        uint64_t timeout;
        int r;

        r = bus_method_begin(m, error, "t", &timeout);
        if (r < 0)
                return r;
        if (!g->manager || g->state == GROUP_DELETING)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "group '%s' is being deleted", g->name);
        r = group_wait_ready(g, m, timeout);
        if (r < 0)
                return vmgr_bus_error_set(error, r, NULL);
        return 1;
}

/* ---- FollowLogs ------------------------------------------------------------- */

/* FollowLogs' options, read from an a{sv}. */
typedef struct FollowOptions {
        char **vms;
        GroupLogSource sources;
        bool from_start, follow;
        uint64_t skip;
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
                        /* A group has at most 256 VMs (max_vms_per_group's
                         * ceiling), there are 3 sources: a longer list is refused
                         * before it is read. */
                        r = bus_read_strv_limited(m, 256, &l);
                        if (r == -E2BIG)
                                return vmgr_bus_error_set(error, -EINVAL, "option %s has too many entries", key);
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
                } else if (streq(key, "skip")) {
                        r = sd_bus_message_enter_container(m, 'v', "t");
                        if (r < 0)
                                return vmgr_bus_error_set(error, -EINVAL, "option skip must be a uint64");
                        r = sd_bus_message_read(m, "t", &o->skip);
                        if (r < 0)
                                return r;
                } else
                        return vmgr_bus_error_set(error, -EINVAL,
                                                  "unknown option \"%s\" (known: vms, sources, from_start, follow, skip)",
                                                  key);
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

static int method_follow_logs(sd_bus_message *m, void *userdata, sd_bus_error *error) {
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
        r = group_log_follow(g->log, fds[1], o.vms, o.sources, o.from_start, o.follow, o.skip);
        if (r < 0) {
                r = vmgr_bus_error_set(error, r, "cannot follow the log: %m");
                goto out;
        }
        r = sd_bus_reply_method_return(m, "h", read_end);
out:
        strv_free(o.vms);
        return r;
}

/* ---- Collect ---------------------------------------------------------------- */

static void collect_reply(Group *g, int error, const char *message, void *userdata) {
        sd_bus_message *call = userdata;

        if (error < 0)
                (void) vmgr_bus_reply_error(call, error, "%s", message);
        else
                (void) sd_bus_reply_method_return(call, NULL);
        sd_bus_message_unref(call);
}

static int method_collect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        char message[1024];
        const char *dir;
        int r;

        r = bus_method_begin(m, error, "s", &dir);
        if (r < 0)
                return r;
        if (dir[0] != '/' || strlen(dir) >= 4000)
                return vmgr_bus_error_set(error, -EINVAL, "the directory must be an absolute path, not \"%s\"", dir);
        /* Written as vmgrd's user, who is the caller (or root: bus_check_caller()). */
        r = group_collect(g, dir, collect_reply, sd_bus_message_ref(m), message, sizeof(message));
        if (r < 0) {
                sd_bus_message_unref(m);
                return vmgr_bus_error_set(error, r, "%s", message);
        }
        return 1;
}

/* ---- the file server: ServeFile, UnserveFile, ServedFiles ----------------------- */

static void serve_file_reply(int error, const char *url, const char *message, void *userdata) {
        sd_bus_message *call = userdata;

        if (error < 0)
                (void) vmgr_bus_reply_error(call, error, "%s", message);
        else
                (void) sd_bus_reply_method_return(call, "s", url);
        sd_bus_message_unref(call);
}

static int method_serve_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        char message[FILESERVER_ERROR_MAX];
        const char *name, *why;
        int fd, r;

        r = bus_method_begin(m, error, "sh", &name, &fd);
        if (r < 0)
                return r;

        if (served_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid file name \"%s\": %s", name, why);
        if (!g->fileserver || g->state == GROUP_DELETING)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY,
                                          "group '%s' is %s; it serves files while its network is up", g->name,
                                          group_state_to_string(g->state));
        r = fileserver_serve(g->fileserver, name, fd, serve_file_reply, sd_bus_message_ref(m), message,
                             sizeof(message));
        if (r < 0) {
                sd_bus_message_unref(m);
                return vmgr_bus_error_set(error, r, "%s", message);
        }
        return 1; /* the reply follows once the file is hashed */
}

static int method_unserve_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        char message[FILESERVER_ERROR_MAX];
        const char *name, *why;
        int r;

        r = bus_method_begin(m, error, "s", &name);
        if (r < 0)
                return r;
        if (served_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid file name \"%s\": %s", name, why);
        if (!g->fileserver)
                return vmgr_bus_error_set(error, -VMGR_BUS_ERR_FILE_NOT_FOUND, "group '%s' serves no file named '%s'",
                                          g->name, name);
        r = fileserver_unserve(g->fileserver, name, message, sizeof(message));
        if (r < 0)
                return vmgr_bus_error_set(error, r, "%s", message);
        return sd_bus_reply_method_return(m, NULL);
}

static int append_served_file(const char *name, const char *sha256, uint64_t size, void *userdata) {
        return sd_bus_message_append(userdata, "(sst)", name, sha256, size);
}

static int property_get_served_files(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sst)");
        if (r < 0)
                return r;
        r = fileserver_foreach_file(g->fileserver, append_served_file, reply);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* ---- port forwards: ForwardPort, RemoveForward, Forwards -------------------------- */

static int method_forward_port(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        const char *vm_name, *protocol_name, *address, *why;
        struct vmgr_forward_address a;
        uint16_t guest_port, port;
        Forward *f;
        int protocol, r;

        r = bus_method_begin(m, error, "ssqsq", &vm_name, &protocol_name, &guest_port, &address, &port);
        if (r < 0)
                return r;

        protocol = vmgr_forward_protocol_from_string(protocol_name);
        if (protocol < 0)
                return vmgr_bus_error_set(error, -EINVAL,
                                          "invalid protocol \"%s\": it must be \"tcp\" or \"udp\"", protocol_name);
        if (guest_port == 0)
                return vmgr_bus_error_set(error, -EINVAL, "the guest port must be 1-65535");
        if (vmgr_forward_address_parse(address, &a) < 0)
                return vmgr_bus_error_set(error, -EINVAL,
                                          "invalid host address \"%s\": it must be a numeric IPv4 or IPv6 address",
                                          address);
        if (vmgr_name_check(vm_name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid VM name \"%s\": %s", vm_name, why);
        if (!group_find_vm(g, vm_name))
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM, "group '%s' has no VM '%s'", g->name, vm_name);
        if (!g->manager || g->state != GROUP_RUNNING)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "group '%s' is %s; forwards can be added to a running group",
                                          g->name, group_state_to_string(g->state));

        r = forward_add(g, vm_name, protocol, guest_port, a.text, port, &f);
        if (r == -EEXIST || r == -EADDRINUSE)
                return vmgr_bus_error_set(error, -EADDRINUSE,
                                          "%s [%s]:%u is already in use; choose another port, or 0 for a free one",
                                          protocol_name, a.text, port);
        if (r == -EADDRNOTAVAIL)
                return vmgr_bus_error_set(error, -EINVAL,
                                          "%s is not an address of this host; use 127.0.0.1, ::1 or another local address",
                                          a.text);
        if (r == -EACCES)
                return vmgr_bus_error_set(error, -EACCES,
                                          "port %u needs privileges vmgrd does not have; use a port from 1024 up", port);
        if (r == -VMGR_ERR_LIMIT_EXCEEDED)
                return vmgr_bus_error_set(error, r, "group '%s' already has %u forwards, the limit", g->name,
                                          g->n_forwards);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot forward %s [%s]:%u: %m", protocol_name, a.text, port);
        (void) group_emit_changed(g, "Forwards", NULL);
        group_save(g);
        return sd_bus_reply_method_return(m, "sq", forward_address(f), forward_port(f));
}

static int method_remove_forward(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        const char *protocol_name, *address;
        struct vmgr_forward_address a;
        uint16_t port;
        Forward *f;
        int protocol, r;

        r = bus_method_begin(m, error, "ssq", &protocol_name, &address, &port);
        if (r < 0)
                return r;
        protocol = vmgr_forward_protocol_from_string(protocol_name);
        if (protocol < 0)
                return vmgr_bus_error_set(error, -EINVAL,
                                          "invalid protocol \"%s\": it must be \"tcp\" or \"udp\"", protocol_name);
        if (vmgr_forward_address_parse(address, &a) < 0)
                return vmgr_bus_error_set(error, -EINVAL,
                                          "invalid host address \"%s\": it must be a numeric IPv4 or IPv6 address",
                                          address);
        f = forward_find(g, protocol, a.text, port);
        if (!f)
                return vmgr_bus_error_set(error, -VMGR_BUS_ERR_FILE_NOT_FOUND,
                                          "group '%s' has no %s forward on [%s]:%u",
                                          g->name, protocol_name, a.text, port);
        forward_free(f);
        (void) group_emit_changed(g, "Forwards", NULL);
        group_save(g);
        return sd_bus_reply_method_return(m, NULL);
}

static int append_forward(const char *vm, int protocol, uint16_t guest_port, const char *address, uint16_t port,
                          void *userdata) {
        return sd_bus_message_append(userdata, "(ssqsq)", vm, vmgr_forward_protocol_to_string(protocol), guest_port,
                                     address, port);
}

static int property_get_forwards(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ssqsq)");
        if (r < 0)
                return r;
        r = forward_foreach(g, append_forward, reply);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

const sd_bus_vtable group_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(Group, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Bridge", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Prefix6", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Gateway6", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Management6", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Logs6", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Files6", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Subnet4", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Gateway4", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VMs", "ao", property_get_vms, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RuntimeDirectory", "s", NULL, offsetof(Group, runtime_dir), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Dnsmasq", "s", property_get_dnsmasq, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DnsmasqRestarts", "u", property_get_dnsmasq_restarts, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ServedFiles", "a(sst)", property_get_served_files, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Forwards", "a(ssqsq)", property_get_forwards, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Timings", "a{st}", property_get_timings, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_delete,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddVM", SD_BUS_ARGS("s", name, "s", spec_json), SD_BUS_RESULT("o", vm),
                                method_add_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveVM", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_remove_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVM", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", vm), method_get_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WaitReady", SD_BUS_ARGS("t", timeout_usec), SD_BUS_NO_RESULT,
                                method_wait_ready, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FollowLogs", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("h", fd),
                                method_follow_logs, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Collect", SD_BUS_ARGS("s", dir), SD_BUS_NO_RESULT, method_collect,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ServeFile", SD_BUS_ARGS("s", name, "h", fd), SD_BUS_RESULT("s", url),
                                method_serve_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnserveFile", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_unserve_file,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ForwardPort",
                                SD_BUS_ARGS("s", vm, "s", protocol, "q", guest_port, "s", host_address, "q", host_port),
                                SD_BUS_RESULT("s", address, "q", port), method_forward_port,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveForward", SD_BUS_ARGS("s", protocol, "s", host_address, "q", host_port),
                                SD_BUS_NO_RESULT, method_remove_forward, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int group_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        Group *g;
        int r;

        r = sd_bus_path_decode(path, VMGR_GROUP_PATH_PREFIX, &name);
        if (r <= 0)
                return r;
        g = manager_find_group(m, name);
        if (!g)
                return 0;
        *found = g;
        return 1;
}

int group_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l = NULL;
        size_t n = 0;

        for (Group *g = m->groups; g; g = g->next)
                if (strv_push_dup(&l, &n, g->object_path) < 0)
                        return -ENOMEM;
        *nodes = l;
        return 1;
}

int group_emit_changed(Group *g, const char *property, ...) {
        va_list ap;
        int r;

        if (!g->manager)
                return 0;
        va_start(ap, property);
        r = bus_emit_changed_va(g->manager->bus, g->object_path, VMGR_GROUP_INTERFACE, property, ap);
        va_end(ap);
        return r;
}
