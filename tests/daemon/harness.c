/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define CALL_TIMEOUT_USEC (30ULL * 1000000ULL)
#define START_TIMEOUT_MS 20000ULL       /* vmgrd under ASan on a busy 2-core machine */
#define STOP_TIMEOUT_MS 15000ULL

/* The harness running now, for the clean-up when a check fails. */
static Harness *current;

unsigned long long harness_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (unsigned long long) ts.tv_sec * 1000ULL + (unsigned long long) ts.tv_nsec / 1000000ULL;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Print the last lines of vmgrd's log to stderr, to see why a check failed. */
static void log_tail(Harness *h, unsigned lines) {
        char buf[1024], **ring;
        unsigned n = 0;
        FILE *f;

        if (!h->log_path || !(f = fopen(h->log_path, "re")))
                return;
        ring = calloc(lines, sizeof(*ring));
        if (!ring) {
                fclose(f);
                return;
        }
        while (fgets(buf, sizeof(buf), f)) {
                free(ring[n % lines]);
                ring[n % lines] = strdup(buf);
                n++;
        }
        fclose(f);
        fprintf(stderr, "--- vmgrd's log (last %u lines) ---\n", MIN(n, lines));
        for (unsigned i = n > lines ? n - lines : 0; i < n; i++)
                fputs(ring[i % lines] ?: "", stderr);
        fprintf(stderr, "--- end of vmgrd's log ---\n");
        for (unsigned i = 0; i < lines; i++)
                free(ring[i]);
        free(ring);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (type == FTW_DP)
                (void) rmdir(path);
        else
                (void) unlink(path);
        return 0;
}

/* Kill what is still running and remove the temp directory. */
static void harness_teardown(Harness *h) {
        h->bus = sd_bus_flush_close_unref(h->bus);
        if (h->vmgrd_pid > 0) {
                (void) kill(h->vmgrd_pid, SIGKILL);
                (void) waitpid(h->vmgrd_pid, NULL, 0);
                h->vmgrd_pid = 0;
        }
        if (h->bus_pid > 0) {
                (void) kill(h->bus_pid, SIGTERM);
                (void) waitpid(h->bus_pid, NULL, 0);
                h->bus_pid = 0;
        }
        if (h->dir)
                (void) nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        for (size_t i = 0; i < h->n_events; i++)
                free(h->events[i]);
        free(h->events);
        h->events = NULL;
        h->n_events = 0;
        free(h->dir);
        free(h->fake_dir);
        free(h->log_path);
        h->dir = h->fake_dir = h->log_path = NULL;
        if (current == h)
                current = NULL;
}

void harness_fail(const char *file, int line, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "%s:%d: ", file, line);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        if (current) {
                log_tail(current, 60);
                harness_teardown(current);
        }
        exit(1);
}

/* Write text into dir/name. */
static void file_write(const char *dir, const char *name, const char *text, mode_t mode) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        if (!f)
                harness_fail(__FILE__, __LINE__, "cannot create %s: %m", path);
        fputs(text, f);
        if (fclose(f) < 0 || chmod(path, mode) < 0)
                harness_fail(__FILE__, __LINE__, "cannot write %s: %m", path);
}

/* A private temp directory whose path the helper protocol accepts
 * (vmgr_netadm_dir_check()'s character set, short enough for sockets). */
