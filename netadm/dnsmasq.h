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

#include <sys/types.h>

/* Start dnsmasq for group with its files in dir, which must be an existing
 * directory (not a symlink) owned by uid. The argv is built by
 * vmgr_dnsmasq_argv(), never taken from the caller. uid 0 is refused with
 * -EPERM (dnsmasq run as root switches users, which the three capabilities
 * do not allow). Returns 0 and writes
 * dnsmasq's pid and a pidfd for it, or -errno with a sentence in msg
 * (VMGR_NETADM_MESSAGE_MAX bytes). */
int dnsmasq_start(const char *group, const char *dir, uid_t uid, pid_t *ret_pid, int *ret_pidfd, char *msg);
