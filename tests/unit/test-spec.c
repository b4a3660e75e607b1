/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "spec.h"
#include "test.h"

/* Parse and expect failure with an error that starts with prefix. */
static void expect_error(const char *json, const char *prefix) {
        VmgrSpec *spec = NULL;
        char error[VMGR_SPEC_ERROR_MAX] = "";

        CHECK(vmgr_spec_parse(json, &spec, error) == -EINVAL);
        CHECK(spec == NULL);
        if (strncmp(error, prefix, strlen(prefix)) != 0) {
                fprintf(stderr, "for %s: expected error starting \"%s\", got \"%s\"\n", json, prefix, error);
                exit(1);
        }
}

static void test_empty(void) {
        VmgrSpec *spec = NULL;
        char error[VMGR_SPEC_ERROR_MAX];

        CHECK(vmgr_spec_parse("", &spec, error) == 0);
        CHECK(spec->n_vms == 0);
        vmgr_spec_free(spec);
        CHECK(vmgr_spec_parse(" \n", &spec, error) == 0);
        vmgr_spec_free(spec);
        CHECK(vmgr_spec_parse("{}", &spec, error) == 0);
        CHECK(spec->accelerator == VMGR_ACCEL_AUTO);
        CHECK(!spec->outbound);
        vmgr_spec_free(spec);
}

static void test_outbound(void) {
        VmgrSpec *spec = NULL;
        char error[VMGR_SPEC_ERROR_MAX] = "";

        CHECK(vmgr_spec_parse("{\"outbound\": true}", &spec, error) == 0);
        CHECK(spec->outbound && spec->n_vms == 0);
        vmgr_spec_free(spec);
        CHECK(vmgr_spec_parse("{\"outbound\": false, \"vms\": [{\"name\": \"a\"}]}", &spec, error) == 0);
        CHECK(!spec->outbound && spec->n_vms == 1);
        vmgr_spec_free(spec);
        expect_error("{\"outbound\": 1}", "outbound: must be true or false");
        expect_error("{\"outbound\": \"yes\"}", "outbound: must be true or false");
        expect_error("{\"outbound\": null}", "outbound: must be true or false");
        /* It belongs to the group, not to a VM. */
        expect_error("{\"vms\": [{\"name\": \"a\", \"outbound\": true}]}", "vms[0].outbound: unknown key");
}

static void test_full(void) {
        VmgrSpec *spec = NULL;
        char error[VMGR_SPEC_ERROR_MAX] = "";

        CHECK(vmgr_spec_parse("{\"accelerator\": \"tcg\", \"collect_on_delete\": \"/tmp/b\", \"vms\": ["
                              "{\"name\": \"a\"},"
                              "{\"name\": \"b\", \"vcpus\": 2, \"memory_mib\": 512, \"ipv4\": true,"
                              " \"kernel\": \"/k\", \"initrd\": \"/i\", \"cmdline\": \"quiet\","
                              " \"extra_disks\": [{\"size_mib\": 64}, {\"path\": \"/d.qcow2\", \"format\": \"qcow2\"}],"
                              " \"ready_probe\": [\"test\", \"-e\", \"/ok\"], \"agent\": true,"
                              " \"log_rate_kib\": 8, \"log_burst_kib\": 32, \"console_log_max_kib\": 256},"
                              "{\"name\": \"c\", \"disk\": \"/img.raw\", \"disk_format\": \"raw\"}]}",
                              &spec, error) == 0);
        CHECK(spec->accelerator == VMGR_ACCEL_TCG);
        CHECK_STREQ(spec->collect_on_delete, "/tmp/b");
        CHECK(spec->n_vms == 3);
        CHECK_STREQ(spec->vms[0].name, "a");
        CHECK(spec->vms[0].vcpus == 1 && spec->vms[0].memory_mib == 256 && !spec->vms[0].ipv4);
        CHECK(spec->vms[0].log_rate_kib == 64 && spec->vms[0].log_burst_kib == 1024 &&
              spec->vms[0].console_log_max_kib == 8192);
        CHECK(spec->vms[1].log_rate_kib == 8 && spec->vms[1].log_burst_kib == 32 &&
              spec->vms[1].console_log_max_kib == 256);
        CHECK(spec->vms[1].vcpus == 2 && spec->vms[1].memory_mib == 512 && spec->vms[1].ipv4);
        CHECK_STREQ(spec->vms[1].kernel, "/k");
        CHECK(spec->vms[1].n_extra_disks == 2);
        CHECK(spec->vms[1].extra_disks[0].size_mib == 64);
        CHECK(spec->vms[1].extra_disks[1].format == VMGR_DISK_FORMAT_QCOW2);
        CHECK_STREQ(spec->vms[1].ready_probe[2], "/ok");
        CHECK(spec->vms[1].ready_probe[3] == NULL);
        CHECK_STREQ(spec->vms[2].disk.path, "/img.raw");
        CHECK(spec->vms[2].disk.format == VMGR_DISK_FORMAT_RAW);
        vmgr_spec_free(spec);
}

