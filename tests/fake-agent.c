/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A hostile guest agent, for tests/integration/test-guest-flood.sh. A test
 * puts it into a guest's initramfs in place of /usr/bin/vmgr-agent (the
 * shipped agent is not changed) and picks what it does with the kernel
 * command line parameter vmgr.fake_agent=MODE:
 *
 *   ping-flood   answer the host's HELLO, then send PINGs as fast as the
 *                port takes them and never read again: every PING makes
 *                the host queue a PONG that nobody reads;
 *   hello-flood  send agent announcements (HELLO, nonce 0) without end and
 *                never read: each makes the host queue a HELLO;
 *   log-escape   answer the host's HELLO, send LOG lines with terminal
 *                escape sequences and control characters in them (which the
 *                real agent would have escaped), then answer PINGs, and
 *                every request (EXEC, FILE_PUT, FILE_GET) with an ERROR whose
 *                message carries escape sequences too;
 *   log-flood    answer the host's HELLO, then send 1000-byte LOG lines
 *                without pause (reading and answering PINGs meanwhile).
 *
 * It speaks through lib/agent-proto, like the real agent, and writes a line
 * to the console ("vmgr-fake-agent: ...") when it starts each phase.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-proto.h"

static void say(const char *what) {
        int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);

        if (fd >= 0) {
                dprintf(fd, "vmgr-fake-agent: %s\n", what);
                close(fd);
        }
}

/* The value of vmgr.fake_agent= on the kernel command line, or "". */
static void cmdline_mode(char *mode, size_t size) {
        char buf[4096], *p;
        FILE *f = fopen("/proc/cmdline", "re");
        size_t n;

        *mode = 0;
        if (!f)
                return;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        p = strstr(buf, "vmgr.fake_agent=");
        if (p)
                snprintf(mode, size, "%.*s", (int) strcspn(p + 16, " \n"), p + 16);
}

/* Open the agent's port, waiting for it to appear. Returns the fd. */
static int open_port(void) {
        for (;;) {
                DIR *d = opendir("/sys/class/virtio-ports");
                struct dirent *de;

                while (d && (de = readdir(d))) {
                        char path[512], name[128] = "";
                        FILE *f;

                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
                        f = fopen(path, "re");
                        if (!f)
                                continue;
                        if (!fgets(name, sizeof(name), f))
                                name[0] = 0;
                        fclose(f);
                        name[strcspn(name, "\n")] = 0;
                        if (strcmp(name, VMGR_AGENT_PORT_NAME) == 0) {
                                int fd;
                                snprintf(path, sizeof(path), "/dev/%s", de->d_name);
                                fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                                if (fd >= 0) {
                                        closedir(d);
                                        return fd;
                                }
                        }
                }
                if (d)
                        closedir(d);
                sleep(1);
        }
}

static void write_all(int fd, const void *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                                (void) poll(&pfd, 1, 100);
                                continue;
                        }
                        say("write failed");
                        exit(1);
                }
                p = (const char *) p + k;
                n -= (size_t) k;
        }
}

static void send_msg(int fd, const struct vmgr_agent_msg *m) {
        static uint8_t buf[VMGR_AGENT_WIRE_MAX];
        int n = vmgr_agent_msg_encode(m, buf, sizeof(buf));

        if (n < 0) {
                say("cannot encode a message");
                exit(1);
        }
        write_all(fd, buf, (size_t) n);
}

/* Read until the host's HELLO and answer it: a session. */
static void handshake(int fd, struct vmgr_agent_decoder *d) {
        for (;;) {
                const struct vmgr_agent_msg *m;
                const char *reason;
                size_t size;
                void *space = vmgr_agent_decoder_space(d, &size);
                ssize_t n = read(fd, space, size);
                int r;

                if (n <= 0) {
                        usleep(50000); /* no host yet */
                        continue;
                }
                vmgr_agent_decoder_advance(d, (size_t) n);
                while ((r = vmgr_agent_decoder_next(d, &m, &reason)) != 0) {
                        if (r < 0 || m->type != VMGR_AGENT_HELLO || m->hello.nonce == 0)
                                continue;
                        struct vmgr_agent_msg hello = {
                                .type = VMGR_AGENT_HELLO,
                                .hello = { 1, 1, 128 * 1024, m->hello.nonce, "vmgr-fake-agent" },
                        };
                        write_all(fd, "", 1);
                        send_msg(fd, &hello);
                        return;
                }
        }
}

