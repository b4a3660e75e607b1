/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "forward-parse.h"
#include "macro.h"

int vmgr_forward_protocol_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        if (streq(s, "tcp"))
                return IPPROTO_TCP;
        if (streq(s, "udp"))
                return IPPROTO_UDP;
        return -EINVAL;
}

const char *vmgr_forward_protocol_to_string(int protocol) {
        switch (protocol) {
        case IPPROTO_TCP:
                return "tcp";
        case IPPROTO_UDP:
                return "udp";
        default:
                return NULL;
        }
}

int vmgr_forward_address_parse(const char *s, struct vmgr_forward_address *ret) {
        struct vmgr_forward_address a = {};

        if (!s || !*s)
                s = VMGR_FORWARD_DEFAULT_ADDRESS;
        if (strlen(s) >= sizeof(a.text))
                return -EINVAL;
        if (inet_pton(AF_INET, s, &a.sockaddr.in.sin_addr) == 1) {
                a.family = a.sockaddr.in.sin_family = AF_INET;
                inet_ntop(AF_INET, &a.sockaddr.in.sin_addr, a.text, sizeof(a.text));
        } else if (inet_pton(AF_INET6, s, &a.sockaddr.in6.sin6_addr) == 1) {
                a.family = a.sockaddr.in6.sin6_family = AF_INET6;
                inet_ntop(AF_INET6, &a.sockaddr.in6.sin6_addr, a.text, sizeof(a.text));
        } else
                return -EINVAL;
        *ret = a;
        return 0;
}

/* A decimal port between min and 65535, digits only. Returns 0 or -EINVAL. */
static int parse_port(const char *s, unsigned min, uint16_t *ret) {
        unsigned long n = 0;

        if (!*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        n = strtoul(s, NULL, 10);
        if (n < min || n > 65535)
                return -EINVAL;
        *ret = (uint16_t) n;
        return 0;
}

/* Strips a leading "tcp:" or "udp:". Returns the protocol (tcp if none)
 * and moves *s past it. */
static int strip_protocol(const char **s) {
        if (strncmp(*s, "tcp:", 4) == 0) {
                *s += 4;
                return IPPROTO_TCP;
        }
        if (strncmp(*s, "udp:", 4) == 0) {
                *s += 4;
                return IPPROTO_UDP;
        }
        return IPPROTO_TCP;
}

int vmgr_forward_parse_guest(const char *s, int *ret_protocol, uint16_t *ret_port, const char **reason) {
        int protocol;
        uint16_t port;

        protocol = strip_protocol(&s);
        if (parse_port(s, 1, &port) < 0) {
                if (reason)
                        *reason = "the guest port must be 1-65535, optionally after tcp: or udp:";
                return -EINVAL;
        }
        *ret_protocol = protocol;
        *ret_port = port;
        return 0;
}

/* "[[ADDR:]PORT]" with the port's minimum given. */
static int parse_host(const char *s, unsigned min_port, char ret_address[INET6_ADDRSTRLEN], uint16_t *ret_port,
                      const char **reason) {
        struct vmgr_forward_address a;
        char address[INET6_ADDRSTRLEN] = "";
        const char *port_text = s, *colon;
        uint16_t port = 0;

        if (!s || !*s) {
                if (min_port > 0)
                        goto bad_port;
                ret_address[0] = 0;
                *ret_port = 0;
                return 0;
        }
        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                size_t len;

                if (!end || end[1] != ':')
                        goto bad_address;
                len = (size_t) (end - s - 1);
                if (len == 0 || len >= sizeof(address))
                        goto bad_address;
                memcpy(address, s + 1, len);
                address[len] = 0;
                if (vmgr_forward_address_parse(address, &a) < 0 || a.family != AF_INET6)
                        goto bad_address;
                port_text = end + 2;
        } else if ((colon = strchr(s, ':'))) {
                size_t len = (size_t) (colon - s);

                /* More than one colon without brackets: an IPv6 address whose
                 * port cannot be told apart from its last group. */
                if (strchr(colon + 1, ':') || len == 0 || len >= sizeof(address))
                        goto bad_address;
                memcpy(address, s, len);
                address[len] = 0;
                if (vmgr_forward_address_parse(address, &a) < 0 || a.family != AF_INET)
                        goto bad_address;
                port_text = colon + 1;
        }
        if (parse_port(port_text, min_port, &port) < 0)
                goto bad_port;
        memcpy(ret_address, address, sizeof(address));
        *ret_port = port;
        return 0;

bad_address:
        if (reason)
                *reason = "the host address must be an IPv4 address or an IPv6 address in brackets, "
                          "followed by a colon and the port (127.0.0.1:8080, [::1]:8080)";
        return -EINVAL;
bad_port:
        if (reason)
                *reason = min_port > 0 ? "the host port must be 1-65535" : "the host port must be 0-65535";
        return -EINVAL;
}

int vmgr_forward_parse_host(const char *s, char ret_address[INET6_ADDRSTRLEN], uint16_t *ret_port,
                            const char **reason) {
        return parse_host(s, 0, ret_address, ret_port, reason);
}

int vmgr_forward_parse_listener(const char *s, int *ret_protocol, char ret_address[INET6_ADDRSTRLEN],
                                uint16_t *ret_port, const char **reason) {
        char address[INET6_ADDRSTRLEN];
        uint16_t port;
        int protocol, r;

        protocol = strip_protocol(&s);
        r = parse_host(s, 1, address, &port, reason);
        if (r < 0)
                return r;
        *ret_protocol = protocol;
        memcpy(ret_address, address, sizeof(address));
        *ret_port = port;
        return 0;
}
