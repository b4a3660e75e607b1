/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/evp.h>

#include "addressing.h"
#include "macro.h"
#include "test.h"

static char *ntop6(const struct in6_addr *a, char *buf) {
        return (char *) inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN);
}

/* vmgr_sha256 (nettle) against OpenSSL's implementation, as an independent check. */
static void test_sha256_independent(void) {
        static const char *const inputs[] = { "", "abc", "1000/demo", "ipv4/1000/demo", "1000/demo/a",
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

/* Vectors computed independently (Python hashlib + ipaddress) from
 * docs/addressing.md: h = SHA-256("UID/GROUP"), g = SHA-256("ipv4/UID/GROUP"). */
static void test_group_vectors(void) {
        static const struct {
                unsigned uid;
                const char *group, *bridge, *prefix6, *subnet4;
        } v[] = {
                { 1000, "demo", "vbr-dd38f0abd1", "fd00:dd38:f0ab::/64", "10.1.90.0/24" },
                { 1001, "demo", "vbr-7d1eed94f8", "fd00:7d1e:ed94::/64", "10.52.201.0/24" },
                { 1000, "web", "vbr-98b51e55f8", "fd00:98b5:1e55::/64", "10.64.9.0/24" },
                { 0, "A.b_c-9", "vbr-3d07a7d01f", "fd00:3d07:a7d0::/64", "10.41.23.0/24" },
                { 4294967295u, "web", "vbr-fb3e5eeb42", "fd00:fb3e:5eeb::/64", "10.108.159.0/24" },
                /* h[4] = 0: a zero group written without leading zeros. */
                { 1000, "bench", "vbr-d7e500b85b", "fd00:d7e5:b8::/64", "10.5.16.0/24" },
                { 1001, "ci-test-1", "vbr-b2d134dae4", "fd00:b2d1:34da::/64", "10.146.206.0/24" },
                { 1002, "ci-test-1", "vbr-62b3bd108b", "fd00:62b3:bd10::/64", "10.124.50.0/24" },
        };
        char buf[64];

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                struct vmgr_group_addrs a;

                CHECK(vmgr_group_addrs_derive(v[i].uid, v[i].group, &a) == 0);
                CHECK_STREQ(a.bridge, v[i].bridge);
                CHECK(strlen(a.bridge) == VMGR_IFNAME_LEN);
                CHECK_STREQ(vmgr_in6_prefix_format(&a.prefix6, 64, buf, sizeof(buf)), v[i].prefix6);
                CHECK_STREQ(vmgr_in4_prefix_format(&a.subnet4, 24, buf, sizeof(buf)), v[i].subnet4);
        }
}

static void test_group_service_addresses(void) {
        struct vmgr_group_addrs a;
        char buf[INET6_ADDRSTRLEN], b4[INET_ADDRSTRLEN];

        CHECK(vmgr_group_addrs_derive(1000, "demo", &a) == 0);
        CHECK_STREQ(ntop6(&a.gateway6, buf), "fd00:dd38:f0ab::1");
        CHECK_STREQ(ntop6(&a.management6, buf), "fd00:dd38:f0ab:1::1");
        CHECK_STREQ(ntop6(&a.logs6, buf), "fd00:dd38:f0ab:2::1");
        CHECK_STREQ(ntop6(&a.files6, buf), "fd00:dd38:f0ab:3::1");
        CHECK_STREQ(inet_ntop(AF_INET, &a.gateway4, b4, sizeof(b4)), "10.1.90.1");
        CHECK_STREQ(inet_ntop(AF_INET, &a.dhcp4_first, b4, sizeof(b4)), "10.1.90.2");
        CHECK_STREQ(inet_ntop(AF_INET, &a.dhcp4_last, b4, sizeof(b4)), "10.1.90.254");
        CHECK(vmgr_group_addrs_derive(1000, "bad name", &a) == -EINVAL);
}

/* The same group name of two users: nothing the helper makes is shared, so
 * neither user can block or reach the other's group by choosing its name. */
static void test_two_uids(void) {
        static const char *const groups[] = { "ci-test-1", "demo", "a" };
        static const unsigned uids[][2] = { { 1001, 1002 }, { 1000, 1001 }, { 0, 1000 }, { 1, 10 } };

        for (size_t i = 0; i < ELEMENTSOF(groups); i++)
                for (size_t j = 0; j < ELEMENTSOF(uids); j++) {
                        struct vmgr_group_addrs a, b;
                        struct vmgr_vm_addrs x, y;

                        CHECK(vmgr_group_addrs_derive(uids[j][0], groups[i], &a) == 0);
                        CHECK(vmgr_group_addrs_derive(uids[j][1], groups[i], &b) == 0);
                        CHECK(vmgr_group_addrs_collision(&a, &b) == NULL);
                        CHECK(vmgr_vm_addrs_derive(uids[j][0], groups[i], "vm1", &x) == 0);
                        CHECK(vmgr_vm_addrs_derive(uids[j][1], groups[i], "vm1", &y) == 0);
                        CHECK(!streq(x.tap, y.tap));
                        CHECK(!streq(x.tap4, y.tap4));
                        CHECK(memcmp(x.mac, y.mac, 6) != 0);
                }
}

/* The hash inputs, rebuilt here with OpenSSL: the uid in decimal without
 * padding, then "/", then the names; "ipv4/" in front for the IPv4 hashes. */
static void test_formula_independent(void) {
        static const unsigned uids[] = { 0, 7, 1000, 65534, 4294967295u };
        uint8_t h[EVP_MAX_MD_SIZE], g[EVP_MAX_MD_SIZE], v[EVP_MAX_MD_SIZE], w[EVP_MAX_MD_SIZE];
        char in[128], want[IFNAMSIZ];
        unsigned len;

        for (size_t i = 0; i < ELEMENTSOF(uids); i++) {
                struct vmgr_group_addrs a;
                struct vmgr_vm_addrs x;

                snprintf(in, sizeof(in), "%u/grp", uids[i]);
                CHECK(EVP_Digest(in, strlen(in), h, &len, EVP_sha256(), NULL) == 1);
                snprintf(in, sizeof(in), "ipv4/%u/grp", uids[i]);
                CHECK(EVP_Digest(in, strlen(in), g, &len, EVP_sha256(), NULL) == 1);
                snprintf(in, sizeof(in), "%u/grp/vm", uids[i]);
                CHECK(EVP_Digest(in, strlen(in), v, &len, EVP_sha256(), NULL) == 1);
                snprintf(in, sizeof(in), "ipv4/%u/grp/vm", uids[i]);
                CHECK(EVP_Digest(in, strlen(in), w, &len, EVP_sha256(), NULL) == 1);

                CHECK(vmgr_group_addrs_derive(uids[i], "grp", &a) == 0);
                snprintf(want, sizeof(want), "vbr-%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4]);
                CHECK_STREQ(a.bridge, want);
                CHECK(memcmp(a.prefix6.s6_addr + 2, h, 4) == 0);
                CHECK(((uint8_t *) &a.subnet4.s_addr)[1] == g[0] && ((uint8_t *) &a.subnet4.s_addr)[2] == g[1]);

                CHECK(vmgr_vm_addrs_derive(uids[i], "grp", "vm", &x) == 0);
                snprintf(want, sizeof(want), "tap-%02x%02x%02x%02x%02x", v[0], v[1], v[2], v[3], v[4]);
                CHECK_STREQ(x.tap, want);
                CHECK(memcmp(x.mac + 2, v, 4) == 0);
                snprintf(want, sizeof(want), "ta4-%02x%02x%02x%02x%02x", w[0], w[1], w[2], w[3], w[4]);
                CHECK_STREQ(x.tap4, want);
                CHECK(memcmp(x.mac4 + 2, w, 4) == 0);
        }
}

static void test_vm_vectors(void) {
        static const struct {
                unsigned uid;
                const char *group, *vm, *tap, *mac, *ipv6, *tap4, *mac4;
        } v[] = {
                { 1000, "demo", "a", "tap-b0da0e0948", "6a:01:b0:da:0e:09", "fd00:dd38:f0ab:0:6801:b0ff:feda:e09",
                  "ta4-3fc21ca2a7", "6a:01:3f:c2:1c:a2" },
                { 1001, "demo", "a", "tap-0a11145349", "6a:01:0a:11:14:53", "fd00:7d1e:ed94:0:6801:aff:fe11:1453",
                  "ta4-4c3fa56af2", "6a:01:4c:3f:a5:6a" },
                { 0, "A.b_c-9", "vm-1", "tap-e9cd6d884d", "6a:01:e9:cd:6d:88", "fd00:3d07:a7d0:0:6801:e9ff:fecd:6d88",
                  "ta4-904288f945", "6a:01:90:42:88:f9" },
                /* v[2] = 0: the last group is written "57", not "0057". */
                { 1000, "web", "b", "tap-368e0057de", "6a:01:36:8e:00:57", "fd00:98b5:1e55:0:6801:36ff:fe8e:57",
                  "ta4-5a57b25258", "6a:01:5a:57:b2:52" },
        };
        char buf[INET6_ADDRSTRLEN], mac[VMGR_MAC_STRLEN];

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                struct vmgr_vm_addrs a;

                CHECK(vmgr_vm_addrs_derive(v[i].uid, v[i].group, v[i].vm, &a) == 0);
                CHECK_STREQ(a.tap, v[i].tap);
                CHECK_STREQ(vmgr_mac_format(a.mac, mac), v[i].mac);
                CHECK_STREQ(ntop6(&a.ipv6, buf), v[i].ipv6);
                CHECK_STREQ(a.tap4, v[i].tap4);
                CHECK_STREQ(vmgr_mac_format(a.mac4, mac), v[i].mac4);
                /* Locally administered unicast. */
                CHECK((a.mac[0] & 0x03) == 0x02);
        }
        struct vmgr_vm_addrs a;
        CHECK(vmgr_vm_addrs_derive(1000, "demo", "-x", &a) == -EINVAL);
        CHECK(vmgr_vm_addrs_derive(1000, "de mo", "x", &a) == -EINVAL);
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

        CHECK(vmgr_group_addrs_derive(1000, "demo", &g1) == 0);
        CHECK(vmgr_group_addrs_derive(1000, "web", &g2) == 0);
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
        test_two_uids();
        test_formula_independent();
        test_overlaps_and_collisions();
        test_alias();
        TEST_DONE();
}
