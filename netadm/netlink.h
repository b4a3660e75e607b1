/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The link, address and route changes vmgr-netadm makes, over rtnetlink
 * (libmnl) and /dev/net/tun. Every name and address is derived here from
 * the group and VM names (lib/addressing.h); callers pass only names.
 *
 * Ownership: each link the helper makes carries the alias
 * "vmgr:<uid>:<group>". A caller may only change links whose alias names
 * its own uid and group.
 *
 * Each operation returns 0 or -errno; on failure msg (VMGR_NETADM_MESSAGE_MAX
 * bytes) holds one sentence saying what failed and, for conflicts, with what.
 */

#include "addressing.h"

struct netlink;

/* Open an rtnetlink socket. Returns 0 or -errno. */
int netlink_open(struct netlink **ret);

/* Close the socket and free. Returns NULL. */
struct netlink *netlink_free(struct netlink *nl);

static inline void netlink_freep(struct netlink **nl) {
        if (*nl)
                netlink_free(*nl);
}
#define _cleanup_netlink_ _cleanup_(netlink_freep)

/* Called by netlink_group_create() as soon as the bridge is the caller's
 * (made with NLM_F_EXCL, within the limit, tagged), while it is still down,
 * without addresses and before the group's addresses and routes are checked
 * against the rest of the namespace. Returns 0 to go on, or -errno with msg
 * to undo. */
typedef int (*netlink_bridge_made_t)(int ifindex, void *userdata, char *msg);

/* Called by netlink_group_create() when the creation fails after
 * netlink_bridge_made_t was called (also when that failed), before the
 * bridge is deleted: whatever it started must be gone before the name is
 * free again. */
typedef void (*netlink_bridge_undo_t)(void *userdata);

/* Create the group's bridge, its addresses, the lo service addresses and the
 * /64 route with the management source. Refuses with -EADDRINUSE when the
 * bridge name exists or any address or route in this network namespace
 * overlaps the group's /64 or /24 (checked once the bridge is made), and with -EDQUOT when uid already holds
 * max_groups bridges, also against helpers running at the same time.
 * bridge_made (may be NULL) runs half-way, see above, and bridge_undo (may
 * be NULL) before the undo when it ran. Undoes what it made on failure. */
int netlink_group_create(struct netlink *nl, unsigned uid, const char *group, unsigned max_groups,
                         netlink_bridge_made_t bridge_made, netlink_bridge_undo_t bridge_undo, void *userdata,
                         char *msg);

/* Delete every link tagged with the caller's alias for group and the group's
 * lo service addresses; also the group's bridge when it is untagged but was
 * born in the caller's netdev owner group (a helper died before tagging it).
 * Returns 0 also when there was nothing to delete, -EPERM (touching nothing)
 * when the group's bridge is somebody else's. */
int netlink_group_delete(struct netlink *nl, unsigned uid, const char *group, char *msg);

/* Create the persistent TAP of (group, vm, nic), owned by uid, tagged,
 * enslaved to the group's bridge (which must be the caller's) and up.
 * -EDQUOT when the group already has max_taps TAPs, also against helpers
 * running at the same time. */
int netlink_tap_create(struct netlink *nl, unsigned uid, const char *group, const char *vm, enum vmgr_nic nic,
                       unsigned max_taps, char *msg);

/* Delete the TAP of (group, vm, nic) if it is the caller's. Returns 0 also
 * when it does not exist, -EPERM when it is somebody else's. */
int netlink_tap_delete(struct netlink *nl, unsigned uid, const char *group, const char *vm, enum vmgr_nic nic,
                       char *msg);

/* Check that the group's bridge exists and is the caller's. Returns its
 * ifindex, -ENODEV if it does not exist or -EPERM if it belongs to somebody else. */
int netlink_bridge_check_owner(struct netlink *nl, unsigned uid, const char *group, char *msg);
