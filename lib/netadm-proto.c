/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "netadm-proto.h"

static const char *const op_names[_VMGR_NETADM_OP_MAX] = {
        [VMGR_NETADM_GROUP_CREATE] = "group-create",
        [VMGR_NETADM_GROUP_DELETE] = "group-delete",
        [VMGR_NETADM_TAP_CREATE] = "tap-create",
        [VMGR_NETADM_TAP_DELETE] = "tap-delete",
        [VMGR_NETADM_DNSMASQ_START] = "dnsmasq-start",
        [VMGR_NETADM_OUTBOUND_ENABLE] = "outbound-enable",
        [VMGR_NETADM_GROUP_START] = "group-start",
};

const char *vmgr_netadm_op_to_string(unsigned op) {
        return op < ELEMENTSOF(op_names) ? op_names[op] : NULL;
}

static bool op_uses_vm(unsigned op) {
        return op == VMGR_NETADM_TAP_CREATE || op == VMGR_NETADM_TAP_DELETE;
}

static bool op_uses_dir(unsigned op) {
        return op == VMGR_NETADM_DNSMASQ_START || op == VMGR_NETADM_GROUP_START;
}

int vmgr_netadm_dir_check(const char *dir, const char **reason) {
        const char *why = NULL;
        size_t n = dir ? strnlen(dir, VMGR_NETADM_DIR_MAX) : 0;

        if (n == 0)
                why = "directory is empty";
        else if (n > VMGR_NETADM_DIR_MAX - 32)
                why = "directory path is too long";
        else if (dir[0] != '/')
                why = "directory is not an absolute path";
        else if (strstr(dir, "//"))
                why = "directory path contains \"//\"";
        else {
                for (size_t i = 0; i < n && !why; i++) {
                        char c = dir[i];
                        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                              strchr("/._+-", c)))
                                why = "directory path contains a character outside [A-Za-z0-9/._+-]";
                }
                /* Reject "." and ".." components. */
                for (const char *p = dir; !why && p; p = strchr(p + 1, '/')) {
                        const char *c = p + 1;
                        size_t len = strcspn(c, "/");
                        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                                why = "directory path contains a \".\" or \"..\" component";
                }
        }

        if (why) {
                if (reason)
                        *reason = why;
                return -EINVAL;
        }
        return 0;
}

/* Copy s into a fixed field, zero-padding it. Returns -EINVAL if it does not fit. */
static int field_set(char *field, size_t size, const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n >= size)
                return -EINVAL;
        memset(field, 0, size);
        if (n)
                memcpy(field, s, n);
        return 0;
}

int vmgr_netadm_request_init(struct vmgr_netadm_request *req, enum vmgr_netadm_op op, uint32_t serial,
                             const char *group, const char *vm, enum vmgr_nic nic, const char *dir) {
        struct vmgr_netadm_request r = {
                .magic = VMGR_NETADM_MAGIC,
                .version = VMGR_NETADM_VERSION,
                .op = (uint16_t) op,
                .serial = serial,
                .nic = op_uses_vm(op) ? (uint32_t) nic : 0,
        };

        if (field_set(r.group, sizeof(r.group), group) < 0 ||
            field_set(r.vm, sizeof(r.vm), op_uses_vm(op) ? vm : NULL) < 0 ||
            field_set(r.dir, sizeof(r.dir), op_uses_dir(op) ? dir : NULL) < 0)
                return -EINVAL;
        if (vmgr_netadm_request_validate(&r, sizeof(r), NULL) < 0)
                return -EINVAL;

        *req = r;
        return 0;
}

/* A field is well-formed when it holds a NUL-terminated string followed by zeros only. */
static bool field_is_clean(const char *field, size_t size) {
        size_t n = strnlen(field, size);

        if (n == size)
                return false;
        for (size_t i = n; i < size; i++)
                if (field[i] != 0)
                        return false;
        return true;
}

