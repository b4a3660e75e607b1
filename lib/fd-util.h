/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * File descriptors: moving them where a child needs them, and passing one
 * along with a datagram (SCM_RIGHTS), as vmgrd, vmgr-netadm and its test
 * driver do over their SOCK_SEQPACKET sockets. Every fd received is
 * close-on-exec. The fd moves are async-signal-safe, for use between fork()
 * and exec().
 */

#include <stdbool.h>
#include <stddef.h>

/* Move fd above stdio (to a number >= 3, close-on-exec), so that dup2()
 * calls onto 0, 1 and 2 cannot overwrite it; closes the original. Returns the
 * fd (fd itself when it is above stdio already), or -errno. */
int vmgr_fd_move_above_stdio(int fd);

/* In a child about to exec: make fd available as target without
 * close-on-exec, so that the program exec'd inherits it there. dup2() clears
 * the flag on the copy but does nothing when fd already is target, so that
 * case clears it by hand. Returns 0 or -errno. */
int vmgr_fd_dup_for_exec(int fd, int target);

/* Write all n bytes of buf to fd (write() as often as it takes, retrying
 * on EINTR); a blocking fd, or one whose EAGAIN the caller handles. A pipe
 * or socket whose reader has gone gives -EPIPE (and SIGPIPE, unless the
 * caller ignores it). Returns 0 or -errno. */
int vmgr_write_all(int fd, const void *buf, size_t n);

/* Send len bytes from buf as one datagram, with fd attached as SCM_RIGHTS
 * when fd >= 0. Never raises SIGPIPE (a closed peer is -EPIPE). Returns 0,
 * -EIO when the datagram went out short, or -errno. */
int vmgr_datagram_send(int sock, const void *buf, size_t len, int fd);

/* Receive one datagram into buf (size bytes), retrying on EINTR; flags are
 * further recvmsg() flags such as MSG_DONTWAIT.
 *
 * ret_fd: when given, one fd passed as SCM_RIGHTS is accepted and written to
 * *ret_fd (-EBADF when none came); when NULL, no fd is accepted and the kernel
 * closes any that come.
 * ret_refused: when given, set to whether ancillary data came that was not
 * accepted (an fd when ret_fd is NULL, a second fd, anything else); when
 * NULL, such a datagram is an error, -EBADMSG, and any fd received is closed.
 *
 * Returns the datagram's real length, more than size when it did not fit
 * (the rest is dropped), 0 at end of file, or -errno. */
int vmgr_datagram_receive(int sock, void *buf, size_t size, int flags, int *ret_fd, bool *ret_refused);
