/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lib/domain-xml.c: the XML is parsed back with libxml2 and checked with
 * XPath, element by element; the UUID is recomputed with OpenSSL.
 *
 * With arguments it prints the XML for a config instead (used by
 * tests/integration/test-domain-boot.sh):
 *   test-domain-xml --print GROUP VM qemu|kvm KERNEL INITRD CMDLINE CONSOLE AGENT [ipv4] [disk:QCOW2]...
 */

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <unistd.h>

#include "addressing.h"
#include "domain-xml.h"
#include "macro.h"
#include "test.h"

static xmlDocPtr parse(const char *xml) {
        xmlDocPtr doc = xmlReadMemory(xml, (int) strlen(xml), "domain.xml", NULL, XML_PARSE_NONET);
        CHECK(doc);
        return doc;
}

/* The value of an XPath expression as a string (malloc'd; "" when nothing matches). */
static char *xp(xmlDocPtr doc, const char *expr) {
        xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
        xmlXPathObjectPtr o;
        char *s;

        CHECK(ctx);
        CHECK(xmlXPathRegisterNs(ctx, BAD_CAST "qemu", BAD_CAST "http://libvirt.org/schemas/domain/qemu/1.0") == 0);
        o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
        if (!o)
                fprintf(stderr, "bad XPath: %s\n", expr);
        CHECK(o);
        s = (char *) xmlXPathCastToString(o);
        CHECK(s);
        xmlXPathFreeObject(o);
        xmlXPathFreeContext(ctx);
        return s;
}

#define CHECK_XP(doc, expr, expected)                 \
        do {                                          \
                char *_v = xp((doc), (expr));         \
                CHECK_STREQ(_v, (expected));          \
                xmlFree(_v);                          \
        } while (0)

static const char *const extra[] = { "/var/x/extra0.qcow2", "/var/x/extra1.raw" };
static const char *const extra_formats[] = { "qcow2", "raw" };

/* Paths and a command line with every XML-special character. */
#define NASTY_DIR "/tmp/a&b<c>'d\"e"
#define NASTY_CMDLINE "console=ttyS0 x=<&'\"> y=]]> z=&amp; é"

static VmgrDomainConfig direct_config(void) {
        return (VmgrDomainConfig) {
                .uid = 1000,
                .group = "demo",
                .vm = "a",
                .vcpus = 2,
                .memory_mib = 384,
                .accel = VMGR_ACCEL_TCG,
                .emulator = "/usr/bin/qemu-system-x86_64",
                .kernel = NASTY_DIR "/vmlinuz",
                .initrd = NASTY_DIR "/initrd.gz",
                .cmdline = NASTY_CMDLINE,
                .extra_disks = extra,
                .extra_disk_formats = extra_formats,
                .n_extra_disks = 2,
                .ipv4 = true,
                .console_log = NASTY_DIR "/console.log",
                .agent_socket = NASTY_DIR "/agent.sock",
        };
}

