/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <json-c/json.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"
#include "spec.h"
#include "strv.h"

static const char *const accel_names[] = {
        [VMGR_ACCEL_AUTO] = "auto",
        [VMGR_ACCEL_KVM] = "kvm",
        [VMGR_ACCEL_TCG] = "tcg",
};

const char *vmgr_accel_to_string(VmgrAccel a) {
        return (size_t) a < ELEMENTSOF(accel_names) ? accel_names[a] : NULL;
}

int vmgr_accel_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(accel_names); i++)
                if (streq(s, accel_names[i]))
                        return (int) i;
        return -EINVAL;
}

static const char *const firmware_names[] = {
        [VMGR_FIRMWARE_BIOS] = "bios",
        [VMGR_FIRMWARE_UEFI] = "uefi",
};

const char *vmgr_firmware_to_string(VmgrFirmware f) {
        return (size_t) f < ELEMENTSOF(firmware_names) ? firmware_names[f] : NULL;
}

static const char *const host_probe_names[] = {
        [VMGR_HOST_PROBE_NONE] = "none",
        [VMGR_HOST_PROBE_TCP] = "tcp",
        [VMGR_HOST_PROBE_HTTP] = "http",
        [VMGR_HOST_PROBE_PING] = "ping",
};

const char *vmgr_host_probe_type_to_string(VmgrHostProbeType t) {
        return (size_t) t < ELEMENTSOF(host_probe_names) ? host_probe_names[t] : NULL;
}

bool vmgr_vm_spec_has_agent(const VmgrVMSpec *vm) {
        if (vm->agent >= 0)
                return vm->agent;
        return (!vm->kernel && !vm->disk.path) || (vm->cloud_init.enabled && vm->cloud_init.install_agent);
}

bool vmgr_vm_spec_wants_warm(const VmgrVMSpec *vm) {
        return vm->warm != 0 && vmgr_vm_spec_has_agent(vm) && !vm->cloud_init.enabled;
}

/* The keys that make a VM's shape, which a "from_snapshot" VM takes from
 * its snapshot ("agent": false too: its clone's identity needs the agent;
 * "ipv4": the snapshot's NICs are fixed). */
static const char *const shape_keys[] = {
        "kernel", "initrd", "cmdline", "disk", "disk_format", "extra_disks", "vcpus", "memory_mib",
        "firmware", "cloud_init", "ipv4",
};

/* Write "PATH: message" into error and return -EINVAL. A path too long to
 * leave room for the message (a key is the client's text) is cut with
 * "...": the message says what is wrong and must stay whole. */
_printf_(3, 4) static int spec_error(char *error, const char *path, const char *fmt, ...) {
        char what[VMGR_SPEC_ERROR_MAX / 2], *p;
        size_t room, n = strlen(path);
        bool cut;
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);

        /* What is left for the path after ": ", the message and the NUL. */
        room = VMGR_SPEC_ERROR_MAX - strlen(what) - 3;
        cut = n > room;
        if (cut)
                n = room - 3;
        p = mempcpy(error, path, n);
        p = stpcpy(p, cut ? "...: " : ": ");
        strcpy(p, what);
        return -EINVAL;
}

/* Build a JSON path for messages; a path longer than the buffer is cut, which
 * only shortens a message. */
_printf_(3, 4) static void path_format(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

static int parse_uint(json_object *v, const char *path, unsigned min, unsigned max, unsigned *ret, char *error) {
        int64_t n;

        if (!json_object_is_type(v, json_type_int))
                return spec_error(error, path, "must be an integer between %u and %u", min, max);
        n = json_object_get_int64(v);
        if (n < min || n > max)
                return spec_error(error, path, "must be an integer between %u and %u", min, max);
        *ret = (unsigned) n;
        return 0;
}

static int parse_string(json_object *v, const char *path, size_t max, char **ret, char *error) {
        const char *s;
        char *copy;

        if (!json_object_is_type(v, json_type_string))
                return spec_error(error, path, "must be a string");
        s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != strlen(s))
                return spec_error(error, path, "must not contain NUL characters");
        if (strlen(s) > max)
                return spec_error(error, path, "must be at most %zu bytes long", max);
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*ret);
        *ret = copy;
        return 0;
}

