/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>

#include "agent-proto.h"
#include "macro.h"
#include "test.h"

static uint8_t wire[VMGR_AGENT_WIRE_MAX];

/* Encode m, run it through a fresh decoder (after a sync byte, as a sender
 * starts) fed in chunks of `chunk` bytes, and return the decoded message. */
static const struct vmgr_agent_msg *roundtrip(struct vmgr_agent_decoder *d, const struct vmgr_agent_msg *m,
                                              size_t chunk) {
        const struct vmgr_agent_msg *out = NULL;
        const char *why = NULL;
        int n = vmgr_agent_msg_encode(m, wire, sizeof(wire));
        uint8_t zero = 0;

        CHECK(n > 0);
        CHECK(wire[n - 1] == 0);
        CHECK(!memchr(wire, 0, (size_t) n - 1));

        vmgr_agent_decoder_reset(d);
        for (int pass = 0; pass < 2; pass++) {
                const uint8_t *src = pass == 0 ? &zero : wire;
                size_t len = pass == 0 ? 1 : (size_t) n;
                for (size_t off = 0; off < len;) {
                        size_t room, k = len - off < chunk ? len - off : chunk;
                        void *space = vmgr_agent_decoder_space(d, &room);
                        const struct vmgr_agent_msg *got;
                        int r;

                        if (k > room)
                                k = room;
                        memcpy(space, src + off, k);
                        vmgr_agent_decoder_advance(d, k);
                        off += k;
                        while ((r = vmgr_agent_decoder_next(d, &got, &why)) != 0) {
                                if (r < 0)
                                        fprintf(stderr, "decode: %s\n", why);
                                CHECK(r == 1);
                                CHECK(!out);
                                out = got;
                        }
                }
        }
        CHECK(out);
        CHECK(out->type == m->type);
        CHECK(out->id == m->id);
        return out;
}

