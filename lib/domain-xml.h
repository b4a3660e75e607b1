/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libvirt domain XML for a vmgr VM (docs/addressing.md, "Domain name and
 * UUID"; docs/guest.md, "libvirt").
 *
 * The XML is written with libxml2's xmlTextWriter, so every string (paths,
 * kernel command line) is escaped by the writer. The result depends only on
 * the config: the same config gives the same bytes.
 *
 * Thread-safe: no mutable state of its own; libxml2 is initialised once
 * (pthread_once) on first use.
 */

#include <stdbool.h>
#include <stddef.h>

#include "spec.h"

#define VMGR_DOMAIN_NAME_MAX (2 * VMGR_NAME_MAX + 2)     /* "group:vm" + NUL */
#define VMGR_DOMAIN_UUID_STRLEN 37                      /* 8-4-4-4-12 + NUL */

typedef struct VmgrDomainConfig {
        unsigned uid;                   /* the group's owner: TAP names and MACs derive from it */
        const char *group, *vm;         /* valid names (vmgr_name_check) */
        unsigned vcpus;                 /* >= 1 */
        unsigned memory_mib;            /* >= 1 */
        VmgrAccel accel;                /* resolved: VMGR_ACCEL_KVM or VMGR_ACCEL_TCG */
        const char *emulator;           /* absolute, e.g. /usr/bin/qemu-system-x86_64 */
        /* Direct kernel boot when kernel is set (initrd and cmdline optional);
         * otherwise the firmware (SeaBIOS or OVMF) boots from boot_disk. */
        const char *kernel, *initrd, *cmdline;
        const char *boot_disk;          /* vda, or NULL */
        const char *boot_disk_format;   /* "qcow2" or "raw" */
        const char *const *extra_disks; /* vdb, vdc, ... */
        const char *const *extra_disk_formats;
        size_t n_extra_disks;           /* <= VMGR_SPEC_MAX_EXTRA_DISKS */
        const char *cloud_init_seed;    /* read-only raw disk after the others, or NULL */
        bool ipv4;                      /* second NIC (tap4/mac4) on PCI bus 2, guest enp2s0 */
        const char *console_log;        /* serial console (ttyS0) appended to this file */
        const char *agent_socket;       /* virtio-serial channel org.vmgr.agent.0, QEMU listens; < 108 bytes */
        /* VMGR_FIRMWARE_UEFI: OVMF chosen by libvirt from QEMU's firmware
         * descriptors (Secure Boot and enrolled keys off), its variables in
         * nvram (absolute; libvirt copies the template there when missing). */
        VmgrFirmware firmware;
        const char *nvram;              /* UEFI only, required there */
        /* Warm start (docs/design.md): a vmgenid device (libvirt gives it a
         * new id at each start: a restored guest sees the change and
         * reseeds its RNG), in the template's XML and its clones' alike, as
         * a restore needs the same devices; and for a clone, QEMU started
         * with "-incoming defer" to take the template's state. */
        bool genid;
        bool incoming_defer;
} VmgrDomainConfig;

/* Name of the virtio-serial port the guest agent opens. */
#define VMGR_AGENT_CHANNEL "org.vmgr.agent.0"

/* Build the domain XML. Devices: the primary virtio NIC (TAP and MAC from
 * lib/addressing.h) at PCI 01:00.0 behind pcie-root-port index 1, the IPv4
 * NIC at 02:00.0 behind index 2 (neither with an option ROM), virtio
 * disks (the cloud-init seed last, read-only), serial console to a file,
 * the agent channel, virtio-rng, an
 * ISA pvpanic device (a guest kernel panic becomes a libvirt CRASHED event;
 * on_crash destroys the domain); no balloon, USB or graphics. Under KVM the
 * CPU is host-passthrough, under TCG QEMU's default model.
 * Returns 0 and a malloc'd NUL-terminated string in *ret; -EINVAL for an
 * invalid name, a missing or relative path, an unknown disk format, an
 * unresolved accelerator, UEFI without an nvram path (or BIOS with one),
 * or a string that is not valid UTF-8 or holds a
 * control character; -ENAMETOOLONG if agent_socket does not fit a
 * sockaddr_un (107 bytes); -ENOMEM if libxml2 fails. */
int vmgr_domain_xml(const VmgrDomainConfig *c, char **ret);

/* The libvirt domain name of a VM: "GROUP:VM". ':' cannot occur in either
 * name, so the name is unambiguous; libvirt accepts it. Returns 0, -EINVAL
 * for an invalid name, -ENOBUFS if size (VMGR_DOMAIN_NAME_MAX is enough) is
 * too small. */
int vmgr_domain_name(const char *group, const char *vm, char *buf, size_t size);

/* The domain UUID: the first 16 bytes of SHA-256("uuid/" GROUP "/" VM) with
 * the RFC 9562 version 8 and variant bits set, lowercase 8-4-4-4-12.
 * Returns 0, or -EINVAL for an invalid name. */
int vmgr_domain_uuid(const char *group, const char *vm, char buf[VMGR_DOMAIN_UUID_STRLEN]);