static int parse_path(json_object *v, const char *path, char **ret, char *error) {
        int r;

        r = parse_string(v, path, 4096, ret, error);
        if (r < 0)
                return r;
        if ((*ret)[0] != '/')
                return spec_error(error, path, "must be an absolute path");
        return 0;
}

static int parse_disk_format(json_object *v, const char *path, VmgrDiskFormat *ret, char *error) {
        const char *s;

        if (!json_object_is_type(v, json_type_string))
                return spec_error(error, path, "must be \"raw\" or \"qcow2\"");
        s = json_object_get_string(v);
        if (streq(s, "raw"))
                *ret = VMGR_DISK_FORMAT_RAW;
        else if (streq(s, "qcow2"))
                *ret = VMGR_DISK_FORMAT_QCOW2;
        else
                return spec_error(error, path, "must be \"raw\" or \"qcow2\"");
        return 0;
}

/* An extra disk: {"size_mib": N} for a new empty disk, or {"path": P, "format": F}. */
static int parse_extra_disk(json_object *o, const char *path, VmgrDiskSpec *disk, char *error) {
        char p[256];
        int r;

        if (!json_object_is_type(o, json_type_object))
                return spec_error(error, path, "must be an object");

        json_object_object_foreach(o, key, v) {
                path_format(p, sizeof(p), "%s.%s", path, key);
                if (streq(key, "path"))
                        r = parse_path(v, p, &disk->path, error);
                else if (streq(key, "format"))
                        r = parse_disk_format(v, p, &disk->format, error);
                else if (streq(key, "size_mib"))
                        r = parse_uint(v, p, 1, 1024 * 1024, &disk->size_mib, error);
                else
                        r = spec_error(error, p, "unknown key");
                if (r < 0)
                        return r;
        }
        if (!disk->path && disk->size_mib == 0)
                return spec_error(error, path, "needs \"path\" or \"size_mib\"");
        if (disk->path && disk->size_mib)
                return spec_error(error, path, "takes \"path\" or \"size_mib\", not both");
        return 0;
}

