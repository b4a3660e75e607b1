/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * IDENTITY, applied. rtnetlink by hand as in netinfo.c (the agent is static
 * and Debian's libmnl is shared only): a handful of requests, each waited
 * for with its acknowledgement, on a socket with a receive timeout so that
 * a kernel that does not answer cannot hang the agent.
 */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/random.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "identity.h"
#include "log-forward.h"
#include "macro.h"

/* The default guest's DHCP client (guest/init starts it so). */
#define UDHCPC_SCRIPT "/etc/vmgr/udhcpc.script"
#define UDHCPC_PIDFILE_FMT "/run/vmgr/udhcpc.%s.pid"
/* How long after an IDENTITY a static IPv4 address removed by the DHCP
 * client's start is put back (its lease normally comes well before). */
#define RECHECK_SEC 15

extern char **environ;

struct nic_state {
        int ifindex;
        char ifname[IF_NAMESIZE];
};

/* Static IPv4 configurations to keep until the DHCP client has its lease. */
static struct {
        size_t n;
        struct {
                int ifindex;
                uint8_t address[4], gateway[4], prefixlen;
        } nics[VMGR_AGENT_IDENTITY_NICS_MAX];
        struct timespec until;
} recheck;

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* Set why to the formatted sentence (%m: -r). Returns r. */
_printf_(4, 5) static int fail(int r, char *why, size_t size, const char *fmt, ...) {
        va_list ap;

        errno = -r;
        va_start(ap, fmt);
        vsnprintf(why, size, fmt, ap);
        va_end(ap);
        return r;
}

/* --- rtnetlink ------------------------------------------------------------ */

struct nlreq {
        struct nlmsghdr h;
        union {
                struct ifinfomsg ifi;
                struct ifaddrmsg ifa;
                struct rtmsg rtm;
        };
        uint8_t attrs[128];
};

static uint32_t nl_seq;

/* Append an attribute to q. */
static void nl_attr(struct nlreq *q, uint16_t type, const void *data, size_t len) {
        struct rtattr *a = (struct rtattr *) ((uint8_t *) q + NLMSG_ALIGN(q->h.nlmsg_len));

        /* Sizes here are fixed and small; attrs has room for all of them. */
        a->rta_type = type;
        a->rta_len = (unsigned short) RTA_LENGTH(len);
        memcpy(RTA_DATA(a), data, len);
        q->h.nlmsg_len = NLMSG_ALIGN(q->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Open the socket for our requests. Returns the fd or -errno. */
static int nl_open(void) {
        struct timeval tv = { .tv_sec = 2 };
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

        if (fd < 0)
                return negative_errno();
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

/*
 * Send q and read the answers: with NLM_F_DUMP, each message goes to parse
 * until NLMSG_DONE; otherwise wait for the acknowledgement. Returns 0 or the
 * kernel's -errno.
 */
static int nl_call(int fd, struct nlreq *q, void (*parse)(struct nlmsghdr *h, void *userdata), void *userdata) {
        static uint8_t buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));

        q->h.nlmsg_flags |= NLM_F_REQUEST | (parse ? 0 : NLM_F_ACK);
        q->h.nlmsg_seq = ++nl_seq;
        if (send(fd, q, q->h.nlmsg_len, 0) < 0)
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
                for (size_t off = 0; off + sizeof(struct nlmsghdr) <= (size_t) n; off += NLMSG_ALIGN(h->nlmsg_len)) {
                        h = (struct nlmsghdr *) (buf + off);
                        if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t) n - off)
                                break;
                        if (h->nlmsg_seq != nl_seq)
                                continue;
                        if (h->nlmsg_type == NLMSG_DONE)
                                return 0;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                struct nlmsgerr *e = NLMSG_DATA(h);
                                return h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) ? e->error : -EIO;
                        }
                        if (parse)
                                parse(h, userdata);
                }
        }
}

/* Bring a link up or down. Returns 0 or -errno. */
static int link_set_up(int fd, int ifindex, bool up) {
        struct nlreq q = {
                .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)), .nlmsg_type = RTM_NEWLINK },
                .ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex, .ifi_change = IFF_UP,
                         .ifi_flags = up ? IFF_UP : 0 },
        };
        return nl_call(fd, &q, NULL, NULL);
}

