/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgrctl: the unprivileged command line client of vmgrd. It parses the
 * command line, picks a verb from the table and lets it talk to vmgrd; all
 * policy lives in the daemon.
 */

#include <getopt.h>
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
};

static const struct {
        unsigned flag;
        const char *name;
} verb_option_names[] = {
        { VERB_OPT_SPEC, "--spec" },
};

struct verb {
        const char *family;     /* first word: "group", "addr" */
        const char *name;       /* second word, NULL for one-word verbs */
        size_t min_args, max_args;
        unsigned options;       /* VERB_OPT_* it accepts */
        const char *usage;      /* its arguments, for error messages */
        int (*run)(char **args, size_t n_args, const struct ctl_options *o);
};

static const struct verb verbs[] = {
        { "group", "create", 1, 1, VERB_OPT_SPEC, "NAME [--spec FILE]", verb_group_create },
        { "group", "list", 0, 0, 0, "", verb_group_list },
        { "group", "show", 1, 1, 0, "NAME", verb_group_show },
        { "group", "delete", 1, 1, 0, "NAME", verb_group_delete },
        { "addr", NULL, 1, 2, 0, "GROUP [VM]", verb_addr },
};

static void help(void) {
        printf("vmgrctl [OPTIONS...] COMMAND ...\n"
               "\n"
               "Manage groups of VMs on private networks run by vmgrd.\n"
               "\n"
               "Group commands:\n"
               "  group create NAME [--spec FILE]  Create a group (FILE '-' reads stdin;\n"
               "                                   no spec: network only) and show it\n"
               "  group list                       List groups\n"
               "  group show NAME                  Show all properties of a group\n"
               "  group delete NAME                Delete a group and everything in it\n"
               "\n"
               "Address commands (offline, no vmgrd needed):\n"
               "  addr GROUP                       Show a group's bridge and addresses\n"
               "  addr GROUP VM                    Show a VM's TAPs, MACs and IPv6 address\n"
               "\n"
               "Options:\n"
               "  -h --help                        Show this help\n"
               "     --version                     Show the version\n"
               "     --json                        Print JSON (list, show, create, addr)\n"
               "  -q --quiet                       No table header; create prints nothing\n"
               "     --spec FILE                   Group spec, JSON (group create)\n"
               "\n"
               "vmgrctl talks to vmgrd on the bus in DBUS_SESSION_BUS_ADDRESS.\n"
               "Exit status: 0 success, 1 failure, 2 usage error or invalid name,\n"
               "3 no such group or VM, 4 vmgrd cannot be reached.\n");
}

/* Parses options anywhere on the command line (GNU getopt permutes them
 * behind the verb words, as systemctl does). Returns 1 to run a verb, 0 when
 * --help/--version already did the job, or -EINVAL after logging. *given
 * collects the VERB_OPT_* that appeared. */
static int parse_argv(int argc, char *argv[], struct ctl_options *o, unsigned *given) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_SPEC,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "spec", required_argument, NULL, ARG_SPEC },
                {}
        };
        int c;

        opterr = 0; /* our own sentences, below; ':' reports a missing argument apart */
        while ((c = getopt_long(argc, argv, ":hq", options, NULL)) >= 0)
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
                case ARG_SPEC:
                        if (o->spec)
                                return log_error_errno(-ERRNO_USAGE, "--spec given twice; a group has one spec");
                        o->spec = optarg;
                        *given |= VERB_OPT_SPEC;
                        break;
                case ':':
                        return log_error_errno(-ERRNO_USAGE, "option %s needs an argument; see 'vmgrctl --help'",
                                               argv[optind - 1]);
                case '?':
                        if (optopt == 0)
                                return log_error_errno(-ERRNO_USAGE, "unknown option %s; see 'vmgrctl --help'",
                                                       argv[optind - 1]);
                        if (optopt >= 0x100 || optopt == 'h' || optopt == 'q')
                                /* A known long option given "=value" it does not take. */
                                return log_error_errno(-ERRNO_USAGE, "option %s takes no argument", argv[optind - 1]);
                        return log_error_errno(-ERRNO_USAGE, "unknown option -%c; see 'vmgrctl --help'", optopt);
                default:
                        return log_error_errno(-ERRNO_USAGE, "cannot parse the options");
                }
        return 1;
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
        if (n_words < 2)
                return log_error_errno(-ERRNO_USAGE, "missing %s command (create, list, show or delete); see 'vmgrctl --help'",
                                       words[0]);
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
        struct ctl_options o = {};
        const struct verb *v = NULL;
        unsigned given = 0;
        size_t n_words, used = 0;
        int r;

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
        if (r >= 0)
                r = output_flush();
        return exit_status(r);
}
