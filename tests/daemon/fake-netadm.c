/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A stand-in for vmgr-netadm in the daemon tests (tests/daemon/): it speaks
 * the helper's protocol (lib/netadm-proto.h) on fd 3 exactly as vmgrd
 * expects, validates every request with the helper's own check, and answers
 * without touching any network, so that vmgrd runs with no privilege at all.
 *
 * The test steers it through the directory named by $VMGR_FAKE_NETADM_DIR:
 *   requests.log   one line per request it got: "OP GROUP [VM NIC] [DIR]"
 *   OP             (e.g. "group-create") when present: "DELAY_MS ERRNO", an
 *                  answer held back DELAY_MS milliseconds, then failing
 *                  with -ERRNO (0: success). Read afresh for each request,
 *                  so a test may change it while vmgrd runs.
 *                  "DELAY_MS die": after DELAY_MS, die of SIGKILL without
 *                  doing anything or answering, as a helper killed in the
 *                  middle of the request would; "DELAY_MS die-once": the
 *                  same, removing the file first, so that the helper vmgrd
 *                  starts next answers.
 *
 * group-start is group-create then dnsmasq-start: the control files of
 * both apply, in that order, except that dnsmasq-start's DELAY_MS holds
 * back the stand-in dnsmasq's pid file rather than the answer (the real
 * helper answers once dnsmasq has exec'd, before it is ready).
 *
 * For dnsmasq-start it does what the real helper's dnsmasq_start() does as
 * far as vmgrd can tell: a grandchild, re-parented to vmgrd (a subreaper),
 * writes its pid into DIR/dnsmasq.pid as dnsmasq would, and the reply
 * carries its pid and a pidfd. The grandchild is `sleep`: harmless, and it
 * dies of the SIGTERM vmgrd stops dnsmasq with.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"
#include "netadm-proto.h"

/* Long enough for any test; vmgrd kills it long before. */
#define FAKE_DNSMASQ_ARGV { "sleep", "600", NULL }

static const char *control_dir;

/* Append one line describing req to requests.log. Returns 0 or -errno. */
static int request_record(const struct vmgr_netadm_request *req) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/requests.log", control_dir);
        f = fopen(path, "ae");
        if (!f)
                return -errno;
        fprintf(f, "%s %s", vmgr_netadm_op_to_string(req->op), req->group);
        if (req->vm[0])
                fprintf(f, " %s %u", req->vm, (unsigned) req->nic);
        if (req->dir[0])
                fprintf(f, " %s", req->dir);
        fputc('\n', f);
        return fclose(f) < 0 ? -errno : 0;
}

/* What the test wants for op: a delay in ms and an answer (0 or -errno),
 * or death (*ret_die). No control file means at once and success. */
static void behaviour_read(unsigned op, unsigned *ret_delay_ms, int *ret_error, bool *ret_die) {
        char path[4096], answer[32] = "";
        unsigned delay = 0;
        int error = 0;
        bool die = false;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", control_dir, vmgr_netadm_op_to_string(op));
        f = fopen(path, "re");
        if (f) {
                if (fscanf(f, "%u %31s", &delay, answer) != 2)
                        delay = 0, error = EINVAL;
                else if (streq(answer, "die"))
                        die = true;
                else if (streq(answer, "die-once"))
                        die = unlink(path) == 0;
                else
                        error = atoi(answer);
                fclose(f);
        }
        *ret_delay_ms = delay;
        *ret_error = error > 0 ? -error : error;
        *ret_die = die;
}

/* Start the stand-in dnsmasq for runtime directory dir, double-forked so
 * that vmgrd (our parent, a subreaper) inherits it. Returns 0 with its pid
 * and a pidfd, or -errno. */
