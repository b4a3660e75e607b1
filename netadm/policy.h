/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may use vmgr-netadm and which addresses it may hand out.
 *
 * The policy file's path is compiled in (VMGR_NETADM_CONFIG), never taken
 * from the caller. Deny by default: without a readable, valid policy file
 * the helper does not run. The file must name both address pools
 * (ipv4_pool, ipv6_pool): only the admin knows which addresses this host
 * never reaches otherwise, and a group inside a network the host reaches
 * (say through its default route) could capture that traffic. The rest has
 * defaults: members of VMGR_NETADM_DEFAULT_GROUP may use the helper, a user
 * may hold 256 groups of 256 TAPs each (a backstop behind vmgrd's own
 * limits, since a member can run the helper directly). Anything the parser
 * does not understand is an error, so a typo can never silently widen the
 * policy.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/types.h>

#include "netadm-proto.h"

#define NETADM_GROUP_NAME_MAX 64
#define NETADM_LIMIT_DEFAULT 256
#define NETADM_LIMIT_MAX 65536

struct netadm_policy {
        char allowed_group[NETADM_GROUP_NAME_MAX + 1];
        struct in_addr ipv4_pool;       /* network address, host bits zero */
        unsigned ipv4_pool_len;         /* 0 until the file sets it */
        struct in6_addr ipv6_pool;      /* network address, host bits zero */
        unsigned ipv6_pool_len;         /* 0 until the file sets it */
        unsigned max_groups_per_user;   /* bridges one uid may hold */
        unsigned max_taps_per_group;
};

/* Load the policy from path. The file must exist, be a regular file owned by
 * root and not writable by group or others, and set ipv4_pool and ipv6_pool.
 * Returns 0, or -errno with a sentence in msg (VMGR_NETADM_MESSAGE_MAX bytes)
 * naming the file, and the line when one is wrong. */
int policy_load(const char *path, struct netadm_policy *ret, char *msg);

/* The policy in a user namespace of vmgrd's own (namespace mode): no file
 * (the administrator's policy governs the host's network, not the user's own
 * namespaces), the pools every derived address lies in (10.0.0.0/8,
 * fd00::/8), the default limits. */
void policy_namespace(struct netadm_policy *ret);

/* Check that the calling user may use the helper: real uid 0, or the real gid
 * or a supplementary group is the allowed group. Returns 0, or -EPERM (or
 * -errno on lookup failure) with a sentence in msg. */
int policy_check_caller(const struct netadm_policy *p, uid_t uid, gid_t gid, char *msg);

/* Check that the peer of the socket fd runs as uid (SO_PEERCRED). Returns 0,
 * -EPERM if it does not, or -errno when the credentials cannot be read; msg
 * says which. */
int policy_check_peer(int fd, uid_t uid, char *msg);

/* Check that a group's IPv4 /24 lies inside ipv4_pool, and its IPv6 /64 and
 * its three service addresses inside ipv6_pool. Returns 0, or
 * -EADDRNOTAVAIL with a sentence in msg naming the pool and the policy file. */
int policy_check_group(const struct netadm_policy *p, const struct vmgr_group_addrs *g, char *msg);
