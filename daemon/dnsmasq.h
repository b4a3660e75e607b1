/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Supervision of a group's dnsmasq. vmgr-netadm starts it (it needs
 * capabilities vmgrd has not); it runs as vmgrd's child, watched through
 * its pidfd. It is ready when it has written its pid file. If it dies while
 * the group runs it is restarted with back-off, at most
 * DNSMASQ_RESTART_BURST times in DNSMASQ_RESTART_INTERVAL_USEC.
 */

#include <arpa/inet.h>
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
/* Start it through a helper call of the caller's (GROUP_START): get ready
 * for it (returns 0 or -errno; on error, send no call), say it went out,
 * and hand over its answer (the netadm_handler_t arguments); the ready
 * callback follows as for dnsmasq_start(), the ready timeout counted from
 * the answer. */
int dnsmasq_start_prepare(Dnsmasq *d);
void dnsmasq_start_sent(Dnsmasq *d);
void dnsmasq_start_answered(Dnsmasq *d, int error, const char *message, int pid, int pidfd);
/* Stop it (SIGTERM, SIGKILL after a grace period); the stopped callback
 * follows, at once if it is not running. */
void dnsmasq_stop(Dnsmasq *d);

DnsmasqState dnsmasq_state(Dnsmasq *d);
unsigned dnsmasq_restarts(Dnsmasq *d);
pid_t dnsmasq_pid(Dnsmasq *d);

/* The address dnsmasq leased to mac, from the leases file in the group's
 * runtime directory runtime_dir (lines "expiry mac ip host id"; the last
 * lease of mac counts). Writes it, or "" when there is none (no file yet),
 * into ret. Returns 0. */
/* A restarted vmgrd takes over the group's running dnsmasq: found through
 * its pid file, checked to be the dnsmasq of this group (command line)
 * after taking a pidfd, then supervised as if started here. If it is gone,
 * a new one is started (a restart). restarts is the count to carry over.
 * Returns dnsmasq's pid (> 0) when adopted, 0 when restarting, -errno. */
int dnsmasq_adopt(Dnsmasq *d, unsigned restarts);

int dnsmasq_lease_ipv4(const char *runtime_dir, const uint8_t mac[6], char ret[static INET_ADDRSTRLEN]);

/* Kill a dnsmasq that a previous vmgrd left running for group, whose
 * runtime directory was runtime_dir, and wait up to 2 s for it to go. Only
 * a process that is dnsmasq writing that directory's pid file is killed:
 * a pid file's pid may have been reused. */
void dnsmasq_kill_stale(Manager *m, const char *group, const char *runtime_dir);
