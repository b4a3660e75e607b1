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

#include "macro.h"
#include "policy.h"
#include "vmgr-config.h"

#define POLICY_LINE_MAX 512
#define POLICY_SUPPLEMENTARY_MAX 1024

/* Strip leading and trailing blanks in place. Returns the trimmed string. */
static char *strip(char *s) {
        char *end;

        while (*s == ' ' || *s == '\t')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
                *--end = 0;
        return s;
}

/* Parse "A.B.C.D/N" with the host bits zero. Returns 0 or -EINVAL. */
static int parse_ipv4_prefix(const char *s, struct in_addr *ret_addr, unsigned *ret_len) {
        char addr[INET_ADDRSTRLEN];
        const char *slash = strchr(s, '/');
        struct in_addr a;
        char *end;
        unsigned long len;

        if (!slash || (size_t) (slash - s) >= sizeof(addr) || slash[1] < '0' || slash[1] > '9')
                return -EINVAL;
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = 0;
        if (inet_pton(AF_INET, addr, &a) != 1)
                return -EINVAL;
        errno = 0;
        len = strtoul(slash + 1, &end, 10);
        if (errno != 0 || *end != 0 || len > 32)
                return -EINVAL;
        /* A pool with host bits set is most likely a typo: refuse it. */
        if (len < 32 && (ntohl(a.s_addr) & (UINT32_MAX >> len)) != 0)
                return -EINVAL;

        *ret_addr = a;
        *ret_len = (unsigned) len;
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

/* Apply one "key = value" line. Returns 0 or -EINVAL with msg set. */
static int policy_apply_line(struct netadm_policy *p, const char *path, unsigned lineno, char *line, char *msg) {
        char *eq = strchr(line, '='), *key, *value;

        if (!eq) {
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "%s:%u: expected \"key = value\"", path, lineno);
                return -EINVAL;
        }
        *eq = 0;
        key = strip(line);
        value = strip(eq + 1);

        if (streq(key, "allowed_group")) {
                if (!group_name_is_valid(value)) {
                        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "%s:%u: allowed_group \"%.64s\" is not a group name",
                                 path, lineno, value);
                        return -EINVAL;
                }
                strcpy(p->allowed_group, value);
                return 0;
        }
        if (streq(key, "ipv4_pool")) {
                struct in_addr a;
                unsigned len;

                if (parse_ipv4_prefix(value, &a, &len) < 0) {
                        snprintf(msg, VMGR_NETADM_MESSAGE_MAX,
                                 "%s:%u: ipv4_pool \"%.64s\" is not an IPv4 prefix like 10.0.0.0/8", path, lineno,
                                 value);
                        return -EINVAL;
                }
                if (len > 24) {
                        snprintf(msg, VMGR_NETADM_MESSAGE_MAX,
                                 "%s:%u: ipv4_pool %s is smaller than one group's /24", path, lineno, value);
                        return -EINVAL;
                }
                p->ipv4_pool = a;
                p->ipv4_pool_len = len;
                return 0;
        }

        if (streq(key, "max_groups_per_user") || streq(key, "max_taps_per_group")) {
                unsigned long n;
                char *end;

                errno = 0;
                n = strtoul(value, &end, 10);
                if (errno != 0 || end == value || *end != 0 || value[0] == '-' || n == 0 || n > NETADM_LIMIT_MAX) {
                        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "%s:%u: %s \"%.32s\" is not a number from 1 to %u",
                                 path, lineno, key, value, NETADM_LIMIT_MAX);
                        return -EINVAL;
                }
                if (streq(key, "max_groups_per_user"))
                        p->max_groups_per_user = (unsigned) n;
                else
                        p->max_taps_per_group = (unsigned) n;
                return 0;
        }

        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "%s:%u: unknown key \"%.64s\"", path, lineno, key);
        return -EINVAL;
}

int policy_load(const char *path, struct netadm_policy *ret, char *msg) {
        struct netadm_policy p = {
                .allowed_group = VMGR_NETADM_DEFAULT_GROUP,
                .ipv4_pool = { htonl(0x0a000000) },
                .ipv4_pool_len = 8,
                .max_groups_per_user = NETADM_LIMIT_DEFAULT,
                .max_taps_per_group = NETADM_LIMIT_DEFAULT,
        };
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int fd = -EBADF;
        char line[POLICY_LINE_MAX];
        unsigned lineno = 0;
        struct stat st;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ENOENT) {
                        *ret = p;
                        return 0;
                }
                r = negative_errno();
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "cannot open %s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "cannot stat %s: %s", path, strerror(-r));
                return r;
        }
        /* Whoever can write the policy can grant themselves the helper. */
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX,
                         "%s must be a regular file owned by root and not writable by group or others", path);
                return -EPERM;
        }

        f = fdopen(fd, "re");
        if (!f) {
                r = negative_errno();
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "cannot read %s: %s", path, strerror(-r));
                return r;
        }
        TAKE_FD(fd);

        while (fgets(line, sizeof(line), f)) {
                char *s;

                lineno++;
                if (!strchr(line, '\n') && !feof(f)) {
                        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "%s:%u: line is too long", path, lineno);
                        return -EINVAL;
                }
                s = strip(line);
                if (*s == 0 || *s == '#')
                        continue;
                r = policy_apply_line(&p, path, lineno, s, msg);
                if (r < 0)
                        return r;
        }
        if (ferror(f)) {
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "cannot read %s", path);
                return -EIO;
        }

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
        if (!gr) {
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX,
                         "group '%s' that may use vmgr-netadm does not exist; uid %u is not allowed",
                         p->allowed_group, (unsigned) uid);
                return errno > 0 ? -errno : -EPERM;
        }
        if (gid == gr->gr_gid)
                return 0;

        n = getgroups(ELEMENTSOF(groups), groups);
        if (n < 0) {
                int r = negative_errno();
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "cannot read supplementary groups: %s", strerror(-r));
                return r;
        }
        for (int i = 0; i < n; i++)
                if (groups[i] == gr->gr_gid)
                        return 0;

        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "uid %u is not a member of group '%s', which may use vmgr-netadm",
                 (unsigned) uid, p->allowed_group);
        return -EPERM;
}

int policy_check_peer(int fd, uid_t uid, char *msg) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
                int r = negative_errno();
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "cannot read the peer credentials of fd %d: %s", fd,
                         strerror(-r));
                return r;
        }
        if (cred.uid != uid) {
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "the peer on fd %d runs as uid %u, not as the caller's uid %u",
                         fd, (unsigned) cred.uid, (unsigned) uid);
                return -EPERM;
        }
        return 0;
}

int policy_check_subnet4(const struct netadm_policy *p, const struct in_addr *subnet4, char *msg) {
        char subnet[INET_ADDRSTRLEN + 4], pool[INET_ADDRSTRLEN + 4];

        /* The /24 lies in the pool when the pool's prefix covers it. */
        if (vmgr_in4_prefix_overlaps(subnet4, 24, &p->ipv4_pool, p->ipv4_pool_len))
                return 0;

        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "%s is outside the IPv4 pool %s of %s",
                 vmgr_in4_prefix_format(subnet4, 24, subnet, sizeof(subnet)),
                 vmgr_in4_prefix_format(&p->ipv4_pool, p->ipv4_pool_len, pool, sizeof(pool)), VMGR_NETADM_CONFIG);
        return -EADDRNOTAVAIL;
}
