/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The specs vmgrctl sends (docs/dbus-api.md, lib/spec.h): read from a file,
 * or built with json-c from the command line's VM shorthand
 *
 *     NAME[:KEY[=VALUE][,KEY[=VALUE]]...]
 *
 * e.g. "b:ipv4,vcpus=2,memory=512". Keys: ipv4 (a flag), vcpus=N,
 * memory=MIB, kernel=PATH, initrd=PATH, disk=PATH, the flags agent,
 * no-agent, uefi, cloud-init, install-agent and journal (each a fixed
 * value of its spec key), probe-tcp=PORT and cmdline=TEXT. cmdline
 * must come last and takes the rest of the argument, commas included.
 * Relative paths are made absolute from the current directory, since vmgrd
 * runs elsewhere. Values are only checked for their form (a number is
 * digits); ranges and names are vmgrd's to check, so its sentence is the one
 * a user sees.
 *
 * Every function logs its own one-sentence error and returns an errno from
 * verbs.h: -EINVAL (exit 2) for a malformed shorthand or a name given twice,
 * -EBADMSG for a spec file that is not what it must be.
 */

#include <json-c/json.h>
#include <stddef.h>

/* Reads a spec file, or stdin for "-". Returns 0 and a NUL-terminated
 * string, or -errno after logging. */
int spec_read(const char *path, char **ret);

/* How a spec file is named in messages: its path, or "on standard input". */
const char *spec_label(const char *path);

/* Parses one VM shorthand into a new VM spec object {"name": NAME, ...}.
 * option names where it came from in messages ("--vm", "VM"). Returns 0 and
 * the object, or -EINVAL after logging. */
int spec_vm_shorthand_parse(const char *arg, const char *option, struct json_object **ret);

/* Builds the group spec for "group create": the --vm shorthands appended to
 * the "vms" of spec_text (read from spec_path; both NULL for none). With no
 * shorthands the file's text is passed on untouched, so vmgrd judges it as
 * written; with neither the spec is "" (a network-only group). Returns 0, a
 * new string and how many VMs came from the file (so vms[i] of vmgrd's
 * messages can be traced to a --vm), or a negative errno after logging. */
int spec_group_build(const char *spec_text, const char *spec_path, char *const *vms, size_t n_vms, char **ret,
                     size_t *ret_n_file);

/* Builds the VM spec for "vm add" from "NAME[:OPTS]" and an optional spec
 * file holding one VM object. With options, their keys are added to the
 * file's object (a key set in both is an error) and "name" is added unless
 * the file has one; a file alone is passed on untouched (vmgrd takes the name
 * from the call); neither gives {"name": NAME}. Returns 0, the VM name and
 * the spec as new strings, or a negative errno after logging. */
int spec_vm_build(const char *arg, const char *spec_text, const char *spec_path, char **ret_name, char **ret_spec);
