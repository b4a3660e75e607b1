/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addressing.h"
#include "firewall.h"
#include "macro.h"
#include "message.h"
#include "userns.h"

#define FIREWALL_REASON_MAX 128
#define FIREWALL_CHAIN_MAX 32           /* "u" + uid + "-" + bridge name */
#define FIREWALL_COMMANDS_MAX 1024

/*
 * The shared part, the same for every group and every user. A helper that
 * finds the table, the groups map or the bridged set missing sends it with
 * its group's rules, in the same transaction: "add" of an existing table,
 * set or chain changes nothing, and flushing the base chains before adding
 * their rules keeps them from growing, so two helpers that both came first
 * leave one correct table, and no packet ever sees half of it. A change to
 * this part must rename the groups map, so that helpers install it again.
 *
 * input: from a bridge, the host accepts neighbour discovery, DHCPv4 and
 * replies to its own connections; a group's chain (reached through the
 * groups map) adds its DHCPv4 server, its file server and ping of its
 * gateway. Sources that do not
 * route back through the bridge they came from are spoofed (a guest posing
 * as another group's guest to slip into the host's connections with it).
 * Everything else is dropped.
 *
 * forward: nothing enters or leaves a bridge, except between two ports of
 * the same bridge: with br_netfilter (bridge-nf-call-ip6tables=1, as Docker
 * sets it) bridged frames pass this hook with the bridge as both input and
 * output interface. The bridged set holds ("vbr-x", "vbr-x") per group.
 *
 * A TAP is a bridge port from the start, but if one ever is not, its
 * guest's packets would come in on the TAP itself: those are dropped too.
 *
 * Outbound (namespace mode only): the outbound set holds ("vbr-x",
 * VMGR_OUTBOUND_IFNAME) for each group whose guests may reach the host's
 * network through pasta. Such a bridge may forward to pasta's interface,
 * from sources that route back through it only (a guest posing as another
 * group's guest would have the answers sent there), and receive the
 * answers. Empty, as it always is in host mode, the set lets nothing
 * through. The masquerade that goes with it is outbound's own nat chain
 * (firewall_outbound), so that the host's namespace never gets a nat hook
 * it does not use.
 */
static const char firewall_shared[] =
        "add table inet vmgr\n"
        "add map inet vmgr groups { type ifname : verdict; }\n"
        "add set inet vmgr bridged { type ifname . ifname; }\n"
        "add set inet vmgr outbound { type ifname . ifname; }\n"
        "add chain inet vmgr input { type filter hook input priority filter; policy accept; }\n"
        "add chain inet vmgr forward { type filter hook forward priority filter; policy accept; }\n"
        "add chain inet vmgr from_guest\n"
        "flush chain inet vmgr input\n"
        "flush chain inet vmgr forward\n"
        "flush chain inet vmgr from_guest\n"
        "add rule inet vmgr input iifname \"vbr-*\" jump from_guest\n"
        "add rule inet vmgr input iifname \"tap-*\" drop\n"
        "add rule inet vmgr input iifname \"ta4-*\" drop\n"
        "add rule inet vmgr forward iifname . oifname @bridged accept\n"
        "add rule inet vmgr forward iifname . oifname @outbound fib saddr . iif oif missing drop\n"
        "add rule inet vmgr forward iifname . oifname @outbound accept\n"
        "add rule inet vmgr forward oifname . iifname @outbound ct state established,related accept\n"
        "add rule inet vmgr forward iifname \"vbr-*\" drop\n"
        "add rule inet vmgr forward oifname \"vbr-*\" drop\n"
        "add rule inet vmgr forward iifname \"tap-*\" drop\n"
        "add rule inet vmgr forward iifname \"ta4-*\" drop\n"
        "add rule inet vmgr from_guest icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }"
        " ip6 hoplimit 255 accept\n"
        /* DHCPDISCOVER and DHCPREQUEST before the guest has an address: they
         * stay on the link, and only the bridge's own dnsmasq listens there. */
        "add rule inet vmgr from_guest ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n"
        "add rule inet vmgr from_guest fib saddr . iif oif missing drop\n"
        "add rule inet vmgr from_guest ct state established,related accept\n"
        "add rule inet vmgr from_guest iifname vmap @groups\n"
        "add rule inet vmgr from_guest drop\n";