/* Set a link's MAC. Returns 0 or -errno. */
static int link_set_mac(int fd, int ifindex, const uint8_t mac[6]) {
        struct nlreq q = {
                .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)), .nlmsg_type = RTM_NEWLINK },
                .ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex },
        };
        nl_attr(&q, IFLA_ADDRESS, mac, 6);
        return nl_call(fd, &q, NULL, NULL);
}

struct addr_list {
        int ifindex;
        size_t n;
        struct {
                uint8_t family, prefixlen;
                uint8_t address[16];
        } a[64];
};

/* Collect the addresses of one link from an RTM_GETADDR dump. */
static void addr_collect(struct nlmsghdr *h, void *userdata) {
        struct addr_list *l = userdata;
        struct ifaddrmsg *ifa = NLMSG_DATA(h);
        int len = (int) IFA_PAYLOAD(h);
        size_t alen = ifa->ifa_family == AF_INET ? 4 : 16;

        if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) ||
            (int) ifa->ifa_index != l->ifindex || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) ||
            l->n >= ELEMENTSOF(l->a))
                return;
        for (struct rtattr *r = IFA_RTA(ifa); RTA_OK(r, len); r = RTA_NEXT(r, len))
                if ((r->rta_type == IFA_LOCAL || (r->rta_type == IFA_ADDRESS && ifa->ifa_family == AF_INET6)) &&
                    RTA_PAYLOAD(r) == alen) {
                        l->a[l->n].family = ifa->ifa_family;
                        l->a[l->n].prefixlen = ifa->ifa_prefixlen;
                        memset(l->a[l->n].address, 0, 16);
                        memcpy(l->a[l->n].address, RTA_DATA(r), alen);
                        l->n++;
                        return;
                }
}

/* The addresses of a link, both families. Returns 0 or -errno. */
static int addr_list(int fd, int ifindex, struct addr_list *l) {
        struct nlreq q = {
                .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)), .nlmsg_type = RTM_GETADDR,
                       .nlmsg_flags = NLM_F_DUMP },
                .ifa = { .ifa_family = AF_UNSPEC },
        };
        l->ifindex = ifindex;
        l->n = 0;
        return nl_call(fd, &q, addr_collect, l);
}

/* Add (add) or remove an address. Returns 0 or -errno. */
static int addr_change(int fd, bool add, int ifindex, int family, const uint8_t *address, uint8_t prefixlen,
                       uint8_t flags) {
        struct nlreq q = {
                .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)),
                       .nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR,
                       .nlmsg_flags = add ? NLM_F_CREATE | NLM_F_REPLACE : 0 },
                .ifa = { .ifa_family = (uint8_t) family, .ifa_prefixlen = prefixlen, .ifa_flags = flags,
                         .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = (uint32_t) ifindex },
        };
        size_t alen = family == AF_INET ? 4 : 16;

        nl_attr(&q, IFA_LOCAL, address, alen);
        nl_attr(&q, IFA_ADDRESS, address, alen);
        return nl_call(fd, &q, NULL, NULL);
}

/* Route dst/dstlen via gateway on ifindex (replacing one to the same
 * destination). Returns 0 or -errno. */
static int route_add(int fd, int ifindex, int family, const uint8_t *dst, uint8_t dstlen, const uint8_t *gateway) {
        struct nlreq q = {
                .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg)), .nlmsg_type = RTM_NEWROUTE,
                       .nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE },
                .rtm = { .rtm_family = (uint8_t) family, .rtm_dst_len = dstlen, .rtm_table = RT_TABLE_MAIN,
                         .rtm_protocol = RTPROT_STATIC, .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST },
        };
        size_t alen = family == AF_INET ? 4 : 16;
        uint32_t oif = (uint32_t) ifindex;

        if (dstlen > 0)
                nl_attr(&q, RTA_DST, dst, alen);
        nl_attr(&q, RTA_GATEWAY, gateway, alen);
        nl_attr(&q, RTA_OIF, &oif, sizeof(oif));
        return nl_call(fd, &q, NULL, NULL);
}

/* --- the steps ------------------------------------------------------------ */

/* Credit the host's entropy to the kernel and reseed its CRNG at once, so
 * that no random byte after this is one the template (or another clone of
 * it) could also produce. Returns 0 or -errno (why set). */
