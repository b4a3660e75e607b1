/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The VM methods and properties that go through the guest agent
 * (readiness, Run), part of org.vmgr1.VM's vtable in vm-dbus.c, and
 * Group.WaitReady.
 */

#include <systemd/sd-bus.h>

/* Run's cap on each of stdout and stderr (docs/dbus-api.md). */
#define VM_RUN_OUTPUT_MAX (16U * 1024U * 1024U)

int vm_property_get_timings(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error);
int vm_method_wait_ready(sd_bus_message *m, void *userdata, sd_bus_error *error);
int vm_method_run(sd_bus_message *m, void *userdata, sd_bus_error *error);
int vm_method_exec(sd_bus_message *m, void *userdata, sd_bus_error *error);
int vm_method_copy_to(sd_bus_message *m, void *userdata, sd_bus_error *error);
int vm_method_copy_from(sd_bus_message *m, void *userdata, sd_bus_error *error);
int group_method_wait_ready(sd_bus_message *m, void *userdata, sd_bus_error *error);
