/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lib/cloud-init.c: the exact text of each seed file for specs parsed as
 * vmgrd parses them; MACs from lib/addressing.c, the instance-id recomputed
 * with OpenSSL's SHA-256.
 */

#include <errno.h>
#include <openssl/evp.h>

#include "addressing.h"
#include "cloud-init.h"
#include "macro.h"
#include "test.h"

#define UID 1000
#define GROUP "g1"

static void parse_vm(const char *json, VmgrVMSpec *vm) {
        char error[VMGR_SPEC_ERROR_MAX];
        int r = vmgr_vm_spec_parse(json, NULL, vm, error);

        if (r < 0)
                fprintf(stderr, "spec refused: %s\n", error);
        CHECK(r == 0);
}

static void build(const char *json, VmgrCloudInitSeed *seed) {
        VmgrVMSpec vm;

        parse_vm(json, &vm);
        CHECK(vmgr_cloud_init_seed_build(UID, GROUP, &vm, seed) == 0);
        vmgr_vm_spec_done(&vm);
}

/* "vmgr-" and the first 8 bytes of SHA-256 over "LEN:FIELD" of each field. */
static void expected_instance_id(const char *vm, const char *user_meta, const char *user_data,
                                 const char *network_config, char out[32]) {
        const char *fields[] = { "vmgr-cloud-init-1", GROUP, vm, user_meta, user_data, network_config };
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned hlen = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        CHECK(ctx);
        CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                char len[32];
                const char *f = fields[i] ?: "";
                snprintf(len, sizeof(len), "%zu:", strlen(f));
                CHECK(EVP_DigestUpdate(ctx, len, strlen(len)) == 1);
                CHECK(EVP_DigestUpdate(ctx, f, strlen(f)) == 1);
        }
        CHECK(EVP_DigestFinal_ex(ctx, h, &hlen) == 1 && hlen == 32);
        EVP_MD_CTX_free(ctx);
        snprintf(out, 32, "vmgr-%02x%02x%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
}

static const char network_ipv6_only[] =
        "{\n"
        "  \"version\": 2,\n"
        "  \"ethernets\": {\n"
        "    \"enp1s0\": {\n"
        "      \"match\": {\n"
        "        \"macaddress\": \"%s\"\n"
        "      },\n"
        "      \"set-name\": \"enp1s0\",\n"
        "      \"dhcp4\": false,\n"
        "      \"dhcp6\": false,\n"
        "      \"accept-ra\": true,\n"
        "      \"ipv6-address-generation\": \"eui64\"\n"
        "    }\n"
        "  }\n"
        "}\n";

static const char network_ipv4[] =
        "{\n"
        "  \"version\": 2,\n"
        "  \"ethernets\": {\n"
        "    \"enp1s0\": {\n"
        "      \"match\": {\n"
        "        \"macaddress\": \"%s\"\n"
        "      },\n"
        "      \"set-name\": \"enp1s0\",\n"
        "      \"dhcp4\": false,\n"
        "      \"dhcp6\": false,\n"
        "      \"accept-ra\": true,\n"
        "      \"ipv6-address-generation\": \"eui64\"\n"
        "    },\n"
        "    \"enp2s0\": {\n"
        "      \"match\": {\n"
        "        \"macaddress\": \"%s\"\n"
        "      },\n"
        "      \"set-name\": \"enp2s0\",\n"
        "      \"dhcp4\": true,\n"
        "      \"dhcp6\": false,\n"
        "      \"accept-ra\": false\n"
        "    }\n"
        "  }\n"
        "}\n";

/* "cloud_init": true: vmgr's meta-data and network-config, an empty
 * cloud-config, no vendor-data. */