/* Everything a group's commands are made of: derived, never sent by the caller. */
struct firewall_group {
        char bridge[IFNAMSIZ];
        char chain[FIREWALL_CHAIN_MAX];
        char gateway4[INET_ADDRSTRLEN];
        char gateway6[INET6_ADDRSTRLEN];
        char files6[INET6_ADDRSTRLEN];
};

/* Derive the group's bridge, chain name and addresses. Returns 0 or -EINVAL. */
static int firewall_group_derive(unsigned uid, const char *group, struct firewall_group *ret) {
        struct vmgr_group_addrs g;
        int r;

        r = vmgr_group_addrs_derive(uid, group, &g);
        if (r < 0)
                return r;
        snprintf(ret->bridge, sizeof(ret->bridge), "%s", g.bridge);
        snprintf(ret->chain, sizeof(ret->chain), "u%u-%s", uid, g.bridge);
        if (!inet_ntop(AF_INET, &g.gateway4, ret->gateway4, sizeof(ret->gateway4)) ||
            !inet_ntop(AF_INET6, &g.gateway6, ret->gateway6, sizeof(ret->gateway6)) ||
            !inet_ntop(AF_INET6, &g.files6, ret->files6, sizeof(ret->files6)))
                return -EINVAL;
        return 0;
}

/* Whether the kernel has nfnetlink at all. libnftables exits the process
 * when it cannot open its socket, so ask before it does. Returns 0 or
 * -EOPNOTSUPP with msg set. */
static int firewall_check_available(char *msg) {
        _cleanup_close_ int fd = -EBADF;

        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
        if (fd < 0)
                return netadm_fail(msg, -EOPNOTSUPP,
                                   "nf_tables is not available (no netfilter netlink socket: %s); vmgr-netadm does "
                                   "not run a group without its firewall rules",
                                   strerror(errno)); /* errno, not the code it answers with */
        return 0;
}

/* Map libnftables' error text to the errno it names, for the cases we tell
 * apart. Returns -ENOENT, -EEXIST, -EOPNOTSUPP or -EIO. */
static int firewall_reason_to_errno(const char *reason) {
        static const int known[] = { ENOENT, EEXIST, EOPNOTSUPP, EPROTONOSUPPORT };

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (strstr(reason, strerror(known[i])))
                        return known[i] == EPROTONOSUPPORT ? -EOPNOTSUPP : -known[i];
        return -EIO;
}

/* The helper's one libnftables context, made on first use. It lives as
 * long as the helper: closing its netfilter socket waits for the kernel to
 * finish destroying what the last transaction removed (an RCU grace
 * period, about 10 ms here), which would otherwise add to every delete.
 * Returns the context, or NULL when out of memory. */
static struct nft_ctx *firewall_context(void) {
        static struct nft_ctx *ctx = NULL;

        if (ctx)
                return ctx;
        /* libxtables, which libnftables initializes, would load plugins from
         * this directory when printing iptables-nft rules: never from one the
         * caller picked. */
        (void) unsetenv("XTABLES_LIBDIR");
        ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (ctx && (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)) {
                nft_ctx_free(ctx);
                ctx = NULL;
        }
        return ctx;
}

/* Run nft commands as one transaction. Returns 0 or -errno (see
 * firewall_reason_to_errno()) with reason (FIREWALL_REASON_MAX bytes, may
 * be NULL) set to the first error libnftables reported. */
