/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgrctl: the unprivileged command line client of vmgrd. It parses the
 * command line, picks a verb from the table and lets it talk to vmgrd; all
 * policy lives in the daemon.
 */

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-config.h"

/* Options only some verbs take; a verb lists the ones it accepts. */
enum {
        VERB_OPT_SPEC = 1 << 0,
        VERB_OPT_VM = 1 << 1,
        VERB_OPT_PRINT_SPEC = 1 << 2,
        VERB_OPT_FOLLOW = 1 << 3,
        VERB_OPT_LINES = 1 << 4,
        VERB_OPT_TIMEOUT = 1 << 5,
        VERB_OPT_ENV = 1 << 6,
        VERB_OPT_CWD = 1 << 7,
        VERB_OPT_NAME = 1 << 8,
        VERB_OPT_TIMINGS = 1 << 9,
        VERB_OPT_UID = 1 << 10,
        VERB_OPT_USER = 1 << 11,
};

static const struct {
        unsigned flag;
        const char *name;
} verb_option_names[] = {
        { VERB_OPT_SPEC, "--spec" },
        { VERB_OPT_VM, "--vm" },
        { VERB_OPT_PRINT_SPEC, "--print-spec" },
        { VERB_OPT_FOLLOW, "--follow" },
        { VERB_OPT_LINES, "--lines" },
        { VERB_OPT_TIMEOUT, "--timeout" },
        { VERB_OPT_ENV, "-e" },
        { VERB_OPT_CWD, "-w" },
        { VERB_OPT_NAME, "--name" },
        { VERB_OPT_TIMINGS, "--timings" },
        { VERB_OPT_UID, "--uid" },
        { VERB_OPT_USER, "--user" },
};

/* vm shutdown waits this long for the guest before stopping it hard. */
#define SHUTDOWN_TIMEOUT_DEFAULT_USEC (UINT64_C(60) * UINT64_C(1000000))

struct verb {
        const char *family;     /* first word: "group", "vm", "addr" */
        const char *name;       /* second word, NULL for one-word verbs */
        size_t min_args, max_args;
        unsigned options;       /* VERB_OPT_* it accepts */
        const char *usage;      /* its arguments, for error messages */
        int (*run)(char **args, size_t n_args, const struct ctl_options *o);
};

