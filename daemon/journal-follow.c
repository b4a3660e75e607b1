/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "grouplog.h"
#include "journal-follow.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "tokenbucket.h"
#include "vm.h"

struct JournalFollower {
        sd_event *event;
        char *url;
        char *source_address;
        HttpSocketFunc open_socket;
        void *socket_userdata;
        JournalLineFunc on_line;
        JournalNoticeFunc on_notice;
        void *userdata;

        HttpRequest *request;
        sd_event_source *retry_timer;
        uint64_t retry_usec;            /* the next wait after a failure */
        bool connected;
        uint64_t stream_entries;        /* entries handed over on this connection */
        struct vmgr_token_bucket read_budget;
        uint64_t read_rate;
        sd_event_source *resume_timer;  /* reading on after the budget ran out */
        uint64_t bytes;
        unsigned paused;

        struct journal_parser parser;
        char cursor[JOURNAL_CURSOR_MAX + 1];
        uint64_t entries;
        unsigned connections;
        unsigned errors;
        bool said_cursor, said_format;
};

bool journal_cursor_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > JOURNAL_CURSOR_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '=' || s[i] == ';'))
                        return false;
        return true;
}

static void notice(JournalFollower *f, const char *text) {
        if (f->on_notice)
                f->on_notice(f, text, f->userdata);
}

/* One complete entry: hand it over as a line, then make its cursor ours.
 * Returns 0, or -ECANCELED when the receiver did not take it (the cursor
 * stays, so it comes again). */
static int entry_done(JournalFollower *f, const struct journal_entry *e) {
        const struct journal_value *c = &e->fields[JOURNAL_FIELD_CURSOR];
        struct journal_log log;
        char line[VMGR_AGENT_LOG_MAX + 16];
        bool cursor_ok;
        int n;

        /* The value may hold a NUL (a binary field): then it is not one. */
        cursor_ok = c->present && !c->cut && strlen(c->buf) == c->len && journal_cursor_is_valid(c->buf);
        if (journal_entry_to_log(e, &log) >= 0) {
                n = snprintf(line, sizeof(line), "%s: %s", log.source == VMGR_AGENT_LOG_KERNEL ? "kernel" : "journal",
                             log.text.buf);
                if (n > 0 && f->on_line(f, line, MIN((size_t) n, sizeof(line) - 1), f->userdata) < 0)
                        return -ECANCELED;
        }
        f->entries++;
        f->stream_entries++;
        f->retry_usec = JOURNAL_RETRY_MIN_USEC;
        if (cursor_ok)
                memcpy(f->cursor, c->buf, c->len + 1);
        else if (!f->said_cursor) {
                f->said_cursor = true;
                notice(f, "The guest's journal sent an entry without a valid cursor (missing, longer than "
                          "512 bytes, or of other characters); after a reconnection, entries since the last "
                          "valid cursor may come again");
        }
        return 0;
}

static int on_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        JournalFollower *f = userdata;

        if (f->request)
                (void) http_request_resume(f->request);
        return 0;
}

static int on_body(HttpRequest *r, const void *data, size_t size, void *userdata) {
        JournalFollower *f = userdata;
        const char *p = data;
        uint64_t now, have;

        /* Parsing costs vmgrd CPU time: a guest gets read_rate of it. Past that, nothing more is read until the bucket holds the
         * chunk; the guest's server waits, nothing is lost. */
        if (sd_event_now(f->event, CLOCK_MONOTONIC, &now) < 0)
                return -EIO;
        if (!vmgr_token_bucket_take(&f->read_budget, size, now)) {
                have = vmgr_token_bucket_available(&f->read_budget, now);
                (void) sd_event_source_set_time(f->resume_timer,
                                                now + (size - MIN(have, (uint64_t) size)) * 1000000U / f->read_rate + 1000U);
                (void) sd_event_source_set_enabled(f->resume_timer, SD_EVENT_ONESHOT);
                f->paused++;
                return HTTP_BODY_PAUSE;
        }
        f->bytes += size;

        while (size > 0) {
                const struct journal_entry *e;
                size_t k = journal_parser_feed(&f->parser, p, size, &e);

                p += k;
                size -= k;
                if (e && entry_done(f, e) < 0)
                        return -ECANCELED;
        }
        if (f->parser.errors > 0 && !f->said_format) {
                f->said_format = true;
                notice(f, "The guest's journal stream is not all in the journal export format; what does not "
                          "parse is skipped");
        }
        return 0;
}

static int on_response(HttpRequest *r, long status, void *userdata) {
        JournalFollower *f = userdata;

        if (status != 200)
                return -EBADMSG;
        f->connected = true;
        f->connections++;
        return 0;
}

