/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Deterministic naming and addressing (docs/addressing.md).
 *
 * Every link name, MAC and address of a group and its VMs is a pure function
 * of the owner's uid and the group and VM names, so a client can compute them
 * without asking the daemon, the privileged helper can recompute them (with
 * its caller's uid) instead of trusting what it is sent, and two users'
 * groups of the same name never share a link or an address.
 */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMGR_NAME_MAX 63
#define VMGR_IFNAME_LEN 14              /* "vbr-" + 10 hex digits */
#define VMGR_MAC_STRLEN 18              /* "6a:01:xx:xx:xx:xx" + NUL */
#define VMGR_SHA256_LEN 32

struct vmgr_group_addrs {
        char bridge[IFNAMSIZ];
        struct in6_addr prefix6;        /* fd00:h0h1:h2h3::/64 */
        struct in6_addr gateway6;       /* prefix ::1, on the bridge */
        struct in6_addr management6;    /* prefix:1::1/128 on lo */
        struct in6_addr logs6;          /* prefix:2::1/128 on lo */
        struct in6_addr files6;         /* prefix:3::1/128 on lo */
        struct in_addr subnet4;         /* 10.g0.g1.0/24 */
        struct in_addr gateway4;        /* .1, on the bridge */
        struct in_addr dhcp4_first;     /* .2 */
        struct in_addr dhcp4_last;      /* .254 */
};

enum vmgr_nic {
        VMGR_NIC_PRIMARY,               /* IPv6 (SLAAC) NIC, guest enp1s0 */
        VMGR_NIC_IPV4,                  /* optional DHCPv4 NIC, guest enp2s0 */
};

struct vmgr_vm_addrs {
        char tap[IFNAMSIZ];             /* "tap-" + hex(v[0..5]) */
        uint8_t mac[6];                 /* 6a:01:v0:v1:v2:v3 */
        struct in6_addr ipv6;           /* group /64 + EUI-64(mac) */
        char tap4[IFNAMSIZ];            /* "ta4-" + hex(w[0..5]) */
        uint8_t mac4[6];                /* 6a:01:w0:w1:w2:w3 */
};

/* Checks a group or VM name: 1-63 of [A-Za-z0-9._-], not starting with '.' or '-'.
 * Returns 0 if valid, -EINVAL otherwise; on failure *reason (if not NULL)
 * points to a static sentence saying what is wrong. */
int vmgr_name_check(const char *name, const char **reason);
static inline bool vmgr_name_is_valid(const char *name) {
        return vmgr_name_check(name, NULL) == 0;
}

/* SHA-256 of a byte string (nettle). */
void vmgr_sha256(const void *data, size_t len, uint8_t out[VMGR_SHA256_LEN]);

/* Derive every address of group owned by uid (the uid vmgrd runs as, which
 * is the uid the helper sees). Returns 0, or -EINVAL for an invalid name. */
int vmgr_group_addrs_derive(unsigned uid, const char *group, struct vmgr_group_addrs *ret);

/* Derive the per-VM names and addresses of vm in group owned by uid.
 * Returns 0, or -EINVAL for an invalid name. */
int vmgr_vm_addrs_derive(unsigned uid, const char *group, const char *vm, struct vmgr_vm_addrs *ret);

/* Format a MAC as "6a:01:..", buf must hold VMGR_MAC_STRLEN bytes. Returns buf. */
char *vmgr_mac_format(const uint8_t mac[6], char buf[VMGR_MAC_STRLEN]);

/* Format prefix/len in canonical form into buf (INET6_ADDRSTRLEN + 4 bytes). */
char *vmgr_in6_prefix_format(const struct in6_addr *a, unsigned len, char *buf, size_t size);
char *vmgr_in4_prefix_format(const struct in_addr *a, unsigned len, char *buf, size_t size);

/* True if a/alen and b/blen share any address. */
bool vmgr_in6_prefix_overlaps(const struct in6_addr *a, unsigned alen, const struct in6_addr *b, unsigned blen);
bool vmgr_in4_prefix_overlaps(const struct in_addr *a, unsigned alen, const struct in_addr *b, unsigned blen);

/* Which derived resource two groups share, or NULL when they can coexist:
 * "bridge", "IPv6 prefix" (the service addresses live in it) or "IPv4 subnet". */
const char *vmgr_group_addrs_collision(const struct vmgr_group_addrs *a, const struct vmgr_group_addrs *b);

/* Link alias that marks a link as vmgr's: "vmgr:<uid>:<group>". */
int vmgr_link_alias(unsigned uid, const char *group, char *buf, size_t size);
/* Parse such an alias. Returns 0 and fills uid and group (VMGR_NAME_MAX+1 bytes),
 * or -EINVAL if it is not a vmgr alias. */
int vmgr_link_alias_parse(const char *alias, unsigned *ret_uid, char *ret_group);
