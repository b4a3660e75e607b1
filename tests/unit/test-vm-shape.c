/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The shape of a VM (daemon/vm-snapshot.c): VMs that differ only in names,
 * MACs, TAPs and paths share one, so a template serves them all; anything a
 * restore depends on (the guest image's content, vCPUs, memory, NICs, the
 * QEMU binary) gives another.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "test.h"
#include "vm-snapshot.h"

static char dir[] = "/tmp/test-vm-shape-XXXXXX";
static char kernel[256], initrd[256], disk[256], qemu[256];

static void write_text(const char *path, const char *text) {
        CHECK(write_file_atomic(path, text, strlen(text), 0600) >= 0);
}

static VmgrDomainConfig config(const char *group, const char *vm) {
        /* Each config its own strings: an earlier one stays as it was. */
        static char consoles[32][256], socks[32][256], cmdlines[32][256];
        static unsigned n;
        char *console = consoles[n % 32], *sock = socks[n % 32], *cmdline = cmdlines[n % 32];

        n++;
        snprintf(console, 256, "%s/%s-%s-console.log", dir, group, vm);
        snprintf(sock, 256, "%s/%s.sock", dir, vm);
        snprintf(cmdline, 256, "console=ttyS0 vmgr.hostname=%s quiet", vm);
        return (VmgrDomainConfig) {
                .uid = 1000,
                .group = group,
                .vm = vm,
                .vcpus = 1,
                .memory_mib = 256,
                .accel = VMGR_ACCEL_TCG,
                .emulator = qemu,
                .kernel = kernel,
                .initrd = initrd,
                .cmdline = cmdline,
                .console_log = console,
                .agent_socket = sock,
                .genid = true,
        };
}

static void shape_of(const VmgrDomainConfig *c, const char *hostname, const char *image, char out[VM_SHAPE_STRLEN]) {
        const char *files[1] = { image };
        char error[256] = "";
        int r;

        r = vm_shape_compute(c, hostname, files, image ? 1 : 0, out, error, sizeof(error));
        if (r < 0)
                fprintf(stderr, "vm_shape_compute: %s\n", error);
        CHECK(r >= 0);
        CHECK(strlen(out) == 64);
}

/* Rewrite path with text and a modification time a second later, as an
 * edit of the file would leave it. */
static void rewrite(const char *path, const char *text) {
        struct stat st;
        struct timespec times[2];

        CHECK(stat(path, &st) >= 0);
        write_text(path, text);
        times[0] = st.st_atim;
        times[1] = st.st_mtim;
        times[1].tv_sec++;
        CHECK(utimensat(AT_FDCWD, path, times, 0) >= 0);
}

int main(void) {
        char a[VM_SHAPE_STRLEN], b[VM_SHAPE_STRLEN], c[VM_SHAPE_STRLEN];
        VmgrDomainConfig x, y;
        char error[256];

        CHECK(mkdtemp(dir));
        snprintf(kernel, sizeof(kernel), "%s/kernel", dir);
        snprintf(initrd, sizeof(initrd), "%s/initrd", dir);
        snprintf(disk, sizeof(disk), "%s/disk.img", dir);
        snprintf(qemu, sizeof(qemu), "%s/qemu", dir);
        write_text(kernel, "kernel one");
        write_text(initrd, "initrd one");
        write_text(disk, "disk image one");
        write_text(qemu, "qemu binary");

        /* Other group, VM name, hostname, paths, uid: the same shape. */
        x = config("g1", "a");
        shape_of(&x, "a", disk, a);
        y = config("other-group", "b");
        y.uid = 2000;
        shape_of(&y, "b", disk, b);
        CHECK_STREQ(a, b);
        /* ... and the same again (from the hash cache). */
        shape_of(&x, "a", disk, c);
        CHECK_STREQ(a, c);

        /* A hostname only equal by chance is not what is replaced. */
        y = config("g1", "a");
        y.cmdline = "console=ttyS0 vmgr.hostname=ab quiet";
        shape_of(&y, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        /* Another kernel command line. */
        y.cmdline = "console=ttyS0 vmgr.hostname=a";
        shape_of(&y, "a", disk, b);
        CHECK(strcmp(a, b) != 0);

        /* What the machine is made of. */
        y = config("g1", "a");
        y.vcpus = 2;
        shape_of(&y, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        y = config("g1", "a");
        y.memory_mib = 512;
        shape_of(&y, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        y = config("g1", "a");
        y.ipv4 = true;
        shape_of(&y, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        y = config("g1", "a");
        y.genid = false;
        shape_of(&y, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        /* No disk image, or another one with the same content at another path. */
        shape_of(&x, "a", NULL, b);
        CHECK(strcmp(a, b) != 0);
        {
                char copy[300];
                snprintf(copy, sizeof(copy), "%s/copy.img", dir);
                write_text(copy, "disk image one");
                shape_of(&x, "a", copy, b);
                CHECK_STREQ(a, b);
        }

        /* A changed guest image (same size, as an in-place edit would be):
         * a new shape, though the old hash is cached. */
        rewrite(disk, "disk image two");
        shape_of(&x, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        rewrite(disk, "disk image one");
        shape_of(&x, "a", disk, c);
        CHECK_STREQ(a, c);
        rewrite(kernel, "kernel two");
        shape_of(&x, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        rewrite(kernel, "kernel one");
        rewrite(initrd, "initrd two");
        shape_of(&x, "a", disk, b);
        CHECK(strcmp(a, b) != 0);
        rewrite(initrd, "initrd one");
        shape_of(&x, "a", disk, c);
        CHECK_STREQ(a, c);

        /* Another QEMU binary (or the same path updated). */
        rewrite(qemu, "qemu binary");
        shape_of(&x, "a", disk, b);
        CHECK(strcmp(a, b) != 0);

        /* A missing image is an error that names it. */
        x = config("g1", "a");
        {
                const char *files[1] = { "/nonexistent/disk.img" };
                CHECK(vm_shape_compute(&x, "a", files, 1, b, error, sizeof(error)) == -ENOENT);
                CHECK(strstr(error, "/nonexistent/disk.img"));
        }

        CHECK(rm_rf(dir) >= 0);
        TEST_DONE();
}
