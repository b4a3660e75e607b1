/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-netadm: the privileged network helper of vmgrd.
 *
 * It runs with the caller's uid and three file capabilities (NET_ADMIN,
 * NET_RAW, NET_BIND_SERVICE), never setuid. vmgrd starts one helper and sends
 * fixed-size requests over a SOCK_SEQPACKET socket on fd 3
 * (lib/netadm-proto.h). The helper trusts nothing it is sent: each request
 * is validated byte for byte, names are re-derived into link names and
 * addresses here, and links are changed only when tagged with the caller's
 * uid. A peer that sends one malformed message gets an error and the helper
 * exits: it is not trusted with a second one.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "caps.h"
#include "dnsmasq.h"
#include "firewall.h"
#include "fd-util.h"
#include "macro.h"
#include "message.h"
#include "netadm-proto.h"
#include "netlink.h"
#include "policy.h"
#include "userns.h"
#include "vmgr-config.h"

#define NETADM_SETCAP_HINT "setcap cap_net_admin,cap_net_raw,cap_net_bind_service+ep " VMGR_NETADM_PATH

struct netadm {
        uid_t uid;
        struct netadm_policy policy;
        struct netlink *nl;
};

/* Print a capability's name for messages, e.g. "cap_sys_admin". */
static void cap_describe(cap_value_t c, char *buf, size_t size) {
        char *name = cap_to_name(c);

        snprintf(buf, size, "%s", name ? name : "an unknown capability");
        cap_free(name);
}

/* Make no capability effective, keeping the permitted set: the file
 * capabilities make the three effective at exec, but nothing may run with
 * them until the caller has been checked against the policy (the model is
 * bubblewrap's acquire_privs: check first, then raise). Lowering the
 * effective set never needs a privilege. Returns 0 or -errno. */
static int privileges_lower(void) {
        cap_t caps;
        int r = 0;

        caps = cap_get_proc();
        if (!caps)
                return negative_errno();
        if (cap_clear_flag(caps, CAP_EFFECTIVE) < 0 || cap_set_proc(caps) < 0)
                r = negative_errno();
        cap_free(caps);
        return r;
}

/* Refuse to run with privileges we did not expect: set-ID bits, or
 * capabilities beyond the three for a non-root caller, mean a broken or
 * hostile installation; and the three must be permitted. Looks only, makes
 * nothing effective. Returns 0 or -errno with msg set. */
static int privileges_check(uid_t uid, char *msg) {
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;
        cap_t caps = NULL;
        cap_flag_value_t v;
        char name[64];
        int r = 0;

        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return negative_errno();
        if (ruid != euid || ruid != suid || rgid != egid || rgid != sgid)
                return netadm_fail(msg, -EPERM,
                                   "refusing to run set-user-ID or set-group-ID; "
                                   "install with file capabilities instead: %s",
                                   NETADM_SETCAP_HINT);

        caps = cap_get_proc();
        if (!caps)
                return negative_errno();

        for (cap_value_t c = 0; c < (cap_value_t) cap_max_bits() && r == 0; c++) {
                if (cap_get_flag(caps, c, CAP_PERMITTED, &v) < 0 || v != CAP_SET || netadm_cap_is_needed(c) ||
                    uid == 0)
                        continue;
                cap_describe(c, name, sizeof(name));
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX,
                         "refusing to run with %s; only cap_net_admin, cap_net_raw and cap_net_bind_service are expected",
                         name);
                r = -EPERM;
        }
        for (size_t i = 0; i < ELEMENTSOF(netadm_caps) && r == 0; i++) {
                if (cap_get_flag(caps, netadm_caps[i], CAP_PERMITTED, &v) < 0 || v != CAP_SET) {
                        cap_describe(netadm_caps[i], name, sizeof(name));
                        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "missing %s; give the helper its capabilities with: %s",
                                 name, NETADM_SETCAP_HINT);
                        r = -EPERM;
                }
        }
        cap_free(caps);
        return r;
}

/* Once the caller is checked: keep only the three capabilities and make
 * them effective. Root may run the helper too; it then loses everything
 * else, including from the bounding set. Returns 0 or -errno with msg set. */
