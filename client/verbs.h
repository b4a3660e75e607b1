/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The verbs vmgrctl dispatches to (table in vmgrctl.c), one file per verb
 * family. A verb prints its own error sentence and returns -errno; three
 * values choose a distinct exit status so scripts can tell the cases apart:
 *
 *   -EINVAL     usage error, invalid name, an argument     exit 2
 *               vmgrd refused (InvalidArgs)
 *   -ENXIO      no such group or VM, or another name       exit 3
 *               vmgrd does not know (FileNotFound)
 *   -EHOSTDOWN  vmgrd not reachable (no bus, no daemon)    exit 4
 *   other       any other failure                          exit 1
 *
 * bus_log_error() (bus-util.h) maps vmgrd's error names to these, one
 * mapping for every verb.
 *
 * Code that passes on an errno from a library must not let one of these
 * three through by accident; errno_generic() folds them into -EIO.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXIT_USAGE 2
#define EXIT_NOT_FOUND 3
#define EXIT_UNREACHABLE 4

#define ERRNO_USAGE EINVAL
#define ERRNO_NOT_FOUND ENXIO
#define ERRNO_UNREACHABLE EHOSTDOWN

/* Returns r unless it is one of the errnos that select an exit status, then -EIO. */
static inline int errno_generic(int r) {
        if (r == -ERRNO_USAGE || r == -ERRNO_NOT_FOUND || r == -ERRNO_UNREACHABLE)
                return -EIO;
        return r;
}

/* Options from the command line. Global ones apply to every verb; each verb
 * names in the table which of the others it takes, so a new one (such as a
 * repeatable "group create --vm SPEC") is a field here, a getopt entry and a
 * flag on the verbs that accept it. */
struct ctl_options {
        bool json;              /* --json */
        bool quiet;             /* -q: no legends, no output from create */
        const char *spec;       /* group create / vm add --spec FILE ("-" = stdin) */
        char **vms;             /* group create --vm NAME[:OPTS], in order (points into argv) */
        size_t n_vms;
        bool print_spec;        /* group create / vm add --print-spec: print the spec, send nothing */
        bool follow;            /* console -f, logs -f */
        bool timings;           /* group show --timings */
        bool lines_set;         /* console --lines N */
        unsigned lines;
        uint64_t timeout_usec;  /* vm shutdown / wait --timeout SEC, 0 = wait without limit */
        char **env;             /* exec -e NAME=VALUE, in order (points into argv), NULL-terminated */
        size_t n_env;
        const char *cwd;        /* exec -w DIR */
        const char *name;       /* serve --name NAME */
        bool uid_set;           /* addr --uid N */
        unsigned uid;
        const char *user;       /* addr --user NAME */
};

/* Each verb gets its positional arguments (after the verb words), already
 * checked against the table's minimum and maximum count. */
int verb_group_create(char **args, size_t n_args, const struct ctl_options *o);
int verb_group_list(char **args, size_t n_args, const struct ctl_options *o);
int verb_group_show(char **args, size_t n_args, const struct ctl_options *o);
int verb_group_delete(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_list(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_show(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_add(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_remove(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_start(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_kill(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_reboot(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_restart(char **args, size_t n_args, const struct ctl_options *o);
int verb_vm_shutdown(char **args, size_t n_args, const struct ctl_options *o);
int verb_console(char **args, size_t n_args, const struct ctl_options *o);
int verb_addr(char **args, size_t n_args, const struct ctl_options *o);
/* verb-agent.c; exec returns the process's exit status (> 0) to exit with. */
int verb_exec(char **args, size_t n_args, const struct ctl_options *o);
int verb_enter(char **args, size_t n_args, const struct ctl_options *o);
int verb_cp(char **args, size_t n_args, const struct ctl_options *o);
int verb_wait(char **args, size_t n_args, const struct ctl_options *o);
/* verb-logs.c: a group's log stream, evidence bundle and timings. */
int verb_logs(char **args, size_t n_args, const struct ctl_options *o);
int verb_group_collect(char **args, size_t n_args, const struct ctl_options *o);
int verb_group_timings(char **args, size_t n_args, const struct ctl_options *o);
/* verb-serve.c: a group's file server. */
int verb_serve(char **args, size_t n_args, const struct ctl_options *o);
int verb_unserve(char **args, size_t n_args, const struct ctl_options *o);
int verb_served(char **args, size_t n_args, const struct ctl_options *o);
/* verb-forward.c: a group's port forwards. */
int verb_forward(char **args, size_t n_args, const struct ctl_options *o);
int verb_unforward(char **args, size_t n_args, const struct ctl_options *o);
int verb_forwards(char **args, size_t n_args, const struct ctl_options *o);

/* verb-snapshot.c: the user's snapshots and templates. */
int verb_snapshot_list(char **args, size_t n_args, const struct ctl_options *o);
int verb_snapshot_create(char **args, size_t n_args, const struct ctl_options *o);
int verb_snapshot_delete(char **args, size_t n_args, const struct ctl_options *o);
/* verb-daemon.c */
int verb_daemon_reexec(char **args, size_t n_args, const struct ctl_options *o);
