/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>

#include "macro.h"
#include "netadm-proto.h"
#include "test.h"

static void test_init_and_validate(void) {
        struct vmgr_netadm_request req;
        const char *why = NULL;

        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_GROUP_CREATE, 7, "demo", NULL, 0, NULL) == 0);
        CHECK(vmgr_netadm_request_validate(&req, sizeof(req), &why) == 0);
        CHECK(req.serial == 7);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_TAP_CREATE, 1, "demo", "a", VMGR_NIC_IPV4, NULL) == 0);
        CHECK(vmgr_netadm_request_validate(&req, sizeof(req), &why) == 0);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_DNSMASQ_START, 1, "demo", NULL, 0, "/run/user/1000/vmgr/groups/demo") == 0);
        CHECK(vmgr_netadm_request_validate(&req, sizeof(req), &why) == 0);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_OUTBOUND_ENABLE, 2, "demo", NULL, 0, NULL) == 0);
        CHECK(vmgr_netadm_request_validate(&req, sizeof(req), &why) == 0);
        CHECK_STREQ(vmgr_netadm_op_to_string(VMGR_NETADM_OUTBOUND_ENABLE), "outbound-enable");
        /* It names a group and nothing else: a VM, NIC or directory given
         * by mistake is dropped, and one sent anyway is refused below. */
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_OUTBOUND_ENABLE, 2, "demo", "a", VMGR_NIC_IPV4, "/tmp") == 0);
        CHECK(!req.vm[0] && req.nic == 0 && !req.dir[0]);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_OUTBOUND_ENABLE, 2, "bad name", NULL, 0, NULL) == -EINVAL);

        /* Arguments that do not fit the shape are refused before anything is sent. */
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_GROUP_CREATE, 1, "bad name", NULL, 0, NULL) == -EINVAL);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_TAP_CREATE, 1, "demo", NULL, 0, NULL) == -EINVAL);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_TAP_CREATE, 1, "demo", "a", 7, NULL) == -EINVAL);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_DNSMASQ_START, 1, "demo", NULL, 0, "relative") == -EINVAL);
        /* GROUP_START takes a directory, like DNSMASQ_START, and nothing else. */
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_GROUP_START, 4, "demo", NULL, 0, "/run/user/1000/vmgr/groups/demo") == 0);
        CHECK(vmgr_netadm_request_validate(&req, sizeof(req), &why) == 0);
        CHECK_STREQ(vmgr_netadm_op_to_string(VMGR_NETADM_GROUP_START), "group-start");
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_GROUP_START, 4, "demo", NULL, 0, NULL) == -EINVAL);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_GROUP_START, 4, "demo", NULL, 0, "relative") == -EINVAL);
        CHECK(vmgr_netadm_request_init(&req, VMGR_NETADM_GROUP_START, 4, "demo", "a", VMGR_NIC_IPV4, "/tmp") == 0);
        CHECK(!req.vm[0] && req.nic == 0);
        CHECK(vmgr_netadm_request_init(&req, 99, 1, "demo", NULL, 0, NULL) == -EINVAL);
}

/* Every way a peer could bend a request must be caught. */
static void test_malformed(void) {
        struct vmgr_netadm_request good, bad;
        const char *why;

        CHECK(vmgr_netadm_request_init(&good, VMGR_NETADM_TAP_CREATE, 3, "demo", "a", VMGR_NIC_PRIMARY, NULL) == 0);

        CHECK(vmgr_netadm_request_validate(&good, sizeof(good) - 1, &why) == -EBADMSG);
        CHECK(strstr(why, "size"));
        CHECK(vmgr_netadm_request_validate(&good, sizeof(good) + 1, &why) == -EBADMSG);

        bad = good;
        bad.magic ^= 1;
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        bad = good;
        bad.version = 2;
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        bad = good;
        bad.op = 0;
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        bad = good;
        bad.op = _VMGR_NETADM_OP_MAX;
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        /* Unterminated field. */
        bad = good;
        memset(bad.group, 'a', sizeof(bad.group));
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        /* Junk after the terminating NUL. */
        bad = good;
        bad.vm[sizeof(bad.vm) - 1] = 'x';
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        bad = good;
        bad.group[10] = 'x';
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        /* Shape of names and fields per op. */
        bad = good;
        strcpy(bad.group, "../x");
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        bad = good;
        bad.nic = 2;
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        bad = good;
        strcpy(bad.dir, "/tmp");
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        bad = good;
        bad.op = VMGR_NETADM_GROUP_CREATE; /* carries a VM name it must not have */
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        CHECK(strstr(why, "VM name"));
        bad = good;
        bad.op = VMGR_NETADM_OUTBOUND_ENABLE; /* the same for outbound */
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        CHECK(strstr(why, "VM name"));
        CHECK(vmgr_netadm_request_init(&bad, VMGR_NETADM_OUTBOUND_ENABLE, 3, "demo", NULL, 0, NULL) == 0);
        bad.nic = VMGR_NIC_PRIMARY + 1;
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        CHECK(strstr(why, "NIC"));
        CHECK(vmgr_netadm_request_init(&bad, VMGR_NETADM_OUTBOUND_ENABLE, 3, "demo", NULL, 0, NULL) == 0);
        strcpy(bad.dir, "/tmp");
        CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), &why) == -EBADMSG);
        CHECK(strstr(why, "directory"));

        /* Every single-byte corruption of the padding is refused. */
        for (size_t i = strlen(good.group) + 1; i < sizeof(good.group); i++) {
                bad = good;
                bad.group[i] = 1;
                CHECK(vmgr_netadm_request_validate(&bad, sizeof(bad), NULL) == -EBADMSG);
        }
}

