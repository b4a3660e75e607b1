/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-netadm-call: talk to vmgr-netadm the way vmgrd does, for tests.
 *
 * Spawns HELPER with one end of a SOCK_SEQPACKET socketpair on fd 3, sends
 * one request (or malformed bytes), prints the reply and checks how the
 * helper exits. Exit status: 0 for a success reply, 1 for an error reply,
 * 2 for usage or transport errors (including a helper that refuses to start).
 *
 * Like vmgrd, the driver is a child-subreaper, so a dnsmasq started through
 * the helper becomes its child; --wait then supervises it until it exits.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "fd-util.h"
#include "kvconf.h"
#include "macro.h"
#include "netadm-proto.h"
#include "vmgr-error.h"

#define EXIT_ERROR_REPLY 1
#define EXIT_USAGE 2
#define RAW_MAX 4096
#define BENCH_MAX 10000
#define SEARCH_MAX 100000000u

struct call_args {
        const char *helper;
        unsigned op;
        const char *group, *vm, *dir;
        unsigned nic;
        bool time, wait;
        const char *raw, *garbage;
        unsigned bench;
        const char *search_subnet4, *search_prefix6;
        const char *send_after;
        unsigned uid;
};

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* Start the helper with one end of a new socketpair as fd 3. Returns 0 with
 * its pid and our end, or -errno after saying why. */
