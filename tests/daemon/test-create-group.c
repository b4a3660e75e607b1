/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * CreateGroup's refusals and limits (docs/dbus-api.md, "Errors" and
 * "Limits"), and that a refused or failed CreateGroup leaves nothing
 * behind: no object, no state file, no directory, and nothing asked of
 * the helper that was not undone.
 */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

/* A CreateGroup that must fail with want before anything happens: no
 * request reaches the helper, and the group is nowhere. */
static void check_refused(Harness *h, const char *name, const char *spec, const char *want, const char *message) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *before = harness_fake_requests(h), *after = NULL;
        unsigned n = harness_count_groups(h);
        int r;

        r = harness_create_group(h, name, spec, &error);
        CHECK_ERROR(r, &error, want);
        CHECK_STREQ(error.message, message);
        sd_bus_error_free(&error);
        CHECK(harness_count_groups(h) == n);
        after = harness_fake_requests(h);
        CHECK_STREQ(after, before);
        /* A bad name cannot even be looked up (GetGroup says InvalidName);
         * a duplicate's name is the existing group's. */
        if (!streq(want, VMGR_ERROR_INVALID_NAME) && !streq(want, VMGR_ERROR_GROUP_EXISTS))
                CHECK_GROUP_GONE(h, name);
}

static void test_bad_names(Harness *h) {
        static const struct {
                const char *name, *why;
        } cases[] = {
                { "", "name is empty" },
                { "-a", "name starts with '.' or '-'" },
                { ".a", "name starts with '.' or '-'" },
                { "a/b", "name contains a character outside [A-Za-z0-9._-]" },
                { "a b", "name contains a character outside [A-Za-z0-9._-]" },
                { "\xc3\xbc", "name contains a character outside [A-Za-z0-9._-]" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "name is longer than 63 characters" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *message = NULL;

                CHECK(asprintf(&message, "invalid group name \"%s\": %s", cases[i].name, cases[i].why) > 0);
                check_refused(h, cases[i].name, "", VMGR_ERROR_INVALID_NAME, message);
        }
        /* 63 characters is the longest valid name: the refusal above is the limit, not any long name. */
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *longest = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        CHECK(strlen(longest) == 63);
        CHECK_OK(harness_create_group(h, longest, "", &error), &error);
        harness_delete_group(h, longest);
        CHECK_GROUP_GONE(h, longest);
}

static void test_bad_specs(Harness *h) {
        check_refused(h, "s", "{", VMGR_ERROR_INVALID_SPEC,
                      "invalid spec: .: not valid JSON at byte 1: unexpected end of input");
        check_refused(h, "s", "[]", VMGR_ERROR_INVALID_SPEC, "invalid spec: .: must be a JSON object");
        check_refused(h, "s", "{\"bogus\":1}", VMGR_ERROR_INVALID_SPEC, "invalid spec: bogus: unknown key");
        check_refused(h, "s", "{\"vms\":[{\"memory_mib\":1}]}", VMGR_ERROR_INVALID_SPEC,
                      "invalid spec: vms[0].memory_mib: must be an integer between 64 and 262144");
        /* max_vms_per_group = 1 in this test's config. */
        check_refused(h, "s", "{\"vms\":[{\"name\":\"a\"},{\"name\":\"b\"}]}", VMGR_ERROR_LIMIT_EXCEEDED,
                      "the spec has 2 VMs; the limit is 1 (max_vms_per_group)");
}

static void test_duplicate_and_limit(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        sd_bus_message *reply = NULL;
        const char *object;
        int r;

        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup", &error, &reply, "ss", "one",
                         "");
        CHECK_OK(r, &error);
        CHECK(sd_bus_message_read(reply, "o", &object) > 0);
        CHECK_STREQ(object, "/org/vmgr1/group/one");
        reply = sd_bus_message_unref(reply);
        path = harness_get_string(h, "/org/vmgr1/group/one", VMGR_GROUP_INTERFACE, "State");
        CHECK_STREQ(path, "running");

        check_refused(h, "one", "", VMGR_ERROR_GROUP_EXISTS, "group 'one' already exists");
        /* The refusal did not touch the group that exists. */
        free(path);
        path = harness_get_string(h, "/org/vmgr1/group/one", VMGR_GROUP_INTERFACE, "State");
        CHECK_STREQ(path, "running");

        /* max_groups = 2 in this test's config. */
        CHECK_OK(harness_create_group(h, "two", "", &error), &error);
        check_refused(h, "three", "", VMGR_ERROR_LIMIT_EXCEEDED,
                      "this vmgrd already holds 2 groups, its limit (max_groups)");
        CHECK(harness_count_groups(h) == 2);

        /* A freed slot is usable again. */
        harness_delete_group(h, "two");
        CHECK_GROUP_GONE(h, "two");
        CHECK_OK(harness_create_group(h, "three", "", &error), &error);
        harness_delete_group(h, "three");
        harness_delete_group(h, "one");
        CHECK_GROUP_GONE(h, "one");
        CHECK(harness_count_groups(h) == 0);
}