static const struct verb verbs[] = {
        { "group", "create", 1, 1, VERB_OPT_SPEC | VERB_OPT_VM | VERB_OPT_PRINT_SPEC,
          "NAME [--spec FILE] [--vm NAME[:OPTS]]...", verb_group_create },
        { "group", "list", 0, 0, 0, "", verb_group_list },
        { "group", "show", 1, 1, VERB_OPT_TIMINGS, "NAME [--timings]", verb_group_show },
        { "group", "collect", 2, 2, 0, "NAME DIR", verb_group_collect },
        { "group", "delete", 1, 1, 0, "NAME", verb_group_delete },
        { "vm", "list", 1, 1, 0, "GROUP", verb_vm_list },
        { "vm", "show", 2, 2, 0, "GROUP VM", verb_vm_show },
        { "vm", "add", 2, 2, VERB_OPT_SPEC | VERB_OPT_PRINT_SPEC, "GROUP NAME[:OPTS] [--spec FILE]", verb_vm_add },
        { "vm", "remove", 2, 2, 0, "GROUP VM", verb_vm_remove },
        { "vm", "start", 2, 2, 0, "GROUP VM", verb_vm_start },
        { "vm", "shutdown", 2, 2, VERB_OPT_TIMEOUT, "GROUP VM [--timeout SEC]", verb_vm_shutdown },
        { "vm", "kill", 2, 2, 0, "GROUP VM", verb_vm_kill },
        { "vm", "reboot", 2, 2, 0, "GROUP VM", verb_vm_reboot },
        { "vm", "restart", 2, 2, 0, "GROUP VM", verb_vm_restart },
        { "console", NULL, 2, 2, VERB_OPT_FOLLOW | VERB_OPT_LINES, "GROUP VM [-f] [--lines N]", verb_console },
        { "addr", NULL, 1, 2, VERB_OPT_UID | VERB_OPT_USER, "GROUP [VM] [--uid N | --user NAME]", verb_addr },
        { "logs", NULL, 1, 2, VERB_OPT_FOLLOW, "GROUP [VM] [-f]", verb_logs },
        { "exec", NULL, 3, SIZE_MAX, VERB_OPT_ENV | VERB_OPT_CWD, "GROUP VM [-e NAME=VALUE]... [-w DIR] -- CMD...",
          verb_exec },
        { "cp", NULL, 2, 2, 0, "FILE GROUP/VM:/PATH | GROUP/VM:/PATH FILE", verb_cp },
        { "wait", NULL, 1, 2, VERB_OPT_TIMEOUT, "GROUP [VM] [--timeout SEC]", verb_wait },
        { "serve", NULL, 2, 2, VERB_OPT_NAME, "GROUP FILE [--name NAME]", verb_serve },
        { "unserve", NULL, 2, 2, 0, "GROUP NAME", verb_unserve },
        { "enter", NULL, 0, SIZE_MAX, 0, "[-- CMD...]", verb_enter },
        { "served", NULL, 1, 1, 0, "GROUP", verb_served },
        { "forward", NULL, 3, 4, 0, "GROUP VM [tcp|udp:]GUEST_PORT [[ADDR:]HOST_PORT]", verb_forward },
        { "unforward", NULL, 2, 2, 0, "GROUP [tcp|udp:][ADDR:]HOST_PORT", verb_unforward },
        { "forwards", NULL, 1, 1, 0, "GROUP", verb_forwards },
        { "snapshot", "list", 0, 0, 0, "", verb_snapshot_list },
        { "snapshot", "create", 3, 3, 0, "GROUP VM NAME", verb_snapshot_create },
        { "snapshot", "delete", 1, 1, 0, "NAME | template:SHAPE", verb_snapshot_delete },
        { "daemon", "reexec", 0, 0, 0, "", verb_daemon_reexec },
};

