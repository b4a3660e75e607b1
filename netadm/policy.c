/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "kvconf.h"
#include "macro.h"
#include "message.h"
#include "policy.h"
#include "vmgr-config.h"

#define POLICY_SUPPLEMENTARY_MAX 1024

/* Parse "A.B.C.D/N" with the host bits zero. Returns 0 or -EINVAL. */
static int parse_ipv4_prefix(const char *s, struct in_addr *ret_addr, unsigned *ret_len) {
        char addr[INET_ADDRSTRLEN];
        const char *slash = strchr(s, '/');
        struct in_addr a;
        unsigned len;

        if (!slash || (size_t) (slash - s) >= sizeof(addr))
                return -EINVAL;
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = 0;
        if (inet_pton(AF_INET, addr, &a) != 1 || vmgr_parse_uint(slash + 1, 0, 32, &len) < 0)
                return -EINVAL;
        /* A pool with host bits set is most likely a typo: refuse it. */
        if (len < 32 && (ntohl(a.s_addr) & (UINT32_MAX >> len)) != 0)
                return -EINVAL;

        *ret_addr = a;
        *ret_len = len;
        return 0;
}

/* Parse "ADDR/N" (IPv6) with the host bits zero. Returns 0 or -EINVAL. */
static int parse_ipv6_prefix(const char *s, struct in6_addr *ret_addr, unsigned *ret_len) {
        char addr[INET6_ADDRSTRLEN];
        const char *slash = strchr(s, '/');
        struct in6_addr a, masked;
        unsigned len;

        if (!slash || (size_t) (slash - s) >= sizeof(addr))
                return -EINVAL;
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = 0;
        if (inet_pton(AF_INET6, addr, &a) != 1 || vmgr_parse_uint(slash + 1, 0, 128, &len) < 0)
                return -EINVAL;
        /* As for IPv4: host bits set are most likely a typo. */
        memset(&masked, 0, sizeof(masked));
        memcpy(&masked, &a, len / 8);
        if (len % 8)
                masked.s6_addr[len / 8] = (uint8_t) (a.s6_addr[len / 8] & (0xff00 >> (len % 8)));
        if (memcmp(&masked, &a, sizeof(a)) != 0)
                return -EINVAL;

        *ret_addr = a;
        *ret_len = len;
        return 0;
}

/* A group name as groupadd accepts it, conservatively. Returns true if valid. */
static bool group_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > NETADM_GROUP_NAME_MAX || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      strchr("._-", s[i])))
                        return false;
        return true;
}

/* Check the prefix length of pool KEY = VALUE: it must hold one group's
 * network (/max) and must not cover every address. Returns 0, or -EINVAL
 * with error set. */
static int pool_len_check(const char *key, const char *value, unsigned len, unsigned max, char *error,
                          size_t error_size) {
        if (len > max) {
                snprintf(error, error_size, "%s %s is smaller than one group's /%u", key, value, max);
                return -EINVAL;
        }
        if (len == 0) {
                snprintf(error, error_size,
                         "%s %s covers every address; name a pool the host never reaches otherwise", key, value);
                return -EINVAL;
        }
        return 0;
}

/* Apply one "key = value" assignment of the policy file (a vmgr_kvconf_handler_t).
 * Returns 0 or -EINVAL with error set. */
