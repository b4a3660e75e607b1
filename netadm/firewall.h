/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Isolation of groups from each other and from the host, with nf_tables
 * (libnftables). Guests run the software under test and are not trusted:
 * nothing is forwarded into or out of a vmgr bridge (except between two
 * ports of the same bridge, which br_netfilter shows to the forward hook),
 * and from a bridge the host accepts only what its group needs.
 *
 * Every helper of every user shares one table, "inet vmgr". Its base chains
 * drop everything from any "vbr-*" bridge that is not explicitly allowed, so
 * a bridge without per-group rules is closed, not open. Each group adds a
 * chain named after the caller's uid and its bridge ("u1000-vbr-4b5e57f6eb")
 * and the elements that lead to it; a helper only ever deletes the chain
 * named with its own uid. Bridge names derive from the uid too, so two
 * users meet on one bridge name only through a hash collision; the uid in
 * the chain name keeps even then each user to their own rules. Every
 * command is built from the uid and derived names and addresses
 * (lib/addressing.h), never from the bytes the caller sent.
 *
 * Each function returns 0 or -errno; on failure msg (VMGR_NETADM_MESSAGE_MAX
 * bytes) holds one sentence saying what failed.
 */

/* Install (or repair) the shared table and the group's rules, in one atomic
 * transaction. Idempotent for the same uid and group. Returns 0,
 * -EADDRINUSE if another uid's rules hold the group's bridge name, or
 * -EOPNOTSUPP when nf_tables cannot be used (the group must not run then). */
int firewall_group_create(unsigned uid, const char *group, char *msg);

/* Delete the caller's rules of the group, whether or not its bridge still
 * exists. Returns 0 also when there is nothing of the caller's to delete;
 * never touches another uid's rules. */
int firewall_group_delete(unsigned uid, const char *group, char *msg);

/* Namespace mode only: let the caller's group forward to pasta's interface
 * (VMGR_OUTBOUND_IFNAME) and masquerade there, then turn on IPv4 and IPv6
 * forwarding in this network namespace. Returns 0, -EPERM in the initial
 * user namespace (host mode), -ENOENT when the group has no rules of the
 * caller's, or -EOPNOTSUPP/-EIO when nf_tables refuses. firewall_group_delete()
 * takes it away with the group's other rules. */
int firewall_outbound_enable(unsigned uid, const char *group, char *msg);