static void check_common_devices(xmlDocPtr doc) {
        CHECK_XP(doc, "string(/domain/devices/emulator)", "/usr/bin/qemu-system-x86_64");
        CHECK_XP(doc, "string(/domain/os/type)", "hvm");
        CHECK_XP(doc, "string(/domain/os/type/@arch)", "x86_64");
        CHECK_XP(doc, "string(/domain/os/type/@machine)", "q35");
        CHECK_XP(doc, "count(/domain/features/acpi)", "1");
        CHECK_XP(doc, "string(/domain/clock/@offset)", "utc");
        CHECK_XP(doc, "string(/domain/on_poweroff)", "destroy");
        CHECK_XP(doc, "string(/domain/on_reboot)", "restart");
        CHECK_XP(doc, "string(/domain/on_crash)", "destroy");

        /* PCI topology: root, then ports 1 and 2 first in slot order. */
        CHECK_XP(doc, "count(/domain/devices/controller[@type='pci'])", "3");
        CHECK_XP(doc, "string(/domain/devices/controller[@type='pci' and @index='0']/@model)", "pcie-root");
        CHECK_XP(doc, "string(/domain/devices/controller[@type='pci' and @index='1']/@model)", "pcie-root-port");
        CHECK_XP(doc, "string(/domain/devices/controller[@type='pci' and @index='2']/@model)", "pcie-root-port");
        CHECK_XP(doc, "string(/domain/devices/controller[@index='1']/address/@bus)", "0x00");
        CHECK_XP(doc, "string(/domain/devices/controller[@index='1']/address/@slot)", "0x01");
        CHECK_XP(doc, "string(/domain/devices/controller[@index='1']/address/@function)", "0x0");
        CHECK_XP(doc, "string(/domain/devices/controller[@index='1']/address/@multifunction)", "on");
        CHECK_XP(doc, "string(/domain/devices/controller[@index='2']/address/@slot)", "0x01");
        CHECK_XP(doc, "string(/domain/devices/controller[@index='2']/address/@function)", "0x1");
        CHECK_XP(doc, "string(/domain/devices/controller[@type='usb']/@model)", "none");
        CHECK_XP(doc, "count(/domain/devices/controller[@type='usb'])", "1");

        /* The primary NIC without virtio-net's link status feature: its
         * carrier is on from the guest driver's probe (lib/domain-xml.c). */
        CHECK_XP(doc, "string(/domain/qemu:override/qemu:device[1]/@alias)", "net0");
        CHECK_XP(doc, "string(/domain/qemu:override/qemu:device[1]/qemu:frontend/qemu:property/@name)", "status");
        CHECK_XP(doc, "string(/domain/qemu:override/qemu:device[1]/qemu:frontend/qemu:property/@type)", "bool");
        CHECK_XP(doc, "string(/domain/qemu:override/qemu:device[1]/qemu:frontend/qemu:property/@value)", "false");

        /* Primary NIC (its MAC and TAP are checked by the callers). */
        CHECK_XP(doc, "string(/domain/devices/interface[1]/@type)", "ethernet");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/target/@managed)", "no");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/model/@type)", "virtio");
        /* No option ROM: SeaBIOS would run iPXE's initialisation at each boot. */
        CHECK_XP(doc, "string(/domain/devices/interface[1]/rom/@enabled)", "no");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/address/@type)", "pci");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/address/@domain)", "0x0000");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/address/@bus)", "0x01");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/address/@slot)", "0x00");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/address/@function)", "0x0");

        CHECK_XP(doc, "string(/domain/devices/serial/@type)", "file");
        CHECK_XP(doc, "string(/domain/devices/serial/source/@append)", "on");
        CHECK_XP(doc, "string(/domain/devices/serial/target/@port)", "0");
        CHECK_XP(doc, "string(/domain/devices/console/@type)", "file");
        CHECK_XP(doc, "string(/domain/devices/console/target/@type)", "serial");
        CHECK_XP(doc, "string(/domain/devices/console/target/@port)", "0");
        CHECK_XP(doc, "string(/domain/devices/channel/@type)", "unix");
        CHECK_XP(doc, "string(/domain/devices/channel/source/@mode)", "bind");
        CHECK_XP(doc, "string(/domain/devices/channel/target/@type)", "virtio");
        CHECK_XP(doc, "string(/domain/devices/channel/target/@name)", "org.vmgr.agent.0");
        CHECK_XP(doc, "string(/domain/devices/memballoon/@model)", "none");
        CHECK_XP(doc, "string(/domain/devices/rng/@model)", "virtio");
        CHECK_XP(doc, "string(/domain/devices/rng/backend/@model)", "random");
        CHECK_XP(doc, "string(/domain/devices/rng/backend)", "/dev/urandom");
        /* pvpanic in every domain, whatever the firmware. */
        CHECK_XP(doc, "count(/domain/devices/panic)", "1");
        CHECK_XP(doc, "string(/domain/devices/panic/@model)", "isa");
        CHECK_XP(doc, "count(/domain/devices/graphics)", "0");
        CHECK_XP(doc, "count(/domain/devices/video)", "0");
        CHECK_XP(doc, "count(/domain/devices/input)", "0");
}