int vmgr_netadm_request_validate(const void *buf, size_t len, const char **reason) {
        const struct vmgr_netadm_request *req = buf;
        const char *why = NULL;

        if (len != sizeof(*req))
                why = "request has the wrong size";
        else if (req->magic != VMGR_NETADM_MAGIC)
                why = "request has a bad magic number";
        else if (req->version != VMGR_NETADM_VERSION)
                why = "request has an unsupported protocol version";
        else if (!vmgr_netadm_op_to_string(req->op))
                why = "request has an unknown operation";
        else if (!field_is_clean(req->group, sizeof(req->group)) || !field_is_clean(req->vm, sizeof(req->vm)) ||
                 !field_is_clean(req->dir, sizeof(req->dir)))
                why = "request has a field that is not a zero-padded string";
        else if (vmgr_name_check(req->group, NULL) < 0)
                why = "request has an invalid group name";
        else if (op_uses_vm(req->op) && vmgr_name_check(req->vm, NULL) < 0)
                why = "request has an invalid VM name";
        else if (!op_uses_vm(req->op) && req->vm[0])
                why = "request has a VM name for an operation that takes none";
        else if (op_uses_vm(req->op) && req->nic != VMGR_NIC_PRIMARY && req->nic != VMGR_NIC_IPV4)
                why = "request has an unknown NIC kind";
        else if (!op_uses_vm(req->op) && req->nic != 0)
                why = "request has a NIC kind for an operation that takes none";
        else if (op_uses_dir(req->op) && vmgr_netadm_dir_check(req->dir, NULL) < 0)
                why = "request has an invalid runtime directory";
        else if (!op_uses_dir(req->op) && req->dir[0])
                why = "request has a directory for an operation that takes none";

        if (why) {
                if (reason)
                        *reason = why;
                return -EBADMSG;
        }
        return 0;
}

/* The rules on a reply's fields that vmgr_netadm_reply_init() and
 * vmgr_netadm_reply_validate() share. */
static bool reply_fields_valid(int error, int pid, unsigned has_fd) {
        if (error > 0 || error < -4095 || pid < 0 || has_fd > 1)
                return false;
        /* Only the success of DNSMASQ_START or GROUP_START carries a pidfd, and with it its pid. */
        if ((pid > 0) != (has_fd == 1))
                return false;
        return error == 0 || has_fd == 0;
}

int vmgr_netadm_reply_init(struct vmgr_netadm_reply *rep, uint32_t serial, int error, int pid, bool has_fd,
                           const char *message) {
        struct vmgr_netadm_reply r = {
                .magic = VMGR_NETADM_MAGIC,
                .version = VMGR_NETADM_VERSION,
                .has_fd = has_fd,
                .serial = serial,
                .error = error,
                .pid = pid,
        };

        /* Built in r first: message may point into *rep. */
        if (!reply_fields_valid(error, pid, has_fd) || field_set(r.message, sizeof(r.message), message) < 0)
                return -EINVAL;
        *rep = r;
        return 0;
}

int vmgr_netadm_reply_validate(const void *buf, size_t len) {
        const struct vmgr_netadm_reply *rep = buf;

        /* Bytes after the message's NUL would be read by nobody: refusing
         * them keeps every accepted reply equal to what
         * vmgr_netadm_reply_init() builds from its fields. */
        if (len != sizeof(*rep) || rep->magic != VMGR_NETADM_MAGIC || rep->version != VMGR_NETADM_VERSION ||
            !reply_fields_valid(rep->error, rep->pid, rep->has_fd) ||
            !field_is_clean(rep->message, sizeof(rep->message)))
                return -EBADMSG;
        return 0;
}

/* Append a formatted string to storage, returning a pointer to it, or NULL when full. */
_printf_(3, 4) static char *storage_add(char **pos, const char *end, const char *fmt, ...) {
        va_list ap;
        int n;
        char *s = *pos;

        va_start(ap, fmt);
        n = vsnprintf(s, (size_t) (end - s), fmt, ap);
        va_end(ap);
        if (n < 0 || n >= end - s)
                return NULL;
        *pos = s + n + 1;
        return s;
}

