/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * IDENTITY (docs/agent-protocol.md): a guest restored from a snapshot takes
 * the identity of the VM it now is. In this order, each step relying on the
 * ones before: the kernel's RNG gets the host's entropy and reseeds (so that
 * everything after, SLAAC and TCP sequence numbers included, differs between
 * clones), the clock, the hostname, then each NIC (found by its PCI slot):
 * its MAC, its addresses and routes; then the DHCP client is started again
 * for the new MAC and hostname.
 */

#include <stddef.h>

#include "agent-proto.h"

/* Apply id. Returns 0, or -errno with why (size bytes) set to one sentence
 * saying which step failed. Steps before a failure stay applied. */
int identity_apply(const struct vmgr_agent_identity *id, char *why, size_t size);

/* Called after the network configuration changed (the agent's rtnetlink
 * monitor): for a few seconds after an IDENTITY, put back a static IPv4
 * address that a restarted DHCP client's "deconfig" removed before its new
 * lease (the same address) arrives. */
void identity_recheck(void);
