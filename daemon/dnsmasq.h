/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Supervision of a group's dnsmasq. vmgr-netadm starts it (it needs
 * capabilities vmgrd has not); it runs as vmgrd's child, watched through
 * its pidfd. It is ready when it has written its pid file. If it dies while
 * the group runs it is restarted with back-off, at most
 * DNSMASQ_RESTART_BURST times in DNSMASQ_RESTART_INTERVAL_USEC.
 */

#include <stdint.h>

#include "group.h"

#define DNSMASQ_RESTART_BURST 5
#define DNSMASQ_RESTART_INTERVAL_USEC (60ULL * 1000000ULL)

typedef enum DnsmasqState {
        DNSMASQ_STOPPED,
        DNSMASQ_STARTING,
        DNSMASQ_RUNNING,
        DNSMASQ_RESTARTING,
        DNSMASQ_STOPPING,
        DNSMASQ_FAILED,
        _DNSMASQ_STATE_MAX,
} DnsmasqState;

const char *dnsmasq_state_to_string(DnsmasqState s);

/* Events a group receives from its dnsmasq. */
typedef struct DnsmasqCallbacks {
        /* First start finished: error 0 when ready, else -errno and a reason. */
        void (*ready)(Group *g, int error, const char *message);
        /* Stopped after dnsmasq_stop(). */
        void (*stopped)(Group *g);
        /* State or restart count changed; failed is true once it gave up restarting. */
        void (*changed)(Group *g);
        /* dnsmasq rewrote its leases file. */
        void (*leases_changed)(Group *g);
} DnsmasqCallbacks;

int dnsmasq_new(Group *g, const DnsmasqCallbacks *cb, Dnsmasq **ret);
Dnsmasq *dnsmasq_free(Dnsmasq *d);

/* Start it; the ready callback follows. Returns 0 or -errno. */
int dnsmasq_start(Dnsmasq *d);
/* Stop it (SIGTERM, SIGKILL after a grace period); the stopped callback
 * follows, at once if it is not running. */
void dnsmasq_stop(Dnsmasq *d);

DnsmasqState dnsmasq_state(Dnsmasq *d);
unsigned dnsmasq_restarts(Dnsmasq *d);
pid_t dnsmasq_pid(Dnsmasq *d);
