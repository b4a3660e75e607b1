/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The daemon tests' harness: each test gets a private dbus-daemon, a vmgrd
 * from the build tree on it (host mode, temp state/runtime/cache
 * directories) and, as its helper, tests/daemon/fake-netadm, which answers
 * the helper's protocol without touching any network. Nothing needs root,
 * a capability, a namespace, KVM or libvirtd; as root, vmgrd drops to an
 * unprivileged user as it does in production ($VMGR_TEST_USER, default
 * "nobody").
 *
 * The checks end the test at the first failure (exit 1) after printing
 * where, why and the tail of vmgrd's log; vmgrd and the bus are stopped
 * and the temp directory removed however the test ends.
 */

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "macro.h"
#include "vmgr-error.h"

typedef struct Harness {
        char *dir;              /* the test's temp directory */
        char *fake_dir;         /* the fake helper's control directory ($VMGR_FAKE_NETADM_DIR) */
        char *log_path;         /* vmgrd's stdout and stderr */
        pid_t bus_pid, vmgrd_pid;
        sd_bus *bus;            /* the test's own connection */
        char **events;          /* signals and recorded replies, in order of arrival */
        size_t n_events;
} Harness;

_printf_(3, 4) _noreturn_ void harness_fail(const char *file, int line, const char *format, ...);

#define CHECK(expr)                                                                   \
        do {                                                                          \
                if (!(expr))                                                          \
                        harness_fail(__FILE__, __LINE__, "check failed: %s", #expr); \
        } while (0)

#define CHECK_STREQ(a, b)                                                                                  \
        do {                                                                                               \
                const char *_a = (a), *_b = (b);                                                           \
                if (!_a || !_b || strcmp(_a, _b) != 0)                                                     \
                        harness_fail(__FILE__, __LINE__, "%s == %s failed:\n  got:  \"%s\"\n  want: \"%s\"", \
                                     #a, #b, _a ?: "(null)", _b ?: "(null)");                              \
        } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                                   \
        do {                                                                                               \
                const char *_h = (haystack), *_n = (needle);                                               \
                if (!_h || !strstr(_h, _n))                                                                \
                        harness_fail(__FILE__, __LINE__, "%s does not contain \"%s\": \"%s\"", #haystack, _n, \
                                     _h ?: "(null)");                                                      \
        } while (0)

/* A call (r from sd_bus_call*) failed with the error name want. */
#define CHECK_ERROR(r, error, want)                                                                            \
        do {                                                                                                   \
                const sd_bus_error *_e = (error);                                                              \
                if ((r) >= 0 || !sd_bus_error_has_name(_e, (want)))                                            \
                        harness_fail(__FILE__, __LINE__, "expected error %s, got r=%d %s: %s", (want), (int) (r), \
                                     _e->name ?: "(no error)", _e->message ?: "");                             \
        } while (0)

/* A call succeeded. */
#define CHECK_OK(r, error)                                                                                  \
        do {                                                                                                \
                const sd_bus_error *_e = (error);                                                           \
                if ((r) < 0)                                                                                \
                        harness_fail(__FILE__, __LINE__, "call failed: r=%d %s: %s", (int) (r),               \
                                     _e->name ?: "(no error)", _e->message ?: "");                          \
        } while (0)

/* Start the bus, then vmgrd with config (the text of its --config file;
 * NULL: none) and the fake helper, and connect. Fails the test if any of it
 * does not work. */
void harness_start(Harness *h, const char *config);

/* Stop vmgrd with SIGTERM and check that it exits 0, then the bus; remove
 * the temp directory. */
void harness_stop(Harness *h);

/* Call member of interface at path on org.vmgr1 and wait for the answer.
 * reply may be NULL. Returns what sd_bus_call() returns. */
int harness_call(Harness *h, const char *path, const char *interface, const char *member, sd_bus_error *error,
                 sd_bus_message **reply, const char *types, ...);

/* A string property's value (malloc'd), failing the test when it cannot be read. */
char *harness_get_string(Harness *h, const char *path, const char *interface, const char *property);

/* Whether path is an object of vmgrd's ObjectManager (GetManagedObjects). */
bool harness_object_exists(Harness *h, const char *path);

/* Call Manager.CreateGroup (spec "" for a network-only group). Returns
 * what sd_bus_call() returns. */
int harness_create_group(Harness *h, const char *name, const char *spec, sd_bus_error *error);

/* Call Manager.DeleteGroup, failing the test if it fails. */
void harness_delete_group(Harness *h, const char *name);

/* How many groups ListGroups returns. */
unsigned harness_count_groups(Harness *h);

/* Check that no trace of group name is left: GetGroup says NoSuchGroup,
 * GetManagedObjects lacks its object, its state file, state and runtime
 * directories are gone. */
#define CHECK_GROUP_GONE(h, name) harness_check_group_gone((h), (name), __FILE__, __LINE__)
void harness_check_group_gone(Harness *h, const char *name, const char *file, int line);

/* What the fake helper does for op ("group-create", "tap-create", ...):
 * answer after delay_ms, with -error (0: success). */
void harness_fake_set(Harness *h, const char *op, unsigned delay_ms, int error);

/* Make the fake helper die of SIGKILL delay_ms into its next request for op,
 * without answering: once (the helper vmgrd starts next answers), or at
 * every such request until harness_fake_set() or harness_fake_reset(). */
void harness_fake_die(Harness *h, const char *op, unsigned delay_ms, bool once);

/* Forget what harness_fake_set() or harness_fake_die() said for op. */
void harness_fake_reset(Harness *h, const char *op);

/* The fake helper's request log as one string (malloc'd; "" when empty). */
char *harness_fake_requests(Harness *h);

/* Record every signal vmgrd sends from now on into h->events, one line
 * each: "MEMBER PATH [details]", PropertiesChanged as
 * "PropertiesChanged PATH INTERFACE Name=value Timings[stage,...] Other"
 * (string and number values shown, and which stages Timings holds),
 * InterfacesAdded/Removed with the object and its org.vmgr1 interfaces. */
void harness_record_signals(Harness *h);

/* Start a call whose answer is recorded into h->events as "reply MEMBER" or
 * "error MEMBER ERROR.NAME" where it falls among the signals. Returns a slot
 * to pass to harness_wait_call(). */
sd_bus_slot *harness_call_async(Harness *h, const char *path, const char *interface, const char *member,
                                const char *types, ...);

/* Process the bus until the answer of slot's call is recorded (fails the
 * test after 30 s). Returns 0 on a method return, else -1. */
int harness_wait_call(Harness *h, sd_bus_slot *slot);

/* The same, for at most timeout_ms: returns 1 (and keeps the slot) when no
 * answer came in that time. */
int harness_wait_call_for(Harness *h, sd_bus_slot *slot, unsigned timeout_ms);

/* Make sure every signal vmgrd sent before now is in h->events: one round
 * trip to vmgrd (the bus keeps one sender's messages in order), then
 * dispatch what came meanwhile. */
void harness_settle(Harness *h);

/* h->events joined with newlines (malloc'd), and emptied. */
char *harness_events_take(Harness *h);

/* Milliseconds of CLOCK_MONOTONIC. */
unsigned long long harness_now_ms(void);