static void test_roundtrip(void) {
        struct vmgr_agent_decoder *d;
        static struct vmgr_agent_msg m, *p = &m;
        const struct vmgr_agent_msg *o;
        static uint8_t big[VMGR_AGENT_DATA_MAX];

        CHECK(vmgr_agent_decoder_new(&d) == 0);

        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_HELLO };
        m.hello = (struct vmgr_agent_hello) { 1, 3, 262144, UINT64_C(0x0123456789abcdef), "vmgr-test" };
        o = roundtrip(d, p, 1);
        CHECK(o->hello.version_min == 1 && o->hello.version_max == 3);
        CHECK(o->hello.initial_window == 262144);
        CHECK(o->hello.nonce == UINT64_C(0x0123456789abcdef));
        CHECK_STREQ(o->hello.software, "vmgr-test");

        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_INFO };
        m.info.version = 1;
        m.info.hostname = "g1";
        m.info.kernel = "6.1.0-56-cloud-amd64";
        m.info.boot_id = "";
        m.info.n_links = 2;
        m.info.links[0] = (struct vmgr_agent_link) { .index = 1, .flags = 0x49, .mtu = 65536, .name = "lo" };
        m.info.links[1] = (struct vmgr_agent_link) { .index = 2, .flags = 0x1043, .mtu = 1500, .hwaddr_len = 6,
                                                     .hwaddr = { 0x6a, 1, 2, 3, 4, 5 }, .name = "enp1s0" };
        m.info.n_addrs = 2;
        m.info.addrs[0] = (struct vmgr_agent_addr) { .ifindex = 1, .family = 4, .prefixlen = 8, .scope = 254,
                                                     .address = { 127, 0, 0, 1 } };
        m.info.addrs[1] = (struct vmgr_agent_addr) { .ifindex = 2, .family = 6, .prefixlen = 64, .flags = 0x40,
                                                     .address = { 0xfd, 0, 0, 1, [15] = 1 } };
        o = roundtrip(d, p, 7);
        CHECK_STREQ(o->info.kernel, "6.1.0-56-cloud-amd64");
        CHECK(o->info.n_links == 2 && o->info.n_addrs == 2);
        CHECK_STREQ(o->info.links[1].name, "enp1s0");
        CHECK(o->info.links[1].hwaddr_len == 6 && o->info.links[1].hwaddr[0] == 0x6a);
        CHECK(o->info.links[1].mtu == 1500 && o->info.links[1].flags == 0x1043);
        /* Field by field: a struct compare would also compare padding bytes. */
        CHECK(o->info.addrs[1].ifindex == 2 && o->info.addrs[1].family == 6 && o->info.addrs[1].prefixlen == 64 &&
              o->info.addrs[1].scope == 0 && o->info.addrs[1].flags == 0x40);
        CHECK(memcmp(o->info.addrs[1].address, m.info.addrs[1].address, 16) == 0);
        CHECK(o->info.addrs[0].scope == 254 && o->info.addrs[0].address[0] == 127);

        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EXEC, .id = 42 };
        m.exec = (struct vmgr_agent_exec) { .stdin_stream = 1, .stdout_stream = 2, .stderr_stream = 0,
                                            .flags = VMGR_AGENT_EXEC_ENV_REPLACE, .cwd = "/tmp", .argc = 3,
                                            .argv = { "sh", "-c", "exit 7" }, .envc = 1, .env = { "A=b c" } };
        o = roundtrip(d, p, 3);
        CHECK(o->exec.argc == 3 && !o->exec.argv[3]);
        CHECK_STREQ(o->exec.argv[2], "exit 7");
        CHECK(o->exec.envc == 1 && !o->exec.env[1]);
        CHECK_STREQ(o->exec.env[0], "A=b c");
        CHECK_STREQ(o->exec.cwd, "/tmp");
        CHECK(o->exec.stdin_stream == 1 && o->exec.stdout_stream == 2 && o->exec.stderr_stream == 0);
        CHECK(o->exec.flags == VMGR_AGENT_EXEC_ENV_REPLACE);

        /* DATA: every byte value, zeros (all COBS code bytes), runs of 254. */
        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t) (i * 7 + i / 254);
        for (size_t size = 1; size <= sizeof(big); size = size < 600 ? size + 1 : size * 2 + 1) {
                if (size > sizeof(big))
                        size = sizeof(big);
                m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_DATA, .id = 9 };
                m.data = (struct vmgr_agent_data) { big, size };
                o = roundtrip(d, p, 4096);
                CHECK(o->data.size == size && memcmp(o->data.data, big, size) == 0);
                if (size == sizeof(big))
                        break;
        }
        memset(big, 0, sizeof(big));
        m.data = (struct vmgr_agent_data) { big, sizeof(big) };
        o = roundtrip(d, p, 65536);
        CHECK(o->data.size == sizeof(big) && memcmp(o->data.data, big, sizeof(big)) == 0);
        CHECK(vmgr_agent_msg_encode(p, wire, sizeof(wire)) <= (int) VMGR_AGENT_WIRE_MAX);
        memset(big, 0xff, sizeof(big));
        o = roundtrip(d, p, 65536);
        CHECK(o->data.size == sizeof(big) && memcmp(o->data.data, big, sizeof(big)) == 0);
        CHECK(vmgr_agent_msg_encode(p, wire, sizeof(wire)) <= (int) VMGR_AGENT_WIRE_MAX);

        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_WINDOW, .id = 9, .window = VMGR_AGENT_WINDOW_MAX };
        CHECK(roundtrip(d, p, 2)->window == VMGR_AGENT_WINDOW_MAX);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EOF, .id = 0xffffffff };
        roundtrip(d, p, 1);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EXIT, .id = 5, .exit = { -1, 9, true } };
        o = roundtrip(d, p, 5);
        CHECK(o->exit.status == -1 && o->exit.signal == 9 && o->exit.core_dumped);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EXIT, .id = 5, .exit = { 7, 0, false } };
        o = roundtrip(d, p, 5);
        CHECK(o->exit.status == 7 && o->exit.signal == 0 && !o->exit.core_dumped);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_KILL, .id = 5, .kill = { 15, VMGR_AGENT_KILL_GROUP } };
        o = roundtrip(d, p, 5);
        CHECK(o->kill.signal == 15 && o->kill.flags == VMGR_AGENT_KILL_GROUP);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_FILE_PUT, .id = 6, .file = { 11, 0640, 0, "/etc/x y" } };
        o = roundtrip(d, p, 5);
        CHECK(o->file.stream == 11 && o->file.mode == 0640);
        CHECK_STREQ(o->file.path, "/etc/x y");
        m.type = VMGR_AGENT_FILE_GET;
        m.file.mode = 0;
        CHECK_STREQ(roundtrip(d, p, 5)->file.path, "/etc/x y");
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_DONE, .id = 6, .done = { UINT64_C(1) << 40, 0755 } };
        o = roundtrip(d, p, 5);
        CHECK(o->done.size == UINT64_C(1) << 40 && o->done.mode == 0755);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_ERROR, .id = 6, .error = { ENOENT, "no such file" } };
        o = roundtrip(d, p, 5);
        CHECK(o->error.error == ENOENT);
        CHECK_STREQ(o->error.message, "no such file");
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_SHUTDOWN, .id = 1 };
        roundtrip(d, p, 5);
        m.type = VMGR_AGENT_REBOOT;
        roundtrip(d, p, 5);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_PING, .id = 0, .ping = { UINT64_MAX } };
        CHECK(roundtrip(d, p, 5)->ping.payload == UINT64_MAX);
        m.type = VMGR_AGENT_PONG;
        CHECK(roundtrip(d, p, 5)->ping.payload == UINT64_MAX);
        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_LOG, .log = { VMGR_AGENT_LOG_KERNEL, 6, 123, "eth0 up" } };
        o = roundtrip(d, p, 5);
        CHECK(o->log.source == VMGR_AGENT_LOG_KERNEL && o->log.priority == 6 && o->log.realtime_usec == 123);
        CHECK_STREQ(o->log.text, "eth0 up");

        for (unsigned t = 1; t < _VMGR_AGENT_TYPE_MAX; t++)
                CHECK(vmgr_agent_type_to_string(t));
        CHECK(!vmgr_agent_type_to_string(0) && !vmgr_agent_type_to_string(_VMGR_AGENT_TYPE_MAX));

        vmgr_agent_decoder_free(d);
}

