/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The protocol between vmgrd and its privileged helper, vmgr-netadm.
 *
 * vmgrd starts one vmgr-netadm per daemon and talks to it over an
 * AF_UNIX SOCK_SEQPACKET socketpair (fd 3 in the helper). Every message is a
 * fixed-size struct, one per datagram. A request names only a group, a VM
 * and a NIC kind (and, to start dnsmasq, the group's runtime directory): the
 * helper derives every link name and address itself with lib/addressing.c,
 * so a caller can never ask it to touch anything that is not vmgr-shaped.
 *
 * Requests are answered in order, one reply per request, with the same
 * serial. A reply to VMGR_NETADM_DNSMASQ_START carries dnsmasq's pidfd as
 * SCM_RIGHTS ancillary data; dnsmasq itself is re-parented to vmgrd (its
 * child-subreaper), which supervises and reaps it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addressing.h"

#define VMGR_NETADM_MAGIC 0x766d6e61u   /* "vmna" */
#define VMGR_NETADM_VERSION 1
#define VMGR_NETADM_DIR_MAX 256
#define VMGR_NETADM_MESSAGE_MAX 256
#define VMGR_NETADM_FD 3                /* the socket's fd number in the helper */
/* pasta's interface in vmgrd's network namespace (namespace mode): fixed,
 * so the helper never takes an interface name from its caller, and outside
 * the vbr-/tap-/ta4- names the firewall treats as guests'. */
#define VMGR_OUTBOUND_IFNAME "vmgr-pasta"

enum vmgr_netadm_op {
        /* Bridge (accept_ra=0, gateway addresses), lo /128s, the /64 route with the
         * management source. Refuses with -EADDRNOTAVAIL outside the policy's pools,
         * with -EADDRINUSE on any overlap with a link, address or route already on
         * the host, naming it in the message, and with -EBUSY while a dnsmasq still
         * serves the bridge's name. */
        VMGR_NETADM_GROUP_CREATE = 1,
        /* Deletes every link tagged "vmgr:<uid>:<group>" and the group's lo /128s,
         * then stops the caller's dnsmasq serving the group's bridge, if any.
         * Idempotent: nothing to delete is success. */
        VMGR_NETADM_GROUP_DELETE = 2,
        /* A TAP (vm, nic) owned by the caller's uid, enslaved to the group bridge. */
        VMGR_NETADM_TAP_CREATE = 3,
        /* Deletes that TAP if it is the caller's. Idempotent. */
        VMGR_NETADM_TAP_DELETE = 4,
        /* Starts the group's dnsmasq with an argv the helper builds itself;
         * -EBUSY while another dnsmasq serves the bridge. */
        VMGR_NETADM_DNSMASQ_START = 5,
        /* Namespace mode only: lets the caller's group's bridge forward to and
         * masquerade out of pasta's interface (VMGR_OUTBOUND_IFNAME), and turns
         * on forwarding in this network namespace. -EPERM in the initial user
         * namespace (host mode): the host's routing is not the caller's to
         * change. The bridge must be the caller's. GROUP_DELETE undoes it. */
        VMGR_NETADM_OUTBOUND_ENABLE = 6,
        /* GROUP_CREATE and DNSMASQ_START in one request, with the checks of
         * both: dnsmasq is started as soon as the bridge is the caller's, and
         * starts up while the helper gives the bridge its addresses, route
         * and firewall rules. Answered, like DNSMASQ_START, with dnsmasq's
         * pid and pidfd once all of that is done and dnsmasq has been
         * exec'd. On failure everything is undone, dnsmasq killed. */
        VMGR_NETADM_GROUP_START = 7,
        _VMGR_NETADM_OP_MAX,
};

struct vmgr_netadm_request {
        uint32_t magic;
        uint16_t version;
        uint16_t op;                            /* enum vmgr_netadm_op */
        uint32_t serial;
        uint32_t nic;                           /* enum vmgr_nic, TAP ops only, else 0 */
        char group[VMGR_NAME_MAX + 1];          /* NUL-terminated, zero-padded */
        char vm[VMGR_NAME_MAX + 1];             /* TAP ops only, else all zero */
        char dir[VMGR_NETADM_DIR_MAX];          /* DNSMASQ_START and GROUP_START only, else all zero */
};

struct vmgr_netadm_reply {
        uint32_t magic;
        uint16_t version;
        uint16_t has_fd;                        /* 1 if a pidfd is attached */
        uint32_t serial;
        int32_t error;                          /* 0 or -errno */
        int32_t pid;                            /* dnsmasq's pid for DNSMASQ_START and GROUP_START */
        char message[VMGR_NETADM_MESSAGE_MAX];  /* why it failed, NUL-terminated */
};

/* Name of an op for messages, or NULL if unknown. */
const char *vmgr_netadm_op_to_string(unsigned op);

/* Fill in a request. Returns 0, or -EINVAL when a field does not fit its shape
 * (the same rules the helper applies, so a bad request fails early). */
int vmgr_netadm_request_init(struct vmgr_netadm_request *req, enum vmgr_netadm_op op, uint32_t serial,
                             const char *group, const char *vm, enum vmgr_nic nic, const char *dir);

/* Validate a received request of len bytes, byte for byte. Returns 0 if it is
 * well-formed, -EBADMSG otherwise, with *reason set to what was wrong. */
int vmgr_netadm_request_validate(const void *buf, size_t len, const char **reason);

/* Fill in a reply: the message is copied and zero-padded, so that no byte
 * of the datagram is left from earlier contents (message may point into
 * *rep itself). pid and has_fd go together (DNSMASQ_START's pidfd) and only
 * with error 0. Returns 0, or -EINVAL when a field breaks the rules
 * vmgr_netadm_reply_validate() applies. */
int vmgr_netadm_reply_init(struct vmgr_netadm_reply *rep, uint32_t serial, int error, int pid, bool has_fd,
                           const char *message);

/* Validate a received reply of len bytes, byte for byte: the message is
 * NUL-terminated and zero-padded, error is 0 or a -errno, a pid comes with
 * an fd and both only with success. Returns 0 or -EBADMSG. */
int vmgr_netadm_reply_validate(const void *buf, size_t len);

/* Check a runtime directory path as the helper accepts it: absolute, at most
 * VMGR_NETADM_DIR_MAX-32 bytes, of [A-Za-z0-9/._+-], no "." or ".."
 * component, no "//". Returns 0 or -EINVAL with *reason set. */
int vmgr_netadm_dir_check(const char *dir, const char **reason);

/* Room for vmgr_dnsmasq_argv(): arguments (with the NULL) and their text. */
#define VMGR_DNSMASQ_ARGV_MAX 32
#define VMGR_DNSMASQ_ARGV_STORAGE 4096
/* The whole environment the helper gives dnsmasq. */
#define VMGR_DNSMASQ_ENV_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

/* The argv for the dnsmasq of uid's group, written into the NULL-terminated
 * array argv (capacity n) with strings in storage (capacity size).
 * Returns the argument count or -ENOBUFS/-EINVAL. */
int vmgr_dnsmasq_argv(const char *dnsmasq_path, unsigned uid, const char *group, const char *dir, char **argv, size_t n,
                      char *storage, size_t size);
