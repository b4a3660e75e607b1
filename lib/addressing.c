/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addressing.h"
#include "macro.h"

/* Decimal digits of a 32-bit uid and the NUL. */
#define UID_STRLEN 11

int vmgr_name_check(const char *name, const char **reason) {
        const char *why = NULL;
        size_t n;

        if (!name || !*name)
                why = "name is empty";
        else if ((n = strlen(name)) > VMGR_NAME_MAX)
                why = "name is longer than 63 characters";
        else if (name[0] == '.' || name[0] == '-')
                why = "name starts with '.' or '-'";
        else
                for (size_t i = 0; i < n; i++) {
                        char c = name[i];
                        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                              c == '.' || c == '_' || c == '-')) {
                                why = "name contains a character outside [A-Za-z0-9._-]";
                                break;
                        }
                }

        if (why) {
                if (reason)
                        *reason = why;
                return -EINVAL;
        }
        return 0;
}

void vmgr_sha256(const void *data, size_t len, uint8_t out[VMGR_SHA256_LEN]) {
        struct sha256_ctx ctx;

        sha256_init(&ctx);
        sha256_update(&ctx, len, data);
        sha256_digest(&ctx, VMGR_SHA256_LEN, out);
}

/* SHA-256 of the concatenation of strings; the list ends with NULL. */
__attribute__((sentinel)) static void sha256_strings(uint8_t out[VMGR_SHA256_LEN], const char *first, ...) {
        struct sha256_ctx ctx;
        va_list ap;

        sha256_init(&ctx);
        va_start(ap, first);
        for (const char *p = first; p; p = va_arg(ap, const char *))
                sha256_update(&ctx, strlen(p), (const uint8_t *) p);
        va_end(ap);
        sha256_digest(&ctx, VMGR_SHA256_LEN, out);
}

static void ifname_from_hash(char ifname[IFNAMSIZ], const char *prefix, const uint8_t *h) {
        snprintf(ifname, IFNAMSIZ, "%s%02x%02x%02x%02x%02x", prefix, h[0], h[1], h[2], h[3], h[4]);
}

static void mac_from_hash(uint8_t mac[6], const uint8_t *h) {
        mac[0] = 0x6a; /* locally administered, unicast */
        mac[1] = 0x01;
        memcpy(mac + 2, h, 4);
}

static struct in6_addr in6_with(const struct in6_addr *prefix, uint8_t subnet, uint8_t last) {
        struct in6_addr a = *prefix;

        a.s6_addr[7] = subnet;
        a.s6_addr[15] = last;
        return a;
}

static struct in_addr in4_host(const struct in_addr *subnet, uint8_t host) {
        struct in_addr a = *subnet;

        ((uint8_t *) &a.s_addr)[3] = host;
        return a;
}

/* The uid as the hashes take it: decimal, no padding. */
static void uid_format(unsigned uid, char buf[UID_STRLEN]) {
        snprintf(buf, UID_STRLEN, "%u", uid);
}

int vmgr_group_addrs_derive(unsigned uid, const char *group, struct vmgr_group_addrs *ret) {
        uint8_t h[VMGR_SHA256_LEN], g[VMGR_SHA256_LEN];
        struct vmgr_group_addrs a = {};
        char u[UID_STRLEN];

        if (vmgr_name_check(group, NULL) < 0)
                return -EINVAL;

        /* The owner's uid first: two users' groups of the same name get
         * different names and addresses, so neither can block the other. */
        uid_format(uid, u);
        sha256_strings(h, u, "/", group, NULL);
        sha256_strings(g, "ipv4/", u, "/", group, NULL);

        ifname_from_hash(a.bridge, "vbr-", h);

        a.prefix6.s6_addr[0] = 0xfd;
        a.prefix6.s6_addr[1] = 0x00;
        memcpy(a.prefix6.s6_addr + 2, h, 4);
        a.gateway6 = in6_with(&a.prefix6, 0, 1);
        a.management6 = in6_with(&a.prefix6, 1, 1);
        a.logs6 = in6_with(&a.prefix6, 2, 1);
        a.files6 = in6_with(&a.prefix6, 3, 1);

        uint8_t *s = (uint8_t *) &a.subnet4.s_addr;
        s[0] = 10;
        s[1] = g[0];
        s[2] = g[1];
        s[3] = 0;
        a.gateway4 = in4_host(&a.subnet4, 1);
        a.dhcp4_first = in4_host(&a.subnet4, 2);
        a.dhcp4_last = in4_host(&a.subnet4, 254);

        *ret = a;
        return 0;
}

