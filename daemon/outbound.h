/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Outbound groups (spec "outbound": true), in namespace mode only: their
 * guests reach the host's network through pasta, user-mode networking that
 * turns the namespace's packets into the user's own sockets on the host.
 *
 * One pasta per vmgrd, started (in vmgrd's own namespace, as the user) for
 * the first outbound group and kept until vmgrd exits. It attaches to the
 * namespace holder's user and network namespaces, makes the interface
 * VMGR_OUTBOUND_IFNAME there with a copy of the host's addresses and
 * default routes, forwards no port in either direction, and dies with
 * vmgrd (PR_SET_PDEATHSIG). The helper's OUTBOUND_ENABLE then lets the
 * group's bridge forward and masquerade out of that interface. A pasta that
 * dies is restarted (at most OUTBOUND_RESTART_BURST times a minute); the
 * outbound groups' logs say so.
 */

#include <systemd/sd-bus.h>

#include "group.h"
#include "manager.h"

#define OUTBOUND_PASTA_PATH "/usr/bin/pasta"
#define OUTBOUND_READY_TIMEOUT_USEC (5ULL * 1000000ULL)
#define OUTBOUND_RESTART_BURST 5
#define OUTBOUND_RESTART_INTERVAL_USEC (60ULL * 1000000ULL)

/* Whether a group of this vmgrd may have outbound: not in host mode, and
 * not without a default route in vmgrd's own network namespace (pasta
 * copies it; without one it has no interface to reach the host's network
 * through). Cheap and synchronous, for CreateGroup's checks. Returns 0, or
 * -EINVAL with error set to InvalidArgs and a sentence saying why. */
int outbound_check(Manager *m, sd_bus_error *error);

/* Called once when outbound_enable() is done: error 0, or -errno and a
 * sentence. */
typedef void (*outbound_handler_t)(Group *g, int error, const char *message);

/* Give g's guests the host's network: start pasta unless it runs, then ask
 * the helper for OUTBOUND_ENABLE. Holds a reference on g until handler has
 * run (always from the event loop, never from within this call). Returns 0,
 * or -errno when handler will not be called. */
int outbound_enable(Group *g, outbound_handler_t handler);

/* Before a re-exec: kill our pasta and wait for it (the next vmgrd starts
 * its own for the outbound groups it adopts). */
void outbound_stop(void);

/* At start: kill a pasta a previous vmgrd left (its pid file, checked to
 * be pasta after taking a pidfd). */
void outbound_kill_stale(Manager *m);
