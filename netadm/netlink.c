/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>

#include "macro.h"
#include "message.h"
#include "netadm-proto.h"
#include "netlink.h"

/* Large enough for one datagram of any dump: the kernel never sends more
 * than 32 KiB per recvmsg() and a truncated read is reported as ENOSPC. */
#define NETLINK_RECV_SIZE (64 * 1024)
#define NETLINK_SEND_SIZE 4096
#define NETLINK_ALIAS_MAX 256           /* IFALIASZ */
#define NETLINK_LINKS_MAX 65536         /* refuse absurd dumps rather than grow forever */
#define NETLINK_DUMP_ATTEMPTS 20        /* an inconsistent dump is repeated this often */

/* The netdev group a bridge is created in, tagging it with its creator's uid
 * in the same RTM_NEWLINK (the kernel ignores an alias there): until its
 * alias is set, this is how concurrent helpers count it (see
 * group_claim_within_limit()). The batch deletion's random groups stay
 * below this range, so they never meet a link being created. */
#define NETLINK_OWNER_GROUP_BASE 0x80000000u
#define NETLINK_OWNER_GROUP(uid) (NETLINK_OWNER_GROUP_BASE | ((uint32_t) (uid) & ~NETLINK_OWNER_GROUP_BASE))

#define RT_PRIORITY_KERNEL 256          /* the metric the kernel gives its own prefix routes */
#define PREFIX_STRLEN (INET6_ADDRSTRLEN + 8) /* "address/length" of either family */

struct netlink {
        struct mnl_socket *sock;
        unsigned portid;
        uint32_t seq;
        char extack[VMGR_NETADM_MESSAGE_MAX]; /* the kernel's reason for the last error, if it gave one */
        char send_buf[NETLINK_SEND_SIZE];
        char recv_buf[NETLINK_RECV_SIZE];
};

union nl_inaddr {
        struct in_addr v4;
        struct in6_addr v6;
};

struct nl_link {
        int ifindex;
        unsigned flags;
        int master;
        uint32_t group;                 /* the netdev group number, not a vmgr group */
        bool has_tun_owner;             /* a TAP whose owner is set */
        uint32_t tun_owner;
        bool persistent;                /* a persistent TAP */
        char name[IFNAMSIZ];
        char alias[NETLINK_ALIAS_MAX];
        char kind[16];
};

struct nl_addr {
        int family;
        int ifindex;
        unsigned prefixlen;
        union nl_inaddr addr;
};

struct nl_route {
        int family;
        int oif;
        unsigned dst_len;
        uint32_t table;
        uint8_t type;
        union nl_inaddr dst;
};

/* A growable array filled by a dump callback. error records an allocation
 * failure: callbacks never stop a dump half-way, so the socket stays in step. */
struct nl_array {
        void *items;
        size_t n, allocated, item_size;
        int error;
};

static void nl_array_done(struct nl_array *a) {
        free(a->items);
        a->items = NULL;
        a->n = a->allocated = 0;
}

/* Append a zeroed item. Returns it, or NULL (recording -ENOMEM) when full. */
static void *nl_array_push(struct nl_array *a) {
        if (a->n >= NETLINK_LINKS_MAX) {
                a->error = -E2BIG;
                return NULL;
        }
        if (a->n == a->allocated) {
                size_t m = a->allocated ? a->allocated * 2 : 32;
                void *p = reallocarray(a->items, m, a->item_size);
                if (!p) {
                        a->error = -ENOMEM;
                        return NULL;
                }
                a->items = p;
                a->allocated = m;
        }
        void *item = (char *) a->items + a->n++ * a->item_size;
        memset(item, 0, a->item_size);
        return item;
}

int netlink_open(struct netlink **ret) {
        struct netlink *nl;
        int one = 1, r;

        nl = calloc(1, sizeof(*nl));
        if (!nl)
                return -ENOMEM;
        nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (!nl->sock) {
                r = negative_errno();
                free(nl);
                return r;
        }
        if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
                r = negative_errno();
                netlink_free(nl);
                return r;
        }
        /* Ask for the kernel's reason with each error, without echoing our request back. */
        (void) mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
        (void) mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
        nl->portid = mnl_socket_get_portid(nl->sock);
        nl->seq = (uint32_t) getpid() << 8;

        *ret = nl;
        return 0;
}

struct netlink *netlink_free(struct netlink *nl) {
        if (nl) {
                if (nl->sock)
                        mnl_socket_close(nl->sock);
                free(nl);
        }
        return NULL;
}

struct nl_call_state {
        struct netlink *nl;
        mnl_cb_t cb;
        void *data;
};

static int nl_extack_attr_cb(const struct nlattr *attr, void *data) {
        struct netlink *nl = data;

        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                snprintf(nl->extack, sizeof(nl->extack), "%s", mnl_attr_get_str(attr));
        return MNL_CB_OK;
}

static int nl_error_cb(const struct nlmsghdr *nlh, void *data) {
        struct nl_call_state *s = data;
        const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
        size_t payload = mnl_nlmsg_get_payload_len(nlh), off = sizeof(*err);

        if (payload < sizeof(*err)) {
                errno = EBADMSG;
                return MNL_CB_ERROR;
        }
        if (err->error == 0)
                return MNL_CB_STOP;

        if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
                if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
                        off += MNL_ALIGN(err->msg.nlmsg_len - sizeof(struct nlmsghdr));
                if (off < payload)
                        (void) mnl_attr_parse_payload((const char *) err + off, payload - off, nl_extack_attr_cb,
                                                      s->nl);
        }
        errno = err->error < 0 ? -err->error : EIO;
        return MNL_CB_ERROR;
}

static int nl_done_cb(const struct nlmsghdr *nlh, void *data) {
        /* A dump that failed part-way says so with a negative int in NLMSG_DONE. */
        if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int)) {
                int e = *(const int *) mnl_nlmsg_get_payload(nlh);
                if (e < 0) {
                        errno = -e;
                        return MNL_CB_ERROR;
                }
        }
        return MNL_CB_STOP;
}

static int nl_noop_cb(const struct nlmsghdr *nlh, void *data) {
        return MNL_CB_OK;
}

static int nl_overrun_cb(const struct nlmsghdr *nlh, void *data) {
        errno = ENOSPC;
        return MNL_CB_ERROR;
}

static int nl_data_cb(const struct nlmsghdr *nlh, void *data) {
        struct nl_call_state *s = data;

        return s->cb ? s->cb(nlh, s->data) : MNL_CB_OK;
}

/* Start a request in the send buffer. Returns the header. */
static struct nlmsghdr *nl_message(struct netlink *nl, uint16_t type, uint16_t flags) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->send_buf);

        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        nlh->nlmsg_seq = ++nl->seq;
        return nlh;
}

/* Start a request about a link (RTM_*LINK); ifindex 0 when it is named by
 * attributes or the request is for every link. Returns the header. */
static struct nlmsghdr *nl_link_message(struct netlink *nl, uint16_t type, uint16_t flags, int ifindex) {
        struct nlmsghdr *nlh = nl_message(nl, type, flags);
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        return nlh;
}

