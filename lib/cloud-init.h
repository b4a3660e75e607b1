/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The files of a VM's cloud-init NoCloud seed (docs/spec.md, "cloud-init"):
 * pure text, a function of the owner's uid, the group and VM names and the
 * VM's spec, so that the same VM always gets the same seed. Writing them
 * into a "cidata" volume is the daemon's (daemon/cloudinit.c).
 *
 * meta-data and network-config are JSON, which is YAML too; they are
 * pretty-printed without "\/" escapes, which old YAML parsers refuse.
 */

#include <stdbool.h>

#include "spec.h"

/* The volume label cloud-init's NoCloud source looks for. */
#define VMGR_CLOUD_INIT_LABEL "cidata"

/* The names, at the root of the seed, of what the vendor-data installs
 * (with "install_agent"). */
#define VMGR_CLOUD_INIT_AGENT "vmgr-agent"
#define VMGR_CLOUD_INIT_AGENT_UNIT "vmgr-agent.service"
#define VMGR_CLOUD_INIT_AGENT_RULE "90-vmgr-agent.rules"

/* Where the vendor-data installs them in the guest (docs/agent.md). */
#define VMGR_CLOUD_INIT_AGENT_DEST "/usr/local/bin/vmgr-agent"
#define VMGR_CLOUD_INIT_AGENT_UNIT_DEST "/etc/systemd/system/vmgr-agent.service"
#define VMGR_CLOUD_INIT_AGENT_RULE_DEST "/etc/udev/rules.d/90-vmgr-agent.rules"

typedef struct VmgrCloudInitSeed {
        char *meta_data;
        char *user_data;
        char *network_config;
        char *vendor_data;              /* NULL: the seed has none */
} VmgrCloudInitSeed;

/* The seed's files for vm in group owned by uid: meta-data (instance-id,
 * local-hostname, then the spec's meta_data keys, which win), user-data
 * (the spec's text as is, or an empty cloud-config), network-config (the
 * spec's, else vmgr's: see vmgr_cloud_init_network_config()) and, with
 * install_agent, vendor-data (a boothook that installs and starts the agent
 * from the seed). Returns 0 and fills *ret (free with
 * vmgr_cloud_init_seed_done()); -EINVAL for an invalid name, a spec
 * without cloud_init, or meta_data / network_config that is not what the
 * spec parser keeps; -ENOMEM. */
int vmgr_cloud_init_seed_build(unsigned uid, const char *group, const VmgrVMSpec *vm, VmgrCloudInitSeed *ret);

void vmgr_cloud_init_seed_done(VmgrCloudInitSeed *seed);

/* vmgr's network-config (version 2): enp1s0 matched by the derived MAC,
 * no DHCP, router advertisements accepted and an EUI-64 SLAAC address (the
 * derived one); with ipv4, enp2s0 by its MAC with DHCPv4 and no RAs (as in
 * the default guest). Returns 0 and a malloc'd string, -EINVAL for an
 * invalid name, -ENOMEM. */
int vmgr_cloud_init_network_config(unsigned uid, const char *group, const char *vm, bool ipv4, char **ret);

/* The guest's hostname for a VM name: the name with '_' (not allowed in
 * host names) turned into '-', as the default guest does. buf holds
 * VMGR_NAME_MAX + 1 bytes. Returns buf. */
char *vmgr_cloud_init_hostname(const char *vm, char *buf);