static void test_direct_boot_tcg(void) {
        VmgrDomainConfig c = direct_config();
        char *xml = NULL, *again = NULL;
        xmlDocPtr doc;

        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);

        CHECK_XP(doc, "name(/*)", "domain");
        CHECK_XP(doc, "string(/domain/@type)", "qemu");
        CHECK_XP(doc, "string(/domain/name)", "demo:a");
        CHECK_XP(doc, "string(/domain/memory)", "384");
        CHECK_XP(doc, "string(/domain/memory/@unit)", "MiB");
        CHECK_XP(doc, "string(/domain/vcpu)", "2");
        CHECK_XP(doc, "count(/domain/cpu)", "0");
        CHECK_XP(doc, "count(/domain/os/boot)", "0");
        /* BIOS: SeaBIOS, QEMU's default; no NVRAM. */
        CHECK_XP(doc, "count(/domain/os/@firmware | /domain/os/firmware | /domain/os/nvram | /domain/os/loader)", "0");
        /* Every special character comes back as it went in. */
        CHECK_XP(doc, "string(/domain/os/kernel)", NASTY_DIR "/vmlinuz");
        CHECK_XP(doc, "string(/domain/os/initrd)", NASTY_DIR "/initrd.gz");
        CHECK_XP(doc, "string(/domain/os/cmdline)", NASTY_CMDLINE);
        CHECK_XP(doc, "string(/domain/devices/serial/source/@path)", NASTY_DIR "/console.log");
        CHECK_XP(doc, "string(/domain/devices/console/source/@path)", NASTY_DIR "/console.log");
        CHECK_XP(doc, "string(/domain/devices/channel/source/@path)", NASTY_DIR "/agent.sock");
        check_common_devices(doc);

        /* Primary NIC: docs/addressing.md's worked example (uid 1000, demo/a). */
        CHECK_XP(doc, "string(/domain/devices/interface[1]/mac/@address)", "6a:01:b0:da:0e:09");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/target/@dev)", "tap-b0da0e0948");

        /* IPv4 NIC on bus 2. */
        CHECK_XP(doc, "count(/domain/devices/interface)", "2");
        /* Both NICs without virtio-net's link status feature. */
        CHECK_XP(doc, "count(/domain/qemu:override/qemu:device)", "2");
        CHECK_XP(doc, "string(/domain/qemu:override/qemu:device[2]/@alias)", "net1");
        CHECK_XP(doc, "string(/domain/qemu:override/qemu:device[2]/qemu:frontend/qemu:property[@name='status']/@value)",
                 "false");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/@type)", "ethernet");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/mac/@address)", "6a:01:3f:c2:1c:a2");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/target/@dev)", "ta4-3fc21ca2a7");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/target/@managed)", "no");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/model/@type)", "virtio");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/rom/@enabled)", "no");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/address/@bus)", "0x02");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/address/@slot)", "0x00");
        CHECK_XP(doc, "string(/domain/devices/interface[2]/address/@function)", "0x0");

        /* No boot disk: the extra disks are vda and vdb. */
        CHECK_XP(doc, "count(/domain/devices/disk)", "2");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/@type)", "file");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/@device)", "disk");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/driver/@name)", "qemu");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/driver/@type)", "qcow2");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/source/@file)", "/var/x/extra0.qcow2");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/target/@dev)", "vda");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/target/@bus)", "virtio");
        CHECK_XP(doc, "string(/domain/devices/disk[2]/driver/@type)", "raw");
        CHECK_XP(doc, "string(/domain/devices/disk[2]/source/@file)", "/var/x/extra1.raw");
        CHECK_XP(doc, "string(/domain/devices/disk[2]/target/@dev)", "vdb");

        /* Escaped in the text, not passed through. */
        CHECK(!strstr(xml, "<&"));
        CHECK(strstr(xml, "x=&lt;&amp;'&quot;&gt; y=]]&gt; z=&amp;amp;"));
        CHECK(strstr(xml, "/tmp/a&amp;b&lt;c&gt;'d&quot;e/console.log"));

        /* Deterministic: the same config gives the same bytes. */
        CHECK(vmgr_domain_xml(&c, &again) == 0);
        CHECK_STREQ(xml, again);
        free(again);

        /* Another owner, other TAPs (docs/addressing.md, uid 1001). */
        c.uid = 1001;
        CHECK(vmgr_domain_xml(&c, &again) == 0);
        CHECK(strstr(again, "tap-0a11145349") && strstr(again, "6a:01:0a:11:14:53"));
        CHECK(!strstr(again, "tap-b0da0e0948"));

        xmlFreeDoc(doc);
        free(xml);
        free(again);
}