/* Read and drop the rest of a dump that the kernel marked inconsistent
 * (NLM_F_DUMP_INTR: links changed while it was made), so that the socket
 * is in step for the next request; the recv_buf holds the n bytes received
 * last. Returns -EINTR, or -errno when reading fails. */
static int nl_dump_drain(struct netlink *nl, ssize_t n) {
        for (;;) {
                const struct nlmsghdr *h = (const struct nlmsghdr *) nl->recv_buf;
                int len = (int) n;

                for (; mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len))
                        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
                                return -EINTR;
                n = mnl_socket_recvfrom(nl->sock, nl->recv_buf, sizeof(nl->recv_buf));
                if (n < 0)
                        return negative_errno();
        }
}

/* Send the request in the send buffer and read until its ACK or the end of
 * its dump, handing each data message to cb. -EINTR when a dump was
 * inconsistent (read to its end, so it can be asked for again). Returns 0 or -errno; on error
 * nl->extack holds the kernel's reason when it gave one. */
static int nl_call(struct netlink *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data) {
        struct nl_call_state s = { .nl = nl, .cb = cb, .data = data };
        mnl_cb_t ctl[NLMSG_MIN_TYPE] = {
                [NLMSG_NOOP] = nl_noop_cb,
                [NLMSG_ERROR] = nl_error_cb,
                [NLMSG_DONE] = nl_done_cb,
                [NLMSG_OVERRUN] = nl_overrun_cb,
        };

        nl->extack[0] = 0;
        /* NLM_F_DUMP is two bits, one of which doubles as NLM_F_EXCL in NEW requests. */
        if ((nlh->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP)
                nlh->nlmsg_flags |= NLM_F_ACK;
        if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
                return negative_errno();

        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl->sock, nl->recv_buf, sizeof(nl->recv_buf));
                if (n < 0)
                        return negative_errno();
                int r = mnl_cb_run2(nl->recv_buf, (size_t) n, nlh->nlmsg_seq, nl->portid, nl_data_cb, &s, ctl,
                                    ELEMENTSOF(ctl));
                if (r < 0 && errno == EINTR && (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP)
                        return nl_dump_drain(nl, n);
                if (r < 0)
                        return negative_errno();
                if (r == MNL_CB_STOP)
                        return 0;
        }
}

/* Write "what: reason" into msg, what given printf-style, preferring the
 * kernel's own words. Returns r. */
_printf_(4, 5) static int nl_fail(struct netlink *nl, int r, char *msg, const char *format, ...) {
        char what[96];
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(what, sizeof(what), format, ap);
        va_end(ap);
        if (nl->extack[0])
                return netadm_fail(msg, r, "%.80s: %m (%.100s)", what, nl->extack);
        return netadm_fail(msg, r, "%s: %m", what);
}

/* Copy a NUL-terminated string attribute into buf, truncating. */
static void attr_copy_str(const struct nlattr *attr, char *buf, size_t size) {
        if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                snprintf(buf, size, "%s", mnl_attr_get_str(attr));
}

/* Copy an address attribute of the family's size. Returns true if it fit. */
static bool attr_copy_inaddr(const struct nlattr *attr, int family, union nl_inaddr *ret) {
        size_t len = family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);

        if (mnl_attr_get_payload_len(attr) != len)
                return false;
        memcpy(ret, mnl_attr_get_payload(attr), len);
        return true;
}

/* What a dump asks for and collects: the messages of one type, each parsed
 * into one item of an nl_array. */
struct nl_dump_kind {
        uint16_t request;               /* RTM_GETLINK, RTM_GETADDR or RTM_GETROUTE */
        uint16_t type;                  /* what comes back: RTM_NEWLINK, ... */
        size_t header_size;             /* the family header its payload starts with */
        bool skip_stats;                /* links: leave out the statistics we do not read */
        bool ip_only;                   /* keep AF_INET and AF_INET6 only */
        size_t item_size;
        void (*parse)(const struct nlmsghdr *nlh, void *item);
};

struct nl_dump_state {
        const struct nl_dump_kind *kind;
        struct nl_array items;
};

static int nl_dump_cb(const struct nlmsghdr *nlh, void *data) {
        struct nl_dump_state *s = data;
        const struct nl_dump_kind *k = s->kind;
        void *item;

        if (nlh->nlmsg_type != k->type || mnl_nlmsg_get_payload_len(nlh) < k->header_size)
                return MNL_CB_OK;
        if (k->ip_only) {
                /* ifaddrmsg and rtmsg both start with the family byte. */
                uint8_t family = *(const uint8_t *) mnl_nlmsg_get_payload(nlh);
                if (family != AF_INET && family != AF_INET6)
                        return MNL_CB_OK;
        }
        item = nl_array_push(&s->items);
        if (item)
                k->parse(nlh, item);
        return MNL_CB_OK;
}

/* Every object of kind in this network namespace, of every family, into ret
 * (free with nl_array_done). Returns 0 or -errno. */
static int nl_dump(struct netlink *nl, const struct nl_dump_kind *kind, struct nl_array *ret) {
        struct nl_dump_state s = { .kind = kind, .items.item_size = kind->item_size };
        int r;

        /* Helpers running at once change links under each other's dumps; a
         * dump the kernel marks inconsistent is asked for again. */
        for (unsigned attempt = 0;; attempt++) {
                struct nlmsghdr *nlh = nl_message(nl, kind->request, NLM_F_DUMP);

                /* A zeroed header asks for every family (AF_UNSPEC). */
                (void) mnl_nlmsg_put_extra_header(nlh, kind->header_size);
                if (kind->skip_stats)
                        mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
                r = nl_call(nl, nlh, nl_dump_cb, &s);
                if (r >= 0)
                        r = s.items.error;
                if (r != -EINTR || attempt + 1 >= NETLINK_DUMP_ATTEMPTS)
                        break;
                nl_array_done(&s.items);
                s.items.error = 0;
        }
        if (r < 0) {
                nl_array_done(&s.items);
                return r;
        }
        *ret = s.items;
        return 0;
}

static int tun_info_attr_cb(const struct nlattr *attr, void *data) {
        struct nl_link *l = data;

        if (mnl_attr_get_type(attr) == IFLA_TUN_OWNER && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
                l->has_tun_owner = true;
                l->tun_owner = mnl_attr_get_u32(attr);
        } else if (mnl_attr_get_type(attr) == IFLA_TUN_PERSIST && mnl_attr_validate(attr, MNL_TYPE_U8) >= 0)
                l->persistent = mnl_attr_get_u8(attr) != 0;
        return MNL_CB_OK;
}

