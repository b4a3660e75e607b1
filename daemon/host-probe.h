/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Probes vmgrd runs from the host against a VM's derived IPv6 address, from
 * a group address of its own (the management address): a TCP connect, an
 * HTTP GET answered with a given status (http-client.c), an ICMPv6 echo,
 * or whether the address answers at all (for ipv6_configured without the
 * guest agent). A probe tries again every HOST_PROBE_RETRY_USEC
 * until one attempt passes, then calls its callback once and stops. Each
 * attempt is asynchronous on the event loop and bounded by
 * HOST_PROBE_ATTEMPT_USEC; the guest only ever gets to answer or not.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "spec.h"

typedef struct Manager Manager;
typedef struct HostProbe HostProbe;

#define HOST_PROBE_RETRY_USEC (500ULL * 1000ULL)
#define HOST_PROBE_ATTEMPT_USEC (1000ULL * 1000ULL)
/* A probe's last error, as a phrase: "tcp port 8080: connection refused". */
#define HOST_PROBE_ERROR_MAX 320

typedef enum HostProbeKind {
        HOST_PROBE_TCP,         /* a TCP connect to port succeeds */
        HOST_PROBE_PING,        /* an ICMPv6 echo is answered */
        HOST_PROBE_ADDRESS,     /* a TCP connect to port is answered at all: connected or refused */
        HOST_PROBE_HTTP,        /* GET http_path on port answers http_status */
        _HOST_PROBE_KIND_MAX,
} HostProbeKind;

typedef struct HostProbeOptions {
        HostProbeKind kind;
        unsigned port;                  /* tcp, address, http */
        const char *http_path;          /* http: "/..." (copied) */
        unsigned http_status;           /* http */
} HostProbeOptions;

/* Called once, when an attempt passed; the probe has stopped. */
typedef void (*host_probe_passed_t)(HostProbe *p, void *userdata);

/* Make a probe as o says against target, from source, and start it on the
 * next turn of the loop. The sockets come from m's guest network namespace.
 * Returns 0 or -errno. */
int host_probe_new(Manager *m, const HostProbeOptions *o, const struct in6_addr *source,
                   const struct in6_addr *target, host_probe_passed_t passed, void *userdata, HostProbe **ret);

/* The spec's "ready_probe_host" as options (pointing into spec). Returns 0,
 * or -EINVAL for none. */
int host_probe_options_from_spec(const VmgrHostProbe *spec, HostProbeOptions *ret);

/* What the last failed attempt said ("tcp port 8080: connection refused"),
 * or "" before the first one ended. Never NULL for a probe. */
const char *host_probe_last_error(const HostProbe *p);

/* Stop and free. Returns NULL. */
HostProbe *host_probe_free(HostProbe *p);
static inline void host_probe_freep(HostProbe **p) {
        host_probe_free(*p);
}