static int firewall_run(const char *commands, char *reason) {
        struct nft_ctx *ctx;
        char text[FIREWALL_REASON_MAX] = "";
        const char *e, *p;
        int r = 0;

        ctx = firewall_context();
        if (!ctx)
                return -ENOMEM;
        if (nft_run_cmd_from_buffer(ctx, commands) != 0) {
                e = nft_ctx_get_error_buffer(ctx);
                e = e ? e : "";
                p = strstr(e, "Error: ");
                p = p ? p + strlen("Error: ") : e;
                snprintf(text, sizeof(text), "%.*s", (int) strcspn(p, "\n"), p);
                if (!text[0])
                        snprintf(text, sizeof(text), "nft failed without saying why");
                r = firewall_reason_to_errno(text);
        }
        /* Empty both buffers for the next run. */
        (void) nft_ctx_get_output_buffer(ctx);
        (void) nft_ctx_get_error_buffer(ctx);

        /* libnftables opens its socket without close-on-exec. Every other fd
         * of the helper is close-on-exec already, so marking them all is
         * exact (and dnsmasq's starter closes them anyway). */
        (void) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

        if (r < 0 && reason)
                memcpy(reason, text, sizeof(text));
        return r;
}

/* Returns 0 if the caller's chain of the group exists, -ENOENT if not, or -errno. */
static int firewall_chain_exists(const struct firewall_group *f) {
        char cmd[FIREWALL_COMMANDS_MAX];

        snprintf(cmd, sizeof(cmd), "list chain inet vmgr %s\n", f->chain);
        return firewall_run(cmd, NULL);
}

/* What firewall_group_create() and firewall_outbound_enable() start with:
 * the group's derived names and addresses, and a kernel with nf_tables.
 * Returns 0 and *ret, -EINVAL for a name that derives nothing, or
 * -EOPNOTSUPP with msg set. */
static int firewall_prepare(unsigned uid, const char *group, struct firewall_group *ret, char *msg) {
        int r;

        r = firewall_group_derive(uid, group, ret);
        if (r < 0)
                return r;
        return firewall_check_available(msg);
}

/* Run a group's own commands as one transaction, and once more with the
 * shared part before them if the table, a map, a set or a chain they use is
 * missing (-ENOENT: then the first transaction changed nothing). The shared
 * part is usually there already, and rewriting it every time would double
 * the time this takes. Returns 0 or -errno with reason (FIREWALL_REASON_MAX
 * bytes, may be NULL) set, as firewall_run() does. */
static int firewall_run_with_shared(const char *own, char *reason) {
        char cmd[sizeof(firewall_shared) + FIREWALL_COMMANDS_MAX];
        int n, r;

        r = firewall_run(own, reason);
        if (r != -ENOENT)
                return r;
        n = snprintf(cmd, sizeof(cmd), "%s%s", firewall_shared, own);
        if (n < 0 || (size_t) n >= sizeof(cmd)) {
                if (reason)
                        snprintf(reason, FIREWALL_REASON_MAX, "the commands do not fit the buffer");
                return -ENOBUFS;
        }
        return firewall_run(cmd, reason);
}

