/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Starting a group's dnsmasq for vmgrd.
 *
 * dnsmasq must end up vmgrd's child, not ours: vmgrd is a child-subreaper
 * and supervises and reaps it. So the helper forks an intermediate process
 * that forks dnsmasq, sends its pidfd back over a socketpair and exits;
 * dnsmasq is then re-parented to vmgrd. dnsmasq runs with the caller's uid
 * and the three network capabilities as ambient capabilities, so it can
 * bind port 67 and send router advertisements without being root.
 */

#include <stdbool.h>
#include <sys/types.h>

/* Start dnsmasq for group with its files in dir, which must be an existing
 * directory (not a symlink) owned by uid. The argv is built by
 * vmgr_dnsmasq_argv(), never taken from the caller. uid 0 is refused with
 * -EPERM (dnsmasq run as root switches users, which the three capabilities
 * do not allow). Returns 0 and writes
 * dnsmasq's pid and a pidfd for it, or -errno with a sentence in msg
 * (VMGR_NETADM_MESSAGE_MAX bytes). */
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
 * send router advertisements) serves interface ifname. Returns 0, -EBUSY
 * naming it, or -errno, with msg. */
int dnsmasq_check_none_serves(const char *ifname, char *msg);

/* Stop (SIGTERM, then SIGKILL) every dnsmasq of uid in this network namespace
 * that serves ifname, and wait for each to exit. Returns how many it stopped,
 * or -errno with msg. */
int dnsmasq_stop_serving(const char *ifname, uid_t uid, char *msg);