int vmgr_dnsmasq_argv(const char *dnsmasq_path, unsigned uid, const char *group, const char *dir, char **argv, size_t n,
                      char *storage, size_t size) {
        struct vmgr_group_addrs a;
        char prefix[INET6_ADDRSTRLEN], first[INET_ADDRSTRLEN], last[INET_ADDRSTRLEN];
        char *pos = storage, *end = storage + size;
        size_t i = 0;
        int r;

        r = vmgr_group_addrs_derive(uid, group, &a);
        if (r < 0)
                return r;
        if (vmgr_netadm_dir_check(dir, NULL) < 0)
                return -EINVAL;

        inet_ntop(AF_INET6, &a.prefix6, prefix, sizeof(prefix));
        inet_ntop(AF_INET, &a.dhcp4_first, first, sizeof(first));
        inet_ntop(AF_INET, &a.dhcp4_last, last, sizeof(last));

        char *args[] = {
                storage_add(&pos, end, "%s", dnsmasq_path),
                storage_add(&pos, end, "--keep-in-foreground"),
                storage_add(&pos, end, "--conf-file=/dev/null"),
                storage_add(&pos, end, "--no-resolv"),
                storage_add(&pos, end, "--no-hosts"),
                storage_add(&pos, end, "--port=0"),               /* no DNS */
                /* It runs as the caller already: no user or group to switch
                 * to, so no look-up of "nobody" and "dip" through NSS (the
                 * files, or LDAP and the like where hosts are set up so) at
                 * every start. Empty, these name none. */
                storage_add(&pos, end, "--user="),
                storage_add(&pos, end, "--group="),
                /* dnsmasq follows the interface by name, in this mode and in
                 * --bind-interfaces alike: it would serve a later bridge of
                 * the same name. The helper makes sure it never outlives its
                 * bridge (netadm/dnsmasq.h). */
                storage_add(&pos, end, "--bind-dynamic"),
                storage_add(&pos, end, "--interface=%s", a.bridge),
                storage_add(&pos, end, "--except-interface=lo"),
                storage_add(&pos, end, "--pid-file=%s/dnsmasq.pid", dir),
                storage_add(&pos, end, "--dhcp-leasefile=%s/dnsmasq.leases", dir),
                storage_add(&pos, end, "--log-facility=%s/dnsmasq.log", dir),
                /* Not a line per DHCP exchange or RA: a guest renewing its
                 * lease in a loop would fill the user's disk. Errors are still
                 * logged. (--log-dhcp would override the first two.) */
                storage_add(&pos, end, "--quiet-dhcp"),
                storage_add(&pos, end, "--quiet-dhcp6"),
                storage_add(&pos, end, "--quiet-ra"),
                storage_add(&pos, end, "--dhcp-authoritative"),
                /* No ping before an offer: every address on the bridge is
                 * this dnsmasq's to give, and the check holds back the first
                 * offer for seconds. A clone that comes up with its
                 * template's idea of its address would otherwise even make
                 * dnsmasq skip the address the clone is about to get. */
                storage_add(&pos, end, "--no-ping"),
                storage_add(&pos, end, "--enable-ra"),
                storage_add(&pos, end, "--ra-param=%s,10,1800", a.bridge),
                storage_add(&pos, end, "--dhcp-range=%s,ra-only,64", prefix),
                storage_add(&pos, end, "--dhcp-range=%s,%s,255.255.255.0,1h", first, last),
        };

        if (ELEMENTSOF(args) + 1 > n)
                return -ENOBUFS;
        for (i = 0; i < ELEMENTSOF(args); i++) {
                if (!args[i])
                        return -ENOBUFS;
                argv[i] = args[i];
        }
        argv[i] = NULL;
        return (int) i;
}
