/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test client for tests/integration/test-journal-follow.sh: runs vmgrd's
 * journal follower (daemon/journal-follow.c) against a server and prints
 *
 *     LINE <text>           each entry as vmgrd would append it
 *     NOTICE <text>         what vmgrd would say in the group's log
 *
 * and, on SIGTERM or SIGINT (or after --seconds):
 *
 *     CURSOR <cursor>
 *     STATS entries=N bytes=N paused=N connections=N errors=N maxrss_kib=N cpu_ms=N max_stall_ms=N
 *
 * max_stall_ms is the longest the event loop went without running a 50 ms
 * timer: what a server that stalls or floods could make vmgrd wait.
 *
 * Usage: journal-follow-client [--cursor C] [--source ADDR] [--seconds N] [--read-rate BYTES] ADDRESS PORT
 */

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "journal-follow.h"
#include "macro.h"

static uint64_t last_tick, max_stall;

static int on_line(JournalFollower *f, const char *line, size_t len, void *userdata) {
        printf("LINE %.*s\n", (int) len, line);
        return 0;
}

static void on_notice(JournalFollower *f, const char *text, void *userdata) {
        printf("NOTICE %s\n", text);
        fflush(stdout);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        if (last_tick && usec - last_tick > max_stall)
                max_stall = usec - last_tick;
        last_tick = usec;
        fflush(stdout);
        (void) sd_event_source_set_time(s, usec + 50000);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_end(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "cursor", required_argument, NULL, 'c' },
                { "source", required_argument, NULL, 's' },
                { "seconds", required_argument, NULL, 't' },
                { "read-rate", required_argument, NULL, 'r' },
                {},
        };
        const char *cursor = NULL, *source = NULL;
        unsigned seconds = 0;
        uint64_t read_rate = 0;
        sd_event *e = NULL;
        JournalFollower *f = NULL;
        struct rusage ru;
        sigset_t mask;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        cursor = optarg;
                        break;
                case 's':
                        source = optarg;
                        break;
                case 'r':
                        read_rate = strtoull(optarg, NULL, 10);
                        break;
                case 't':
                        seconds = (unsigned) atoi(optarg);
                        break;
                default:
                        return 2;
                }
        if (argc - optind != 2) {
                fprintf(stderr, "usage: %s [--cursor C] [--source ADDR] [--seconds N] ADDRESS PORT\n", argv[0]);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if (sd_event_default(&e) < 0 || sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL) < 0 ||
            sd_event_add_signal(e, NULL, SIGINT, NULL, NULL) < 0 ||
            sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 50000, 0, on_tick, NULL) < 0)
                return 1;
        if (seconds > 0 && sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, seconds * UINT64_C(1000000), 0, on_end,
                                                      NULL) < 0)
                return 1;
        r = journal_follower_new(e,
                                 &(JournalFollowerOptions) {
                                         .address = argv[optind],
                                         .port = (uint16_t) atoi(argv[optind + 1]),
                                         .source_address = source,
                                         .cursor = cursor,
                                         .read_rate = read_rate,
                                         .on_line = on_line,
                                         .on_notice = on_notice,
                                 },
                                 &f);
        if (r < 0) {
                fprintf(stderr, "journal_follower_new: %s\n", strerror(-r));
                return 1;
        }
        r = sd_event_loop(e);
        getrusage(RUSAGE_SELF, &ru);
        printf("CURSOR %s\n", journal_follower_cursor(f));
        printf("STATS entries=%" PRIu64 " bytes=%" PRIu64 " paused=%u connections=%u errors=%u maxrss_kib=%ld "
               "cpu_ms=%ld max_stall_ms=%" PRIu64 "\n",
               journal_follower_entries(f), journal_follower_bytes(f), journal_follower_paused(f),
               journal_follower_connections(f), journal_follower_errors(f), ru.ru_maxrss,
               ru.ru_utime.tv_sec * 1000L + ru.ru_utime.tv_usec / 1000L + ru.ru_stime.tv_sec * 1000L +
                       ru.ru_stime.tv_usec / 1000L,
               max_stall / 1000U);
        journal_follower_free(f);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}