static int link_info_attr_cb(const struct nlattr *attr, void *data) {
        struct nl_link *l = data;

        switch (mnl_attr_get_type(attr)) {
        case IFLA_INFO_KIND:
                attr_copy_str(attr, l->kind, sizeof(l->kind));
                break;
        case IFLA_INFO_DATA:
                /* The kind comes first; only a TAP's data is of interest. */
                if (streq(l->kind, "tun") && mnl_attr_validate(attr, MNL_TYPE_NESTED) >= 0)
                        (void) mnl_attr_parse_nested(attr, tun_info_attr_cb, l);
                break;
        }
        return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *attr, void *data) {
        struct nl_link *l = data;

        switch (mnl_attr_get_type(attr)) {
        case IFLA_IFNAME:
                attr_copy_str(attr, l->name, sizeof(l->name));
                break;
        case IFLA_IFALIAS:
                attr_copy_str(attr, l->alias, sizeof(l->alias));
                break;
        case IFLA_MASTER:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        l->master = (int) mnl_attr_get_u32(attr);
                break;
        case IFLA_GROUP:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        l->group = mnl_attr_get_u32(attr);
                break;
        case IFLA_LINKINFO:
                if (mnl_attr_validate(attr, MNL_TYPE_NESTED) >= 0)
                        (void) mnl_attr_parse_nested(attr, link_info_attr_cb, l);
                break;
        }
        return MNL_CB_OK;
}

/* Fill a struct nl_link from an RTM_NEWLINK message. */
static void link_parse(const struct nlmsghdr *nlh, void *item) {
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        struct nl_link *l = item;

        l->ifindex = ifi->ifi_index;
        l->flags = ifi->ifi_flags;
        (void) mnl_attr_parse(nlh, sizeof(*ifi), link_attr_cb, l);
}

static const struct nl_dump_kind link_kind = {
        .request = RTM_GETLINK,
        .type = RTM_NEWLINK,
        .header_size = sizeof(struct ifinfomsg),
        .skip_stats = true,
        .item_size = sizeof(struct nl_link),
        .parse = link_parse,
};

static int link_get_cb(const struct nlmsghdr *nlh, void *data) {
        if (nlh->nlmsg_type == RTM_NEWLINK && mnl_nlmsg_get_payload_len(nlh) >= sizeof(struct ifinfomsg))
                link_parse(nlh, data);
        return MNL_CB_OK;
}

/* Look up a link by name. Returns 0, -ENODEV if there is none, or -errno. */
static int link_get(struct netlink *nl, const char *name, struct nl_link *ret) {
        struct nlmsghdr *nlh = nl_link_message(nl, RTM_GETLINK, 0, 0);
        struct nl_link l = {};
        int r;

        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        r = nl_call(nl, nlh, link_get_cb, &l);
        if (r < 0)
                return r;
        if (l.ifindex <= 0)
                return -ENODEV;
        *ret = l;
        return 0;
}

static const struct nl_link *links_find_index(const struct nl_array *links, int ifindex) {
        const struct nl_link *l = links->items;

        for (size_t i = 0; i < links->n; i++)
                if (l[i].ifindex == ifindex)
                        return &l[i];
        return NULL;
}

static const struct nl_link *links_find_name(const struct nl_array *links, const char *name) {
        const struct nl_link *l = links->items;

        for (size_t i = 0; i < links->n; i++)
                if (streq(l[i].name, name))
                        return &l[i];
        return NULL;
}

/* Say whose a link is, as the end of a sentence: "belongs to uid 1001
 * (group 'x')", or "was not made by vmgr". Returns buf. */
static const char *link_owner_describe(const struct nl_link *l, char *buf, size_t size) {
        char group[VMGR_NAME_MAX + 1];
        unsigned uid;

        if (vmgr_link_alias_parse(l->alias, &uid, group) == 0)
                snprintf(buf, size, "belongs to uid %u (group '%s')", uid, group);
        else
                snprintf(buf, size, "was not made by vmgr");
        return buf;
}

static bool link_is_vmgr(const struct nl_link *l) {
        char group[VMGR_NAME_MAX + 1];
        unsigned uid;

        return vmgr_link_alias_parse(l->alias, &uid, group) == 0;
}

static int addr_attr_cb(const struct nlattr *attr, void *data) {
        struct nl_addr *a = data;
        int type = mnl_attr_get_type(attr);

        /* IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
         * point-to-point links and equal to it otherwise. */
        if (type == IFA_LOCAL || (type == IFA_ADDRESS && a->family == AF_INET6))
                (void) attr_copy_inaddr(attr, a->family, &a->addr);
        return MNL_CB_OK;
}

/* Fill a struct nl_addr from an RTM_NEWADDR message. */
static void addr_parse(const struct nlmsghdr *nlh, void *item) {
        const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
        struct nl_addr *a = item;

        a->family = ifa->ifa_family;
        a->ifindex = (int) ifa->ifa_index;
        a->prefixlen = ifa->ifa_prefixlen;
        (void) mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, a);
}

static const struct nl_dump_kind addr_kind = {
        .request = RTM_GETADDR,
        .type = RTM_NEWADDR,
        .header_size = sizeof(struct ifaddrmsg),
        .ip_only = true,
        .item_size = sizeof(struct nl_addr),
        .parse = addr_parse,
};

static int route_attr_cb(const struct nlattr *attr, void *data) {
        struct nl_route *rt = data;

        switch (mnl_attr_get_type(attr)) {
        case RTA_DST:
                (void) attr_copy_inaddr(attr, rt->family, &rt->dst);
                break;
        case RTA_OIF:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        rt->oif = (int) mnl_attr_get_u32(attr);
                break;
        case RTA_TABLE:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        rt->table = mnl_attr_get_u32(attr);
                break;
        }
        return MNL_CB_OK;
}

/* Fill a struct nl_route from an RTM_NEWROUTE message. */
static void route_parse(const struct nlmsghdr *nlh, void *item) {
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        struct nl_route *rt = item;

        rt->family = rtm->rtm_family;
        rt->dst_len = rtm->rtm_dst_len;
        rt->table = rtm->rtm_table;
        rt->type = rtm->rtm_type;
        (void) mnl_attr_parse(nlh, sizeof(*rtm), route_attr_cb, rt);
}

static const struct nl_dump_kind route_kind = {
        .request = RTM_GETROUTE,
        .type = RTM_NEWROUTE,
        .header_size = sizeof(struct rtmsg),
        .ip_only = true,
        .item_size = sizeof(struct nl_route),
        .parse = route_parse,
};

/* Change a link's flags, alias and master in one request; 0/NULL/-1 leave
 * them alone. Returns 0 or -errno. */
static int link_set(struct netlink *nl, int ifindex, bool up, const char *alias, int master) {
        struct nlmsghdr *nlh = nl_link_message(nl, RTM_NEWLINK, 0, ifindex);
        struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

        if (up) {
                ifi->ifi_flags = IFF_UP;
                ifi->ifi_change = IFF_UP;
        }
        if (alias)
                mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias);
        if (master >= 0)
                mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t) master);
        return nl_call(nl, nlh, NULL, NULL);
}

/* Delete a link. Returns 0 (also when it is already gone) or -errno. */
static int link_delete(struct netlink *nl, int ifindex) {
        int r;

        r = nl_call(nl, nl_link_message(nl, RTM_DELLINK, 0, ifindex), NULL, NULL);
        return r == -ENODEV ? 0 : r;
}