static char *temp_dir_make(void) {
        const char *base = getenv("TMPDIR");
        char *dir;

        if (!base || base[0] != '/' || strlen(base) > 40 || strspn(base, "abcdefghijklmnopqrstuvwxyz"
                                                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+-") !=
                                                                   strlen(base))
                base = "/tmp";
        if (asprintf(&dir, "%s/vmgr-dtest.XXXXXX", base) < 0 || !mkdtemp(dir))
                harness_fail(__FILE__, __LINE__, "cannot make a temp directory in %s: %m", base);
        return dir;
}

/* Start dbus-daemon on a socket in h->dir; return its address (malloc'd). */
static char *bus_start(Harness *h, bool any_user) {
        char conf[2048], line[1024] = "";
        int pipefd[2];
        FILE *f;

        /* As root, vmgrd connects as the user it drops to: the bus must admit
         * it (and the temp directory is readable then, see harness_start()). */
        snprintf(conf, sizeof(conf),
                 "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                 " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                 "<busconfig>\n"
                 "  <listen>unix:dir=%s</listen>\n"
                 "  <auth>EXTERNAL</auth>\n"
                 "  <policy context=\"default\">\n"
                 "    %s\n"
                 "    <allow own=\"*\"/>\n"
                 "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                 "    <allow eavesdrop=\"true\"/>\n"
                 "  </policy>\n"
                 "</busconfig>\n",
                 h->dir, any_user ? "<allow user=\"*\"/>" : "");
        file_write(h->dir, "bus.conf", conf, 0644);

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                harness_fail(__FILE__, __LINE__, "pipe: %m");
        h->bus_pid = fork();
        if (h->bus_pid < 0)
                harness_fail(__FILE__, __LINE__, "fork: %m");
        if (h->bus_pid == 0) {
                char conf_arg[4200];

                snprintf(conf_arg, sizeof(conf_arg), "--config-file=%s/bus.conf", h->dir);
                char log[4200];
                int fd;

                /* Its complaints (an fd limit it may not raise) are not the test's output. */
                snprintf(log, sizeof(log), "%s/bus.log", h->dir);
                fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (fd >= 0)
                        (void) dup2(fd, STDERR_FILENO);
                if (dup2(pipefd[1], 3) < 0)
                        _exit(127);
                execlp("dbus-daemon", "dbus-daemon", conf_arg, "--nofork", "--nopidfile", "--print-address=3",
                       (char *) NULL);
                fprintf(stderr, "cannot execute dbus-daemon: %m\n");
                _exit(127);
        }
        close(pipefd[1]);
        f = fdopen(pipefd[0], "r");
        if (!f || !fgets(line, sizeof(line), f))
                harness_fail(__FILE__, __LINE__, "dbus-daemon did not print its address");
        fclose(f);
        line[strcspn(line, "\n")] = 0;
        return strdup(line);
}

/* Start vmgrd with the fake helper, its output into h->log_path. */
static void vmgrd_start(Harness *h, const char *address, bool have_config, const char *user) {
        const char *vmgrd = getenv("VMGRD"), *fake = getenv("VMGR_FAKE_NETADM");
        char state[4200], runtime[4200], cache[4200], config[4200];

        if (!vmgrd || !fake)
                harness_fail(__FILE__, __LINE__, "set VMGRD and VMGR_FAKE_NETADM (meson test does)");
        snprintf(state, sizeof(state), "%s/state", h->dir);
        snprintf(runtime, sizeof(runtime), "%s/run", h->dir);
        snprintf(cache, sizeof(cache), "%s/cache", h->dir);
        snprintf(config, sizeof(config), "%s/vmgrd.conf", h->dir);

        h->vmgrd_pid = fork();
        if (h->vmgrd_pid < 0)
                harness_fail(__FILE__, __LINE__, "fork: %m");
        if (h->vmgrd_pid == 0) {
                const char *argv[16];
                size_t n = 0;
                int fd;

                fd = open(h->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(127);
                if (setenv("DBUS_SESSION_BUS_ADDRESS", address, 1) < 0 ||
                    setenv("VMGR_FAKE_NETADM_DIR", h->fake_dir, 1) < 0)
                        _exit(127);
                /* Not the session's: nothing of vmgrd's may land outside h->dir. */
                (void) setenv("XDG_RUNTIME_DIR", runtime, 1);
                (void) setenv("XDG_STATE_HOME", state, 1);
                (void) setenv("XDG_CACHE_HOME", cache, 1);
                (void) setenv("HOME", h->dir, 1);
                argv[n++] = vmgrd;
                argv[n++] = "--netadm";
                argv[n++] = fake;
                argv[n++] = "--network-mode";
                argv[n++] = "host";
                argv[n++] = "--state-dir";
                argv[n++] = state;
                argv[n++] = "--runtime-dir";
                argv[n++] = runtime;
                argv[n++] = "--cache-dir";
                argv[n++] = cache;
                if (have_config) {
                        argv[n++] = "--config";
                        argv[n++] = config;
                }
                if (user) {
                        argv[n++] = "--user";
                        argv[n++] = user;
                }
                argv[n] = NULL;
                execv(vmgrd, (char **) argv);
                fprintf(stderr, "cannot execute %s: %m\n", vmgrd);
                _exit(127);
        }
}

/* Wait until vmgrd owns org.vmgr1 on the bus, or fail with its log. */
static void vmgrd_wait_ready(Harness *h) {
        unsigned long long deadline = harness_now_ms() + START_TIMEOUT_MS;

        for (;;) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                int r, status, has_owner = 0;

                r = sd_bus_call_method(h->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "NameHasOwner", &error, &reply, "s", VMGR_BUS_NAME);
                if (r >= 0)
                        (void) sd_bus_message_read(reply, "b", &has_owner);
                sd_bus_message_unref(reply);
                sd_bus_error_free(&error);
                if (has_owner)
                        return;
                if (waitpid(h->vmgrd_pid, &status, WNOHANG) == h->vmgrd_pid) {
                        h->vmgrd_pid = 0;
                        harness_fail(__FILE__, __LINE__, "vmgrd exited (status 0x%x) before it claimed %s", status,
                                     VMGR_BUS_NAME);
                }
                if (harness_now_ms() > deadline)
                        harness_fail(__FILE__, __LINE__, "vmgrd did not claim %s within %llu ms", VMGR_BUS_NAME,
                                     START_TIMEOUT_MS);
                sleep_ms(20);
        }
}

void harness_start(Harness *h, const char *config) {
        const char *user = NULL;
        _cleanup_free_ char *address = NULL;
        struct passwd *pw = NULL;
        int r;

        *h = (Harness) {};
        current = h;
        h->dir = temp_dir_make();
        if (asprintf(&h->fake_dir, "%s/fake", h->dir) < 0 || asprintf(&h->log_path, "%s/vmgrd.log", h->dir) < 0)
                harness_fail(__FILE__, __LINE__, "out of memory");
        if (mkdir(h->fake_dir, 0755) < 0)
                harness_fail(__FILE__, __LINE__, "mkdir %s: %m", h->fake_dir);

        if (geteuid() == 0) {
                /* vmgrd started as root runs as its service user: the tests
                 * take that path too, with a user every system has. */
                user = getenv("VMGR_TEST_USER") ?: "nobody";
                pw = getpwnam(user);
                if (!pw)
                        harness_fail(__FILE__, __LINE__, "user '%s' does not exist; set VMGR_TEST_USER", user);
                if (chmod(h->dir, 0755) < 0 || chown(h->fake_dir, pw->pw_uid, pw->pw_gid) < 0)
                        harness_fail(__FILE__, __LINE__, "cannot prepare %s for user %s: %m", h->dir, user);
        }
        if (config)
                file_write(h->dir, "vmgrd.conf", config, 0644);

        address = bus_start(h, pw != NULL);
        r = sd_bus_new(&h->bus);
        if (r >= 0)
                r = sd_bus_set_address(h->bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(h->bus, 1);
        if (r >= 0)
                r = sd_bus_start(h->bus);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot connect to the test bus %s: %s", address, strerror(-r));

        vmgrd_start(h, address, config != NULL, user);
        vmgrd_wait_ready(h);
}

void harness_stop(Harness *h) {
        unsigned long long deadline = harness_now_ms() + STOP_TIMEOUT_MS;
        int status = 0;
        pid_t pid;

        CHECK(h->vmgrd_pid > 0);
        CHECK(kill(h->vmgrd_pid, SIGTERM) == 0);
        while ((pid = waitpid(h->vmgrd_pid, &status, WNOHANG)) == 0 && harness_now_ms() < deadline)
                sleep_ms(10);
        if (pid != h->vmgrd_pid)
                harness_fail(__FILE__, __LINE__, "vmgrd did not exit within %llu ms of SIGTERM", STOP_TIMEOUT_MS);
        h->vmgrd_pid = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                harness_fail(__FILE__, __LINE__, "vmgrd did not exit 0 on SIGTERM (status 0x%x)", status);
        harness_teardown(h);
}

int harness_call(Harness *h, const char *path, const char *interface, const char *member, sd_bus_error *error,
                 sd_bus_message **reply, const char *types, ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(h->bus, &m, VMGR_BUS_NAME, path, interface, member);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot build a %s call: %s", member, strerror(-r));
        if (types && *types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        harness_fail(__FILE__, __LINE__, "cannot build a %s call: %s", member, strerror(-r));
        }
        r = sd_bus_call(h->bus, m, CALL_TIMEOUT_USEC, error, reply);
        sd_bus_message_unref(m);
        return r;
}

char *harness_get_string(Harness *h, const char *path, const char *interface, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *value = NULL;
        int r;

        r = sd_bus_get_property_string(h->bus, VMGR_BUS_NAME, path, interface, property, &error, &value);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot read %s of %s: %s: %s", property, path,
                             error.name ?: strerror(-r), error.message ?: "");
        return value;
}

bool harness_object_exists(Harness *h, const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        bool found = false;
        const char *object;
        int r;

        r = harness_call(h, VMGR_MANAGER_PATH, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", &error,
                         &reply, NULL);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "GetManagedObjects failed: %s", error.message ?: strerror(-r));
        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r > 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                r = sd_bus_message_read(reply, "o", &object);
                if (r >= 0 && streq(object, path))
                        found = true;
                if (r >= 0)
                        r = sd_bus_message_skip(reply, "a{sa{sv}}");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot parse GetManagedObjects: %s", strerror(-r));
        sd_bus_message_unref(reply);
        return found;
}

