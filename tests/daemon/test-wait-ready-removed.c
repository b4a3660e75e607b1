/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * WaitReady without a timeout on a VM, and on its group, while the VM's
 * start fails and the VM is then removed: the VM's caller fails with
 * NoSuchVM and the group's succeeds (no VM is left that is not ready).
 * A VM that never started is still "defined" when it goes, so no state
 * change tells anyone: vm_unlink() has to (vm_ready_unlinked()). Without
 * that, both callers waited for their own timeouts.
 */

#include <errno.h>
#include <stdlib.h>

#include "harness.h"

#define G "/org/vmgr1/group/removed"
#define V G "/vm/v"

int main(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_slot *add, *vm_waiter, *group_waiter;
        char *events;
        Harness h;

        harness_start(&h, NULL);
        CHECK_OK(harness_create_group(&h, "removed", "", &error), &error);
        harness_fake_set(&h, "tap-create", 500, EIO);
        add = harness_call_async(&h, G, VMGR_GROUP_INTERFACE, "AddVM", "ss", "v", "{}");
        vm_waiter = harness_call_async(&h, V, VMGR_VM_INTERFACE, "WaitReady", "t", (uint64_t) 0);
        group_waiter = harness_call_async(&h, G, VMGR_GROUP_INTERFACE, "WaitReady", "t", (uint64_t) 0);
        CHECK(harness_wait_call(&h, add) < 0);
        CHECK(harness_wait_call_for(&h, vm_waiter, 3000) < 0);
        CHECK(harness_wait_call_for(&h, group_waiter, 3000) == 0);
        events = harness_events_take(&h);
        CHECK_CONTAINS(events, "error WaitReady org.vmgr1.Error.NoSuchVM");
        CHECK_CONTAINS(events, "reply WaitReady");
        free(events);
        harness_delete_group(&h, "removed");
        harness_stop(&h);
        printf("test-wait-ready-removed: OK\n");
        return 0;
}