static int rng_seed(const struct vmgr_agent_identity *id, char *why, size_t size) {
        union {
                struct rand_pool_info info;
                uint8_t raw[sizeof(struct rand_pool_info) + VMGR_AGENT_ENTROPY_MAX];
        } p;
        _cleanup_close_ int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC | O_NOCTTY);
        int r = 0;

        if (fd < 0)
                return fail(negative_errno(), why, size, "cannot open /dev/urandom: %m");
        p.info.entropy_count = (int) (id->entropy_size * 8);
        p.info.buf_size = (int) id->entropy_size;
        memcpy(p.info.buf, id->entropy, id->entropy_size);
        if (ioctl(fd, RNDADDENTROPY, &p.info) < 0)
                r = fail(negative_errno(), why, size, "cannot add the host's entropy to the kernel's: %m");
        else if (ioctl(fd, RNDRESEEDCRNG) < 0)
                r = fail(negative_errno(), why, size, "cannot reseed the kernel's random number generator: %m");
        explicit_bzero(&p, sizeof(p));
        return r;
}

/* The host's time. Returns 0 or -errno (why set). */
static int clock_set(const struct vmgr_agent_identity *id, char *why, size_t size) {
        struct timespec ts = { .tv_sec = (time_t) (id->realtime_nsec / 1000000000ULL),
                               .tv_nsec = (long) (id->realtime_nsec % 1000000000ULL) };

        if (clock_settime(CLOCK_REALTIME, &ts) < 0)
                return fail(negative_errno(), why, size, "cannot set the clock: %m");
        return 0;
}

/* Replace path's contents by n bytes, atomically (a temporary file renamed
 * over it), keeping its mode. Returns 0 or -errno. */
