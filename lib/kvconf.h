/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * "key = value" configuration files, as read by vmgrd (--config) and
 * vmgr-netadm (/etc/vmgr/netadm.conf): one assignment per line, '#' starts a
 * comment line, white space around key and value is ignored.
 */

#include <stddef.h>
#include <stdio.h>

/* Called per assignment. Return 0 to go on, or -errno after writing a reason
 * into error (error_size bytes); without one, the error's words are used. */
typedef int (*vmgr_kvconf_handler_t)(const char *key, const char *value, void *userdata, char *error,
                                     size_t error_size);

/* Parse text from f. Returns 0, or -errno with error (error_size bytes,
 * VMGR_ERROR_MAX is enough) holding "line N: reason". */
int vmgr_kvconf_parse(FILE *f, vmgr_kvconf_handler_t handler, void *userdata, char *error, size_t error_size);

/* Parse an unsigned integer in [min, max]. Returns 0 or -EINVAL. */
int vmgr_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret);
