/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Who may connect to a group's file server (daemon/fileserver-util.c,
 * fileserver_peer_allowed()): the group's guests, by their addresses as
 * lib/addressing.c derives them, and nobody else, the host's own addresses
 * of the same group included.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "addressing.h"
#include "fileserver-util.h"
#include "test.h"

/* Any uid: the rule is about the group's /64, whoever owns it. */
#define TEST_UID 1000

static struct vmgr_group_addrs group_a, group_b;

static struct sockaddr_in6 sa6(const struct in6_addr *a) {
        return (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_port = htons(40000), .sin6_addr = *a };
}

/* Is a connection from a (IPv6) allowed on group a's server? */
static bool allowed6(const struct in6_addr *a) {
        struct sockaddr_in6 sa = sa6(a);
        return fileserver_peer_allowed((struct sockaddr *) &sa, sizeof(sa), &group_a.prefix6, &group_a.gateway6);
}

static bool allowed_text(const char *text) {
        struct in6_addr a;
        CHECK(inet_pton(AF_INET6, text, &a) == 1);
        return allowed6(&a);
}

/* prefix6 of group a with its last 64 bits replaced by iid. */
static struct in6_addr in_prefix(const struct in6_addr *prefix, uint64_t iid) {
        struct in6_addr a = *prefix;
        for (int i = 15; i >= 8; i--, iid >>= 8)
                a.s6_addr[i] = (uint8_t) (iid & 0xff);
        return a;
}

static void test_guests(void) {
        struct vmgr_vm_addrs vm;
        struct in6_addr a;

        /* A VM's derived (EUI-64) address, and any other in the /64. */
        CHECK(vmgr_vm_addrs_derive(TEST_UID, "fa", "web", &vm) >= 0);
        CHECK(allowed6(&vm.ipv6));
        a = in_prefix(&group_a.prefix6, 0x2);
        CHECK(allowed6(&a));
        a = in_prefix(&group_a.prefix6, 0xffffffffffffffffULL);
        CHECK(allowed6(&a));
        a = in_prefix(&group_a.prefix6, 0xa1);
        CHECK(allowed6(&a));
}

static void test_host_and_others(void) {
        struct vmgr_vm_addrs vm_b;
        struct in6_addr a;
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(40000) };
        struct sockaddr_in6 sa;

        /* The host's own addresses of the group: the bridge's (in the /64),
         * management, logs and files (other /64s of the /48). */
        CHECK(!allowed6(&group_a.gateway6));
        CHECK(!allowed6(&group_a.management6));
        CHECK(!allowed6(&group_a.logs6));
        CHECK(!allowed6(&group_a.files6));
        /* The subnet-router anycast address prefix::. */
        CHECK(!allowed6(&group_a.prefix6));

        /* Another group's guests and bridge. */
        CHECK(vmgr_vm_addrs_derive(TEST_UID, "fb", "web", &vm_b) >= 0);
        CHECK(!allowed6(&vm_b.ipv6));
        CHECK(!allowed6(&group_b.gateway6));
        CHECK(!allowed6(&group_b.files6));

        /* The rest of the group's /48, one bit off the /64. */
        a = group_a.prefix6;
        a.s6_addr[7] ^= 1;
        a.s6_addr[15] = 2;
        CHECK(!allowed6(&a));
        a = group_a.prefix6;
        a.s6_addr[0] ^= 0x80;
        a.s6_addr[15] = 2;
        CHECK(!allowed6(&a));

        /* Loopback, link-local, an IPv4-mapped address, IPv4 itself. */
        CHECK(!allowed_text("::1"));
        CHECK(!allowed_text("fe80::6801:c7ff:fedf:f460"));
        CHECK(!allowed_text("::ffff:10.41.120.57"));
        sin.sin_addr.s_addr = group_a.gateway4.s_addr;
        CHECK(!fileserver_peer_allowed((struct sockaddr *) &sin, sizeof(sin), &group_a.prefix6, &group_a.gateway6));
        sin.sin_addr.s_addr = htonl(ntohl(group_a.subnet4.s_addr) + 57);
        CHECK(!fileserver_peer_allowed((struct sockaddr *) &sin, sizeof(sin), &group_a.prefix6, &group_a.gateway6));

        /* A guest's address, but a short or missing sockaddr. */
        a = in_prefix(&group_a.prefix6, 0x2);
        sa = sa6(&a);
        CHECK(fileserver_peer_allowed((struct sockaddr *) &sa, sizeof(sa), &group_a.prefix6, &group_a.gateway6));
        CHECK(!fileserver_peer_allowed((struct sockaddr *) &sa, sizeof(sa) - 1, &group_a.prefix6, &group_a.gateway6));
        CHECK(!fileserver_peer_allowed(NULL, 0, &group_a.prefix6, &group_a.gateway6));
}

int main(void) {
        CHECK(vmgr_group_addrs_derive(TEST_UID, "fa", &group_a) >= 0);
        CHECK(vmgr_group_addrs_derive(TEST_UID, "fb", &group_b) >= 0);
        test_guests();
        test_host_and_others();
        TEST_DONE();
}
