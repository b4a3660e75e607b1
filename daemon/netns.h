/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Namespace mode: the namespaces where every group's network lives, and the
 * process that holds them.
 *
 * The holder is a child of vmgrd, cloned (not exec'd) into a new user
 * namespace (vmgrd's uid and gid mapped to themselves, nothing else), a new
 * network namespace owned by it, a new PID namespace, of which it is PID 1,
 * and a new mount namespace (only to show that PID namespace in /proc).
 *
 * It outlives vmgrd. A clean stop (netns_free(): an END request) ends it:
 * it stops every process of its PID namespace, empties vmgrd's runtime
 * directory but for the lock (which it holds until then) and exits; the
 * kernel kills whatever might remain in the PID namespace, and the network
 * namespace, with every link, address, route and rule in it, goes with its
 * last process. When vmgrd's connection ends without END (vmgrd died, even
 * by kill -9, or re-executes itself: netns_release()), the holder keeps
 * its namespaces, its processes and the fds vmgrd stored with it, lets go
 * of vmgrd's lock, and waits on RUNTIME/netns.sock for the next vmgrd of
 * its user (netns_attach()), one at a time. A holder with nothing to keep
 * (no process but itself in its PID namespace) ends as on a clean stop
 * once vmgrd has gone, so an idle vmgrd that crashed leaves nothing; so
 * does one that no vmgrd can find any more (its socket removed or
 * replaced, or the runtime directory removed). SIGTERM ends it as well.
 *
 * The holder reaps the orphans of its PID namespace (dnsmasq and QEMU
 * daemonize), makes sockets in its network namespace and pidfds of its
 * PID namespace on vmgrd's request (vmgrd cannot enter a user namespace:
 * it has threads), keeps fds for vmgrd across a crash, and exists. The helper and libvirtd are vmgrd's own children inside
 * the namespaces (netns_fork()), so vmgrd supervises and reaps them as in
 * host mode.
 */

#include <stdbool.h>
#include <sys/types.h>

/* The fd store's bounds: fds kept, and a key's length in bytes. */
#define NETNS_FD_STORE_MAX 256
#define NETNS_FD_KEY_MAX 63

typedef struct Netns Netns;

/* Make the namespaces and their holder for uid/gid (vmgrd's own).
 * lock_fd (may be -1) is vmgrd's flock'ed lock: the holder keeps it while
 * vmgrd is attached and until it has ended, so that no new vmgrd starts
 * while it cleans up. runtime_dir (may be NULL: then the holder cannot be
 * found again and ends with vmgrd) is vmgrd's runtime directory: the
 * holder listens on RUNTIME/netns.sock there, and when it ends it removes
 * everything in there but lock_name. Call it with the lock held, after
 * netns_attach() found no holder. Returns 0, or -errno after logging a
 * sentence (e.g. user namespaces not allowed: it names the setting that
 * forbids them). */
int netns_new(uid_t uid, gid_t gid, int lock_fd, const char *runtime_dir, const char *lock_name, Netns **ret);

/* Find the holder a previous vmgrd of uid/gid left in runtime_dir (it died,
 * or re-executed itself) and attach to it: n is then as netns_new() makes
 * it (namespace fds, holder pid and pidfd, netns_socket(), netns_fork()),
 * and the holder holds lock_fd (may be -1) as it held the old one. The
 * peer is checked to be a holder of this user (PID 1 of a PID namespace,
 * in a user namespace that is a child of ours, owned by uid, mapping only
 * uid and gid), through its pidfd. Call it with vmgrd's lock held.
 * Returns 1 when attached, 0 when there is no holder (a dead one's socket
 * file is removed: call netns_new()), or -errno after logging (-EBUSY:
 * another vmgrd is attached; -EPERM: what answers is not a holder of
 * ours). lock_name is the one given to netns_new() (the holder knows it). */
int netns_attach(uid_t uid, gid_t gid, int lock_fd, const char *runtime_dir, const char *lock_name, Netns **ret);

/* End the holder: everything in its namespaces is stopped (SIGTERM, then
 * SIGKILL), the fds stored dropped, the runtime directory emptied but for
 * the lock, the namespaces gone. Waits for that (seconds at most). NULL is
 * fine. */
Netns *netns_free(Netns *n);

/* Let go of the holder without ending it (before vmgrd re-executes
 * itself): it keeps everything and waits for the next vmgrd, as after a
 * crash. NULL is fine. */
Netns *netns_release(Netns *n);

/* The holder's pid (in vmgrd's PID namespace) and its pidfd, readable
 * once it has exited (vmgrd must not go on without it). */
pid_t netns_holder_pid(const Netns *n);
int netns_holder_pidfd(const Netns *n);

/* The user and network namespaces as fds (owned by n; dup() to keep). */
int netns_userns_fd(const Netns *n);
int netns_netns_fd(const Netns *n);

/* socket(family, type | SOCK_CLOEXEC, protocol) made inside the network
 * namespace by the holder. Blocks for one round trip to the holder (tens of
 * microseconds; at most a second if it is wedged). Returns the fd or -errno. */
int netns_socket(Netns *n, int family, int type, int protocol);

/* A pidfd (close-on-exec) of the process whose pid in the holder's PID
 * namespace is pid_in_ns (what dnsmasq's and libvirt's pid files say),
 * opened by the holder, so that it is that namespace's pid and no other.
 * The pid may be stale and reused by another process in there (all of them
 * ours): check what it runs before signalling. Returns the fd, -ESRCH (no
 * such process, or 1: the holder itself), or -errno. */
int netns_pidfd(Netns *n, pid_t pid_in_ns);

/* The fd store: the holder keeps fds for vmgrd (files the file server
 * serves), across a crash or re-exec, until dropped or a clean end.
 * key: 1 to NETNS_FD_KEY_MAX bytes. At most NETNS_FD_STORE_MAX fds.
 * netns_store_fd() keeps a copy of fd (the caller keeps its own) under
 * key, in place of the one kept there: 0, -EINVAL (key), -ENOSPC (full)
 * or -errno. netns_drop_fd(): 0 or -ENOENT. netns_fetch_fd(): a new fd
 * (close-on-exec) on the same open file, -ENOENT, or -errno. */
int netns_store_fd(Netns *n, const char *key, int fd);
int netns_drop_fd(Netns *n, const char *key);
int netns_fetch_fd(Netns *n, const char *key);

/* fork() into the namespaces: the child is a child of the caller (so the
 * caller's SIGCHLD handling and PR_SET_PDEATHSIG work as with fork()), but
 * lives in the user, network, PID and mount namespaces of n, with every capability
 * in the user namespace until it execs. With n NULL, plain fork().
 * Returns 0 in the child, the child's pid in the parent, -errno on failure
 * (nothing created). In the child only async-signal-safe
 * work may follow, then exec. */
pid_t netns_fork(Netns *n);

/* In a netns_fork() child, before exec: keep the network capabilities
 * (CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE, in the user namespace
 * only) across exec as ambient capabilities. Returns 0 or -errno. */
int netns_child_keep_net_caps(void);