static void test_errors(void) {
        expect_error("[", ".: not valid JSON");
        expect_error("{\"vms\": [}", ".: not valid JSON");
        expect_error("{} x", ".: not valid JSON");
        expect_error("[]", ".: must be a JSON object");
        expect_error("{\"bogus\": 1}", "bogus: unknown key");
        expect_error("{\"vms\": {}}", "vms: must be an array");
        expect_error("{\"vms\": [1]}", "vms[0]: must be an object");
        expect_error("{\"vms\": [{}]}", "vms[0]: needs a \"name\"");
        expect_error("{\"vms\": [{\"name\": \"a b\"}]}", "vms[0].name: name contains");
        expect_error("{\"vms\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}", "vms[1]: VM name \"a\" is used twice");
        expect_error("{\"vms\": [{\"name\": \"a\", \"vcpus\": 0}]}", "vms[0].vcpus: must be an integer between 1 and 64");
        expect_error("{\"vms\": [{\"name\": \"a\", \"vcpus\": \"2\"}]}", "vms[0].vcpus: must be an integer");
        expect_error("{\"vms\": [{\"name\": \"a\", \"memory_mib\": 1}]}", "vms[0].memory_mib: must be");
        expect_error("{\"vms\": [{\"name\": \"a\", \"kernel\": \"rel\"}]}", "vms[0].kernel: must be an absolute path");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ipv4\": 1}]}", "vms[0].ipv4: must be true or false");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe\": []}]}", "vms[0].ready_probe: must be a non-empty");
        expect_error("{\"vms\": [{\"name\": \"a\", \"log_rate_kib\": 0}]}", "vms[0].log_rate_kib: must be an integer between 1");
        expect_error("{\"vms\": [{\"name\": \"a\", \"console_log_max_kib\": 1}]}",
                     "vms[0].console_log_max_kib: must be an integer between 64");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe\": [\"x\", 1]}]}", "vms[0].ready_probe[1]: must be a string");
        expect_error("{\"vms\": [{\"name\": \"a\", \"extra_disks\": [{}]}]}", "vms[0].extra_disks[0]: needs");
        expect_error("{\"vms\": [{\"name\": \"a\", \"extra_disks\": [{\"size_mib\": 1, \"x\": 1}]}]}",
                     "vms[0].extra_disks[0].x: unknown key");
        expect_error("{\"vms\": [{\"name\": \"a\", \"disk\": \"/d\", \"kernel\": \"/k\"}]}", "vms[0]: boots either");
        expect_error("{\"vms\": [{\"name\": \"a\", \"initrd\": \"/i\"}]}", "vms[0]: \"initrd\" and \"cmdline\" need");
        expect_error("{\"vms\": [{\"name\": \"a\", \"disk_format\": \"vmdk\"}]}", "vms[0].disk_format: must be");
        expect_error("{\"accelerator\": \"xen\"}", "accelerator: must be");
        expect_error("{\"vms\": [{\"name\": \"a\", \"bogus\": true}]}", "vms[0].bogus: unknown key");
        /* A NUL inside a name must not cut it short to another, valid name. */
        expect_error("{\"vms\": [{\"name\": \"a\\u0000zzz\"}]}", "vms[0].name: contains a NUL character");
}

/* The size limit holds for a spec of white space too (it used to be
 * checked only once the text was known not to be empty). */
