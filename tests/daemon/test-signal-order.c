/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The signals of a group's life in the order a client sees them, with the
 * method replies where they fall among them (docs/dbus-api.md: GroupNew
 * when the object appears in state "creating", PropertiesChanged for every
 * "emits" property, GroupRemoved once it is gone; ObjectManager's
 * InterfacesAdded/Removed around them). The bus keeps one sender's
 * messages in order, so the sequence is exact: a change in it is a change
 * of what clients observe.
 */

#include <errno.h>
#include <stdlib.h>

#include "harness.h"

#define G "/org/vmgr1/group/order"
#define CHANGED "PropertiesChanged " G " org.vmgr1.Group "

/* CreateGroup of a network-only group, up to its reply. */
#define CREATE_SEQUENCE                                                                  \
        "InterfacesAdded " G " org.vmgr1.Group\n"                                       \
        "GroupNew order " G "\n"                                                             \
        CHANGED "Timings[network_created]\n"                                             \
        CHANGED "Dnsmasq=starting DnsmasqRestarts=0\n"                                   \
        CHANGED "Dnsmasq=running DnsmasqRestarts=0\n"                                    \
        CHANGED "Timings[network_created,dnsmasq_ready]\n"                               \
        CHANGED "Timings[network_created,dnsmasq_ready,vms_started]\n"                   \
        CHANGED "Timings[network_created,dnsmasq_ready,vms_started,running]\n"           \
        CHANGED "State=running\n"                                                        \
        "reply CreateGroup\n"

/* DeleteGroup of a running network-only group, from the first signal. The
 * reply comes before the object is announced gone: both happen in one turn
 * of vmgrd's loop, so a call after the reply finds no group. */
#define DELETE_SEQUENCE                                 \
        CHANGED "State=deleting\n"                      \
        CHANGED "Dnsmasq=stopping DnsmasqRestarts=0\n"  \
        CHANGED "Dnsmasq=stopped DnsmasqRestarts=0\n"   \
        "reply DeleteGroup\n"                           \
        "InterfacesRemoved " G " org.vmgr1.Group\n"     \
        "GroupRemoved order " G "\n"

static void check_events(Harness *h, const char *want) {
        _cleanup_free_ char *got = NULL;

        harness_settle(h);
        got = harness_events_take(h);
        CHECK_STREQ(got, want);
}

static void test_life(Harness *h) {
        sd_bus_slot *slot;

        slot = harness_call_async(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup", "ss", "order", "");
        CHECK(harness_wait_call(h, slot) == 0);
        check_events(h, CREATE_SEQUENCE);

        slot = harness_call_async(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteGroup", "s", "order");
        CHECK(harness_wait_call(h, slot) == 0);
        check_events(h, DELETE_SEQUENCE);
        CHECK_GROUP_GONE(h, "order");
}

/* Deleting a group that is being created: creation finishes first, then
 * the deletion (docs: "waits for the creation to finish, then deletes it"). */
static void test_delete_while_creating(Harness *h) {
        sd_bus_slot *create, *delete;

        /* Hold dnsmasq's start, so that DeleteGroup surely arrives while the group is "creating". */
        harness_fake_set(h, "dnsmasq-start", 300, 0);
        create = harness_call_async(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup", "ss", "order", "");
        delete = harness_call_async(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteGroup", "s", "order");
        CHECK(harness_wait_call(h, create) == 0);
        CHECK(harness_wait_call(h, delete) == 0);
        check_events(h, CREATE_SEQUENCE DELETE_SEQUENCE);
        CHECK_GROUP_GONE(h, "order");
        harness_fake_set(h, "dnsmasq-start", 0, 0);
}

/* A creation the helper refuses: the object appears, goes to "deleting"
 * (never "running"), the error comes, then the object is gone. */
static void test_failed_creation(Harness *h) {
        sd_bus_slot *slot;

        harness_fake_set(h, "group-create", 0, EIO);
        slot = harness_call_async(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup", "ss", "order", "");
        CHECK(harness_wait_call(h, slot) < 0);
        check_events(h, "InterfacesAdded " G " org.vmgr1.Group\n"
                        "GroupNew order " G "\n"
                        CHANGED "State=deleting\n"
                        "error CreateGroup org.vmgr1.Error.HelperFailed\n"
                        "InterfacesRemoved " G " org.vmgr1.Group\n"
                        "GroupRemoved order " G "\n");
        CHECK_GROUP_GONE(h, "order");
        harness_fake_set(h, "group-create", 0, 0);
}

int main(void) {
        Harness h;

        harness_start(&h, NULL);
        harness_record_signals(&h);
        test_life(&h);
        test_delete_while_creating(&h);
        test_failed_creation(&h);
        /* Nothing else was announced meanwhile. */
        check_events(&h, "");
        harness_stop(&h);
        printf("test-signal-order: OK\n");
        return 0;
}
