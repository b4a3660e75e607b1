/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Which user namespace a process runs in. vmgr-netadm holds capabilities
 * that mean something else in the initial user namespace (the host's network,
 * under the administrator's policy) than in one of vmgrd's own (the user's
 * own namespaces), and must tell the two apart.
 */

#include <stdbool.h>

/* Whether the calling process is in the initial user namespace: its
 * /proc/self/uid_map is the identity over all 2^32 - 1 uids, which no other
 * user namespace can have without the administrator's CAP_SETUID. Returns 1,
 * 0, or -errno when the map cannot be read. */
int vmgr_userns_is_initial(void);