static void test_defaults(void) {
        VmgrCloudInitSeed seed;
        struct vmgr_vm_addrs a;
        char mac[VMGR_MAC_STRLEN], expected[2048], iid[32];

        build("{\"name\": \"web1\", \"cloud_init\": true}", &seed);
        CHECK(vmgr_vm_addrs_derive(UID, GROUP, "web1", &a) == 0);
        snprintf(expected, sizeof(expected), network_ipv6_only, vmgr_mac_format(a.mac, mac));
        CHECK_STREQ(seed.network_config, expected);
        CHECK_STREQ(seed.user_data, "#cloud-config\n{}\n");
        CHECK(!seed.vendor_data);

        expected_instance_id("web1", NULL, seed.user_data, seed.network_config, iid);
        snprintf(expected, sizeof(expected), "{\n  \"instance-id\": \"%s\",\n  \"local-hostname\": \"web1\"\n}\n", iid);
        CHECK_STREQ(seed.meta_data, expected);
        vmgr_cloud_init_seed_done(&seed);

        /* The same VM, the same seed: the instance-id is stable. */
        build("{\"name\": \"web1\", \"cloud_init\": {}}", &seed);
        CHECK_STREQ(seed.meta_data, expected);
        vmgr_cloud_init_seed_done(&seed);
}

static void test_ipv4(void) {
        VmgrCloudInitSeed seed;
        struct vmgr_vm_addrs a;
        char mac[VMGR_MAC_STRLEN], mac4[VMGR_MAC_STRLEN], expected[2048];

        build("{\"name\": \"db\", \"ipv4\": true, \"cloud_init\": true}", &seed);
        CHECK(vmgr_vm_addrs_derive(UID, GROUP, "db", &a) == 0);
        snprintf(expected, sizeof(expected), network_ipv4, vmgr_mac_format(a.mac, mac),
                 vmgr_mac_format(a.mac4, mac4));
        CHECK_STREQ(seed.network_config, expected);
        vmgr_cloud_init_seed_done(&seed);

        /* Another uid: other MACs. */
        char *other = NULL;
        CHECK(vmgr_cloud_init_network_config(UID + 1, GROUP, "db", true, &other) == 0);
        CHECK(!strstr(other, mac) && !strstr(other, mac4));
        free(other);
}

/* The user's texts: user-data as is, network-config instead of ours (an
 * object pretty-printed, a string as is), meta-data keys over ours. */
static void test_user_data(void) {
        VmgrCloudInitSeed seed;
        char expected[1024], iid[32];

        build("{\"name\": \"u_1\", \"cloud_init\": {"
              "\"user_data\": \"#cloud-config\\nwrite_files:\\n- path: /etc/x\\n  content: a/b\\n\","
              "\"network_config\": \"version: 2\\nethernets: {}\\n\","
              "\"meta_data\": {\"public-keys\": [\"ssh-ed25519 AAAA\"], \"local-hostname\": \"mine\"}}}",
              &seed);
        CHECK_STREQ(seed.user_data, "#cloud-config\nwrite_files:\n- path: /etc/x\n  content: a/b\n");
        CHECK_STREQ(seed.network_config, "version: 2\nethernets: {}\n");
        CHECK(!seed.vendor_data);
        /* The user's meta-data as the spec parser keeps it. */
        expected_instance_id("u_1", "{\"public-keys\":[\"ssh-ed25519 AAAA\"],\"local-hostname\":\"mine\"}",
                             seed.user_data, seed.network_config, iid);
        snprintf(expected, sizeof(expected),
                 "{\n  \"instance-id\": \"%s\",\n  \"local-hostname\": \"mine\",\n"
                 "  \"public-keys\": [\n    \"ssh-ed25519 AAAA\"\n  ]\n}\n",
                 iid);
        CHECK_STREQ(seed.meta_data, expected);
        vmgr_cloud_init_seed_done(&seed);

        /* Any change to what the guest is given changes the instance-id. */
        char first[1024];
        snprintf(first, sizeof(first), "%s", expected);
        build("{\"name\": \"u_1\", \"cloud_init\": {"
              "\"user_data\": \"#cloud-config\\nwrite_files:\\n- path: /etc/y\\n  content: a/b\\n\","
              "\"network_config\": \"version: 2\\nethernets: {}\\n\","
              "\"meta_data\": {\"public-keys\": [\"ssh-ed25519 AAAA\"], \"local-hostname\": \"mine\"}}}",
              &seed);
        CHECK(strncmp(seed.meta_data, first, 40) != 0);
        vmgr_cloud_init_seed_done(&seed);

        /* The user may pin the instance-id; the VM name with '_' is the host name with '-'. */
        build("{\"name\": \"u_1\", \"cloud_init\": {\"meta_data\": {\"instance-id\": \"i-1\"},"
              "\"network_config\": {\"version\": 2, \"ethernets\": {\"e\": {\"match\": {\"name\": \"en*\"},"
              "\"dhcp4\": true}}, \"x\": \"a/b\"}}}",
              &seed);
        CHECK_STREQ(seed.meta_data, "{\n  \"instance-id\": \"i-1\",\n  \"local-hostname\": \"u-1\"\n}\n");
        CHECK_STREQ(seed.network_config,
                    "{\n  \"version\": 2,\n  \"ethernets\": {\n    \"e\": {\n      \"match\": {\n"
                    "        \"name\": \"en*\"\n      },\n      \"dhcp4\": true\n    }\n  },\n"
                    "  \"x\": \"a/b\"\n}\n");
        vmgr_cloud_init_seed_done(&seed);
}