static int privileges_raise(char *msg) {
        cap_flag_value_t v;
        bool can_setpcap;
        cap_t caps;
        int r;

        caps = cap_get_proc();
        if (!caps)
                return negative_errno();
        can_setpcap = cap_get_flag(caps, CAP_SETPCAP, CAP_PERMITTED, &v) == 0 && v == CAP_SET;
        /* Only root gets here with CAP_SETPCAP; for anyone else the bounding
         * set does not matter once no-new-privs is set below. Dropping from
         * it needs CAP_SETPCAP effective. */
        if (can_setpcap) {
                const cap_value_t setpcap = CAP_SETPCAP;

                if (cap_set_flag(caps, CAP_EFFECTIVE, 1, &setpcap, CAP_SET) < 0 || cap_set_proc(caps) < 0) {
                        r = negative_errno();
                        cap_free(caps);
                        return r;
                }
        }
        cap_free(caps);

        if (can_setpcap)
                for (cap_value_t c = 0; c < (cap_value_t) cap_max_bits(); c++)
                        if (!netadm_cap_is_needed(c) && prctl(PR_CAPBSET_DROP, (unsigned long) c, 0, 0, 0) < 0 &&
                            errno != EINVAL)
                                return negative_errno();

        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return negative_errno();

        r = netadm_caps_set(false);
        if (r < 0)
                return netadm_fail(msg, r, "cannot raise capabilities: %m");

        /* Nothing we exec (dnsmasq) can gain privileges. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        return 0;
}

/* Check that fd is an AF_UNIX SOCK_SEQPACKET socket and mark it close-on-exec.
 * Returns 0 or -errno. */
static int control_socket_check(int fd) {
        int type = 0, domain = 0;
        socklen_t len = sizeof(type);
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -EBADF;
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return negative_errno();
        len = sizeof(domain);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
                return negative_errno();
        if (type != SOCK_SEQPACKET || domain != AF_UNIX)
                return -EPROTOTYPE;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return negative_errno();
        return 0;
}

/* GROUP_START's dnsmasq, cloned half-way through the network's creation. */
struct group_start {
        const char *group, *dir, *bridge;
        int dir_fd;
        uid_t uid;
        int ifindex;
        struct dnsmasq_child child;
        bool spawned;
};

/* netlink_bridge_made_t: the bridge is the caller's, so its dnsmasq may
 * start; it loads (some milliseconds: exec and its shared libraries) while
 * the rest of the request runs: the checks against the rest of the
 * namespace, the addresses, route and rules. */
static int group_start_bridge_made(int ifindex, void *userdata, char *msg) {
        struct group_start *s = userdata;
        int r;

        r = dnsmasq_spawn(s->group, s->dir, s->dir_fd, s->uid, &s->child, msg);
        if (r < 0)
                return r;
        s->ifindex = ifindex;
        s->spawned = true;
        /* A dnsmasq left serving this name (of any uid that could serve it)
         * would serve the new bridge beside ours: then the group is refused
         * (and the bridge, still down and bare, deleted) before ours even
         * runs. This stands for DNSMASQ_START's check too: the bridge is new. */
        return dnsmasq_check_none_serves(s->bridge, s->child.pid, msg);
}

/* netlink_bridge_undo_t: the bridge is about to be deleted; its dnsmasq
 * goes first, so that it never serves a later link of the same name. */
static void group_start_bridge_undo(void *userdata) {
        struct group_start *s = userdata;

        if (s->spawned)
                dnsmasq_child_kill(&s->child);
}

/* GROUP_START: the checks and work of GROUP_CREATE, with those of
 * DNSMASQ_START (the runtime directory's, here before anything is made),
 * and dnsmasq cloned as soon as the bridge is the caller's. Returns 0 with
 * the pid and pidfd, or -errno with msg after undoing everything (dnsmasq
 * killed and gone first, so nothing serves the bridge once we answer). */
static int group_start(struct netadm *m, const struct vmgr_netadm_request *req, const struct vmgr_group_addrs *g,
                       pid_t *ret_pid, int *ret_fd, char *msg) {
        _cleanup_close_ int dir_fd = -EBADF;
        char ignored[VMGR_NETADM_MESSAGE_MAX];
        struct group_start s = {
                .group = req->group,
                .dir = req->dir,
                .bridge = g->bridge,
                .uid = m->uid,
                .child = { .pidfd = -EBADF, .exec_fd = -EBADF },
        };
        int r;

        r = policy_check_group(&m->policy, g, msg);
        if (r < 0)
                return r;
        dir_fd = dnsmasq_dir_open(req->dir, m->uid, msg);
        if (dir_fd < 0)
                return dir_fd;
        s.dir_fd = dir_fd;
        r = netlink_group_create(m->nl, m->uid, req->group, m->policy.max_groups_per_user, group_start_bridge_made,
                                 group_start_bridge_undo, &s, msg);
        if (r < 0)
                return r; /* dnsmasq (if started) killed and gone, then the network undone */
        /* Guests are untrusted: no isolation, no group. */
        r = firewall_group_create(m->uid, req->group, msg);
        if (r < 0)
                goto fail_network;
        r = dnsmasq_child_wait(&s.child, msg);
        if (r < 0)
                goto fail_firewall;
        /* A GROUP_DELETE (another helper of the caller's) may have deleted
         * the bridge meanwhile, before our dnsmasq was there to be found and
         * stopped: then it must not live on. */
        r = netlink_bridge_check_owner(m->nl, m->uid, req->group, msg);
        if (r != s.ifindex) {
                r = netadm_fail(msg, -ENODEV, "bridge %s of group '%s' went away while its dnsmasq started",
                                g->bridge, req->group);
                goto fail_firewall;
        }
        snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "created bridge %s for group '%s' and started its dnsmasq", g->bridge,
                 req->group);
        *ret_pid = s.child.pid;
        *ret_fd = s.child.pidfd;
        return 0;

fail_firewall:
        dnsmasq_child_kill(&s.child);
        (void) firewall_group_delete(m->uid, req->group, ignored);
fail_network:
        dnsmasq_child_kill(&s.child);
        (void) netlink_group_delete(m->nl, m->uid, req->group, ignored);
        return r;
}

