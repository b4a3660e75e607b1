/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/xmlwriter.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addressing.h"
#include "domain-xml.h"
#include "macro.h"

int vmgr_domain_name(const char *group, const char *vm, char *buf, size_t size) {
        int n;

        if (!vmgr_name_is_valid(group) || !vmgr_name_is_valid(vm))
                return -EINVAL;
        n = snprintf(buf, size, "%s:%s", group, vm);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return 0;
}

int vmgr_domain_uuid(const char *group, const char *vm, char buf[VMGR_DOMAIN_UUID_STRLEN]) {
        uint8_t h[VMGR_SHA256_LEN];
        char input[6 + 2 * VMGR_NAME_MAX + 2];

        if (!vmgr_name_is_valid(group) || !vmgr_name_is_valid(vm))
                return -EINVAL;
        snprintf(input, sizeof(input), "uuid/%s/%s", group, vm);
        vmgr_sha256(input, strlen(input), h);
        /* RFC 9562: version 8 (vendor-specific; the name-based versions 3
         * and 5 are for MD5 and SHA-1) and the 10xx variant. */
        h[6] = (uint8_t) ((h[6] & 0x0f) | 0x80);
        h[8] = (uint8_t) ((h[8] & 0x3f) | 0x80);
        snprintf(buf, VMGR_DOMAIN_UUID_STRLEN,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                 h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
        return 0;
}

/* Whether a string can go into the XML as is: valid UTF-8, no control
 * characters (XML 1.0 forbids most of them, and none belongs in a path or
 * a kernel command line). */
static bool string_ok(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return xmlCheckUTF8((const xmlChar *) s) != 0;
}

static bool path_ok(const char *s) {
        return s && s[0] == '/' && string_ok(s);
}

static bool disk_format_ok(const char *s) {
        return s && (streq(s, "qcow2") || streq(s, "raw"));
}

static int config_check(const VmgrDomainConfig *c) {
        if (!vmgr_name_is_valid(c->group) || !vmgr_name_is_valid(c->vm))
                return -EINVAL;
        if (c->vcpus < 1 || c->memory_mib < 1)
                return -EINVAL;
        if (c->accel != VMGR_ACCEL_KVM && c->accel != VMGR_ACCEL_TCG)
                return -EINVAL;
        if (!path_ok(c->emulator) || !path_ok(c->console_log) || !path_ok(c->agent_socket))
                return -EINVAL;
        /* QEMU binds the agent socket: it must fit a sockaddr_un. */
        if (strlen(c->agent_socket) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return -ENAMETOOLONG;
        if (c->kernel) {
                if (!path_ok(c->kernel) || (c->initrd && !path_ok(c->initrd)) ||
                    (c->cmdline && !string_ok(c->cmdline)))
                        return -EINVAL;
        } else if (c->initrd || c->cmdline || !c->boot_disk)
                /* Firmware boot needs a disk to boot from. */
                return -EINVAL;
        if (c->boot_disk && (!path_ok(c->boot_disk) || !disk_format_ok(c->boot_disk_format)))
                return -EINVAL;
        if (c->n_extra_disks > VMGR_SPEC_MAX_EXTRA_DISKS ||
            (c->n_extra_disks > 0 && (!c->extra_disks || !c->extra_disk_formats)))
                return -EINVAL;
        for (size_t i = 0; i < c->n_extra_disks; i++)
                if (!path_ok(c->extra_disks[i]) || !disk_format_ok(c->extra_disk_formats[i]))
                        return -EINVAL;
        if (c->cloud_init_seed && !path_ok(c->cloud_init_seed))
                return -EINVAL;
        if (c->firmware == VMGR_FIRMWARE_UEFI ? !path_ok(c->nvram)
                                              : c->firmware != VMGR_FIRMWARE_BIOS || c->nvram)
                return -EINVAL;
        return 0;
}

static void writer_freep(xmlTextWriterPtr *w) {
        if (*w)
                xmlFreeTextWriter(*w);
}

static void buffer_freep(xmlBufferPtr *b) {
        if (*b)
                xmlBufferFree(*b);
}

/* The xmlTextWriter calls return < 0 on failure (out of memory: the writer
 * only writes to memory). Each helper below returns 0 or -ENOMEM. */
#define W(call) ((call) < 0 ? -ENOMEM : 0)

static int start(xmlTextWriterPtr w, const char *element) {
        return W(xmlTextWriterStartElement(w, BAD_CAST element));
}

static int end(xmlTextWriterPtr w) {
        return W(xmlTextWriterEndElement(w));
}

static int attr(xmlTextWriterPtr w, const char *name, const char *value) {
        return W(xmlTextWriterWriteAttribute(w, BAD_CAST name, BAD_CAST value));
}

static int text_element(xmlTextWriterPtr w, const char *element, const char *text) {
        return W(xmlTextWriterWriteElement(w, BAD_CAST element, BAD_CAST text));
}

/* <ELEMENT A1='V1' A2='V2' .../> from a NULL-terminated name, value list. */
static int empty_element(xmlTextWriterPtr w, const char *element, const char *const *attrs) {
        int r = start(w, element);

        for (size_t i = 0; r >= 0 && attrs[i]; i += 2)
                r = attr(w, attrs[i], attrs[i + 1]);
        return r < 0 ? r : end(w);
}
#define EMPTY(w, element, ...) empty_element((w), (element), (const char *const[]) { __VA_ARGS__, NULL })

static int pci_address(xmlTextWriterPtr w, const char *bus, const char *slot, const char *function,
                       bool multifunction) {
        if (multifunction)
                return EMPTY(w, "address", "type", "pci", "domain", "0x0000", "bus", bus, "slot", slot,
                             "function", function, "multifunction", "on");
        return EMPTY(w, "address", "type", "pci", "domain", "0x0000", "bus", bus, "slot", slot, "function",
                     function);
}

static int write_os(xmlTextWriterPtr w, const VmgrDomainConfig *c) {
        int r;

        if ((r = start(w, "os")) < 0)
                return r;
        /* libvirt picks the firmware from QEMU's descriptors
         * (/usr/share/qemu/firmware): with these two features off, Debian's
         * OVMF_CODE_4M.fd, which needs no SMM. */
        if (c->firmware == VMGR_FIRMWARE_UEFI && (r = attr(w, "firmware", "efi")) < 0)
                return r;
        if ((r = start(w, "type")) < 0 || (r = attr(w, "arch", "x86_64")) < 0 ||
            (r = attr(w, "machine", "q35")) < 0 || (r = W(xmlTextWriterWriteString(w, BAD_CAST "hvm"))) < 0 ||
            (r = end(w)) < 0)
                return r;
        if (c->firmware == VMGR_FIRMWARE_UEFI) {
                if ((r = start(w, "firmware")) < 0 ||
                    (r = EMPTY(w, "feature", "enabled", "no", "name", "secure-boot")) < 0 ||
                    (r = EMPTY(w, "feature", "enabled", "no", "name", "enrolled-keys")) < 0 || (r = end(w)) < 0)
                        return r;
                /* The VM's own variables: libvirt copies the firmware's
                 * template here when the file is missing, and keeps it. */
                if ((r = text_element(w, "nvram", c->nvram)) < 0)
                        return r;
        }
        if (c->kernel) {
                if ((r = text_element(w, "kernel", c->kernel)) < 0)
                        return r;
                if (c->initrd && (r = text_element(w, "initrd", c->initrd)) < 0)
                        return r;
                if (c->cmdline && (r = text_element(w, "cmdline", c->cmdline)) < 0)
                        return r;
        } else if ((r = EMPTY(w, "boot", "dev", "hd")) < 0)
                return r;
        return end(w);
}

/* pcie-root-port number index as function fn of slot 1 of pcie.0. The
 * guest's bus numbers are not libvirt's controller indexes: the firmware
 * numbers secondary buses in slot order. Slot 1 is the first free one on q35
 * (0 is the host bridge), the slot libvirt would fill with the root ports it
 * adds for other devices, which would then take buses 1 and 2. With ours at
 * 00:01.0 and 00:01.1, the NICs behind them are buses 1 and 2 (verified by
 * tests/integration/test-domain-boot.sh). */
static int write_root_port(xmlTextWriterPtr w, const char *index, const char *fn, bool multifunction) {
        int r;

        if ((r = start(w, "controller")) < 0 || (r = attr(w, "type", "pci")) < 0 ||
            (r = attr(w, "index", index)) < 0 || (r = attr(w, "model", "pcie-root-port")) < 0 ||
            (r = pci_address(w, "0x00", "0x01", fn, multifunction)) < 0)
                return r;
        return end(w);
}

static int write_interface(xmlTextWriterPtr w, const char *tap, const uint8_t mac[6], const char *bus) {
        char mac_str[VMGR_MAC_STRLEN];
        int r;

        if ((r = start(w, "interface")) < 0 || (r = attr(w, "type", "ethernet")) < 0 ||
            (r = EMPTY(w, "mac", "address", vmgr_mac_format(mac, mac_str))) < 0 ||
            /* The TAP exists already (vmgr-netadm made it, owned by us):
             * libvirt must neither create nor configure it. */
            (r = EMPTY(w, "target", "dev", tap, "managed", "no")) < 0 ||
            (r = EMPTY(w, "model", "type", "virtio")) < 0 ||
            /* No option ROM (iPXE): vmgr never boots from the network, and
             * SeaBIOS runs the ROM's initialisation at every boot, a few
             * tens of milliseconds under TCG. */
            (r = EMPTY(w, "rom", "enabled", "no")) < 0 ||
            (r = pci_address(w, bus, "0x00", "0x0", false)) < 0)
                return r;
        return end(w);
}

static int write_disk(xmlTextWriterPtr w, const char *path, const char *format, size_t n, bool readonly) {
        char dev[8];
        int r;

        /* vda, vdb, ... (at most 2 + VMGR_SPEC_MAX_EXTRA_DISKS of them). */
        snprintf(dev, sizeof(dev), "vd%c", (char) ('a' + n));
        if ((r = start(w, "disk")) < 0 || (r = attr(w, "type", "file")) < 0 || (r = attr(w, "device", "disk")) < 0 ||
            (r = EMPTY(w, "driver", "name", "qemu", "type", format)) < 0 ||
            (r = EMPTY(w, "source", "file", path)) < 0 || (r = EMPTY(w, "target", "dev", dev, "bus", "virtio")) < 0)
                return r;
        if (readonly && (r = EMPTY(w, "readonly", NULL)) < 0)
                return r;
        return end(w);
}

static int write_devices(xmlTextWriterPtr w, const VmgrDomainConfig *c) {
        struct vmgr_vm_addrs a;
        size_t n_disk = 0;
        int r;

        r = vmgr_vm_addrs_derive(c->uid, c->group, c->vm, &a);
        if (r < 0)
                return r;

        if ((r = start(w, "devices")) < 0 || (r = text_element(w, "emulator", c->emulator)) < 0)
                return r;

        if ((r = EMPTY(w, "controller", "type", "pci", "index", "0", "model", "pcie-root")) < 0 ||
            (r = write_root_port(w, "1", "0x0", true)) < 0 || (r = write_root_port(w, "2", "0x1", false)) < 0 ||
            (r = EMPTY(w, "controller", "type", "usb", "model", "none")) < 0)
                return r;

        if ((r = write_interface(w, a.tap, a.mac, "0x01")) < 0)
                return r;
        if (c->ipv4 && (r = write_interface(w, a.tap4, a.mac4, "0x02")) < 0)
                return r;

        if (c->boot_disk && (r = write_disk(w, c->boot_disk, c->boot_disk_format, n_disk++, false)) < 0)
                return r;
        for (size_t i = 0; i < c->n_extra_disks; i++)
                if ((r = write_disk(w, c->extra_disks[i], c->extra_disk_formats[i], n_disk++, false)) < 0)
                        return r;
        /* The cloud-init seed last, so the others keep their names. A disk, not
         * a CD-ROM: Debian's cloud kernel has no AHCI driver, so a SATA CD-ROM
         * on q35 would be invisible to it; cloud-init finds the volume by its
         * label on any block device. */
        if (c->cloud_init_seed && (r = write_disk(w, c->cloud_init_seed, "raw", n_disk++, true)) < 0)
                return r;

        /* The console, appended to so that a restarted VM keeps the earlier output. */
        if ((r = start(w, "serial")) < 0 || (r = attr(w, "type", "file")) < 0 ||
            (r = EMPTY(w, "source", "path", c->console_log, "append", "on")) < 0 ||
            (r = EMPTY(w, "target", "port", "0")) < 0 || (r = end(w)) < 0)
                return r;
        if ((r = start(w, "console")) < 0 || (r = attr(w, "type", "file")) < 0 ||
            (r = EMPTY(w, "source", "path", c->console_log, "append", "on")) < 0 ||
            (r = EMPTY(w, "target", "type", "serial", "port", "0")) < 0 || (r = end(w)) < 0)
                return r;

        if ((r = start(w, "channel")) < 0 || (r = attr(w, "type", "unix")) < 0 ||
            (r = EMPTY(w, "source", "mode", "bind", "path", c->agent_socket)) < 0 ||
            (r = EMPTY(w, "target", "type", "virtio", "name", VMGR_AGENT_CHANNEL)) < 0 || (r = end(w)) < 0)
                return r;

        if ((r = EMPTY(w, "memballoon", "model", "none")) < 0)
                return r;
        /* pvpanic at I/O port 0x505, ACPI device QEMU0001 (the guest's
         * pvpanic-mmio driver): a guest kernel panic becomes libvirt's
         * CRASHED event instead of a hang or a silent reboot. */
        if ((r = EMPTY(w, "panic", "model", "isa")) < 0)
                return r;
        if ((r = start(w, "rng")) < 0 || (r = attr(w, "model", "virtio")) < 0 || (r = start(w, "backend")) < 0 ||
            (r = attr(w, "model", "random")) < 0 || (r = W(xmlTextWriterWriteString(w, BAD_CAST "/dev/urandom"))) < 0 ||
            (r = end(w)) < 0 || (r = end(w)) < 0)
                return r;

        return end(w);
}

/* The NICs (libvirt's aliases net0, net1) without virtio-net's link status
 * feature: their carrier is then on from the driver's probe, and the
 * guest's interface is operationally up the moment it is set up. With the
 * feature, the carrier comes on from a work item after the probe and the
 * kernel's link watcher, which runs at most once a second for such a
 * change, reported it (and IPv6 started its router solicitation) 0.75-0.9 s
 * after "ip link set up" under TCG. vmgr never changes a NIC's link state.
 * libvirt has no element for the property, hence its QEMU override. */
static int write_nic_overrides(xmlTextWriterPtr w, const VmgrDomainConfig *c) {
        int r;

        if ((r = start(w, "qemu:override")) < 0)
                return r;
        for (int i = 0; i < (c->ipv4 ? 2 : 1); i++) {
                char alias[16];

                snprintf(alias, sizeof(alias), "net%d", i);
                if ((r = start(w, "qemu:device")) < 0 || (r = attr(w, "alias", alias)) < 0 ||
                    (r = start(w, "qemu:frontend")) < 0 ||
                    (r = EMPTY(w, "qemu:property", "name", "status", "type", "bool", "value", "false")) < 0 ||
                    (r = end(w)) < 0 || (r = end(w)) < 0)
                        return r;
        }
        return end(w);
}

static int write_domain(xmlTextWriterPtr w, const VmgrDomainConfig *c) {
        char name[VMGR_DOMAIN_NAME_MAX], uuid[VMGR_DOMAIN_UUID_STRLEN], number[16];
        bool kvm = c->accel == VMGR_ACCEL_KVM;
        int r;

        if ((r = vmgr_domain_name(c->group, c->vm, name, sizeof(name))) < 0 ||
            (r = vmgr_domain_uuid(c->group, c->vm, uuid)) < 0)
                return r;

        if ((r = start(w, "domain")) < 0 || (r = attr(w, "type", kvm ? "kvm" : "qemu")) < 0 ||
            (r = attr(w, "xmlns:qemu", "http://libvirt.org/schemas/domain/qemu/1.0")) < 0 ||
            (r = text_element(w, "name", name)) < 0 || (r = text_element(w, "uuid", uuid)) < 0 ||
            (c->genid && (r = EMPTY(w, "genid", NULL)) < 0))
                return r;

        snprintf(number, sizeof(number), "%u", c->memory_mib);
        if ((r = start(w, "memory")) < 0 || (r = attr(w, "unit", "MiB")) < 0 ||
            (r = W(xmlTextWriterWriteString(w, BAD_CAST number))) < 0 || (r = end(w)) < 0)
                return r;
        snprintf(number, sizeof(number), "%u", c->vcpus);
        if ((r = text_element(w, "vcpu", number)) < 0)
                return r;

        if ((r = write_os(w, c)) < 0)
                return r;
        /* ACPI: the power button (virsh shutdown) reaches the guest. */
        if ((r = start(w, "features")) < 0 || (r = EMPTY(w, "acpi", NULL)) < 0 || (r = end(w)) < 0)
                return r;
        /* Under TCG no <cpu>: QEMU's default qemu64 model booted the default
         * guest about 0.2 s faster (median of 10) than "max", whose extra
         * features TCG has to emulate. */
        if (kvm && (r = EMPTY(w, "cpu", "mode", "host-passthrough")) < 0)
                return r;
        if ((r = EMPTY(w, "clock", "offset", "utc")) < 0)
                return r;
        /* on_crash destroy, not preserve: a panicked guest's QEMU goes at
         * once (it burns no CPU and holds no memory); vmgr takes no memory
         * dumps, and the console keeps the panic and its backtrace. */
        if ((r = text_element(w, "on_poweroff", "destroy")) < 0 || (r = text_element(w, "on_reboot", "restart")) < 0 ||
            (r = text_element(w, "on_crash", "destroy")) < 0)
                return r;

        if ((r = write_devices(w, c)) < 0 || (r = write_nic_overrides(w, c)) < 0)
                return r;
        /* A clone's QEMU waits for the template's state (migrate-incoming). */
        if (c->incoming_defer &&
            ((r = start(w, "qemu:commandline")) < 0 || (r = EMPTY(w, "qemu:arg", "value", "-incoming")) < 0 ||
             (r = EMPTY(w, "qemu:arg", "value", "defer")) < 0 || (r = end(w)) < 0))
                return r;
        return end(w);
}

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

int vmgr_domain_xml(const VmgrDomainConfig *c, char **ret) {
        _cleanup_(buffer_freep) xmlBufferPtr buf = NULL;
        _cleanup_(writer_freep) xmlTextWriterPtr w = NULL;
        char *s;
        int r;

        r = config_check(c);
        if (r < 0)
                return r;

        /* libxml2 wants its global initialisation done once before threads use it. */
        (void) pthread_once(&xml_once, xmlInitParser);

        buf = xmlBufferCreate();
        if (!buf)
                return -ENOMEM;
        w = xmlNewTextWriterMemory(buf, 0);
        if (!w)
                return -ENOMEM;
        if ((r = W(xmlTextWriterSetIndent(w, 1))) < 0 || (r = W(xmlTextWriterSetIndentString(w, BAD_CAST "  "))) < 0 ||
            (r = W(xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL))) < 0)
                return r;
        if ((r = write_domain(w, c)) < 0)
                return r;
        if ((r = W(xmlTextWriterEndDocument(w))) < 0)
                return r;
        /* Flushes into buf; the buffer outlives the writer. */
        xmlFreeTextWriter(TAKE_PTR(w));

        s = strdup((const char *) xmlBufferContent(buf));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
