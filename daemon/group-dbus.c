/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-error.h"
#include "bus-util.h"
#include "collect.h"
#include "dnsmasq.h"
#include "fileserver.h"
#include "forward.h"
#include "group.h"
#include "vm-agent-dbus.h"
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

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;

        r = sd_bus_message_read(m, "ss", &name, &spec_json);
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
        r = group_add_vm(g, &spec, m);
        vmgr_vm_spec_done(&spec);
        if (r == -VMGR_ERR_BUSY)
                return vmgr_bus_error_set(error, r, "group '%s' is %s; VMs can be added to a running group",
                                          g->name, group_state_to_string(g->state));
        if (r == -VMGR_ERR_LIMIT_EXCEEDED)
                return vmgr_bus_error_set(error, r, "group '%s' already has %u VMs, the limit (max_vms_per_group)",
                                          g->name, g->n_vms);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot add VM '%s': %s", name, strerror(-r));
        return 1;
}

static int method_remove_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Group *g = userdata;
        const char *name;
        VM *vm;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        r = lookup_vm(g, name, &vm, error);
        if (r < 0)
                return r;
        r = group_remove_vm(g, vm, m);
        if (r == -VMGR_ERR_BUSY)
                return vmgr_bus_error_set(error, r, "VM '%s' is already being removed", name);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot remove VM '%s': %s", name, strerror(-r));
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
                return vmgr_bus_error_set(error, r, "cannot delete group '%s': %s", g->name, strerror(-r));
        return 1; /* the reply follows when it is gone */
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
        SD_BUS_PROPERTY("ServedFiles", "a(sst)", group_property_get_served_files, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Forwards", "a(ssqsq)", group_property_get_forwards, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Timings", "a{st}", group_property_get_timings, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_delete,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddVM", SD_BUS_ARGS("s", name, "s", spec_json), SD_BUS_RESULT("o", vm),
                                method_add_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveVM", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_remove_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVM", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", vm), method_get_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WaitReady", SD_BUS_ARGS("t", timeout_usec), SD_BUS_NO_RESULT,
                                group_method_wait_ready, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FollowLogs", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("h", fd),
                                group_method_follow_logs, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Collect", SD_BUS_ARGS("s", dir), SD_BUS_NO_RESULT, group_method_collect,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ServeFile", SD_BUS_ARGS("s", name, "h", fd), SD_BUS_RESULT("s", url),
                                group_method_serve_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnserveFile", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, group_method_unserve_file,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ForwardPort",
                                SD_BUS_ARGS("s", vm, "s", protocol, "q", guest_port, "s", host_address, "q", host_port),
                                SD_BUS_RESULT("s", address, "q", port), group_method_forward_port,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveForward", SD_BUS_ARGS("s", protocol, "s", host_address, "q", host_port),
                                SD_BUS_NO_RESULT, group_method_remove_forward, SD_BUS_VTABLE_UNPRIVILEGED),
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
