/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* vmgrctl addr GROUP [VM] [--uid N | --user NAME]: every name and address is
 * a pure function of the owner's uid and the names (lib/addressing.h), so this
 * works offline, before a group exists and without vmgrd. Keys match the
 * Group properties of "group show", plus UID: whose group it is. */

#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addressing.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"

/* Adds key: string to an object. Returns 0, or -ENOMEM. */
static int add_string(struct json_object *o, const char *key, const char *value) {
        struct json_object *v = json_object_new_string(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_in6(struct json_object *o, const char *key, const struct in6_addr *a) {
        char s[INET6_ADDRSTRLEN];

        return add_string(o, key, inet_ntop(AF_INET6, a, s, sizeof(s)));
}

static int add_in4(struct json_object *o, const char *key, const struct in_addr *a) {
        char s[INET_ADDRSTRLEN];

        return add_string(o, key, inet_ntop(AF_INET, a, s, sizeof(s)));
}

/* Adds key: number to an object. Returns 0, or -ENOMEM. */
static int add_uint(struct json_object *o, const char *key, unsigned value) {
        struct json_object *v = json_object_new_int64(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* Fills o with a group's derived names and addresses. Returns 0, or -ENOMEM. */
static int group_addrs_json(struct json_object *o, unsigned uid, const char *group,
                            const struct vmgr_group_addrs *a) {
        char prefix6[INET6_ADDRSTRLEN + 4], subnet4[INET_ADDRSTRLEN + 3];
        char first[INET_ADDRSTRLEN], last[INET_ADDRSTRLEN], range[2 * INET_ADDRSTRLEN + 1];
        int r = 0;

        inet_ntop(AF_INET, &a->dhcp4_first, first, sizeof(first));
        inet_ntop(AF_INET, &a->dhcp4_last, last, sizeof(last));
        snprintf(range, sizeof(range), "%s-%s", first, last);

        r = r ?: add_string(o, "Name", group);
        r = r ?: add_uint(o, "UID", uid);
        r = r ?: add_string(o, "Bridge", a->bridge);
        r = r ?: add_string(o, "Prefix6", vmgr_in6_prefix_format(&a->prefix6, 64, prefix6, sizeof(prefix6)));
        r = r ?: add_in6(o, "Gateway6", &a->gateway6);
        r = r ?: add_in6(o, "Management6", &a->management6);
        r = r ?: add_in6(o, "Logs6", &a->logs6);
        r = r ?: add_in6(o, "Files6", &a->files6);
        r = r ?: add_string(o, "Subnet4", vmgr_in4_prefix_format(&a->subnet4, 24, subnet4, sizeof(subnet4)));
        r = r ?: add_in4(o, "Gateway4", &a->gateway4);
        r = r ?: add_string(o, "DHCP4Range", range);
        return r;
}

/* Fills o with a VM's derived names and addresses. Returns 0, or -ENOMEM. */
static int vm_addrs_json(struct json_object *o, unsigned uid, const char *group, const char *vm,
                         const struct vmgr_vm_addrs *a) {
        char mac[VMGR_MAC_STRLEN], mac4[VMGR_MAC_STRLEN];
        int r = 0;

        r = r ?: add_string(o, "Group", group);
        r = r ?: add_string(o, "Name", vm);
        r = r ?: add_uint(o, "UID", uid);
        r = r ?: add_string(o, "Tap", a->tap);
        r = r ?: add_string(o, "MAC", vmgr_mac_format(a->mac, mac));
        r = r ?: add_in6(o, "IPv6", &a->ipv6);
        r = r ?: add_string(o, "Tap4", a->tap4);
        r = r ?: add_string(o, "MAC4", vmgr_mac_format(a->mac4, mac4));
        return r;
}

/* The uid whose names to compute: --uid, --user (a name), or ours, which is
 * the uid of the vmgrd we would start. Returns 0, or -EINVAL after logging. */
static int addr_uid(const struct ctl_options *o, unsigned *ret) {
        struct passwd *pw;

        if (o->uid_set && o->user)
                return log_error_errno(-ERRNO_USAGE, "give --uid or --user, not both");
        if (o->uid_set) {
                *ret = o->uid;
                return 0;
        }
        if (!o->user) {
                *ret = (unsigned) geteuid();
                return 0;
        }
        errno = 0;
        pw = getpwnam(o->user);
        if (!pw) {
                if (errno != 0 && errno != ENOENT && errno != ESRCH)
                        return log_error_reason(-ERRNO_USAGE, -errno, "cannot look up user '%s': %m", o->user);
                return log_error_errno(-ERRNO_USAGE, "no such user '%s'; give a user name or --uid N", o->user);
        }
        *ret = (unsigned) pw->pw_uid;
        return 0;
}

int verb_addr(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_json_ struct json_object *out = NULL;
        const char *group = args[0], *vm = n_args > 1 ? args[1] : NULL, *reason;
        unsigned uid = 0;
        int r;

        r = addr_uid(o, &uid);
        if (r < 0)
                return r;
        if (vmgr_name_check(group, &reason) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid group name \"%s\": %s", group, reason);
        if (vm && vmgr_name_check(vm, &reason) < 0)
                return log_error_errno(-ERRNO_USAGE, "invalid VM name \"%s\": %s", vm, reason);

        out = json_object_new_object();
        if (!out)
                return log_error_errno(-ENOMEM, "%m");

        if (vm) {
                struct vmgr_vm_addrs a;

                r = vmgr_vm_addrs_derive(uid, group, vm, &a);
                if (r < 0)
                        return log_error_errno(errno_generic(r), "cannot derive the addresses of VM '%s': %m", vm);
                r = vm_addrs_json(out, uid, group, vm, &a);
        } else {
                struct vmgr_group_addrs a;

                r = vmgr_group_addrs_derive(uid, group, &a);
                if (r < 0)
                        return log_error_errno(errno_generic(r), "cannot derive the addresses of group '%s': %m",
                                               group);
                r = group_addrs_json(out, uid, group, &a);
        }
        if (r < 0)
                return log_error_errno(r, "%m");

        r = o->json ? output_json(out) : output_properties(out);
        if (r < 0)
                return log_error_errno(r, "%m");
        return 0;
}
