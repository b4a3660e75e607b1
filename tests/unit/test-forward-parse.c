/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>

#include "forward-parse.h"
#include "test.h"

static void test_protocol(void) {
        CHECK(vmgr_forward_protocol_from_string("tcp") == IPPROTO_TCP);
        CHECK(vmgr_forward_protocol_from_string("udp") == IPPROTO_UDP);
        CHECK(vmgr_forward_protocol_from_string("TCP") == -EINVAL);
        CHECK(vmgr_forward_protocol_from_string("") == -EINVAL);
        CHECK(vmgr_forward_protocol_from_string("sctp") == -EINVAL);
        CHECK(vmgr_forward_protocol_from_string(NULL) == -EINVAL);
        CHECK_STREQ(vmgr_forward_protocol_to_string(IPPROTO_UDP), "udp");
        CHECK(!vmgr_forward_protocol_to_string(IPPROTO_SCTP));
}

static void test_address(void) {
        struct vmgr_forward_address a;

        CHECK(vmgr_forward_address_parse("", &a) == 0);
        CHECK(a.family == AF_INET);
        CHECK_STREQ(a.text, "127.0.0.1");
        CHECK(a.sockaddr.in.sin_port == 0);
        CHECK(vmgr_forward_address_parse(NULL, &a) == 0);
        CHECK_STREQ(a.text, "127.0.0.1");
        CHECK(vmgr_forward_address_parse("::1", &a) == 0);
        CHECK(a.family == AF_INET6 && a.sockaddr.in6.sin6_family == AF_INET6);
        CHECK_STREQ(a.text, "::1");
        /* Canonical form, so that one forward has one name. */
        CHECK(vmgr_forward_address_parse("0:0:0:0:0:0:0:1", &a) == 0);
        CHECK_STREQ(a.text, "::1");
        CHECK(vmgr_forward_address_parse("FD00:0::1", &a) == 0);
        CHECK_STREQ(a.text, "fd00::1");
        CHECK(vmgr_forward_address_parse("0.0.0.0", &a) == 0);
        CHECK_STREQ(a.text, "0.0.0.0");
        CHECK(vmgr_forward_address_parse("localhost", &a) == -EINVAL);
        CHECK(vmgr_forward_address_parse("[::1]", &a) == -EINVAL);
        CHECK(vmgr_forward_address_parse("fe80::1%lo", &a) == -EINVAL);
        CHECK(vmgr_forward_address_parse("127.1", &a) == -EINVAL);
        CHECK(vmgr_forward_address_parse("1.2.3.4 ", &a) == -EINVAL);
        CHECK(vmgr_forward_address_parse("1111:2222:3333:4444:5555:6666:7777:8888:9999", &a) == -EINVAL);
}

static void test_guest(void) {
        const char *why = NULL;
        uint16_t port;
        int proto;

        CHECK(vmgr_forward_parse_guest("80", &proto, &port, &why) == 0);
        CHECK(proto == IPPROTO_TCP && port == 80);
        CHECK(vmgr_forward_parse_guest("udp:53", &proto, &port, &why) == 0);
        CHECK(proto == IPPROTO_UDP && port == 53);
        CHECK(vmgr_forward_parse_guest("tcp:65535", &proto, &port, &why) == 0);
        CHECK(proto == IPPROTO_TCP && port == 65535);
        CHECK(vmgr_forward_parse_guest("0", &proto, &port, &why) == -EINVAL);
        CHECK(why && strstr(why, "1-65535"));
        CHECK(vmgr_forward_parse_guest("65536", &proto, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_guest("000080", &proto, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_guest("", &proto, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_guest("tcp:", &proto, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_guest("sctp:80", &proto, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_guest("+80", &proto, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_guest("-1", &proto, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_guest("80x", &proto, &port, NULL) == -EINVAL);
}

static void test_host(void) {
        char addr[INET6_ADDRSTRLEN];
        const char *why = NULL;
        uint16_t port;
        int proto;

        CHECK(vmgr_forward_parse_host("", addr, &port, &why) == 0);
        CHECK_STREQ(addr, "");
        CHECK(port == 0);
        CHECK(vmgr_forward_parse_host(NULL, addr, &port, &why) == 0);
        CHECK(vmgr_forward_parse_host("8080", addr, &port, &why) == 0);
        CHECK_STREQ(addr, "");
        CHECK(port == 8080);
        CHECK(vmgr_forward_parse_host("0", addr, &port, &why) == 0);
        CHECK(port == 0);
        CHECK(vmgr_forward_parse_host("127.0.0.2:9", addr, &port, &why) == 0);
        CHECK_STREQ(addr, "127.0.0.2");
        CHECK(port == 9);
        CHECK(vmgr_forward_parse_host("[::1]:8080", addr, &port, &why) == 0);
        CHECK_STREQ(addr, "::1");
        CHECK(port == 8080);
        CHECK(vmgr_forward_parse_host("[::1]:0", addr, &port, &why) == 0);
        CHECK(port == 0);
        /* An IPv6 address must be in brackets: its last group would look like a port. */
        CHECK(vmgr_forward_parse_host("::1:8080", addr, &port, &why) == -EINVAL);
        CHECK(why && strstr(why, "brackets"));
        CHECK(vmgr_forward_parse_host("[127.0.0.1]:80", addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_host("[::1]", addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_host("[::1]:", addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_host("[]:80", addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_host(":80", addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_host("localhost:80", addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_host("127.0.0.1:", addr, &port, &why) == -EINVAL);
        CHECK(why && strstr(why, "0-65535"));
        CHECK(vmgr_forward_parse_host("127.0.0.1:65536", addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_host("udp:80", addr, &port, NULL) == -EINVAL);

        CHECK(vmgr_forward_parse_listener("8080", &proto, addr, &port, &why) == 0);
        CHECK(proto == IPPROTO_TCP && port == 8080);
        CHECK_STREQ(addr, "");
        CHECK(vmgr_forward_parse_listener("udp:[::1]:53", &proto, addr, &port, &why) == 0);
        CHECK(proto == IPPROTO_UDP && port == 53);
        CHECK_STREQ(addr, "::1");
        CHECK(vmgr_forward_parse_listener("tcp:127.0.0.1:1", &proto, addr, &port, &why) == 0);
        CHECK(proto == IPPROTO_TCP && port == 1);
        CHECK_STREQ(addr, "127.0.0.1");
        CHECK(vmgr_forward_parse_listener("0", &proto, addr, &port, &why) == -EINVAL);
        CHECK(why && strstr(why, "1-65535"));
        CHECK(vmgr_forward_parse_listener("", &proto, addr, &port, NULL) == -EINVAL);
        CHECK(vmgr_forward_parse_listener("udp:", &proto, addr, &port, NULL) == -EINVAL);
}

int main(void) {
        test_protocol();
        test_address();
        test_guest();
        test_host();
        TEST_DONE();
}
