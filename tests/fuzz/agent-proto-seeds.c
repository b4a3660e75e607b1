/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Writes a seed corpus for fuzz-agent-proto into DIR: one valid message of
 * each type, as a wire frame (COBS, delimiter) and as a decoded frame, so
 * that the fuzzer starts from messages whose strings and lists already
 * pass every check.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent-proto.h"

static int write_file(const char *dir, const char *name, const char *kind, const void *p, size_t n) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/seed-%s-%s", dir, name, kind);
        f = fopen(path, "we");
        if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
                fprintf(stderr, "agent-proto-seeds: cannot write %s: %m\n", path);
                return -EIO;
        }
        return 0;
}

int main(int argc, char **argv) {
        static uint8_t wire[VMGR_AGENT_WIRE_MAX], frame[VMGR_AGENT_FRAME_MAX];
        static struct vmgr_agent_msg msgs[_VMGR_AGENT_TYPE_MAX];
        static const uint8_t bytes[] = "some\0bytes\n";
        static const uint8_t entropy[VMGR_AGENT_ENTROPY_MIN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        struct vmgr_agent_msg *m = msgs;

        if (argc != 2) {
                fprintf(stderr, "usage: agent-proto-seeds DIR\n");
                return 2;
        }

        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_HELLO, .hello = { 1, 1, 131072, 42, "seed" } };
        *m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_INFO };
        m->info.version = 1;
        m->info.hostname = "guest";
        m->info.kernel = "6.1.0";
        m->info.boot_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        memset(m->info.generation, 0x5a, sizeof(m->info.generation));
        m->info.n_links = 2;
        m->info.links[0] = (struct vmgr_agent_link) { .index = 1, .flags = 0x49, .mtu = 65536, .name = "lo" };
        m->info.links[1] = (struct vmgr_agent_link) { .index = 2, .flags = 0x1043, .mtu = 1500, .hwaddr_len = 6,
                                                      .hwaddr = { 0x6a, 1, 2, 3, 4, 5 }, .name = "enp1s0" };
        m->info.n_addrs = 2;
        m->info.addrs[0] = (struct vmgr_agent_addr) { .ifindex = 1, .family = 4, .prefixlen = 8, .address = { 127, 0, 0, 1 } };
        m->info.addrs[1] = (struct vmgr_agent_addr) { .ifindex = 2, .family = 6, .prefixlen = 64, .flags = 0x40,
                                                      .address = { 0xfd, [15] = 1 } };
        m++;
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EXEC, .id = 1,
                                         .exec = { 1, 2, 3, 1, "/tmp", 3, { "sh", "-c", "exit 7" }, 1, { "A=b" } } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_DATA, .id = 2, .data = { bytes, sizeof(bytes) } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_WINDOW, .id = 2, .window = 65536 };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EOF, .id = 2 };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EXIT, .id = 1, .exit = { -1, 9, true } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_KILL, .id = 1, .kill = { 15, 1 } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_FILE_PUT, .id = 3, .file = { 4, 0644, 0, "/etc/x" } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_FILE_GET, .id = 3, .file = { 4, 0, 0, "/etc/x" } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_DONE, .id = 3, .done = { 12345, 0644 } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_ERROR, .id = 3, .error = { ENOENT, "no such file" } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_SHUTDOWN, .id = 5 };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_REBOOT, .id = 5 };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_PING, .id = 6, .ping = { 7 } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_PONG, .id = 6, .ping = { 7 } };
        *m++ = (struct vmgr_agent_msg) { .type = VMGR_AGENT_LOG, .log = { 1, 6, 123, "kernel line" } };
        *m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_IDENTITY, .id = 7 };
        memset(m->identity.generation, 0x5a, sizeof(m->identity.generation));
        m->identity.realtime_nsec = 1796000000000000000ULL;
        m->identity.hostname = "clone-1";
        m->identity.n_nics = 2;
        m->identity.nics[0] = (struct vmgr_agent_identity_nic) {
                .pci_slot = "0000:01:00.0", .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .family = VMGR_AGENT_FAMILY_IPV6,
                .prefixlen = 64, .service_prefixlen = 48, .address = { 0xfd, 1, [8] = 0x50, [15] = 3 },
                .gateway = { 0xfd, 1, [15] = 1 } };
        m->identity.nics[1] = (struct vmgr_agent_identity_nic) {
                .pci_slot = "0000:02:00.0", .mac = { 0x52, 0x54, 0, 1, 2, 4 }, .family = VMGR_AGENT_FAMILY_IPV4,
                .prefixlen = 24, .address = { 10, 0, 0, 9 }, .gateway = { 10, 0, 0, 1 } };
        m->identity.entropy_size = VMGR_AGENT_ENTROPY_MIN;
        m->identity.entropy = entropy;
        m++;

        for (struct vmgr_agent_msg *i = msgs; i < m; i++) {
                const char *name = vmgr_agent_type_to_string(i->type);
                int n = vmgr_agent_msg_encode(i, wire, sizeof(wire)), f;

                if (n < 0) {
                        fprintf(stderr, "agent-proto-seeds: cannot encode %s: %s\n", name, strerror(-n));
                        return 1;
                }
                f = vmgr_agent_cobs_decode(wire, (size_t) n - 1, frame, sizeof(frame));
                if (f < 0 || write_file(argv[1], name, "wire", wire, (size_t) n) < 0 ||
                    write_file(argv[1], name, "frame", frame, (size_t) f) < 0)
                        return 1;
        }
        return 0;
}