int vmgr_vm_addrs_derive(unsigned uid, const char *group, const char *vm, struct vmgr_vm_addrs *ret) {
        uint8_t v[VMGR_SHA256_LEN], w[VMGR_SHA256_LEN];
        struct vmgr_group_addrs ga;
        struct vmgr_vm_addrs a = {};
        char u[UID_STRLEN];
        int r;

        r = vmgr_group_addrs_derive(uid, group, &ga);
        if (r < 0)
                return r;
        if (vmgr_name_check(vm, NULL) < 0)
                return -EINVAL;

        uid_format(uid, u);
        sha256_strings(v, u, "/", group, "/", vm, NULL);
        sha256_strings(w, "ipv4/", u, "/", group, "/", vm, NULL);

        ifname_from_hash(a.tap, "tap-", v);
        mac_from_hash(a.mac, v);
        ifname_from_hash(a.tap4, "ta4-", w);
        mac_from_hash(a.mac4, w);

        /* Modified EUI-64 (RFC 4291 appendix A): flip the U/L bit, insert ff:fe. */
        a.ipv6 = ga.prefix6;
        a.ipv6.s6_addr[8] = a.mac[0] ^ 0x02;
        a.ipv6.s6_addr[9] = a.mac[1];
        a.ipv6.s6_addr[10] = a.mac[2];
        a.ipv6.s6_addr[11] = 0xff;
        a.ipv6.s6_addr[12] = 0xfe;
        a.ipv6.s6_addr[13] = a.mac[3];
        a.ipv6.s6_addr[14] = a.mac[4];
        a.ipv6.s6_addr[15] = a.mac[5];

        *ret = a;
        return 0;
}

char *vmgr_mac_format(const uint8_t mac[6], char buf[VMGR_MAC_STRLEN]) {
        snprintf(buf, VMGR_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                 mac[5]);
        return buf;
}

char *vmgr_in6_prefix_format(const struct in6_addr *a, unsigned len, char *buf, size_t size) {
        char s[INET6_ADDRSTRLEN];

        inet_ntop(AF_INET6, a, s, sizeof(s));
        snprintf(buf, size, "%s/%u", s, len);
        return buf;
}

char *vmgr_in4_prefix_format(const struct in_addr *a, unsigned len, char *buf, size_t size) {
        char s[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, a, s, sizeof(s));
        snprintf(buf, size, "%s/%u", s, len);
        return buf;
}

/* Compare the first bits of two byte strings. */
static bool bits_equal(const uint8_t *a, const uint8_t *b, unsigned bits) {
        unsigned bytes = bits / 8, rest = bits % 8;

        if (memcmp(a, b, bytes) != 0)
                return false;
        if (rest == 0)
                return true;
        uint8_t mask = (uint8_t) (0xff << (8 - rest));
        return (a[bytes] & mask) == (b[bytes] & mask);
}

bool vmgr_in6_prefix_overlaps(const struct in6_addr *a, unsigned alen, const struct in6_addr *b, unsigned blen) {
        unsigned len = alen < blen ? alen : blen;

        return bits_equal(a->s6_addr, b->s6_addr, len > 128 ? 128 : len);
}

bool vmgr_in4_prefix_overlaps(const struct in_addr *a, unsigned alen, const struct in_addr *b, unsigned blen) {
        unsigned len = alen < blen ? alen : blen;

        return bits_equal((const uint8_t *) &a->s_addr, (const uint8_t *) &b->s_addr, len > 32 ? 32 : len);
}

const char *vmgr_group_addrs_collision(const struct vmgr_group_addrs *a, const struct vmgr_group_addrs *b) {
        if (streq(a->bridge, b->bridge))
                return "bridge";
        if (vmgr_in6_prefix_overlaps(&a->prefix6, 64, &b->prefix6, 64))
                return "IPv6 prefix";
        if (vmgr_in4_prefix_overlaps(&a->subnet4, 24, &b->subnet4, 24))
                return "IPv4 subnet";
        return NULL;
}

int vmgr_link_alias(unsigned uid, const char *group, char *buf, size_t size) {
        int n;

        if (vmgr_name_check(group, NULL) < 0)
                return -EINVAL;
        n = snprintf(buf, size, "vmgr:%u:%s", uid, group);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return 0;
}

int vmgr_link_alias_parse(const char *alias, unsigned *ret_uid, char *ret_group) {
        const char *p, *colon;
        char *end;
        unsigned long uid;

        if (!alias || strncmp(alias, "vmgr:", 5) != 0)
                return -EINVAL;
        p = alias + 5;
        if (*p < '0' || *p > '9')
                return -EINVAL;
        colon = strchr(p, ':');
        if (!colon || colon == p)
                return -EINVAL;
        errno = 0;
        uid = strtoul(p, &end, 10);
        if (errno != 0 || end != colon || uid > UINT32_MAX)
                return -EINVAL;
        if (vmgr_name_check(colon + 1, NULL) < 0)
                return -EINVAL;

        *ret_uid = (unsigned) uid;
        strcpy(ret_group, colon + 1);
        return 0;
}
