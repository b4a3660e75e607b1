/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* vmgrctl enter [--] [CMD...]: run CMD (default: the user's shell) where
 * vmgrd's guests are reachable. In namespace mode that is inside vmgrd's user
 * and network namespaces (Manager.OpenNamespaces); in host mode it is right
 * here, and CMD runs as is. vmgrctl execs CMD, so CMD's exit status is ours. */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-util.h"
#include "macro.h"
#include "output.h"
#include "verbs.h"
#include "vmgr-error.h"

/* The user's shell: $SHELL, else the passwd entry's, else /bin/sh. */
static const char *user_shell(void) {
        const char *shell = getenv("SHELL");
        struct passwd *pw;

        if (shell && shell[0] == '/')
                return shell;
        pw = getpwuid(getuid());
        if (pw && pw->pw_shell && pw->pw_shell[0] == '/')
                return pw->pw_shell;
        return "/bin/sh";
}

/* Asks vmgrd for its network mode and, in namespace mode, its namespaces.
 * Returns 1 with both fds (ours, close-on-exec), 0 in host mode, or a verbs.h
 * errno after logging. */
static int namespaces_fetch(int *ret_userns, int *ret_netns) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *mode = NULL;
        int userns, netns, r;

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = sd_bus_get_property_string(bus, VMGR_BUS_NAME, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "NetworkMode",
                                       &error, &mode);
        if (r < 0)
                return bus_log_error(bus, &error, r);
        if (!streq(mode, "namespace"))
                return 0;
        r = bus_call_method(bus, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "OpenNamespaces", 0, &error, &reply, "");
        if (r < 0)
                return bus_log_error(bus, &error, r);
        r = sd_bus_message_read(reply, "hh", &userns, &netns);
        if (r < 0)
                return bus_log_parse_error(r);
        /* The reply owns its fds. */
        *ret_userns = fcntl(userns, F_DUPFD_CLOEXEC, 3);
        *ret_netns = fcntl(netns, F_DUPFD_CLOEXEC, 3);
        if (*ret_userns < 0 || *ret_netns < 0) {
                r = -errno;
                safe_close(*ret_userns);
                safe_close(*ret_netns);
                return log_error_reason(errno_generic(r), r, "cannot keep vmgrd's namespaces: %m");
        }
        return 1;
}

int verb_enter(char **args, size_t n_args, const struct ctl_options *o) {
        _cleanup_close_ int userns = -EBADF, netns = -EBADF;
        char *shell_argv[2] = { NULL, NULL };
        char **argv = args;
        int r;

        (void) o;
        if (n_args == 0) {
                shell_argv[0] = (char *) user_shell();
                argv = shell_argv;
        }

        r = namespaces_fetch(&userns, &netns);
        if (r < 0)
                return r;
        if (r > 0) {
                /* The bus connection is closed by now and vmgrctl has no
                 * other thread: joining a user namespace needs a
                 * single-threaded process. Inside we hold every capability
                 * of the user namespace until exec, CMD none (it runs as
                 * our uid, which is not root there). */
                if (setns(userns, CLONE_NEWUSER) < 0)
                        return log_error_errno(errno_generic(-errno), "cannot enter vmgrd's user namespace: %m");
                if (setns(netns, CLONE_NEWNET) < 0)
                        return log_error_errno(errno_generic(-errno), "cannot enter vmgrd's network namespace: %m");
        }
        userns = safe_close(userns);
        netns = safe_close(netns);

        execvp(argv[0], argv);
        r = errno;
        (void) log_error_errno(-r, "cannot run %s: %m", argv[0]);
        /* As a shell says it: 127 not found, 126 found but not runnable. */
        return r == ENOENT ? 127 : 126;
}