/* Carry out one valid request. Returns 0 or -errno with rep->message set;
 * for DNSMASQ_START and GROUP_START also sets rep->pid and *ret_fd. */
static int request_handle(struct netadm *m, const struct vmgr_netadm_request *req, struct vmgr_netadm_reply *rep,
                          int *ret_fd) {
        char *msg = rep->message;
        struct vmgr_group_addrs g;
        int r;

        /* Every request names a group (validated); its names and addresses
         * are the caller's uid's. */
        r = vmgr_group_addrs_derive(m->uid, req->group, &g);
        if (r < 0)
                return r;

        switch (req->op) {
        case VMGR_NETADM_GROUP_CREATE:
                r = policy_check_group(&m->policy, &g, msg);
                if (r < 0)
                        return r;
                /* A dnsmasq left serving this name would serve the new bridge. */
                r = dnsmasq_check_none_serves(g.bridge, 0, msg);
                if (r < 0)
                        return r;
                r = netlink_group_create(m->nl, m->uid, req->group, m->policy.max_groups_per_user, NULL, NULL, NULL,
                                         msg);
                if (r < 0)
                        return r;
                /* Guests are untrusted: no isolation, no group. */
                r = firewall_group_create(m->uid, req->group, msg);
                if (r < 0) {
                        char ignored[VMGR_NETADM_MESSAGE_MAX];

                        (void) netlink_group_delete(m->nl, m->uid, req->group, ignored);
                        return r;
                }
                snprintf(msg, VMGR_NETADM_MESSAGE_MAX, "created bridge %s for group '%s'", g.bridge, req->group);
                return 0;

        case VMGR_NETADM_GROUP_DELETE:
                r = firewall_group_delete(m->uid, req->group, msg);
                if (r < 0)
                        return r;
                r = netlink_group_delete(m->nl, m->uid, req->group, msg);
                if (r < 0)
                        return r;
                /* The group's dnsmasq must not outlive its bridge and serve a
                 * later one of the same name. After the bridge is gone, so
                 * that a DNSMASQ_START racing with us either sees the bridge
                 * vanish or has a dnsmasq that we find here. */
                r = dnsmasq_stop_serving(g.bridge, m->uid, msg);
                return r < 0 ? r : 0;

        case VMGR_NETADM_TAP_CREATE:
                return netlink_tap_create(m->nl, m->uid, req->group, req->vm, (enum vmgr_nic) req->nic,
                                          m->policy.max_taps_per_group, msg);

        case VMGR_NETADM_TAP_DELETE:
                return netlink_tap_delete(m->nl, m->uid, req->group, req->vm, (enum vmgr_nic) req->nic, msg);

        case VMGR_NETADM_DNSMASQ_START: {
                int fd, ifindex;
                pid_t pid;

                /* dnsmasq serves the bridge with the caller's uid: the bridge must be the caller's. */
                ifindex = netlink_bridge_check_owner(m->nl, m->uid, req->group, msg);
                if (ifindex < 0)
                        return ifindex;
                /* One dnsmasq per bridge. */
                r = dnsmasq_check_none_serves(g.bridge, 0, msg);
                if (r < 0)
                        return r;
                r = dnsmasq_start(req->group, req->dir, m->uid, &pid, &fd, msg);
                if (r < 0)
                        return r;
                /* A GROUP_DELETE (another helper of the caller's) may have
                 * deleted the bridge meanwhile, before our dnsmasq was there
                 * to be found and stopped: then it must not live on. */
                r = netlink_bridge_check_owner(m->nl, m->uid, req->group, msg);
                if (r != ifindex) {
                        (void) pidfd_send_signal(fd, SIGKILL, NULL, 0);
                        fd = safe_close(fd);
                        return netadm_fail(msg, -ENODEV, "bridge %s of group '%s' went away while its dnsmasq started",
                                           g.bridge, req->group);
                }
                rep->pid = pid;
                *ret_fd = fd;
                return 0;
        }

        case VMGR_NETADM_GROUP_START: {
                pid_t pid = 0;

                r = group_start(m, req, &g, &pid, ret_fd, msg);
                if (r < 0)
                        return r;
                rep->pid = pid;
                return 0;
        }

        case VMGR_NETADM_OUTBOUND_ENABLE:
                /* Only the caller's own bridge; the firewall refuses in host mode. */
                r = netlink_bridge_check_owner(m->nl, m->uid, req->group, msg);
                if (r < 0)
                        return r;
                return firewall_outbound_enable(m->uid, req->group, msg);
        }
        return netadm_fail(msg, -EOPNOTSUPP, "unknown operation %u", (unsigned) req->op);
}