/* Put a link into netdev group number group. Returns 0 or -errno. */
static int link_set_group(struct netlink *nl, int ifindex, uint32_t group) {
        struct nlmsghdr *nlh = nl_link_message(nl, RTM_NEWLINK, 0, ifindex);

        mnl_attr_put_u32(nlh, IFLA_GROUP, group);
        return nl_call(nl, nlh, NULL, NULL);
}

/* Delete every link tagged alias in one batch. Each deletion on its own
 * waits for an RCU grace period (some 20-40 ms here); the kernel deletes a
 * whole netdev group with one wait. The batch is addressed by a random
 * group number that no link uses, and only our links are moved into it.
 * Returns 0, -EOPNOTSUPP when the kernel cannot delete some link as part of
 * a group (the caller then deletes them one by one), or -errno. */
static int links_delete_tagged_batch(struct netlink *nl, const struct nl_array *links, const char *alias) {
        const struct nl_link *l = links->items;
        struct nlmsghdr *nlh;
        uint32_t group;
        bool used;
        int r;

        do {
                if (getrandom(&group, sizeof(group), 0) != sizeof(group))
                        return -EIO;
                group &= ~NETLINK_OWNER_GROUP_BASE; /* never a creator's tag */
                used = group == 0; /* group 0 is the default every link starts in */
                for (size_t i = 0; i < links->n && !used; i++)
                        used = l[i].group == group;
        } while (used);

        for (size_t i = 0; i < links->n; i++)
                if (streq(l[i].alias, alias)) {
                        r = link_set_group(nl, l[i].ifindex, group);
                        if (r < 0 && r != -ENODEV)
                                return r;
                }

        nlh = nl_link_message(nl, RTM_DELLINK, 0, 0);
        mnl_attr_put_u32(nlh, IFLA_GROUP, group);
        r = nl_call(nl, nlh, NULL, NULL);
        /* ENODEV: they were all gone already. */
        return r == -ENODEV ? 0 : r;
}

/* Create a bridge with STP off and no forward delay, so ports forward at
 * once. Its MAC is set explicitly (random, locally administered): a bridge
 * with an assigned address keeps it, instead of taking the lowest MAC of its
 * ports, which would change the gateway's MAC under the guests whenever a
 * TAP joins or leaves. It is born in uid's owner group. Returns 0 or -errno. */
static int bridge_create(struct netlink *nl, const char *name, unsigned uid) {
        struct nlmsghdr *nlh = nl_link_message(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
        struct nlattr *linkinfo, *data;
        uint8_t mac[6];

        if (getrandom(mac, sizeof(mac), 0) != sizeof(mac))
                return -EIO;
        mac[0] = (uint8_t) ((mac[0] & 0xfe) | 0x02);

        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(mac), mac);
        mnl_attr_put_u32(nlh, IFLA_GROUP, NETLINK_OWNER_GROUP(uid));
        linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
        mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
        data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
        mnl_attr_put_u32(nlh, IFLA_BR_FORWARD_DELAY, 0);
        mnl_attr_put_u32(nlh, IFLA_BR_STP_STATE, 0);
        mnl_attr_nest_end(nlh, data);
        mnl_attr_nest_end(nlh, linkinfo);
        return nl_call(nl, nlh, NULL, NULL);
}

/* Add (RTM_NEWADDR) or delete (RTM_DELADDR) an address. Returns 0 or -errno. */
static int addr_change(struct netlink *nl, uint16_t type, int family, int ifindex, const void *addr,
                       unsigned prefixlen, uint32_t flags) {
        struct nlmsghdr *nlh = nl_message(nl, type, type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0);
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        size_t len = family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);

        ifa->ifa_family = (uint8_t) family;
        ifa->ifa_prefixlen = (uint8_t) prefixlen;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        ifa->ifa_index = (uint32_t) ifindex;
        mnl_attr_put(nlh, IFA_LOCAL, len, addr);
        mnl_attr_put(nlh, IFA_ADDRESS, len, addr);
        if (type == RTM_NEWADDR && family == AF_INET && prefixlen < 31) {
                struct in_addr brd = *(const struct in_addr *) addr;
                brd.s_addr |= htonl(UINT32_MAX >> prefixlen);
                mnl_attr_put(nlh, IFA_BROADCAST, sizeof(brd), &brd);
        }
        if (flags)
                mnl_attr_put_u32(nlh, IFA_FLAGS, flags);
        return nl_call(nl, nlh, NULL, NULL);
}

/* Add the group's /64 route through the bridge, with the management address
 * as preferred source so host-to-guest traffic comes from it, shaped like the
 * kernel's own prefix route (proto kernel, metric 256). Returns 0 or -errno. */
static int route6_add_prefix(struct netlink *nl, const struct in6_addr *prefix, int ifindex,
                             const struct in6_addr *prefsrc) {
        struct nlmsghdr *nlh = nl_message(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

        rtm->rtm_family = AF_INET6;
        rtm->rtm_dst_len = 64;
        rtm->rtm_table = RT_TABLE_MAIN;
        rtm->rtm_protocol = RTPROT_KERNEL;
        rtm->rtm_scope = RT_SCOPE_UNIVERSE;
        rtm->rtm_type = RTN_UNICAST;
        mnl_attr_put(nlh, RTA_DST, sizeof(*prefix), prefix);
        mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t) ifindex);
        mnl_attr_put(nlh, RTA_PREFSRC, sizeof(*prefsrc), prefsrc);
        mnl_attr_put_u32(nlh, RTA_PRIORITY, RT_PRIORITY_KERNEL);
        return nl_call(nl, nlh, NULL, NULL);
}

/* Write a per-interface IPv6 sysctl. CAP_NET_ADMIN in the network namespace
 * is what the kernel asks for here. Returns 0 or -errno with msg. */
static int sysctl_ipv6_conf_write(const char *ifname, const char *key, const char *value, char *msg) {
        char path[128];
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(value);
        int r = 0;

        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/%s", ifname, key);
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 || write(fd, value, n) != (ssize_t) n)
                r = negative_errno();
        if (r < 0)
                return netadm_fail(msg, r, "setting %s=%s on %s: %m", key, value, ifname);
        return 0;
}

/* Whether the prefix a/len of family overlaps the group's /64 (IPv6) or /24
 * (IPv4), writing both prefixes into ours and theirs when it does.
 * Link-local and multicast IPv6 prefixes are on every link and never count. */
static bool group_overlaps(const struct vmgr_group_addrs *g, int family, const union nl_inaddr *a, unsigned len,
                           char ours[PREFIX_STRLEN], char theirs[PREFIX_STRLEN]) {
        if (family == AF_INET6) {
                if (IN6_IS_ADDR_LINKLOCAL(&a->v6) || IN6_IS_ADDR_MULTICAST(&a->v6) ||
                    !vmgr_in6_prefix_overlaps(&g->prefix6, 64, &a->v6, len))
                        return false;
                vmgr_in6_prefix_format(&g->prefix6, 64, ours, PREFIX_STRLEN);
                vmgr_in6_prefix_format(&a->v6, len, theirs, PREFIX_STRLEN);
                return true;
        }
        if (!vmgr_in4_prefix_overlaps(&g->subnet4, 24, &a->v4, len))
                return false;
        vmgr_in4_prefix_format(&g->subnet4, 24, ours, PREFIX_STRLEN);
        vmgr_in4_prefix_format(&a->v4, len, theirs, PREFIX_STRLEN);
        return true;
}