static void help(void) {
        printf("vmgrctl [OPTIONS...] COMMAND ...\n"
               "\n"
               "Manage groups of VMs on private networks run by vmgrd.\n"
               "\n"
               "Group commands:\n"
               "  group create NAME [--spec FILE] [--vm NAME[:OPTS]]...\n"
               "                                   Create a group (FILE '-' reads stdin;\n"
               "                                   no spec: network only) and show it\n"
               "  group list                       List groups\n"
               "  group show NAME [--timings]      Show all properties of a group, or the\n"
               "                                   stage timings of it and its VMs (ms)\n"
               "  group collect NAME DIR           Write the group's evidence (logs, consoles,\n"
               "                                   domain XML, dnsmasq files, timings) to DIR\n"
               "  group delete NAME                Delete a group and everything in it\n"
               "\n"
               "VM commands:\n"
               "  vm list GROUP                    List a group's VMs\n"
               "  vm show GROUP VM                 Show all properties of a VM\n"
               "  vm add GROUP NAME[:OPTS] [--spec FILE]\n"
               "                                   Add a VM (FILE: one VM's spec), start it\n"
               "                                   and show it\n"
               "  vm remove GROUP VM               Stop a VM and delete it and its disks\n"
               "  vm start GROUP VM                Start a stopped VM\n"
               "  vm shutdown GROUP VM [--timeout SEC]\n"
               "                                   Shut a VM down cleanly; stop it hard\n"
               "                                   after SEC seconds (default 60, 0: wait)\n"
               "  vm kill GROUP VM                 Stop a VM at once\n"
               "  vm reboot GROUP VM               Ask the guest to reboot\n"
               "  vm restart GROUP VM              Stop a VM hard and start it again\n"
               "  logs GROUP [VM] [-f]             Print the group's log: consoles, guest\n"
               "                                   logs, vmgrd's messages; -f: keep following\n"
               "  console GROUP VM [-f] [--lines N]\n"
               "                                   Print a VM's console log (read-only)\n"
               "\n"
               "Snapshot commands (warm starts: see the spec's \"warm\", \"from_snapshot\"):\n"
               "  snapshot list                    List the templates and snapshots in the\n"
               "                                   user's cache\n"
               "  snapshot create GROUP VM NAME    Save a running VM (memory, devices, disks)\n"
               "                                   as snapshot NAME; the VM goes on running\n"
               "  snapshot delete NAME | template:SHAPE\n"
               "                                   Delete a snapshot or a template (VMs\n"
               "                                   started from it go on running)\n"
               "\n"
               "Guest agent commands:\n"
               "  exec GROUP VM [-e K=V]... [-w DIR] -- CMD...\n"
               "                                   Run CMD in the VM: stdin, stdout and stderr\n"
               "                                   streamed, its exit status is ours\n"
               "  cp FILE GROUP/VM:/PATH           Copy a file into a VM\n"
               "  cp GROUP/VM:/PATH FILE           Copy a file out of a VM (FILE - : stdout)\n"
               "  wait GROUP [VM] [--timeout SEC]  Wait until the VM (every VM) is ready;\n"
               "                                   on a terminal, show each stage\n"
               "\n"
               "File server commands (HTTP on the group's files address, port 8080):\n"
               "  serve GROUP FILE [--name NAME]   Serve FILE to the group's guests as NAME\n"
               "                                   (default: its base name); print its URL\n"
               "  unserve GROUP NAME               Stop serving NAME\n"
               "  served GROUP                     List the files a group serves\n"
               "\n"
               "Reaching the guests:\n"
               "  enter [-- CMD...]                Run CMD (default: your shell) where the\n"
               "                                   guests are reachable: inside vmgrd's user\n"
               "                                   and network namespaces in namespace mode,\n"
               "                                   here in host mode; its exit status is ours\n"
               "\n"
               "Port forward commands (vmgrd relays from its own network namespace):\n"
               "  forward GROUP VM [tcp|udp:]GUEST_PORT [[ADDR:]HOST_PORT]\n"
               "                                   Forward HOST_PORT on ADDR (default\n"
               "                                   127.0.0.1; IPv6 in brackets; port 0 or\n"
               "                                   none: a free one) to the VM's GUEST_PORT;\n"
               "                                   print ADDR:PORT\n"
               "  unforward GROUP [tcp|udp:][ADDR:]HOST_PORT\n"
               "                                   Stop a forward\n"
               "  forwards GROUP                   List a group's forwards\n"
               "\n"
               "Address commands (offline, no vmgrd needed; they derive from the\n"
               "owner's uid, by default ours):\n"
               "  addr GROUP                       Show a group's bridge and addresses\n"
               "  addr GROUP VM                    Show a VM's TAPs, MACs and IPv6 address\n"
               "\n"
               "Options:\n"
               "  -h --help                        Show this help\n"
               "     --version                     Show the version\n"
               "     --json                        Print JSON (list, show, create, add, addr,\n"
               "                                   serve, served, forward, forwards,\n"
               "                                   snapshot list)\n"
               "  -q --quiet                       No table header; create and add print\n"
               "                                   nothing\n"
               "     --spec FILE                   Spec, JSON (group create, vm add)\n"
               "     --vm NAME[:OPTS]              Add a VM to the group's spec (group create;\n"
               "                                   repeatable). OPTS: comma-separated ipv4,\n"
               "                                   vcpus=N, memory=MIB, kernel=PATH,\n"
               "                                   initrd=PATH, disk=PATH, agent, no-agent,\n"
               "                                   uefi, cloud-init, install-agent, journal,\n"
               "                                   probe-tcp=PORT, warm, cold,\n"
               "                                   from-snapshot=NAME, cmdline=TEXT; cmdline\n"
               "                                   comes last and takes the rest\n"
               "  -f --follow                      Keep printing what the console writes\n"
               "                                   until the VM is removed (console), or the\n"
               "                                   group's log until it is deleted (logs)\n"
               "  -n --lines N                     Start with the last N lines (console)\n"
               "     --timeout SEC                 Clean shutdown time (vm shutdown), how long\n"
               "                                   to wait (wait; default 60, 0: no limit)\n"
               "  -e NAME=VALUE                    Environment for the command (exec)\n"
               "  -w DIR                           Working directory in the guest (exec)\n"
               "     --name NAME                   Name to serve the file under (serve)\n"
               "     --uid N                       Whose group: the uid its vmgrd runs as (addr)\n"
               "     --user NAME                   The same, given as a user name (addr)\n"
               "\n"
               "On a terminal, console shows control characters visibly: ESC as ^[,\n"
               "other C0 controls and DEL in caret notation (^G, ^?), CR LF as a line\n"
               "end, C1 controls as M-^[ and so on. Redirected, the log is copied raw.\n"
               "\n"
               "vmgrctl talks to vmgrd on the bus in DBUS_SESSION_BUS_ADDRESS.\n"
               "Exit status: 0 success, 1 failure, 2 usage error, invalid name or an\n"
               "argument vmgrd refused, 3 no such group, VM, served file or forward,\n"
               "4 vmgrd cannot be reached.\n");
}