static void test_size_limit(void) {
        size_t n = VMGR_SPEC_MAX_BYTES + 1;
        char *big = malloc(n + 1);
        char error[VMGR_SPEC_ERROR_MAX] = "";
        VmgrSpec *spec = NULL;
        VmgrVMSpec vm;

        CHECK(big);
        memset(big, ' ', n);
        big[n] = 0;
        CHECK(vmgr_spec_parse(big, &spec, error) == -EINVAL);
        CHECK(spec == NULL);
        CHECK(strstr(error, "spec is larger than"));
        error[0] = 0;
        CHECK(vmgr_vm_spec_parse(big, "d", &vm, error) == -EINVAL);
        CHECK(strstr(error, "spec is larger than"));
        /* At the limit, white space is still "no spec". */
        big[n - 1] = 0;
        CHECK(vmgr_spec_parse(big, &spec, error) == 0);
        vmgr_spec_free(spec);
        free(big);
}

/* An unknown key longer than the error buffer: the path is cut, the reason
 * stays (it used to be "KEY..." with no reason at all). */
static void test_long_key(void) {
        size_t n = 3 * VMGR_SPEC_ERROR_MAX;
        char *json = malloc(n + 32), *p;
        char error[VMGR_SPEC_ERROR_MAX] = "";
        VmgrSpec *spec = NULL;

        CHECK(json);
        p = stpcpy(json, "{\"");
        memset(p, 'k', n);
        strcpy(p + n, "\": 1}");
        CHECK(vmgr_spec_parse(json, &spec, error) == -EINVAL);
        CHECK(spec == NULL);
        CHECK(strlen(error) < VMGR_SPEC_ERROR_MAX);
        CHECK(strncmp(error, "kkkk", 4) == 0);
        CHECK(strstr(error, "...: unknown key"));

        /* In a VM: the path is "vms[0].KEY", already cut shorter. */
        p = stpcpy(json, "{\"vms\": [{\"");
        memset(p, 'k', n);
        strcpy(p + n, "\": 1}]}");
        CHECK(vmgr_spec_parse(json, &spec, error) == -EINVAL);
        CHECK(strncmp(error, "vms[0].kkkk", 11) == 0);
        CHECK(strstr(error, "k: unknown key"));
        free(json);

        /* A path that just fits is not cut. */
        json = malloc(VMGR_SPEC_ERROR_MAX + 32);
        CHECK(json);
        n = VMGR_SPEC_ERROR_MAX - 1 - strlen(": unknown key");
        p = stpcpy(json, "{\"");
        memset(p, 'k', n);
        strcpy(p + n, "\": 1}");
        CHECK(vmgr_spec_parse(json, &spec, error) == -EINVAL);
        CHECK(strlen(error) == VMGR_SPEC_ERROR_MAX - 1);
        CHECK(!strstr(error, "..."));
        CHECK(strstr(error, "k: unknown key"));
        free(json);
}

static void test_vm_spec(void) {
        VmgrVMSpec vm;
        char error[VMGR_SPEC_ERROR_MAX];

        CHECK(vmgr_vm_spec_parse("{\"name\": \"x\", \"memory_mib\": 128}", NULL, &vm, error) == 0);
        CHECK_STREQ(vm.name, "x");
        CHECK(vm.memory_mib == 128);
        vmgr_vm_spec_done(&vm);
        CHECK(vmgr_vm_spec_parse("{\"memory_mib\": 128}", NULL, &vm, error) == -EINVAL);
        CHECK(strstr(error, "needs a \"name\""));
        CHECK(vmgr_vm_spec_parse("{\"name\": \"x\", \"kernel\": 5}", NULL, &vm, error) == -EINVAL);
        CHECK_STREQ(error, "kernel: must be a string");
        CHECK(vmgr_vm_spec_parse("", "d", &vm, error) == 0);
        CHECK_STREQ(vm.name, "d");
        CHECK(vm.vcpus == 1 && vm.memory_mib == 256);
        vmgr_vm_spec_done(&vm);
        CHECK(vmgr_vm_spec_parse("{\"ipv4\": true}", "d", &vm, error) == 0);
        CHECK(vm.ipv4);
        vmgr_vm_spec_done(&vm);
        CHECK(vmgr_vm_spec_parse("{\"name\": \"d\"}", "d", &vm, error) == 0);
        vmgr_vm_spec_done(&vm);
        CHECK(vmgr_vm_spec_parse("{\"name\": \"e\"}", "d", &vm, error) == -EINVAL);
        CHECK(strstr(error, "name: differs"));
}