/* A CreateGroup that the helper makes fail: error name and message as
 * given, the group gone afterwards, and the helper's log as expected. */
static void check_helper_failure(Harness *h, const char *op, unsigned delay_ms, int errnum, const char *want,
                                 const char *message, const char *requests) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *log = NULL;
        char control[4200];
        int r;

        /* A fresh log, so that it shows exactly this creation's requests. */
        snprintf(control, sizeof(control), "%s/requests.log", h->fake_dir);
        (void) unlink(control);
        harness_fake_set(h, op, delay_ms, errnum);
        r = harness_create_group(h, "x", "", &error);
        CHECK_ERROR(r, &error, want);
        CHECK_STREQ(error.message, message);
        sd_bus_error_free(&error);
        CHECK_GROUP_GONE(h, "x");
        CHECK(harness_count_groups(h) == 0);
        log = harness_fake_requests(h);
        CHECK_STREQ(log, requests);
        snprintf(control, sizeof(control), "%s/%s", h->fake_dir, op);
        CHECK(unlink(control) == 0);
}

static void test_helper_failures(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *dnsmasq_line = NULL, *requests = NULL;

        /* A network-only group is one group-start: network and dnsmasq. */
        CHECK(asprintf(&dnsmasq_line, "group-start x %s/run/groups/x\n", h->dir) > 0);

        /* The helper undoes a failed group-start itself (its network part
         * or its dnsmasq part): nothing to delete. */
        check_helper_failure(h, "group-create", 0, EADDRINUSE, VMGR_ERROR_ADDRESS_CONFLICT,
                             "cannot create group 'x': fake group-create failure: Address already in use",
                             dnsmasq_line);
        check_helper_failure(h, "group-create", 0, EIO, VMGR_ERROR_HELPER_FAILED,
                             "cannot create group 'x': fake group-create failure: Input/output error", dnsmasq_line);
        check_helper_failure(h, "dnsmasq-start", 0, EIO, VMGR_ERROR_HELPER_FAILED,
                             "cannot create group 'x': fake dnsmasq-start failure: Input/output error", dnsmasq_line);
        /* dnsmasq_ready_timeout_sec = 1 in this test's config; dnsmasq
         * writes its pid file 1.5 s after the answer. The network was
         * made: it is deleted again before the answer. */
        CHECK(asprintf(&requests, "%sgroup-delete x\n", dnsmasq_line) > 0);
        check_helper_failure(h, "dnsmasq-start", 1500, 0, VMGR_ERROR_TIMEOUT,
                             "cannot create group 'x': dnsmasq did not become ready in time", requests);

        /* Nothing was in the way: the same name works now. */
        CHECK_OK(harness_create_group(h, "x", "", &error), &error);
        harness_delete_group(h, "x");
        CHECK_GROUP_GONE(h, "x");
}

int main(void) {
        Harness h;

        harness_start(&h, "max_groups = 2\nmax_vms_per_group = 1\ndnsmasq_ready_timeout_sec = 1\n");
        test_bad_names(&h);
        test_bad_specs(&h);
        test_duplicate_and_limit(&h);
        test_helper_failures(&h);
        harness_stop(&h);
        printf("test-create-group: OK\n");
        return 0;
}