static void test_dir_check(void) {
        const char *why;

        CHECK(vmgr_netadm_dir_check("/run/user/1000/vmgr/groups/demo", NULL) == 0);
        CHECK(vmgr_netadm_dir_check("/tmp/tmp.AbC+9_x-y/run", NULL) == 0);
        CHECK(vmgr_netadm_dir_check("", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("run", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("/a/../b", &why) == -EINVAL);
        CHECK(strstr(why, ".."));
        CHECK(vmgr_netadm_dir_check("/a/./b", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("/a/..", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("/a//b", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("/a,b", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("/a b", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("/a\nb", &why) == -EINVAL);
        CHECK(vmgr_netadm_dir_check("/a/..b", NULL) == 0);
}

static void test_reply_validate(void) {
        struct vmgr_netadm_reply rep = { .magic = VMGR_NETADM_MAGIC, .version = VMGR_NETADM_VERSION };

        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep) - 1) == -EBADMSG);
        rep.error = 5;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
        rep.error = -EPERM;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);
        memset(rep.message, 'x', sizeof(rep.message));
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);

        /* A message written twice, the second shorter: the first one's tail
         * after the NUL is read by nobody and is refused. */
        memset(rep.message, 0, sizeof(rep.message));
        snprintf(rep.message, sizeof(rep.message), "bridge vbr-0123456789 of group 'demo' is not yours");
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);
        snprintf(rep.message, sizeof(rep.message), "went away");
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
        memset(rep.message + strlen(rep.message), 0, sizeof(rep.message) - strlen(rep.message));
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);
        rep.message[sizeof(rep.message) - 1] = 'x';
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
        rep.message[sizeof(rep.message) - 1] = 0;

        /* A pid and an fd go together, and only with success. */
        rep.error = 0;
        rep.pid = 1234;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
        rep.has_fd = 1;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);
        rep.error = -ENODEV;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
        rep.error = 0;
        rep.pid = 0;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
        rep.pid = -1;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
        rep.has_fd = 2;
        rep.pid = 1234;
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == -EBADMSG);
}

static void test_reply_init(void) {
        struct vmgr_netadm_reply rep, again;
        char long_message[VMGR_NETADM_MESSAGE_MAX + 1];

        CHECK(vmgr_netadm_reply_init(&rep, 9, 0, 0, false, NULL) == 0);
        CHECK(rep.magic == VMGR_NETADM_MAGIC && rep.version == VMGR_NETADM_VERSION && rep.serial == 9);
        CHECK(rep.error == 0 && rep.pid == 0 && rep.has_fd == 0 && rep.message[0] == 0);
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);

        CHECK(vmgr_netadm_reply_init(&rep, 10, 0, 4321, true, "started") == 0);
        CHECK(rep.pid == 4321 && rep.has_fd == 1);
        CHECK_STREQ(rep.message, "started");
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);

        /* The helper's case: a message written twice in the reply itself,
         * then the reply rebuilt from its own fields. */
        memset(&rep, 0, sizeof(rep));
        snprintf(rep.message, sizeof(rep.message), "a much longer first message");
        snprintf(rep.message, sizeof(rep.message), "short");
        rep.error = -EPERM;
        rep.serial = 11;
        CHECK(vmgr_netadm_reply_init(&rep, rep.serial, rep.error, rep.pid, rep.has_fd, rep.message) == 0);
        CHECK_STREQ(rep.message, "short");
        for (size_t i = strlen("short"); i < sizeof(rep.message); i++)
                CHECK(rep.message[i] == 0);
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);

        /* What init builds from a valid reply's fields is that reply, byte for byte. */
        CHECK(vmgr_netadm_reply_init(&again, rep.serial, rep.error, rep.pid, rep.has_fd, rep.message) == 0);
        CHECK(memcmp(&again, &rep, sizeof(rep)) == 0);

        /* The validator's rules; nothing is written on failure. */
        again = rep;
        CHECK(vmgr_netadm_reply_init(&rep, 1, 1, 0, false, NULL) == -EINVAL);
        CHECK(vmgr_netadm_reply_init(&rep, 1, -4096, 0, false, NULL) == -EINVAL);
        CHECK(vmgr_netadm_reply_init(&rep, 1, 0, 5, false, NULL) == -EINVAL);
        CHECK(vmgr_netadm_reply_init(&rep, 1, 0, 0, true, NULL) == -EINVAL);
        CHECK(vmgr_netadm_reply_init(&rep, 1, -EIO, 5, true, NULL) == -EINVAL);
        CHECK(vmgr_netadm_reply_init(&rep, 1, 0, -5, false, NULL) == -EINVAL);
        memset(long_message, 'm', sizeof(long_message) - 1);
        long_message[sizeof(long_message) - 1] = 0;
        CHECK(vmgr_netadm_reply_init(&rep, 1, -EIO, 0, false, long_message) == -EINVAL);
        long_message[VMGR_NETADM_MESSAGE_MAX - 1] = 0;
        CHECK(memcmp(&again, &rep, sizeof(rep)) == 0);
        CHECK(vmgr_netadm_reply_init(&rep, 1, -EIO, 0, false, long_message) == 0);
        CHECK(vmgr_netadm_reply_validate(&rep, sizeof(rep)) == 0);
}

