/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The error names callers see (daemon/bus-error.c, docs/dbus-api.md
 * "Errors"): one call at least for each kind of mapping. -EINVAL becomes
 * InvalidArgs, vmgr's own codes their org.vmgr1.Error.* names, the
 * file-like conditions FileExists/FileNotFound, and OpenNamespaces in host
 * mode NotSupported. Each check names the message too: it is what a person
 * reads.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

/* Every test uses group names of its own: groups of one uid share the
 * host's network namespace here, and the file servers of two groups of the
 * same name would want the same address and port. */
#define GROUP_PATH "/org/vmgr1/group/errors"

/* Call a Group method of group g expecting error want_name with want_message. */
#define CHECK_GROUP_CALL_FAILS(h, want_name, want_message, member, types, ...)                                      \
        do {                                                                                              \
                sd_bus_error _error = SD_BUS_ERROR_NULL;                                                  \
                int _r = harness_call((h), GROUP_PATH, VMGR_GROUP_INTERFACE, (member), &_error, NULL, (types), \
                                      __VA_ARGS__);                                                       \
                CHECK_ERROR(_r, &_error, (want_name));                                                         \
                CHECK_STREQ(_error.message, (want_message));                                                   \
                sd_bus_error_free(&_error);                                                               \
        } while (0)

static void test_manager_errors(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *mode = NULL;
        int r;

        /* vmgr codes. */
        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GetGroup", &error, NULL, "s", "nope");
        CHECK_ERROR(r, &error, VMGR_ERROR_NO_SUCH_GROUP);
        CHECK_STREQ(error.message, "no group 'nope'");
        sd_bus_error_free(&error);
        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteGroup", &error, NULL, "s", "nope");
        CHECK_ERROR(r, &error, VMGR_ERROR_NO_SUCH_GROUP);
        sd_bus_error_free(&error);
        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GetGroup", &error, NULL, "s", "-x");
        CHECK_ERROR(r, &error, VMGR_ERROR_INVALID_NAME);
        CHECK_STREQ(error.message, "invalid group name \"-x\": name starts with '.' or '-'");
        sd_bus_error_free(&error);

        /* NotSupported: host mode has no namespaces to hand out. */
        mode = harness_get_string(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "NetworkMode");
        CHECK_STREQ(mode, "host");
        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "OpenNamespaces", &error, NULL, NULL);
        CHECK_ERROR(r, &error, SD_BUS_ERROR_NOT_SUPPORTED);
        CHECK_STREQ(error.message, "vmgrd runs in host mode: its guests are reachable from its own network "
                                   "namespace, there is none to enter");
        sd_bus_error_free(&error);

        /* A group that does not exist has no object either (not just a method error). */
        r = harness_call(h, "/org/vmgr1/group/nope", "org.freedesktop.DBus.Properties", "Get", &error, NULL, "ss",
                         VMGR_GROUP_INTERFACE, "State");
        CHECK_ERROR(r, &error, SD_BUS_ERROR_UNKNOWN_OBJECT);
        sd_bus_error_free(&error);
}