static int helper_spawn(const char *path, pid_t *ret_pid, int *ret_fd) {
        _cleanup_close_ int ours = -EBADF, theirs = -EBADF;
        int sv[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                goto fail;
        ours = sv[0];
        theirs = sv[1];

        pid = fork();
        if (pid < 0)
                goto fail;
        if (pid == 0) {
                if (vmgr_fd_dup_for_exec(theirs, VMGR_NETADM_FD) < 0)
                        _exit(127);
                execl(path, path, (char *) NULL);
                fprintf(stderr, "vmgr-netadm-call: cannot execute %s: %m\n", path);
                _exit(127);
        }

        *ret_pid = pid;
        *ret_fd = TAKE_FD(ours);
        return 0;

fail:
        r = negative_errno();
        vmgr_print_error(r, "vmgr-netadm-call: cannot start %s: %m", path);
        return r;
}

/* Close our end so the helper sees EOF, and wait for it. Returns its wait status or -errno. */
static int helper_finish(pid_t pid, int *fd) {
        int status;

        *fd = safe_close(*fd);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return status;
}

/* Send len bytes as one datagram (with send_fd attached when >= 0), then
 * receive and validate the reply. Returns 0 with the reply and any attached
 * fd (-EBADF if none), -ECONNRESET when the helper closed without replying,
 * or -errno. */
static int request_exchange(int sock, const void *buf, size_t len, int send_fd, struct vmgr_netadm_reply *ret,
                            int *ret_fd) {
        struct vmgr_netadm_reply rep = {};
        _cleanup_close_ int fd = -EBADF;
        int n;

        n = vmgr_datagram_send(sock, buf, len, send_fd);
        if (n < 0)
                return n;
        /* More than one fd, or anything else attached, is a protocol error. */
        n = vmgr_datagram_receive(sock, &rep, sizeof(rep), 0, &fd, NULL);
        if (n < 0)
                return n;
        if (n == 0)
                return -ECONNRESET;
        if (vmgr_netadm_reply_validate(&rep, (size_t) n) < 0 || (rep.has_fd == 1) != (fd >= 0))
                return -EBADMSG;

        *ret = rep;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Fill a request without validating it: the helper must do that. Returns 0,
 * or -EINVAL when a string does not fit its field. */
static int request_build(struct vmgr_netadm_request *req, unsigned op, uint32_t serial, const char *group,
                         const char *vm, unsigned nic, const char *dir) {
        struct vmgr_netadm_request r = {
                .magic = VMGR_NETADM_MAGIC,
                .version = VMGR_NETADM_VERSION,
                .op = (uint16_t) op,
                .serial = serial,
                .nic = nic,
        };

        /* A string as long as its field goes in without its NUL: the helper must catch that too. */
        if ((group && strlen(group) > sizeof(r.group)) || (vm && strlen(vm) > sizeof(r.vm)) ||
            (dir && strlen(dir) > sizeof(r.dir)))
                return -EINVAL;
        if (group)
                memcpy(r.group, group, strlen(group));
        if (vm)
                memcpy(r.vm, vm, strlen(vm));
        if (dir)
                memcpy(r.dir, dir, strlen(dir));
        *req = r;
        return 0;
}

/* Check that pidfd refers to pid, via /proc/self/fdinfo and a null signal.
 * Returns 0 or -errno. */
static int pidfd_verify(int pidfd, pid_t pid) {
        char path[64], line[256];
        _cleanup_fclose_ FILE *f = NULL;
        long fd_pid = -1;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pid: %ld", &fd_pid) == 1)
                        break;
        if (fd_pid != (long) pid)
                return -ESRCH;
        if (pidfd_send_signal(pidfd, 0, NULL, 0) < 0)
                return negative_errno();
        return 0;
}

/* The parent pid of pid from /proc. Returns it or -errno. */
static pid_t parent_of(pid_t pid) {
        char path[64], buf[512], *p;
        _cleanup_fclose_ FILE *f = NULL;
        int ppid;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                return -ESRCH;
        /* The command name may contain anything: parse after its last ')'. */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
                return -EBADMSG;
        return ppid;
}

/* Wait for a child via its pidfd and return its wait status, or -errno. */
static int pidfd_wait(int pidfd) {
        siginfo_t si = {};

        while (waitid((idtype_t) P_PIDFD, (id_t) pidfd, &si, WEXITED) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

static const char *errno_name(int error) {
        const char *s = strerrorname_np(error);
        return s ? s : "E?";
}

/* Print a reply. Returns the exit status for it. */
static int reply_print(const struct vmgr_netadm_reply *rep) {
        if (rep->error == 0) {
                printf("ok%s%s\n", rep->message[0] ? ": " : "", rep->message);
                return 0;
        }
        printf("error %s: %s\n", errno_name(-rep->error), rep->message);
        return EXIT_ERROR_REPLY;
}

/* After a successful DNSMASQ_START or GROUP_START: check the pidfd and that dnsmasq is our
 * child, then with --wait supervise it. Returns an exit status. */
static int dnsmasq_follow(const struct call_args *a, const struct vmgr_netadm_reply *rep, int pidfd) {
        pid_t ppid;
        int r;

        r = pidfd_verify(pidfd, rep->pid);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-netadm-call: the pidfd does not refer to pid %d: %m", rep->pid);
                return EXIT_USAGE;
        }
        ppid = parent_of(rep->pid);
        if (ppid != getpid()) {
                fprintf(stderr, "vmgr-netadm-call: dnsmasq %d has parent %d, not the caller %d\n", rep->pid,
                        (int) ppid, (int) getpid());
                return EXIT_USAGE;
        }
        printf("dnsmasq pid %d, pidfd ok, child of the caller\n", rep->pid);
        fflush(stdout);
        if (!a->wait)
                return 0;
        r = pidfd_wait(pidfd);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-netadm-call: waiting for dnsmasq: %m");
                return EXIT_USAGE;
        }
        printf("dnsmasq exited with status %d\n", r);
        return 0;
}

/* Parse a file of hex digits (whitespace ignored) into buf. Returns the length or -errno. */
static int hexfile_read(const char *path, uint8_t *buf, size_t size) {
        _cleanup_fclose_ FILE *f = NULL;
        size_t n = 0;
        int c, hi = -1;

        f = streq(path, "-") ? fdopen(dup(STDIN_FILENO), "r") : fopen(path, "re");
        if (!f)
                return negative_errno();
        while ((c = fgetc(f)) != EOF) {
                int v;

                if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                        continue;
                if (c >= '0' && c <= '9')
                        v = c - '0';
                else if (c >= 'a' && c <= 'f')
                        v = c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                        v = c - 'A' + 10;
                else
                        return -EINVAL;
                if (hi < 0) {
                        hi = v;
                        continue;
                }
                if (n >= size)
                        return -E2BIG;
                buf[n++] = (uint8_t) (hi << 4 | v);
                hi = -1;
        }
        if (hi >= 0)
                return -EINVAL;
        return (int) n;
}

/* Build the malformed datagram named kind. Returns its length (and *ret_fd
 * for "with-fd"), or -EINVAL for an unknown kind. */
static int garbage_build(const char *kind, const char *group, uint8_t *buf, size_t size, int *ret_fd) {
        struct vmgr_netadm_request req;
        size_t len = sizeof(req);

        if (size < sizeof(req) + 64 || request_build(&req, VMGR_NETADM_GROUP_CREATE, 7, group, NULL, 0, NULL) < 0)
                return -EINVAL;

        if (streq(kind, "truncated"))
                len = sizeof(req) / 2;
        else if (streq(kind, "oversize"))
                len = sizeof(req) + 64;
        else if (streq(kind, "bad-magic"))
                req.magic ^= 1;
        else if (streq(kind, "bad-version"))
                req.version = VMGR_NETADM_VERSION + 1;
        else if (streq(kind, "bad-op"))
                req.op = 99;
        else if (streq(kind, "dirty-field"))
                req.group[sizeof(req.group) - 1] = 'x'; /* junk after the terminating NUL */
        else if (streq(kind, "with-fd")) {
                *ret_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (*ret_fd < 0)
                        return negative_errno();
        } else
                return -EINVAL;

        memset(buf, 0xa5, size);
        memcpy(buf, &req, sizeof(req));
        return (int) len;
}

/* Send one datagram, print the reply and check the helper's exit. Returns an exit status. */
static int call_once(const struct call_args *a, const void *buf, size_t len, int send_fd, uint32_t serial) {
        struct vmgr_netadm_reply rep;
        _cleanup_close_ int sock = -EBADF, fd = -EBADF;
        double t0, t1, t2;
        pid_t helper;
        int r, status, ret;

        t0 = now_ms();
        r = helper_spawn(a->helper, &helper, &sock);
        if (r < 0)
                return EXIT_USAGE;
        /* Helpers started one by one send together: the request waits for the file. */
        while (a->send_after && access(a->send_after, F_OK) < 0)
                (void) usleep(500);
        t1 = now_ms();
        r = request_exchange(sock, buf, len, send_fd, &rep, &fd);
        t2 = now_ms();
        if (r < 0) {
                status = helper_finish(helper, &sock);
                if (r == -ECONNRESET || r == -EPIPE)
                        fprintf(stderr, "vmgr-netadm-call: the helper closed the connection without replying");
                else {
                        errno = -r; /* for %m: the line goes on below */
                        fprintf(stderr, "vmgr-netadm-call: no valid reply: %m");
                }
                if (status >= 0 && WIFEXITED(status))
                        fprintf(stderr, " (it exited with status %d)\n", WEXITSTATUS(status));
                else
                        fprintf(stderr, " (it was killed by signal %d)\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                return EXIT_USAGE;
        }
        if (rep.serial != serial) {
                fprintf(stderr, "vmgr-netadm-call: reply serial %" PRIu32 " does not match %" PRIu32 "\n", rep.serial,
                        serial);
                return EXIT_USAGE;
        }

        ret = reply_print(&rep);
        fflush(stdout);
        status = helper_finish(helper, &sock);
        if (status < 0 || !WIFEXITED(status)) {
                fprintf(stderr, "vmgr-netadm-call: the helper did not exit normally\n");
                return EXIT_USAGE;
        }
        if (WEXITSTATUS(status) != 0)
                printf("helper exited with status %d\n", WEXITSTATUS(status));
        else if (rep.error == -EBADMSG) {
                /* A helper that keeps talking to a peer that sent garbage is a bug. */
                fprintf(stderr, "vmgr-netadm-call: the helper exited 0 after rejecting a malformed request\n");
                return EXIT_USAGE;
        }
        if (a->time)
                printf("time: %.3f ms request round trip, %.3f ms including helper start\n", t2 - t1, t2 - t0);

        if (ret == 0 && (a->op == VMGR_NETADM_DNSMASQ_START || a->op == VMGR_NETADM_GROUP_START) && fd >= 0)
                return dnsmasq_follow(a, &rep, fd);
        return ret;
}

/* One request on an open connection for the benchmark. Returns the round
 * trip in ms, or a negative value after printing the failure. */
static double bench_request(int sock, unsigned op, const char *group, const char *vm, unsigned nic, const char *dir,
                            uint32_t serial) {
        struct vmgr_netadm_request req;
        struct vmgr_netadm_reply rep;
        _cleanup_close_ int fd = -EBADF;
        double t0 = now_ms(), t;
        int r;

        if (request_build(&req, op, serial, group, vm, nic, dir) < 0)
                return -1;
        r = request_exchange(sock, &req, sizeof(req), -EBADF, &rep, &fd);
        t = now_ms() - t0;
        if (r < 0) {
                vmgr_print_error(r, "vmgr-netadm-call: %s: %m", vmgr_netadm_op_to_string(op));
                return -1;
        }
        if (rep.error < 0) {
                fprintf(stderr, "vmgr-netadm-call: %s: %s: %s\n", vmgr_netadm_op_to_string(op),
                        errno_name(-rep.error), rep.message);
                return -1;
        }
        if (op == VMGR_NETADM_DNSMASQ_START) {
                /* Stop it at once, as vmgrd does at group deletion; we are its subreaper. */
                (void) pidfd_send_signal(fd, SIGTERM, NULL, 0);
                (void) pidfd_wait(fd);
        }
        return t;
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

/* Print median, min and max of n samples in ms. */
static void bench_print(const char *what, double *v, unsigned n) {
        qsort(v, n, sizeof(double), compare_double);
        printf("%-28s median %8.3f ms  min %8.3f ms  max %8.3f ms\n", what, v[n / 2], v[0], v[n - 1]);
}

/* Repeat a group's whole life on one helper connection and print timings. Returns an exit status. */
static int bench(const struct call_args *a) {
        enum { B_START, B_CREATE, B_TAP, B_TAP4, B_DNSMASQ, B_TAPDEL, B_DELETE, B_CYCLE, _B_MAX };
        static const char *const names[_B_MAX] = {
                "helper start + group-create", "group-create", "tap-create primary", "tap-create ipv4",
                "dnsmasq-start", "tap-delete primary", "group-delete", "whole cycle",
        };
        _cleanup_free_ double *samples = NULL;
        _cleanup_close_ int sock = -EBADF;
        uint32_t serial = 0;
        pid_t helper;
        int r, status;

        samples = calloc((size_t) a->bench * _B_MAX, sizeof(double));
        if (!samples)
                return EXIT_USAGE;
#define SAMPLE(k, i) samples[(size_t) (k) * a->bench + (i)]

        for (unsigned i = 0; i < a->bench; i++) {
                double t0 = now_ms(), t;

                r = helper_spawn(a->helper, &helper, &sock);
                if (r < 0)
                        return EXIT_USAGE;
                struct {
                        int which;
                        unsigned op;
                        const char *vm;
                        unsigned nic;
                        const char *dir;
                } steps[] = {
                        { B_CREATE, VMGR_NETADM_GROUP_CREATE, NULL, 0, NULL },
                        { B_TAP, VMGR_NETADM_TAP_CREATE, "vm0", VMGR_NIC_PRIMARY, NULL },
                        { B_TAP4, VMGR_NETADM_TAP_CREATE, "vm0", VMGR_NIC_IPV4, NULL },
                        { B_DNSMASQ, VMGR_NETADM_DNSMASQ_START, NULL, 0, a->dir },
                        { B_TAPDEL, VMGR_NETADM_TAP_DELETE, "vm0", VMGR_NIC_PRIMARY, NULL },
                        { B_DELETE, VMGR_NETADM_GROUP_DELETE, NULL, 0, NULL },
                };
                for (size_t s = 0; s < ELEMENTSOF(steps); s++) {
                        if (steps[s].op == VMGR_NETADM_DNSMASQ_START && !a->dir)
                                continue;
                        t = bench_request(sock, steps[s].op, a->group, steps[s].vm, steps[s].nic, steps[s].dir,
                                          ++serial);
                        if (t < 0) {
                                (void) helper_finish(helper, &sock);
                                return EXIT_ERROR_REPLY;
                        }
                        SAMPLE(steps[s].which, i) = t;
                        if (steps[s].which == B_CREATE)
                                SAMPLE(B_START, i) = now_ms() - t0;
                }
                status = helper_finish(helper, &sock);
                if (status != 0) {
                        fprintf(stderr, "vmgr-netadm-call: the helper exited with wait status %d\n", status);
                        return EXIT_USAGE;
                }
                SAMPLE(B_CYCLE, i) = now_ms() - t0;
        }

        printf("%u cycles of group '%s' on one helper each:\n", a->bench, a->group);
        for (int k = 0; k < _B_MAX; k++)
                if (k != B_DNSMASQ || a->dir)
                        bench_print(names[k], &SAMPLE(k, 0), a->bench);
#undef SAMPLE
        return 0;
}


/* Parse "ADDR/LEN" of family into addr and len. Returns 0 or -EINVAL. */
static int prefix_parse(int family, const char *s, void *addr, unsigned *len) {
        char buf[INET6_ADDRSTRLEN];
        const char *slash = strchr(s, '/');

        if (!slash || (size_t) (slash - s) >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, (size_t) (slash - s));
        buf[slash - s] = 0;
        if (inet_pton(family, buf, addr) != 1 ||
            vmgr_parse_uint(slash + 1, 0, family == AF_INET ? 32 : 128, len) < 0)
                return -EINVAL;
        return 0;
}

/* Brute-force a group name of uid's, as an attacker would: with
 * --search-subnet4 one whose /24 covers the address, with --search-prefix6
 * one whose /64 lies in the prefix. lib's derivation, so the search follows
 * whatever the formula is. Prints the name. Returns an exit status. */
static int search(const struct call_args *a) {
        struct in_addr target4;
        struct in6_addr target6;
        unsigned len6 = 0;
        char name[VMGR_NAME_MAX + 1];

        if (a->search_subnet4 && inet_pton(AF_INET, a->search_subnet4, &target4) != 1) {
                fprintf(stderr, "vmgr-netadm-call: '%s' is not an IPv4 address\n", a->search_subnet4);
                return EXIT_USAGE;
        }
        if (a->search_prefix6 && (prefix_parse(AF_INET6, a->search_prefix6, &target6, &len6) < 0 || len6 > 64)) {
                fprintf(stderr, "vmgr-netadm-call: '%s' is not an IPv6 prefix of at most 64 bits\n",
                        a->search_prefix6);
                return EXIT_USAGE;
        }
        for (unsigned i = 0; i < SEARCH_MAX; i++) {
                struct vmgr_group_addrs g;

                snprintf(name, sizeof(name), "hijack-%u", i);
                if (vmgr_group_addrs_derive(a->uid, name, &g) < 0)
                        return EXIT_USAGE;
                if (a->search_subnet4 ? vmgr_in4_prefix_overlaps(&g.subnet4, 24, &target4, 32)
                                      : vmgr_in6_prefix_overlaps(&g.prefix6, 64, &target6, len6)) {
                        printf("%s\n", name);
                        return 0;
                }
        }
        fprintf(stderr, "vmgr-netadm-call: no name found in %u tries\n", SEARCH_MAX);
        return EXIT_ERROR_REPLY;
}

static void help(void) {
        printf("Usage: vmgr-netadm-call [OPTIONS] HELPER OP GROUP [VM [NIC]] [DIR]\n"
               "       vmgr-netadm-call --raw HEXFILE HELPER\n"
               "       vmgr-netadm-call --garbage KIND HELPER [GROUP]\n"
               "       vmgr-netadm-call --bench N HELPER GROUP [DIR]\n"
               "       vmgr-netadm-call [--uid UID] --search-subnet4 ADDR | --search-prefix6 PREFIX/LEN\n\n"
               "Spawn HELPER with a socketpair on fd 3, send one request, print the reply.\n"
               "OP: group-create GROUP | group-delete GROUP | tap-create GROUP VM [primary|ipv4]\n"
               "    | tap-delete GROUP VM [primary|ipv4] | dnsmasq-start GROUP DIR | group-start GROUP DIR\n"
               "KIND: truncated, oversize, bad-magic, bad-version, bad-op, dirty-field, with-fd\n\n"
               "  --time          print the request's round trip time\n"
               "  --wait          after dnsmasq-start or group-start, wait for dnsmasq to exit (we are its subreaper)\n"
               "  --field-vm S    put S into the VM field whatever the operation\n"
               "  --field-dir S   put S into the directory field whatever the operation\n"
               "  --field-nic N   put N into the NIC field whatever the operation\n"
               "  --send-after FILE        start the helper, send the request once FILE exists\n"
               "  --search-subnet4 ADDR    print a group name whose /24 covers ADDR (for UID, default ours)\n"
               "  --search-prefix6 P/LEN   print a group name whose /64 lies in P/LEN\n"
               "Exit status: 0 success reply, 1 error reply, 2 usage or transport error.\n");
}

static int parse_nic(const char *s, unsigned *ret) {
        if (streq(s, "primary"))
                *ret = VMGR_NIC_PRIMARY;
        else if (streq(s, "ipv4"))
                *ret = VMGR_NIC_IPV4;
        else
                return -EINVAL;
        return 0;
}

/* Parse the command line into a. Returns 1 to go on, 0 to exit 0, -EINVAL on misuse. */
static int parse_argv(int argc, char *argv[], struct call_args *a) {
        enum {
                ARG_TIME = 0x100,
                ARG_WAIT,
                ARG_RAW,
                ARG_GARBAGE,
                ARG_BENCH,
                ARG_VM,
                ARG_DIR,
                ARG_NIC,
                ARG_UID,
                ARG_SEARCH4,
                ARG_SEARCH6,
                ARG_SEND_AFTER,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "time", no_argument, NULL, ARG_TIME },
                { "wait", no_argument, NULL, ARG_WAIT },
                { "raw", required_argument, NULL, ARG_RAW },
                { "garbage", required_argument, NULL, ARG_GARBAGE },
                { "bench", required_argument, NULL, ARG_BENCH },
                { "field-vm", required_argument, NULL, ARG_VM },
                { "field-dir", required_argument, NULL, ARG_DIR },
                { "field-nic", required_argument, NULL, ARG_NIC },
                { "uid", required_argument, NULL, ARG_UID },
                { "search-subnet4", required_argument, NULL, ARG_SEARCH4 },
                { "search-prefix6", required_argument, NULL, ARG_SEARCH6 },
                { "send-after", required_argument, NULL, ARG_SEND_AFTER },
                {},
        };
        const char *field_vm = NULL, *field_dir = NULL;
        long field_nic = -1;
        char **pos;
        int c, npos;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_TIME:
                        a->time = true;
                        break;
                case ARG_WAIT:
                        a->wait = true;
                        break;
                case ARG_RAW:
                        a->raw = optarg;
                        break;
                case ARG_GARBAGE:
                        a->garbage = optarg;
                        break;
                case ARG_BENCH:
                        if (vmgr_parse_uint(optarg, 1, BENCH_MAX, &a->bench) < 0)
                                return -EINVAL;
                        break;
                case ARG_VM:
                        field_vm = optarg;
                        break;
                case ARG_DIR:
                        field_dir = optarg;
                        break;
                case ARG_NIC:
                        field_nic = strtol(optarg, NULL, 0);
                        break;
                case ARG_UID:
                        if (vmgr_parse_uint(optarg, 0, UINT32_MAX - 1, &a->uid) < 0)
                                return -EINVAL;
                        break;
                case ARG_SEARCH4:
                        a->search_subnet4 = optarg;
                        break;
                case ARG_SEARCH6:
                        a->search_prefix6 = optarg;
                        break;
                case ARG_SEND_AFTER:
                        a->send_after = optarg;
                        break;
                default:
                        return -EINVAL;
                }

        pos = argv + optind;
        npos = argc - optind;
        if (a->search_subnet4 || a->search_prefix6)
                return npos == 0 && !(a->search_subnet4 && a->search_prefix6) ? 1 : -EINVAL;
        if (npos < 1)
                return -EINVAL;
        a->helper = pos[0];

        if (a->raw)
                return npos == 1 ? 1 : -EINVAL;
        if (a->garbage) {
                if (npos > 2)
                        return -EINVAL;
                a->group = npos == 2 ? pos[1] : "g";
                return 1;
        }
        if (a->bench) {
                if (npos < 2 || npos > 3)
                        return -EINVAL;
                a->group = pos[1];
                a->dir = npos == 3 ? pos[2] : NULL;
                return 1;
        }

        if (npos < 3)
                return -EINVAL;
        a->op = 0;
        for (unsigned op = 1; op < _VMGR_NETADM_OP_MAX; op++)
                if (vmgr_netadm_op_to_string(op) && streq(vmgr_netadm_op_to_string(op), pos[1]))
                        a->op = op;
        if (a->op == 0) {
                fprintf(stderr, "vmgr-netadm-call: unknown operation '%s'\n", pos[1]);
                return -EINVAL;
        }
        a->group = pos[2];
        switch (a->op) {
        case VMGR_NETADM_TAP_CREATE:
        case VMGR_NETADM_TAP_DELETE:
                if (npos < 4 || npos > 5)
                        return -EINVAL;
                a->vm = pos[3];
                if (npos == 5 && parse_nic(pos[4], &a->nic) < 0)
                        return -EINVAL;
                break;
        case VMGR_NETADM_DNSMASQ_START:
        case VMGR_NETADM_GROUP_START:
                if (npos != 4)
                        return -EINVAL;
                a->dir = pos[3];
                break;
        default:
                if (npos != 3)
                        return -EINVAL;
        }
        if (field_vm)
                a->vm = field_vm;
        if (field_dir)
                a->dir = field_dir;
        if (field_nic >= 0)
                a->nic = (unsigned) field_nic;
        return 1;
}

int main(int argc, char *argv[]) {
        struct call_args a = { .uid = getuid() };
        uint8_t buf[RAW_MAX];
        _cleanup_close_ int send_fd = -EBADF;
        struct vmgr_netadm_request req;
        int r, len;

        r = parse_argv(argc, argv, &a);
        if (r == 0)
                return 0;
        if (r < 0) {
                fprintf(stderr, "vmgr-netadm-call: invalid arguments; see --help\n");
                return EXIT_USAGE;
        }

        if (a.search_subnet4 || a.search_prefix6)
                return search(&a);

        /* We wait for the helper and dnsmasq: an inherited SIG_IGN would reap them for us. */
        signal(SIGCHLD, SIG_DFL);

        /* Like vmgrd: a dnsmasq the helper starts is re-parented to us. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
                fprintf(stderr, "vmgr-netadm-call: PR_SET_CHILD_SUBREAPER: %m\n");
                return EXIT_USAGE;
        }

        if (a.bench)
                return bench(&a);

        if (a.raw) {
                len = hexfile_read(a.raw, buf, sizeof(buf));
                if (len < 0) {
                        vmgr_print_error(len, "vmgr-netadm-call: cannot read hex bytes from %s: %m", a.raw);
                        return EXIT_USAGE;
                }
                /* The helper echoes the serial when the bytes reach that far. */
                uint32_t serial = 0;
                if ((size_t) len >= offsetof(struct vmgr_netadm_request, nic))
                        memcpy(&serial, buf + offsetof(struct vmgr_netadm_request, serial), sizeof(serial));
                return call_once(&a, buf, (size_t) len, -EBADF, serial);
        }
        if (a.garbage) {
                len = garbage_build(a.garbage, a.group, buf, sizeof(buf), &send_fd);
                if (len < 0) {
                        fprintf(stderr, "vmgr-netadm-call: unknown garbage kind '%s'\n", a.garbage);
                        return EXIT_USAGE;
                }
                return call_once(&a, buf, (size_t) len, send_fd, 7);
        }

        if (request_build(&req, a.op, 1, a.group, a.vm, a.nic, a.dir) < 0) {
                fprintf(stderr, "vmgr-netadm-call: an argument is too long for its field\n");
                return EXIT_USAGE;
        }
        return call_once(&a, &req, sizeof(req), -EBADF, 1);
}