/* Read requests from the socket until EOF. Returns 0 at EOF, or -errno when
 * the peer sent a malformed message (after answering it) or the socket failed. */
static int request_loop(struct netadm *m, int sock) {
        for (;;) {
                struct vmgr_netadm_request req = {};
                struct vmgr_netadm_reply rep = {
                        .magic = VMGR_NETADM_MAGIC,
                        .version = VMGR_NETADM_VERSION,
                };
                _cleanup_close_ int fd = -EBADF;
                const char *reason = NULL;
                bool refused;
                int n, r;

                /* No fd is accepted: the kernel closes any that is sent, and
                 * refused says that one came. */
                n = vmgr_datagram_receive(sock, &req, sizeof(req), 0, NULL, &refused);
                if (n < 0) {
                        vmgr_print_error(n, "vmgr-netadm: reading a request: %m");
                        return n;
                }
                if (n == 0)
                        return 0;

                if (refused)
                        reason = "request carries ancillary data";
                else
                        (void) vmgr_netadm_request_validate(&req, (size_t) n, &reason);
                if (reason) {
                        rep.serial = (size_t) n >= offsetof(struct vmgr_netadm_request, nic) ? req.serial : 0;
                        rep.error = -EBADMSG;
                        snprintf(rep.message, sizeof(rep.message), "invalid request: %s", reason);
                        fprintf(stderr, "vmgr-netadm: %s; closing the connection\n", rep.message);
                        (void) vmgr_datagram_send(sock, &rep, sizeof(rep), -EBADF);
                        return -EBADMSG;
                }

                rep.serial = req.serial;
                r = request_handle(m, &req, &rep, &fd);
                if (r < 0) {
                        rep.error = r;
                        if (!rep.message[0])
                                (void) netadm_fail(rep.message, r, "%m");
                        fprintf(stderr, "vmgr-netadm: %s '%s'%s%s failed: %s\n", vmgr_netadm_op_to_string(req.op),
                                req.group, req.vm[0] ? " VM " : "", req.vm, rep.message);
                } else
                        rep.has_fd = fd >= 0;

                /* Rebuilt from its fields: a message written twice leaves
                 * the longer one's tail after the NUL, which vmgrd refuses. */
                r = vmgr_netadm_reply_init(&rep, rep.serial, rep.error, rep.pid, rep.has_fd, rep.message);
                if (r < 0) {
                        vmgr_print_error(r, "vmgr-netadm: building the reply to %s: %m",
                                         vmgr_netadm_op_to_string(req.op));
                        return r;
                }
                r = vmgr_datagram_send(sock, &rep, sizeof(rep), fd);
                if (r < 0) {
                        vmgr_print_error(r, "vmgr-netadm: sending a reply: %m");
                        return r;
                }
        }
}

/* Default dispositions for SIGCHLD and SIGTERM, nothing blocked. */
static void signals_reset(void) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t none;

        (void) sigaction(SIGCHLD, &sa, NULL);
        (void) sigaction(SIGTERM, &sa, NULL);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
}

