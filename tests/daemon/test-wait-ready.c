/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * WaitReady's answers without booting a guest: a group without VMs is
 * ready at once; a VM whose start hangs in its first step (the helper
 * holds back the TAP) is "starting", and WaitReady with a timeout fails
 * with org.vmgr1.Error.Timeout naming the stage that did not complete, for
 * the VM and for its group. The start then fails (the helper refuses the
 * TAP), the VM is removed again, and waiters without a timeout hear of it.
 * No step here reaches libvirt: everything after the TAP needs libvirtd
 * and QEMU, which these tests do without.
 */

#include <errno.h>
#include <stdlib.h>

#include "harness.h"

#define G "/org/vmgr1/group/ready"
#define V G "/vm/v"

/* Milliseconds the fake helper holds back tap-create before refusing it. */
#define TAP_DELAY_MS 2000

/* The VM exists from the moment AddVM is accepted, "defined" until the
 * state file lists it, then "starting": wait for that, so that the signal
 * saying so is in the record before the test goes on. */
static void wait_starting(Harness *h) {
        _cleanup_free_ char *state = NULL;

        for (unsigned i = 0; i < 200; i++) {
                harness_settle(h);
                free(state);
                state = harness_get_string(h, V, VMGR_VM_INTERFACE, "State");
                if (!streq(state, "defined"))
                        break;
                usleep(10 * 1000);
        }
        CHECK_STREQ(state, "starting");
        harness_settle(h);
}

static void test_no_vms(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        unsigned long long start = harness_now_ms();
        int r;

        r = harness_call(h, G, VMGR_GROUP_INTERFACE, "WaitReady", &error, NULL, "t", (uint64_t) 10 * 1000000);
        CHECK_OK(r, &error);
        /* At once, not after the timeout. */
        CHECK(harness_now_ms() - start < 5000);
}

static void test_timeout(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *state = NULL, *events = NULL, *requests = NULL;
        unsigned long long start;
        sd_bus_slot *add;
        int r;

        harness_fake_set(h, "tap-create", TAP_DELAY_MS, EIO);
        add = harness_call_async(h, G, VMGR_GROUP_INTERFACE, "AddVM", "ss", "v", "{}");
        wait_starting(h);

        start = harness_now_ms();
        r = harness_call(h, V, VMGR_VM_INTERFACE, "WaitReady", &error, NULL, "t", (uint64_t) 300 * 1000);
        CHECK_ERROR(r, &error, VMGR_ERROR_TIMEOUT);
        CHECK_STREQ(error.message, "VM 'v' was not ready within 0.3 s: stage qemu_started did not complete");
        sd_bus_error_free(&error);
        r = harness_call(h, G, VMGR_GROUP_INTERFACE, "WaitReady", &error, NULL, "t", (uint64_t) 300 * 1000);
        CHECK_ERROR(r, &error, VMGR_ERROR_TIMEOUT);
        CHECK_STREQ(error.message, "group 'ready' was not ready within 0.3 s: not ready: v (qemu_started)");
        sd_bus_error_free(&error);
        /* The timers answered, not the helper's refusal that comes later. */
        CHECK(harness_now_ms() - start >= 600);
        CHECK(harness_now_ms() - start < TAP_DELAY_MS);
        free(state);
        state = harness_get_string(h, V, VMGR_VM_INTERFACE, "State");
        CHECK_STREQ(state, "starting");

        /* Then the helper refuses the TAP: the VM is undone before AddVM answers. */
        CHECK(harness_wait_call(h, add) < 0);
        harness_settle(h);
        events = harness_events_take(h);
        CHECK_STREQ(events, "InterfacesAdded " V " org.vmgr1.VM\n"
                            "PropertiesChanged " G " org.vmgr1.Group VMs\n"
                            "PropertiesChanged " V " org.vmgr1.VM State=starting\n"
                            "PropertiesChanged " V " org.vmgr1.VM LastError=fake tap-create failure: Input/output error\n"
                            "PropertiesChanged " V " org.vmgr1.VM State=defined\n"
                            "InterfacesRemoved " V " org.vmgr1.VM\n"
                            "PropertiesChanged " G " org.vmgr1.Group VMs\n"
                            "error AddVM org.vmgr1.Error.HelperFailed\n");
        r = harness_call(h, G, VMGR_GROUP_INTERFACE, "GetVM", &error, NULL, "s", "v");
        CHECK_ERROR(r, &error, VMGR_ERROR_NO_SUCH_VM);
        sd_bus_error_free(&error);
        CHECK(!harness_object_exists(h, V));
        requests = harness_fake_requests(h);
        CHECK_CONTAINS(requests, "tap-create ready v 0\n");
        harness_fake_set(h, "tap-create", 0, 0);
}

/* docs: WaitReady "fails when the group is being deleted". */
static void test_group_deleted(Harness *h) {
        sd_bus_slot *add, *waiter, *delete;
        _cleanup_free_ char *events = NULL;

        harness_fake_set(h, "tap-create", TAP_DELAY_MS, EIO);
        add = harness_call_async(h, G, VMGR_GROUP_INTERFACE, "AddVM", "ss", "v", "{}");
        wait_starting(h);
        waiter = harness_call_async(h, G, VMGR_GROUP_INTERFACE, "WaitReady", "t", (uint64_t) 0);
        harness_settle(h);
        free(harness_events_take(h));
        delete = harness_call_async(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteGroup", "s", "ready");
        /* At once, while the VM's start still hangs in the helper. */
        CHECK(harness_wait_call_for(h, waiter, TAP_DELAY_MS / 2) < 0);
        events = harness_events_take(h);
        CHECK_STREQ(events, "PropertiesChanged " G " org.vmgr1.Group State=deleting\n"
                            "error WaitReady org.vmgr1.Error.NoSuchGroup\n");
        CHECK(harness_wait_call(h, add) < 0);
        CHECK(harness_wait_call(h, delete) == 0);
        harness_settle(h);
        CHECK_GROUP_GONE(h, "ready");
}

int main(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Harness h;

        harness_start(&h, NULL);
        CHECK_OK(harness_create_group(&h, "ready", "", &error), &error);
        harness_record_signals(&h);
        test_no_vms(&h);
        free(harness_events_take(&h));
        test_timeout(&h);
        test_group_deleted(&h);
        harness_stop(&h);
        printf("test-wait-ready: OK\n");
        return 0;
}