static void test_firmware_boot_kvm(void) {
        VmgrDomainConfig c = {
                .uid = 1000,
                .group = "g1",
                .vm = "web.1",
                .vcpus = 1,
                .memory_mib = 256,
                .accel = VMGR_ACCEL_KVM,
                .emulator = "/usr/bin/qemu-system-x86_64",
                .boot_disk = "/state/g1/web.1/disk.qcow2",
                .boot_disk_format = "qcow2",
                .extra_disks = extra,
                .extra_disk_formats = extra_formats,
                .n_extra_disks = 1,
                .console_log = "/run/vm/console.log",
                .agent_socket = "/run/vm/agent.sock",
        };
        struct vmgr_vm_addrs a;
        char mac[VMGR_MAC_STRLEN], uuid[VMGR_DOMAIN_UUID_STRLEN];
        char *xml = NULL;
        xmlDocPtr doc;

        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK(vmgr_vm_addrs_derive(1000, "g1", "web.1", &a) == 0);
        CHECK(vmgr_domain_uuid("g1", "web.1", uuid) == 0);

        CHECK_XP(doc, "string(/domain/@type)", "kvm");
        CHECK_XP(doc, "string(/domain/name)", "g1:web.1");
        CHECK_XP(doc, "string(/domain/uuid)", uuid);
        CHECK_XP(doc, "string(/domain/cpu/@mode)", "host-passthrough");
        CHECK_XP(doc, "string(/domain/memory)", "256");
        CHECK_XP(doc, "string(/domain/vcpu)", "1");
        CHECK_XP(doc, "string(/domain/os/boot/@dev)", "hd");
        CHECK_XP(doc, "count(/domain/os/kernel | /domain/os/initrd | /domain/os/cmdline)", "0");
        CHECK_XP(doc, "count(/domain/devices/interface)", "1");
        CHECK_XP(doc, "count(/domain/qemu:override/qemu:device)", "1");
        CHECK_XP(doc, "string(/domain/devices/interface[1]/mac/@address)", vmgr_mac_format(a.mac, mac));
        CHECK_XP(doc, "string(/domain/devices/interface[1]/target/@dev)", a.tap);
        CHECK_XP(doc, "string(/domain/devices/interface[1]/address/@bus)", "0x01");
        CHECK_XP(doc, "count(/domain/devices/disk)", "2");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/source/@file)", "/state/g1/web.1/disk.qcow2");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/driver/@type)", "qcow2");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/target/@dev)", "vda");
        CHECK_XP(doc, "string(/domain/devices/disk[2]/source/@file)", "/var/x/extra0.qcow2");
        CHECK_XP(doc, "string(/domain/devices/disk[2]/target/@dev)", "vdb");
        CHECK_XP(doc, "string(/domain/devices/serial/source/@path)", "/run/vm/console.log");
        CHECK_XP(doc, "string(/domain/devices/channel/source/@path)", "/run/vm/agent.sock");
        check_common_devices(doc);

        xmlFreeDoc(doc);
        free(xml);
}

/* The cloud-init seed comes after every other disk, read-only and raw, so
 * that the boot disk stays vda and the extra disks keep their names. */
