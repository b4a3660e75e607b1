/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libFuzzer target for lib/spec.c: whatever text a client sends as a group
 * or VM spec, the parser must neither crash, leak nor hang; a refusal is
 * -EINVAL with a "PATH: what is wrong" sentence, and nothing is returned.
 * Every spec it accepts must keep the rules docs/spec.md states (names,
 * ranges, limits, which keys need which), must parse to the same spec a
 * second time (a restarted vmgrd parses the spec text it saved again) and
 * must survive being written out as JSON and parsed back unchanged.
 * docs/design.md#fuzzing says how to build and run it.
 */

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(expr)                  \
        do {                         \
                if (!(expr))         \
                        abort();     \
        } while (0)

static bool path_ok(const char *p) {
        return !p || (p[0] == '/' && strlen(p) <= 4096);
}

static bool in_range(unsigned v, unsigned min, unsigned max) {
        return v >= min && v <= max;
}

/* The rules of docs/spec.md's VM table, on an accepted VM. */
static void check_vm(const VmgrVMSpec *vm) {
        size_t n = 0;

        CHECK(vmgr_name_check(vm->name, NULL) == 0);
        CHECK(in_range(vm->vcpus, 1, 64));
        CHECK(in_range(vm->memory_mib, 64, 256 * 1024));
        CHECK(in_range(vm->log_rate_kib, 1, 1024 * 1024));
        CHECK(in_range(vm->log_burst_kib, 4, 1024 * 1024));
        CHECK(in_range(vm->console_log_max_kib, 64, 1024 * 1024));
        CHECK(path_ok(vm->kernel) && path_ok(vm->initrd) && path_ok(vm->disk.path));
        CHECK(!vm->cmdline || strlen(vm->cmdline) <= 4096);
        CHECK(!vm->disk.path || (!vm->kernel && !vm->initrd && !vm->cmdline));
        CHECK(!(vm->initrd || vm->cmdline) || vm->kernel);
        CHECK(vm->disk.format == VMGR_DISK_FORMAT_AUTO || vm->disk.path);
        CHECK(vm->disk.size_mib == 0);

        CHECK(vm->n_extra_disks <= VMGR_SPEC_MAX_EXTRA_DISKS);
        for (size_t i = 0; i < VMGR_SPEC_MAX_EXTRA_DISKS; i++) {
                const VmgrDiskSpec *d = &vm->extra_disks[i];

                if (i >= vm->n_extra_disks) {
                        CHECK(!d->path && d->size_mib == 0 && d->format == VMGR_DISK_FORMAT_AUTO);
                        continue;
                }
                CHECK(!d->path != !d->size_mib); /* exactly one of them */
                CHECK(path_ok(d->path));
                CHECK(d->size_mib <= 1024 * 1024);
        }

        if (vm->ready_probe) {
                for (; vm->ready_probe[n]; n++)
                        CHECK(strlen(vm->ready_probe[n]) <= 4096);
                CHECK(in_range((unsigned) n, 1, VMGR_SPEC_MAX_PROBE_ARGS));
        }
}

/* The group rules, on an accepted spec. */
static void check_spec(const VmgrSpec *spec) {
        CHECK(spec->n_vms <= VMGR_SPEC_MAX_VMS);
        CHECK(spec->n_vms == 0 || spec->vms);
        for (size_t i = 0; i < spec->n_vms; i++) {
                check_vm(&spec->vms[i]);
                for (size_t j = 0; j < i; j++)
                        CHECK(strcmp(spec->vms[i].name, spec->vms[j].name) != 0);
        }
        CHECK(vmgr_accel_to_string(spec->accelerator));
        CHECK(path_ok(spec->collect_on_delete));
}

/* A refusal: -EINVAL with one "PATH: what" sentence in error, or -ENOMEM. */
static void check_refusal(int r, const char *error) {
        size_t n;

        CHECK(r == -EINVAL || r == -ENOMEM);
        if (r == -ENOMEM)
                return;
        n = strnlen(error, VMGR_SPEC_ERROR_MAX);
        CHECK(n > 0 && n < VMGR_SPEC_ERROR_MAX);
        CHECK(strstr(error, ": "));
}

static void add_string(json_object *o, const char *key, const char *s) {
        if (s)
                CHECK(json_object_object_add(o, key, json_object_new_string(s)) == 0);
}

static void add_int(json_object *o, const char *key, unsigned v) {
        CHECK(json_object_object_add(o, key, json_object_new_int64(v)) == 0);
}

static const char *format_name(VmgrDiskFormat f) {
        return f == VMGR_DISK_FORMAT_RAW ? "raw" : f == VMGR_DISK_FORMAT_QCOW2 ? "qcow2" : NULL;
}