void harness_fake_set(Harness *h, const char *op, unsigned delay_ms, int error) {
        char text[64];

        snprintf(text, sizeof(text), "%u %d\n", delay_ms, error);
        file_write(h->fake_dir, op, text, 0644);
}

void harness_fake_die(Harness *h, const char *op, unsigned delay_ms, bool once) {
        char text[64];

        snprintf(text, sizeof(text), "%u %s\n", delay_ms, once ? "die-once" : "die");
        file_write(h->fake_dir, op, text, 0644);
}

void harness_fake_reset(Harness *h, const char *op) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/%s", h->fake_dir, op);
        if (unlink(path) < 0 && errno != ENOENT)
                harness_fail(__FILE__, __LINE__, "cannot remove %s: %m", path);
}

char *harness_fake_requests(Harness *h) {
        char path[4096], *text = NULL;
        size_t size = 0;
        FILE *f, *out;
        int c;

        snprintf(path, sizeof(path), "%s/requests.log", h->fake_dir);
        out = open_memstream(&text, &size);
        if (!out)
                harness_fail(__FILE__, __LINE__, "out of memory");
        f = fopen(path, "re");
        if (f) {
                while ((c = fgetc(f)) != EOF)
                        fputc(c, out);
                fclose(f);
        }
        fclose(out);
        return text;
}

