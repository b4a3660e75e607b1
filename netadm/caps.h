/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The three capabilities vmgr-netadm keeps, and the only ones it hands on
 * to dnsmasq (as ambient capabilities): one list, so that the helper and
 * the dnsmasq it starts can never disagree about it.
 */

#include <stdbool.h>
#include <sys/capability.h>

#include "macro.h"

static const cap_value_t netadm_caps[] = { CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE };

/* Returns whether c is one of the three. */
static inline bool netadm_cap_is_needed(cap_value_t c) {
        for (size_t i = 0; i < ELEMENTSOF(netadm_caps); i++)
                if (netadm_caps[i] == c)
                        return true;
        return false;
}

/* Make the three the process's only capabilities, permitted and effective,
 * and inheritable too when inheritable is true (which raising them as
 * ambient capabilities needs). Returns 0 or -errno. */
static inline int netadm_caps_set(bool inheritable) {
        cap_t caps;
        int r = 0;

        caps = cap_init();
        if (!caps)
                return negative_errno();
        if (cap_set_flag(caps, CAP_PERMITTED, ELEMENTSOF(netadm_caps), netadm_caps, CAP_SET) < 0 ||
            cap_set_flag(caps, CAP_EFFECTIVE, ELEMENTSOF(netadm_caps), netadm_caps, CAP_SET) < 0 ||
            (inheritable &&
             cap_set_flag(caps, CAP_INHERITABLE, ELEMENTSOF(netadm_caps), netadm_caps, CAP_SET) < 0) ||
            cap_set_proc(caps) < 0)
                r = negative_errno();
        cap_free(caps);
        return r;
}