/* Wait up to timeout_ms for bytes from the host; answer the PINGs among them,
 * and with refuse_escaped, every request with an ERROR full of escapes. */
static void serve_once(int fd, struct vmgr_agent_decoder *d, int timeout_ms, bool refuse_escaped) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        const struct vmgr_agent_msg *m;
        const char *reason;
        size_t size;
        void *space;
        ssize_t n;
        int r;

        if (poll(&pfd, 1, timeout_ms) <= 0 || !(pfd.revents & POLLIN))
                return;
        space = vmgr_agent_decoder_space(d, &size);
        n = read(fd, space, size);
        if (n <= 0) {
                usleep(50000); /* no host now */
                return;
        }
        vmgr_agent_decoder_advance(d, (size_t) n);
        while ((r = vmgr_agent_decoder_next(d, &m, &reason)) != 0) {
                if (r > 0 && m->type == VMGR_AGENT_PING) {
                        struct vmgr_agent_msg pong = { .type = VMGR_AGENT_PONG, .id = m->id, .ping = m->ping };
                        send_msg(fd, &pong);
                } else if (r > 0 && refuse_escaped &&
                           (m->type == VMGR_AGENT_EXEC || m->type == VMGR_AGENT_FILE_PUT ||
                            m->type == VMGR_AGENT_FILE_GET)) {
                        struct vmgr_agent_msg err = {
                                .type = VMGR_AGENT_ERROR,
                                .id = m->id,
                                .error = { EPERM, "ERR-MARK \033]0;pwned\007title \033[2J\033[31mred\033[0m end" },
                        };
                        send_msg(fd, &err);
                }
        }
}

/* Fill buf with copies of m's frame; returns the bytes used. */
static size_t repeat_frame(const struct vmgr_agent_msg *m, uint8_t *buf, size_t size) {
        uint8_t frame[256];
        int n = vmgr_agent_msg_encode(m, frame, sizeof(frame));
        size_t used = 0;

        if (n <= 0)
                exit(1);
        while (used + (size_t) n <= size) {
                memcpy(buf + used, frame, (size_t) n);
                used += (size_t) n;
        }
        return used;
}

static void send_log(int fd, const char *text) {
        struct vmgr_agent_msg m = {
                .type = VMGR_AGENT_LOG,
                .log = { .source = VMGR_AGENT_LOG_KERNEL, .priority = 6, .realtime_usec = 0, .text = text },
        };

        send_msg(fd, &m);
}

int main(void) {
        static uint8_t flood[64 * 1024];
        struct vmgr_agent_decoder *d = NULL;
        char mode[64];
        int fd;

        cmdline_mode(mode, sizeof(mode));
        if (vmgr_agent_decoder_new(&d) < 0)
                return 1;
        fd = open_port();

        if (strcmp(mode, "hello-flood") == 0) {
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_HELLO, .hello = { 1, 1, 128 * 1024, 0, "x" } };
                size_t n = repeat_frame(&m, flood, sizeof(flood));

                say("flooding announcements");
                for (;;)
                        write_all(fd, flood, n);
        }

        say("waiting for the host");
        handshake(fd, d);

        if (strcmp(mode, "ping-flood") == 0) {
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_PING, .id = 7, .ping.payload = 42 };
                size_t n = repeat_frame(&m, flood, sizeof(flood));

                say("flooding PINGs, reading nothing");
                for (;;)
                        write_all(fd, flood, n);
        }
        if (strcmp(mode, "log-escape") == 0) {
                say("sending LOG lines with escapes");
                send_log(fd, "ESC-MARK \033]0;pwned\007title \033[2J\033[31mred\033[0m bell\007 tab\tend\r");
                send_log(fd, "ESC-DONE");
                for (;;)
                        serve_once(fd, d, 1000, true);
        }
        if (strcmp(mode, "log-flood") == 0) {
                char line[1001];
                unsigned long i = 0;

                memset(line, 'L', sizeof(line) - 1);
                line[sizeof(line) - 1] = 0;
                say("flooding LOG lines");
                for (;;) {
                        snprintf(line, 16, "FLOOD-%08lu", i++);
                        line[14] = ' ';
                        send_log(fd, line);
                        if (i % 64 == 0)
                                serve_once(fd, d, 0, false);
                }
        }
        say("unknown mode; answering PINGs");
        for (;;)
                serve_once(fd, d, 1000, false);
}
