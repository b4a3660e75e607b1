/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Saving and restoring VMs (docs/design.md, "Warm start"): QEMU's migration
 * stream to and from a snapshot's state file, through libvirt's QEMU
 * monitor passthrough, so that a clone runs under its own domain name,
 * UUID, TAPs and files. Templates: the first VM of a shape boots cold and
 * is saved when it is ready; later VMs of that shape are its clones, and
 * take their own identity through the guest agent.
 */

#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "domain-xml.h"
#include "manager.h"
#include "vm.h"

#define VM_SHAPE_STRLEN 65

/* The shape of a VM whose domain XML would be made from c: everything a
 * restore needs to match. Hashes the XML made for a canonical identity (so
 * names, MACs, TAPs, paths and the guest's hostname on the kernel command
 * line, vmgr.hostname=hostname, do not count), the content of kernel, initrd
 * and every file in files (disk images; the hashes are cached by device,
 * inode, size and modification time) and the QEMU binary's path, size and
 * modification time. Blocks on the file system (pool thread). Returns 0
 * and 64 hex digits in shape, or -errno (error: a sentence). */
int vm_shape_compute(const VmgrDomainConfig *c, const char *hostname, const char *const *files, size_t n_files,
                     char shape[VM_SHAPE_STRLEN], char *error, size_t error_size);

/* Whether this start of the VM may restore a snapshot: its first start,
 * with from_snapshot, or when both the config and the spec want warm
 * starts (and readiness waits for no console line, which a clone would
 * not print again). */
bool vm_warm_wanted(VM *vm);

/* The machine's actions (vm.c calls them): find the snapshot to restore
 * (the machine then gets DONE, COLD or FAILED), restore it, save the VM. */
void vm_snapshot_find(VM *vm);
void vm_snapshot_restore(VM *vm);
void vm_snapshot_save(VM *vm);

/* The VM is to build its shape's template when it is ready: save it now
 * (a Snapshot operation). Returns 1 if the save began (readiness waits for
 * it), 0 if there is nothing to build or it could not begin. */
int vm_template_save_begin(VM *vm);
/* The VM stopped, failed or goes away: a template it was to build is
 * given up, and the VMs waiting for it boot cold. */
void vm_template_abandon(VM *vm);

/* Readiness of a clone (vm-ready.c): send its identity through the agent
 * once the session is up. */
void vm_identity_send(VM *vm);

/* A domain found paused when vmgrd starts, of a VM it adopts: vmgrd
 * pauses domains only to save them and to restore them, so the previous
 * vmgrd was killed in one of those. A save: its migration stream is let
 * end (into a file the new vmgrd's store removed) and the guest resumed.
 * A restore: the stream went with the previous vmgrd; the domain is
 * destroyed (*destroyed). Blocks (pool thread). Returns 0, or -errno
 * (error: a sentence). */
int vm_snapshot_paused_mend(virDomainPtr dom, bool *destroyed, char *error, size_t error_size);

/* Forget the Manager's template builds (it is being freed). */
void vm_snapshot_manager_done(Manager *m);