/* Messages that break a rule are refused by the encoder, with a reason. */
static void test_encode_refuses(void) {
        static struct vmgr_agent_msg m;
        static char longstr[VMGR_AGENT_PATH_MAX + 2];
        const char *why;

#define REFUSED(...)                                                              \
        do {                                                                      \
                m = (struct vmgr_agent_msg) __VA_ARGS__;                          \
                why = NULL;                                                       \
                CHECK(vmgr_agent_msg_validate(&m, &why) == -EINVAL && why);       \
                CHECK(vmgr_agent_msg_encode(&m, wire, sizeof(wire)) == -EINVAL);  \
        } while (0)

        REFUSED({ .type = 0 });
        REFUSED({ .type = _VMGR_AGENT_TYPE_MAX });
        REFUSED({ .type = VMGR_AGENT_HELLO, .hello = { 2, 1, 100, 0, "" } });
        REFUSED({ .type = VMGR_AGENT_HELLO, .hello = { 0, 1, 100, 0, "" } });
        REFUSED({ .type = VMGR_AGENT_HELLO, .hello = { 1, 1, 0, 0, "" } });
        REFUSED({ .type = VMGR_AGENT_HELLO, .hello = { 1, 1, 0x80000000u, 0, "" } });
        REFUSED({ .type = VMGR_AGENT_HELLO, .id = 1, .hello = { 1, 1, 100, 0, "" } });
        REFUSED({ .type = VMGR_AGENT_HELLO, .hello = { 1, 1, 100, 0, NULL } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 0, .exec = { .cwd = "", .argc = 1, .argv = { "x" } } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1, .exec = { .cwd = "", .argc = 0 } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1, .exec = { .cwd = "", .argc = 1, .argv = { "" } } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1, .exec = { .cwd = "rel", .argc = 1, .argv = { "x" } } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1, .exec = { .stdout_stream = 3, .stderr_stream = 3, .cwd = "",
                                                              .argc = 1, .argv = { "x" } } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1, .exec = { .flags = 2, .cwd = "", .argc = 1, .argv = { "x" } } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1,
                  .exec = { .cwd = "", .argc = 1, .argv = { "x" }, .envc = 1, .env = { "NOEQUALS" } } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1,
                  .exec = { .cwd = "", .argc = 1, .argv = { "x" }, .envc = 1, .env = { "=v" } } });
        REFUSED({ .type = VMGR_AGENT_EXEC, .id = 1, .exec = { .cwd = "", .argc = 1, .argv = { "x", "y" } } });
        REFUSED({ .type = VMGR_AGENT_DATA, .id = 1, .data = { (const uint8_t *) "", 0 } });
        REFUSED({ .type = VMGR_AGENT_DATA, .id = 0, .data = { (const uint8_t *) "x", 1 } });
        REFUSED({ .type = VMGR_AGENT_DATA, .id = 1, .data = { (const uint8_t *) "x", VMGR_AGENT_DATA_MAX + 1 } });
        REFUSED({ .type = VMGR_AGENT_WINDOW, .id = 1, .window = 0 });
        REFUSED({ .type = VMGR_AGENT_WINDOW, .id = 1, .window = 0x80000000u });
        REFUSED({ .type = VMGR_AGENT_EOF, .id = 0 });
        REFUSED({ .type = VMGR_AGENT_EXIT, .id = 1, .exit = { 256, 0, false } });
        REFUSED({ .type = VMGR_AGENT_EXIT, .id = 1, .exit = { 0, 9, false } });
        REFUSED({ .type = VMGR_AGENT_EXIT, .id = 1, .exit = { 0, 0, true } });
        REFUSED({ .type = VMGR_AGENT_EXIT, .id = 1, .exit = { -1, 65, false } });
        REFUSED({ .type = VMGR_AGENT_KILL, .id = 1, .kill = { 0, 0 } });
        REFUSED({ .type = VMGR_AGENT_KILL, .id = 1, .kill = { 9, 2 } });
        REFUSED({ .type = VMGR_AGENT_FILE_PUT, .id = 1, .file = { 1, 010000, 0, "/x" } });
        REFUSED({ .type = VMGR_AGENT_FILE_PUT, .id = 1, .file = { 0, 0644, 0, "/x" } });
        REFUSED({ .type = VMGR_AGENT_FILE_PUT, .id = 1, .file = { 1, 0644, 1, "/x" } });
        REFUSED({ .type = VMGR_AGENT_FILE_PUT, .id = 1, .file = { 1, 0644, 0, "x" } });
        REFUSED({ .type = VMGR_AGENT_FILE_GET, .id = 1, .file = { 1, 0644, 0, "/x" } });
        memset(longstr, 'a', sizeof(longstr) - 1);
        longstr[0] = '/';
        REFUSED({ .type = VMGR_AGENT_FILE_GET, .id = 1, .file = { 1, 0, 0, longstr } });
        REFUSED({ .type = VMGR_AGENT_ERROR, .id = 1, .error = { 0, "" } });
        REFUSED({ .type = VMGR_AGENT_ERROR, .id = 1, .error = { -2, "" } });
        REFUSED({ .type = VMGR_AGENT_SHUTDOWN, .id = 0 });
        REFUSED({ .type = VMGR_AGENT_LOG, .log = { 9, 1, 0, "" } });
        REFUSED({ .type = VMGR_AGENT_LOG, .log = { 1, 8, 0, "" } });
        REFUSED({ .type = VMGR_AGENT_INFO, .info = { .version = 1, .hostname = "h", .kernel = "k", .boot_id = "",
                                                     .n_addrs = 1, .addrs = { { .ifindex = 3, .family = 4 } } } });
        REFUSED({ .type = VMGR_AGENT_INFO,
                  .info = { .version = 1, .hostname = "h", .kernel = "k", .boot_id = "", .n_links = 1,
                            .links = { { .index = 3, .name = "x" } }, .n_addrs = 1,
                            .addrs = { { .ifindex = 3, .family = 5 } } } });
        REFUSED({ .type = VMGR_AGENT_INFO,
                  .info = { .version = 1, .hostname = "h", .kernel = "k", .boot_id = "", .n_links = 1,
                            .links = { { .index = 3, .name = "x" } }, .n_addrs = 1,
                            .addrs = { { .ifindex = 3, .family = 4, .prefixlen = 33 } } } });
        REFUSED({ .type = VMGR_AGENT_INFO,
                  .info = { .version = 1, .hostname = "h", .kernel = "k", .boot_id = "", .n_links = 2,
                            .links = { { .index = 3, .name = "x" }, { .index = 3, .name = "y" } } } });
        REFUSED({ .type = VMGR_AGENT_INFO,
                  .info = { .version = 1, .hostname = "h", .kernel = "k", .boot_id = "", .n_links = 1,
                            .links = { { .index = 3, .name = "" } } } });
        /* A guest's names reach D-Bus properties and terminals: no escape sequences. */
        REFUSED({ .type = VMGR_AGENT_INFO, .info = { .version = 1, .hostname = "h\033]0;x\007", .kernel = "k",
                                                     .boot_id = "" } });
        REFUSED({ .type = VMGR_AGENT_INFO, .info = { .version = 1, .hostname = "h", .kernel = "6.1\033[2J",
                                                     .boot_id = "" } });
        REFUSED({ .type = VMGR_AGENT_INFO, .info = { .version = 1, .hostname = "h", .kernel = "k", .boot_id = "\n" } });
        REFUSED({ .type = VMGR_AGENT_INFO,
                  .info = { .version = 1, .hostname = "h", .kernel = "k", .boot_id = "", .n_links = 1,
                            .links = { { .index = 3, .name = "eth\r0" } } } });
        REFUSED({ .type = VMGR_AGENT_HELLO, .hello = { 1, 1, 100, 0, "agent\177" } });
#undef REFUSED

        /* Each string fits, their sum does not: too big for one frame. */
        {
                static char arg[VMGR_AGENT_DATA_MAX / 2];
                memset(arg, 'a', sizeof(arg) - 1);
                m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EXEC, .id = 1,
                                              .exec = { .cwd = "", .argc = 3, .argv = { arg, arg, arg } } };
                CHECK(vmgr_agent_msg_encode(&m, wire, sizeof(wire)) == -EINVAL);
        }

        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EOF, .id = 1 };
        CHECK(vmgr_agent_msg_encode(&m, wire, 5) == -ENOBUFS);
        CHECK(vmgr_agent_msg_encode(&m, wire, 14) == 14); /* 12 bytes, 1 code byte per zero run, delimiter */
}