static void test_group_errors(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        _cleanup_free_ char *files6 = NULL, *want_url = NULL;
        const char *url;
        int pipefd[2], fd, r;

        CHECK_OK(harness_create_group(h, "errors", "", &error), &error);

        /* InvalidArgs (-EINVAL): a protocol, an fd, an option of the wrong type. */
        CHECK_GROUP_CALL_FAILS(h, SD_BUS_ERROR_INVALID_ARGS, "invalid protocol \"sctp\": it must be \"tcp\" or \"udp\"",
                               "ForwardPort", "ssqsq", "v", "sctp", (uint16_t) 80, "", (uint16_t) 0);
        CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
        CHECK_GROUP_CALL_FAILS(h, SD_BUS_ERROR_INVALID_ARGS,
                               "cannot serve 'f': the fd is a pipe; only regular files can be served", "ServeFile",
                               "sh", "f", pipefd[0]);
        close(pipefd[0]);
        close(pipefd[1]);
        CHECK_GROUP_CALL_FAILS(h, SD_BUS_ERROR_INVALID_ARGS, "option follow must be a boolean", "FollowLogs", "a{sv}",
                               1, "follow", "s", "yes");

        /* vmgr codes on a group. */
        CHECK_GROUP_CALL_FAILS(h, VMGR_ERROR_NO_SUCH_VM, "group 'errors' has no VM 'nope'", "GetVM", "s", "nope");
        CHECK_GROUP_CALL_FAILS(h, VMGR_ERROR_INVALID_NAME, "invalid file name \".f\": it must not start with '.' or '-'",
                               "ServeFile", "sh", ".f", 0);

        /* FileExists / FileNotFound. */
        fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        r = harness_call(h, GROUP_PATH, VMGR_GROUP_INTERFACE, "ServeFile", &error, &reply, "sh", "f", fd);
        CHECK_OK(r, &error);
        CHECK(sd_bus_message_read(reply, "s", &url) > 0);
        files6 = harness_get_string(h, GROUP_PATH, VMGR_GROUP_INTERFACE, "Files6");
        CHECK(asprintf(&want_url, "http://[%s]:8080/f", files6) > 0);
        CHECK_STREQ(url, want_url);
        reply = sd_bus_message_unref(reply);
        CHECK_GROUP_CALL_FAILS(h, SD_BUS_ERROR_FILE_EXISTS, "group 'errors' already serves a file named 'f'; unserve it first",
                               "ServeFile", "sh", "f", fd);
        close(fd);
        CHECK_GROUP_CALL_FAILS(h, SD_BUS_ERROR_FILE_NOT_FOUND, "group 'errors' serves no file named 'nope'", "UnserveFile",
                               "s", "nope");
        r = harness_call(h, GROUP_PATH, VMGR_GROUP_INTERFACE, "UnserveFile", &error, NULL, "s", "f");
        CHECK_OK(r, &error);
        CHECK_GROUP_CALL_FAILS(h, SD_BUS_ERROR_FILE_NOT_FOUND, "group 'errors' serves no file named 'f'", "UnserveFile", "s",
                               "f");
        CHECK_GROUP_CALL_FAILS(h, SD_BUS_ERROR_FILE_NOT_FOUND, "group 'errors' has no tcp forward on [127.0.0.1]:1234",
                               "RemoveForward", "ssq", "tcp", "", (uint16_t) 1234);

        harness_delete_group(h, "errors");
        CHECK_GROUP_GONE(h, "errors");
}

/* The helper's errors as CreateGroup maps them (group.c). */
static void test_helper_errors(Harness *h) {
        static const struct {
                int errnum;
                const char *name;
        } cases[] = {
                { EADDRINUSE, VMGR_ERROR_ADDRESS_CONFLICT },
                { EADDRNOTAVAIL, VMGR_ERROR_ADDRESS_CONFLICT },
                { EBUSY, VMGR_ERROR_BUSY },
                { EPERM, VMGR_ERROR_PERMISSION_DENIED },
                { EDQUOT, VMGR_ERROR_LIMIT_EXCEEDED },
                { EIO, VMGR_ERROR_HELPER_FAILED },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r;

                harness_fake_set(h, "group-create", 0, cases[i].errnum);
                r = harness_create_group(h, "y", "", &error);
                CHECK_ERROR(r, &error, cases[i].name);
                CHECK_CONTAINS(error.message, strerror(cases[i].errnum));
                sd_bus_error_free(&error);
                CHECK_GROUP_GONE(h, "y");
        }
}

int main(void) {
        Harness h;

        harness_start(&h, NULL);
        test_manager_errors(&h);
        test_group_errors(&h);
        test_helper_errors(&h);
        harness_stop(&h);
        printf("test-bus-errors: OK\n");
        return 0;
}