int firewall_group_create(unsigned uid, const char *group, char *msg) {
        char own[FIREWALL_COMMANDS_MAX], cmd[FIREWALL_COMMANDS_MAX];
        char reason[FIREWALL_REASON_MAX];
        struct firewall_group f;
        int n, r;

        r = firewall_prepare(uid, group, &f, msg);
        if (r < 0)
                return r;

        /* flush + add makes a retry (or a group whose vmgrd died) come out
         * the same; the elements refer to this uid's chain only. A guest
         * may ping its own gateway (the usual first check of a network),
         * no other address of the host. */
        n = snprintf(own, sizeof(own),
                     "add chain inet vmgr %s\n"
                     "flush chain inet vmgr %s\n"
                     "add rule inet vmgr %s udp sport 68 udp dport 67 ip daddr { %s, 255.255.255.255 } accept\n"
                     "add rule inet vmgr %s tcp dport 8080 ip6 daddr %s accept\n"
                     "add rule inet vmgr %s icmpv6 type echo-request ip6 daddr %s accept\n"
                     "add rule inet vmgr %s icmp type echo-request ip daddr %s accept\n"
                     "add element inet vmgr groups { \"%s\" : jump %s }\n"
                     "add element inet vmgr bridged { \"%s\" . \"%s\" }\n",
                     f.chain, f.chain, f.chain, f.gateway4, f.chain, f.files6, f.chain, f.gateway6, f.chain,
                     f.gateway4, f.bridge, f.chain, f.bridge, f.bridge);
        if (n < 0 || (size_t) n >= sizeof(own))
                return netadm_fail(msg, -ENOBUFS, "the firewall rules of bridge %s do not fit the buffer", f.bridge);

        r = firewall_run_with_shared(own, reason);
        if (r >= 0)
                return 0;

        /* The transaction changed nothing. "File exists" with the bridge
         * already in the groups map means it leads to another uid's chain
         * (ours would have been added again without complaint). */
        if (r == -EEXIST) {
                snprintf(cmd, sizeof(cmd), "get element inet vmgr groups { \"%s\" }\n", f.bridge);
                if (firewall_run(cmd, NULL) >= 0)
                        return netadm_fail(msg, -EADDRINUSE,
                                           "bridge %s already has another user's firewall rules (left by a group "
                                           "whose bridge name is the same); pick another group name, or ask an "
                                           "administrator to remove them from nft table inet vmgr",
                                           f.bridge);
        }
        return netadm_fail(msg, r == -EOPNOTSUPP ? r : -EIO,
                           "cannot install the firewall rules of bridge %s (%s); vmgr-netadm does not run a group "
                           "without them",
                           f.bridge, reason);
}

int firewall_group_delete(unsigned uid, const char *group, char *msg) {
        char cmd[FIREWALL_COMMANDS_MAX], reason[FIREWALL_REASON_MAX];
        struct firewall_group f;
        int r;

        r = firewall_group_derive(uid, group, &f);
        if (r < 0)
                return r;
        /* Without nfnetlink there can be no rules to delete. */
        if (firewall_check_available(msg) < 0) {
                msg[0] = 0;
                return 0;
        }

        /* One transaction: it fails as a whole unless the chain named with
         * the caller's uid exists. Created together with the two elements,
         * that chain proves they are the caller's: the kernel deletes a map
         * element by its key alone, whatever chain it leads to. */
        snprintf(cmd, sizeof(cmd),
                 "delete element inet vmgr groups { \"%s\" }\n"
                 "delete element inet vmgr bridged { \"%s\" . \"%s\" }\n"
                 "delete chain inet vmgr %s\n",
                 f.bridge, f.bridge, f.bridge, f.chain);
        /* An outbound group's element goes in the same transaction, so that
         * a later group of the same name never inherits it. Outbound exists
         * in namespace mode only: host mode pays nothing for it. The element
         * is added first: "add" of one that exists changes nothing, so the
         * delete after it always finds it and the transaction does not fail
         * for a group without outbound. A failed transaction is not free:
         * the kernel aborts it and waits for an RCU grace period (some
         * 10-15 ms here) before answering. Added and deleted in one
         * transaction, the element is never seen by a packet. */
        if (vmgr_userns_is_initial() == 0) {
                char with[FIREWALL_COMMANDS_MAX + 256];

                snprintf(with, sizeof(with),
                         "add element inet vmgr outbound { \"%s\" . \"%s\" }\n"
                         "delete element inet vmgr outbound { \"%s\" . \"%s\" }\n%s",
                         f.bridge, VMGR_OUTBOUND_IFNAME, f.bridge, VMGR_OUTBOUND_IFNAME, cmd);
                if (firewall_run(with, NULL) >= 0)
                        return 0;
        }
        r = firewall_run(cmd, reason);
        if (r >= 0)
                return 0;

        /* Nothing of the caller's: never created, already deleted, somebody
         * else's group of the same name, or no table at all. */
        if (r == -ENOENT && firewall_chain_exists(&f) == -ENOENT)
                return 0;
        return netadm_fail(msg, r == -EOPNOTSUPP ? r : -EIO,
                           "cannot delete the firewall rules of bridge %s (nft chain inet vmgr %s): %s", f.bridge,
                           f.chain, reason);
}

