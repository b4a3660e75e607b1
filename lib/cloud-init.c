/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addressing.h"
#include "cloud-init.h"
#include "json-util.h"
#include "macro.h"

/* JSON that YAML parsers read the same: indented, spaces after ':' and ',',
 * and no "\/" (an escape YAML 1.1 does not have). */
#define SEED_JSON_FLAGS (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Every boot, early (cloud-init runs boothooks while it reads the
 * vendor-data, before any module): cloud-config keys such as bootcmd would
 * be replaced by a user-data that has the same key, a boothook is not. It
 * copies the agent, its unit and its udev rule from the seed when they
 * differ from the installed ones, then has udev announce the agent's port
 * again, whose rule starts the unit. A later boot finds the files in place
 * and changes nothing: udev starts the agent at coldplug. */
static const char agent_boothook[] =
        "#cloud-boothook\n"
        "#!/bin/sh\n"
        "# vmgr: install vmgr-agent from this seed (the volume labelled " VMGR_CLOUD_INIT_LABEL ") and start it.\n"
        "# Runs at every boot; changes nothing once the guest has the seed's files.\n"
        "set -eu\n"
        "dev=$(blkid -t LABEL=" VMGR_CLOUD_INIT_LABEL " -o device | head -n 1)\n"
        "if [ -z \"$dev\" ]; then echo 'vmgr: no volume labelled " VMGR_CLOUD_INIT_LABEL "' >&2; exit 1; fi\n"
        "mnt=$(mktemp -d)\n"
        "trap 'umount \"$mnt\" 2>/dev/null || :; rmdir \"$mnt\"' EXIT\n"
        "mount -t iso9660 -o ro \"$dev\" \"$mnt\"\n"
        "changed=0\n"
        "put() {\n"
        "        if ! cmp -s \"$mnt/$1\" \"$3\"; then\n"
        "                install -D -m \"$2\" \"$mnt/$1\" \"$3\"\n"
        "                changed=1\n"
        "        fi\n"
        "}\n"
        "put " VMGR_CLOUD_INIT_AGENT " 0755 " VMGR_CLOUD_INIT_AGENT_DEST "\n"
        "put " VMGR_CLOUD_INIT_AGENT_UNIT " 0644 " VMGR_CLOUD_INIT_AGENT_UNIT_DEST "\n"
        "put " VMGR_CLOUD_INIT_AGENT_RULE " 0644 " VMGR_CLOUD_INIT_AGENT_RULE_DEST "\n"
        "[ \"$changed\" = 1 ] || exit 0\n"
        "systemctl daemon-reload\n"
        "systemctl try-restart vmgr-agent.service\n"
        "udevadm control --reload\n"
        "udevadm trigger --action=add --subsystem-match=virtio-ports\n";

static const char empty_user_data[] = "#cloud-config\n{}\n";

char *vmgr_cloud_init_hostname(const char *vm, char *buf) {
        snprintf(buf, VMGR_NAME_MAX + 1, "%s", vm);
        for (char *p = buf; *p; p++)
                if (*p == '_')
                        *p = '-';
        return buf;
}

/* A malloc'd copy of o as seed JSON, or NULL. */
static char *seed_json(json_object *o) {
        const char *s = json_object_to_json_string_ext(o, SEED_JSON_FLAGS);
        size_t n;
        char *copy;

        if (!s)
                return NULL;
        /* With a final newline, as a text file should end. */
        n = strlen(s);
        copy = malloc(n + 2);
        if (!copy)
                return NULL;
        memcpy(copy, s, n);
        copy[n] = '\n';
        copy[n + 1] = 0;
        return copy;
}