static int write_file_atomic(const char *path, const char *data, size_t n) {
        char tmp[PATH_MAX];
        struct stat st;
        mode_t mode = stat(path, &st) == 0 ? st.st_mode & 07777 : 0644;
        int fd, r = 0;

        snprintf(tmp, sizeof(tmp), "%s.vmgr-agent.tmp", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        errno = EIO; /* a short write sets none */
        if (write(fd, data, n) != (ssize_t) n || fchmod(fd, mode) < 0)
                r = negative_errno();
        if (close(fd) < 0 && r == 0)
                r = negative_errno();
        if (r == 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

/* /etc/hosts with its 127.0.1.1 line naming hostname (added if missing),
 * every other line kept. Returns 0 or -errno. */
static int hosts_update(const char *hostname) {
        static char in[65536], out[65536 + 512];
        size_t len = 0, o = 0;
        bool found = false;
        int fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd >= 0) {
                ssize_t n;
                while (len < sizeof(in) - 1 && (n = read(fd, in + len, sizeof(in) - 1 - len)) > 0)
                        len += (size_t) n;
                close(fd);
        } else if (errno != ENOENT)
                return negative_errno();
        in[len] = 0;
        for (char *line = in, *end; line < in + len; line = end + 1) {
                end = strchr(line, '\n');
                if (!end)
                        end = in + len;
                if (strncmp(line, "127.0.1.1", 9) == 0 && (line[9] == ' ' || line[9] == '\t')) {
                        if (!found)
                                o += (size_t) snprintf(out + o, sizeof(out) - o, "127.0.1.1\t%s\n", hostname);
                        found = true;
                } else
                        o += (size_t) snprintf(out + o, sizeof(out) - o, "%.*s\n", (int) (end - line), line);
                if (o >= sizeof(out))
                        return -EFBIG;
        }
        if (!found)
                o += (size_t) snprintf(out + o, sizeof(out) - o, "127.0.1.1\t%s\n", hostname);
        if (o >= sizeof(out))
                return -EFBIG;
        return write_file_atomic("/etc/hosts", out, o);
}

/* The kernel's hostname and the files that name it. Returns 0 or -errno (why set). */
static int hostname_set(const char *hostname, char *why, size_t size) {
        char line[VMGR_AGENT_NAME_MAX + 2];
        int r;

        if (sethostname(hostname, strlen(hostname)) < 0)
                return fail(negative_errno(), why, size, "cannot set the hostname: %m");
        snprintf(line, sizeof(line), "%s\n", hostname);
        r = write_file_atomic("/etc/hostname", line, strlen(line));
        if (r < 0)
                return fail(r, why, size, "cannot write /etc/hostname: %m");
        r = hosts_update(hostname);
        if (r < 0)
                return fail(r, why, size, "cannot write /etc/hosts: %m");
        return 0;
}

/* Whether a sysfs path component is a PCI function address (DDDD:BB:SS.F). */
static bool is_pci_function(const char *c, size_t n) {
        if (n != 12 || c[4] != ':' || c[7] != ':' || c[10] != '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (i != 4 && i != 7 && i != 10 && !strchr("0123456789abcdef", c[i]))
                        return false;
        return true;
}

/* The network interface whose device is the PCI function slot: the nearest
 * PCI function above /sys/class/net/IF/device, as systemd's "path" names and
 * guest/init's predictable_name() have it (a virtio-net interface's device
 * is virtioN, whose parent is the function). Returns 0 with *nic set, or
 * -ENODEV. */
static int nic_find(const char *slot, struct nic_state *nic) {
        _cleanup_(closedirp) DIR *d = opendir("/sys/class/net");
        struct dirent *de;

        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                char link[PATH_MAX], real[PATH_MAX];

                if (de->d_name[0] == '.' || strlen(de->d_name) >= IF_NAMESIZE)
                        continue;
                snprintf(link, sizeof(link), "/sys/class/net/%s/device", de->d_name);
                if (!realpath(link, real))
                        continue;
                /* The deepest component that is a PCI function. */
                for (char *end = real + strlen(real); end > real;) {
                        char *start = end;
                        while (start > real && start[-1] != '/')
                                start--;
                        if (is_pci_function(start, (size_t) (end - start))) {
                                if (strncmp(start, slot, 12) == 0) {
                                        snprintf(nic->ifname, sizeof(nic->ifname), "%s", de->d_name);
                                        nic->ifindex = (int) if_nametoindex(de->d_name);
                                        return nic->ifindex > 0 ? 0 : -ENODEV;
                                }
                                break;
                        }
                        end = start > real ? start - 1 : real;
                }
        }
        return -ENODEV;
}

/* Spawn argv detached (own session, /dev/null for stdio, default signals),
 * not waited for: the agent's SIGCHLD handling reaps it. Returns 0 or -errno. */
static int spawn_detached(char *const argv[]) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        pid_t pid;
        int r;

        posix_spawn_file_actions_init(&fa);
        for (int i = 0; i < 3; i++)
                posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
        posix_spawnattr_init(&attr);
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
        r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

/* Whether systemd-networkd manages the network (a distribution's image). */
static bool networkd_runs(void) {
        return access("/run/systemd/netif/links", F_OK) == 0;
}

/* Whether pid runs: exists and is not a zombie (one that init has not
 * reaped yet has exited as far as we care). */
static bool process_alive(pid_t pid) {
        char path[64], buf[512], *close_paren;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = 0;
        /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses. */
        close_paren = strrchr(buf, ')');
        return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/* Stop the default guest's udhcpc on ifname, if it runs: its lease is the
 * template's, for the template's MAC. SIGTERM without -R releases nothing
 * and runs no "deconfig". Waits up to 1 s, then SIGKILL. */
static void udhcpc_stop(const char *ifname) {
        char path[64], buf[32], comm[32];
        int fd;
        ssize_t n;
        pid_t pid;

        snprintf(path, sizeof(path), UDHCPC_PIDFILE_FMT, ifname);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return;
        buf[n] = 0;
        pid = (pid_t) strtol(buf, NULL, 10);
        if (pid <= 1)
                return;
        /* Only if that pid is still a udhcpc (not a recycled pid). */
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return;
        n = read(fd, comm, sizeof(comm) - 1);
        close(fd);
        if (n <= 0)
                return;
        comm[n] = 0;
        comm[strcspn(comm, "\n")] = 0;
        if (!streq(comm, "udhcpc"))
                return;
        if (kill(pid, SIGTERM) < 0)
                return;
        for (int i = 0; i < 100 && process_alive(pid); i++)
                usleep(10000);
        if (process_alive(pid))
                (void) kill(pid, SIGKILL);
        log_info("stopped udhcpc on %s (pid %d): its lease was for the old MAC", ifname, (int) pid);
}

/* Before the MACs change: stop DHCP clients that would renew the old lease. */
static void dhcp_stop(const struct nic_state *nics, const struct vmgr_agent_identity *id) {
        for (size_t i = 0; i < id->n_nics; i++)
                if (id->nics[i].family == VMGR_AGENT_FAMILY_IPV4)
                        udhcpc_stop(nics[i].ifname);
}

/* After: a new lease for the new MAC, under the new hostname, not waited
 * for (the static address is there already). Best effort: logged. */
static void dhcp_start(const struct nic_state *nics, const struct vmgr_agent_identity *id) {
        for (size_t i = 0; i < id->n_nics; i++) {
                const char *ifname = nics[i].ifname;
                char pidfile[64], hostopt[VMGR_AGENT_NAME_MAX + 16];
                int r;

                if (id->nics[i].family != VMGR_AGENT_FAMILY_IPV4)
                        continue;
                if (networkd_runs()) {
                        char *argv[] = { "networkctl", "renew", (char *) ifname, NULL };
                        r = spawn_detached(argv);
                        if (r < 0)
                                log_error_errno(r, "cannot run networkctl renew %s: %m", ifname);
                        continue;
                }
                if (access(UDHCPC_SCRIPT, X_OK) < 0)
                        continue; /* no DHCP client we know of: the static address stays */
                snprintf(pidfile, sizeof(pidfile), UDHCPC_PIDFILE_FMT, ifname);
                snprintf(hostopt, sizeof(hostopt), "hostname:%s", id->hostname);
                char *argv[] = { "udhcpc", "-i", (char *) ifname, "-s", UDHCPC_SCRIPT, "-n", "-t", "5", "-T", "2",
                                 "-p", pidfile, "-x", hostopt, NULL };
                r = spawn_detached(argv);
                if (r < 0)
                        log_error_errno(r, "cannot start udhcpc on %s: %m", ifname);
        }
}

/* One NIC: its MAC (with the link down: any driver takes it then, and going
 * down drops the neighbours, IPv6 addresses and routes the template had
 * learnt there, link-local included; it comes back from the new MAC), no
 * address of the template's, then its own address and routes. Returns 0 or
 * -errno (why set). */
static int nic_apply(int fd, const struct vmgr_agent_identity_nic *n, const struct nic_state *nic, char *why,
                     size_t size) {
        int family = n->family == VMGR_AGENT_FAMILY_IPV4 ? AF_INET : AF_INET6;
        static const uint8_t any[16];
        struct addr_list l;
        uint8_t dst[16];
        int r;

        r = link_set_up(fd, nic->ifindex, false);
        if (r < 0)
                return fail(r, why, size, "cannot take %s down: %m", nic->ifname);
        r = link_set_mac(fd, nic->ifindex, n->mac);
        if (r < 0)
                return fail(r, why, size, "cannot set the MAC of %s: %m", nic->ifname);
        /* IPv4 addresses survive going down (and IPv6 ones with keep_addr_on_down). */
        r = addr_list(fd, nic->ifindex, &l);
        if (r < 0)
                return fail(r, why, size, "cannot list the addresses of %s: %m", nic->ifname);
        for (size_t i = 0; i < l.n; i++) {
                r = addr_change(fd, false, nic->ifindex, l.a[i].family, l.a[i].address, l.a[i].prefixlen, 0);
                if (r < 0 && r != -EADDRNOTAVAIL)
                        return fail(r, why, size, "cannot remove an old address from %s: %m", nic->ifname);
        }
        r = link_set_up(fd, nic->ifindex, true);
        if (r < 0)
                return fail(r, why, size, "cannot bring %s up: %m", nic->ifname);
        /* Unique by construction (derived from the VM's own MAC and
         * group): no duplicate address detection to wait for. */
        r = addr_change(fd, true, nic->ifindex, family, n->address, n->prefixlen,
                        family == AF_INET6 ? IFA_F_NODAD : 0);
        /* SLAAC of the same MAC makes the same address: when it lands between
         * the kernel's lookup and its insert, the add fails with EEXIST
         * despite NLM_F_REPLACE; a second try replaces the address. */
        if (r == -EEXIST)
                r = addr_change(fd, true, nic->ifindex, family, n->address, n->prefixlen,
                                family == AF_INET6 ? IFA_F_NODAD : 0);
        if (r < 0)
                return fail(r, why, size, "cannot add the address to %s: %m", nic->ifname);
        if (n->service_prefixlen > 0) {
                memset(dst, 0, sizeof(dst));
                memcpy(dst, n->address, n->service_prefixlen / 8);
                if (n->service_prefixlen % 8)
                        dst[n->service_prefixlen / 8] = n->address[n->service_prefixlen / 8] &
                                                        (uint8_t) (0xff00u >> (n->service_prefixlen % 8));
                r = route_add(fd, nic->ifindex, family, dst, n->service_prefixlen, n->gateway);
                if (r < 0)
                        return fail(r, why, size, "cannot route the group's service prefix via %s: %m", nic->ifname);
        }
        r = route_add(fd, nic->ifindex, family, any, 0, n->gateway);
        if (r < 0)
                return fail(r, why, size, "cannot add the default route via %s: %m", nic->ifname);
        return 0;
}

int identity_apply(const struct vmgr_agent_identity *id, char *why, size_t size) {
        struct nic_state nics[VMGR_AGENT_IDENTITY_NICS_MAX] = {};
        _cleanup_close_ int fd = -EBADF;
        int r;

        recheck.n = 0;
        /* Find every NIC before changing anything: an IDENTITY that does
         * not fit this machine changes nothing. */
        for (size_t i = 0; i < id->n_nics; i++) {
                r = nic_find(id->nics[i].pci_slot, &nics[i]);
                if (r < 0)
                        return fail(r, why, size, "no network interface in PCI slot %s", id->nics[i].pci_slot);
        }
        r = rng_seed(id, why, size);
        if (r < 0)
                return r;
        r = clock_set(id, why, size);
        if (r < 0)
                return r;
        r = hostname_set(id->hostname, why, size);
        if (r < 0)
                return r;
        fd = nl_open();
        if (fd < 0)
                return fail(fd, why, size, "cannot open a netlink socket: %m");
        dhcp_stop(nics, id);
        for (size_t i = 0; i < id->n_nics; i++) {
                r = nic_apply(fd, &id->nics[i], &nics[i], why, size);
                if (r < 0)
                        return r;
                if (id->nics[i].family == VMGR_AGENT_FAMILY_IPV4) {
                        size_t k = recheck.n++;
                        recheck.nics[k].ifindex = nics[i].ifindex;
                        memcpy(recheck.nics[k].address, id->nics[i].address, 4);
                        memcpy(recheck.nics[k].gateway, id->nics[i].gateway, 4);
                        recheck.nics[k].prefixlen = id->nics[i].prefixlen;
                }
                log_info("%s (%s): MAC %02x:%02x:%02x:%02x:%02x:%02x", nics[i].ifname, id->nics[i].pci_slot,
                         id->nics[i].mac[0], id->nics[i].mac[1], id->nics[i].mac[2], id->nics[i].mac[3],
                         id->nics[i].mac[4], id->nics[i].mac[5]);
        }
        clock_gettime(CLOCK_MONOTONIC, &recheck.until);
        recheck.until.tv_sec += RECHECK_SEC;
        dhcp_start(nics, id);
        return 0;
}

void identity_recheck(void) {
        _cleanup_close_ int fd = -EBADF;
        struct timespec now;

        if (recheck.n == 0)
                return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > recheck.until.tv_sec) {
                recheck.n = 0;
                return;
        }
        fd = nl_open();
        if (fd < 0)
                return;
        for (size_t i = 0; i < recheck.n; i++) {
                static const uint8_t any[4];
                struct addr_list l;
                bool has_ipv4 = false;

                if (addr_list(fd, recheck.nics[i].ifindex, &l) < 0)
                        continue;
                for (size_t j = 0; j < l.n; j++)
                        has_ipv4 |= l.a[j].family == AF_INET;
                /* Only while the interface has no IPv4 address at all (the
                 * DHCP client's "deconfig"): a lease for another address is
                 * the DHCP server's word and is not fought. */
                if (has_ipv4)
                        continue;
                if (addr_change(fd, true, recheck.nics[i].ifindex, AF_INET, recheck.nics[i].address,
                                recheck.nics[i].prefixlen, 0) < 0)
                        continue;
                (void) route_add(fd, recheck.nics[i].ifindex, AF_INET, any, 0, recheck.nics[i].gateway);
                log_info("put %u.%u.%u.%u/%u back on interface %d until the DHCP client has its lease",
                         recheck.nics[i].address[0], recheck.nics[i].address[1], recheck.nics[i].address[2],
                         recheck.nics[i].address[3], recheck.nics[i].prefixlen, recheck.nics[i].ifindex);
        }
}
