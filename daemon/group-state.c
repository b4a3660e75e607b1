/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A group's state file, STATE/groups/NAME.json: everything a vmgrd that
 * starts after a crash or a re-exec needs to adopt the group, and its
 * reading back (docs/design.md, "Restart after a crash").
 *
 * Version 2 holds, besides the name, spec, state and creation time: the
 * group's timings, dnsmasq's restart count, each VM (name, its own spec as
 * JSON, state, timings), each served file (name, SHA-256, size; the bytes
 * are kept in STATE/groups/NAME/files/) and each forward. Version 1 files
 * (written before adoption existed) are never adopted, only cleaned up.
 */

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmasq.h"
#include "fileserver.h"
#include "fileserver-util.h"
#include "forward.h"
#include "group.h"
#include "group-state.h"
#include "journal-follow.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "vm.h"

#define GROUP_STATE_VERSION 2

static json_object *timings_to_json(const uint64_t *timings, size_t n, const char *(*name)(unsigned)) {
        json_object *o = json_object_new_object();

        for (size_t i = 0; o && i < n; i++)
                if (timings[i] != UINT64_MAX)
                        json_object_object_add(o, name((unsigned) i), json_object_new_int64((int64_t) timings[i]));
        return o;
}

static void timings_from_json(json_object *o, uint64_t *timings, size_t n, const char *(*name)(unsigned)) {
        for (size_t i = 0; i < n; i++) {
                json_object *v;

                timings[i] = UINT64_MAX;
                if (o && json_object_object_get_ex(o, name((unsigned) i), &v) && json_object_is_type(v, json_type_int) &&
                    json_object_get_int64(v) >= 0)
                        timings[i] = (uint64_t) json_object_get_int64(v);
        }
}

static const char *group_stage_name(unsigned i) {
        return group_stage_to_string((GroupStage) i);
}

static const char *vm_stage_name(unsigned i) {
        return vm_stage_to_string((VMStage) i);
}

static int add_file(const char *name, const char *sha256, uint64_t size, void *userdata) {
        json_object *a = userdata, *f = json_object_new_object();

        if (!f)
                return -ENOMEM;
        json_object_object_add(f, "name", json_object_new_string(name));
        json_object_object_add(f, "sha256", json_object_new_string(sha256));
        json_object_object_add(f, "size", json_object_new_int64((int64_t) size));
        return json_object_array_add(a, f) < 0 ? -ENOMEM : 0;
}

static int add_forward(const char *vm, int protocol, uint16_t guest_port, const char *address, uint16_t port,
                       void *userdata) {
        json_object *a = userdata, *f = json_object_new_object();

        if (!f)
                return -ENOMEM;
        json_object_object_add(f, "vm", json_object_new_string(vm));
        json_object_object_add(f, "protocol", json_object_new_int(protocol));
        json_object_object_add(f, "guest_port", json_object_new_int(guest_port));
        json_object_object_add(f, "address", json_object_new_string(address));
        json_object_object_add(f, "port", json_object_new_int(port));
        return json_object_array_add(a, f) < 0 ? -ENOMEM : 0;
}

static json_object *vm_to_json(VM *vm) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(vm->name));
        json_object_object_add(o, "spec", json_object_new_string(vm->spec_json ?: ""));
        json_object_object_add(o, "state", json_object_new_string(vm_state_to_string(vm->state)));
        json_object_object_add(o, "start_usec", json_object_new_int64((int64_t) vm->start_usec));
        json_object_object_add(o, "timings", timings_to_json(vm->timings, _VM_STAGE_MAX, vm_stage_name));
        if (vm->last_error && *vm->last_error)
                json_object_object_add(o, "last_error", json_object_new_string(vm->last_error));
        /* A clone: the identity its agent's INFOs must echo (vm-snapshot.c). */
        if (vm->restored) {
                char hex[2 * sizeof(vm->generation) + 1];

                for (size_t i = 0; i < sizeof(vm->generation); i++)
                        snprintf(hex + 2 * i, 3, "%02x", vm->generation[i]);
                json_object_object_add(o, "generation", json_object_new_string(hex));
        }
        if (vm->adding || vm->removing)
                json_object_object_add(o, "unfinished", json_object_new_boolean(true));
        if (*vm_journal_cursor(vm))
                json_object_object_add(o, "journal_cursor", json_object_new_string(vm_journal_cursor(vm)));
        return o;
}