/* Name the link with ifindex for a message: "eth0" or "eth0 (uid 1001 (group 'x'))". */
static void link_describe(const struct nl_array *links, int ifindex, char *buf, size_t size) {
        const struct nl_link *l = links_find_index(links, ifindex);
        char owner[160];

        if (!l)
                snprintf(buf, size, "ifindex %d", ifindex);
        else if (link_is_vmgr(l))
                snprintf(buf, size, "%s, which %.120s", l->name, link_owner_describe(l, owner, sizeof(owner)));
        else
                snprintf(buf, size, "%s", l->name);
}

/* Refuse when an address in this namespace overlaps the group's /64 or /24.
 * Returns 0 or -EADDRINUSE with msg naming the address. */
static int check_addr_overlaps(const struct vmgr_group_addrs *g, const struct nl_array *addrs,
                               const struct nl_array *links, char *msg) {
        const struct nl_addr *a = addrs->items;
        char ours[PREFIX_STRLEN], theirs[PREFIX_STRLEN], dev[IFNAMSIZ + 160];

        for (size_t i = 0; i < addrs->n; i++) {
                if (a[i].prefixlen == 0 || !group_overlaps(g, a[i].family, &a[i].addr, a[i].prefixlen, ours, theirs))
                        continue;

                link_describe(links, a[i].ifindex, dev, sizeof(dev));
                return netadm_fail(msg, -EADDRINUSE, "%s overlaps address %s on %.120s", ours, theirs, dev);
        }
        return 0;
}

/* Refuse when a route in the main or local table overlaps the group's /64
 * or /24. Default routes, broadcast and multicast entries and link-local
 * prefixes are everywhere and say nothing about who uses a subnet. Returns
 * 0 or -EADDRINUSE with msg naming the route. */
static int check_route_overlaps(const struct vmgr_group_addrs *g, const struct nl_array *routes,
                                const struct nl_array *links, char *msg) {
        const struct nl_route *rt = routes->items;
        char ours[PREFIX_STRLEN], theirs[PREFIX_STRLEN], dev[IFNAMSIZ + 170];

        for (size_t i = 0; i < routes->n; i++) {
                if (rt[i].dst_len == 0 || (rt[i].table != RT_TABLE_MAIN && rt[i].table != RT_TABLE_LOCAL) ||
                    rt[i].type == RTN_BROADCAST || rt[i].type == RTN_MULTICAST ||
                    !group_overlaps(g, rt[i].family, &rt[i].dst, rt[i].dst_len, ours, theirs))
                        continue;

                if (rt[i].oif > 0) {
                        char name[IFNAMSIZ + 160];
                        link_describe(links, rt[i].oif, name, sizeof(name));
                        snprintf(dev, sizeof(dev), " dev %s", name);
                } else
                        dev[0] = 0;
                return netadm_fail(msg, -EADDRINUSE, "%s overlaps %sroute %s%.120s", ours,
                                   rt[i].table == RT_TABLE_LOCAL ? "local " : "", theirs, dev);
        }
        return 0;
}

/* Check the group's addresses against everything else in this network
 * namespace (links: a dump for naming the owners of what overlaps). Our own
 * new bridge is there already, down and without addresses and routes, so it
 * overlaps nothing. Returns 0, -EADDRINUSE with msg, or -errno. */
static int group_check_free(struct netlink *nl, const struct vmgr_group_addrs *g, const struct nl_array *links,
                            char *msg) {
        _cleanup_(nl_array_done) struct nl_array addrs = {}, routes = {};
        int r;

        r = nl_dump(nl, &addr_kind, &addrs);
        if (r < 0)
                return nl_fail(nl, r, msg, "listing addresses");
        r = check_addr_overlaps(g, &addrs, links, msg);
        if (r < 0)
                return r;

        r = nl_dump(nl, &route_kind, &routes);
        if (r < 0)
                return nl_fail(nl, r, msg, "listing routes");
        return check_route_overlaps(g, &routes, links, msg);
}

/* Whether name has the shape of a vmgr TAP: "tap-" or "ta4-" and 10 hex digits. */
static bool tap_name_is_vmgr(const char *name) {
        if (strlen(name) != VMGR_IFNAME_LEN || (strncmp(name, "tap-", 4) != 0 && strncmp(name, "ta4-", 4) != 0))
                return false;
        for (size_t i = 4; i < VMGR_IFNAME_LEN; i++)
                if (!strchr("0123456789abcdef", name[i]))
                        return false;
        return true;
}

/* Whether link l counts against uid's limit: as one of uid's bridges (group
 * NULL) or as a TAP of uid's group. A link counts when it carries uid's
 * alias, and also while it is being made and has no alias yet: a bridge born
 * in uid's owner group; a TAP of vmgr's shape owned by uid, or without an
 * owner and not persistent yet (it vanishes with the helper making it), so
 * that a TAP some other program keeps never counts. */
static bool link_counts_for(const struct nl_link *l, unsigned uid, const char *group) {
        char g[VMGR_NAME_MAX + 1];
        bool bridge = streq(l->kind, "bridge");
        unsigned u;

        if (vmgr_link_alias_parse(l->alias, &u, g) == 0)
                return u == uid && (group ? streq(g, group) && !bridge : bridge);
        if (l->alias[0])
                return false;
        if (!group)
                return bridge && l->group == NETLINK_OWNER_GROUP(uid);
        return streq(l->kind, "tun") && tap_name_is_vmgr(l->name) &&
               (l->has_tun_owner ? l->tun_owner == uid : !l->persistent);
}

/* Count the links that count against uid's limit (link_counts_for) whose
 * ifindex is below below; INT_MAX counts them all. */
static unsigned links_count_owned(const struct nl_array *links, unsigned uid, const char *group, int below) {
        const struct nl_link *l = links->items;
        unsigned n = 0;

        for (size_t i = 0; i < links->n; i++)
                if (l[i].ifindex < below && link_counts_for(&l[i], uid, group))
                        n++;
        return n;
}