static void help(void) {
        printf("Usage: vmgr-netadm [--check | --version | --help]\n\n"
               "vmgr's privileged network helper. vmgrd starts it with a socket on fd %d;\n"
               "it is not meant to be run by hand.\n\n"
               "  --check   say whether the helper would work for the calling user in this\n"
               "            network namespace (host mode), and exit 0 if so, 1 if not\n",
               VMGR_NETADM_FD);
}

static bool arg_check;

/* Handle the command line. Returns 1 to go on, 0 to exit successfully, -EINVAL on misuse. */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "check", no_argument, NULL, 'c' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("vmgr-netadm %s\n", VMGR_VERSION);
                        return 0;
                case 'c':
                        arg_check = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "vmgr-netadm: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        struct netadm m = { .uid = getuid() };
        char msg[VMGR_NETADM_MESSAGE_MAX] = "";
        pid_t parent = getppid();
        bool namespace_mode;
        int r;

        /* First of all: nothing runs with an effective capability until
         * the policy and the caller have been checked below. */
        r = privileges_lower();
        if (r < 0) {
                vmgr_print_error(r, "vmgr-netadm: cannot clear the effective capabilities: %m");
                return 1;
        }
        /* Our memory will hold capabilities: keep the caller from attaching a
         * debugger or reading it through /proc. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return 1;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 1 : 0;

        /* Where are we? In the initial user namespace our capabilities act
         * on the host's network, under the administrator's policy. In a user
         * namespace of vmgrd's own (namespace mode) they act only on
         * namespaces that user namespace owns, which the user may change
         * anyway: no policy applies there, and none is needed. */
        r = vmgr_userns_is_initial();
        if (r < 0) {
                vmgr_print_error(r, "vmgr-netadm: cannot tell which user namespace this is: %m");
                return 1;
        }
        namespace_mode = r == 0;
        if (arg_check && namespace_mode) {
                fprintf(stderr, "vmgr-netadm: not in the initial user namespace: host mode is not available here\n");
                return 1;
        }

        if (!arg_check) {
                r = control_socket_check(VMGR_NETADM_FD);
                if (r < 0) {
                        vmgr_print_error(r,
                                         "vmgr-netadm: fd %d is not a SOCK_SEQPACKET socket (%m).\n"
                                         "vmgr-netadm is started by vmgrd with a socket on fd %d and is not meant to be "
                                         "run by hand.",
                                         VMGR_NETADM_FD, VMGR_NETADM_FD);
                        return 1;
                }
                /* Only stdio and the control socket are meant for us. */
                (void) close_range(VMGR_NETADM_FD + 1, ~0U, 0);
        }
        /* Ignored and blocked signals survive exec: an ignored SIGCHLD would
         * make waitpid() of the dnsmasq intermediate fail, a blocked SIGTERM
         * would defeat the parent-death signal below. */
        signals_reset();

        r = privileges_check(m.uid, msg);
        if (r < 0) {
                if (msg[0])
                        fprintf(stderr, "vmgr-netadm: %s\n", msg);
                else
                        vmgr_print_error(r, "vmgr-netadm: %m");
                return 1;
        }

        /* Do not outlive vmgrd; if it died before we asked, go now. */
        if (!arg_check && (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 || getppid() != parent))
                return 1;

        if (namespace_mode)
                policy_namespace(&m.policy);
        else {
                r = policy_load(VMGR_NETADM_CONFIG, &m.policy, msg);
                if (r >= 0)
                        r = policy_check_caller(&m.policy, m.uid, getgid(), msg);
                if (r < 0) {
                        fprintf(stderr, "vmgr-netadm: %s\n", msg);
                        return 1;
                }
        }
        if (arg_check) {
                printf("vmgr-netadm: host mode is available for uid %u\n", (unsigned) m.uid);
                return 0;
        }
        /* The socket must come from the caller, not be handed on by somebody else. */
        r = policy_check_peer(VMGR_NETADM_FD, m.uid, msg);
        if (r < 0) {
                fprintf(stderr, "vmgr-netadm: %s\n", msg);
                return 1;
        }

        /* The caller may use us: only now does a capability become effective. */
        r = privileges_raise(msg);
        if (r < 0) {
                if (msg[0])
                        fprintf(stderr, "vmgr-netadm: %s\n", msg);
                else
                        vmgr_print_error(r, "vmgr-netadm: %m");
                return 1;
        }

        r = netlink_open(&m.nl);
        if (r < 0) {
                vmgr_print_error(r, "vmgr-netadm: cannot open rtnetlink: %m");
                return 1;
        }

        r = request_loop(&m, VMGR_NETADM_FD);
        m.nl = netlink_free(m.nl);
        return r < 0 ? 1 : 0;
}
