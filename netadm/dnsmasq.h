/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Starting a group's dnsmasq for vmgrd.
 *
 * dnsmasq must end up vmgrd's child, not ours: vmgrd is a child-subreaper
 * and supervises and reaps it. So the helper clones it with CLONE_PARENT
 * (our parent's child) and CLONE_PIDFD (a pidfd for exactly it), and sends
 * the pidfd back with its answer. dnsmasq runs with the caller's uid and the
 * three network capabilities as ambient capabilities, so it can bind port 67
 * and send router advertisements without being root.
 */

#include <stdbool.h>
#include <sys/types.h>

/* A dnsmasq cloned and maybe not yet exec'd. */
struct dnsmasq_child {
        pid_t pid;
        int pidfd;
        int exec_fd;    /* EOF once the exec happened; an errno if it failed */
};

/* Open dir for dnsmasq's files: an existing directory, not a symlink, owned
 * by uid; uid 0 is refused with -EPERM (dnsmasq run as root switches users,
 * which the three capabilities do not allow). Returns the fd or -errno with
 * a sentence in msg (VMGR_NETADM_MESSAGE_MAX bytes). */
int dnsmasq_dir_open(const char *dir, uid_t uid, char *msg);

/* Clone dnsmasq for group with its files in dir (dir_fd from
 * dnsmasq_dir_open()), with the argv vmgr_dnsmasq_argv() builds, never one
 * taken from the caller; do not wait for its exec. Returns 0 with *ret set,
 * or -errno with msg. */
int dnsmasq_spawn(const char *group, const char *dir, int dir_fd, uid_t uid, struct dnsmasq_child *ret, char *msg);

/* Wait until c has exec'd dnsmasq. Returns 0, or -errno with msg after
 * killing it (its fds closed) when the exec failed. */
int dnsmasq_child_wait(struct dnsmasq_child *c, char *msg);

/* Kill c with SIGKILL, wait (bounded) for it to exit, close its fds. */
void dnsmasq_child_kill(struct dnsmasq_child *c);

/* dnsmasq_dir_open(), dnsmasq_spawn() and dnsmasq_child_wait() in one.
 * Returns 0 and writes dnsmasq's pid and a pidfd for it, or -errno with msg. */
int dnsmasq_start(const char *group, const char *dir, uid_t uid, pid_t *ret_pid, int *ret_pidfd, char *msg);

/*
 * A dnsmasq must never serve a bridge it was not started for: started with
 * --interface=NAME, it would serve a later bridge of the same name, maybe
 * another user's. These find dnsmasq processes by their command line
 * (dnsmasq, "--interface=NAME") in this network namespace, never by a pid
 * file, which the user controls.
 */

/* Check that no dnsmasq of any uid in this network namespace that holds one
 * of the three network capabilities (the only kind that can answer DHCP or
 * send router advertisements) serves interface ifname, other than process
 * ours (our own child for it; 0: none). Returns 0, -EBUSY naming it, or
 * -errno, with msg. */
int dnsmasq_check_none_serves(const char *ifname, pid_t ours, char *msg);

/* Stop (SIGTERM, then SIGKILL) every dnsmasq of uid in this network namespace
 * that serves ifname, and wait for each to exit. Returns how many it stopped,
 * or -errno with msg. */
int dnsmasq_stop_serving(const char *ifname, uid_t uid, char *msg);