/*
 * Keep a link we have just made only if it is within the limit.
 *
 * Counting and then creating is not atomic: helpers started at once (any
 * member can start as many as they like) all count below the limit and all
 * create. A lock would serialise them, but any lock a helper can take (a
 * flock on a file the caller can open, an abstract socket name) can also be
 * held by another member forever, blocking every user; and the helper cannot
 * create files in root's directories. So there is no lock: every helper
 * creates first, then ranks. The kernel hands out ifindexes in increasing
 * order within a network namespace, so the ifindex orders the links by
 * creation. Our link survives only if fewer than limit links that count for
 * the caller (link_counts_for) have a lower ifindex; otherwise we delete it.
 *
 * Why survivors never exceed the limit: take any survivor b and any other
 * survivor a of the caller's with a lower ifindex. a was created before b,
 * and from its creation to its deletion it counts for the caller - untagged
 * it is marked by its creation (the owner group a bridge is born in, the
 * TAP's owner or its not being persistent yet), and tagged by its alias. As
 * a survives, it still existed when b's helper dumped the links after
 * creating b, so that dump counted it. Had limit survivors lain below b,
 * b's helper would have counted at least limit and deleted b. And the
 * caller's lowest new link sees none of its rivals, so at least one of many
 * concurrent requests succeeds when the caller is below the limit.
 *
 * Returns 0 to keep the link, -EDQUOT, or -errno when the dump fails; the
 * dump, taken after the link was made, goes to ret_links.
 */
static int link_claim_within_limit(struct netlink *nl, unsigned uid, const char *group, int ifindex, unsigned limit,
                                   struct nl_array *ret_links, char *msg) {
        int r;

        r = nl_dump(nl, &link_kind, ret_links);
        if (r < 0)
                return nl_fail(nl, r, msg, "listing links");
        if (links_count_owned(ret_links, uid, group, ifindex) < limit)
                return 0;
        if (group)
                return netadm_fail(msg, -EDQUOT,
                                   "group '%s' has as many TAPs as vmgr-netadm allows (max_taps_per_group = %u)", group,
                                   limit);
        return netadm_fail(msg, -EDQUOT,
                           "uid %u holds as many groups as vmgr-netadm allows (max_groups_per_user = %u)", uid, limit);
}

/* The three service addresses a group puts on lo. */
static void group_lo_addrs(const struct vmgr_group_addrs *g, const struct in6_addr *ret[3]) {
        ret[0] = &g->management6;
        ret[1] = &g->logs6;
        ret[2] = &g->files6;
}

/* Bring lo up if it is down: the service addresses live there. Returns its ifindex or -errno. */
static int loopback_up(struct netlink *nl, char *msg) {
        struct nl_link lo;
        int r;

        r = link_get(nl, "lo", &lo);
        if (r < 0)
                return nl_fail(nl, r, msg, "looking up lo");
        if (!(lo.flags & IFF_UP)) {
                r = link_set(nl, lo.ifindex, true, NULL, -1);
                if (r < 0)
                        return nl_fail(nl, r, msg, "bringing lo up");
        }
        return lo.ifindex;
}

/* Create the group's bridge, the caller's from birth: made with
 * NLM_F_EXCL (a link of that name that exists already is not ours, and the
 * message says whose it is), within the limit, tagged. It stays down.
 * links gets a dump of the links taken after it was made. Returns its
 * ifindex or -errno with msg. */
static int group_bridge_claim(struct netlink *nl, unsigned uid, const struct vmgr_group_addrs *g, const char *alias,
                              unsigned max_groups, int *bridge_ifindex, struct nl_array *links, char *msg) {
        struct nl_link br;
        char owner[160];
        int r;

        r = bridge_create(nl, g->bridge, uid);
        if (r == -EEXIST) {
                if (link_get(nl, g->bridge, &br) < 0)
                        return netadm_fail(msg, -EADDRINUSE, "bridge %s already exists", g->bridge);
                return netadm_fail(msg, -EADDRINUSE, "bridge %s already exists and %s", g->bridge,
                                   link_owner_describe(&br, owner, sizeof(owner)));
        }
        if (r < 0)
                return nl_fail(nl, r, msg, "creating bridge %s", g->bridge);
        r = link_get(nl, g->bridge, &br);
        if (r < 0)
                return nl_fail(nl, r, msg, "looking up the new bridge");
        *bridge_ifindex = br.ifindex;

        r = link_claim_within_limit(nl, uid, NULL, br.ifindex, max_groups, links, msg);
        if (r < 0)
                return r;

        /* The alias cannot be given at creation (the kernel ignores it there). */
        r = link_set(nl, br.ifindex, false, alias, -1);
        if (r < 0)
                return nl_fail(nl, r, msg, "tagging the bridge");
        return br.ifindex;
}

/* Make the group's network; on failure *bridge_ifindex and lo_added say what to undo. */
static int group_build(struct netlink *nl, unsigned uid, const struct vmgr_group_addrs *g, const char *alias,
                       unsigned max_groups, int *bridge_ifindex, bool lo_added[3], int *lo_ifindex,
                       netlink_bridge_made_t bridge_made, bool *made_called, void *userdata, char *msg) {
        _cleanup_(nl_array_done) struct nl_array links = {};
        const struct in6_addr *lo_addrs[3];
        int ifindex, r;

        /* The bridge first, and the checks against the rest of the namespace
         * after: only what is the caller's may start (bridge_made) before
         * anything else is looked at, and a bridge that is down, without
         * addresses, ports or routes, disturbs nothing while they run. */
        ifindex = group_bridge_claim(nl, uid, g, alias, max_groups, bridge_ifindex, &links, msg);
        if (ifindex < 0)
                return ifindex;

        /* The bridge is the caller's now (made with NLM_F_EXCL, within the
         * limit, tagged): what needs only that may start, beside the rest. */
        if (bridge_made) {
                *made_called = true;
                r = bridge_made(ifindex, userdata, msg);
                if (r < 0)
                        return r;
        }

        r = group_check_free(nl, g, &links, msg);
        if (r < 0)
                return r;

        *lo_ifindex = loopback_up(nl, msg);
        if (*lo_ifindex < 0)
                return *lo_ifindex;

        /* Before the link goes up: the bridge must not configure itself from
         * the router advertisements our own dnsmasq sends. */
        r = sysctl_ipv6_conf_write(g->bridge, "accept_ra", "0", msg);
        if (r < 0)
                return r;
        /* The bridge is the only router on its segment and its addresses are
         * derived to be unique: without DAD its link-local address is usable at
         * once, so dnsmasq's first router advertisement already has a
         * link-local source (hosts ignore RAs from any other source). */
        r = sysctl_ipv6_conf_write(g->bridge, "accept_dad", "0", msg);
        if (r < 0)
                return r;

        /* Up first: the kernel refuses IPv6 routes through a link that is down. */
        r = link_set(nl, ifindex, true, NULL, -1);
        if (r < 0)
                return nl_fail(nl, r, msg, "bringing the bridge up");

        /* No prefix route from the kernel: ours below carries the source address. */
        r = addr_change(nl, RTM_NEWADDR, AF_INET6, ifindex, &g->gateway6, 64, IFA_F_NODAD | IFA_F_NOPREFIXROUTE);
        if (r < 0)
                return nl_fail(nl, r, msg, "adding the IPv6 gateway address");

        group_lo_addrs(g, lo_addrs);
        for (size_t i = 0; i < 3; i++) {
                r = addr_change(nl, RTM_NEWADDR, AF_INET6, *lo_ifindex, lo_addrs[i], 128, IFA_F_NODAD);
                if (r < 0) {
                        (void) nl_fail(nl, r, msg, "adding a service address on lo");
                        return r == -EEXIST ? -EADDRINUSE : r;
                }
                lo_added[i] = true;
        }

        r = route6_add_prefix(nl, &g->prefix6, ifindex, &g->management6);
        if (r < 0)
                return nl_fail(nl, r, msg, "adding the IPv6 prefix route");

        r = addr_change(nl, RTM_NEWADDR, AF_INET, ifindex, &g->gateway4, 24, 0);
        if (r < 0)
                return nl_fail(nl, r, msg, "adding the IPv4 gateway address");

        return 0;
}