static int policy_assign(const char *key, const char *value, void *userdata, char *error, size_t error_size) {
        struct netadm_policy *p = userdata;

        if (streq(key, "allowed_group")) {
                if (!group_name_is_valid(value)) {
                        snprintf(error, error_size, "allowed_group \"%.64s\" is not a group name", value);
                        return -EINVAL;
                }
                strcpy(p->allowed_group, value);
                return 0;
        }
        if (streq(key, "ipv4_pool")) {
                struct in_addr a;
                unsigned len;

                if (parse_ipv4_prefix(value, &a, &len) < 0) {
                        snprintf(error, error_size,
                                 "ipv4_pool \"%.64s\" is not an IPv4 prefix like 10.0.0.0/8", value);
                        return -EINVAL;
                }
                if (pool_len_check(key, value, len, 24, error, error_size) < 0)
                        return -EINVAL;
                p->ipv4_pool = a;
                p->ipv4_pool_len = len;
                return 0;
        }
        if (streq(key, "ipv6_pool")) {
                struct in6_addr a;
                unsigned len;

                if (parse_ipv6_prefix(value, &a, &len) < 0) {
                        snprintf(error, error_size,
                                 "ipv6_pool \"%.64s\" is not an IPv6 prefix like fd00::/8", value);
                        return -EINVAL;
                }
                if (pool_len_check(key, value, len, 64, error, error_size) < 0)
                        return -EINVAL;
                p->ipv6_pool = a;
                p->ipv6_pool_len = len;
                return 0;
        }
        if (streq(key, "max_groups_per_user") || streq(key, "max_taps_per_group")) {
                unsigned *limit = streq(key, "max_groups_per_user") ? &p->max_groups_per_user : &p->max_taps_per_group;

                if (vmgr_parse_uint(value, 1, NETADM_LIMIT_MAX, limit) < 0) {
                        snprintf(error, error_size, "%s \"%.32s\" is not a number from 1 to %u", key,
                                 value, NETADM_LIMIT_MAX);
                        return -EINVAL;
                }
                return 0;
        }

        snprintf(error, error_size, "unknown key \"%.64s\"", key);
        return -EINVAL;
}

void policy_namespace(struct netadm_policy *ret) {
        *ret = (struct netadm_policy) {
                .ipv4_pool = { htonl(0x0a000000u) },
                .ipv4_pool_len = 8,
                .ipv6_pool = { { { 0xfd } } },
                .ipv6_pool_len = 8,
                .max_groups_per_user = NETADM_LIMIT_DEFAULT,
                .max_taps_per_group = NETADM_LIMIT_DEFAULT,
        };
}

int policy_load(const char *path, struct netadm_policy *ret, char *msg) {
        struct netadm_policy p = {
                .allowed_group = VMGR_NETADM_DEFAULT_GROUP,
                .max_groups_per_user = NETADM_LIMIT_DEFAULT,
                .max_taps_per_group = NETADM_LIMIT_DEFAULT,
        };
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int fd = -EBADF;
        char error[VMGR_ERROR_MAX];
        struct stat st;
        int r;

        /* Deny by default: no policy, no service. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = negative_errno();
                if (r == -ENOENT)
                        return netadm_fail(msg, r,
                                           "refusing to run without the policy file %s; install it from vmgr's "
                                           "data/netadm.conf and set ipv4_pool and ipv6_pool",
                                           path);
                return netadm_fail(msg, r, "refusing to run: cannot open the policy file %s: %m", path);
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                return netadm_fail(msg, r, "cannot stat %s: %m", path);
        }
        /* Whoever can write the policy can grant themselves the helper. */
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return netadm_fail(msg, -EPERM,
                                   "%s must be a regular file owned by root and not writable by group or others", path);

        f = fdopen(fd, "re");
        if (!f) {
                r = negative_errno();
                return netadm_fail(msg, r, "cannot read %s: %m", path);
        }
        TAKE_FD(fd);

        r = vmgr_kvconf_parse(f, policy_assign, &p, error, sizeof(error));
        if (r < 0) {
                /* "line N: reason" becomes "PATH:N: reason", as compilers name a line. */
                unsigned line;
                int off = -1;

                if (sscanf(error, "line %u: %n", &line, &off) == 1 && off > 0)
                        return netadm_fail(msg, r, "%s:%u: %s", path, line, error + off);
                return netadm_fail(msg, r, "%s: %.200s", path, error);
        }
        /* No default pools: only the admin knows what this host reaches. */
        if (p.ipv4_pool_len == 0 || p.ipv6_pool_len == 0)
                return netadm_fail(msg, -EINVAL,
                                   "%s does not set %s; name a pool the host never reaches otherwise", path,
                                   p.ipv4_pool_len == 0 ? "ipv4_pool" : "ipv6_pool");

        *ret = p;
        return 0;
}

