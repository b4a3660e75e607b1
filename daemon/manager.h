/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "netadm-client.h"
#include "snapshot-store.h"
#include "sockdir.h"
#include "worker.h"

typedef struct Virt Virt;
typedef struct Netns Netns;

typedef struct Group Group;
typedef struct TemplateWait TemplateWait;

/* Where groups' networks live (docs/design.md, "Network modes"). */
typedef enum NetworkMode {
        NETWORK_MODE_AUTO,              /* config only: host if the helper can, else namespace */
        NETWORK_MODE_HOST,              /* the host's network namespace, through the setcap'd helper */
        NETWORK_MODE_NAMESPACE,         /* a user and network namespace of vmgrd's own */
} NetworkMode;

const char *network_mode_to_string(NetworkMode mode);

typedef struct ManagerConfig {
        unsigned max_groups;            /* groups this daemon holds at once */
        unsigned max_vms_per_group;
        unsigned dnsmasq_ready_timeout_sec;
        unsigned agent_keepalive_sec;   /* PING a quiet agent after this, reconnect after 3× */
        int accelerator;                /* VmgrAccel: auto, kvm or tcg */
        char user[65];                  /* the service user vmgrd becomes when started as root */
        NetworkMode network_mode;       /* as configured; Manager.network_mode is the one in force */
        bool warm_start;                /* "warm_start": templates for specs that want them (default true) */
        uint64_t snapshot_cache_max_mib; /* "snapshot_cache_max_mib": templates beyond it go, least recently used first */
} ManagerConfig;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        NetadmClient *netadm;
        WorkerPool *workers;            /* blocking work: libvirt calls, disks, probes */
        Virt *virt;                     /* private libvirtd, started on first use */
        Netns *netns;                   /* namespace mode: the namespaces and their holder */
        sd_event_source *netns_exit_source;

        char *state_dir;                /* groups/<name>.json live under it */
        char *runtime_dir;              /* groups/<name>/ hold dnsmasq's files */
        SockDir *sockdir;               /* a short path to runtime_dir, for unix sockets (sockdir.h) */
        char *cache_dir;                /* shared by every vmgrd of this user: guest images, base disks */
        SnapshotStore *snapshots;       /* cache_dir/snapshots: templates and user snapshots */
        char *netadm_path;
        char *mkguest_path;             /* builds the default guest */
        int lock_fd;                    /* flock on runtime_dir/vmgrd.lock */

        ManagerConfig config;
        NetworkMode network_mode;       /* in force: host or namespace, never auto */

        TemplateWait *template_waits;   /* templates this vmgrd builds, and the VMs that wait (vm-snapshot.c) */

        Group *groups;                  /* list, newest first */
        char **stale_names;             /* left by a previous vmgrd, not cleaned up yet (adopt.c) */
        sd_event_source *stale_timer;
        bool adopting;                  /* at start, until every adopted group is complete */
        sd_event_source *adoption_timer;
        bool adoption_listed;           /* libvirt said which domains run (or did not in time) */
        unsigned adoption_removals;     /* VMs left half made, still being removed */
        unsigned groups_adopted;        /* Manager.GroupsAdopted */
        unsigned virt_connections;      /* to libvirtd so far: more than one means it was restarted */
        char *exe_path;                 /* the file vmgrd was started from, for Reexec */
        char **argv;                    /* main()'s, for Reexec */
        sd_event_source *reexec_source;
        unsigned reexec_tries;
        unsigned n_groups;

        bool shutting_down;
        int exit_code;
        sd_event_source *sigchld_source, *sigterm_source, *sigint_source, *shutdown_timer, *finish_source;
} Manager;

/* Defaults, then the --config file if any. Returns 0 or -errno (logged). */
int manager_config_load(ManagerConfig *config, const char *path);

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);

/* Parse a network mode's name ("auto", "host", "namespace"). Returns the
 * mode or -EINVAL. */
int network_mode_from_string(const char *s);

/* Directories, lock, signals, network mode (and its namespaces), helper,
 * leftovers of a previous instance.
 * Returns 0 or -errno (logged). */
int manager_startup(Manager *m);

/* Begin the orderly shutdown: every group is deleted, every descendant
 * killed and reaped, then the event loop exits. */
void manager_shutdown(Manager *m);

/* Called by a group when it has been removed from the manager. */
void manager_maybe_finish_shutdown(Manager *m);

Group *manager_find_group(Manager *m, const char *name);

/* A new socket(family, type | SOCK_CLOEXEC, protocol) in the network
 * namespace where the groups' networks live: vmgrd's own in host mode, the
 * namespace holder's in namespace mode (one round trip to it, microseconds).
 * Every socket that talks to guests or binds a group's addresses comes from
 * here. Returns the fd or -errno. */
int manager_guest_socket(Manager *m, int family, int type, int protocol);

/* A pidfd for a process given the pid a program of ours reported (a pid
 * file): in namespace mode that is a pid of the namespace's. Returns the
 * fd or -errno (-ESRCH: no such process). */
int manager_pidfd_open(Manager *m, pid_t pid);

/* Manager.Reexec: whether vmgrd can re-execute itself now (0), or why not
 * (-errno with error set). */
int manager_reexec_check(Manager *m, sd_bus_error *error);
/* Re-execute exe_path with argv on a later turn of the loop, once the
 * state files are written. Returns 0 or -errno. */
int manager_reexec_schedule(Manager *m);

/* D-Bus face (manager-dbus.c). */
extern const sd_bus_vtable manager_vtable[];

/* Connect to the bus (as the service user when started as root), publish
 * the objects (the manager, and every group and VM through fallback
 * vtables), claim org.vmgr1. Returns 0 or -errno (logged). */
int manager_connect_bus(Manager *m);
