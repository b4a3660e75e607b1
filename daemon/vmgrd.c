/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgrd: the per-user daemon that owns vmgr's groups and exposes them on
 * the session bus as org.vmgr1.
 */

#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "adopt.h"
#include "fs-util.h"
#include "install-path.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "vmgr-error.h"
#include "vmgr-config.h"

static void help(void) {
        printf("Usage: vmgrd [OPTIONS]\n"
               "\n"
               "Run vmgr's daemon on the session bus (DBUS_SESSION_BUS_ADDRESS) as org.vmgr1.\n"
               "\n"
               "  --state-dir DIR     persistent state (default $XDG_STATE_HOME/vmgr)\n"
               "  --runtime-dir DIR   runtime files (default $XDG_RUNTIME_DIR/vmgr)\n"
               "  --cache-dir DIR     guest images and base disks, shared by the user's vmgrds\n"
               "                      (default $XDG_CACHE_HOME/vmgr)\n"
               "  --netadm PATH       privileged helper (default: %s, or the one\n"
               "                      installed beside vmgrd when it runs from elsewhere)\n"
               "  --config FILE       configuration file (key = value; default\n"
               "                      ~/.config/vmgr/vmgrd.conf, as root /etc/vmgr/vmgrd.conf,\n"
               "                      if it exists)\n"
               "  --user NAME         when started as root, the user to run as (default vmgr)\n"
               "  --network-mode MODE where groups' networks live: host (through the helper),\n"
               "                      namespace (namespaces of vmgrd's own, no privilege) or\n"
               "                      auto (default: host if the helper admits us, else namespace)\n"
               "  -h --help           show this help\n"
               "     --version        show the version\n",
               VMGR_NETADM_PATH);
}

/* Default directory: $ENV/vmgr, or $HOME/FALLBACK/vmgr when fallback is given. */
static int default_dir(const char *env, const char *fallback, char **ret) {
        const char *base = getenv(env), *home = getenv("HOME");

        if (base && base[0] == '/')
                return asprintf(ret, "%s/vmgr", base) < 0 ? -ENOMEM : 0;
        if (fallback && home && home[0] == '/')
                return asprintf(ret, "%s/%s/vmgr", home, fallback) < 0 ? -ENOMEM : 0;
        return -ENXIO;
}

/* An installed piece (lib/install-path.h) for the running vmgrd: the one
 * its own install has, the build tree's, else the configured path (which
 * a later exec then fails on, naming it). Returns 0, or -ENOMEM or
 * -ENAMETOOLONG (the configured path is too long). */
static int find_piece(VmgrInstallDir dir, const char *name, const char *build_subdir, char **ret) {
        const VmgrInstallPiece piece = { dir, name, build_subdir };
        char path[PATH_MAX], cand[VMGR_INSTALL_CANDIDATES_MAX][PATH_MAX];

        if (vmgr_install_find(&piece, X_OK, path, NULL, 0) < 0) {
                int n = vmgr_install_candidates(&vmgr_install_layout, NULL, &piece, cand);
                if (n < 1)
                        return n < 0 ? n : -ENOENT;
                memcpy(path, cand[0], sizeof(path));
        }
        *ret = strdup(path);
        return *ret ? 0 : -ENOMEM;
}

static const char *user_override;
static int network_mode_override = -1;

/* Started as root: hand everything (the directories, then ourselves, and so
 * every process we start: libvirtd, QEMU, dnsmasq, the helper) to the
 * unprivileged service user. Nothing of vmgr's runs as root after this,
 * and nothing runs as root before it but the directories' hand-over:
 * vmgrd connects to the bus later, as the user (see main()).
 * Returns 0 or -errno (logged). */