/* install_agent: vendor-data is the boothook, and nothing else changes. */
static void test_install_agent(void) {
        VmgrCloudInitSeed with, without;

        build("{\"name\": \"a\", \"cloud_init\": {\"install_agent\": true}}", &with);
        build("{\"name\": \"a\", \"cloud_init\": true}", &without);
        CHECK(with.vendor_data);
        CHECK(!without.vendor_data);
        CHECK(strncmp(with.vendor_data, "#cloud-boothook\n#!/bin/sh\n", 26) == 0);
        CHECK(strstr(with.vendor_data, "blkid -t LABEL=cidata -o device"));
        CHECK(strstr(with.vendor_data, "mount -t iso9660 -o ro \"$dev\" \"$mnt\"\n"));
        CHECK(strstr(with.vendor_data, "put vmgr-agent 0755 /usr/local/bin/vmgr-agent\n"));
        CHECK(strstr(with.vendor_data, "put vmgr-agent.service 0644 /etc/systemd/system/vmgr-agent.service\n"));
        CHECK(strstr(with.vendor_data, "put 90-vmgr-agent.rules 0644 /etc/udev/rules.d/90-vmgr-agent.rules\n"));
        /* Idempotent: nothing after the copies runs when nothing changed. */
        CHECK(strstr(with.vendor_data, "[ \"$changed\" = 1 ] || exit 0\n"));
        CHECK(strstr(with.vendor_data, "udevadm trigger --action=add --subsystem-match=virtio-ports\n"));
        CHECK_STREQ(with.meta_data, without.meta_data);
        CHECK_STREQ(with.network_config, without.network_config);
        CHECK_STREQ(with.user_data, without.user_data);
        vmgr_cloud_init_seed_done(&with);
        vmgr_cloud_init_seed_done(&without);
}

static void test_invalid(void) {
        VmgrCloudInitSeed seed = {};
        VmgrVMSpec vm;
        char hostname[VMGR_NAME_MAX + 1];

        parse_vm("{\"name\": \"a\"}", &vm);
        CHECK(vmgr_cloud_init_seed_build(UID, GROUP, &vm, &seed) == -EINVAL);
        vm.cloud_init.enabled = true;
        CHECK(vmgr_cloud_init_seed_build(UID, "bad/group", &vm, &seed) == -EINVAL);
        CHECK(!seed.meta_data);
        vmgr_vm_spec_done(&vm);

        CHECK_STREQ(vmgr_cloud_init_hostname("a_b.c_", hostname), "a-b.c-");
}

int main(void) {
        test_defaults();
        test_ipv4();
        test_user_data();
        test_install_agent();
        test_invalid();
        TEST_DONE();
}