_printf_(2, 3) static void event_add(Harness *h, const char *format, ...) {
        char **events, *line;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&line, format, ap);
        va_end(ap);
        events = r < 0 ? NULL : reallocarray(h->events, h->n_events + 1, sizeof(char *));
        if (!events)
                harness_fail(__FILE__, __LINE__, "out of memory");
        h->events = events;
        h->events[h->n_events++] = line;
}

/* Append the org.vmgr1 interfaces of an a{sa{sv}} or as to out. */
static int interfaces_describe(sd_bus_message *m, bool with_properties, FILE *out) {
        const char *interface;
        int r;

        r = sd_bus_message_enter_container(m, 'a', with_properties ? "{sa{sv}}" : "s");
        if (r < 0)
                return r;
        for (;;) {
                if (with_properties) {
                        r = sd_bus_message_enter_container(m, 'e', "sa{sv}");
                        if (r <= 0)
                                break;
                }
                r = sd_bus_message_read(m, "s", &interface);
                if (r <= 0)
                        break;
                if (!strncmp(interface, "org.vmgr1.", 10))
                        fprintf(out, " %s", interface);
                if (with_properties) {
                        r = sd_bus_message_skip(m, "a{sv}");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                }
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

/* Append the keys of a variant holding an a{st}, comma-separated. */
static int timings_describe(sd_bus_message *m, FILE *out) {
        const char *key;
        uint64_t value;
        bool first = true;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "a{st}");
        if (r >= 0)
                r = sd_bus_message_enter_container(m, 'a', "{st}");
        while (r >= 0 && (r = sd_bus_message_read(m, "{st}", &key, &value)) > 0) {
                fprintf(out, "%s%s", first ? "" : ",", key);
                first = false;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

/* Append "Name=value" (strings and numbers), "Name[keys]" (Timings) or "Name" per changed property, then
 * "Name(invalidated)" per invalidated one. */
static int properties_describe(sd_bus_message *m, FILE *out) {
        const char *name, *contents, *value;
        char type;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_peek_type(m, &type, &contents);
                if (r >= 0 && streq(contents, "s")) {
                        r = sd_bus_message_read(m, "v", "s", &value);
                        if (r >= 0)
                                fprintf(out, " %s=%s", name, value);
                } else if (r >= 0 && streq(contents, "u")) {
                        uint32_t u;
                        r = sd_bus_message_read(m, "v", "u", &u);
                        if (r >= 0)
                                fprintf(out, " %s=%u", name, (unsigned) u);
                } else if (r >= 0 && streq(contents, "a{st}")) {
                        /* Timings: which stages are there (their times vary). */
                        fprintf(out, " %s[", name);
                        r = timings_describe(m, out);
                        fputc(']', out);
                } else if (r >= 0) {
                        fprintf(out, " %s", name);
                        r = sd_bus_message_skip(m, "v");
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0)
                r = sd_bus_message_enter_container(m, 'a', "s");
        while (r >= 0 && (r = sd_bus_message_read(m, "s", &name)) > 0)
                fprintf(out, " %s(invalidated)", name);
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Harness *h = userdata;
        const char *member = sd_bus_message_get_member(m), *path = sd_bus_message_get_path(m), *s;
        char *text = NULL;
        size_t size = 0;
        FILE *out;
        int r = 0;

        out = open_memstream(&text, &size);
        if (!out)
                harness_fail(__FILE__, __LINE__, "out of memory");
        fprintf(out, "%s", member);
        if (streq(member, "PropertiesChanged")) {
                r = sd_bus_message_read(m, "s", &s);
                if (r >= 0) {
                        fprintf(out, " %s %s", path, s);
                        r = properties_describe(m, out);
                }
        } else if (streq(member, "InterfacesAdded") || streq(member, "InterfacesRemoved")) {
                r = sd_bus_message_read(m, "o", &s);
                if (r >= 0) {
                        fprintf(out, " %s", s);
                        r = interfaces_describe(m, streq(member, "InterfacesAdded"), out);
                }
        } else if (streq(member, "GroupNew") || streq(member, "GroupRemoved")) {
                const char *object;
                r = sd_bus_message_read(m, "so", &s, &object);
                if (r >= 0)
                        fprintf(out, " %s %s", s, object);
        } else
                fprintf(out, " %s", path);
        fclose(out);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot parse signal %s: %s", member, strerror(-r));
        event_add(h, "%s", text);
        free(text);
        return 0;
}

void harness_record_signals(Harness *h) {
        int r;

        /* By path, not by sender: sd-bus cannot match a well-known sender
         * name locally, and only vmgrd sends from below /org/vmgr1. */
        r = sd_bus_add_match(h->bus, NULL, "type='signal',path_namespace='" VMGR_MANAGER_PATH "'", on_signal, h);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot subscribe to vmgrd's signals: %s", strerror(-r));
}

/* What an async call's answer records; freed with its slot. */
typedef struct AsyncCall {
        Harness *h;
        char *member;
        int result;             /* 1: not answered yet, 0: returned, -1: error */
} AsyncCall;

static void async_call_free(void *userdata) {
        AsyncCall *c = userdata;

        free(c->member);
        free(c);
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        AsyncCall *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e) {
                event_add(c->h, "error %s %s", c->member, e->name);
                c->result = -1;
        } else {
                event_add(c->h, "reply %s", c->member);
                c->result = 0;
        }
        return 0;
}

sd_bus_slot *harness_call_async(Harness *h, const char *path, const char *interface, const char *member,
                                const char *types, ...) {
        sd_bus_message *m = NULL;
        sd_bus_slot *slot = NULL;
        AsyncCall *c;
        va_list ap;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c || !(c->member = strdup(member)))
                harness_fail(__FILE__, __LINE__, "out of memory");
        c->h = h;
        c->result = 1;
        r = sd_bus_message_new_method_call(h->bus, &m, VMGR_BUS_NAME, path, interface, member);
        if (r >= 0 && types && *types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_call_async(h->bus, &slot, m, on_reply, c, CALL_TIMEOUT_USEC);
        sd_bus_message_unref(m);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot call %s: %s", member, strerror(-r));
        (void) sd_bus_slot_set_destroy_callback(slot, async_call_free);
        return slot;
}

int harness_wait_call(Harness *h, sd_bus_slot *slot) {
        AsyncCall *c = sd_bus_slot_get_userdata(slot);
        int r;

        r = harness_wait_call_for(h, slot, CALL_TIMEOUT_USEC / 1000 + 1000);
        if (r > 0)
                harness_fail(__FILE__, __LINE__, "no answer to %s", c->member);
        return r;
}

int harness_wait_call_for(Harness *h, sd_bus_slot *slot, unsigned timeout_ms) {
        AsyncCall *c = sd_bus_slot_get_userdata(slot);
        unsigned long long deadline = harness_now_ms() + timeout_ms;
        int r, result;

        while (c->result > 0) {
                r = sd_bus_process(h->bus, NULL);
                if (r < 0)
                        harness_fail(__FILE__, __LINE__, "processing the bus: %s", strerror(-r));
                if (r > 0)
                        continue;
                if (harness_now_ms() > deadline)
                        return 1;
                r = sd_bus_wait(h->bus, 100 * 1000);
                if (r < 0)
                        harness_fail(__FILE__, __LINE__, "waiting on the bus: %s", strerror(-r));
        }
        result = c->result;
        sd_bus_slot_unref(slot);
        return result;
}

void harness_settle(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = harness_call(h, VMGR_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", &error, NULL, NULL);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "vmgrd does not answer Ping: %s", error.message ?: strerror(-r));
        while ((r = sd_bus_process(h->bus, NULL)) > 0)
                ;
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "processing the bus: %s", strerror(-r));
}

char *harness_events_take(Harness *h) {
        char *text = NULL;
        size_t size = 0;
        FILE *out;

        out = open_memstream(&text, &size);
        if (!out)
                harness_fail(__FILE__, __LINE__, "out of memory");
        for (size_t i = 0; i < h->n_events; i++) {
                fprintf(out, "%s\n", h->events[i]);
                free(h->events[i]);
        }
        fclose(out);
        free(h->events);
        h->events = NULL;
        h->n_events = 0;
        return text;
}

int harness_create_group(Harness *h, const char *name, const char *spec, sd_bus_error *error) {
        return harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "CreateGroup", error, NULL, "ss", name,
                            spec);
}

void harness_delete_group(Harness *h, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "DeleteGroup", &error, NULL, "s", name);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "DeleteGroup %s failed: %s: %s", name, error.name ?: strerror(-r),
                             error.message ?: "");
}