/* Derive the group's names and addresses, and the alias that tags the
 * caller's links of it. Returns 0 or -EINVAL. */
static int group_derive(unsigned uid, const char *group, struct vmgr_group_addrs *ret_g,
                        char ret_alias[NETLINK_ALIAS_MAX]) {
        struct vmgr_group_addrs g;
        int r;

        r = vmgr_group_addrs_derive(uid, group, &g);
        if (r < 0)
                return r;
        r = vmgr_link_alias(uid, group, ret_alias, NETLINK_ALIAS_MAX);
        if (r < 0)
                return r;
        *ret_g = g;
        return 0;
}

/* The name of the TAP of (group, vm, nic) of uid. Returns 0 or -EINVAL. */
static int tap_name(unsigned uid, const char *group, const char *vm, enum vmgr_nic nic, char ret[IFNAMSIZ]) {
        struct vmgr_vm_addrs v;
        int r;

        r = vmgr_vm_addrs_derive(uid, group, vm, &v);
        if (r < 0)
                return r;
        memcpy(ret, nic == VMGR_NIC_IPV4 ? v.tap4 : v.tap, IFNAMSIZ);
        return 0;
}

int netlink_group_create(struct netlink *nl, unsigned uid, const char *group, unsigned max_groups,
                         netlink_bridge_made_t bridge_made, netlink_bridge_undo_t bridge_undo, void *userdata,
                         char *msg) {
        char alias[NETLINK_ALIAS_MAX];
        struct vmgr_group_addrs g;
        bool lo_added[3] = {}, made_called = false;
        int bridge_ifindex = -1, lo_ifindex = -1, r;

        r = group_derive(uid, group, &g, alias);
        if (r < 0)
                return r;

        r = group_build(nl, uid, &g, alias, max_groups, &bridge_ifindex, lo_added, &lo_ifindex, bridge_made,
                        &made_called, userdata, msg);
        if (r < 0) {
                /* Undo in reverse; the bridge takes its addresses and route with it. */
                const struct in6_addr *lo_addrs[3];

                if (made_called && bridge_undo)
                        bridge_undo(userdata);
                group_lo_addrs(&g, lo_addrs);
                for (size_t i = 0; i < 3; i++)
                        if (lo_added[i])
                                (void) addr_change(nl, RTM_DELADDR, AF_INET6, lo_ifindex, lo_addrs[i], 128, 0);
                if (bridge_ifindex > 0)
                        (void) link_delete(nl, bridge_ifindex);
                return r;
        }
        return 0;
}

/* Check that the group's bridge, if it exists, carries the caller's alias.
 * Returns 1 if it exists and is the caller's, 0 if it does not exist,
 * -EPERM if it is somebody else's. */
static int bridge_owned(const struct vmgr_group_addrs *g, const char *alias, const struct nl_link *br, char *msg) {
        char owner[160];

        if (!br)
                return 0;
        if (streq(br->alias, alias))
                return 1;
        return netadm_fail(msg, -EPERM, "bridge %s %s", g->bridge, link_owner_describe(br, owner, sizeof(owner)));
}

/* Whether l is a bridge that a helper of uid created and did not live to
 * tag: no alias, born in uid's owner group, where nobody but a helper of
 * uid (or root) puts a bridge. Named for the group, it is that group's,
 * half made: nothing else of the group is made before the bridge is tagged. */
static bool bridge_untagged_of(const struct nl_link *l, unsigned uid) {
        return streq(l->kind, "bridge") && !l->alias[0] && l->group == NETLINK_OWNER_GROUP(uid);
}

int netlink_group_delete(struct netlink *nl, unsigned uid, const char *group, char *msg) {
        _cleanup_(nl_array_done) struct nl_array links = {}, addrs = {};
        const struct in6_addr *lo_addrs[3];
        char alias[NETLINK_ALIAS_MAX];
        struct vmgr_group_addrs g;
        const struct nl_link *l;
        const struct nl_addr *a;
        bool prefix_is_ours = true, batched;
        int lo_ifindex = -1, r;

        r = group_derive(uid, group, &g, alias);
        if (r < 0)
                return r;

        r = nl_dump(nl, &link_kind, &links);
        if (r < 0)
                return nl_fail(nl, r, msg, "listing links");
        l = links_find_name(&links, g.bridge);
        /* What a helper killed during GROUP_CREATE may leave. */
        if (l && bridge_untagged_of(l, uid)) {
                r = link_delete(nl, l->ifindex);
                if (r < 0)
                        return nl_fail(nl, r, msg, "deleting the untagged bridge %s", g.bridge);
                l = NULL;
        }
        r = bridge_owned(&g, alias, l, msg);
        if (r < 0)
                return r;

        r = nl_dump(nl, &addr_kind, &addrs);
        if (r < 0)
                return nl_fail(nl, r, msg, "listing addresses");
        l = links_find_name(&links, "lo");
        if (l)
                lo_ifindex = l->ifindex;

        /* The lo service addresses are this group's only while no other link
         * holds an address of its /64: leave them to a group whose (different)
         * name happens to derive the same prefix. */
        a = addrs.items;
        for (size_t i = 0; i < addrs.n; i++) {
                const struct nl_link *owner;

                if (a[i].family != AF_INET6 || a[i].ifindex == lo_ifindex ||
                    !vmgr_in6_prefix_overlaps(&g.prefix6, 64, &a[i].addr.v6, 128))
                        continue;
                owner = links_find_index(&links, a[i].ifindex);
                if (!owner || !streq(owner->alias, alias))
                        prefix_is_ours = false;
        }

        r = links_delete_tagged_batch(nl, &links, alias);
        if (r < 0 && r != -EOPNOTSUPP)
                return nl_fail(nl, r, msg, "deleting the group's links");
        batched = r >= 0;
        /* Without batch deletion: ports first, then the bridge, so no TAP is
         * ever left without its master. Links already deleted are skipped. */
        for (int pass = 0; !batched && pass < 2; pass++) {
                l = links.items;
                for (size_t i = 0; i < links.n; i++) {
                        if (!streq(l[i].alias, alias) || streq(l[i].kind, "bridge") != (pass == 1))
                                continue;
                        r = link_delete(nl, l[i].ifindex);
                        if (r < 0)
                                return nl_fail(nl, r, msg, "deleting %s", l[i].name);
                }
        }

        if (!prefix_is_ours || lo_ifindex < 0)
                return 0;
        group_lo_addrs(&g, lo_addrs);
        for (size_t i = 0; i < 3; i++) {
                bool present = false;

                for (size_t j = 0; j < addrs.n && !present; j++)
                        present = a[j].family == AF_INET6 && a[j].ifindex == lo_ifindex && a[j].prefixlen == 128 &&
                                  memcmp(&a[j].addr.v6, lo_addrs[i], sizeof(struct in6_addr)) == 0;
                if (!present)
                        continue;
                r = addr_change(nl, RTM_DELADDR, AF_INET6, lo_ifindex, lo_addrs[i], 128, 0);
                if (r < 0 && r != -EADDRNOTAVAIL)
                        return nl_fail(nl, r, msg, "deleting a service address on lo");
        }
        return 0;
}