static int parse_probe(json_object *v, const char *path, char ***ret, char *error) {
        size_t n;
        char **argv;
        char p[256];
        int r;

        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
                return spec_error(error, path, "must be a non-empty array of strings (an argv)");
        n = json_object_array_length(v);
        if (n > VMGR_SPEC_MAX_PROBE_ARGS)
                return spec_error(error, path, "must have at most %d arguments", VMGR_SPEC_MAX_PROBE_ARGS);

        argv = calloc(n + 1, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        *ret = argv; /* freed by the caller's cleanup, also on failure */
        for (size_t i = 0; i < n; i++) {
                path_format(p, sizeof(p), "%s[%zu]", path, i);
                r = parse_string(json_object_array_get_idx(v, i), p, 4096, &argv[i], error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_bool(json_object *v, const char *path, bool *ret, char *error) {
        if (!json_object_is_type(v, json_type_boolean))
                return spec_error(error, path, "must be true or false");
        *ret = json_object_get_boolean(v);
        return 0;
}

/* "ready_probe_host": {"tcp": PORT} | {"http": PATH, "port": PORT, "status": CODE} | {"ping": true} */
static int parse_host_probe(json_object *o, const char *path, VmgrHostProbe *probe, char *error) {
        char p[300];
        bool ping = false, have_port = false, have_status = false;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return spec_error(error, path, "must be an object: {\"tcp\": PORT}, {\"http\": PATH} or {\"ping\": true}");

        probe->port = 80;
        probe->http_status = 200;
        json_object_object_foreach(o, key, v) {
                path_format(p, sizeof(p), "%s.%s", path, key);
                if (streq(key, "tcp") || streq(key, "http") || streq(key, "ping")) {
                        if (probe->type != VMGR_HOST_PROBE_NONE)
                                return spec_error(error, p, "only one of \"tcp\", \"http\" and \"ping\" may be given");
                }
                if (streq(key, "tcp")) {
                        probe->type = VMGR_HOST_PROBE_TCP;
                        r = parse_uint(v, p, 1, 65535, &probe->port, error);
                } else if (streq(key, "http")) {
                        probe->type = VMGR_HOST_PROBE_HTTP;
                        r = parse_string(v, p, VMGR_SPEC_HTTP_PATH_MAX, &probe->http_path, error);
                        if (r >= 0) {
                                /* It goes into a request line: no spaces or control characters. */
                                if (probe->http_path[0] != '/')
                                        return spec_error(error, p, "must be a path starting with \"/\"");
                                for (const char *c = probe->http_path; *c; c++)
                                        if (*c <= ' ' || *c >= 0x7f)
                                                return spec_error(error, p, "must be printable ASCII without spaces (percent-encode the rest)");
                        }
                } else if (streq(key, "ping")) {
                        r = parse_bool(v, p, &ping, error);
                        if (r >= 0 && !ping)
                                return spec_error(error, p, "must be true (leave the probe out for none)");
                        probe->type = VMGR_HOST_PROBE_PING;
                } else if (streq(key, "port")) {
                        r = parse_uint(v, p, 1, 65535, &probe->port, error);
                        have_port = true;
                } else if (streq(key, "status")) {
                        r = parse_uint(v, p, 100, 599, &probe->http_status, error);
                        have_status = true;
                } else
                        r = spec_error(error, p, "unknown key");
                if (r < 0)
                        return r;
        }
        if (probe->type == VMGR_HOST_PROBE_NONE)
                return spec_error(error, path, "needs one of \"tcp\", \"http\" and \"ping\"");
        if (probe->type != VMGR_HOST_PROBE_HTTP && (have_port || have_status))
                return spec_error(error, path, "\"%s\" only goes with \"http\"", have_port ? "port" : "status");
        return 0;
}

/* "ready_console": a POSIX extended regular expression, checked here so
 * that a bad one is refused at CreateGroup, not found at boot. */
static int parse_regex(json_object *v, const char *path, char **ret, char *error) {
        regex_t re;
        int r;

        r = parse_string(v, path, VMGR_SPEC_READY_CONSOLE_MAX, ret, error);
        if (r < 0)
                return r;
        if (!**ret)
                return spec_error(error, path, "must not be empty");
        r = regcomp(&re, *ret, REG_EXTENDED | REG_NOSUB);
        if (r != 0) {
                char why[128];
                (void) regerror(r, &re, why, sizeof(why));
                return spec_error(error, path, "is not a valid extended regular expression: %s", why);
        }
        regfree(&re);
        return 0;
}

/* A JSON value kept as text (meta_data, network_config). */
static int keep_json(json_object *v, char **ret) {
        char *copy = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));

        if (!copy)
                return -ENOMEM;
        free(*ret);
        *ret = copy;
        return 0;
}

/* "cloud_init": true | false | {"user_data": TEXT, "meta_data": {...},
 * "network_config": {...} or TEXT, "install_agent": BOOL} */
static int parse_cloud_init(json_object *o, const char *path, VmgrCloudInit *ci, char *error) {
        char p[300];
        int r;

        if (json_object_is_type(o, json_type_boolean)) {
                ci->enabled = json_object_get_boolean(o);
                return 0;
        }
        if (!json_object_is_type(o, json_type_object))
                return spec_error(error, path, "must be true, false or an object");

        ci->enabled = true;
        json_object_object_foreach(o, key, v) {
                path_format(p, sizeof(p), "%s.%s", path, key);
                if (streq(key, "user_data"))
                        r = parse_string(v, p, VMGR_SPEC_MAX_BYTES, &ci->user_data, error);
                else if (streq(key, "meta_data")) {
                        if (!json_object_is_type(v, json_type_object))
                                return spec_error(error, p, "must be an object");
                        r = keep_json(v, &ci->meta_data);
                } else if (streq(key, "network_config")) {
                        if (json_object_is_type(v, json_type_string))
                                r = parse_string(v, p, VMGR_SPEC_MAX_BYTES, &ci->network_config, error);
                        else if (json_object_is_type(v, json_type_object))
                                r = keep_json(v, &ci->network_config);
                        else
                                return spec_error(error, p, "must be an object or a string (YAML)");
                } else if (streq(key, "install_agent"))
                        r = parse_bool(v, p, &ci->install_agent, error);
                else
                        r = spec_error(error, p, "unknown key");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The keys of a VM from an image of the user's: firmware, agent, host
 * probes, the console regex, cloud-init and the journal. Returns 0, -EINVAL
 * with error set, or -ENOENT when key is none of them. */
static int parse_guest_key(VmgrVMSpec *vm, const char *key, json_object *v, const char *p, char *error) {
        int r = 0;

        if (streq(key, "firmware")) {
                const char *f = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
                if (streq(f, "bios"))
                        vm->firmware = VMGR_FIRMWARE_BIOS;
                else if (streq(f, "uefi"))
                        vm->firmware = VMGR_FIRMWARE_UEFI;
                else
                        return spec_error(error, p, "must be \"bios\" or \"uefi\"");
        } else if (streq(key, "agent")) {
                bool b = false;
                r = parse_bool(v, p, &b, error);
                vm->agent = b;
        } else if (streq(key, "ready_probe_host"))
                r = parse_host_probe(v, p, &vm->host_probe, error);
        else if (streq(key, "ready_console"))
                r = parse_regex(v, p, &vm->ready_console, error);
        else if (streq(key, "cloud_init"))
                r = parse_cloud_init(v, p, &vm->cloud_init, error);
        else if (streq(key, "journal")) {
                const char *j = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
                if (streq(j, "gatewayd"))
                        vm->journal = VMGR_JOURNAL_GATEWAYD;
                else if (streq(j, "none"))
                        vm->journal = VMGR_JOURNAL_NONE;
                else
                        return spec_error(error, p, "must be \"gatewayd\" or \"none\"");
        } else
                return -ENOENT;
        return r;
}

static int vm_spec_from_json(json_object *o, const char *path, VmgrVMSpec *vm, char *error) {
        char p[256];
        bool have_name = false;
        int r;

        *vm = (VmgrVMSpec) {
                .vcpus = 1,
                .memory_mib = 256,
                .log_rate_kib = VMGR_SPEC_LOG_RATE_KIB_DEFAULT,
                .log_burst_kib = VMGR_SPEC_LOG_BURST_KIB_DEFAULT,
                .console_log_max_kib = VMGR_SPEC_CONSOLE_LOG_MAX_KIB_DEFAULT,
                .agent = -1,
                .warm = -1,
        };

        if (!json_object_is_type(o, json_type_object))
                return spec_error(error, path, "must be an object");

        json_object_object_foreach(o, key, v) {
                path_format(p, sizeof(p), "%s%s%s", path, *path ? "." : "", key);
                r = 0;
                if (streq(key, "name")) {
                        const char *why;
                        if (!json_object_is_type(v, json_type_string))
                                return spec_error(error, p, "must be a string");
                        /* "a\u0000zzz" would otherwise be the VM "a". */
                        if ((size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)))
                                return spec_error(error, p, "contains a NUL character");
                        if (vmgr_name_check(json_object_get_string(v), &why) < 0)
                                return spec_error(error, p, "%s", why);
                        strcpy(vm->name, json_object_get_string(v));
                        have_name = true;
                } else if (streq(key, "vcpus"))
                        r = parse_uint(v, p, 1, 64, &vm->vcpus, error);
                else if (streq(key, "memory_mib"))
                        r = parse_uint(v, p, 64, 256 * 1024, &vm->memory_mib, error);
                else if (streq(key, "kernel"))
                        r = parse_path(v, p, &vm->kernel, error);
                else if (streq(key, "initrd"))
                        r = parse_path(v, p, &vm->initrd, error);
                else if (streq(key, "cmdline"))
                        r = parse_string(v, p, 4096, &vm->cmdline, error);
                else if (streq(key, "disk"))
                        r = parse_path(v, p, &vm->disk.path, error);
                else if (streq(key, "disk_format"))
                        r = parse_disk_format(v, p, &vm->disk.format, error);
                else if (streq(key, "extra_disks")) {
                        if (!json_object_is_type(v, json_type_array))
                                return spec_error(error, p, "must be an array");
                        if (json_object_array_length(v) > VMGR_SPEC_MAX_EXTRA_DISKS)
                                return spec_error(error, p, "must have at most %d entries",
                                                  VMGR_SPEC_MAX_EXTRA_DISKS);
                        for (size_t i = 0; i < json_object_array_length(v); i++) {
                                char q[300];
                                path_format(q, sizeof(q), "%s[%zu]", p, i);
                                vm->n_extra_disks = i + 1;
                                r = parse_extra_disk(json_object_array_get_idx(v, i), q, &vm->extra_disks[i], error);
                                if (r < 0)
                                        return r;
                        }
                } else if (streq(key, "ipv4")) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return spec_error(error, p, "must be true or false");
                        vm->ipv4 = json_object_get_boolean(v);
                } else if (streq(key, "warm")) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return spec_error(error, p, "must be true or false");
                        vm->warm = json_object_get_boolean(v);
                } else if (streq(key, "from_snapshot")) {
                        const char *why;
                        if (!json_object_is_type(v, json_type_string))
                                return spec_error(error, p, "must be a snapshot's name");
                        if ((size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)))
                                return spec_error(error, p, "contains a NUL character");
                        if (vmgr_name_check(json_object_get_string(v), &why) < 0)
                                return spec_error(error, p, "%s", why);
                        free(vm->from_snapshot);
                        vm->from_snapshot = strdup(json_object_get_string(v));
                        if (!vm->from_snapshot)
                                return -ENOMEM;
                } else if (streq(key, "ready_probe"))
                        r = parse_probe(v, p, &vm->ready_probe, error);
                else if (streq(key, "log_rate_kib"))
                        r = parse_uint(v, p, 1, 1024 * 1024, &vm->log_rate_kib, error);
                else if (streq(key, "log_burst_kib"))
                        r = parse_uint(v, p, 4, 1024 * 1024, &vm->log_burst_kib, error);
                else if (streq(key, "console_log_max_kib"))
                        r = parse_uint(v, p, 64, 1024 * 1024, &vm->console_log_max_kib, error);
                else if ((r = parse_guest_key(vm, key, v, p, error)) == -ENOENT)
                        return spec_error(error, p, "unknown key");
                if (r < 0)
                        return r;
        }

        if (!have_name)
                return spec_error(error, *path ? path : ".", "needs a \"name\"");
        if (vm->from_snapshot) {
                for (size_t i = 0; i < ELEMENTSOF(shape_keys); i++)
                        if (json_object_object_get_ex(o, shape_keys[i], NULL)) {
                                path_format(p, sizeof(p), "%s%s%s", path, *path ? "." : "", shape_keys[i]);
                                return spec_error(error, p, "not allowed with from_snapshot: "
                                                  "the snapshot fixes the VM's shape");
                        }
                if (vm->agent == 0) {
                        path_format(p, sizeof(p), "%s%s%s", path, *path ? "." : "", "agent");
                        return spec_error(error, p, "false is not allowed with from_snapshot: "
                                          "a clone takes its own identity through the agent");
                }
        }
        if (vm->disk.path && (vm->kernel || vm->initrd || vm->cmdline))
                return spec_error(error, *path ? path : ".",
                                  "boots either from \"kernel\" (with \"initrd\", \"cmdline\") or from \"disk\", not both");
        if ((vm->initrd || vm->cmdline) && !vm->kernel)
                return spec_error(error, *path ? path : ".", "\"initrd\" and \"cmdline\" need a \"kernel\"");
        if (vm->disk.format != VMGR_DISK_FORMAT_AUTO && !vm->disk.path)
                return spec_error(error, *path ? path : ".", "\"disk_format\" needs a \"disk\"");
        if (vm->ready_probe && !vmgr_vm_spec_has_agent(vm))
                return spec_error(error, *path ? path : ".",
                                  "\"ready_probe\" runs through the guest agent, which this VM does not have "
                                  "(set \"agent\": true, or use \"ready_probe_host\")");
        if (vm->agent == 0 && vm->cloud_init.install_agent)
                return spec_error(error, *path ? path : ".",
                                  "\"agent\": false contradicts \"cloud_init\": {\"install_agent\": true}");
        return 0;
}