/* A decoded frame to corrupt: EXEC with two strings. */
static size_t good_frame(uint8_t *frame) {
        static struct vmgr_agent_msg m;
        static uint8_t w[VMGR_AGENT_WIRE_MAX];
        int n;

        m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_EXEC, .id = 3,
                                      .exec = { .stdout_stream = 1, .cwd = "/", .argc = 1, .argv = { "true" } } };
        n = vmgr_agent_msg_encode(&m, w, sizeof(w));
        CHECK(n > 0);
        n = vmgr_agent_cobs_decode(w, (size_t) n - 1, frame, VMGR_AGENT_FRAME_MAX);
        CHECK(n > 0);
        return (size_t) n;
}

/* Every class of malformed frame is refused with a reason. */
static void test_parse_malformed(void) {
        static uint8_t good[VMGR_AGENT_FRAME_MAX], bad[VMGR_AGENT_FRAME_MAX + 16];
        static struct vmgr_agent_msg m;
        size_t n = good_frame(good);
        const char *why;

#define PARSE(buf, len) (why = NULL, vmgr_agent_frame_parse((buf), (len), &m, &why))

        CHECK(PARSE(good, n) == 0);
        CHECK(m.type == VMGR_AGENT_EXEC && m.id == 3);
        CHECK_STREQ(m.exec.argv[0], "true");

        /* Every truncation. */
        for (size_t len = 0; len < n; len++) {
                CHECK(PARSE(good, len) == -EBADMSG);
                CHECK(why);
        }
        /* Trailing bytes. */
        memcpy(bad, good, n);
        bad[n] = 0;
        CHECK(PARSE(bad, n + 1) == -EBADMSG);
        CHECK(strstr(why, "trailing"));
        /* Too long a frame. */
        CHECK(PARSE(bad, VMGR_AGENT_FRAME_MAX + 1) == -EBADMSG);
        /* Header: magic, type, reserved. */
        memcpy(bad, good, n);
        bad[0] ^= 0x20;
        CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "magic"));
        memcpy(bad, good, n);
        bad[4] = 0;
        CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "type"));
        bad[4] = _VMGR_AGENT_TYPE_MAX;
        CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "type"));
        for (size_t i = 5; i < 8; i++) {
                memcpy(bad, good, n);
                bad[i] = 1;
                CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "reserved"));
        }
        /* A string without its NUL, with a NUL inside, with a length past the end. */
        {
                size_t cwd = VMGR_AGENT_HEADER_SIZE + 16; /* after three streams and the flags */
                CHECK(good[cwd] == 1 && good[cwd + 1] == 0 && good[cwd + 2] == '/' && good[cwd + 3] == 0);
                memcpy(bad, good, n);
                bad[cwd + 3] = 'x';
                CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "NUL"));
                memcpy(bad, good, n);
                bad[cwd] = 2;
                bad[cwd + 2] = 0;
                CHECK(PARSE(bad, n) == -EBADMSG);
                memcpy(bad, good, n);
                bad[cwd + 1] = 0xff;
                CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "ends inside"));
        }
        /* A count past the limit. */
        {
                size_t argc = VMGR_AGENT_HEADER_SIZE + 16 + 4;
                CHECK(good[argc] == 1 && good[argc + 1] == 0);
                memcpy(bad, good, n);
                bad[argc] = 0x01;
                bad[argc + 1] = 0x01; /* 257 */
                CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "too many"));
                bad[argc] = 0;
                bad[argc + 1] = 0;
                CHECK(PARSE(bad, n) == -EBADMSG);
        }
        /* The rules, applied on decode: a stream used twice. */
        memcpy(bad, good, n);
        bad[VMGR_AGENT_HEADER_SIZE] = 1; /* stdin = stdout = 1 */
        CHECK(PARSE(bad, n) == -EBADMSG && strstr(why, "twice"));

        /* Per type: an empty body where one is needed, a body where none is. */
        for (unsigned t = 1; t < _VMGR_AGENT_TYPE_MAX; t++) {
                uint8_t h[VMGR_AGENT_HEADER_SIZE + 1] = { 'v', 'm', 'A', 'G', (uint8_t) t, 0, 0, 0, 1, 0, 0, 0, 0x5a };
                bool empty_ok = t == VMGR_AGENT_EOF || t == VMGR_AGENT_SHUTDOWN || t == VMGR_AGENT_REBOOT;
                CHECK((PARSE(h, VMGR_AGENT_HEADER_SIZE) == 0) == empty_ok);
                if (empty_ok)
                        CHECK(PARSE(h, sizeof(h)) == -EBADMSG && strstr(why, "trailing"));
        }
#undef PARSE
}

