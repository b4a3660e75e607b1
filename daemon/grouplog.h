/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A group's log: one stream of lines from every VM's console, the guests'
 * own logs (forwarded by the agent) and vmgrd's messages about the group,
 * in the order they arrived, each prefixed with where it came from:
 *
 *     [vm=NAME console] text
 *     [vm=NAME guest] text
 *     [vm=NAME vmgrd] text
 *     [vmgrd] text
 *
 * Lines are appended to a file in the group's state directory as they
 * arrive; it is the history, Collect's source, and what followers read.
 * A follower (Group.FollowLogs) is a pipe and an offset into that file: it
 * reads ahead only as far as its pipe takes, so a slow reader costs one
 * buffer and nothing is dropped, however far behind it falls.
 *
 * What a guest controls is bounded: each VM's console lines and guest lines
 * go through a token bucket each (GroupLogLimits: bytes per second and a
 * burst), lines beyond it are dropped and counted, and one line a second at
 * most says how much was dropped:
 *
 *     [vm=NAME vmgrd] dropped N bytes (M lines) of console output (rate limit)
 *
 * Guest lines are stripped of terminal controls like console lines. The
 * console file itself (QEMU appends to it) is rotated past its cap: copied
 * to PATH.1 and truncated, so a VM's console files take at most twice the
 * cap.
 */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

typedef struct GroupLog GroupLog;
typedef struct ConsoleFollower ConsoleFollower;

typedef enum GroupLogSource {
        GROUP_LOG_CONSOLE = 1 << 0,
        GROUP_LOG_GUEST = 1 << 1,
        GROUP_LOG_VMGRD = 1 << 2,
        GROUP_LOG_ALL = GROUP_LOG_CONSOLE | GROUP_LOG_GUEST | GROUP_LOG_VMGRD,
} GroupLogSource;

/* What one VM may write (vm-ready.c takes them from the VM's spec). */
typedef struct GroupLogLimits {
        uint64_t rate;                  /* bytes per second into the group's log, per source */
        uint64_t burst;                 /* bytes at once, per source */
        uint64_t console_max;           /* console.log is rotated past this size */
} GroupLogLimits;

/* "console", "guest", "vmgrd" to the flag, or 0. */
GroupLogSource group_log_source_from_string(const char *s);

/* Open (create, append to) the log file at path. Returns 0 or -errno. */
int group_log_new(sd_event *event, const char *path, GroupLog **ret);
/* Give followers what is written, then close them; free. NULL is fine. */
GroupLog *group_log_free(GroupLog *l);

const char *group_log_path(const GroupLog *l);

/* Append one line; vm may be NULL (a group-level vmgrd line). The text
 * must not contain a newline (cut there if it does). */
void group_log_append(GroupLog *l, const char *vm, GroupLogSource source, const char *text, size_t len);

/* A new follower writing to fd (taken over, also on failure). vms (NULL or
 * NULL-terminated; empty means all) and sources select lines; from_start
 * replays the history first, otherwise only new lines come; without follow
 * the fd is closed once the history written so far has been sent. The
 * first skip selected lines are left out (a reader that comes back after
 * vmgrd restarted goes on where it was). Returns 0 or -errno. */
int group_log_follow(GroupLog *l, int fd, char *const *vms, GroupLogSource sources, bool from_start, bool follow,
                     uint64_t skip);

/* Followers attached now. */
unsigned group_log_n_followers(const GroupLog *l);

/* Follow a console file that a VM's QEMU appends to (with O_APPEND), from
 * offset 0, with inotify; complete lines, stripped of terminal controls, go
 * to l as [vm=NAME console] within the limits. Past limits->console_max the
 * file is copied to PATH.1 and truncated. The file is created if it does
 * not exist. Returns 0 or -errno. */
int console_follower_new(sd_event *event, GroupLog *l, const char *vm, const char *path,
                         const GroupLogLimits *limits, ConsoleFollower **ret);
/* Have every console line (stripped, before any rate limit) also handed to
 * handler, which may free nothing of the follower's. NULL turns it off. */
typedef void (*console_line_handler_t)(const char *line, size_t len, void *userdata);
void console_follower_set_line_handler(ConsoleFollower *c, console_line_handler_t handler, void *userdata);
/* A line from the same VM's guest (its agent's LOG): stripped of terminal
 * controls and into l as [vm=NAME guest] within the limits of its own. */
void console_follower_guest_line(ConsoleFollower *c, const char *text, size_t len);
/* Read what the file has now (before a snapshot of the log). NULL is fine. */
void console_follower_sync(ConsoleFollower *c);
/* Read what is left, emit a partial last line (to the log only, not to
 * the line handler), free. NULL is fine. */
ConsoleFollower *console_follower_free(ConsoleFollower *c);
