/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Port forwards (docs/design.md, "Port forwards"; docs/dbus-api.md): a
 * listening socket in vmgrd's own network namespace (127.0.0.1 by default)
 * whose TCP connections and UDP datagrams vmgrd relays to one port of one
 * VM, at the VM's derived IPv6 address, from the group's management address,
 * through a socket made by manager_guest_socket().
 *
 * Nothing is cached per guest boot: each TCP connection connects anew and a
 * UDP client's socket is connected to an address that never changes, so a
 * forward outlives reboots of its guest. While the VM is not running, new
 * connections are reset and datagrams dropped. A forward belongs to its
 * group's list and goes away with its VM or its group.
 */

#include <stdint.h>

#include "forward-parse.h"

typedef struct Group Group;
typedef struct Forward Forward;

/* Forwards one group holds at once. */
#define FORWARD_MAX_PER_GROUP 64
/* TCP connections one forward relays at once; past it new ones are reset. */
#define FORWARD_MAX_CONNECTIONS 256
/* UDP client addresses one forward keeps a socket for; past it, datagrams
 * from new ones are dropped until an idle one expires. */
#define FORWARD_MAX_MAPPINGS 256
/* A UDP client's socket is closed after this long without a datagram either way. */
#define FORWARD_UDP_IDLE_USEC (UINT64_C(60) * UINT64_C(1000000))

/* Start forwarding protocol (IPPROTO_TCP or IPPROTO_UDP) on address (a
 * numeric IPv4 or IPv6 address; "" is 127.0.0.1) and port (0: any free one)
 * to guest_port of VM vm of group g, which must exist. Returns 0 and the
 * forward (which the group's list holds); -EINVAL for an invalid argument,
 * -EEXIST when the group forwards that listener already, -VMGR_ERR_LIMIT_EXCEEDED
 * past FORWARD_MAX_PER_GROUP, or the -errno of socket(), bind() or listen()
 * (-EADDRINUSE, -EADDRNOTAVAIL, -EACCES). */
int forward_add(Group *g, const char *vm, int protocol, uint16_t guest_port, const char *address, uint16_t port,
                Forward **ret);

/* The forward of g listening with protocol on address ("" is 127.0.0.1) and
 * port, or NULL. */
Forward *forward_find(Group *g, int protocol, const char *address, uint16_t port);

/* Close a forward: its listener, every connection it relays, every UDP
 * socket, and take it out of its group's list. Returns NULL. */
Forward *forward_free(Forward *f);

/* Close every forward of g to VM vm (vm removed), or every forward of g
 * (vm NULL: the group goes away). Emits PropertiesChanged if any was. */
void forward_remove_vm(Group *g, const char *vm);

/* VM vm of g stopped: reset every connection its forwards relay and close
 * their UDP sockets, rather than leave them to TCP's timeouts. The
 * forwards stay, refusing until the VM runs again. */
void forward_vm_stopped(Group *g, const char *vm);

/* The listening end of f: the canonical address text and the port. */
const char *forward_address(const Forward *f);
uint16_t forward_port(const Forward *f);

/* Call cb for each forward of g, oldest first: its VM, protocol
 * (IPPROTO_TCP or IPPROTO_UDP), guest port, and listening address (canonical
 * text) and port. Returns 0, or the first negative value cb returned. */
typedef int (*forward_cb)(const char *vm, int protocol, uint16_t guest_port, const char *address, uint16_t port,
                          void *userdata);
int forward_foreach(Group *g, forward_cb cb, void *userdata);
