/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * json-c objects with the _cleanup_ attribute: a reference dropped when its
 * variable goes out of scope.
 *
 *     _cleanup_json_ struct json_object *o = json_tokener_parse(text);
 */

#include <json-c/json.h>

#include "macro.h"

static inline void json_object_putp(struct json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)