static int drop_privileges(Manager *m) {
        const char *dirs[] = { m->state_dir, m->runtime_dir, m->cache_dir };
        struct passwd *pw;
        int r;

        errno = 0;
        pw = getpwnam(m->config.user);
        if (!pw)
                return log_error_errno(errno ?: ENOENT,
                                       "vmgrd runs as root and so needs its service user '%s', which does not "
                                       "exist: create it (useradd --system --no-create-home -G vmgr %s) or name "
                                       "another with --user or 'user =' in the config file",
                                       m->config.user, m->config.user);
        if (pw->pw_uid == 0)
                return log_error_errno(EINVAL, "The service user '%s' must not be root", m->config.user);

        /* The user owns these trees and may change them while we look: as
         * root we act only on what root alone controls (dir_hand_over()). */
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                r = dir_hand_over(dirs[i], pw->pw_uid, pw->pw_gid);
                if (r == 0)
                        log_info("%s lies below a directory that a user other than root controls; user '%s' "
                                 "creates it itself",
                                 dirs[i], m->config.user);
                else if (r == -EPERM)
                        return log_error_errno(r,
                                               "%s belongs to a user other than '%s': give it to '%s' "
                                               "(chown -R while vmgrd is stopped) or choose another directory",
                                               dirs[i], m->config.user, m->config.user);
                else if (r < 0)
                        return log_error_errno(r, "Cannot hand %s to user '%s': %m", dirs[i], m->config.user);
        }

        if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                return log_error_errno(errno, "Cannot become user '%s': %m", m->config.user);
        /* Our children get the service user's environment, not root's. */
        (void) setenv("HOME", pw->pw_dir, 1);
        (void) setenv("USER", pw->pw_name, 1);
        (void) setenv("LOGNAME", pw->pw_name, 1);
        log_info("Started as root; running as user '%s' (uid %u)", pw->pw_name, (unsigned) pw->pw_uid);
        return 0;
}

