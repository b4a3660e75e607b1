/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgrctl forward|unforward|forwards: a group's port forwards
 * (Group.ForwardPort, RemoveForward, Forwards). The shorthands
 * "[tcp|udp:]GUEST_PORT" and "[[ADDR:]HOST_PORT]" are parsed by
 * lib/forward-parse.c, which vmgrd uses too.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus-util.h"
#include "forward-parse.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

static const struct output_column forward_columns[] = {
        { "VM", "VM" },
        { "PROTOCOL", "Protocol" },
        { "GUEST-PORT", "GuestPort" },
        { "ADDRESS", "Address" },
        { "PORT", "Port" },
};

/* "ADDR:PORT", IPv6 in brackets, into buf. Returns buf. */
static char *format_listener(const char *address, unsigned port, char *buf, size_t size) {
        snprintf(buf, size, strchr(address, ':') ? "[%s]:%u" : "%s:%u", address, port);
        return buf;
}

/* One forward as {VM, Protocol, GuestPort, Address, Port, Listen}.
 * Returns 0 and the object, or -ENOMEM. */
static int forward_json(const char *vm, const char *protocol, unsigned guest_port, const char *address,
                        unsigned port, struct json_object **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        char listen[INET6_ADDRSTRLEN + 16];

        format_listener(address, port, listen, sizeof(listen));
        if (!o || json_object_object_add(o, "VM", json_object_new_string(vm)) < 0 ||
            json_object_object_add(o, "Protocol", json_object_new_string(protocol)) < 0 ||
            json_object_object_add(o, "GuestPort", json_object_new_int(guest_port)) < 0 ||
            json_object_object_add(o, "Address", json_object_new_string(address)) < 0 ||
            json_object_object_add(o, "Port", json_object_new_int(port)) < 0 ||
            json_object_object_add(o, "Listen", json_object_new_string(listen)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int verb_forward(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        char address[INET6_ADDRSTRLEN];
        const char *why, *bound;
        uint16_t guest_port, port, bound_port;
        int protocol, r;

        if (vmgr_forward_parse_guest(args[2], &protocol, &guest_port, &why) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid guest port \"%s\": %s", args[2], why);
        if (vmgr_forward_parse_host(n_args > 3 ? args[3] : NULL, address, &port, &why) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid host port \"%s\": %s", args[3], why);

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        r = bus_call_method(bus, path, VMGR_GROUP_INTERFACE, "ForwardPort", 0, &error, &reply, "ssqsq", args[1],
                            vmgr_forward_protocol_to_string(protocol), guest_port, address, port);
        if (r < 0) {
                if (!sd_bus_error_is_set(&error))
                        return bus_log_unsendable(args[0], args[1]);
                return bus_log_error(bus, &error, r);
        }
        r = sd_bus_message_read(reply, "sq", &bound, &bound_port);
        if (r < 0)
                return bus_log_parse_error(r);

        if (o->json) {
                _cleanup_json_ struct json_object *f = NULL;

                if (forward_json(args[1], vmgr_forward_protocol_to_string(protocol), guest_port, bound, bound_port,
                                 &f) < 0 ||
                    output_json(f) < 0)
                        return log_error_errno(-ENOMEM, "%m");
                return 0;
        }
        char listen[INET6_ADDRSTRLEN + 16];
        printf("%s\n", format_listener(bound, bound_port, listen, sizeof(listen)));
        return 0;
}

int verb_unforward(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        char address[INET6_ADDRSTRLEN];
        const char *why;
        uint16_t port;
        int protocol, r;

        if (vmgr_forward_parse_listener(args[1], &protocol, address, &port, &why) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid forward \"%s\": %s", args[1], why);

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        r = bus_call_method(bus, path, VMGR_GROUP_INTERFACE, "RemoveForward", 0, &error, NULL, "ssq",
                            vmgr_forward_protocol_to_string(protocol), address, port);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        return 0;
}

int verb_forwards(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *rows = NULL;
        _cleanup_free_ char *path = NULL;
        const char *vm, *protocol, *address;
        uint16_t guest_port, port;
        int r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_group_lookup(bus, args[0], &path);
        if (r < 0)
                return r;
        r = sd_bus_get_property(bus, VMGR_BUS_NAME, path, VMGR_GROUP_INTERFACE, "Forwards", &error, &reply,
                                "a(ssqsq)");
        if (r < 0)
                return bus_log_error(bus, &error, r);
        rows = json_object_new_array();
        if (!rows)
                return log_error_errno(-ENOMEM, "%m");
        r = sd_bus_message_enter_container(reply, 'a', "(ssqsq)");
        if (r < 0)
                return bus_log_parse_error(r);
        while ((r = sd_bus_message_read(reply, "(ssqsq)", &vm, &protocol, &guest_port, &address, &port)) > 0) {
                struct json_object *f;

                if (forward_json(vm, protocol, guest_port, address, port, &f) < 0)
                        return log_error_errno(-ENOMEM, "%m");
                if (json_object_array_add(rows, f) < 0) {
                        json_object_put(f);
                        return log_error_errno(-ENOMEM, "%m");
                }
        }
        if (r < 0)
                return bus_log_parse_error(r);
        r = o->json ? output_json(rows)
                    : output_table(rows, forward_columns, ELEMENTSOF(forward_columns), !o->quiet);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}