static int follower_connect(JournalFollower *f);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        JournalFollower *f = userdata;

        if (follower_connect(f) < 0) {
                /* Out of memory, most likely: try again later. */
                (void) sd_event_source_set_time_relative(s, JOURNAL_RETRY_MAX_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        return 0;
}

static void on_done(HttpRequest *r, int error, const char *text, void *userdata) {
        JournalFollower *f = userdata;
        uint64_t wait = 0;

        f->request = http_request_free(f->request);
        (void) sd_event_source_set_enabled(f->resume_timer, SD_EVENT_OFF);
        f->errors = f->parser.errors;
        /* A stream that gave entries and ended (gatewayd stopped, the guest
         * shut down cleanly): back at once, from the cursor. Anything else
         * (refused, unreachable, timed out, not 200, nothing but an end):
         * after a wait that grows, so a guest that is down costs little. */
        if (!(error == 0 && f->stream_entries > 0)) {
                wait = f->retry_usec;
                f->retry_usec = MIN(f->retry_usec * 2, JOURNAL_RETRY_MAX_USEC);
        }
        log_debug("Journal stream %s ended after %" PRIu64 " entries: %s; again in %" PRIu64 " ms", f->url,
                  f->stream_entries, text, wait / 1000U);
        f->connected = false;
        (void) sd_event_source_set_time_relative(f->retry_timer, wait);
        (void) sd_event_source_set_enabled(f->retry_timer, SD_EVENT_ONESHOT);
}

/* Open a stream from the cursor. Returns 0 or -errno. */
static int follower_connect(JournalFollower *f) {
        char range[sizeof("Range: entries=") + JOURNAL_CURSOR_MAX + sizeof(":1:")];
        const char *headers[] = { "Accept: application/vnd.fdo.journal", NULL, NULL };

        /* Skip the cursor's own entry: it was handed over already. */
        if (f->cursor[0]) {
                snprintf(range, sizeof(range), "Range: entries=%s:1:", f->cursor);
                headers[1] = range;
        }
        journal_parser_init(&f->parser);
        f->stream_entries = 0;
        return http_request_start(f->event,
                                  &(HttpRequestOptions) {
                                          .url = f->url,
                                          .headers = headers,
                                          .source_address = f->source_address,
                                          .open_socket = f->open_socket,
                                          .socket_userdata = f->socket_userdata,
                                          .connect_timeout_usec = JOURNAL_CONNECT_TIMEOUT_USEC,
                                          .keepalive_sec = JOURNAL_KEEPALIVE_SEC,
                                          .on_response = on_response,
                                          .on_body = on_body,
                                          .on_done = on_done,
                                          .userdata = f,
                                  },
                                  &f->request);
}

int journal_follower_new(sd_event *e, const JournalFollowerOptions *o, JournalFollower **ret) {
        JournalFollower *f;
        uint64_t now;
        int r;

        if (!o->address || !*o->address || !o->on_line || (o->cursor && *o->cursor && !journal_cursor_is_valid(o->cursor)))
                return -EINVAL;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->event = sd_event_ref(e);
        f->open_socket = o->open_socket;
        f->socket_userdata = o->socket_userdata;
        f->on_line = o->on_line;
        f->on_notice = o->on_notice;
        f->userdata = o->userdata;
        f->retry_usec = JOURNAL_RETRY_MIN_USEC;
        if (o->cursor)
                snprintf(f->cursor, sizeof(f->cursor), "%s", o->cursor);
        r = -ENOMEM;
        if (asprintf(&f->url, strchr(o->address, ':') ? "http://[%s]:%u/entries?follow" : "http://%s:%u/entries?follow",
                     o->address, o->port ?: JOURNAL_GATEWAYD_PORT) < 0) {
                f->url = NULL;
                goto fail;
        }
        if (o->source_address && !(f->source_address = strdup(o->source_address)))
                goto fail;
        /* The first connection from the loop, like every later one. */
        r = sd_event_add_time_relative(e, &f->retry_timer, CLOCK_MONOTONIC, 0, 0, on_retry, f);
        if (r < 0)
                goto fail;
        r = sd_event_add_time(e, &f->resume_timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_resume, f);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(f->resume_timer, SD_EVENT_OFF);
        if (sd_event_now(e, CLOCK_MONOTONIC, &now) < 0)
                now = 0;
        f->read_rate = o->read_rate ?: JOURNAL_READ_RATE;
        vmgr_token_bucket_init(&f->read_budget, f->read_rate, f->read_rate * 4U, now);
        *ret = f;
        return 0;
fail:
        journal_follower_free(f);
        return r;
}

JournalFollower *journal_follower_free(JournalFollower *f) {
        if (!f)
                return NULL;
        http_request_free(f->request);
        sd_event_source_disable_unref(f->retry_timer);
        sd_event_source_disable_unref(f->resume_timer);
        sd_event_unref(f->event);
        free(f->url);
        free(f->source_address);
        free(f);
        return NULL;
}

const char *journal_follower_cursor(const JournalFollower *f) {
        return f->cursor;
}

bool journal_follower_is_connected(const JournalFollower *f) {
        return f->connected;
}

uint64_t journal_follower_entries(const JournalFollower *f) {
        return f->entries;
}

uint64_t journal_follower_bytes(const JournalFollower *f) {
        return f->bytes;
}

unsigned journal_follower_paused(const JournalFollower *f) {
        return f->paused;
}

unsigned journal_follower_connections(const JournalFollower *f) {
        return f->connections;
}

unsigned journal_follower_errors(const JournalFollower *f) {
        return f->errors + f->parser.errors;
}

/* ---- a VM's follower ------------------------------------------------------ */

/* The cursor goes to disk with the group's state at most this long after
 * an entry: a vmgrd that dies in between repeats those entries once. */
#define JOURNAL_SAVE_USEC (UINT64_C(5) * 1000000U)

static sd_event *vm_event(VM *vm) {
        return vm->group && vm->group->manager ? vm->group->manager->event : NULL;
}

static int on_vm_journal_save(sd_event_source *s, uint64_t usec, void *userdata) {
        VM *vm = userdata;

        if (vm->group && vm->group->state == GROUP_RUNNING)
                group_save(vm->group);
        return 0;
}

static int vm_journal_line(JournalFollower *f, const char *line, size_t len, void *userdata) {
        VM *vm = userdata;
        uint64_t now;

        if (!vm->group || !vm->console)
                return -ENOTCONN;
        /* Once a re-exec is under way, the state file with the cursor is
         * being written: later entries wait for the next vmgrd. */
        if (vm->group->manager->reexec_source)
                return -EAGAIN;
        /* Stripped and rate-limited with the VM's other guest lines. */
        console_follower_guest_line(vm->console, line, len);
        if (!vm->journal_save_timer) {
                if (sd_event_add_time_relative(vm_event(vm), &vm->journal_save_timer, CLOCK_MONOTONIC,
                                               JOURNAL_SAVE_USEC, 0, on_vm_journal_save, vm) < 0)
                        return 0;
        } else if (sd_event_source_get_enabled(vm->journal_save_timer, NULL) == 0 &&
                   sd_event_now(vm_event(vm), CLOCK_MONOTONIC, &now) >= 0) {
                (void) sd_event_source_set_time(vm->journal_save_timer, now + JOURNAL_SAVE_USEC);
                (void) sd_event_source_set_enabled(vm->journal_save_timer, SD_EVENT_ONESHOT);
        }
        return 0;
}

static void vm_journal_notice(JournalFollower *f, const char *text, void *userdata) {
        VM *vm = userdata;

        log_internal(LOG_WARNING, 0, vm->group ? vm->group->name : NULL, vm->name, "%s", text);
}

static int vm_journal_socket(int family, int type, int protocol, void *userdata) {
        VM *vm = userdata;

        if (!vm->group)
                return -ENOTCONN;
        return manager_guest_socket(vm->group->manager, family, type, protocol);
}

void vm_journal_start(VM *vm) {
        char address[INET6_ADDRSTRLEN], source[INET6_ADDRSTRLEN];
        int r;

        if (vm->journal || vm->spec.journal != VMGR_JOURNAL_GATEWAYD || !vm->group || !vm_event(vm))
                return;
        /* From the group's logs address: guests (and their firewalls) tell
         * vmgrd's log readers by it. */
        if (!inet_ntop(AF_INET6, &vm->addrs.ipv6, address, sizeof(address)) ||
            !inet_ntop(AF_INET6, &vm->group->addrs.logs6, source, sizeof(source)))
                return;
        r = journal_follower_new(vm_event(vm),
                                 &(JournalFollowerOptions) {
                                         .address = address,
                                         .source_address = source,
                                         .open_socket = vm_journal_socket,
                                         .socket_userdata = vm,
                                         .cursor = vm->journal_cursor,
                                         .on_line = vm_journal_line,
                                         .on_notice = vm_journal_notice,
                                         .userdata = vm,
                                 },
                                 &vm->journal);
        if (r < 0)
                log_internal(LOG_WARNING, -r, vm->group->name, vm->name, "Cannot follow the guest's journal: %m");
}

void vm_journal_stop(VM *vm) {
        if (vm->journal) {
                const char *c = journal_follower_cursor(vm->journal);

                if (*c) {
                        char *copy = strdup(c);
                        if (copy) {
                                free(vm->journal_cursor);
                                vm->journal_cursor = copy;
                        }
                }
                vm->journal = journal_follower_free(vm->journal);
        }
        vm->journal_save_timer = sd_event_source_disable_unref(vm->journal_save_timer);
}

void vm_journal_done(VM *vm) {
        vm_journal_stop(vm);
        free(vm->journal_cursor);
        vm->journal_cursor = NULL;
}

const char *vm_journal_cursor(const VM *vm) {
        if (vm->journal && *journal_follower_cursor(vm->journal))
                return journal_follower_cursor(vm->journal);
        return vm->journal_cursor ?: "";
}

int vm_journal_set_cursor(VM *vm, const char *cursor) {
        char *copy;

        if (!cursor || !journal_cursor_is_valid(cursor))
                return -EINVAL;
        copy = strdup(cursor);
        if (!copy)
                return -ENOMEM;
        free(vm->journal_cursor);
        vm->journal_cursor = copy;
        return 0;
}