static int parse_argv(int argc, char *argv[], Manager *m, char **config) {
        enum { ARG_STATE_DIR = 0x100, ARG_RUNTIME_DIR, ARG_CACHE_DIR, ARG_NETADM, ARG_CONFIG, ARG_USER, ARG_NETWORK_MODE,
               ARG_VERSION };
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "cache-dir", required_argument, NULL, ARG_CACHE_DIR },
                { "netadm", required_argument, NULL, ARG_NETADM },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "user", required_argument, NULL, ARG_USER },
                { "network-mode", required_argument, NULL, ARG_NETWORK_MODE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        char **target;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vmgrd %s\n", VMGR_VERSION);
                        return 0;
                case ARG_STATE_DIR:
                        target = &m->state_dir;
                        break;
                case ARG_RUNTIME_DIR:
                        target = &m->runtime_dir;
                        break;
                case ARG_CACHE_DIR:
                        target = &m->cache_dir;
                        break;
                case ARG_NETADM:
                        target = &m->netadm_path;
                        break;
                case ARG_CONFIG:
                        target = config;
                        break;
                case ARG_USER:
                        user_override = optarg;
                        continue;
                case ARG_NETWORK_MODE:
                        network_mode_override = network_mode_from_string(optarg);
                        if (network_mode_override < 0) {
                                fprintf(stderr, "vmgrd: --network-mode must be auto, host or namespace, got \"%s\"\n",
                                        optarg);
                                return -EINVAL;
                        }
                        continue;
                default:
                        return -EINVAL;
                }
                if (optarg[0] != '/') {
                        fprintf(stderr, "vmgrd: %s needs an absolute path, got \"%s\"\n", argv[optind - 2], optarg);
                        return -EINVAL;
                }
                free(*target);
                *target = strdup(optarg);
                if (!*target)
                        return -ENOMEM;
        }
        if (optind < argc) {
                fprintf(stderr, "vmgrd: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }

        if (!m->state_dir && default_dir("XDG_STATE_HOME", ".local/state", &m->state_dir) < 0) {
                fprintf(stderr, "vmgrd: set XDG_STATE_HOME or HOME, or pass --state-dir\n");
                return -EINVAL;
        }
        if (!m->runtime_dir && default_dir("XDG_RUNTIME_DIR", NULL, &m->runtime_dir) < 0) {
                fprintf(stderr, "vmgrd: set XDG_RUNTIME_DIR or pass --runtime-dir\n");
                return -EINVAL;
        }
        if (!m->cache_dir && default_dir("XDG_CACHE_HOME", ".cache", &m->cache_dir) < 0) {
                fprintf(stderr, "vmgrd: set XDG_CACHE_HOME or HOME, or pass --cache-dir\n");
                return -EINVAL;
        }
        if (!m->netadm_path) {
                r = find_piece(VMGR_INSTALL_LIBEXECDIR, "vmgr-netadm", "netadm", &m->netadm_path);
                if (r < 0)
                        return r;
        }
        r = find_piece(VMGR_INSTALL_BINDIR, "vmgr-mkguest", "guest", &m->mkguest_path);
        if (r < 0)
                return r;
        r = 1;
        return r;
}

/* The path of our own executable, without the " (deleted)" the kernel
 * adds once it was replaced. Returns 0 or -errno. */
static int exe_path(char **ret) {
        char buf[PATH_MAX];
        ssize_t n;
        size_t len;

        n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        len = (size_t) n;
        if (len > 10 && streq(buf + len - 10, " (deleted)"))
                buf[len - 10] = 0;
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* Without --config: the user's $XDG_CONFIG_HOME/vmgr/vmgrd.conf (else
 * ~/.config/vmgr/vmgrd.conf), or /etc/vmgr/vmgrd.conf for a vmgrd started
 * as root, if it exists; *ret stays NULL (the defaults) if it does not.
 * Returns 0 or -errno. */
static int default_config(char **ret) {
        _cleanup_free_ char *dir = NULL, *path = NULL;
        int r;

        if (geteuid() == 0)
                path = strdup("/etc/vmgr/vmgrd.conf");
        else {
                r = default_dir("XDG_CONFIG_HOME", ".config", &dir);
                if (r == -ENXIO)
                        return 0; /* no home: no file of the user's */
                if (r < 0)
                        return r;
                if (asprintf(&path, "%s/vmgrd.conf", dir) < 0)
                        path = NULL;
        }
        if (!path)
                return -ENOMEM;
        if (access(path, F_OK) < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Cannot use config file %s: %m", path);
        log_info("Using the config file %s", path);
        *ret = TAKE_PTR(path);
        return 0;
}

int main(int argc, char *argv[]) {
        Manager *m = NULL;
        _cleanup_free_ char *config = NULL;
        int r;

        log_setup();
        umask(0022);
        /* A reader that goes away (an Exec caller's pipe, a FollowLogs
         * follower) is an EPIPE to handle, not a reason to die. Children
         * get every signal back to its default before exec
         * (child_prepare_exec(), spawn.c). */
        (void) signal(SIGPIPE, SIG_IGN);

        r = manager_new(&m);
        if (r < 0) {
                log_oom();
                return EXIT_FAILURE;
        }
        r = parse_argv(argc, argv, m, &config);
        if (r <= 0) {
                manager_free(m);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        /* Manager.Reexec runs the file at this path again: after a package
         * upgrade that is the new binary (/proc/self/exe would be the old). */
        m->argv = argv;
        (void) exe_path(&m->exe_path);

        /* Every process we start, and all their descendants, end up ours to reap and to kill. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
                log_error_errno(errno, "Failed to become a child subreaper: %m");
                goto fail;
        }

        if (!config && default_config(&config) < 0)
                goto fail;
        if (manager_config_load(&m->config, config) < 0)
                goto fail;
        if (user_override)
                snprintf(m->config.user, sizeof(m->config.user), "%s", user_override);
        if (network_mode_override >= 0)
                m->config.network_mode = network_mode_override;
        /* As root, only the directories need root. The bus connection is made
         * afterwards, as the service user: a connection keeps the identity it
         * was made with, and one authenticated as root would give whoever
         * runs as that user root's authority over everything else on the bus
         * (root's own services, systemd's user manager). So the bus must let
         * the service user connect (docs/design.md). */
        if (geteuid() == 0 && drop_privileges(m) < 0)
                goto fail;
        if (manager_startup(m) < 0)
                goto fail;
        /* The bus name is claimed once every adopted group is whole again. */
        if (manager_wait_recovered(m) < 0)
                goto fail;
        if (manager_connect_bus(m) < 0)
                goto fail;

        log_info("vmgrd %s ready on the session bus as %s (state %s, runtime %s)", VMGR_VERSION, VMGR_BUS_NAME,
                 m->state_dir, m->runtime_dir);
        (void) sd_notify(false, "READY=1\nSTATUS=Running");

        r = sd_event_loop(m->event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                goto fail;
        }
        r = r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        manager_free(m);
        return r;

fail:
        manager_free(m);
        return EXIT_FAILURE;
}
