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
 * When vmgrd dies (its socket's EOF; PR_SET_PDEATHSIG as a backstop) the
 * holder stops every process of its PID namespace, empties vmgrd's runtime
 * directory but for the lock (which it holds until then) and exits; the
 * kernel kills whatever might remain in the PID namespace, and the network
 * namespace, with every link, address, route and rule in it, goes with its
 * last process. So nothing of a namespace-mode vmgrd outlives it, by
 * construction.
 *
 * The holder does three things: it reaps the orphans of its PID namespace
 * (dnsmasq and QEMU daemonize), it makes sockets in its network namespace
 * on vmgrd's request (vmgrd cannot enter a user namespace: it has threads),
 * and it exists. The helper and libvirtd are vmgrd's own children inside
 * the namespaces (netns_fork()), so vmgrd supervises and reaps them as in
 * host mode.
 */

#include <stdbool.h>
#include <sys/types.h>

typedef struct Netns Netns;

/* Make the namespaces and their holder for uid/gid (vmgrd's own).
 * lock_fd (may be -1) is vmgrd's flock'ed lock: the holder keeps it until
 * it has ended, so that no new vmgrd starts while it cleans up.
 * runtime_dir (may be NULL) is vmgrd's runtime directory: when vmgrd dies
 * (or frees n) the holder stops everything in its namespaces and then
 * removes everything in there but lock_name. Returns 0, or -errno after
 * logging a sentence (e.g. user namespaces not allowed: it names the
 * setting that forbids them). */
int netns_new(uid_t uid, gid_t gid, int lock_fd, const char *runtime_dir, const char *lock_name, Netns **ret);

/* End the holder: everything in its namespaces is stopped (SIGTERM, then
 * SIGKILL), the runtime directory emptied but for the lock, the
 * namespaces gone. Waits for that (seconds at most). NULL is fine. */
Netns *netns_free(Netns *n);

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