static void test_cobs(void) {
        uint8_t out[16];

        /* 0x00 is never inside a frame; a code byte may not promise more than there is. */
        CHECK(vmgr_agent_cobs_decode("\x02\x00", 2, out, sizeof(out)) == -EBADMSG);
        CHECK(vmgr_agent_cobs_decode("\x00", 1, out, sizeof(out)) == -EBADMSG);
        CHECK(vmgr_agent_cobs_decode("\x05" "ab", 3, out, sizeof(out)) == -EBADMSG);
        CHECK(vmgr_agent_cobs_decode("\x03" "ab\x01", 4, out, sizeof(out)) == 3);
        CHECK(memcmp(out, "ab\0", 3) == 0);
        CHECK(vmgr_agent_cobs_decode("\x03" "ab\x02x", 5, out, 3) == -ENOBUFS);
        CHECK(vmgr_agent_cobs_decode("", 0, out, sizeof(out)) == 0);
}

/* Feed bytes into d and return how many messages came out and how many errors. */
static void feed(struct vmgr_agent_decoder *d, const void *data, size_t len, unsigned *msgs, unsigned *errors) {
        const uint8_t *p = data;
        while (len > 0) {
                size_t room;
                void *s = vmgr_agent_decoder_space(d, &room);
                const struct vmgr_agent_msg *m;
                const char *why;
                int r;

                CHECK(room > 0);
                if (room > len)
                        room = len;
                memcpy(s, p, room);
                vmgr_agent_decoder_advance(d, room);
                p += room;
                len -= room;
                while ((r = vmgr_agent_decoder_next(d, &m, &why)) != 0) {
                        if (r > 0)
                                (*msgs)++;
                        else
                                (*errors)++;
                }
        }
}

/* Garbage, oversized frames and truncated frames cost at most the frame they
 * hit: the decoder is back in step after the next delimiter. */
static void test_resync(void) {
        struct vmgr_agent_decoder *d;
        static uint8_t junk[3 * VMGR_AGENT_WIRE_MAX];
        struct vmgr_agent_msg ping = { .type = VMGR_AGENT_PING, .id = 1 };
        uint8_t f[64];
        int n = vmgr_agent_msg_encode(&ping, f, sizeof(f));
        unsigned msgs = 0, errors = 0;

        CHECK(n > 0);
        CHECK(vmgr_agent_decoder_new(&d) == 0);

        /* Fresh decoder: the first bytes may be a tail, dropped quietly up to 0x00. */
        feed(d, "garbage", 7, &msgs, &errors);
        feed(d, f, (size_t) n, &msgs, &errors);
        CHECK(msgs == 0 && errors == 0);
        feed(d, f, (size_t) n, &msgs, &errors);
        CHECK(msgs == 1 && errors == 0);

        /* In step: a garbage frame is an error, the next frame is fine. */
        feed(d, "garbage\0", 8, &msgs, &errors);
        CHECK(errors == 1);
        feed(d, f, (size_t) n, &msgs, &errors);
        CHECK(msgs == 2);

        /* Half a frame, then a sender's resync byte, then a frame. */
        feed(d, f, (size_t) n / 2, &msgs, &errors);
        feed(d, "\0", 1, &msgs, &errors);
        feed(d, f, (size_t) n, &msgs, &errors);
        CHECK(msgs == 3 && errors == 2);

        /* Lone delimiters are no frames and no errors. */
        feed(d, "\0\0\0", 3, &msgs, &errors);
        CHECK(msgs == 3 && errors == 2);

        /* An endless frame: one error, bounded memory, then back in step. */
        memset(junk, 'x', sizeof(junk));
        feed(d, junk, sizeof(junk), &msgs, &errors);
        CHECK(errors == 3);
        feed(d, "\0", 1, &msgs, &errors);
        feed(d, f, (size_t) n, &msgs, &errors);
        CHECK(msgs == 4 && errors == 3);

        /* Frames split at every position. */
        for (int cut = 1; cut < n; cut++) {
                feed(d, f, (size_t) cut, &msgs, &errors);
                feed(d, f + cut, (size_t) (n - cut), &msgs, &errors);
        }
        CHECK(msgs == 4 + (unsigned) n - 1 && errors == 3);

        /* Reset: whatever is pending is dropped. */
        feed(d, f, 5, &msgs, &errors);
        vmgr_agent_decoder_reset(d);
        feed(d, "\0", 1, &msgs, &errors);
        feed(d, f, (size_t) n, &msgs, &errors);
        CHECK(msgs == 4 + (unsigned) n && errors == 3);

        vmgr_agent_decoder_free(d);
}

static void test_windows(void) {
        struct vmgr_agent_send_window s;
        struct vmgr_agent_recv_window r;
        uint32_t inc, total_granted = 0;
        size_t sent = 0, buffered_max = 0;

        vmgr_agent_send_window_init(&s, 1000);
        CHECK(vmgr_agent_send_window_take(&s, 600) == 600);
        CHECK(vmgr_agent_send_window_take(&s, 600) == 400);
        CHECK(vmgr_agent_send_window_take(&s, 1) == 0);
        CHECK(vmgr_agent_send_window_grant(&s, 10) == 0);
        CHECK(s.credit == 10);
        CHECK(vmgr_agent_send_window_grant(&s, VMGR_AGENT_WINDOW_MAX) == -EOVERFLOW);
        CHECK(s.credit == 10);
        CHECK(vmgr_agent_send_window_grant(&s, VMGR_AGENT_WINDOW_MAX - 10) == 0);
        CHECK(vmgr_agent_send_window_take(&s, SIZE_MAX) == VMGR_AGENT_DATA_MAX);

        /* Receiver: a sender beyond its credit is a protocol error. */
        vmgr_agent_recv_window_init(&r, 1000);
        CHECK(vmgr_agent_recv_window_receive(&r, 1001) == -EPROTO);
        CHECK(vmgr_agent_recv_window_receive(&r, 1000) == 0);
        CHECK(vmgr_agent_recv_window_receive(&r, 1) == -EPROTO);
        /* Credit comes back in batches of half the window. */
        CHECK(vmgr_agent_recv_window_consume(&r, 499) == 0);
        CHECK(vmgr_agent_recv_window_consume(&r, 1) == 500);
        CHECK(r.credit == 500 && r.buffered == 500 && r.consumed == 0);
        CHECK(vmgr_agent_recv_window_consume(&r, 5000) == 500); /* clamped to what is buffered */
        CHECK(r.credit == 1000 && r.buffered == 0);

        /* A sender and a slow receiver, in lock step: the receiver never
         * holds more than its window, and the sender never stalls for good. */
        vmgr_agent_send_window_init(&s, 4096);
        vmgr_agent_recv_window_init(&r, 4096);
        for (unsigned round = 0; sent < 1000000 && round < 100000; round++) {
                size_t n = vmgr_agent_send_window_take(&s, 1500);
                CHECK(vmgr_agent_recv_window_receive(&r, n) == 0);
                sent += n;
                if (r.buffered > buffered_max)
                        buffered_max = r.buffered;
                inc = vmgr_agent_recv_window_consume(&r, round % 3 == 0 ? 700 : 100);
                if (inc > 0) {
                        CHECK(vmgr_agent_send_window_grant(&s, inc) == 0);
                        total_granted += inc;
                }
                CHECK(s.credit == r.credit);
                CHECK(r.credit + r.buffered + r.consumed == 4096);
        }
        CHECK(sent >= 1000000);
        CHECK(buffered_max <= 4096);
        CHECK(total_granted > 0);

        /* A window of 1 grants every byte back at once. */
        vmgr_agent_recv_window_init(&r, 1);
        CHECK(vmgr_agent_recv_window_receive(&r, 1) == 0);
        CHECK(vmgr_agent_recv_window_consume(&r, 1) == 1);
        vmgr_agent_recv_window_init(&r, UINT32_MAX);
        CHECK(r.size == VMGR_AGENT_WINDOW_MAX);
}

