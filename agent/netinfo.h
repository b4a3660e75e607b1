/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the agent reports in INFO: hostname, kernel release, boot id, and
 * every interface with its addresses and their flags (tentative included),
 * read over rtnetlink; plus a netlink socket that says when they change.
 */

#include <net/if.h>

#include "agent-proto.h"

struct netinfo {
        char hostname[VMGR_AGENT_NAME_MAX + 1];
        char kernel[VMGR_AGENT_NAME_MAX + 1];
        char boot_id[64];
        char names[VMGR_AGENT_LINKS_MAX][IF_NAMESIZE];
        struct vmgr_agent_info info; /* its strings point into the fields above */
};

/* Fill *ni with the current state. Returns 0 or -errno. */
int netinfo_collect(struct netinfo *ni);

/* Open a non-blocking netlink socket subscribed to link and address
 * changes. Returns the fd or -errno. */
int netinfo_monitor_open(void);

/* Read and drop every pending notification on the monitor socket. Returns
 * 1 if there was at least one (or the socket overran), 0 if none, -errno. */
int netinfo_monitor_drain(int fd);