void vmgr_vm_spec_done(VmgrVMSpec *vm) {
        if (!vm)
                return;
        free(vm->kernel);
        free(vm->initrd);
        free(vm->cmdline);
        free(vm->disk.path);
        for (size_t i = 0; i < VMGR_SPEC_MAX_EXTRA_DISKS; i++)
                free(vm->extra_disks[i].path);
        strv_free(vm->ready_probe);
        free(vm->host_probe.http_path);
        free(vm->ready_console);
        free(vm->cloud_init.user_data);
        free(vm->cloud_init.meta_data);
        free(vm->cloud_init.network_config);
        free(vm->from_snapshot);
        *vm = (VmgrVMSpec) {};
}

VmgrSpec *vmgr_spec_free(VmgrSpec *spec) {
        if (!spec)
                return NULL;
        for (size_t i = 0; i < spec->n_vms; i++)
                vmgr_vm_spec_done(&spec->vms[i]);
        free(spec->vms);
        free(spec->collect_on_delete);
        free(spec);
        return NULL;
}

/* Whether text is a spec that says nothing (only white space). Returns 1
 * or 0, or -EINVAL (error set) when it is larger than any spec may be: the
 * limit holds for white space too. */
static int spec_text_empty(const char *json, char *error) {
        size_t len = strlen(json);

        if (len > VMGR_SPEC_MAX_BYTES)
                return spec_error(error, ".", "spec is larger than %d bytes", VMGR_SPEC_MAX_BYTES);
        return strspn(json, " \t\r\n") == len;
}

