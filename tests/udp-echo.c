/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-udp-echo PORT: echo every UDP datagram on [::]:PORT back to its
 * sender. vmgr-udp-echo PORT hold: a TCP listener on [::]:PORT that never
 * accepts (the kernel completes handshakes into its backlog).
 *
 * For tests/integration/test-forward.sh, which copies it into the default
 * guest (busybox has no UDP tool): static, like the guest agent.
 */

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
        static char buf[65536];
        int fd, port;

        if (argc < 2 || (port = atoi(argv[1])) <= 0 || port > 65535) {
                fprintf(stderr, "usage: vmgr-udp-echo PORT [hold]\n");
                return 2;
        }
        sa.sin6_port = htons((uint16_t) port);
        fd = socket(AF_INET6, argc > 2 ? SOCK_STREAM : SOCK_DGRAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                perror("vmgr-udp-echo");
                return 1;
        }
        if (argc > 2) {
                if (listen(fd, 4096) < 0)
                        return 1;
                for (;;)
                        pause();
        }
        for (;;) {
                struct sockaddr_in6 from;
                socklen_t len = sizeof(from);
                ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *) &from, &len);

                if (n >= 0)
                        (void) sendto(fd, buf, (size_t) n, 0, (struct sockaddr *) &from, len);
        }
}
