/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-introspect: print the D-Bus introspection XML of one of vmgrd's
 * interfaces, from the very vtables vmgrd serves, so the XML installed
 * under share/dbus-1/interfaces can never drift from the daemon.
 *
 * sd-bus writes introspection data only for a peer that asks, so this
 * serves the vtables on one end of a socketpair (on a thread) and asks
 * from the other. Getters and methods never run: introspection reads the
 * vtables only.
 *
 * Usage: vmgr-introspect INTERFACE   (e.g. org.vmgr1.Manager)
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "group.h"
#include "guest-exec.h"
#include "macro.h"
#include "manager.h"
#include "vm.h"
#include "vmgr-error.h"

static const struct {
        const char *interface;
        const char *path;
        const sd_bus_vtable *vtable;
} interfaces[] = {
        { VMGR_MANAGER_INTERFACE, VMGR_MANAGER_PATH, manager_vtable },
        { VMGR_GROUP_INTERFACE, VMGR_GROUP_PATH_PREFIX "/g", group_vtable },
        { VMGR_VM_INTERFACE, VMGR_GROUP_PATH_PREFIX "/g/vm/v", vm_vtable },
        { VMGR_PROCESS_INTERFACE, VMGR_GROUP_PATH_PREFIX "/g/vm/v/process/1", guest_exec_vtable },
};

static void *serve(void *userdata) {
        sd_bus *server = userdata;

        for (;;) {
                int r = sd_bus_process(server, NULL);
                if (r < 0)
                        break; /* the client hung up */
                if (r == 0 && sd_bus_wait(server, UINT64_MAX) < 0)
                        break;
        }
        return NULL;
}

/* Cut the <interface name="NAME"> element out of a whole introspection document. */
static int extract_interface(const char *xml, const char *name, char **ret) {
        char start[256];
        const char *b, *e;

        snprintf(start, sizeof(start), "<interface name=\"%s\">", name);
        b = strstr(xml, start);
        if (!b)
                return -ENOENT;
        e = strstr(b, "</interface>");
        if (!e)
                return -EBADMSG;
        e += strlen("</interface>");
        *ret = strndup(b, (size_t) (e - b));
        return *ret ? 0 : -ENOMEM;
}

int main(int argc, char *argv[]) {
        sd_bus *server = NULL, *client = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        _cleanup_free_ char *element = NULL;
        const char *xml;
        sd_id128_t id = {};
        pthread_t thread;
        int fds[2], r;
        size_t i;

        if (argc != 2) {
                fprintf(stderr, "usage: vmgr-introspect INTERFACE\n");
                return 2;
        }
        for (i = 0; i < ELEMENTSOF(interfaces) && !streq(interfaces[i].interface, argv[1]); i++)
                ;
        if (i == ELEMENTSOF(interfaces)) {
                fprintf(stderr, "vmgr-introspect: unknown interface %s\n", argv[1]);
                return 2;
        }

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
                perror("vmgr-introspect: socketpair");
                return 1;
        }
        r = sd_bus_new(&server);
        if (r >= 0)
                r = sd_bus_set_fd(server, fds[0], fds[0]);
        if (r >= 0)
                r = sd_bus_set_server(server, 1, id);
        if (r >= 0)
                r = sd_bus_set_anonymous(server, 1);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, interfaces[i].path, interfaces[i].interface,
                                             interfaces[i].vtable, NULL);
        if (r >= 0)
                r = sd_bus_start(server);
        if (r >= 0)
                r = sd_bus_new(&client);
        if (r >= 0)
                r = sd_bus_set_fd(client, fds[1], fds[1]);
        if (r >= 0)
                r = sd_bus_set_anonymous(client, 1);
        if (r >= 0)
                r = sd_bus_start(client);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-introspect: cannot set up the bus pair: %m");
                return 1;
        }
        r = -pthread_create(&thread, NULL, serve, server);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-introspect: cannot start a thread: %m");
                return 1;
        }

        r = sd_bus_call_method(client, NULL, interfaces[i].path, "org.freedesktop.DBus.Introspectable",
                               "Introspect", &error, &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_read(reply, "s", &xml);
        if (r >= 0)
                r = extract_interface(xml, interfaces[i].interface, &element);
        if (r < 0) {
                if (error.message)
                        fprintf(stderr, "vmgr-introspect: cannot introspect %s: %s\n", interfaces[i].interface,
                                error.message);
                else
                        vmgr_print_error(r, "vmgr-introspect: cannot introspect %s: %m", interfaces[i].interface);
                return 1;
        }

        printf("<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
               " \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"
               "<!-- Generated from vmgrd's vtables by vmgr-introspect; see docs/dbus-api.md. -->\n"
               "<node>\n %s\n</node>\n",
               element);

        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(client); /* the server thread sees EOF and ends */
        pthread_join(thread, NULL);
        sd_bus_flush_close_unref(server);
        return 0;
}
