/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A caller's string arrays are refused by their length while they are
 * read, not after: Run with 100000 arguments, Exec with 300 env entries,
 * FollowLogs with 300 VM names. sd_bus_message_read_strv() used to copy
 * every string first, in time quadratic in their number (200000 arguments
 * froze vmgrd for every client for seconds), and Run and Exec then failed
 * on the VM's state, never saying that the array was too long.
 * And a timeout of 2^64-1 means no limit (WaitReady), not an error.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "agent-proto.h"
#include "harness.h"

#define G "/org/vmgr1/group/limits"
#define V G "/vm/v"

/* n strings "x" (NULL-terminated, one allocation). */
static char **strings(size_t n, const char *s) {
        char **l = calloc(n + 1, sizeof(char *));

        CHECK(l);
        for (size_t i = 0; i < n; i++)
                l[i] = (char *) s;
        return l;
}

static int call(Harness *h, sd_bus_message *m, sd_bus_error *error) {
        return sd_bus_call(h->bus, m, 60 * 1000 * 1000, error, NULL);
}

static void test_run_args(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        char **argv = strings(100000, "x");
        int r;

        CHECK(sd_bus_message_new_method_call(h->bus, &m, "org.vmgr1", V, VMGR_VM_INTERFACE, "Run") >= 0);
        CHECK(sd_bus_message_append_strv(m, argv) >= 0);
        CHECK(sd_bus_message_append_array(m, 'y', "", 0) >= 0);
        CHECK(sd_bus_message_append(m, "t", (uint64_t) 0) >= 0);
        r = call(h, m, &error);
        CHECK_ERROR(r, &error, "org.vmgr1.Error.LimitExceeded");
        CHECK_CONTAINS(error.message, "at most 256 arguments");
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        free(argv);
}

static void test_exec_env(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        char **env = strings(VMGR_AGENT_ENV_MAX + 44, "A=1");
        int r;

        CHECK(sd_bus_message_new_method_call(h->bus, &m, "org.vmgr1", V, VMGR_VM_INTERFACE, "Exec") >= 0);
        CHECK(sd_bus_message_append_strv(m, (char *[]) { (char *) "true", NULL }) >= 0);
        CHECK(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        CHECK(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        CHECK(sd_bus_message_append(m, "s", "env") >= 0);
        CHECK(sd_bus_message_open_container(m, 'v', "as") >= 0);
        CHECK(sd_bus_message_append_strv(m, env) >= 0);
        CHECK(sd_bus_message_close_container(m) >= 0);
        CHECK(sd_bus_message_close_container(m) >= 0);
        CHECK(sd_bus_message_close_container(m) >= 0);
        r = call(h, m, &error);
        CHECK_ERROR(r, &error, "org.vmgr1.Error.LimitExceeded");
        CHECK_CONTAINS(error.message, "env entries");
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        free(env);
}

static void test_follow_logs_vms(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        char **vms = strings(300, "v");
        int r;

        CHECK(sd_bus_message_new_method_call(h->bus, &m, "org.vmgr1", G, VMGR_GROUP_INTERFACE, "FollowLogs") >= 0);
        CHECK(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        CHECK(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        CHECK(sd_bus_message_append(m, "s", "vms") >= 0);
        CHECK(sd_bus_message_open_container(m, 'v', "as") >= 0);
        CHECK(sd_bus_message_append_strv(m, vms) >= 0);
        CHECK(sd_bus_message_close_container(m) >= 0);
        CHECK(sd_bus_message_close_container(m) >= 0);
        CHECK(sd_bus_message_close_container(m) >= 0);
        r = call(h, m, &error);
        CHECK_ERROR(r, &error, "org.freedesktop.DBus.Error.InvalidArgs");
        CHECK_CONTAINS(error.message, "too many entries");
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        free(vms);
}

/* A timeout of 2^64-1 (sd-bus's "infinity") means no limit, as 0 does:
 * WaitReady of a VM that is not ready, and of its group, waits instead of
 * failing at once with "Value too large for defined data type" (sd-event
 * refused the deadline). Returns the two calls, still waiting. */
static void test_wait_ready_infinity(Harness *h, sd_bus_slot **vm_wait, sd_bus_slot **group_wait) {
        *vm_wait = harness_call_async(h, V, VMGR_VM_INTERFACE, "WaitReady", "t", UINT64_MAX);
        *group_wait = harness_call_async(h, G, VMGR_GROUP_INTERFACE, "WaitReady", "t", UINT64_MAX - 1);
        CHECK(harness_wait_call_for(h, *vm_wait, 500) == 1);
        CHECK(harness_wait_call_for(h, *group_wait, 100) == 1);
}

int main(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_slot *add, *vm_wait, *group_wait;
        Harness h;

        harness_start(&h, NULL);
        CHECK_OK(harness_create_group(&h, "limits", "", &error), &error);
        /* A VM object that stays while the tests run: its TAP request is
         * answered (with a failure) only after they are done. */
        harness_fake_set(&h, "tap-create", 4000, EIO);
        add = harness_call_async(&h, G, VMGR_GROUP_INTERFACE, "AddVM", "ss", "v", "{}");
        harness_settle(&h);
        CHECK(harness_object_exists(&h, V));
        test_run_args(&h);
        test_exec_env(&h);
        test_follow_logs_vms(&h);
        test_wait_ready_infinity(&h, &vm_wait, &group_wait);
        CHECK(harness_wait_call(&h, add) < 0);
        /* The start failed, the VM is gone: the waiters hear of it. */
        CHECK(harness_wait_call(&h, vm_wait) < 0);
        (void) harness_wait_call(&h, group_wait);
        harness_delete_group(&h, "limits");
        harness_stop(&h);
        printf("test-bus-limits: OK\n");
        return 0;
}
