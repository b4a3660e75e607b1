/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/evp.h>

#include "addressing.h"
#include "test.h"

static char *ntop6(const struct in6_addr *a, char *buf) {
        return (char *) inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN);
}

/* vmgr_sha256 (nettle) against OpenSSL's implementation, as an independent check. */
static void test_sha256_independent(void) {
        static const char *const inputs[] = { "", "abc", "demo", "ipv4/demo", "demo/a",
                                              "a-very-long-name-that-is-exactly-sixty-three-characters-long-x" };
        uint8_t ours[VMGR_SHA256_LEN], theirs[EVP_MAX_MD_SIZE];
        unsigned len;

        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
                vmgr_sha256(inputs[i], strlen(inputs[i]), ours);
                CHECK(EVP_Digest(inputs[i], strlen(inputs[i]), theirs, &len, EVP_sha256(), NULL) == 1);
                CHECK(len == VMGR_SHA256_LEN);
                CHECK(memcmp(ours, theirs, VMGR_SHA256_LEN) == 0);
        }
}

static void test_names(void) {
        const char *why;
        char long63[64], long64[65];

        memset(long63, 'a', 63);
        long63[63] = 0;
        memset(long64, 'a', 64);
        long64[64] = 0;

        CHECK(vmgr_name_is_valid("a"));
        CHECK(vmgr_name_is_valid("A.b_c-9"));
        CHECK(vmgr_name_is_valid("9"));
        CHECK(vmgr_name_is_valid("a."));
        CHECK(vmgr_name_is_valid(long63));
        CHECK(!vmgr_name_is_valid(long64));
        CHECK(!vmgr_name_is_valid(""));
        CHECK(!vmgr_name_is_valid(NULL));
        CHECK(!vmgr_name_is_valid(".a"));
        CHECK(!vmgr_name_is_valid("-a"));
        CHECK(!vmgr_name_is_valid("a/b"));
        CHECK(!vmgr_name_is_valid("a b"));
        CHECK(!vmgr_name_is_valid("a:b"));
        CHECK(!vmgr_name_is_valid("caf\xc3\xa9"));
        CHECK(vmgr_name_check("a b", &why) == -EINVAL);
        CHECK(strstr(why, "[A-Za-z0-9._-]") != NULL);
        CHECK(vmgr_name_check(".x", &why) == -EINVAL);
        CHECK(strstr(why, "starts with") != NULL);
}

/* Vectors computed independently (Python hashlib + ipaddress). */
static void test_group_vectors(void) {
        static const struct {
                const char *group, *bridge, *prefix6, *subnet4;
        } v[] = {
                { "demo", "vbr-2a97516c35", "fd00:2a97:516c::/64", "10.201.67.0/24" },
                { "web", "vbr-4b5e57f6eb", "fd00:4b5e:57f6::/64", "10.41.120.0/24" },
                { "A.b_c-9", "vbr-43021fe538", "fd00:4302:1fe5::/64", "10.119.106.0/24" },
        };
        char buf[64];

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                struct vmgr_group_addrs a;

                CHECK(vmgr_group_addrs_derive(v[i].group, &a) == 0);
                CHECK_STREQ(a.bridge, v[i].bridge);
                CHECK(strlen(a.bridge) == VMGR_IFNAME_LEN);
                CHECK_STREQ(vmgr_in6_prefix_format(&a.prefix6, 64, buf, sizeof(buf)), v[i].prefix6);
                CHECK_STREQ(vmgr_in4_prefix_format(&a.subnet4, 24, buf, sizeof(buf)), v[i].subnet4);
        }
}

static void test_group_service_addresses(void) {
        struct vmgr_group_addrs a;
        char buf[INET6_ADDRSTRLEN], b4[INET_ADDRSTRLEN];

        CHECK(vmgr_group_addrs_derive("demo", &a) == 0);
        CHECK_STREQ(ntop6(&a.gateway6, buf), "fd00:2a97:516c::1");
        CHECK_STREQ(ntop6(&a.management6, buf), "fd00:2a97:516c:1::1");
        CHECK_STREQ(ntop6(&a.logs6, buf), "fd00:2a97:516c:2::1");
        CHECK_STREQ(ntop6(&a.files6, buf), "fd00:2a97:516c:3::1");
        CHECK_STREQ(inet_ntop(AF_INET, &a.gateway4, b4, sizeof(b4)), "10.201.67.1");
        CHECK_STREQ(inet_ntop(AF_INET, &a.dhcp4_first, b4, sizeof(b4)), "10.201.67.2");
        CHECK_STREQ(inet_ntop(AF_INET, &a.dhcp4_last, b4, sizeof(b4)), "10.201.67.254");
        CHECK(vmgr_group_addrs_derive("bad name", &a) == -EINVAL);
}