static void test_cloud_init_seed(void) {
        VmgrDomainConfig c = {
                .uid = 1000,
                .group = "g1",
                .vm = "web.1",
                .vcpus = 1,
                .memory_mib = 256,
                .accel = VMGR_ACCEL_TCG,
                .emulator = "/usr/bin/qemu-system-x86_64",
                .boot_disk = "/state/g1/web.1/disk.qcow2",
                .boot_disk_format = "qcow2",
                .extra_disks = extra,
                .extra_disk_formats = extra_formats,
                .n_extra_disks = 2,
                .cloud_init_seed = "/state/g1/web.1/cidata.iso",
                .console_log = "/run/vm/console.log",
                .agent_socket = "/run/vm/agent.sock",
        };
        char *xml = NULL;
        xmlDocPtr doc;

        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK_XP(doc, "count(/domain/devices/disk)", "4");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/target/@dev)", "vda");
        CHECK_XP(doc, "string(/domain/devices/disk[3]/source/@file)", "/var/x/extra1.raw");
        CHECK_XP(doc, "string(/domain/devices/disk[3]/target/@dev)", "vdc");
        CHECK_XP(doc, "count(/domain/devices/disk[position() < 4]/readonly)", "0");
        CHECK_XP(doc, "string(/domain/devices/disk[4]/@device)", "disk");
        CHECK_XP(doc, "string(/domain/devices/disk[4]/source/@file)", "/state/g1/web.1/cidata.iso");
        CHECK_XP(doc, "string(/domain/devices/disk[4]/driver/@type)", "raw");
        CHECK_XP(doc, "string(/domain/devices/disk[4]/target/@dev)", "vdd");
        CHECK_XP(doc, "string(/domain/devices/disk[4]/target/@bus)", "virtio");
        CHECK_XP(doc, "count(/domain/devices/disk[4]/readonly)", "1");
        xmlFreeDoc(doc);
        free(xml);

        /* Direct kernel boot, no other disk: the seed is vda. */
        c.boot_disk = NULL, c.boot_disk_format = NULL, c.n_extra_disks = 0;
        c.kernel = "/boot/vmlinuz";
        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK_XP(doc, "count(/domain/devices/disk)", "1");
        CHECK_XP(doc, "string(/domain/devices/disk[1]/target/@dev)", "vda");
        CHECK_XP(doc, "count(/domain/devices/disk[1]/readonly)", "1");
        xmlFreeDoc(doc);
        free(xml);
}

/* Warm start: a vmgenid device for templates and clones; a clone's QEMU
 * waits for the snapshot's state (-incoming defer). Neither by default. */
static void test_warm(void) {
        VmgrDomainConfig c = direct_config();
        char *xml = NULL;
        xmlDocPtr doc;

        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK_XP(doc, "count(/domain/genid)", "0");
        CHECK_XP(doc, "count(/domain/*[local-name()='commandline'])", "0");
        xmlFreeDoc(doc);
        free(xml);

        c.genid = true;
        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK_XP(doc, "count(/domain/genid)", "1");
        CHECK_XP(doc, "string(/domain/genid)", "");
        CHECK_XP(doc, "count(/domain/*[local-name()='commandline'])", "0");
        xmlFreeDoc(doc);
        free(xml);

        c.incoming_defer = true;
        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK_XP(doc, "count(/domain/genid)", "1");
        CHECK_XP(doc, "count(/domain/*[local-name()='commandline'])", "1");
        CHECK_XP(doc, "string(namespace-uri(/domain/*[local-name()='commandline']))",
                 "http://libvirt.org/schemas/domain/qemu/1.0");
        CHECK_XP(doc, "count(/domain/*[local-name()='commandline']/*[local-name()='arg'])", "2");
        CHECK_XP(doc, "string(/domain/*[local-name()='commandline']/*[local-name()='arg'][1]/@value)", "-incoming");
        CHECK_XP(doc, "string(/domain/*[local-name()='commandline']/*[local-name()='arg'][2]/@value)", "defer");
        /* The rest is the cold boot's. */
        check_common_devices(doc);
        xmlFreeDoc(doc);
        free(xml);
}

/* UEFI: libvirt's firmware auto-selection with Secure Boot and enrolled
 * keys off, the VM's own NVRAM file; direct kernel boot and disk boot alike. */