/* A valid IDENTITY: an IPv6 and an IPv4 NIC, as vmgrd sends for the default guest. */
static void identity_example(struct vmgr_agent_msg *m) {
        static uint8_t entropy[VMGR_AGENT_ENTROPY_MAX];

        for (size_t i = 0; i < sizeof(entropy); i++)
                entropy[i] = (uint8_t) (i * 7 + 1);
        *m = (struct vmgr_agent_msg) { .type = VMGR_AGENT_IDENTITY, .id = 9 };
        for (size_t i = 0; i < VMGR_AGENT_GENERATION_SIZE; i++)
                m->identity.generation[i] = (uint8_t) (0xa0 + i);
        m->identity.realtime_nsec = UINT64_C(1796000000123456789);
        m->identity.hostname = "db-1.example";
        m->identity.n_nics = 2;
        m->identity.nics[0] = (struct vmgr_agent_identity_nic) {
                .pci_slot = "0000:01:00.0", .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .family = VMGR_AGENT_FAMILY_IPV6,
                .prefixlen = 64, .service_prefixlen = 48,
                .address = { 0xfd, 0x12, 0x34, 0x56, 0, 0, 0, 1, 0x50, 0x54, 0, 0xff, 0xfe, 1, 2, 3 },
                .gateway = { 0xfd, 0x12, 0x34, 0x56, 0, 0, 0, 1, [15] = 1 } };
        m->identity.nics[1] = (struct vmgr_agent_identity_nic) {
                .pci_slot = "0000:02:00.0", .mac = { 0x52, 0x54, 0, 1, 2, 4 }, .family = VMGR_AGENT_FAMILY_IPV4,
                .prefixlen = 24, .address = { 10, 77, 3, 14 }, .gateway = { 10, 77, 3, 1 } };
        m->identity.entropy_size = VMGR_AGENT_ENTROPY_MIN;
        m->identity.entropy = entropy;
}

/* IDENTITY round-trips field by field; every rule refuses what breaks it,
 * on encode and on decode; INFO carries a generation only when set. */