/* Parses a non-negative decimal number no larger than max. Returns 0, or -EINVAL. */
static int parse_number(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t n = 0;

        if (!*s || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        for (; *s; s++) {
                n = n * 10 + (uint64_t) (*s - '0');
                if (n > max)
                        return -EINVAL;
        }
        *ret = n;
        return 0;
}

/* getopt_long() codes of the options without a short form. */
enum {
        ARG_VERSION = 0x100,
        ARG_JSON,
        ARG_SPEC,
        ARG_VM,
        ARG_PRINT_SPEC,
        ARG_TIMEOUT,
        ARG_NAME,
        ARG_TIMINGS,
        ARG_UID,
        ARG_USER,
};

static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        { "json", no_argument, NULL, ARG_JSON },
        { "quiet", no_argument, NULL, 'q' },
        { "spec", required_argument, NULL, ARG_SPEC },
        { "vm", required_argument, NULL, ARG_VM },
        /* Not in --help: for tests and for seeing what a shorthand means. */
        { "print-spec", no_argument, NULL, ARG_PRINT_SPEC },
        { "follow", no_argument, NULL, 'f' },
        { "lines", required_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, ARG_TIMEOUT },
        { "name", required_argument, NULL, ARG_NAME },
        { "timings", no_argument, NULL, ARG_TIMINGS },
        { "uid", required_argument, NULL, ARG_UID },
        { "user", required_argument, NULL, ARG_USER },
        {}
};

/* Handles the options that take a number: --lines, --timeout, --uid.
 * Returns 0, or -EINVAL after logging. */
static int parse_number_option(int c, const char *arg, struct ctl_options *o, unsigned *given) {
        uint64_t n;

        switch (c) {
        case 'n':
                if (parse_number(arg, UINT32_MAX, &n) < 0)
                        return log_error_errno(-ERRNO_USAGE, "invalid --lines value '%s': must be a whole number", arg);
                o->lines = (unsigned) n;
                o->lines_set = true;
                *given |= VERB_OPT_LINES;
                return 0;
        case ARG_TIMEOUT:
                if (parse_number(arg, UINT32_MAX, &n) < 0)
                        return log_error_errno(-ERRNO_USAGE,
                                               "invalid --timeout value '%s': must be whole seconds (0: no limit)",
                                               arg);
                o->timeout_usec = n * UINT64_C(1000000);
                *given |= VERB_OPT_TIMEOUT;
                return 0;
        case ARG_UID:
                if (parse_number(arg, UINT32_MAX, &n) < 0)
                        return log_error_errno(-ERRNO_USAGE, "invalid --uid value '%s': must be a whole number", arg);
                o->uid = (unsigned) n;
                o->uid_set = true;
                *given |= VERB_OPT_UID;
                return 0;
        default:
                return log_error_errno(-ERRNO_USAGE, "cannot parse the options");
        }
}

/* Handles one option that only some verbs take, recording it in *given for
 * verb_check(). Returns 0, or -EINVAL after logging. */
