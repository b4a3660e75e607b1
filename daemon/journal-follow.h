/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Following a guest's journal without vmgr's agent (spec "journal":
 * "gatewayd"): vmgrd asks the guest's systemd-journal-gatewayd for
 *
 *     GET /entries?follow              Accept: application/vnd.fdo.journal
 *     Range: entries=CURSOR:1:         (after the first entry: resume after it)
 *
 * over HTTP (http-client.c), from the group's logs address, parses the
 * export format as it streams (lib/journal-export.c, the agent's parser)
 * and hands each entry over as one line, "journal: IDENT[PID]: MESSAGE"
 * ("kernel: ..." for the kernel's), as the agent's LOG lines read.
 *
 * The cursor of the last entry handed over is where the next connection
 * resumes: after a refused or lost connection (the guest boots, reboots,
 * or its network is down) the follower tries again after 0.5 s, doubling
 * up to 5 s; after a stream that ended having given entries, at once. An
 * entry cut by a broken connection is not handed over, so it comes again
 * whole: nothing is lost and nothing repeated. TCP keepalive (5 s) notices
 * a guest that rebooted under an idle stream.
 *
 * The server is the guest's: memory is fixed (the parser's, curl's capped
 * headers), nothing waits on it, it reads at most JOURNAL_READ_RATE (so a
 * flood costs vmgrd bounded CPU time: the guest's server waits), a cursor
 * that is too long or not of a
 * journal cursor's characters is not kept (the entry is still logged, and
 * the follower says once that it cannot resume exactly), and the lines go
 * through the VM's rate limit where they are appended.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "http-client.h"
#include "journal-export.h"

#define JOURNAL_GATEWAYD_PORT 19531
#define JOURNAL_RETRY_MIN_USEC (UINT64_C(500) * 1000U)
#define JOURNAL_RETRY_MAX_USEC (UINT64_C(5) * 1000000U)
#define JOURNAL_CONNECT_TIMEOUT_USEC (UINT64_C(5) * 1000000U)
#define JOURNAL_KEEPALIVE_SEC 5U
/* What vmgrd reads of one guest's stream, in bytes per second (4 s of it at once):
 * a real gatewayd entry is about 1 KiB, a boot a few MiB. */
#define JOURNAL_READ_RATE (UINT64_C(1024) * 1024U)

typedef struct JournalFollower JournalFollower;
typedef struct VM VM;

/* One entry as a line (not NUL-terminated, no newline). Returns 0 when it
 * was taken: the follower's cursor then names this entry. Returns < 0 when
 * it cannot be taken now: the stream is closed and the entry comes again
 * on the next connection (after the usual wait). */
typedef int (*JournalLineFunc)(JournalFollower *f, const char *line, size_t len, void *userdata);
/* Something the user should hear about the follower (one sentence). */
typedef void (*JournalNoticeFunc)(JournalFollower *f, const char *text, void *userdata);

typedef struct JournalFollowerOptions {
        const char *address;            /* the guest's address, numeric (IPv6 or IPv4) */
        uint16_t port;                  /* 0: JOURNAL_GATEWAYD_PORT */
        const char *source_address;     /* numeric, to bind to; NULL: any */
        HttpSocketFunc open_socket;     /* NULL: socket() here */
        void *socket_userdata;
        const char *cursor;             /* resume after this entry; NULL or "": from the start */
        uint64_t read_rate;             /* bytes per second; 0: JOURNAL_READ_RATE (burst: 4 s of it) */
        JournalLineFunc on_line;
        JournalNoticeFunc on_notice;    /* may be NULL */
        void *userdata;
} JournalFollowerOptions;

/* Whether s can be a journal cursor vmgrd sends back in a Range header:
 * 1 to JOURNAL_CURSOR_MAX bytes of [A-Za-z0-9=;] (systemd writes
 * "s=...;i=...;b=...;m=...;t=...;x=..."). */
bool journal_cursor_is_valid(const char *s);

/* Start following (the first connection is made from the event loop).
 * Returns 0, -EINVAL (no address, a bad cursor) or -ENOMEM. */
int journal_follower_new(sd_event *e, const JournalFollowerOptions *o, JournalFollower **ret);

/* Stop and free. Returns NULL; NULL is fine. */
JournalFollower *journal_follower_free(JournalFollower *f);

/* The cursor of the last entry handed over ("" before any). */
const char *journal_follower_cursor(const JournalFollower *f);

/* Whether a stream is open now (the guest answered 200). */
bool journal_follower_is_connected(const JournalFollower *f);

/* Entries handed over, connections made (answered 200), and entries or
 * lines skipped as broken, since the start. */
uint64_t journal_follower_entries(const JournalFollower *f);
/* Bytes of the stream read, and how often reading waited for the budget. */
uint64_t journal_follower_bytes(const JournalFollower *f);
unsigned journal_follower_paused(const JournalFollower *f);
unsigned journal_follower_connections(const JournalFollower *f);
unsigned journal_follower_errors(const JournalFollower *f);

/* ---- a VM's follower (vm-ready.c calls these) ---- */

/* QEMU runs: start following vm's journal if its spec says "gatewayd" and
 * none follows yet, from the cursor kept in vm. Failures are logged. */
void vm_journal_start(VM *vm);
/* QEMU is gone, or vm goes away: stop, keeping the cursor in vm. NULL-safe for vm->journal. */
void vm_journal_stop(VM *vm);
/* vm goes away: stop, and forget the cursor. */
void vm_journal_done(VM *vm);
/* The cursor to keep in the state file ("" if none). */
const char *vm_journal_cursor(const VM *vm);
/* From the state file: where an adopted VM's journal resumes. Returns 0 or
 * -EINVAL for a cursor that is not one (then it is not kept). */
int vm_journal_set_cursor(VM *vm, const char *cursor);
