/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Writes a seed corpus for fuzz-netadm-proto into DIR: one valid request of
 * each operation (both NIC kinds for the TAP ones, the longest names the
 * fields hold) and the replies the helper sends (success, failure, a pidfd),
 * so that the fuzzer starts from datagrams of the right size whose names
 * already pass every check.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netadm-proto.h"

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
        f = fopen(path, "we");
        if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
                fprintf(stderr, "netadm-proto-seeds: cannot write %s: %m\n", path);
                return -EIO;
        }
        return 0;
}

int main(int argc, char **argv) {
        static const struct {
                const char *file;
                enum vmgr_netadm_op op;
                const char *group, *vm;
                enum vmgr_nic nic;
                const char *dir;
        } requests[] = {
                { "group-create", VMGR_NETADM_GROUP_CREATE, "demo", NULL, 0, NULL },
                { "group-create-long", VMGR_NETADM_GROUP_CREATE,
                  "g123456789012345678901234567890123456789012345678901234567890.-", NULL, 0, NULL },
                { "group-delete", VMGR_NETADM_GROUP_DELETE, "web_1.test", NULL, 0, NULL },
                { "tap-create", VMGR_NETADM_TAP_CREATE, "demo", "a", VMGR_NIC_PRIMARY, NULL },
                { "tap-create-ipv4", VMGR_NETADM_TAP_CREATE, "demo", "db-2", VMGR_NIC_IPV4, NULL },
                { "tap-delete", VMGR_NETADM_TAP_DELETE, "demo",
                  "v123456789012345678901234567890123456789012345678901234567890_", VMGR_NIC_IPV4, NULL },
                { "dnsmasq-start", VMGR_NETADM_DNSMASQ_START, "demo", NULL, 0, "/run/user/1000/vmgr/groups/demo" },
                { "dnsmasq-start-tmp", VMGR_NETADM_DNSMASQ_START, "x", NULL, 0, "/tmp/tmp.AbC+9_x-y/..run" },
                { "outbound-enable", VMGR_NETADM_OUTBOUND_ENABLE, "demo", NULL, 0, NULL },
        };
        static const struct {
                const char *file;
                int error, pid;
                const char *message;
        } replies[] = {
                { "reply-ok", 0, 0, "" },
                { "reply-created", 0, 0, "created bridge vbr-dd38f0abd1 for group 'demo'" },
                { "reply-pidfd", 0, 4242, "" },
                { "reply-refused", -EADDRINUSE, 0, "IPv6 prefix fd00:dd38:f0ab::/64 overlaps route on eth0" },
                { "reply-invalid", -EBADMSG, 0, "invalid request: request has an invalid group name" },
        };

        if (argc != 2) {
                fprintf(stderr, "usage: netadm-proto-seeds DIR\n");
                return 2;
        }

        for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
                struct vmgr_netadm_request req;
                char name[64];
                int r;

                r = vmgr_netadm_request_init(&req, requests[i].op, (uint32_t) i + 1, requests[i].group, requests[i].vm,
                                             requests[i].nic, requests[i].dir);
                if (r < 0) {
                        fprintf(stderr, "netadm-proto-seeds: cannot build request %s: %s\n", requests[i].file,
                                strerror(-r));
                        return 1;
                }
                snprintf(name, sizeof(name), "request-%s", requests[i].file);
                if (write_file(argv[1], name, &req, sizeof(req)) < 0)
                        return 1;
        }

        for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
                struct vmgr_netadm_reply rep;
                int r;

                r = vmgr_netadm_reply_init(&rep, (uint32_t) i + 1, replies[i].error, replies[i].pid,
                                           replies[i].pid > 0, replies[i].message);
                if (r < 0) {
                        fprintf(stderr, "netadm-proto-seeds: cannot build %s: %s\n", replies[i].file, strerror(-r));
                        return 1;
                }
                if (write_file(argv[1], replies[i].file, &rep, sizeof(rep)) < 0)
                        return 1;
        }
        return 0;
}