static void test_uefi(void) {
        VmgrDomainConfig c = direct_config();
        char *xml = NULL;
        xmlDocPtr doc;

        c.firmware = VMGR_FIRMWARE_UEFI;
        c.nvram = NASTY_DIR "/nvram.fd";
        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK_XP(doc, "string(/domain/os/@firmware)", "efi");
        CHECK_XP(doc, "count(/domain/os/firmware/feature)", "2");
        CHECK_XP(doc, "string(/domain/os/firmware/feature[@name='secure-boot']/@enabled)", "no");
        CHECK_XP(doc, "string(/domain/os/firmware/feature[@name='enrolled-keys']/@enabled)", "no");
        CHECK_XP(doc, "string(/domain/os/nvram)", NASTY_DIR "/nvram.fd");
        CHECK_XP(doc, "count(/domain/os/nvram/@template)", "0");
        /* Not pinned to a file: libvirt chooses from QEMU's descriptors. */
        CHECK_XP(doc, "count(/domain/os/loader)", "0");
        /* No SMM: the firmware without Secure Boot does not need it. */
        CHECK_XP(doc, "count(/domain/features/smm)", "0");
        /* OVMF boots the kernel QEMU is given. */
        CHECK_XP(doc, "string(/domain/os/kernel)", NASTY_DIR "/vmlinuz");
        CHECK_XP(doc, "string(/domain/os/cmdline)", NASTY_CMDLINE);
        /* libvirt wants <type> first in <os>. */
        CHECK_XP(doc, "name(/domain/os/*[1])", "type");
        check_common_devices(doc);
        xmlFreeDoc(doc);
        free(xml);

        /* From a disk. */
        c.kernel = c.initrd = c.cmdline = NULL;
        c.boot_disk = "/state/g/a/disk.qcow2";
        c.boot_disk_format = "qcow2";
        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        doc = parse(xml);
        CHECK_XP(doc, "string(/domain/os/@firmware)", "efi");
        CHECK_XP(doc, "string(/domain/os/boot/@dev)", "hd");
        CHECK_XP(doc, "string(/domain/os/nvram)", NASTY_DIR "/nvram.fd");
        xmlFreeDoc(doc);
        free(xml);
}

static void check_invalid(const VmgrDomainConfig *c) {
        char *xml = (char *) "untouched";

        CHECK(vmgr_domain_xml(c, &xml) == -EINVAL);
        CHECK_STREQ(xml, "untouched");
}