static int parse_verb_option(int c, char *arg, struct ctl_options *o, unsigned *given) {
        switch (c) {
        case ARG_SPEC:
                if (o->spec)
                        return log_error_errno(-ERRNO_USAGE, "--spec given twice; a group has one spec");
                o->spec = arg;
                *given |= VERB_OPT_SPEC;
                return 0;
        case ARG_VM:
                o->vms[o->n_vms++] = arg;
                *given |= VERB_OPT_VM;
                return 0;
        case ARG_PRINT_SPEC:
                o->print_spec = true;
                *given |= VERB_OPT_PRINT_SPEC;
                return 0;
        case 'e':
                if (!strchr(arg, '=') || *arg == '=')
                        return log_error_errno(-ERRNO_USAGE, "-e wants NAME=VALUE, got '%s'", arg);
                o->env[o->n_env++] = arg;
                *given |= VERB_OPT_ENV;
                return 0;
        case 'w':
                if (*arg != '/')
                        return log_error_errno(-ERRNO_USAGE, "-w wants an absolute path in the guest");
                o->cwd = arg;
                *given |= VERB_OPT_CWD;
                return 0;
        case ARG_TIMINGS:
                o->timings = true;
                *given |= VERB_OPT_TIMINGS;
                return 0;
        case 'f':
                o->follow = true;
                *given |= VERB_OPT_FOLLOW;
                return 0;
        case ARG_NAME:
                o->name = arg;
                *given |= VERB_OPT_NAME;
                return 0;
        case ARG_USER:
                o->user = arg;
                *given |= VERB_OPT_USER;
                return 0;
        default:
                return parse_number_option(c, arg, o, given);
        }
}

/* Logs what getopt_long() rejected: ':' a missing argument, '?' an unknown
 * option or an argument given to one that takes none. Returns -EINVAL. */
static int option_error(int c, char *argv[]) {
        if (c == ':')
                return log_error_errno(-ERRNO_USAGE, "option %s needs an argument; see 'vmgrctl --help'",
                                       argv[optind - 1]);
        if (optopt == 0)
                return log_error_errno(-ERRNO_USAGE, "unknown option %s; see 'vmgrctl --help'", argv[optind - 1]);
        if (optopt >= 0x100 || optopt == 'h' || optopt == 'q' || optopt == 'f')
                /* A known long option given "=value" it does not take. */
                return log_error_errno(-ERRNO_USAGE, "option %s takes no argument", argv[optind - 1]);
        return log_error_errno(-ERRNO_USAGE, "unknown option -%c; see 'vmgrctl --help'", optopt);
}

/* Parses options anywhere on the command line (GNU getopt permutes them
 * behind the verb words, as systemctl does). Returns 1 to run a verb, 0 when
 * --help/--version already did the job, or -EINVAL after logging. *given
 * collects the VERB_OPT_* that appeared; o->vms must have room for argc
 * entries. */
static int parse_argv(int argc, char *argv[], struct ctl_options *o, unsigned *given) {
        int c, r;

        opterr = 0; /* our own sentences, in option_error(); ':' reports a missing argument apart */
        while ((c = getopt_long(argc, argv, ":hqfn:e:w:", long_options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vmgrctl %s\n", VMGR_VERSION);
                        return 0;
                case ARG_JSON:
                        o->json = true;
                        break;
                case 'q':
                        o->quiet = true;
                        break;
                case ':':
                case '?':
                        return option_error(c, argv);
                default:
                        r = parse_verb_option(c, optarg, o, given);
                        if (r < 0)
                                return r;
                }
        return 1;
}

/* Lists the second words of a verb family as "a, b or c" in a new string.
 * Returns 0, or -ENOMEM. */
static int verb_family_names(const char *family, char **ret) {
        size_t i_last = 0, size = 0;
        bool first = true;
        char *buf = NULL;
        FILE *f;

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].family, family) && verbs[i].name)
                        i_last = i;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                if (!streq(verbs[i].family, family) || !verbs[i].name)
                        continue;
                fprintf(f, "%s%s", first ? "" : i == i_last ? " or " : ", ", verbs[i].name);
                first = false;
        }
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* Finds the verb named by the first one or two words. Returns 0 and the verb
 * and how many words it used, or -EINVAL after logging. */
