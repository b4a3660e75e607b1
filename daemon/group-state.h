/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
/*
 * A group's state file (group-state.c): written by group_save(), read back
 * by a vmgrd that starts after a crash or a re-exec to adopt the group.
 */
#include <json-c/json.h>

#include "group.h"

/* The state file's text for g as it is now. Returns 0 or -ENOMEM. */
int group_state_format(Group *g, char **ret);

/* Parse a state file and check it describes a group to adopt (this
 * version, state "running"). Returns 0 and the object, or -errno with a
 * reason in why: -ESRCH (not running: clean it up), -EPROTO (another
 * version), -EBADMSG (not a state file). */
int group_state_parse(const char *text, json_object **ret, char *why, size_t why_size);

/* Call cb for each VM name the parsed state file lists. */
void group_state_vm_names(json_object *o, void (*cb)(const char *vm, void *userdata), void *userdata);

/* Make the group the parsed state file o describes, in state "running",
 * without touching its network: its log reopened, its dnsmasq taken over
 * (or restarted), its file server serving the kept files again, its
 * forwards listening again, its VMs made in state "defined" until libvirt
 * says whether their domains run (vm_adopt_domain()). Returns 0 and a
 * reference, or -errno (logged; what was made is being torn down). */
int group_adopt(Manager *m, json_object *o, Group **ret);