static int fake_dnsmasq_start(const char *dir, unsigned pidfile_delay_ms, pid_t *ret_pid, int *ret_pidfd) {
        int sv[2], status, pidfd;
        pid_t intermediate, pid = 0;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        intermediate = fork();
        if (intermediate < 0) {
                int r = -errno;
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        if (intermediate == 0) {
                close(sv[0]);
                pid = fork();
                if (pid == 0) {
                        char *const argv[] = FAKE_DNSMASQ_ARGV;
                        char path[4096];
                        FILE *f;

                        close(sv[1]);
                        /* vmgrd must see the helper's end of the socket close with the helper. */
                        close(VMGR_NETADM_FD);
                        (void) setsid();
                        if (pidfile_delay_ms > 0) {
                                struct timespec ts = { .tv_sec = pidfile_delay_ms / 1000,
                                                       .tv_nsec = (long) (pidfile_delay_ms % 1000) * 1000000L };
                                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                                        ;
                        }
                        /* Written after the reply may already be on its way,
                         * like the real dnsmasq's: vmgrd handles either order. */
                        snprintf(path, sizeof(path), "%s/dnsmasq.pid", dir);
                        f = fopen(path, "we");
                        if (!f)
                                _exit(1);
                        fprintf(f, "%d\n", (int) getpid());
                        if (fclose(f) < 0)
                                _exit(1);
                        execvp(argv[0], argv);
                        _exit(127);
                }
                if (pid < 0 || write(sv[1], &pid, sizeof(pid)) != sizeof(pid))
                        _exit(1);
                _exit(0);
        }
        close(sv[1]);
        if (read(sv[0], &pid, sizeof(pid)) != sizeof(pid))
                pid = 0;
        close(sv[0]);
        (void) waitpid(intermediate, &status, 0);
        if (pid <= 0)
                return -EPROTO;
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -errno;
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        return 0;
}

/* Do what the test wants for op, except for a delay when delay is false
 * (*ret_delay_ms says how long it was). Returns 0 or the error to answer
 * with, rep->message set; does not return when the test wants death. */
static int behave(unsigned op, bool delay, unsigned *ret_delay_ms, struct vmgr_netadm_reply *rep) {
        unsigned delay_ms;
        int error;
        bool die;

        behaviour_read(op, &delay_ms, &error, &die);
        *ret_delay_ms = delay_ms;
        if (delay && delay_ms > 0) {
                struct timespec ts = { .tv_sec = delay_ms / 1000, .tv_nsec = (long) (delay_ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
        if (die)
                (void) raise(SIGKILL);
        if (error < 0)
                snprintf(rep->message, sizeof(rep->message), "fake %s failure: %s", vmgr_netadm_op_to_string(op),
                         strerror(-error));
        return error;
}

/* Answer one valid request. Returns 0 or -errno with rep->message set. */
static int request_handle(const struct vmgr_netadm_request *req, struct vmgr_netadm_reply *rep, int *ret_fd) {
        unsigned delay_ms;
        int error, r;
        bool die;

        if (req->op == VMGR_NETADM_GROUP_START) {
                pid_t pid = 0;

                r = behave(VMGR_NETADM_GROUP_CREATE, true, &delay_ms, rep);
                if (r < 0)
                        return r;
                r = behave(VMGR_NETADM_DNSMASQ_START, false, &delay_ms, rep);
                if (r < 0)
                        return r;
                r = fake_dnsmasq_start(req->dir, delay_ms, &pid, ret_fd);
                if (r < 0) {
                        snprintf(rep->message, sizeof(rep->message), "cannot start the fake dnsmasq: %s", strerror(-r));
                        return r;
                }
                rep->pid = pid;
                return 0;
        }

        behaviour_read(req->op, &delay_ms, &error, &die);
        if (delay_ms > 0) {
                struct timespec ts = { .tv_sec = delay_ms / 1000, .tv_nsec = (long) (delay_ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
        if (die)
                (void) raise(SIGKILL);
        if (error < 0) {
                snprintf(rep->message, sizeof(rep->message), "fake %s failure: %s", vmgr_netadm_op_to_string(req->op),
                         strerror(-error));
                return error;
        }

        if (req->op == VMGR_NETADM_DNSMASQ_START) {
                pid_t pid = 0;

                r = fake_dnsmasq_start(req->dir, 0, &pid, ret_fd);
                if (r < 0) {
                        snprintf(rep->message, sizeof(rep->message), "cannot start the fake dnsmasq: %s", strerror(-r));
                        return r;
                }
                rep->pid = pid;
                return 0;
        }
        if (req->op == VMGR_NETADM_OUTBOUND_ENABLE) {
                /* As the real helper answers in the initial user namespace. */
                snprintf(rep->message, sizeof(rep->message), "outbound is for namespace mode only");
                return -EPERM;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        control_dir = getenv("VMGR_FAKE_NETADM_DIR");

        if (argc > 1 && streq(argv[1], "--check")) {
                printf("vmgr-netadm (fake): host mode is available for uid %u\n", (unsigned) getuid());
                return 0;
        }
        if (!control_dir || control_dir[0] != '/') {
                fprintf(stderr, "fake-netadm: set VMGR_FAKE_NETADM_DIR to an absolute directory\n");
                return 1;
        }
        /* Like the real helper: do not outlive vmgrd. */
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);

        for (;;) {
                struct vmgr_netadm_request req = {};
                struct vmgr_netadm_reply rep = {
                        .magic = VMGR_NETADM_MAGIC,
                        .version = VMGR_NETADM_VERSION,
                };
                const char *reason = NULL;
                int fd = -EBADF, n, r;
                bool refused;

                n = vmgr_datagram_receive(VMGR_NETADM_FD, &req, sizeof(req), 0, NULL, &refused);
                if (n < 0) {
                        fprintf(stderr, "fake-netadm: reading a request: %s\n", strerror(-n));
                        return 1;
                }
                if (n == 0)
                        return 0;
                if (refused)
                        reason = "request carries ancillary data";
                else
                        (void) vmgr_netadm_request_validate(&req, (size_t) n, &reason);
                if (reason) {
                        /* vmgrd must never send what the real helper would refuse. */
                        fprintf(stderr, "fake-netadm: invalid request: %s\n", reason);
                        return 1;
                }
                if (request_record(&req) < 0)
                        fprintf(stderr, "fake-netadm: cannot write %s/requests.log\n", control_dir);

                rep.serial = req.serial;
                r = request_handle(&req, &rep, &fd);
                if (r < 0)
                        rep.error = r;
                else
                        rep.has_fd = fd >= 0;
                r = vmgr_datagram_send(VMGR_NETADM_FD, &rep, sizeof(rep), fd);
                if (fd >= 0)
                        close(fd);
                if (r < 0) {
                        fprintf(stderr, "fake-netadm: sending a reply: %s\n", strerror(-r));
                        return 1;
                }
        }
}