static void test_dnsmasq_argv(void) {
        char *argv[64], storage[4096];
        int n;
        bool found_range4 = false, found_ra = false, found_pid = false, found_iface = false;
        bool found_bind = false, quiet_dhcp = false, quiet_dhcp6 = false, quiet_ra = false, no_ping = false;
        bool no_user = false, no_group = false;

        n = vmgr_dnsmasq_argv("/usr/sbin/dnsmasq", 1000, "demo", "/run/x/groups/demo", argv, 64, storage,
                              sizeof(storage));
        CHECK(n > 10);
        CHECK(argv[n] == NULL);
        CHECK_STREQ(argv[0], "/usr/sbin/dnsmasq");
        for (int i = 0; i < n; i++) {
                found_range4 |= streq(argv[i], "--dhcp-range=10.1.90.2,10.1.90.254,255.255.255.0,1h");
                found_ra |= streq(argv[i], "--dhcp-range=fd00:dd38:f0ab::,ra-only,64");
                found_pid |= streq(argv[i], "--pid-file=/run/x/groups/demo/dnsmasq.pid");
                found_iface |= streq(argv[i], "--interface=vbr-dd38f0abd1");
                CHECK(!streq(argv[i], "--port=53"));
                found_bind |= streq(argv[i], "--bind-dynamic");
                /* No log line per DHCP exchange or RA; --log-dhcp would override the quiet options. */
                quiet_dhcp |= streq(argv[i], "--quiet-dhcp");
                quiet_dhcp6 |= streq(argv[i], "--quiet-dhcp6");
                quiet_ra |= streq(argv[i], "--quiet-ra");
                /* An offer at once: the ping check delays the first lease by seconds. */
                no_ping |= streq(argv[i], "--no-ping");
                /* No user or group to switch to: no NSS look-up at each start. */
                no_user |= streq(argv[i], "--user=");
                no_group |= streq(argv[i], "--group=");
                CHECK(!streq(argv[i], "--log-dhcp"));
        }
        CHECK(found_range4 && found_ra && found_pid && found_iface);
        CHECK(found_bind && quiet_dhcp && quiet_dhcp6 && quiet_ra && no_ping);
        CHECK(no_user && no_group);

        CHECK(vmgr_dnsmasq_argv("/usr/sbin/dnsmasq", 1000, "demo", "/run/x", argv, 5, storage, sizeof(storage)) ==
              -ENOBUFS);
        CHECK(vmgr_dnsmasq_argv("/usr/sbin/dnsmasq", 1000, "demo", "/run/x", argv, 64, storage, 64) == -ENOBUFS);
        CHECK(vmgr_dnsmasq_argv("/usr/sbin/dnsmasq", 1000, "demo", "rel", argv, 64, storage, sizeof(storage)) ==
              -EINVAL);
        CHECK(vmgr_dnsmasq_argv("/usr/sbin/dnsmasq", 1000, "-x", "/run", argv, 64, storage, sizeof(storage)) == -EINVAL);
}

int main(void) {
        test_init_and_validate();
        test_malformed();
        test_dir_check();
        test_reply_validate();
        test_reply_init();
        test_dnsmasq_argv();
        TEST_DONE();
}
