/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The helper dying in the middle of a request (docs/design.md, "Group life
 * cycle"): the calls sent to the dead helper fail, the calls made from
 * their handlers wait for the new helper's replies (its replies are never
 * taken for unexpected ones), what the dead helper may have made is
 * deleted, a deletion without an answer is asked again, and a group whose
 * network cannot be deleted stays, failed, with its state file and name.
 */

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* Start a fresh request log, so that it shows exactly what follows. */
static void requests_reset(Harness *h) {
        char path[4200];

        snprintf(path, sizeof(path), "%s/requests.log", h->fake_dir);
        (void) unlink(path);
}

/* Whether vmgrd's log so far contains text. */
static bool log_contains(Harness *h, const char *text) {
        char line[4096];
        bool found = false;
        FILE *f;

        f = fopen(h->log_path, "re");
        if (!f)
                harness_fail(__FILE__, __LINE__, "cannot read %s: %m", h->log_path);
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, text) != NULL;
        fclose(f);
        return found;
}

static bool state_file_exists(Harness *h, const char *name) {
        char path[4200];
        struct stat st;

        snprintf(path, sizeof(path), "%s/state/groups/%s.json", h->dir, name);
        return stat(path, &st) == 0;
}

/* A CreateGroup of name that fails because the helper died: it says so,
 * and the group is gone. */
static void check_create_fails_cleanly(Harness *h, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *message = NULL;
        int r;

        CHECK(asprintf(&message, "cannot create group '%s': vmgr-netadm exited unexpectedly (see vmgrd's log)",
                       name) > 0);
        r = harness_create_group(h, name, "", &error);
        CHECK_ERROR(r, &error, VMGR_ERROR_HELPER_FAILED);
        CHECK_STREQ(error.message, message);
        sd_bus_error_free(&error);
        CHECK_GROUP_GONE(h, name);
}

/* The new helper is healthy: a group comes up on it and goes again. */
static void check_helper_works(Harness *h, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *object = NULL, *state = NULL;

        CHECK_OK(harness_create_group(h, name, "", &error), &error);
        CHECK(asprintf(&object, "/org/vmgr1/group/%s", name) > 0);
        state = harness_get_string(h, object, VMGR_GROUP_INTERFACE, "State");
        CHECK_STREQ(state, "running");
        harness_delete_group(h, name);
        CHECK_GROUP_GONE(h, name);
}

/* Killed during group-start's dnsmasq part: the undo's group-delete goes to the new
 * helper, and its reply is the answer vmgrd waits for, not an unexpected
 * one that would fail the undo and drop the new helper too. */
static void test_dies_starting_dnsmasq(Harness *h) {
        _cleanup_free_ char *requests = NULL, *log = NULL;

        requests_reset(h);
        harness_fake_die(h, "dnsmasq-start", 0, true);
        check_create_fails_cleanly(h, "a");
        CHECK(asprintf(&requests, "group-start a %s/run/groups/a\ngroup-delete a\n", h->dir) > 0);
        log = harness_fake_requests(h);
        CHECK_STREQ(log, requests);
        CHECK(!log_contains(h, "unexpected reply"));
        check_helper_works(h, "a");
}

/* Killed during group-start's network part: it may have made the bridge or
 * part of it, so the undo asks the new helper to delete the group's network. */
static void test_dies_creating_network(Harness *h) {
        _cleanup_free_ char *log = NULL, *requests = NULL;

        requests_reset(h);
        harness_fake_die(h, "group-create", 0, true);
        check_create_fails_cleanly(h, "b");
        log = harness_fake_requests(h);
        CHECK(asprintf(&requests, "group-start b %s/run/groups/b\ngroup-delete b\n", h->dir) > 0);
        CHECK_STREQ(log, requests);
        check_helper_works(h, "b");
}

/* Killed during a group-delete: a new helper is asked once more. */
static void test_dies_deleting_once(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *log = NULL;

        CHECK_OK(harness_create_group(h, "c", "", &error), &error);
        requests_reset(h);
        harness_fake_die(h, "group-delete", 0, true);
        harness_delete_group(h, "c");
        CHECK_GROUP_GONE(h, "c");
        log = harness_fake_requests(h);
        CHECK_STREQ(log, "group-delete c\ngroup-delete c\n");
}

/* Every helper dies deleting: the group stays, failed, with its state file
 * (for the next vmgrd) and its name; DeleteGroup tries again later. */
static void test_dies_deleting_always(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *log = NULL, *state = NULL;
        int r;

        CHECK_OK(harness_create_group(h, "d", "", &error), &error);
        requests_reset(h);
        harness_fake_die(h, "group-delete", 0, false);
        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteGroup", &error, NULL, "s", "d");
        CHECK_ERROR(r, &error, VMGR_ERROR_HELPER_FAILED);
        CHECK_STREQ(error.message, "vmgr-netadm exited unexpectedly (see vmgrd's log)");
        sd_bus_error_free(&error);
        log = harness_fake_requests(h);
        CHECK_STREQ(log, "group-delete d\ngroup-delete d\n");

        state = harness_get_string(h, "/org/vmgr1/group/d", VMGR_GROUP_INTERFACE, "State");
        CHECK_STREQ(state, "failed");
        CHECK(state_file_exists(h, "d"));
        r = harness_create_group(h, "d", "", &error);
        CHECK_ERROR(r, &error, VMGR_ERROR_GROUP_EXISTS);
        sd_bus_error_free(&error);

        harness_fake_reset(h, "group-delete");
        harness_delete_group(h, "d");
        CHECK_GROUP_GONE(h, "d");
}

int main(void) {
        Harness h;

        harness_start(&h, NULL);
        test_dies_starting_dnsmasq(&h);
        test_dies_creating_network(&h);
        test_dies_deleting_once(&h);
        test_dies_deleting_always(&h);
        CHECK(!log_contains(&h, "unexpected reply"));
        harness_stop(&h);
        printf("test-helper-death: OK\n");
        return 0;
}