int group_state_format(Group *g, char **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *vms, *files, *forwards;
        const char *text;
        int r;

        o = json_object_new_object();
        vms = json_object_new_array();
        files = json_object_new_array();
        forwards = json_object_new_array();
        if (!o || !vms || !files || !forwards) {
                json_object_put(vms);
                json_object_put(files);
                json_object_put(forwards);
                return -ENOMEM;
        }
        json_object_object_add(o, "version", json_object_new_int(GROUP_STATE_VERSION));
        json_object_object_add(o, "name", json_object_new_string(g->name));
        json_object_object_add(o, "spec", json_object_new_string(g->spec_json));
        json_object_object_add(o, "state", json_object_new_string(group_state_to_string(g->state)));
        json_object_object_add(o, "created_usec", json_object_new_int64((int64_t) g->created_usec));
        json_object_object_add(o, "start_usec", json_object_new_int64((int64_t) g->start_usec));
        json_object_object_add(o, "timings", timings_to_json(g->timings, _GROUP_STAGE_MAX, group_stage_name));
        json_object_object_add(o, "dnsmasq_restarts", json_object_new_int64(g->dnsmasq ? dnsmasq_restarts(g->dnsmasq) : 0));
        json_object_object_add(o, "vms", vms);
        json_object_object_add(o, "files", files);
        json_object_object_add(o, "forwards", forwards);

        /* Oldest first, so that adoption re-creates them in their order. */
        VM *tail = g->vms;
        while (tail && tail->next)
                tail = tail->next;
        for (VM *vm = tail; vm; vm = vm->prev) {
                json_object *v = vm_to_json(vm);
                if (!v || json_object_array_add(vms, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
        }
        r = fileserver_foreach_file(g->fileserver, add_file, files);
        if (r >= 0)
                r = forward_foreach(g, add_forward, forwards);
        if (r < 0)
                return r;

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
        *ret = text ? strdup(text) : NULL;
        return *ret ? 0 : -ENOMEM;
}

/* ---- reading it back ----------------------------------------------------- */

static const char *get_string(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int64_t get_int(json_object *o, const char *key, int64_t fallback) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return fallback;
        return json_object_get_int64(v);
}

static json_object *get_array(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
                return NULL;
        return v;
}

int group_state_parse(const char *text, json_object **ret, char *why, size_t why_size) {
        json_object *o;
        const char *state;

        o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                snprintf(why, why_size, "the state file is not a JSON object");
                return -EBADMSG;
        }
        if (get_int(o, "version", 0) != GROUP_STATE_VERSION) {
                snprintf(why, why_size, "the state file has version %" PRId64 ", not %d", get_int(o, "version", 0),
                         GROUP_STATE_VERSION);
                json_object_put(o);
                return -EPROTO;
        }
        state = get_string(o, "state");
        if (!state || !streq(state, "running")) {
                snprintf(why, why_size, "it was %s, not running", state ?: "in no known state");
                json_object_put(o);
                return -ESRCH;
        }
        if (!get_string(o, "spec")) {
                snprintf(why, why_size, "the state file has no spec");
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

void group_state_vm_names(json_object *o, void (*cb)(const char *vm, void *userdata), void *userdata) {
        json_object *vms = get_array(o, "vms");

        for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
                const char *name = get_string(json_object_array_get_idx(vms, i), "name");
                if (name)
                        cb(name, userdata);
        }
}

/* Each VM the state file lists, in state "defined" until libvirt says
 * whether its domain runs (vm_adopt_domain()). A VM that cannot be made
 * again (its spec no longer parses) is left out and logged. */
/* A clone's generation from the state file (hex), if it has one: its
 * identity is applied (or sent again to the agent, if it was not). */
static void vm_adopt_generation(VM *vm, const char *hex) {
        uint8_t generation[sizeof(vm->generation)];

        if (!hex || strlen(hex) != 2 * sizeof(generation))
                return;
        for (size_t i = 0; i < sizeof(generation); i++)
                if (sscanf(hex + 2 * i, "%2hhx", &generation[i]) != 1)
                        return;
        memcpy(vm->generation, generation, sizeof(generation));
        vm->restored = true;
        vm->identity_sent = vm->timings[VM_STAGE_IDENTITY_APPLIED] != VM_STAGE_NOT_YET;
        vm->identity_verify = vm->identity_sent;
}

static void adopt_vms(Group *g, json_object *o) {
        json_object *vms = get_array(o, "vms");

        for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
                json_object *v = json_object_array_get_idx(vms, i);
                const char *name = get_string(v, "name"), *spec_json = get_string(v, "spec");
                const char *state = get_string(v, "state");
                char error[VMGR_SPEC_ERROR_MAX];
                uint64_t timings[_VM_STAGE_MAX];
                VmgrVMSpec spec = {};
                VM *vm;
                int r;

                if (!name || !spec_json) {
                        log_group(LOG_WARNING, g->name, "The state file lists a VM without name or spec; left out");
                        continue;
                }
                r = vmgr_vm_spec_parse(spec_json, name, &spec, error);
                if (r < 0) {
                        log_group(LOG_WARNING, g->name, "VM '%s' cannot be adopted: %s", name, error);
                        continue;
                }
                json_object *t = NULL;
                (void) json_object_object_get_ex(v, "timings", &t);
                timings_from_json(t, timings, _VM_STAGE_MAX, vm_stage_name);
                json_object *unfinished = NULL;
                (void) json_object_object_get_ex(v, "unfinished", &unfinished);
                r = vm_adopt(g, &spec, spec_json, state, (uint64_t) get_int(v, "start_usec", 0), timings,
                             get_string(v, "last_error"), json_object_get_boolean(unfinished), &vm);
                vmgr_vm_spec_done(&spec);
                if (r < 0)
                        log_group_errno(LOG_WARNING, r, g->name, "VM '%s' cannot be adopted: %m", name);
                else {
                        if (get_string(v, "journal_cursor"))
                                (void) vm_journal_set_cursor(vm, get_string(v, "journal_cursor"));
                        vm_adopt_generation(vm, get_string(v, "generation"));
                }
        }
}

static unsigned adopt_files(Group *g, json_object *o) {
        json_object *files = get_array(o, "files");
        unsigned n = 0;

        for (size_t i = 0; g->fileserver && files && i < json_object_array_length(files); i++) {
                json_object *f = json_object_array_get_idx(files, i);
                const char *name = get_string(f, "name"), *sha256 = get_string(f, "sha256");
                int64_t size = get_int(f, "size", -1);
                const char *why;
                char error[512];

                if (!name || !sha256 || size < 0 || served_name_check(name, &why) < 0) {
                        log_group(LOG_WARNING, g->name, "The state file lists a served file it does not describe");
                        continue;
                }
                if (fileserver_adopt(g->fileserver, name, sha256, (uint64_t) size, error, sizeof(error)) < 0) {
                        log_group(LOG_WARNING, g->name, "%s is no longer served: %s", name, error);
                        continue;
                }
                n++;
        }
        return n;
}

static unsigned adopt_forwards(Group *g, json_object *o) {
        json_object *fw = get_array(o, "forwards");
        unsigned n = 0;

        for (size_t i = 0; fw && i < json_object_array_length(fw); i++) {
                json_object *f = json_object_array_get_idx(fw, i);
                const char *vm = get_string(f, "vm"), *address = get_string(f, "address");
                int64_t protocol = get_int(f, "protocol", -1), guest_port = get_int(f, "guest_port", -1),
                        port = get_int(f, "port", -1);
                Forward *added;
                int r;

                if (!vm || !address || protocol < 0 || guest_port <= 0 || guest_port > 65535 || port <= 0 ||
                    port > 65535 || !group_find_vm(g, vm)) {
                        log_group(LOG_WARNING, g->name, "The state file lists a forward it does not describe");
                        continue;
                }
                r = forward_add(g, vm, (int) protocol, (uint16_t) guest_port, address, (uint16_t) port, &added);
                if (r < 0) {
                        log_group_errno(LOG_WARNING, r, g->name, "Forward %s port %" PRId64 " to VM '%s' is lost: %m",
                                        address, port, vm);
                        continue;
                }
                n++;
        }
        return n;
}

int group_adopt(Manager *m, json_object *o, Group **ret) {
        const char *name = get_string(o, "name"), *spec_json = get_string(o, "spec");
        char error[VMGR_SPEC_ERROR_MAX];
        _cleanup_(group_unrefp) Group *g = NULL;
        VmgrSpec *spec = NULL;
        json_object *t = NULL;
        int pid, r;

        if (!name || !spec_json)
                return -EBADMSG;
        r = vmgr_spec_parse(spec_json, &spec, error);
        if (r < 0) {
                log_group(LOG_ERR, name, "The group's spec no longer parses: %s", error);
                return r;
        }
        r = group_new(m, name, spec_json, spec, &g, NULL);
        if (r < 0) {
                vmgr_spec_free(spec);
                return r;
        }
        g = group_ref(g); /* ours, besides the manager's */
        g->state = GROUP_RUNNING;
        g->network_created = true;
        g->created_usec = (uint64_t) get_int(o, "created_usec", (int64_t) g->created_usec);
        g->start_usec = (uint64_t) get_int(o, "start_usec", (int64_t) g->start_usec);
        (void) json_object_object_get_ex(o, "timings", &t);
        timings_from_json(t, g->timings, _GROUP_STAGE_MAX, group_stage_name);

        r = group_make_files(g);
        if (r < 0)
                goto fail;
        r = fileserver_start(g, &g->fileserver);
        if (r < 0)
                goto fail;
        pid = dnsmasq_adopt(g->dnsmasq, (unsigned) get_int(o, "dnsmasq_restarts", 0));
        if (pid < 0) {
                r = pid;
                goto fail;
        }
        adopt_vms(g, o);
        g->adopted_files = adopt_files(g, o);
        g->adopted_forwards = adopt_forwards(g, o);
        g->adopted_dnsmasq_pid = pid;
        *ret = TAKE_PTR(g);
        return 0;

fail:
        /* Whatever was made is torn down as for a deletion (the network too). */
        log_group_errno(LOG_ERR, r, g->name, "Cannot adopt the group; deleting it: %m");
        (void) group_delete(g, NULL);
        return r;
}