static void test_identity(void) {
        static struct vmgr_agent_msg m, bad;
        struct vmgr_agent_decoder *d;
        const struct vmgr_agent_msg *o;
        const char *why;

        CHECK(vmgr_agent_decoder_new(&d) == 0);
        CHECK_STREQ(vmgr_agent_type_to_string(VMGR_AGENT_IDENTITY), "IDENTITY");
        identity_example(&m);
        for (size_t size = VMGR_AGENT_ENTROPY_MIN; size <= VMGR_AGENT_ENTROPY_MAX; size += VMGR_AGENT_ENTROPY_MAX - VMGR_AGENT_ENTROPY_MIN) {
                m.identity.entropy_size = size;
                o = roundtrip(d, &m, 7);
                CHECK(memcmp(o->identity.generation, m.identity.generation, VMGR_AGENT_GENERATION_SIZE) == 0);
                CHECK(o->identity.realtime_nsec == m.identity.realtime_nsec);
                CHECK_STREQ(o->identity.hostname, "db-1.example");
                CHECK(o->identity.n_nics == 2);
                for (size_t i = 0; i < 2; i++) {
                        const struct vmgr_agent_identity_nic *a = &o->identity.nics[i], *b = &m.identity.nics[i];
                        CHECK_STREQ(a->pci_slot, b->pci_slot);
                        CHECK(memcmp(a->mac, b->mac, 6) == 0);
                        CHECK(a->family == b->family && a->prefixlen == b->prefixlen &&
                              a->service_prefixlen == b->service_prefixlen);
                        CHECK(memcmp(a->address, b->address, 16) == 0 && memcmp(a->gateway, b->gateway, 16) == 0);
                }
                CHECK(o->identity.entropy_size == size);
                CHECK(memcmp(o->identity.entropy, m.identity.entropy, size) == 0);
        }
        /* Eight NICs (the maximum), a one-label hostname of 63 bytes. */
        {
                static char slots[VMGR_AGENT_IDENTITY_NICS_MAX][16];
                static char label[64];
                memset(label, 'a', 63);
                bad = m;
                bad.identity.hostname = label;
                bad.identity.n_nics = VMGR_AGENT_IDENTITY_NICS_MAX;
                for (size_t i = 0; i < VMGR_AGENT_IDENTITY_NICS_MAX; i++) {
                        snprintf(slots[i], sizeof(slots[i]), "0000:%02zx:00.0", i + 1);
                        bad.identity.nics[i] = m.identity.nics[i % 2];
                        bad.identity.nics[i].pci_slot = slots[i];
                        bad.identity.nics[i].mac[5] = (uint8_t) i;
                }
                o = roundtrip(d, &bad, 4096);
                CHECK(o->identity.n_nics == VMGR_AGENT_IDENTITY_NICS_MAX);
                CHECK_STREQ(o->identity.nics[7].pci_slot, "0000:08:00.0");
        }

#define IDENTITY_REFUSED(change, reason)                                                   \
        do {                                                                               \
                bad = m;                                                                   \
                change;                                                                    \
                why = NULL;                                                                \
                CHECK(vmgr_agent_msg_validate(&bad, &why) == -EINVAL && why);              \
                if (!strstr(why, reason))                                                  \
                        fprintf(stderr, "refused for '%s', expected '%s'\n", why, reason); \
                CHECK(strstr(why, reason));                                                \
                CHECK(vmgr_agent_msg_encode(&bad, wire, sizeof(wire)) == -EINVAL);         \
        } while (0)

        IDENTITY_REFUSED(bad.id = 0, "id is 0");
        IDENTITY_REFUSED(memset(bad.identity.generation, 0, VMGR_AGENT_GENERATION_SIZE), "generation is zero");
        IDENTITY_REFUSED(bad.identity.realtime_nsec = 0, "time");
        /* Host names. */
        {
                static const char *const bad_names[] = {
                        "", "-a", "a-", "a..b", ".a", "a.", "a_b", "a b", "a\nb", "\x1b[31m", "a/b", "é",
                        "a.-b", "a-.b",
                };
                static char long_label[65], long_name[260], name65[66], name64[65];
                memset(long_label, 'a', 64);
                for (size_t i = 0; i < 65; i++)
                        name65[i] = i % 2 ? '.' : 'a';
                name65[64] = 'b';
                memcpy(name64, name65, 64);
                name64[63] = 'c';
                IDENTITY_REFUSED(bad.identity.hostname = name65, "host name");
                bad = m;
                bad.identity.hostname = name64;
                CHECK(vmgr_agent_msg_validate(&bad, &why) == 0);
                for (size_t i = 0; i < 256; i += 2)
                        memcpy(long_name + i, i + 2 < 256 ? "a." : "ab", 2);
                for (size_t i = 0; i < ELEMENTSOF(bad_names); i++)
                        IDENTITY_REFUSED(bad.identity.hostname = bad_names[i], "host name");
                IDENTITY_REFUSED(bad.identity.hostname = long_label, "host name");
                IDENTITY_REFUSED(bad.identity.hostname = long_name, "host name");
                IDENTITY_REFUSED(bad.identity.hostname = NULL, "host name");
        }
        IDENTITY_REFUSED(bad.identity.n_nics = 0, "NIC count");
        IDENTITY_REFUSED(bad.identity.n_nics = VMGR_AGENT_IDENTITY_NICS_MAX + 1, "NIC count");
        /* PCI slots. */
        {
                static const char *const bad_slots[] = {
                        "", "0000:01:00", "0000:01:00.8", "0000:01:20.0", "0000:01:00.0 ", "000:01:00.0",
                        "0000:01:0A.0", "0000-01:00.0", "0000:01:00:0", "../../../x", "0000:01:00.00",
                };
                for (size_t i = 0; i < ELEMENTSOF(bad_slots); i++)
                        IDENTITY_REFUSED(bad.identity.nics[0].pci_slot = bad_slots[i], "PCI slot");
                IDENTITY_REFUSED(bad.identity.nics[0].pci_slot = NULL, "PCI slot");
                IDENTITY_REFUSED(bad.identity.nics[1].pci_slot = "0000:01:00.0", "PCI slot twice");
                bad = m;
                bad.identity.nics[0].pci_slot = "abcd:ff:1f.7";
                CHECK(vmgr_agent_msg_validate(&bad, &why) == 0);
        }
        /* MACs. */
        IDENTITY_REFUSED(memset(bad.identity.nics[0].mac, 0, 6), "MAC");
        IDENTITY_REFUSED(bad.identity.nics[0].mac[0] = 0x01, "multicast");
        IDENTITY_REFUSED(memcpy(bad.identity.nics[1].mac, bad.identity.nics[0].mac, 6), "one MAC");
        /* Families, prefixes, addresses. */
        IDENTITY_REFUSED(bad.identity.nics[0].family = 0, "family");
        IDENTITY_REFUSED(bad.identity.nics[0].family = 10, "family");
        IDENTITY_REFUSED(bad.identity.nics[0].prefixlen = 0, "prefix length");
        IDENTITY_REFUSED(bad.identity.nics[0].prefixlen = 127, "prefix length");
        IDENTITY_REFUSED(bad.identity.nics[1].prefixlen = 0, "prefix length");
        IDENTITY_REFUSED(bad.identity.nics[1].prefixlen = 31, "prefix length");
        IDENTITY_REFUSED(bad.identity.nics[0].service_prefixlen = 64, "service prefix");
        IDENTITY_REFUSED(bad.identity.nics[0].service_prefixlen = 65, "service prefix");
        IDENTITY_REFUSED(bad.identity.nics[1].service_prefixlen = 16, "service prefix");
        IDENTITY_REFUSED(bad.identity.nics[1].address[4] = 1, "zero-padded");
        IDENTITY_REFUSED(bad.identity.nics[1].gateway[15] = 1, "zero-padded");
        IDENTITY_REFUSED(memset(bad.identity.nics[0].address, 0, 16), "zero");
        IDENTITY_REFUSED(memset(bad.identity.nics[1].gateway, 0, 4), "zero");
        IDENTITY_REFUSED(bad.identity.nics[0].address[0] = 0xff, "multicast");
        IDENTITY_REFUSED(memcpy(bad.identity.nics[1].gateway, bad.identity.nics[1].address, 4), "is its gateway");
        IDENTITY_REFUSED(bad.identity.nics[0].gateway[7] = 2, "not on the NIC's prefix");
        IDENTITY_REFUSED(bad.identity.nics[1].gateway[2] = 4, "not on the NIC's prefix");
        /* A gateway in the same /24 but another /25 is off a /25 link. */
        IDENTITY_REFUSED((bad.identity.nics[1].prefixlen = 25, bad.identity.nics[1].gateway[3] = 129),
                         "not on the NIC's prefix");
        /* Entropy. */
        IDENTITY_REFUSED(bad.identity.entropy_size = VMGR_AGENT_ENTROPY_MIN - 1, "entropy");
        IDENTITY_REFUSED(bad.identity.entropy_size = VMGR_AGENT_ENTROPY_MAX + 1, "entropy");
        IDENTITY_REFUSED(bad.identity.entropy = NULL, "entropy");
#undef IDENTITY_REFUSED

        /* Decoding applies the same rules and its own: corrupt a good frame. */
        {
                static uint8_t frame[VMGR_AGENT_FRAME_MAX], b2[VMGR_AGENT_FRAME_MAX + 1];
                size_t nics = VMGR_AGENT_HEADER_SIZE + 16 + 8 + 2 + strlen("db-1.example") + 1;
                size_t nic0 = nics + 1, reserved = nic0 + 2 + 12 + 1 + 6 + 3;
                int n = vmgr_agent_msg_encode(&m, wire, sizeof(wire));
                CHECK(n > 0);
                n = vmgr_agent_cobs_decode(wire, (size_t) n - 1, frame, sizeof(frame));
                CHECK(n > 0);
                CHECK(vmgr_agent_frame_parse(frame, (size_t) n, &bad, &why) == 0);
                CHECK(frame[nics] == 2 && frame[nic0] == 12 && frame[reserved] == 0);
                for (size_t len = VMGR_AGENT_HEADER_SIZE; len < (size_t) n; len++)
                        CHECK(vmgr_agent_frame_parse(frame, len, &bad, &why) == -EBADMSG);
                memcpy(b2, frame, (size_t) n);
                b2[reserved] = 1;
                CHECK(vmgr_agent_frame_parse(b2, (size_t) n, &bad, &why) == -EBADMSG && strstr(why, "reserved"));
                memcpy(b2, frame, (size_t) n);
                b2[nics] = VMGR_AGENT_IDENTITY_NICS_MAX + 1;
                CHECK(vmgr_agent_frame_parse(b2, (size_t) n, &bad, &why) == -EBADMSG && strstr(why, "too many NICs"));
                memcpy(b2, frame, (size_t) n);
                b2[nics] = 0;
                CHECK(vmgr_agent_frame_parse(b2, (size_t) n, &bad, &why) == -EBADMSG);
                memcpy(b2, frame, (size_t) n);
                b2[n] = 0;
                CHECK(vmgr_agent_frame_parse(b2, (size_t) n + 1, &bad, &why) == -EBADMSG && strstr(why, "trailing"));
        }

        /* INFO: no generation on the wire while it is zero (as version 1
         * had it), 16 bytes after the addresses once set; present but zero
         * is refused (one encoding per message); anything else is trailing. */
        {
                static uint8_t frame[VMGR_AGENT_FRAME_MAX], b2[VMGR_AGENT_FRAME_MAX + 32];
                static struct vmgr_agent_msg info;
                int n0, n1;

                info = (struct vmgr_agent_msg) { .type = VMGR_AGENT_INFO };
                info.info.version = 2;
                info.info.hostname = "h";
                info.info.kernel = "k";
                info.info.boot_id = "";
                n0 = vmgr_agent_msg_encode(&info, wire, sizeof(wire));
                CHECK(n0 > 0);
                n0 = vmgr_agent_cobs_decode(wire, (size_t) n0 - 1, frame, sizeof(frame));
                CHECK(n0 == VMGR_AGENT_HEADER_SIZE + 2 + 4 + 4 + 3 + 2 + 2);
                o = roundtrip(d, &info, 3);
                CHECK(memcmp(o->info.generation, (uint8_t[VMGR_AGENT_GENERATION_SIZE]) { 0 },
                             VMGR_AGENT_GENERATION_SIZE) == 0);
                memcpy(info.info.generation, m.identity.generation, VMGR_AGENT_GENERATION_SIZE);
                n1 = vmgr_agent_msg_encode(&info, wire, sizeof(wire));
                CHECK(n1 > 0);
                n1 = vmgr_agent_cobs_decode(wire, (size_t) n1 - 1, frame, sizeof(frame));
                CHECK(n1 == n0 + VMGR_AGENT_GENERATION_SIZE);
                o = roundtrip(d, &info, 5);
                CHECK(memcmp(o->info.generation, m.identity.generation, VMGR_AGENT_GENERATION_SIZE) == 0);
                memcpy(b2, frame, (size_t) n1);
                memset(b2 + n0, 0, VMGR_AGENT_GENERATION_SIZE);
                CHECK(vmgr_agent_frame_parse(b2, (size_t) n1, &bad, &why) == -EBADMSG && strstr(why, "generation"));
                for (size_t len = (size_t) n0 + 1; len < (size_t) n1; len++)
                        CHECK(vmgr_agent_frame_parse(frame, len, &bad, &why) == -EBADMSG);
                memcpy(b2, frame, (size_t) n1);
                b2[n1] = 1;
                CHECK(vmgr_agent_frame_parse(b2, (size_t) n1 + 1, &bad, &why) == -EBADMSG && strstr(why, "trailing"));
        }
        vmgr_agent_decoder_free(d);
}

int main(void) {
        test_identity();
        test_roundtrip();
        test_encode_refuses();
        test_parse_malformed();
        test_cobs();
        test_resync();
        test_windows();
        TEST_DONE();
}
