/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
/*
 * A starting vmgrd and what a previous one left (adopt.c): groups that were
 * running are adopted, the rest cleaned up (docs/design.md, "Restart after
 * a crash").
 */
#include "manager.h"

/* At start, before the bus name is claimed: adopt or clean up every group
 * in the state directory. The adoption of VMs finishes once libvirt has
 * said which domains run (manager_wait_recovered()). Returns 0 or -errno
 * (the state directory cannot be read). */
int manager_recover(Manager *m);

/* Run the event loop until every adopted group is complete again (at most
 * a minute, if libvirtd does not answer). Returns 0 or -errno. */
int manager_wait_recovered(Manager *m);

/* A group name left by a previous vmgrd whose clean-up failed is reserved:
 * try that clean-up again (before a CreateGroup of the name). Returns 0
 * (not reserved, or cleaned now) or -errno (still reserved). */
int manager_stale_retry(Manager *m, const char *name);

/* Try every reserved name's clean-up again (at exit, and every 10 s while
 * any is left). */
void manager_stale_retry_all(Manager *m);

/* libvirtd was restarted (it died alone) and we are connected again: VMs
 * whose QEMU died meanwhile are marked crashed. */
void manager_virt_reconnected(Manager *m);