/* The real-guest keys: firmware, agent, host probes, console regex,
 * cloud-init, journal. */
static void test_real_guest(void) {
        VmgrSpec *spec = NULL;
        char error[VMGR_SPEC_ERROR_MAX] = "";
        VmgrVMSpec *vm;

        CHECK(vmgr_spec_parse("{\"vms\": [{\"name\": \"a\"}, {\"name\": \"d\", \"disk\": \"/i.qcow2\"},"
                              "{\"name\": \"k\", \"kernel\": \"/k\"}]}", &spec, error) == 0);
        CHECK(spec->vms[0].firmware == VMGR_FIRMWARE_BIOS && spec->vms[0].agent == -1);
        CHECK(spec->vms[0].host_probe.type == VMGR_HOST_PROBE_NONE && !spec->vms[0].ready_console);
        CHECK(!spec->vms[0].cloud_init.enabled && spec->vms[0].journal == VMGR_JOURNAL_NONE);
        /* The default guest has the agent; an image of the user's does not unless said. */
        CHECK(vmgr_vm_spec_has_agent(&spec->vms[0]));
        CHECK(!vmgr_vm_spec_has_agent(&spec->vms[1]));
        CHECK(!vmgr_vm_spec_has_agent(&spec->vms[2]));
        vmgr_spec_free(spec);

        CHECK(vmgr_spec_parse("{\"vms\": [{\"name\": \"d\", \"disk\": \"/i.qcow2\", \"firmware\": \"uefi\","
                              "\"ready_probe_host\": {\"http\": \"/health?x=1\", \"port\": 8080, \"status\": 204},"
                              "\"ready_console\": \"^login: $\", \"journal\": \"gatewayd\","
                              "\"cloud_init\": {\"user_data\": \"#cloud-config\\n\", \"meta_data\": {\"a\": 1},"
                              "\"network_config\": {\"version\": 2}, \"install_agent\": true}}]}", &spec, error) == 0);
        vm = &spec->vms[0];
        CHECK(vm->firmware == VMGR_FIRMWARE_UEFI && vm->journal == VMGR_JOURNAL_GATEWAYD);
        CHECK(vm->host_probe.type == VMGR_HOST_PROBE_HTTP && vm->host_probe.port == 8080);
        CHECK(vm->host_probe.http_status == 204 && streq(vm->host_probe.http_path, "/health?x=1"));
        CHECK(streq(vm->ready_console, "^login: $"));
        CHECK(vm->cloud_init.enabled && vm->cloud_init.install_agent);
        CHECK(streq(vm->cloud_init.user_data, "#cloud-config\n"));
        CHECK(streq(vm->cloud_init.meta_data, "{\"a\":1}"));
        CHECK(streq(vm->cloud_init.network_config, "{\"version\":2}"));
        /* A seed that installs the agent gives the VM one. */
        CHECK(vm->agent == -1 && vmgr_vm_spec_has_agent(vm));
        vmgr_spec_free(spec);

        CHECK(vmgr_spec_parse("{\"vms\": [{\"name\": \"d\", \"disk\": \"/i\", \"agent\": true, \"cloud_init\": true,"
                              "\"ready_probe_host\": {\"tcp\": 22}, \"ready_probe\": [\"true\"]},"
                              "{\"name\": \"e\", \"ready_probe_host\": {\"ping\": true}, \"agent\": false}]}",
                              &spec, error) == 0);
        CHECK(spec->vms[0].agent == 1 && vmgr_vm_spec_has_agent(&spec->vms[0]));
        CHECK(spec->vms[0].cloud_init.enabled && !spec->vms[0].cloud_init.install_agent);
        CHECK(spec->vms[0].host_probe.type == VMGR_HOST_PROBE_TCP && spec->vms[0].host_probe.port == 22);
        CHECK(spec->vms[1].host_probe.type == VMGR_HOST_PROBE_PING && !vmgr_vm_spec_has_agent(&spec->vms[1]));
        vmgr_spec_free(spec);

        expect_error("{\"vms\": [{\"name\": \"a\", \"firmware\": \"efi\"}]}", "vms[0].firmware: must be \"bios\" or \"uefi\"");
        expect_error("{\"vms\": [{\"name\": \"a\", \"agent\": 1}]}", "vms[0].agent: must be true or false");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {}}]}", "vms[0].ready_probe_host: needs one of");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {\"tcp\": 0}}]}",
                     "vms[0].ready_probe_host.tcp: must be an integer between 1 and 65535");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {\"tcp\": 1, \"ping\": true}}]}",
                     "vms[0].ready_probe_host.ping: only one of");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {\"tcp\": 1, \"status\": 200}}]}",
                     "vms[0].ready_probe_host: \"status\" only goes with \"http\"");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {\"http\": \"x\"}}]}",
                     "vms[0].ready_probe_host.http: must be a path starting with");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {\"http\": \"/a b\"}}]}",
                     "vms[0].ready_probe_host.http: must be printable ASCII");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {\"http\": \"/\\r\\nX: y\"}}]}",
                     "vms[0].ready_probe_host.http: must be printable ASCII");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_probe_host\": {\"ping\": false}}]}",
                     "vms[0].ready_probe_host.ping: must be true");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_console\": \"(\"}]}",
                     "vms[0].ready_console: is not a valid extended regular expression");
        expect_error("{\"vms\": [{\"name\": \"a\", \"ready_console\": \"\"}]}", "vms[0].ready_console: must not be empty");
        expect_error("{\"vms\": [{\"name\": \"a\", \"cloud_init\": 1}]}", "vms[0].cloud_init: must be true, false or an object");
        expect_error("{\"vms\": [{\"name\": \"a\", \"cloud_init\": {\"meta_data\": []}}]}",
                     "vms[0].cloud_init.meta_data: must be an object");
        expect_error("{\"vms\": [{\"name\": \"a\", \"cloud_init\": {\"network_config\": 3}}]}",
                     "vms[0].cloud_init.network_config: must be an object or a string");
        expect_error("{\"vms\": [{\"name\": \"a\", \"cloud_init\": {\"vendor_data\": \"\"}}]}",
                     "vms[0].cloud_init.vendor_data: unknown key");
        expect_error("{\"vms\": [{\"name\": \"a\", \"journal\": \"agent\"}]}", "vms[0].journal: must be \"gatewayd\" or \"none\"");
        /* The agent runs ready_probe: without it the probe could never pass. */
        expect_error("{\"vms\": [{\"name\": \"d\", \"disk\": \"/i\", \"ready_probe\": [\"true\"]}]}",
                     "vms[0]: \"ready_probe\" runs through the guest agent");
        expect_error("{\"vms\": [{\"name\": \"a\", \"agent\": false, \"cloud_init\": {\"install_agent\": true}}]}",
                     "vms[0]: \"agent\": false contradicts");
}

