/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * rtnetlink through the kernel's own NLMSG_* and RTA_* macros: the agent is
 * a static binary and Debian ships libmnl as a shared library only, and
 * all it needs is two dumps and a subscription.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "macro.h"
#include "netinfo.h"

/* Read a small text file's first line into buf. Returns 0 or -errno. */
static int read_line(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, size - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return 0;
}

static struct vmgr_agent_link *find_link(struct netinfo *ni, uint32_t index) {
        for (size_t i = 0; i < ni->info.n_links; i++)
                if (ni->info.links[i].index == index)
                        return &ni->info.links[i];
        return NULL;
}

static void parse_link(struct netinfo *ni, struct nlmsghdr *h) {
        struct ifinfomsg *ifi = NLMSG_DATA(h);
        int len = (int) IFLA_PAYLOAD(h);
        struct vmgr_agent_link *l;
        size_t i = ni->info.n_links;

        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)) || i >= VMGR_AGENT_LINKS_MAX || ifi->ifi_index <= 0 ||
            find_link(ni, (uint32_t) ifi->ifi_index))
                return;
        l = &ni->info.links[i];
        *l = (struct vmgr_agent_link) { .index = (uint32_t) ifi->ifi_index, .flags = ifi->ifi_flags };
        ni->names[i][0] = 0;
        for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                size_t n = RTA_PAYLOAD(a);
                switch (a->rta_type) {
                case IFLA_IFNAME:
                        if (n > 0 && n <= IF_NAMESIZE) {
                                memcpy(ni->names[i], RTA_DATA(a), n);
                                ni->names[i][n - 1] = 0;
                        }
                        break;
                case IFLA_MTU:
                        if (n >= 4)
                                memcpy(&l->mtu, RTA_DATA(a), 4);
                        break;
                case IFLA_ADDRESS:
                        if (n <= VMGR_AGENT_HWADDR_MAX) {
                                memcpy(l->hwaddr, RTA_DATA(a), n);
                                l->hwaddr_len = (uint8_t) n;
                        }
                        break;
                }
        }
        if (!ni->names[i][0])
                return; /* every link has a name; skip one that does not say */
        l->name = ni->names[i];
        ni->info.n_links++;
}

static void parse_addr(struct netinfo *ni, struct nlmsghdr *h) {
        struct ifaddrmsg *ifa = NLMSG_DATA(h);
        int len = (int) IFA_PAYLOAD(h);
        struct vmgr_agent_addr a = {};
        const void *local = NULL, *address = NULL;
        size_t alen = 0;

        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) || ni->info.n_addrs >= VMGR_AGENT_ADDRS_MAX)
                return;
        if (ifa->ifa_family == AF_INET)
                a.family = VMGR_AGENT_FAMILY_IPV4, alen = 4;
        else if (ifa->ifa_family == AF_INET6)
                a.family = VMGR_AGENT_FAMILY_IPV6, alen = 16;
        else
                return;
        a.ifindex = ifa->ifa_index;
        a.prefixlen = ifa->ifa_prefixlen;
        a.scope = ifa->ifa_scope;
        a.flags = ifa->ifa_flags;
        for (struct rtattr *r = IFA_RTA(ifa); RTA_OK(r, len); r = RTA_NEXT(r, len)) {
                size_t n = RTA_PAYLOAD(r);
                if (r->rta_type == IFA_LOCAL && n == alen)
                        local = RTA_DATA(r);
                else if (r->rta_type == IFA_ADDRESS && n == alen)
                        address = RTA_DATA(r);
                else if (r->rta_type == IFA_FLAGS && n >= 4)
                        memcpy(&a.flags, RTA_DATA(r), 4); /* the full 32 bits */
        }
        /* IFA_LOCAL is the interface's own address; IFA_ADDRESS is the
         * peer's on point-to-point links and the same otherwise. */
        if (!local)
                local = address;
        if (!local || !find_link(ni, a.ifindex))
                return;
        memcpy(a.address, local, alen);
        ni->info.addrs[ni->info.n_addrs++] = a;
}

/* Send a dump request of type on fd and feed every answer to parse. Returns 0 or -errno. */
static int dump(int fd, uint16_t type, struct netinfo *ni, void (*parse)(struct netinfo *, struct nlmsghdr *)) {
        struct {
                struct nlmsghdr h;
                union {
                        struct ifinfomsg ifi;
                        struct ifaddrmsg ifa;
                };
        } req = {
                .h.nlmsg_len = NLMSG_LENGTH(type == RTM_GETLINK ? sizeof(struct ifinfomsg) : sizeof(struct ifaddrmsg)),
                .h.nlmsg_type = type,
                .h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                .h.nlmsg_seq = type,
        };
        static uint8_t buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));

        if (send(fd, &req, req.h.nlmsg_len, 0) < 0)
                return negative_errno();
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                struct nlmsghdr *h = NULL;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                /* NLMSG_OK() compares signed with unsigned; the same checks by hand. */
                for (size_t off = 0; off + sizeof(struct nlmsghdr) <= (size_t) n; off += NLMSG_ALIGN(h->nlmsg_len)) {
                        h = (struct nlmsghdr *) (buf + off);
                        if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t) n - off)
                                break;
                        if (h->nlmsg_seq != type)
                                continue;
                        if (h->nlmsg_type == NLMSG_DONE)
                                return 0;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                struct nlmsgerr *e = NLMSG_DATA(h);
                                return h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error < 0 ? e->error : -EIO;
                        }
                        parse(ni, h);
                }
        }
}

int netinfo_collect(struct netinfo *ni) {
        _cleanup_close_ int fd = -EBADF;
        struct timeval tv = { .tv_sec = 2 };
        struct utsname u;
        int r;

        memset(&ni->info, 0, sizeof(ni->info));
        ni->info.version = VMGR_AGENT_VERSION_MAX;

        if (gethostname(ni->hostname, sizeof(ni->hostname)) < 0)
                ni->hostname[0] = 0;
        ni->hostname[sizeof(ni->hostname) - 1] = 0;
        ni->kernel[0] = 0;
        if (uname(&u) == 0)
                snprintf(ni->kernel, sizeof(ni->kernel), "%s", u.release);
        if (read_line("/proc/sys/kernel/random/boot_id", ni->boot_id, sizeof(ni->boot_id)) < 0)
                ni->boot_id[0] = 0;
        ni->info.hostname = ni->hostname;
        ni->info.kernel = ni->kernel;
        ni->info.boot_id = ni->boot_id;

        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return negative_errno();
        /* A dump is answered at once; never hang the event loop on it. */
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        r = dump(fd, RTM_GETLINK, ni, parse_link);
        if (r < 0)
                return r;
        return dump(fd, RTM_GETADDR, ni, parse_addr);
}

int netinfo_monitor_open(void) {
        struct sockaddr_nl sa = {
                .nl_family = AF_NETLINK,
                .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
        };
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);

        if (fd < 0)
                return negative_errno();
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        return fd;
}

int netinfo_monitor_drain(int fd) {
        static uint8_t buf[8192];
        int any = 0;

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n >= 0) {
                        any = 1;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN)
                        return any;
                if (errno == ENOBUFS)
                        any = 1; /* notifications were lost: something changed */
                else
                        return negative_errno();
        }
}