/* Look up the group's bridge and check it is the caller's. Returns its
 * ifindex, -ENODEV or -EPERM with msg, or -errno. */
static int bridge_lookup_owned(struct netlink *nl, const struct vmgr_group_addrs *g, const char *group,
                               const char *alias, char *msg) {
        struct nl_link br;
        int r;

        r = link_get(nl, g->bridge, &br);
        if (r == -ENODEV)
                return netadm_fail(msg, r, "bridge %s of group '%s' does not exist", g->bridge, group);
        if (r < 0)
                return nl_fail(nl, r, msg, "looking up the bridge");
        r = bridge_owned(g, alias, &br, msg);
        if (r < 0)
                return r;
        return br.ifindex;
}

int netlink_bridge_check_owner(struct netlink *nl, unsigned uid, const char *group, char *msg) {
        char alias[NETLINK_ALIAS_MAX];
        struct vmgr_group_addrs g;
        int r;

        r = group_derive(uid, group, &g, alias);
        if (r < 0)
                return r;
        return bridge_lookup_owned(nl, &g, group, alias, msg);
}

/* Create a persistent TAP owned by uid. Returns 0 or -errno with msg. */
static int tap_make_persistent(const char *name, unsigned uid, char *msg) {
        _cleanup_close_ int fd = -EBADF;
        struct ifreq ifr = {};
        int r;

        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                return netadm_fail(msg, r, "opening /dev/net/tun: %m");
        }
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                r = negative_errno();
                return netadm_fail(msg, r, "creating TAP %s: %m", name);
        }
        /* TUNSETIFF also attaches to an existing TAP: if one appeared since we
         * looked, it is not ours to take over. */
        if (ioctl(fd, TUNGETIFF, &ifr) < 0 || (ifr.ifr_flags & IFF_PERSIST))
                return netadm_fail(msg, -EEXIST, "TAP %s appeared while it was being created", name);
        if (ioctl(fd, TUNSETOWNER, (unsigned long) uid) < 0 || ioctl(fd, TUNSETPERSIST, 1UL) < 0) {
                r = negative_errno();
                return netadm_fail(msg, r, "setting up TAP %s: %m", name);
        }
        return 0;
}

/* Whether l is a TAP that a helper of uid made persistent and did not live
 * to tag (killed between TUNSETPERSIST and setting its alias): no alias,
 * persistent, owned by uid. Only a helper of uid (or root) makes a
 * persistent TAP owned by uid; named for the caller's VM, it is that VM's,
 * half made, and would otherwise stay for ever, neither taggable nor
 * deletable through the helper. */
static bool tap_untagged_of(const struct nl_link *l, unsigned uid) {
        return streq(l->kind, "tun") && !l->alias[0] && l->persistent && l->has_tun_owner && l->tun_owner == uid;
}

int netlink_tap_create(struct netlink *nl, unsigned uid, const char *group, const char *vm, enum vmgr_nic nic,
                       unsigned max_taps, char *msg) {
        _cleanup_(nl_array_done) struct nl_array links_now = {};
        _cleanup_(nl_array_done) struct nl_array links = {};
        char alias[NETLINK_ALIAS_MAX], owner[128];
        char name[IFNAMSIZ];
        struct vmgr_group_addrs g;
        struct nl_link tap;
        int bridge_ifindex, r;

        r = tap_name(uid, group, vm, nic, name);
        if (r < 0)
                return r;
        r = group_derive(uid, group, &g, alias);
        if (r < 0)
                return r;

        bridge_ifindex = bridge_lookup_owned(nl, &g, group, alias, msg);
        if (bridge_ifindex < 0)
                return bridge_ifindex;

        r = nl_dump(nl, &link_kind, &links);
        if (r < 0)
                return nl_fail(nl, r, msg, "listing links");
        /* The cheap refusal; link_claim_within_limit() makes it exact. */
        if (links_count_owned(&links, uid, group, INT_MAX) >= max_taps)
                return netadm_fail(msg, -EDQUOT,
                                   "group '%s' has as many TAPs as vmgr-netadm allows (max_taps_per_group = %u)", group,
                                   max_taps);

        r = link_get(nl, name, &tap);
        /* What a helper killed during TAP_CREATE may leave: made again. */
        if (r >= 0 && tap_untagged_of(&tap, uid)) {
                r = link_delete(nl, tap.ifindex);
                if (r < 0)
                        return nl_fail(nl, r, msg, "deleting the untagged TAP %s", name);
                r = -ENODEV;
        }
        if (r >= 0)
                return netadm_fail(msg, -EEXIST, "TAP %s already exists and %s", name,
                                   link_owner_describe(&tap, owner, sizeof(owner)));
        if (r != -ENODEV)
                return nl_fail(nl, r, msg, "looking up the TAP");

        r = tap_make_persistent(name, uid, msg);
        if (r < 0)
                return r;

        r = link_get(nl, name, &tap);
        if (r < 0)
                return nl_fail(nl, r, msg, "looking up the new TAP");
        r = link_claim_within_limit(nl, uid, group, tap.ifindex, max_taps, &links_now, msg);
        if (r < 0) {
                (void) link_delete(nl, tap.ifindex);
                return r;
        }
        r = link_set(nl, tap.ifindex, true, alias, bridge_ifindex);
        if (r < 0) {
                (void) nl_fail(nl, r, msg, "adding %s to bridge %s", name, g.bridge);
                (void) link_delete(nl, tap.ifindex);
                return r;
        }
        return 0;
}

int netlink_tap_delete(struct netlink *nl, unsigned uid, const char *group, const char *vm, enum vmgr_nic nic,
                       char *msg) {
        char alias[NETLINK_ALIAS_MAX], owner[128];
        char name[IFNAMSIZ];
        struct nl_link tap;
        int r;

        r = tap_name(uid, group, vm, nic, name);
        if (r < 0)
                return r;
        r = vmgr_link_alias(uid, group, alias, sizeof(alias));
        if (r < 0)
                return r;

        r = link_get(nl, name, &tap);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return nl_fail(nl, r, msg, "looking up the TAP");
        if (!streq(tap.alias, alias) && !tap_untagged_of(&tap, uid))
                return netadm_fail(msg, -EPERM, "TAP %s %s", name, link_owner_describe(&tap, owner, sizeof(owner)));
        r = link_delete(nl, tap.ifindex);
        if (r < 0)
                return nl_fail(nl, r, msg, "deleting TAP %s", name);
        return 0;
}