/* Add key: value (a new object, consumed) to o. Returns 0 or -ENOMEM. */
static int add(json_object *o, const char *key, json_object *value) {
        if (!value)
                return -ENOMEM;
        if (json_object_object_add(o, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

/* One NIC of vmgr's network-config. */
static int network_ethernet(json_object *ethernets, const char *name, const uint8_t mac[6], bool ipv6) {
        _cleanup_json_ json_object *nic = json_object_new_object(), *match = json_object_new_object();
        char mac_str[VMGR_MAC_STRLEN];
        int r;

        if (!nic || !match)
                return -ENOMEM;
        if ((r = add(match, "macaddress", json_object_new_string(vmgr_mac_format(mac, mac_str)))) < 0 ||
            (r = add(nic, "match", json_object_get(match))) < 0 ||
            (r = add(nic, "set-name", json_object_new_string(name))) < 0 ||
            (r = add(nic, "dhcp4", json_object_new_boolean(!ipv6))) < 0 ||
            (r = add(nic, "dhcp6", json_object_new_boolean(false))) < 0 ||
            (r = add(nic, "accept-ra", json_object_new_boolean(ipv6))) < 0)
                return r;
        /* The kernel's and systemd-networkd's default, but NetworkManager
         * (through netplan) defaults to stable-privacy addresses, which are
         * not the derived one. */
        if (ipv6 && (r = add(nic, "ipv6-address-generation", json_object_new_string("eui64"))) < 0)
                return r;
        return add(ethernets, name, json_object_get(nic));
}

int vmgr_cloud_init_network_config(unsigned uid, const char *group, const char *vm, bool ipv4, char **ret) {
        _cleanup_json_ json_object *config = json_object_new_object(), *ethernets = json_object_new_object();
        struct vmgr_vm_addrs a;
        char *s;
        int r;

        r = vmgr_vm_addrs_derive(uid, group, vm, &a);
        if (r < 0)
                return r;
        if (!config || !ethernets)
                return -ENOMEM;
        if ((r = add(config, "version", json_object_new_int(2))) < 0 ||
            (r = network_ethernet(ethernets, "enp1s0", a.mac, true)) < 0 ||
            (ipv4 && (r = network_ethernet(ethernets, "enp2s0", a.mac4, false)) < 0) ||
            (r = add(config, "ethernets", json_object_get(ethernets))) < 0)
                return r;
        s = seed_json(config);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* A JSON object text as the spec parser keeps it, parsed; NULL if it is not one. */
static json_object *parse_object(const char *text) {
        json_object *o = json_tokener_parse(text);

        if (o && !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* SHA-256 over "LEN:BYTES" of each field, so that no two lists of fields
 * hash the same bytes. Returns 0 or -ENOMEM. */
static int hash_fields(const char *const *fields, size_t n, uint8_t out[VMGR_SHA256_LEN]) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, len = 0;

        for (size_t i = 0; i < n; i++)
                size += 24 + strlen(fields[i] ?: "");
        buf = malloc(size + 1);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *f = fields[i] ?: "";
                size_t flen = strlen(f);

                len += (size_t) snprintf(buf + len, size + 1 - len, "%zu:", flen);
                memcpy(buf + len, f, flen);
                len += flen;
        }
        vmgr_sha256(buf, len, out);
        return 0;
}

/* meta-data: ours, then the user's keys over them. The instance-id is a hash
 * of what the guest is given (names, user-data, network-config, the user's
 * meta-data): the same for every boot of a VM, so per-instance work runs
 * once; different for a VM with other data, even on a disk image made from
 * an earlier VM of the same names, so that cloud-init then runs again. */
static int build_meta_data(const char *group, const char *vm, const VmgrCloudInitSeed *seed,
                           const char *user_meta_data, char **ret) {
        _cleanup_json_ json_object *meta = json_object_new_object(), *user = NULL;
        const char *fields[] = { "vmgr-cloud-init-1", group, vm, user_meta_data, seed->user_data,
                                 seed->network_config };
        uint8_t h[VMGR_SHA256_LEN];
        char instance_id[8 + 2 * 8], hostname[VMGR_NAME_MAX + 1];
        char *s;
        int r;

        if (!meta)
                return -ENOMEM;
        r = hash_fields(fields, ELEMENTSOF(fields), h);
        if (r < 0)
                return r;
        snprintf(instance_id, sizeof(instance_id), "vmgr-%02x%02x%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3],
                 h[4], h[5], h[6], h[7]);
        if ((r = add(meta, "instance-id", json_object_new_string(instance_id))) < 0 ||
            (r = add(meta, "local-hostname", json_object_new_string(vmgr_cloud_init_hostname(vm, hostname)))) < 0)
                return r;

        if (user_meta_data) {
                user = parse_object(user_meta_data);
                if (!user)
                        return -EINVAL;
                json_object_object_foreach(user, key, value)
                        if ((r = add(meta, key, json_object_get(value))) < 0)
                                return r;
        }
        s = seed_json(meta);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int vmgr_cloud_init_seed_build(unsigned uid, const char *group, const VmgrVMSpec *vm, VmgrCloudInitSeed *ret) {
        const VmgrCloudInit *ci = &vm->cloud_init;
        VmgrCloudInitSeed seed = {};
        int r;

        if (!ci->enabled || !vmgr_name_is_valid(group) || !vmgr_name_is_valid(vm->name))
                return -EINVAL;

        seed.user_data = strdup(ci->user_data ?: empty_user_data);
        if (!seed.user_data) {
                r = -ENOMEM;
                goto fail;
        }

        if (ci->network_config) {
                /* An object as JSON (the spec parser keeps it compact, with
                 * "\/" escapes), pretty; YAML text as it is. */
                _cleanup_json_ json_object *o = parse_object(ci->network_config);
                seed.network_config = o ? seed_json(o) : strdup(ci->network_config);
                r = seed.network_config ? 0 : -ENOMEM;
        } else
                r = vmgr_cloud_init_network_config(uid, group, vm->name, vm->ipv4, &seed.network_config);
        if (r < 0)
                goto fail;

        if (ci->install_agent) {
                seed.vendor_data = strdup(agent_boothook);
                if (!seed.vendor_data) {
                        r = -ENOMEM;
                        goto fail;
                }
        }

        r = build_meta_data(group, vm->name, &seed, ci->meta_data, &seed.meta_data);
        if (r < 0)
                goto fail;

        *ret = seed;
        return 0;

fail:
        vmgr_cloud_init_seed_done(&seed);
        return r;
}

void vmgr_cloud_init_seed_done(VmgrCloudInitSeed *seed) {
        if (!seed)
                return;
        free(seed->meta_data);
        free(seed->user_data);
        free(seed->network_config);
        free(seed->vendor_data);
        *seed = (VmgrCloudInitSeed) {};
}
