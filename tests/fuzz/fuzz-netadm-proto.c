/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libFuzzer target for lib/netadm-proto: the input is a datagram sent to
 * the privileged helper as a request, and one sent to vmgrd as a reply.
 * Whatever the bytes, the validators must not crash. Every datagram they
 * accept must be exactly what the library's builder makes from the decoded
 * fields (vmgr_netadm_request_init(), vmgr_netadm_reply_init()), byte for
 * byte: so no accepted message carries a byte the validator did not look at
 * (padding, a tail after a name's NUL). An accepted request must also name
 * only things the helper can derive its link names, alias and dnsmasq
 * argv from. docs/design.md#fuzzing says how to build and run it.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addressing.h"
#include "netadm-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(expr)                  \
        do {                         \
                if (!(expr))         \
                        abort();     \
        } while (0)

/* What the helper does with a valid request's names: derive, never trust. */
static void check_request_derivable(const struct vmgr_netadm_request *req, unsigned uid) {
        struct vmgr_group_addrs g;
        char alias[256], group[VMGR_NAME_MAX + 1];
        unsigned alias_uid;

        CHECK(vmgr_group_addrs_derive(uid, req->group, &g) == 0);
        CHECK(strlen(g.bridge) == VMGR_IFNAME_LEN && strncmp(g.bridge, "vbr-", 4) == 0);
        CHECK(vmgr_link_alias(uid, req->group, alias, sizeof(alias)) >= 0);
        CHECK(vmgr_link_alias_parse(alias, &alias_uid, group) == 0);
        CHECK(alias_uid == uid && strcmp(group, req->group) == 0);

        if (req->op == VMGR_NETADM_TAP_CREATE || req->op == VMGR_NETADM_TAP_DELETE) {
                struct vmgr_vm_addrs v;

                CHECK(vmgr_vm_addrs_derive(uid, req->group, req->vm, &v) == 0);
                CHECK(strlen(v.tap) == VMGR_IFNAME_LEN && strncmp(v.tap, "tap-", 4) == 0);
                CHECK(strlen(v.tap4) == VMGR_IFNAME_LEN && strncmp(v.tap4, "ta4-", 4) == 0);
        }

        if (req->op == VMGR_NETADM_DNSMASQ_START) {
                char *argv[64], storage[8192];
                int n = vmgr_dnsmasq_argv("/usr/sbin/dnsmasq", uid, req->group, req->dir, argv, 64, storage,
                                          sizeof(storage));

                CHECK(n > 0 && !argv[n]);
                /* The directory cannot step out of itself or split an option. */
                CHECK(!strstr(req->dir, "/../") && !strstr(req->dir, "/./") && !strchr(req->dir, ','));
        }
}

static void fuzz_request(const void *buf, size_t size) {
        const struct vmgr_netadm_request *req = buf;
        struct vmgr_netadm_request again;
        const char *reason = NULL;
        int r;

        r = vmgr_netadm_request_validate(buf, size, &reason);
        if (r < 0) {
                CHECK(r == -EBADMSG && reason && reason[0]);
                return;
        }
        CHECK(r == 0 && size == sizeof(again));

        /* Rebuilt from what the helper reads, it is the same datagram. */
        memset(&again, 0xa5, sizeof(again));
        CHECK(vmgr_netadm_request_init(&again, (enum vmgr_netadm_op) req->op, req->serial, req->group, req->vm,
                                       (enum vmgr_nic) req->nic, req->dir) == 0);
        CHECK(memcmp(&again, req, sizeof(again)) == 0);

        check_request_derivable(req, req->serial);
}

static void fuzz_reply(const void *buf, size_t size) {
        const struct vmgr_netadm_reply *rep = buf;
        struct vmgr_netadm_reply again;
        int r;

        r = vmgr_netadm_reply_validate(buf, size);
        if (r < 0) {
                CHECK(r == -EBADMSG);
                return;
        }
        CHECK(r == 0 && size == sizeof(again));

        memset(&again, 0xa5, sizeof(again));
        CHECK(vmgr_netadm_reply_init(&again, rep->serial, rep->error, rep->pid, rep->has_fd, rep->message) == 0);
        CHECK(memcmp(&again, rep, sizeof(again)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* Aligned, as the helper's and vmgrd's receive buffers are. */
        static union {
                struct vmgr_netadm_request req;
                struct vmgr_netadm_reply rep;
                uint8_t bytes[4096];
        } buf;

        /* The validators refuse a wrong size before reading a field. */
        if (size > sizeof(buf)) {
                fuzz_request(data, size);
                fuzz_reply(data, size);
                return 0;
        }
        memcpy(buf.bytes, data, size);
        fuzz_request(buf.bytes, size);
        fuzz_reply(buf.bytes, size);
        return 0;
}