static void test_invalid(void) {
        VmgrDomainConfig c;
        static const char *const bad_format[] = { "vmdk" };
        static const char *const relative[] = { "disk.qcow2" };

        c = direct_config(), c.accel = VMGR_ACCEL_AUTO;
        check_invalid(&c);
        c = direct_config(), c.group = "bad/name";
        check_invalid(&c);
        c = direct_config(), c.vm = "";
        check_invalid(&c);
        c = direct_config(), c.vcpus = 0;
        check_invalid(&c);
        c = direct_config(), c.memory_mib = 0;
        check_invalid(&c);
        c = direct_config(), c.kernel = "vmlinuz";
        check_invalid(&c);
        c = direct_config(), c.console_log = NULL;
        check_invalid(&c);
        c = direct_config(), c.agent_socket = "";
        check_invalid(&c);
        c = direct_config(), c.emulator = "qemu-system-x86_64";
        check_invalid(&c);
        c = direct_config(), c.cmdline = "console=ttyS0\nx";
        check_invalid(&c);
        c = direct_config(), c.cmdline = "a\x01";
        check_invalid(&c);
        c = direct_config(), c.cmdline = "invalid utf-8 \xc3\x28";
        check_invalid(&c);
        c = direct_config(), c.initrd = "/tmp/\x7f";
        check_invalid(&c);
        c = direct_config(), c.extra_disk_formats = bad_format, c.n_extra_disks = 1;
        check_invalid(&c);
        c = direct_config(), c.extra_disks = relative, c.n_extra_disks = 1;
        check_invalid(&c);
        c = direct_config(), c.n_extra_disks = VMGR_SPEC_MAX_EXTRA_DISKS + 1;
        check_invalid(&c);
        c = direct_config(), c.cloud_init_seed = "cidata.iso";
        check_invalid(&c);
        /* Firmware boot without a disk, or with a command line but no kernel. */
        c = direct_config(), c.kernel = NULL, c.initrd = NULL, c.cmdline = NULL;
        check_invalid(&c);
        c = direct_config(), c.kernel = NULL, c.initrd = NULL, c.boot_disk = "/d.raw", c.boot_disk_format = "raw";
        check_invalid(&c);
        c = direct_config(), c.boot_disk = "/d.raw", c.boot_disk_format = NULL;
        check_invalid(&c);
        /* UEFI needs its NVRAM path, absolute; BIOS has none; no other firmware. */
        c = direct_config(), c.firmware = VMGR_FIRMWARE_UEFI;
        check_invalid(&c);
        c = direct_config(), c.firmware = VMGR_FIRMWARE_UEFI, c.nvram = "nvram.fd";
        check_invalid(&c);
        c = direct_config(), c.firmware = VMGR_FIRMWARE_UEFI, c.nvram = "/x\nvram.fd";
        check_invalid(&c);
        c = direct_config(), c.nvram = "/x/nvram.fd";
        check_invalid(&c);
        c = direct_config(), c.firmware = (VmgrFirmware) 7;
        check_invalid(&c);

        /* An agent socket path that no sockaddr_un can hold. */
        char long_path[120], *xml = (char *) "untouched";
        memset(long_path, 'a', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = 0;
        c = direct_config(), c.agent_socket = long_path;
        CHECK(vmgr_domain_xml(&c, &xml) == -ENAMETOOLONG);
        CHECK_STREQ(xml, "untouched");
        long_path[108] = 0;
        CHECK(vmgr_domain_xml(&c, &xml) == -ENAMETOOLONG);
        long_path[107] = 0; /* 107 characters and the NUL: fits */
        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        free(xml);
}

static void test_name(void) {
        char buf[VMGR_DOMAIN_NAME_MAX], small[4] = "abc";
        char long63[64];

        CHECK(vmgr_domain_name("demo", "a", buf, sizeof(buf)) == 0);
        CHECK_STREQ(buf, "demo:a");
        memset(long63, 'x', 63);
        long63[63] = 0;
        CHECK(vmgr_domain_name(long63, long63, buf, sizeof(buf)) == 0);
        CHECK(strlen(buf) == 127);
        CHECK(vmgr_domain_name("demo", "a", small, sizeof(small)) == -ENOBUFS);
        CHECK(vmgr_domain_name("de:mo", "a", buf, sizeof(buf)) == -EINVAL);
        CHECK(vmgr_domain_name("demo", "-a", buf, sizeof(buf)) == -EINVAL);
}

/* UUID = SHA-256("uuid/G/V")[0..16) with version 8 and variant 10, recomputed with OpenSSL. */
static void check_uuid(const char *group, const char *vm) {
        char uuid[VMGR_DOMAIN_UUID_STRLEN], input[256], expected[VMGR_DOMAIN_UUID_STRLEN];
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned len;
        regex_t re;

        CHECK(vmgr_domain_uuid(group, vm, uuid) == 0);
        CHECK(regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                      REG_EXTENDED | REG_NOSUB) == 0);
        CHECK(regexec(&re, uuid, 0, NULL, 0) == 0);
        regfree(&re);

        snprintf(input, sizeof(input), "uuid/%s/%s", group, vm);
        CHECK(EVP_Digest(input, strlen(input), h, &len, EVP_sha256(), NULL) == 1);
        h[6] = (unsigned char) ((h[6] & 0x0f) | 0x80);
        h[8] = (unsigned char) ((h[8] & 0x3f) | 0x80);
        snprintf(expected, sizeof(expected),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
        CHECK_STREQ(uuid, expected);
}

static void test_uuid(void) {
        char a[VMGR_DOMAIN_UUID_STRLEN], b[VMGR_DOMAIN_UUID_STRLEN], c[VMGR_DOMAIN_UUID_STRLEN];

        check_uuid("demo", "a");
        check_uuid("g1", "web.1");
        check_uuid("x", "y");
        /* The documented example (docs/addressing.md). */
        CHECK(vmgr_domain_uuid("demo", "a", a) == 0);
        CHECK_STREQ(a, "fa945668-9a25-8785-b1b6-abad6feaea95");
        CHECK(vmgr_domain_uuid("demo", "a", b) == 0);
        CHECK_STREQ(a, b);
        /* "demo/a" split differently must not collide. */
        CHECK(vmgr_domain_uuid("demo", "b", b) == 0);
        CHECK(vmgr_domain_uuid("demo.a", "x", c) == 0);
        CHECK(strcmp(a, b) != 0 && strcmp(a, c) != 0);
        CHECK(vmgr_domain_uuid("demo", "a/b", a) == -EINVAL);
}

/* Threads may build XML at once (libxml2 initialised once, no shared state). */

static void *thread_build(void *arg) {
        VmgrDomainConfig c = direct_config();
        const char *expected = arg;

        for (int i = 0; i < 200; i++) {
                char *xml = NULL;
                if (vmgr_domain_xml(&c, &xml) < 0 || strcmp(xml, expected) != 0) {
                        free(xml);
                        return (void *) 1;
                }
                free(xml);
        }
        return NULL;
}

static void test_threads(void) {
        VmgrDomainConfig c = direct_config();
        pthread_t t[4];
        char *xml = NULL;
        void *res;

        CHECK(vmgr_domain_xml(&c, &xml) == 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                CHECK(pthread_create(&t[i], NULL, thread_build, xml) == 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                CHECK(pthread_join(t[i], &res) == 0);
                CHECK(res == NULL);
        }
        free(xml);
}

static int print_xml(int argc, char **argv) {
        VmgrDomainConfig c = {
                .vcpus = 1,
                .memory_mib = 256,
                .emulator = "/usr/bin/qemu-system-x86_64",
        };
        const char *disks[VMGR_SPEC_MAX_EXTRA_DISKS], *formats[VMGR_SPEC_MAX_EXTRA_DISKS];
        char *xml = NULL;
        int r;

        if (argc < 10) {
                fprintf(stderr,
                        "usage: %s --print GROUP VM qemu|kvm KERNEL INITRD CMDLINE CONSOLE AGENT [ipv4] [disk:QCOW2]...\n",
                        argv[0]);
                return 2;
        }
        /* The TAPs and MACs of the user running this, as vmgrd run by that user would. */
        c.uid = (unsigned) getuid();
        c.group = argv[2];
        c.vm = argv[3];
        c.accel = strcmp(argv[4], "kvm") == 0 ? VMGR_ACCEL_KVM : VMGR_ACCEL_TCG;
        c.kernel = argv[5];
        c.initrd = argv[6];
        c.cmdline = argv[7];
        c.console_log = argv[8];
        c.agent_socket = argv[9];
        c.extra_disks = disks;
        c.extra_disk_formats = formats;
        for (int i = 10; i < argc; i++) {
                if (strcmp(argv[i], "ipv4") == 0)
                        c.ipv4 = true;
                else if (strncmp(argv[i], "disk:", 5) == 0 && c.n_extra_disks < VMGR_SPEC_MAX_EXTRA_DISKS) {
                        disks[c.n_extra_disks] = argv[i] + 5;
                        formats[c.n_extra_disks++] = "qcow2";
                } else {
                        fprintf(stderr, "unknown argument: %s\n", argv[i]);
                        return 2;
                }
        }
        r = vmgr_domain_xml(&c, &xml);
        if (r < 0) {
                fprintf(stderr, "vmgr_domain_xml: error %d\n", r);
                return 1;
        }
        fputs(xml, stdout);
        free(xml);
        return 0;
}

int main(int argc, char **argv) {
        if (argc > 1 && strcmp(argv[1], "--print") == 0)
                return print_xml(argc, argv);

        test_direct_boot_tcg();
        test_firmware_boot_kvm();
        test_cloud_init_seed();
        test_uefi();
        test_warm();
        test_invalid();
        test_name();
        test_uuid();
        test_threads();
        xmlCleanupParser();
        TEST_DONE();
}
