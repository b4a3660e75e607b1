/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vmgrd's side of the vmgr-netadm protocol (lib/netadm-proto.h).
 *
 * The helper runs as one long-lived child over a SOCK_SEQPACKET socketpair.
 * Calls are asynchronous: each is queued, sent at once, and its handler runs
 * from the event loop when the reply arrives. The helper answers in order.
 * If the helper dies, every call sent to it completes with an error (see
 * netadm_error_reply_lost()) and the next call starts a new helper; calls
 * made from those handlers go to the new helper and wait for its replies.
 */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "netadm-proto.h"

typedef struct NetadmClient NetadmClient;
typedef struct Netns Netns;

/* Called exactly once per call. error is 0 or -errno (from the helper or the
 * transport); message says why; pidfd is >= 0 only for a successful
 * dnsmasq start and then belongs to the handler. */
typedef void (*netadm_handler_t)(int error, const char *message, int pid, int pidfd, void *userdata);

/* Whether error, as a handler received it, means that no reply came: the
 * helper died, was killed for not answering, or the connection was closed.
 * The request may then have been carried out in full, in part or not at
 * all. (The helper itself answers with none of these, except ETIMEDOUT
 * from a GROUP_DELETE whose dnsmasq would not die.) */
bool netadm_error_reply_lost(int error);

/* Returns 0 and a client that will run the helper at path, or -errno. */
int netadm_client_new(sd_event *event, const char *path, Netns *netns, NetadmClient **ret);
void netadm_client_free(NetadmClient *c);

/* Queue a call. Returns 0 if the handler will be called, -errno if it will not
 * (invalid arguments, or the helper cannot be started). */
int netadm_client_call(NetadmClient *c, enum vmgr_netadm_op op, const char *group, const char *vm, enum vmgr_nic nic,
                       const char *dir, netadm_handler_t handler, void *userdata);

/* A blocking call, for start-up before the event loop runs (no async call may
 * be pending). Returns the helper's error (0 or -errno); *message (may be NULL)
 * receives its reason. */
int netadm_client_call_sync(NetadmClient *c, enum vmgr_netadm_op op, const char *group, const char *vm,
                            enum vmgr_nic nic, const char *dir, char message[VMGR_NETADM_MESSAGE_MAX]);

/* Number of calls sent and not answered yet. */
unsigned netadm_client_pending(NetadmClient *c);

/* Close the connection: the helper sees EOF and exits; vmgrd reaps it.
 * Pending calls complete with -ECONNABORTED. */
void netadm_client_close(NetadmClient *c);
