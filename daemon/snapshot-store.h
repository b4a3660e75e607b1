/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The user's snapshots on disk: templates (one per VM shape, made and used
 * by vmgrd on its own) and user snapshots (VM.Snapshot, named by the user).
 * They live in CACHE/snapshots/ (CACHE is the user's vmgr cache, shared by
 * every vmgrd of the user), one directory each:
 *
 *   templates/SHAPE/      SHAPE: 64 hex digits, the shape's hash
 *   user/NAME/            NAME: a snapshot name (vmgr_name_check() rules)
 *     state               QEMU's migration stream: memory and devices
 *     disk0.qcow2 ...     the frozen disk overlays, in the domain's order
 *     meta.json           what it is (below), written last
 *
 * A snapshot appears whole or not at all: it is built in a temporary
 * directory and renamed into place. Building a template takes an flock on
 * templates/SHAPE.lock, so that among every vmgrd of the user one builds
 * it and the others wait for it. Clones get hard links (or copies, across
 * file systems) of the disks in their own directory, and QEMU has read the
 * state before a clone counts as started: deleting or evicting a snapshot
 * never breaks a VM made from it.
 *
 * Every function here blocks on the file system: call it from the worker
 * pool, never from the event loop.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* How clients name a template where a user snapshot's name goes
 * (Manager.DeleteSnapshot, vmgrctl): "template:SHAPE". */
#define SNAPSHOT_TEMPLATE_PREFIX "template:"

typedef enum SnapshotKind {
        SNAPSHOT_TEMPLATE,
        SNAPSHOT_USER,
} SnapshotKind;

#define SNAPSHOT_DISKS_MAX 9            /* boot disk + VMGR_SPEC_MAX_EXTRA_DISKS */

/* What meta.json says. */
typedef struct SnapshotMeta {
        SnapshotKind kind;
        char name[65];                  /* SHAPE for a template, NAME for a user snapshot */
        char shape[65];                 /* the VM's shape hash (both kinds) */
        char *spec_json;                /* the VM spec it was made from (a user snapshot's clones use it) */
        char *source;                   /* "GROUP/VM" it was made from */
        char *domain_xml;               /* the domain XML it ran with (its device layout) */
        uint8_t macs[2][6];             /* the MACs its NICs had (the clone's guest changes them) */
        unsigned n_disks;
        uint64_t created_usec;          /* CLOCK_REALTIME */
        uint64_t last_used_usec;        /* CLOCK_REALTIME of the last clone started from it */
        uint64_t size_bytes;            /* state + disks on disk */
        uint64_t state_bytes;           /* the state file alone */
} SnapshotMeta;

void snapshot_meta_done(SnapshotMeta *m);

typedef struct SnapshotStore SnapshotStore;

/* The store under cache_dir/snapshots (made if missing); templates beyond
 * max_bytes in total are evicted, least recently used first (user
 * snapshots are never evicted). Returns 0 or -errno. */
int snapshot_store_new(const char *cache_dir, uint64_t max_bytes, SnapshotStore **ret);
SnapshotStore *snapshot_store_free(SnapshotStore *s);

/* ---- Using a snapshot ---------------------------------------------------- */

/* What a clone takes from a snapshot. */
typedef struct SnapshotClone {
        int state_fd;                   /* the state file, open for reading (O_CLOEXEC) */
        char *disks[SNAPSHOT_DISKS_MAX]; /* its frozen disks, linked or copied into the clone's
                                         * directory (dest_dir/snapshot-diskN.qcow2): the
                                         * backing files of the clone's own overlays */
        SnapshotMeta meta;
} SnapshotClone;

/* Open snapshot (kind, name) for a clone whose directory is dest_dir, and
 * mark it used now. Returns 0, -ENOENT if there is none, or -errno (error:
 * a sentence, error_size bytes). */
int snapshot_store_clone(SnapshotStore *s, SnapshotKind kind, const char *name, const char *dest_dir,
                         SnapshotClone *ret, char *error, size_t error_size);
/* Close the state fd, free the strings (the linked disks stay). */
void snapshot_clone_done(SnapshotClone *c);

/* ---- Making a snapshot --------------------------------------------------- */

typedef struct SnapshotBuild SnapshotBuild;

/* Begin making snapshot (kind, name). For a template this takes its lock
 * without waiting: -EBUSY if another builder (this vmgrd or another) holds
 * it, -EEXIST if the template exists by the time the lock is ours. A user
 * snapshot that exists is -EEXIST. Returns 0 and a build, or -errno. */
int snapshot_build_begin(SnapshotStore *s, SnapshotKind kind, const char *name, SnapshotBuild **ret,
                         char *error, size_t error_size);
/* The state file, open for writing (O_CLOEXEC): QEMU writes it. */
int snapshot_build_state_fd(SnapshotBuild *b);
/* Copy disk overlay path (QEMU holds it but is stopped) in as disk index.
 * Returns 0 or -errno. */
int snapshot_build_add_disk(SnapshotBuild *b, unsigned index, const char *path, char *error, size_t error_size);
/* Write meta.json (meta's kind and name are the build's; sizes and times
 * are filled in), fsync, rename into place, release the lock, evict
 * templates beyond the limit. The build is freed either way. Returns 0 or
 * -errno. */
int snapshot_build_commit(SnapshotBuild *b, const SnapshotMeta *meta, char *error, size_t error_size);
/* Throw the build away and release the lock. NULL is fine. Returns NULL. */
SnapshotBuild *snapshot_build_abort(SnapshotBuild *b);

/* Is a template of shape being built by someone (its lock held)? Lets a
 * waiting VM poll without taking the lock. */
bool snapshot_store_template_building(SnapshotStore *s, const char *shape);

/* ---- Listing and deleting ------------------------------------------------ */

/* Every snapshot, templates and user ones (*ret: n entries, free each with
 * snapshot_meta_done() and the array with free()). Returns 0 or -errno. */
int snapshot_store_list(SnapshotStore *s, SnapshotMeta **ret, size_t *n);
/* Delete user snapshot name, or template SHAPE when kind is
 * SNAPSHOT_TEMPLATE. Returns 0, -ENOENT, or -errno. */
int snapshot_store_delete(SnapshotStore *s, SnapshotKind kind, const char *name);

/* Copy the regular file src_fd to the new file dest (mode): a reflink
 * where the file system can, else the data ranges alone (holes stay
 * holes). What clones across file systems use; exposed for its test.
 * Returns 0 or -errno (dest is not left behind). */
int snapshot_copy_file(int src_fd, const char *dest, mode_t mode);