/* The nat chain of outbound groups: whatever a bridge in the outbound set
 * sends out of pasta's interface leaves with the namespace's address there,
 * which pasta then uses for the user's own sockets. */
static const char firewall_outbound[] =
        "add chain inet vmgr postrouting { type nat hook postrouting priority srcnat; policy accept; }\n"
        "flush chain inet vmgr postrouting\n"
        "add rule inet vmgr postrouting iifname . oifname @outbound masquerade\n";

/* Write "1" to a sysctl file of this network namespace. Returns 0 or -errno. */
static int firewall_sysctl_enable(const char *path) {
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, "1", 1) != 1)
                return -errno;
        return 0;
}

int firewall_outbound_enable(unsigned uid, const char *group, char *msg) {
        char own[FIREWALL_COMMANDS_MAX];
        char reason[FIREWALL_REASON_MAX];
        struct firewall_group f;
        int n, r;

        /* In host mode this would make the host a router with NAT for any
         * member of the helper's group: never. Asked before anything else. */
        r = vmgr_userns_is_initial();
        if (r != 0)
                return netadm_fail(msg, -EPERM,
                                   r > 0 ? "outbound is available in namespace mode only; vmgr-netadm does not "
                                           "forward or masquerade in the host's own network"
                                         : "cannot tell whether vmgr-netadm runs in vmgrd's own namespace (reading "
                                           "/proc/self/uid_map failed); outbound refused");
        r = firewall_prepare(uid, group, &f, msg);
        if (r < 0)
                return r;
        /* The group's own chain, named with the caller's uid, must be there:
         * only a group this caller made gets outbound. */
        r = firewall_chain_exists(&f);
        if (r < 0)
                return netadm_fail(msg, r == -ENOENT ? -ENOENT : -EIO,
                                   "group '%s' has no firewall rules of this user (nft chain inet vmgr %s); create "
                                   "the group first",
                                   group, f.chain);

        n = snprintf(own, sizeof(own), "%sadd element inet vmgr outbound { \"%s\" . \"%s\" }\n", firewall_outbound,
                     f.bridge, VMGR_OUTBOUND_IFNAME);
        if (n < 0 || (size_t) n >= sizeof(own))
                return netadm_fail(msg, -ENOBUFS, "the outbound rules of bridge %s do not fit the buffer", f.bridge);

        /* A table made before the outbound set existed lacks it: then the
         * shared part comes along (and brings the forward rules that use it). */
        r = firewall_run_with_shared(own, reason);
        if (r < 0)
                return netadm_fail(msg, r == -EOPNOTSUPP ? r : -EIO,
                                   "cannot install the outbound rules of bridge %s (%s)", f.bridge, reason);

        /* Only now that the rules are in place: forwarding is per network
         * namespace, and the forward chain drops whatever is not allowed. */
        r = firewall_sysctl_enable("/proc/sys/net/ipv4/ip_forward");
        if (r < 0)
                return netadm_fail(msg, r, "cannot turn on IPv4 forwarding in vmgrd's network namespace: %m");
        r = firewall_sysctl_enable("/proc/sys/net/ipv6/conf/all/forwarding");
        if (r < 0 && r != -ENOENT)
                return netadm_fail(msg, r, "cannot turn on IPv6 forwarding in vmgrd's network namespace: %m");
        return 0;
}
