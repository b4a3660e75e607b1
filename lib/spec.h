/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Group specs (docs/spec.md): the JSON a client passes to CreateGroup and
 * AddVM. Parsing is strict: an unknown key, a wrong type or a value out of
 * range is refused with the JSON path of the offending value, and nothing
 * half-parsed is returned.
 */

#include <stdbool.h>
#include <stddef.h>

#include "addressing.h"
#include "vmgr-error.h"

#define VMGR_SPEC_MAX_BYTES (256 * 1024)
#define VMGR_SPEC_MAX_VMS 64
#define VMGR_SPEC_MAX_EXTRA_DISKS 8
#define VMGR_SPEC_MAX_PROBE_ARGS 64
/* What vmgr_spec_parse() writes: one error sentence (lib/vmgr-error.h). */
#define VMGR_SPEC_ERROR_MAX VMGR_ERROR_MAX

typedef enum VmgrAccel {
        VMGR_ACCEL_AUTO,
        VMGR_ACCEL_KVM,
        VMGR_ACCEL_TCG,
} VmgrAccel;

typedef enum VmgrDiskFormat {
        VMGR_DISK_FORMAT_AUTO,
        VMGR_DISK_FORMAT_RAW,
        VMGR_DISK_FORMAT_QCOW2,
} VmgrDiskFormat;

typedef enum VmgrFirmware {
        VMGR_FIRMWARE_BIOS,             /* SeaBIOS */
        VMGR_FIRMWARE_UEFI,             /* OVMF, Secure Boot off, per-VM NVRAM */
} VmgrFirmware;

typedef enum VmgrHostProbeType {
        VMGR_HOST_PROBE_NONE,
        VMGR_HOST_PROBE_TCP,            /* a TCP connect to port succeeds */
        VMGR_HOST_PROBE_HTTP,           /* GET http_path on port answers http_status */
        VMGR_HOST_PROBE_PING,           /* the derived IPv6 answers ICMPv6 echo */
} VmgrHostProbeType;

/* "ready_probe_host": a probe vmgrd runs from the host (the group's
 * management address) against the VM's derived IPv6 address. */
typedef struct VmgrHostProbe {
        VmgrHostProbeType type;
        unsigned port;                  /* tcp, http (default 80) */
        char *http_path;                /* http: starts with '/', printable ASCII without spaces */
        unsigned http_status;           /* http: the status that counts as ready (default 200) */
} VmgrHostProbe;

/* "cloud_init": a NoCloud seed (a "cidata" volume) for the VM. */
typedef struct VmgrCloudInit {
        bool enabled;
        char *user_data;                /* the user's user-data text, or NULL */
        char *meta_data;                /* JSON object text: keys added to vmgr's meta-data, or NULL */
        char *network_config;           /* network-config text (JSON or YAML), or NULL for vmgr's */
        bool install_agent;             /* put vmgr-agent on the seed and start it at first boot */
} VmgrCloudInit;

typedef enum VmgrJournal {
        VMGR_JOURNAL_NONE,
        VMGR_JOURNAL_GATEWAYD,          /* follow systemd-journal-gatewayd on port 19531 */
} VmgrJournal;

#define VMGR_SPEC_READY_CONSOLE_MAX 1024
#define VMGR_SPEC_HTTP_PATH_MAX 1024

typedef struct VmgrDiskSpec {
        char *path;                     /* an image to use (copy-on-write overlay), or NULL */
        VmgrDiskFormat format;
        unsigned size_mib;              /* for a new empty disk when path is NULL */
} VmgrDiskSpec;

typedef struct VmgrVMSpec {
        char name[VMGR_NAME_MAX + 1];
        unsigned vcpus;                 /* 1..64, default 1 */
        unsigned memory_mib;            /* 64..262144, default 256 */
        char *kernel, *initrd, *cmdline; /* direct kernel boot; all NULL = the default guest */
        VmgrDiskSpec disk;              /* boot disk (firmware boot) when disk.path is set */
        VmgrDiskSpec extra_disks[VMGR_SPEC_MAX_EXTRA_DISKS];
        size_t n_extra_disks;
        bool ipv4;                      /* second NIC with DHCPv4 */
        char **ready_probe;             /* NULL-terminated argv, or NULL */
        unsigned log_rate_kib;          /* KiB/s the VM may add to the group's log, per source */
        unsigned log_burst_kib;         /* KiB it may add at once, per source */
        unsigned console_log_max_kib;   /* console.log is rotated past this */
        VmgrFirmware firmware;
        int agent;                      /* 1, 0, or -1 when the spec does not say: see vmgr_vm_spec_has_agent() */
        VmgrHostProbe host_probe;       /* "ready_probe_host" */
        char *ready_console;            /* POSIX extended regex a console line must match, or NULL */
        VmgrCloudInit cloud_init;
        VmgrJournal journal;
        int warm;                       /* "warm": 1, 0, or -1 when the spec does not say: vmgr_vm_spec_wants_warm() */
        char *from_snapshot;            /* "from_snapshot": a user snapshot's name, or NULL */
} VmgrVMSpec;

#define VMGR_SPEC_LOG_RATE_KIB_DEFAULT 64
#define VMGR_SPEC_LOG_BURST_KIB_DEFAULT 1024
#define VMGR_SPEC_CONSOLE_LOG_MAX_KIB_DEFAULT 8192

typedef struct VmgrSpec {
        VmgrVMSpec *vms;
        size_t n_vms;
        VmgrAccel accelerator;
        char *collect_on_delete;        /* directory for a bundle written before deletion, or NULL */
        bool outbound;                  /* guests reach the host's network (namespace mode only) */
} VmgrSpec;

/* Parse a group spec. An empty string means a network-only group.
 * Returns 0 and a new spec, or -EINVAL with error (VMGR_SPEC_ERROR_MAX bytes)
 * holding "PATH: what is wrong". */
int vmgr_spec_parse(const char *json, VmgrSpec **ret, char *error);

/* Parse one VM's spec (as for AddVM), with defaults applied. When name is
 * given the spec may leave "name" out (or must repeat it); an empty string
 * is the default VM. Same contract. */
int vmgr_vm_spec_parse(const char *json, const char *name, VmgrVMSpec *ret, char *error);

void vmgr_vm_spec_done(VmgrVMSpec *vm);
VmgrSpec *vmgr_spec_free(VmgrSpec *spec);
static inline void vmgr_spec_freep(VmgrSpec **p) {
        vmgr_spec_free(*p);
}

/* Whether vmgr expects its guest agent in the VM: what the spec says, else
 * true for the default guest (no kernel, no disk) and for a cloud-init seed
 * that installs the agent, false otherwise. */
bool vmgr_vm_spec_has_agent(const VmgrVMSpec *vm);

/* Whether a start of this VM may be a restore of (or build) a template
 * of its shape: "warm" unless the spec says false, for a VM with vmgr's
 * agent (which applies the clone's identity) and without a cloud-init
 * seed (whose instance data differ per VM). from_snapshot VMs are
 * restored whatever this says. */
bool vmgr_vm_spec_wants_warm(const VmgrVMSpec *vm);

const char *vmgr_accel_to_string(VmgrAccel a);
const char *vmgr_firmware_to_string(VmgrFirmware f);
const char *vmgr_host_probe_type_to_string(VmgrHostProbeType t);
int vmgr_accel_from_string(const char *s);
