/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Port forwards' words (docs/dbus-api.md, "Port forwards"): the protocol,
 * the host address a forward listens on, and vmgrctl's shorthands
 * "[tcp|udp:]GUEST_PORT" and "[[ADDR:]HOST_PORT]". Shared by the daemon
 * (which validates what a caller sends) and the client (which parses what
 * a person types), so both accept exactly the same.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>

/* The address a forward listens on when the caller names none. */
#define VMGR_FORWARD_DEFAULT_ADDRESS "127.0.0.1"

/* A host address in canonical text form, and its socket address. */
struct vmgr_forward_address {
        int family;                     /* AF_INET or AF_INET6 */
        char text[INET6_ADDRSTRLEN];    /* canonical (RFC 5952 for IPv6) */
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } sockaddr;                     /* port 0 */
};

/* "tcp" -> IPPROTO_TCP, "udp" -> IPPROTO_UDP. Returns the protocol, or
 * -EINVAL for anything else. */
int vmgr_forward_protocol_from_string(const char *s);
/* IPPROTO_TCP -> "tcp", IPPROTO_UDP -> "udp", else NULL. */
const char *vmgr_forward_protocol_to_string(int protocol);

/* Parses a numeric IPv4 or IPv6 address (no brackets, no scope); "" means
 * VMGR_FORWARD_DEFAULT_ADDRESS. Returns 0 and fills *ret, or -EINVAL. */
int vmgr_forward_address_parse(const char *s, struct vmgr_forward_address *ret);

/* Parses "[tcp|udp:]PORT", PORT 1-65535, protocol tcp if not given.
 * Returns 0, or -EINVAL with *reason (if not NULL) a static sentence. */
int vmgr_forward_parse_guest(const char *s, int *ret_protocol, uint16_t *ret_port, const char **reason);

/* Parses "[[ADDR:]PORT]": PORT 0-65535 (0: any free one), ADDR an IPv4
 * address or an IPv6 address in brackets ("[::1]:8080"); "" (or NULL) is
 * the default address and port 0. ret_address gets the address text as
 * typed ("" for the default). Returns 0, or -EINVAL with *reason. */
int vmgr_forward_parse_host(const char *s, char ret_address[INET6_ADDRSTRLEN], uint16_t *ret_port,
                            const char **reason);

/* Parses "[tcp|udp:][ADDR:]PORT", a forward's listening end as the removal
 * names it: like parse_host, but PORT is required and not 0. Returns 0, or
 * -EINVAL with *reason. */
int vmgr_forward_parse_listener(const char *s, int *ret_protocol, char ret_address[INET6_ADDRSTRLEN],
                                uint16_t *ret_port, const char **reason);