/* Every field of vm as the JSON docs/spec.md describes. Returns a new object. */
static json_object *vm_to_json(const VmgrVMSpec *vm) {
        json_object *o = json_object_new_object();

        CHECK(o);
        add_string(o, "name", vm->name);
        add_int(o, "vcpus", vm->vcpus);
        add_int(o, "memory_mib", vm->memory_mib);
        add_string(o, "kernel", vm->kernel);
        add_string(o, "initrd", vm->initrd);
        add_string(o, "cmdline", vm->cmdline);
        add_string(o, "disk", vm->disk.path);
        add_string(o, "disk_format", format_name(vm->disk.format));
        if (vm->n_extra_disks > 0) {
                json_object *a = json_object_new_array();

                CHECK(a);
                for (size_t i = 0; i < vm->n_extra_disks; i++) {
                        const VmgrDiskSpec *d = &vm->extra_disks[i];
                        json_object *e = json_object_new_object();

                        CHECK(e);
                        add_string(e, "path", d->path);
                        add_string(e, "format", format_name(d->format));
                        if (d->size_mib)
                                add_int(e, "size_mib", d->size_mib);
                        CHECK(json_object_array_add(a, e) == 0);
                }
                CHECK(json_object_object_add(o, "extra_disks", a) == 0);
        }
        CHECK(json_object_object_add(o, "ipv4", json_object_new_boolean(vm->ipv4)) == 0);
        if (vm->ready_probe) {
                json_object *a = json_object_new_array();

                CHECK(a);
                for (char **s = vm->ready_probe; *s; s++)
                        CHECK(json_object_array_add(a, json_object_new_string(*s)) == 0);
                CHECK(json_object_object_add(o, "ready_probe", a) == 0);
        }
        add_int(o, "log_rate_kib", vm->log_rate_kib);
        add_int(o, "log_burst_kib", vm->log_burst_kib);
        add_int(o, "console_log_max_kib", vm->console_log_max_kib);
        return o;
}

/* The spec as JSON text, every field written out. Returns a malloc'd string. */
static char *spec_to_text(const VmgrSpec *spec) {
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        char *s;

        CHECK(o && a);
        for (size_t i = 0; i < spec->n_vms; i++)
                CHECK(json_object_array_add(a, vm_to_json(&spec->vms[i])) == 0);
        CHECK(json_object_object_add(o, "vms", a) == 0);
        add_string(o, "accelerator", vmgr_accel_to_string(spec->accelerator));
        add_string(o, "collect_on_delete", spec->collect_on_delete);
        CHECK(json_object_object_add(o, "outbound", json_object_new_boolean(spec->outbound)) == 0);
        s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        CHECK(s);
        json_object_put(o);
        return s;
}

static char *vm_to_text(const VmgrVMSpec *vm) {
        json_object *o = vm_to_json(vm);
        char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));

        CHECK(s);
        json_object_put(o);
        return s;
}

/* A group spec: checked, parsed again from the same text and from its own
 * JSON, each time to the same JSON. */
static void fuzz_group(const char *text) {
        static VmgrSpec *const untouched = (VmgrSpec *) 1;
        VmgrSpec *spec = untouched, *again = untouched;
        char error[VMGR_SPEC_ERROR_MAX] = "", *t1, *t2;
        int r;

        r = vmgr_spec_parse(text, &spec, error);
        if (r < 0) {
                check_refusal(r, error);
                CHECK(spec == untouched);
                return;
        }
        CHECK(r == 0 && spec && spec != untouched);
        check_spec(spec);
        t1 = spec_to_text(spec);

        CHECK(vmgr_spec_parse(text, &again, error) == 0);
        t2 = spec_to_text(again);
        CHECK(strcmp(t1, t2) == 0);
        vmgr_spec_free(again);
        free(t2);

        CHECK(vmgr_spec_parse(t1, &again, error) == 0);
        t2 = spec_to_text(again);
        CHECK(strcmp(t1, t2) == 0);
        vmgr_spec_free(again);
        free(t2);

        free(t1);
        vmgr_spec_free(spec);
}

/* A VM spec as AddVM takes it, with the name from the caller or not. */
static void fuzz_vm(const char *text, const char *name) {
        VmgrVMSpec vm, again;
        char error[VMGR_SPEC_ERROR_MAX] = "", *t1, *t2;
        int r;

        memset(&vm, 0xa5, sizeof(vm));
        r = vmgr_vm_spec_parse(text, name, &vm, error);
        if (r < 0) {
                unsigned char *p = (unsigned char *) &vm;

                check_refusal(r, error);
                for (size_t i = 0; i < sizeof(vm); i++)
                        CHECK(p[i] == 0xa5);
                return;
        }
        CHECK(r == 0);
        check_vm(&vm);
        CHECK(!name || strcmp(vm.name, name) == 0);
        t1 = vm_to_text(&vm);

        CHECK(vmgr_vm_spec_parse(t1, NULL, &again, error) == 0);
        t2 = vm_to_text(&again);
        CHECK(strcmp(t1, t2) == 0);
        vmgr_vm_spec_done(&again);
        free(t2);

        free(t1);
        vmgr_vm_spec_done(&vm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text;

        /* A spec arrives as a D-Bus string: text up to the first NUL. */
        if (size > VMGR_SPEC_MAX_BYTES + 16)
                return 0;
        text = malloc(size + 1);
        CHECK(text);
        memcpy(text, data, size);
        text[size] = 0;

        fuzz_group(text);
        fuzz_vm(text, NULL);
        fuzz_vm(text, "vm0");

        free(text);
        return 0;
}