static int verb_find(char **words, size_t n_words, const struct verb **ret, size_t *ret_used) {
        bool family_known = false;

        if (n_words == 0)
                return log_error_errno(-ERRNO_USAGE, "missing command; see 'vmgrctl --help'");

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                if (!streq(verbs[i].family, words[0]))
                        continue;
                family_known = true;
                if (!verbs[i].name) {
                        *ret = &verbs[i];
                        *ret_used = 1;
                        return 0;
                }
                if (n_words > 1 && streq(verbs[i].name, words[1])) {
                        *ret = &verbs[i];
                        *ret_used = 2;
                        return 0;
                }
        }

        if (!family_known)
                return log_error_errno(-ERRNO_USAGE, "unknown command '%s'; see 'vmgrctl --help'", words[0]);
        if (n_words < 2) {
                _cleanup_free_ char *names = NULL;

                verb_family_names(words[0], &names);
                return log_error_errno(-ERRNO_USAGE, "missing %s command (%s); see 'vmgrctl --help'", words[0],
                                       strempty(names) ? "see the help" : names);
        }
        return log_error_errno(-ERRNO_USAGE, "unknown command '%s %s'; see 'vmgrctl --help'", words[0], words[1]);
}

/* Checks the verb's argument count and options. Returns 0, or -EINVAL after logging. */
static int verb_check(const struct verb *v, size_t n_args, unsigned given) {
        const char *sep = v->name ? " " : "";
        const char *name = v->name ?: "";

        for (size_t i = 0; i < ELEMENTSOF(verb_option_names); i++)
                if ((given & verb_option_names[i].flag) && !(v->options & verb_option_names[i].flag))
                        return log_error_errno(-ERRNO_USAGE, "option %s does not apply to '%s%s%s'",
                                               verb_option_names[i].name, v->family, sep, name);
        if (n_args < v->min_args || n_args > v->max_args)
                return log_error_errno(-ERRNO_USAGE, "%s arguments; usage: vmgrctl %s%s%s%s%s",
                                       n_args < v->min_args ? "missing" : "too many", v->family, sep, name,
                                       *v->usage ? " " : "", v->usage);
        return 0;
}

static int exit_status(int r) {
        if (r >= 0)
                return EXIT_SUCCESS;
        switch (-r) {
        case ERRNO_USAGE:
                return EXIT_USAGE;
        case ERRNO_NOT_FOUND:
                return EXIT_NOT_FOUND;
        case ERRNO_UNREACHABLE:
                return EXIT_UNREACHABLE;
        default:
                return EXIT_FAILURE;
        }
}

int main(int argc, char *argv[]) {
        _cleanup_free_ char **vms = NULL, **env = NULL;
        struct ctl_options o = {
                .timeout_usec = SHUTDOWN_TIMEOUT_DEFAULT_USEC,
        };
        const struct verb *v = NULL;
        unsigned given = 0;
        size_t n_words, used = 0;
        int r;

        /* Every --vm could be one argument: room for all of them. */
        vms = calloc((size_t) argc + 1, sizeof(char *));
        if (!vms)
                return exit_status(log_error_errno(-ENOMEM, "%m"));
        o.vms = vms;
        env = calloc((size_t) argc + 1, sizeof(char *));
        if (!env)
                return exit_status(log_error_errno(-ENOMEM, "%m"));
        o.env = env;

        r = parse_argv(argc, argv, &o, &given);
        if (r <= 0) {
                int flushed = output_flush();
                return exit_status(r < 0 ? r : flushed);
        }

        n_words = (size_t) (argc - optind);
        r = verb_find(argv + optind, n_words, &v, &used);
        if (r >= 0)
                r = verb_check(v, n_words - used, given);
        if (r >= 0)
                r = v->run(argv + optind + used, n_words - used, &o);
        if (r > 0) {
                /* exec: the guest process's exit status. */
                (void) output_flush();
                return r > 255 ? 255 : r;
        }
        if (r >= 0)
                r = output_flush();
        return exit_status(r);
}