unsigned harness_count_groups(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *name, *path;
        unsigned n = 0;
        int r;

        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "ListGroups", &error, &reply, NULL);
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "ListGroups failed: %s", error.message ?: strerror(-r));
        r = sd_bus_message_enter_container(reply, 'a', "(so)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(so)", &name, &path)) > 0)
                n++;
        if (r < 0)
                harness_fail(__FILE__, __LINE__, "cannot parse ListGroups: %s", strerror(-r));
        sd_bus_message_unref(reply);
        return n;
}

void harness_check_group_gone(Harness *h, const char *name, const char *file, int line) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char path[4096], *object = NULL;
        const char *left = NULL;
        struct stat st;
        int r;

        r = harness_call(h, VMGR_MANAGER_PATH, VMGR_MANAGER_INTERFACE, "GetGroup", &error, NULL, "s", name);
        if (r >= 0 || !sd_bus_error_has_name(&error, VMGR_ERROR_NO_SUCH_GROUP))
                harness_fail(file, line, "GetGroup(%s) after its removal: r=%d %s", name, r, error.name ?: "");
        sd_bus_error_free(&error);
        if (sd_bus_path_encode(VMGR_GROUP_PATH_PREFIX, name, &object) < 0)
                harness_fail(file, line, "out of memory");
        if (harness_object_exists(h, object))
                harness_fail(file, line, "GetManagedObjects still has %s", object);
        free(object);

        snprintf(path, sizeof(path), "%s/state/groups/%s.json", h->dir, name);
        if (lstat(path, &st) == 0)
                left = path;
        if (!left) {
                snprintf(path, sizeof(path), "%s/state/groups/%s", h->dir, name);
                if (lstat(path, &st) == 0)
                        left = path;
        }
        if (!left) {
                snprintf(path, sizeof(path), "%s/run/groups/%s", h->dir, name);
                if (lstat(path, &st) == 0)
                        left = path;
        }
        if (left)
                harness_fail(file, line, "group '%s' left %s behind", name, left);
}
