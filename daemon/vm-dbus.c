/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bus-error.h"
#include "bus-util.h"
#include "group.h"
#include "vm-agent-dbus.h"
#include "vm.h"

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;

        return sd_bus_message_append(reply, "s", vm_state_to_string(vm->state));
}

static int property_get_group(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;

        return sd_bus_message_append(reply, "o", vm->group ? vm->group->object_path : "/");
}

/* The derived names and addresses, chosen by property name. */
static int property_get_derived(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        char buf[INET6_ADDRSTRLEN + VMGR_MAC_STRLEN];

        if (streq(property, "MAC"))
                vmgr_mac_format(vm->addrs.mac, buf);
        else if (streq(property, "MAC4"))
                return sd_bus_message_append(reply, "s",
                                             vm->spec.ipv4 ? vmgr_mac_format(vm->addrs.mac4, buf) : "");
        else if (streq(property, "IPv6"))
                inet_ntop(AF_INET6, &vm->addrs.ipv6, buf, sizeof(buf));
        else if (streq(property, "Tap"))
                return sd_bus_message_append(reply, "s", vm->addrs.tap);
        else if (streq(property, "Tap4"))
                return sd_bus_message_append(reply, "s", vm->spec.ipv4 ? vm->addrs.tap4 : "");
        else
                return -EINVAL;
        return sd_bus_message_append(reply, "s", buf);
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const char *const *s = userdata;

        return sd_bus_message_append(reply, "s", *s ?: "");
}

static int property_get_uuid(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;

        return sd_bus_message_append(reply, "s", vm->uuid);
}

/* Run an operation for a method call; the reply comes when it is done. */
static int vm_method(sd_bus_message *m, VM *vm, VMOp op, uint64_t timeout, sd_bus_error *error) {
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        if (!vm->group)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM, "VM '%s' is gone", vm->name);
        if (vm->group->state == GROUP_DELETING)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "group '%s' is being deleted", vm->group->name);
        r = vm_operation(vm, op, timeout, m, NULL, NULL);
        if (r == -VMGR_ERR_BUSY)
                return vmgr_bus_error_set(error, r, "VM '%s' is busy with another operation; try again", vm->name);
        if (r < 0)
                return vmgr_bus_error_set(error, r, NULL);
        return 1;
}

static int method_start(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_START, 0, error);
}

static int method_kill(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_KILL, 0, error);
}

static int method_reboot(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_REBOOT, 0, error);
}

static int method_restart(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_RESTART, 0, error);
}

static int method_shutdown(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint64_t timeout;
        int r;

        r = sd_bus_message_read(m, "t", &timeout);
        if (r < 0)
                return r;
        return vm_method(m, userdata, VM_OP_SHUTDOWN, timeout, error);
}

const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(VM, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Group", "o", property_get_group, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MAC", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IPv6", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MAC4", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IPv4", "s", property_get_string, offsetof(VM, ipv4), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Tap", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Tap4", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ConsoleLog", "s", NULL, offsetof(VM, console_log), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Vcpus", "u", NULL, offsetof(VM, spec.vcpus), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryMiB", "u", NULL, offsetof(VM, spec.memory_mib), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", property_get_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LastError", "s", property_get_string, offsetof(VM, last_error),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Start", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Kill", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_kill, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Shutdown", SD_BUS_ARGS("t", timeout_usec), SD_BUS_NO_RESULT, method_shutdown,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reboot", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reboot,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Restart", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_restart,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Timings", "a{st}", vm_property_get_timings, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("WaitReady", SD_BUS_ARGS("t", timeout_usec), SD_BUS_NO_RESULT,
                                vm_method_wait_ready, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Run", SD_BUS_ARGS("as", argv, "ay", stdin, "t", timeout_usec),
                                SD_BUS_RESULT("i", exit_status, "ay", stdout, "ay", stderr), vm_method_run,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Exec", SD_BUS_ARGS("as", argv, "a{sv}", options),
                                SD_BUS_RESULT("h", stdin, "h", stdout, "h", stderr, "o", process), vm_method_exec,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CopyTo", SD_BUS_ARGS("h", fd, "s", guest_path, "u", mode), SD_BUS_NO_RESULT,
                                vm_method_copy_to, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CopyFrom", SD_BUS_ARGS("s", guest_path), SD_BUS_RESULT("h", fd),
                                vm_method_copy_from, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *group = NULL, *name = NULL;
        Group *g;
        VM *vm;
        int r;

        r = sd_bus_path_decode_many(path, VMGR_GROUP_PATH_PREFIX "/%/vm/%", &group, &name);
        if (r <= 0)
                return r;
        g = manager_find_group(m, group);
        if (!g)
                return 0;
        vm = group_find_vm(g, name);
        if (!vm)
                return 0;
        *found = vm;
        return 1;
}

int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l = NULL;
        size_t n = 0;

        for (Group *g = m->groups; g; g = g->next)
                for (VM *vm = g->vms; vm; vm = vm->next)
                        if (strv_push_dup(&l, &n, vm->object_path) < 0)
                                return -ENOMEM;
        *nodes = l;
        return 1;
}

int vm_emit_changed(VM *vm, const char *property, ...) {
        va_list ap;
        int r;

        if (!vm->group || !vm->group->manager)
                return 0;
        va_start(ap, property);
        r = bus_emit_changed_va(vm->group->manager->bus, vm->object_path, VMGR_VM_INTERFACE, property, ap);
        va_end(ap);
        return r;
}
