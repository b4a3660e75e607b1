/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vmgrd's private libvirt: a libvirtd in session mode that vmgrd spawns,
 * supervises and connects to over its own socket. Each vmgrd has its own
 * libvirtd (its own XDG_RUNTIME_DIR, XDG_CONFIG_HOME and HOME under vmgrd's
 * runtime directory); only the QEMU capabilities cache is shared, under the
 * cache directory.
 *
 * libvirt calls block, so they run on the worker pool (virt_call); libvirt's
 * own event loop runs on a thread of its own, and domain events are handed
 * to the sd-event loop. If libvirtd dies it is restarted and vmgrd
 * reconnects; running QEMUs are kept (libvirtd re-attaches to them).
 */

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>

#include "worker.h"

typedef struct Manager Manager;
typedef struct Virt Virt;

typedef enum VirtDomainEvent {
        VIRT_DOMAIN_STARTED,
        VIRT_DOMAIN_STOPPED,            /* shut down, destroyed or powered off */
        VIRT_DOMAIN_CRASHED,            /* QEMU died unexpectedly, or the guest crashed */
        VIRT_DOMAIN_PANICKED,           /* the guest's kernel panicked (pvpanic) */
        VIRT_DOMAIN_REBOOTED,
} VirtDomainEvent;

typedef struct VirtCallbacks {
        /* A domain's lifecycle changed. */
        void (*domain_event)(Manager *m, const char *domain, VirtDomainEvent event, const char *why);
        /* The connection came up (connected = true) or went away. */
        void (*connection)(Manager *m, bool connected);
} VirtCallbacks;

/* Work on a pool thread with a live connection. Returns 0 or -errno. */
typedef int (*virt_work_t)(virConnectPtr conn, void *userdata);

int virt_new(Manager *m, const VirtCallbacks *cb, Virt **ret);
Virt *virt_free(Virt *v);

/* Before a restarted vmgrd starts its libvirtd: stop the libvirtd a
 * previous vmgrd left (it leaves its QEMUs running), and kill every QEMU
 * left in our directories whose domain keep() does not want (keep may be
 * NULL: none). Each pid is checked to be that program after taking a
 * pidfd. With no QEMU kept, libvirtd's directories are emptied. */
void virt_cleanup_stale(Virt *v, bool (*keep)(const char *domain, void *userdata), void *userdata);

/* Spawn libvirtd (if not running) and connect in the background. Returns 0 or -errno. */
int virt_start(Virt *v);

/* Run work with the connection on a pool thread, then done on the loop.
 * If libvirtd is still starting, the call waits for the connection.
 * Returns 0 (done will be called) or -errno. */
int virt_call(Virt *v, virt_work_t work, worker_done_t done, void *userdata);

bool virt_is_connected(Virt *v);

/* The last libvirt error of this thread as a sentence (for work functions). */
const char *virt_last_error(void);