/* "warm" and "from_snapshot": which VMs may start from a template, and
 * that a VM made from a snapshot cannot ask for another shape. */
static void test_warm_and_snapshot(void) {
        static const char *const shape_keys[][2] = {
                { "\"kernel\": \"/k\"", "kernel" },
                { "\"initrd\": \"/i\"", "initrd" },
                { "\"cmdline\": \"x\"", "cmdline" },
                { "\"disk\": \"/d\"", "disk" },
                { "\"disk_format\": \"raw\"", "disk_format" },
                { "\"extra_disks\": [{\"size_mib\": 1}]", "extra_disks" },
                { "\"vcpus\": 2", "vcpus" },
                { "\"memory_mib\": 512", "memory_mib" },
                { "\"firmware\": \"bios\"", "firmware" },
                { "\"cloud_init\": true", "cloud_init" },
                { "\"ipv4\": false", "ipv4" },
        };
        _cleanup_(vmgr_spec_freep) VmgrSpec *spec = NULL;
        char error[VMGR_SPEC_ERROR_MAX];
        VmgrVMSpec vm;

        CHECK(vmgr_spec_parse("{\"vms\": [{\"name\": \"a\"}, {\"name\": \"b\", \"warm\": false},"
                              "{\"name\": \"c\", \"warm\": true},"
                              "{\"name\": \"d\", \"disk\": \"/img\", \"warm\": true},"
                              "{\"name\": \"e\", \"disk\": \"/img\", \"agent\": true},"
                              "{\"name\": \"f\", \"cloud_init\": true},"
                              "{\"name\": \"g\", \"agent\": false}]}", &spec, error) == 0);
        /* The default guest: warm unless the spec says no. */
        CHECK(spec->vms[0].warm == -1 && vmgr_vm_spec_wants_warm(&spec->vms[0]));
        CHECK(spec->vms[1].warm == 0 && !vmgr_vm_spec_wants_warm(&spec->vms[1]));
        CHECK(spec->vms[2].warm == 1 && vmgr_vm_spec_wants_warm(&spec->vms[2]));
        /* No agent to apply a clone's identity: cold even when asked. */
        CHECK(!vmgr_vm_spec_wants_warm(&spec->vms[3]));
        CHECK(vmgr_vm_spec_wants_warm(&spec->vms[4]));
        /* A cloud-init seed's instance data differ per VM. */
        CHECK(!vmgr_vm_spec_wants_warm(&spec->vms[5]));
        CHECK(!vmgr_vm_spec_wants_warm(&spec->vms[6]));
        CHECK(!spec->vms[0].from_snapshot);

        CHECK(vmgr_vm_spec_parse("{\"name\": \"x\", \"from_snapshot\": \"db-loaded\", \"warm\": true,"
                                 "\"ready_probe\": [\"true\"], \"ready_console\": \"ok\", \"journal\": \"none\","
                                 "\"log_rate_kib\": 8, \"agent\": true, \"ready_probe_host\": {\"ping\": true}}",
                                 NULL, &vm, error) == 0);
        CHECK_STREQ(vm.from_snapshot, "db-loaded");
        CHECK(vm.warm == 1);
        vmgr_vm_spec_done(&vm);
        CHECK(vm.from_snapshot == NULL);

        for (size_t i = 0; i < ELEMENTSOF(shape_keys); i++) {
                _cleanup_free_ char *json = NULL, *want = NULL;
                CHECK(asprintf(&json, "{\"vms\": [{\"name\": \"a\"}, {\"name\": \"b\", \"from_snapshot\": \"s\", %s}]}",
                               shape_keys[i][0]) > 0);
                CHECK(asprintf(&want, "vms[1].%s: not allowed with from_snapshot: the snapshot fixes the VM's shape",
                               shape_keys[i][1]) > 0);
                expect_error(json, want);
        }
        expect_error("{\"vms\": [{\"name\": \"a\", \"from_snapshot\": \"s\", \"agent\": false}]}",
                     "vms[0].agent: false is not allowed with from_snapshot");
        expect_error("{\"vms\": [{\"name\": \"a\", \"warm\": 1}]}", "vms[0].warm: must be true or false");
        expect_error("{\"vms\": [{\"name\": \"a\", \"from_snapshot\": 1}]}",
                     "vms[0].from_snapshot: must be a snapshot's name");
        /* A snapshot's name becomes a path in the cache: nothing that leaves it. */
        expect_error("{\"vms\": [{\"name\": \"a\", \"from_snapshot\": \"../../etc\"}]}", "vms[0].from_snapshot: ");
        expect_error("{\"vms\": [{\"name\": \"a\", \"from_snapshot\": \"a/b\"}]}", "vms[0].from_snapshot: ");
        expect_error("{\"vms\": [{\"name\": \"a\", \"from_snapshot\": \"..\"}]}", "vms[0].from_snapshot: ");
        expect_error("{\"vms\": [{\"name\": \"a\", \"from_snapshot\": \"\"}]}", "vms[0].from_snapshot: ");
        expect_error("{\"vms\": [{\"name\": \"a\", \"from_snapshot\": \"a\\u0000b\"}]}",
                     "vms[0].from_snapshot: contains a NUL character");
}

int main(void) {
        test_empty();
        test_full();
        test_outbound();
        test_errors();
        test_vm_spec();
        test_real_guest();
        test_warm_and_snapshot();
        test_size_limit();
        test_long_key();
        TEST_DONE();
}