int policy_check_caller(const struct netadm_policy *p, uid_t uid, gid_t gid, char *msg) {
        gid_t groups[POLICY_SUPPLEMENTARY_MAX];
        struct group *gr;
        int n;

        if (uid == 0)
                return 0;

        errno = 0;
        gr = getgrnam(p->allowed_group);
        if (!gr)
                return netadm_fail(msg, errno > 0 ? -errno : -EPERM,
                                   "group '%s' that may use vmgr-netadm does not exist; uid %u is not allowed",
                                   p->allowed_group, (unsigned) uid);
        if (gid == gr->gr_gid)
                return 0;

        n = getgroups(ELEMENTSOF(groups), groups);
        if (n < 0) {
                int r = negative_errno();
                return netadm_fail(msg, r, "cannot read supplementary groups: %m");
        }
        for (int i = 0; i < n; i++)
                if (groups[i] == gr->gr_gid)
                        return 0;

        return netadm_fail(msg, -EPERM, "uid %u is not a member of group '%s', which may use vmgr-netadm",
                           (unsigned) uid, p->allowed_group);
}

int policy_check_peer(int fd, uid_t uid, char *msg) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
                int r = negative_errno();
                return netadm_fail(msg, r, "cannot read the peer credentials of fd %d: %m", fd);
        }
        if (cred.uid != uid)
                return netadm_fail(msg, -EPERM, "the peer on fd %d runs as uid %u, not as the caller's uid %u", fd,
                                   (unsigned) cred.uid, (unsigned) uid);
        return 0;
}

/* Whether a/alen lies inside pool/plen. */
static bool in6_prefix_inside(const struct in6_addr *a, unsigned alen, const struct in6_addr *pool, unsigned plen) {
        return plen <= alen && vmgr_in6_prefix_overlaps(a, alen, pool, plen);
}

int policy_check_group(const struct netadm_policy *p, const struct vmgr_group_addrs *g, char *msg) {
        char what[INET6_ADDRSTRLEN + 4], pool[INET6_ADDRSTRLEN + 4];
        const struct {
                const struct in6_addr *addr;
                unsigned len;
        } v6[] = {
                { &g->prefix6, 64 },
                { &g->management6, 128 },
                { &g->logs6, 128 },
                { &g->files6, 128 },
        };

        /* The pool is at most a /24: the /24 lies in it when the pool's prefix covers it. */
        if (!vmgr_in4_prefix_overlaps(&g->subnet4, 24, &p->ipv4_pool, p->ipv4_pool_len))
                return netadm_fail(msg, -EADDRNOTAVAIL, "%s is outside the IPv4 pool %s of %s; pick another group name",
                                   vmgr_in4_prefix_format(&g->subnet4, 24, what, sizeof(what)),
                                   vmgr_in4_prefix_format(&p->ipv4_pool, p->ipv4_pool_len, pool, sizeof(pool)),
                                   VMGR_NETADM_CONFIG);

        for (size_t i = 0; i < ELEMENTSOF(v6); i++)
                if (!in6_prefix_inside(v6[i].addr, v6[i].len, &p->ipv6_pool, p->ipv6_pool_len))
                        return netadm_fail(msg, -EADDRNOTAVAIL,
                                           "%s is outside the IPv6 pool %s of %s; pick another group name",
                                           vmgr_in6_prefix_format(v6[i].addr, v6[i].len, what, sizeof(what)),
                                           vmgr_in6_prefix_format(&p->ipv6_pool, p->ipv6_pool_len, pool,
                                                                  sizeof(pool)),
                                           VMGR_NETADM_CONFIG);
        return 0;
}