/* Parse text (no larger than VMGR_SPEC_MAX_BYTES) as one JSON object; on a
 * syntax error say where. */
static int json_parse_object(const char *json, json_object **ret, char *error) {
        _cleanup_json_ json_object *o = NULL;
        struct json_tokener *tok;
        size_t len = strlen(json);
        enum json_tokener_error jerr;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, json, (int) len);
        jerr = json_tokener_get_error(tok);
        if (!o || jerr != json_tokener_success || json_tokener_get_parse_end(tok) != len) {
                size_t at = json_tokener_get_parse_end(tok);
                json_tokener_free(tok);
                if (!o && jerr == json_tokener_success)
                        jerr = json_tokener_continue;
                return spec_error(error, ".", "not valid JSON at byte %zu: %s", at,
                                  jerr == json_tokener_continue ? "unexpected end of input"
                                  : jerr == json_tokener_success ? "trailing characters"
                                                                 : json_tokener_error_desc(jerr));
        }
        json_tokener_free(tok);

        if (!json_object_is_type(o, json_type_object))
                return spec_error(error, ".", "must be a JSON object");
        *ret = TAKE_PTR(o);
        return 0;
}

int vmgr_spec_parse(const char *json, VmgrSpec **ret, char *error) {
        _cleanup_json_ json_object *o = NULL;
        _cleanup_(vmgr_spec_freep) VmgrSpec *spec = NULL;
        int r;

        spec = calloc(1, sizeof(*spec));
        if (!spec)
                return -ENOMEM;

        /* Only white space means "no spec". */
        r = spec_text_empty(json, error);
        if (r < 0)
                return r;
        if (r > 0) {
                *ret = TAKE_PTR(spec);
                return 0;
        }

        r = json_parse_object(json, &o, error);
        if (r < 0)
                return r;

        json_object_object_foreach(o, key, v) {
                if (streq(key, "vms")) {
                        size_t n;
                        if (!json_object_is_type(v, json_type_array))
                                return spec_error(error, "vms", "must be an array");
                        n = json_object_array_length(v);
                        if (n > VMGR_SPEC_MAX_VMS)
                                return spec_error(error, "vms", "must have at most %d VMs", VMGR_SPEC_MAX_VMS);
                        spec->vms = calloc(n ? n : 1, sizeof(VmgrVMSpec));
                        if (!spec->vms)
                                return -ENOMEM;
                        for (size_t i = 0; i < n; i++) {
                                char p[64];
                                path_format(p, sizeof(p), "vms[%zu]", i);
                                spec->n_vms = i + 1;
                                r = vm_spec_from_json(json_object_array_get_idx(v, i), p, &spec->vms[i], error);
                                if (r < 0)
                                        return r;
                                for (size_t j = 0; j < i; j++)
                                        if (streq(spec->vms[j].name, spec->vms[i].name))
                                                return spec_error(error, p, "VM name \"%s\" is used twice",
                                                                  spec->vms[i].name);
                        }
                } else if (streq(key, "accelerator")) {
                        if (!json_object_is_type(v, json_type_string) ||
                            (r = vmgr_accel_from_string(json_object_get_string(v))) < 0)
                                return spec_error(error, "accelerator", "must be \"auto\", \"kvm\" or \"tcg\"");
                        spec->accelerator = (VmgrAccel) r;
                } else if (streq(key, "collect_on_delete")) {
                        r = parse_path(v, "collect_on_delete", &spec->collect_on_delete, error);
                        if (r < 0)
                                return r;
                } else if (streq(key, "outbound")) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return spec_error(error, "outbound", "must be true or false");
                        spec->outbound = json_object_get_boolean(v);
                } else
                        return spec_error(error, key, "unknown key");
        }

        *ret = TAKE_PTR(spec);
        return 0;
}

int vmgr_vm_spec_parse(const char *json, const char *name, VmgrVMSpec *ret, char *error) {
        _cleanup_json_ json_object *o = NULL;
        json_object *n;
        VmgrVMSpec vm;
        int r;

        r = spec_text_empty(json, error);
        if (r < 0)
                return r;
        if (r > 0)
                json = "{}";
        r = json_parse_object(json, &o, error);
        if (r < 0)
                return r;
        if (name) {
                /* The name comes from the caller; the spec may repeat it, not contradict it. */
                if (json_object_object_get_ex(o, "name", &n)) {
                        if (!json_object_is_type(n, json_type_string) || !streq(json_object_get_string(n), name))
                                return spec_error(error, "name", "differs from the VM name \"%s\"", name);
                } else
                        json_object_object_add(o, "name", json_object_new_string(name));
        }
        r = vm_spec_from_json(o, "", &vm, error);
        if (r < 0) {
                vmgr_vm_spec_done(&vm);
                return r;
        }
        *ret = vm;
        return 0;
}
