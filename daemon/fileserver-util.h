/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The pure parts of a group's file server (fileserver.c), kept apart so that
 * unit tests run them without a daemon: who may connect, which names a file
 * may be served under, and what a request's Range header asks for.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * May a connection from addr (the peer address accept() gave, addrlen bytes)
 * use the file server of a group whose guests live in prefix6/64 and whose
 * bridge holds gateway6 (docs/addressing.md)? Only an IPv6 source inside the
 * group's /64 may: that is where the group's guests, and only they, have
 * their addresses. Refused are every other family and prefix (the host's own
 * service addresses are in other /64s of the group's /48, another group's
 * guests in another /48), the bridge's own address gateway6 (any local
 * process could bind it as its source) and the subnet-router anycast address
 * (prefix::, never a guest's source). Returns true if allowed.
 */
bool fileserver_peer_allowed(const struct sockaddr *addr, socklen_t addrlen, const struct in6_addr *prefix6,
                             const struct in6_addr *gateway6);

/* Longest name a file may be served under. */
#define SERVED_NAME_MAX 128

/* Checks the name a file is served under (GET /NAME): 1-128 characters of
 * [A-Za-z0-9._+-], not starting with '.' or '-'. So a name never holds a '/'
 * or a '%', and can be neither "." nor "..": no request path can reach
 * outside the registered files. Returns 0 if valid, -EINVAL otherwise, with
 * *reason (if not NULL) pointing to a static sentence saying what is wrong. */
int served_name_check(const char *name, const char **reason);

/* Is s 64 hexadecimal digits (a SHA-256 in hex, either case)? */
bool sha256_hex_is_valid(const char *s);

typedef enum HttpRange {
        HTTP_RANGE_NONE,                /* no usable Range: send the whole file (200) */
        HTTP_RANGE_PARTIAL,             /* send bytes first..last (206) */
        HTTP_RANGE_UNSATISFIABLE,       /* 416, with Content-Range: bytes * /size */
} HttpRange;

/*
 * What a Range header (RFC 9110 section 14) asks of a representation of size
 * bytes. value is the header's value, or NULL when there was none.
 *
 * One range is understood: "bytes=FIRST-LAST", "bytes=FIRST-" and the suffix
 * "bytes=-N" (the last N bytes), with optional whitespace around the parts
 * and the unit in any case. LAST beyond the end is cut to the end.
 * HTTP_RANGE_NONE, which means the header is ignored, for: no header,
 * another unit, a syntax error (including LAST < FIRST), and a list of
 * several ranges (a server may ignore Range; answering with one whole
 * representation is simpler than multipart/byteranges and always correct).
 * HTTP_RANGE_UNSATISFIABLE when FIRST is at or past the end, or for a
 * suffix of 0 bytes or of an empty file. Numbers too large for 64 bits
 * count as the largest value (so such a FIRST is unsatisfiable).
 *
 * *ret_first and *ret_last (inclusive) are written only for
 * HTTP_RANGE_PARTIAL.
 */
HttpRange http_range_parse(const char *value, uint64_t size, uint64_t *ret_first, uint64_t *ret_last);