static void test_vm_vectors(void) {
        static const struct {
                const char *group, *vm, *tap, *mac, *ipv6, *tap4, *mac4;
        } v[] = {
                { "demo", "a", "tap-37220eeb99", "6a:01:37:22:0e:eb", "fd00:2a97:516c:0:6801:37ff:fe22:eeb",
                  "ta4-4c6c205338", "6a:01:4c:6c:20:53" },
                { "A.b_c-9", "vm-1", "tap-47d103bdb9", "6a:01:47:d1:03:bd", "fd00:4302:1fe5:0:6801:47ff:fed1:3bd",
                  "ta4-953ea17b5e", "6a:01:95:3e:a1:7b" },
        };
        char buf[INET6_ADDRSTRLEN], mac[VMGR_MAC_STRLEN];

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                struct vmgr_vm_addrs a;

                CHECK(vmgr_vm_addrs_derive(v[i].group, v[i].vm, &a) == 0);
                CHECK_STREQ(a.tap, v[i].tap);
                CHECK_STREQ(vmgr_mac_format(a.mac, mac), v[i].mac);
                CHECK_STREQ(ntop6(&a.ipv6, buf), v[i].ipv6);
                CHECK_STREQ(a.tap4, v[i].tap4);
                CHECK_STREQ(vmgr_mac_format(a.mac4, mac), v[i].mac4);
                /* Locally administered unicast. */
                CHECK((a.mac[0] & 0x03) == 0x02);
        }
        struct vmgr_vm_addrs a;
        CHECK(vmgr_vm_addrs_derive("demo", "-x", &a) == -EINVAL);
        CHECK(vmgr_vm_addrs_derive("de mo", "x", &a) == -EINVAL);
}

static void test_overlaps_and_collisions(void) {
        struct in_addr a, b;
        struct in6_addr x, y;
        struct vmgr_group_addrs g1, g2;

        inet_pton(AF_INET, "10.3.4.0", &a);
        inet_pton(AF_INET, "10.3.0.0", &b);
        CHECK(vmgr_in4_prefix_overlaps(&a, 24, &b, 16));
        CHECK(!vmgr_in4_prefix_overlaps(&a, 24, &b, 24));
        inet_pton(AF_INET, "0.0.0.0", &b);
        CHECK(vmgr_in4_prefix_overlaps(&a, 24, &b, 0));
        inet_pton(AF_INET6, "fd00:1:2::", &x);
        inet_pton(AF_INET6, "fd00:1:2:1::1", &y);
        CHECK(!vmgr_in6_prefix_overlaps(&x, 64, &y, 128));
        CHECK(vmgr_in6_prefix_overlaps(&x, 48, &y, 128));
        inet_pton(AF_INET6, "fd00:1:3::", &y);
        CHECK(vmgr_in6_prefix_overlaps(&x, 46, &y, 64));
        CHECK(!vmgr_in6_prefix_overlaps(&x, 48, &y, 64));

        CHECK(vmgr_group_addrs_derive("demo", &g1) == 0);
        CHECK(vmgr_group_addrs_derive("web", &g2) == 0);
        CHECK(vmgr_group_addrs_collision(&g1, &g2) == NULL);
        CHECK_STREQ(vmgr_group_addrs_collision(&g1, &g1), "bridge");
        g2.subnet4 = g1.subnet4;
        CHECK_STREQ(vmgr_group_addrs_collision(&g1, &g2), "IPv4 subnet");
}

static void test_alias(void) {
        char buf[128], group[VMGR_NAME_MAX + 1];
        unsigned uid;

        CHECK(vmgr_link_alias(1000, "demo", buf, sizeof(buf)) == 0);
        CHECK_STREQ(buf, "vmgr:1000:demo");
        CHECK(vmgr_link_alias(1000, "de mo", buf, sizeof(buf)) == -EINVAL);
        CHECK(vmgr_link_alias(1000, "demo", buf, 8) == -ENOBUFS);
        CHECK(vmgr_link_alias_parse("vmgr:1000:demo", &uid, group) == 0);
        CHECK(uid == 1000);
        CHECK_STREQ(group, "demo");
        CHECK(vmgr_link_alias_parse("vmgr::demo", &uid, group) == -EINVAL);
        CHECK(vmgr_link_alias_parse("vmgr:-1:demo", &uid, group) == -EINVAL);
        CHECK(vmgr_link_alias_parse("vmgr: 1:demo", &uid, group) == -EINVAL);
        CHECK(vmgr_link_alias_parse("vmgr:1x:demo", &uid, group) == -EINVAL);
        CHECK(vmgr_link_alias_parse("vmgr:99999999999:demo", &uid, group) == -EINVAL);
        CHECK(vmgr_link_alias_parse("vmgr:1:.x", &uid, group) == -EINVAL);
        CHECK(vmgr_link_alias_parse("other:1:demo", &uid, group) == -EINVAL);
        CHECK(vmgr_link_alias_parse(NULL, &uid, group) == -EINVAL);
}

int main(void) {
        test_sha256_independent();
        test_names();
        test_group_vectors();
        test_group_service_addresses();
        test_vm_vectors();
        test_overlaps_and_collisions();
        test_alias();
        TEST_DONE();
}
