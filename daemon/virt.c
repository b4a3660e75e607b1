/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"
#include "child.h"
#include "fs-util.h"
#include "log.h"
#include "manager.h"
#include "virt.h"
#include "netns.h"
#include "vmgr-error.h"

#define LIBVIRTD_PATH "/usr/sbin/libvirtd"
#define LIBVIRTD_SOCKET_TIMEOUT_USEC (30ULL * 1000000ULL)
#define LIBVIRTD_RESTART_BURST 5
#define LIBVIRTD_RESTART_INTERVAL_USEC (60ULL * 1000000ULL)

typedef struct VirtCall VirtCall;
struct VirtCall {
        VirtCall *next;
        Virt *virt;
        virConnectPtr conn;
        virt_work_t work;
        worker_done_t done;
        void *userdata;
};

/* Deciding whether libvirtd's guests go without huge pages: thp_decide(). */
typedef struct AccelJob {
        Virt *virt;                     /* NULL once the Virt is gone */
        char *cache_dir;
        VmgrAccel requested, resolved;
} AccelJob;

struct Virt {
        Manager *manager;
        const VirtCallbacks *cb;

        char *base;             /* <runtime>/libvirt */
        char *run_dir;          /* its XDG_RUNTIME_DIR */
        char *config_dir;       /* its XDG_CONFIG_HOME */
        char *home_dir;         /* its HOME */
        char *cache_dir;        /* its XDG_CACHE_HOME, shared between vmgrds */
        char *socket_path;
        char *uri;

        pid_t pid;
        int pidfd;
        sd_event_source *exit_source, *timer_source, *retry_source;
        uint64_t spawned_usec;
        uint64_t restart_times[LIBVIRTD_RESTART_BURST];
        unsigned restarts;
        bool stopping;

        /* Its guests' RAM without transparent huge pages: see thp_decide(). */
        bool without_thp, thp_decided;
        AccelJob *accel_job;     /* deciding it */

        virConnectPtr conn;     /* owned by the loop; pool threads hold their own refs */
        bool connecting;
        int lifecycle_callback, reboot_callback;
        unsigned generation;    /* bumps with each connection, to drop stale events */

        VirtCall *waiting_head, *waiting_tail; /* calls waiting for a connection */
};

/* libvirt's event loop runs on its own thread for the whole process. */
static pthread_once_t event_loop_once = PTHREAD_ONCE_INIT;
static int event_loop_error;

static void *event_loop_thread(void *arg) {
        for (;;)
                if (virEventRunDefaultImpl() < 0)
                        usleep(10000);
        return NULL;
}

static void event_loop_start(void) {
        pthread_t t;
        sigset_t all, saved;

        if (virEventRegisterDefaultImpl() < 0) {
                event_loop_error = -EIO;
                return;
        }
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        event_loop_error = -pthread_create(&t, NULL, event_loop_thread, NULL);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (event_loop_error == 0)
                pthread_detach(t);
}

const char *virt_last_error(void) {
        virErrorPtr e = virGetLastError();

        return e && e->message ? e->message : "unknown libvirt error";
}

/* libvirt would print every error to stderr by default; ours are logged where they matter. */
static void quiet_error_handler(void *userdata, virErrorPtr error) {
}

int virt_new(Manager *m, const VirtCallbacks *cb, Virt **ret) {
        Virt *v;

        pthread_once(&event_loop_once, event_loop_start);
        if (event_loop_error < 0)
                return log_error_errno(event_loop_error, "Failed to start libvirt's event loop");
        virSetErrorFunc(NULL, quiet_error_handler);

        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->manager = m;
        v->cb = cb;
        v->pidfd = -EBADF;
        v->lifecycle_callback = v->reboot_callback = -1;
        /* Through the socket directory: QEMU's monitor sockets live below it. */
        if (asprintf(&v->base, "%s/libvirt", sockdir_path(m->sockdir)) < 0 ||
            asprintf(&v->run_dir, "%s/run", v->base) < 0 ||
            asprintf(&v->config_dir, "%s/config", v->base) < 0 ||
            asprintf(&v->home_dir, "%s/home", v->base) < 0 ||
            asprintf(&v->cache_dir, "%s/libvirt", m->cache_dir) < 0 ||
            asprintf(&v->socket_path, "%s/libvirt/libvirt-sock", v->run_dir) < 0 ||
            asprintf(&v->uri, "qemu:///session?socket=%s", v->socket_path) < 0) {
                virt_free(v);
                return -ENOMEM;
        }
        *ret = v;
        return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque);

static void fail_waiting(Virt *v, int error) {
        while (v->waiting_head) {
                VirtCall *c = v->waiting_head;
                v->waiting_head = c->next;
                if (!v->waiting_head)
                        v->waiting_tail = NULL;
                c->done(error, c->userdata);
                free(c);
        }
}

Virt *virt_free(Virt *v) {
        if (!v)
                return NULL;
        v->stopping = true;
        if (v->accel_job)
                v->accel_job->virt = NULL;
        fail_waiting(v, -ECANCELED);
        if (v->conn) {
                /* Nothing may call back into us once we are gone. */
                (void) virConnectUnregisterCloseCallback(v->conn, on_close);
                if (v->lifecycle_callback >= 0)
                        (void) virConnectDomainEventDeregisterAny(v->conn, v->lifecycle_callback);
                if (v->reboot_callback >= 0)
                        (void) virConnectDomainEventDeregisterAny(v->conn, v->reboot_callback);
                virConnectClose(v->conn);
        }
        if (v->pidfd >= 0)
                (void) pidfd_signal(v->pidfd, SIGTERM);
        sd_event_source_disable_unref(v->exit_source);
        sd_event_source_disable_unref(v->timer_source);
        sd_event_source_disable_unref(v->retry_source);
        safe_close(v->pidfd);
        free(v->base);
        free(v->run_dir);
        free(v->config_dir);
        free(v->home_dir);
        free(v->cache_dir);
        free(v->socket_path);
        free(v->uri);
        free(v);
        return NULL;
}

bool virt_is_connected(Virt *v) {
        return v->conn != NULL;
}

/* Does /proc/<pid>/exe name a program whose file name starts with prefix? */
static bool process_is(pid_t pid, const char *prefix) {
        char path[64], exe[4096];
        ssize_t n;
        const char *base;

        snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
        n = readlink(path, exe, sizeof(exe) - 1);
        if (n < 0)
                return false;
        exe[n] = 0;
        base = strrchr(exe, '/');
        base = base ? base + 1 : exe;
        return strncmp(base, prefix, strlen(prefix)) == 0;
}

/* Kill the process in a pid file if it is what we expect, and wait for it
 * to go. The pid is the one the program saw (in namespace mode, its
 * namespace's); the identity is checked on our view of it, after taking
 * the pidfd, so a recycled pid is never hit. */
static void kill_pidfile(Virt *v, const char *pidfile, const char *prefix, int sig) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        int pid;

        f = fopen(pidfile, "re");
        if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 1)
                return;
        pidfd = manager_pidfd_open(v->manager, pid);
        if (pidfd < 0)
                return;
        pid = pidfd_get_pid(pidfd);
        if (pid <= 0 || !process_is(pid, prefix))
                return;
        log_info("Killing %s (pid %d) left by a previous vmgrd", prefix, pid);
        if (pidfd_signal(pidfd, sig) < 0)
                return;
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        (void) poll(&p, 1, 5000);
}

void virt_cleanup_stale(Virt *v, bool (*keep)(const char *domain, void *userdata), void *userdata) {
        _cleanup_free_ char *qemu_run = NULL, *pidfile = NULL;
        bool kept = false;
        DIR *d;
        struct dirent *de;

        if (asprintf(&pidfile, "%s/libvirt/libvirtd.pid", v->run_dir) < 0 ||
            asprintf(&qemu_run, "%s/libvirt/qemu/run", v->run_dir) < 0)
                return;

        /* SIGTERM: libvirtd leaves its QEMUs running and their status files
         * written, for the one we start next to reconnect to. */
        kill_pidfile(v, pidfile, "libvirtd", SIGTERM);
        kill_pidfile(v, pidfile, "libvirtd", SIGKILL);

        d = opendir(qemu_run);
        if (d) {
                while ((de = readdir(d))) {
                        size_t len = strlen(de->d_name);
                        char *p, *domain;

                        if (len < 5 || !streq(de->d_name + len - 4, ".pid"))
                                continue;
                        domain = strndup(de->d_name, len - 4);
                        if (!domain)
                                break;
                        if (keep && keep(domain, userdata)) {
                                kept = true;
                                free(domain);
                                continue;
                        }
                        free(domain);
                        if (asprintf(&p, "%s/%s", qemu_run, de->d_name) < 0)
                                break;
                        kill_pidfile(v, p, "qemu-system", SIGKILL);
                        free(p);
                }
                closedir(d);
        }
        /* With QEMUs kept, libvirtd's run directory is how it finds them. */
        if (!kept)
                (void) rm_rf(v->base);
}

/* --- connection ------------------------------------------------------- */

typedef struct DomainEvent {
        Virt *virt;
        unsigned generation;
        char *domain;
        VirtDomainEvent event;
        char why[64];
} DomainEvent;

static void domain_event_deliver(int result, void *userdata) {
        DomainEvent *e = userdata;

        if (e->generation == e->virt->generation && !e->virt->stopping)
                e->virt->cb->domain_event(e->virt->manager, e->domain, e->event, e->why);
        free(e->domain);
        free(e);
}

/* On libvirt's event thread: translate and hand over to the loop. */
static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Virt *v = opaque;
        DomainEvent *e;
        const char *name = virDomainGetName(dom);

        e = calloc(1, sizeof(*e));
        if (!e)
                return 0;
        e->virt = v;
        e->generation = __atomic_load_n(&v->generation, __ATOMIC_SEQ_CST);
        e->domain = strdup(name ?: "");
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
                e->event = VIRT_DOMAIN_STARTED;
                snprintf(e->why, sizeof(e->why), "started");
                break;
        case VIR_DOMAIN_EVENT_STOPPED:
                if (detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED || detail == VIR_DOMAIN_EVENT_STOPPED_FAILED) {
                        e->event = VIRT_DOMAIN_CRASHED;
                        snprintf(e->why, sizeof(e->why), "%s",
                                 detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? "guest crashed"
                                                                          : "QEMU ended unexpectedly (killed, or it failed)");
                } else {
                        e->event = VIRT_DOMAIN_STOPPED;
                        snprintf(e->why, sizeof(e->why), "%s",
                                 detail == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN ? "shut down"
                                 : detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED ? "destroyed"
                                                                                : "stopped");
                }
                break;
        case VIR_DOMAIN_EVENT_CRASHED:
                /* PANICKED: the guest wrote to its pvpanic device. */
                e->event = detail == VIR_DOMAIN_EVENT_CRASHED_PANICKED ? VIRT_DOMAIN_PANICKED : VIRT_DOMAIN_CRASHED;
                snprintf(e->why, sizeof(e->why), "guest panicked");
                break;
        default:
                free(e->domain);
                free(e);
                return 0;
        }
        if (!e->domain || worker_post(v->manager->workers, domain_event_deliver, 0, e) < 0) {
                free(e->domain);
                free(e);
        }
        return 0;
}

static void on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque) {
        Virt *v = opaque;
        DomainEvent *e = calloc(1, sizeof(*e));

        if (!e)
                return;
        e->virt = v;
        e->generation = __atomic_load_n(&v->generation, __ATOMIC_SEQ_CST);
        e->domain = strdup(virDomainGetName(dom) ?: "");
        e->event = VIRT_DOMAIN_REBOOTED;
        snprintf(e->why, sizeof(e->why), "rebooted");
        if (!e->domain || worker_post(v->manager->workers, domain_event_deliver, 0, e) < 0) {
                free(e->domain);
                free(e);
        }
}

static void connection_lost(int result, void *userdata);

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        Virt *v = opaque;

        (void) worker_post(v->manager->workers, connection_lost, reason, v);
}

typedef struct ConnectJob {
        Virt *virt;
        virConnectPtr conn;
        int lifecycle_callback, reboot_callback;
        char error[VMGR_ERROR_MAX];
} ConnectJob;

/* On a pool thread: open the connection and subscribe to events. */
static int connect_work(void *userdata) {
        ConnectJob *j = userdata;
        Virt *v = j->virt;

        j->conn = virConnectOpen(v->uri);
        if (!j->conn) {
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                return -ECONNREFUSED;
        }
        (void) virConnectSetKeepAlive(j->conn, 5, 3);
        if (virConnectRegisterCloseCallback(j->conn, on_close, v, NULL) < 0 ||
            (j->lifecycle_callback = virConnectDomainEventRegisterAny(
                     j->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), v, NULL)) <
                    0 ||
            (j->reboot_callback = virConnectDomainEventRegisterAny(j->conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
                                                                   VIR_DOMAIN_EVENT_CALLBACK(on_reboot), v, NULL)) <
                    0) {
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                virConnectClose(j->conn);
                j->conn = NULL;
                return -EIO;
        }
        return 0;
}

static int call_work(void *userdata);
static void call_done(int result, void *userdata);

static void submit_call(Virt *v, VirtCall *c) {
        int r;

        c->conn = v->conn;
        virConnectRef(c->conn);
        r = worker_submit(v->manager->workers, call_work, call_done, c);
        if (r < 0) {
                virConnectClose(c->conn);
                c->done(r, c->userdata);
                free(c);
        }
}

static void connect_begin(Virt *v);

static int on_connect_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Virt *v = userdata;

        v->retry_source = sd_event_source_disable_unref(v->retry_source);
        connect_begin(v);
        return 0;
}

static void connect_done(int result, void *userdata) {
        ConnectJob *j = userdata;
        Virt *v = j->virt;

        v->connecting = false;
        /* Refused while our libvirtd runs and is young: the socket we saw
         * may have been another's (a libvirtd a dying vmgrd had just
         * started makes its socket after we removed the old one, then
         * gets its SIGTERM). Ours is coming: try again shortly. */
        if (result < 0 && !v->stopping && v->pidfd >= 0 && !pidfd_exited(v->pidfd) &&
            now_monotonic_usec() - v->spawned_usec < LIBVIRTD_SOCKET_TIMEOUT_USEC &&
            sd_event_add_time_relative(v->manager->event, &v->retry_source, CLOCK_MONOTONIC, 50000, 0,
                                       on_connect_retry, v) >= 0) {
                log_debug("Cannot connect to libvirtd at %s yet (%s); trying again", v->socket_path, j->error);
                if (j->conn)
                        virConnectClose(j->conn);
                free(j);
                return;
        }
        if (result < 0 || v->stopping) {
                if (j->conn)
                        virConnectClose(j->conn);
                if (!v->stopping)
                        log_error("Cannot connect to libvirtd at %s: %s", v->socket_path, j->error);
                fail_waiting(v, result < 0 ? result : -ECANCELED);
                free(j);
                return;
        }

        __atomic_add_fetch(&v->generation, 1, __ATOMIC_SEQ_CST);
        v->conn = j->conn;
        v->lifecycle_callback = j->lifecycle_callback;
        v->reboot_callback = j->reboot_callback;
        free(j);
        log_info("Connected to libvirtd (pid %d, %.1f ms after it was started)", (int) v->pid,
                 (double) (now_monotonic_usec() - v->spawned_usec) / 1000.0);

        while (v->waiting_head) {
                VirtCall *c = v->waiting_head;
                v->waiting_head = c->next;
                if (!v->waiting_head)
                        v->waiting_tail = NULL;
                submit_call(v, c);
        }
        if (v->cb->connection)
                v->cb->connection(v->manager, true);
}

static void connect_begin(Virt *v) {
        ConnectJob *j;
        int r;

        if (v->conn || v->connecting)
                return;
        j = calloc(1, sizeof(*j));
        if (!j)
                return;
        j->virt = v;
        j->lifecycle_callback = j->reboot_callback = -1;
        v->connecting = true;
        r = worker_submit(v->manager->workers, connect_work, connect_done, j);
        if (r < 0) {
                v->connecting = false;
                free(j);
                fail_waiting(v, r);
        }
}

static void connection_lost(int result, void *userdata) {
        Virt *v = userdata;

        if (!v->conn)
                return;
        log_warning("Lost the connection to libvirtd (reason %d)", result);
        __atomic_add_fetch(&v->generation, 1, __ATOMIC_SEQ_CST);
        virConnectClose(v->conn); /* pool threads hold their own references */
        v->conn = NULL;
        v->lifecycle_callback = v->reboot_callback = -1;
        if (v->cb->connection)
                v->cb->connection(v->manager, false);
        /* If libvirtd itself died, its exit handler restarts it and reconnects;
         * otherwise try again now. */
        if (!v->stopping && v->pidfd >= 0 && !pidfd_exited(v->pidfd))
                connect_begin(v);
}

/* --- libvirtd process ------------------------------------------------- */

static int libvirtd_spawn(Virt *v);

static int on_socket_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        Virt *v = userdata;

        if (access(v->socket_path, F_OK) == 0) {
                v->timer_source = sd_event_source_disable_unref(v->timer_source);
                connect_begin(v);
                return 0;
        }
        if (now_monotonic_usec() - v->spawned_usec > LIBVIRTD_SOCKET_TIMEOUT_USEC) {
                log_error("libvirtd did not create %s in time", v->socket_path);
                v->timer_source = sd_event_source_disable_unref(v->timer_source);
                if (v->pidfd >= 0)
                        (void) pidfd_signal(v->pidfd, SIGKILL);
                return 0;
        }
        /* A one-shot timer is off once it fired: re-arm and re-enable it. */
        (void) sd_event_source_set_time_relative(s, 5000);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Virt *v = userdata;

        v->timer_source = sd_event_source_disable_unref(v->timer_source);
        if (libvirtd_spawn(v) < 0)
                fail_waiting(v, -ECONNREFUSED);
        return 0;
}

static int on_libvirtd_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Virt *v = userdata;
        uint64_t now = now_monotonic_usec();
        unsigned recent = 0;

        log_full_level(v->stopping ? LOG_DEBUG : LOG_WARNING, "libvirtd (pid %d) exited", (int) v->pid);
        v->exit_source = sd_event_source_disable_unref(v->exit_source);
        v->pidfd = safe_close(v->pidfd);
        v->pid = 0;
        if (v->stopping)
                return 0;

        for (size_t i = 0; i < LIBVIRTD_RESTART_BURST; i++)
                if (v->restart_times[i] && now - v->restart_times[i] < LIBVIRTD_RESTART_INTERVAL_USEC)
                        recent++;
        if (recent >= LIBVIRTD_RESTART_BURST) {
                log_error("libvirtd died %u times within a minute; not restarting it (see %s/libvirtd.log)", recent,
                          v->base);
                fail_waiting(v, -ECONNREFUSED);
                return 0;
        }
        v->restart_times[v->restarts++ % LIBVIRTD_RESTART_BURST] = now;
        log_warning("Restarting libvirtd; running VMs are kept");
        return sd_event_add_time_relative(v->manager->event, &v->timer_source, CLOCK_MONOTONIC,
                                          100000ULL << recent, 0, on_restart_timer, v);
}

/* Write the configuration our libvirtd reads. */
static int libvirtd_configure(Virt *v) {
        _cleanup_free_ char *dir = NULL, *qemu_conf = NULL, *libvirtd_conf = NULL;
        static const char qemu[] =
                "# Written by vmgrd: console output goes to files, no virtlogd; no core dumps.\n"
                "stdio_handler = \"file\"\n"
                "max_core = 0\n";
        static const char daemon_conf[] =
                "# Written by vmgrd.\n"
                "log_outputs = \"3:stderr\"\n";
        int r;

        if (asprintf(&dir, "%s/libvirt", v->config_dir) < 0 || asprintf(&qemu_conf, "%s/qemu.conf", dir) < 0 ||
            asprintf(&libvirtd_conf, "%s/libvirtd.conf", dir) < 0)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r >= 0)
                r = mkdir_p(v->run_dir, 0700);
        if (r >= 0)
                r = mkdir_p(v->home_dir, 0700);
        if (r >= 0)
                r = mkdir_p(v->cache_dir, 0700);
        if (r >= 0)
                r = write_file_atomic(qemu_conf, qemu, strlen(qemu), 0600);
        if (r >= 0)
                r = write_file_atomic(libvirtd_conf, daemon_conf, strlen(daemon_conf), 0600);
        return r;
}

static int libvirtd_spawn(Virt *v) {
        _cleanup_free_ char *log_path = NULL;
        pid_t pid;
        int r;

        r = libvirtd_configure(v);
        if (r < 0)
                return log_error_errno(r, "Cannot prepare libvirtd's directories under %s: %m", v->base);
        if (asprintf(&log_path, "%s/libvirtd.log", v->base) < 0)
                return log_oom();
        (void) unlink(v->socket_path);

        /* In namespace mode libvirtd, and so QEMU, live in vmgrd's namespaces. */
        pid = netns_fork(v->manager->netns);
        if (pid < 0)
                return log_error_errno(-pid, "Cannot fork libvirtd: %m");
        if (pid == 0) {
                int fd;

                /* Its own session, so that a terminal's Ctrl-C reaches only vmgrd,
                 * which then tears everything down in order. If vmgrd dies,
                 * libvirtd goes too; the next vmgrd cleans up after both. */
                (void) setsid();
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (v->without_thp && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
                        _exit(127);
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                        _exit(127);
                fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(127);
                child_prepare_exec(3);
                if (setenv("XDG_RUNTIME_DIR", v->run_dir, 1) < 0 ||
                    setenv("XDG_CONFIG_HOME", v->config_dir, 1) < 0 || setenv("HOME", v->home_dir, 1) < 0 ||
                    setenv("XDG_CACHE_HOME", v->cache_dir, 1) < 0)
                        _exit(127);
                /* libvirtd must not find our bus: it has nothing to do there. */
                (void) unsetenv("DBUS_SESSION_BUS_ADDRESS");
                (void) unsetenv("NOTIFY_SOCKET");
                execl(LIBVIRTD_PATH, "libvirtd", (char *) NULL);
                fprintf(stderr, "failed to execute %s: %m\n", LIBVIRTD_PATH);
                _exit(127);
        }

        v->pid = pid;
        v->spawned_usec = now_monotonic_usec();
        v->pidfd = pidfd_open_pid(pid);
        if (v->pidfd < 0)
                return log_error_errno(v->pidfd, "Cannot watch libvirtd: %m");
        r = sd_event_add_io(v->manager->event, &v->exit_source, v->pidfd, EPOLLIN, on_libvirtd_exit, v);
        if (r >= 0)
                r = sd_event_add_time_relative(v->manager->event, &v->timer_source, CLOCK_MONOTONIC, 5000, 0,
                                               on_socket_poll, v);
        if (r < 0)
                return log_error_errno(r, "Cannot watch libvirtd: %m");
        log_debug("Started libvirtd (pid %d)%s", (int) pid,
                  v->without_thp ? ", its guests without transparent huge pages (TCG)" : "");
        return 0;
}

static int accel_work(void *userdata) {
        AccelJob *j = userdata;
        char reason[VMGR_ERROR_MAX] = "";

        return accel_resolve(j->cache_dir, j->requested, &j->resolved, reason, sizeof(reason));
}

static void accel_done(int result, void *userdata) {
        AccelJob *j = userdata;
        Virt *v = j->virt;
        int r;

        if (v) {
                v->accel_job = NULL;
                v->thp_decided = true;
                v->without_thp = result >= 0 && j->resolved == VMGR_ACCEL_TCG;
                if (result < 0)
                        log_debug_errno(result, "No accelerator for vmgrd's default (%m); guests keep huge pages");
                if (!v->stopping) {
                        r = libvirtd_spawn(v);
                        if (r < 0)
                                fail_waiting(v, r);
                }
        }
        free(j->cache_dir);
        free(j);
}

/* Whether libvirtd, and so every QEMU it starts, runs without transparent
 * huge pages (prctl(2) PR_SET_THP_DISABLE, inherited across fork and exec;
 * no process can set it for another): yes where every guest runs under TCG.
 * QEMU asks for huge pages on all of a guest's RAM (MADV_HUGEPAGE), so the
 * first touch of any byte of a 2 MiB region allocates and clears all of it:
 * a restore writes a template's pages spread over the whole RAM, a booting
 * kernel touches memory all over it. Under TCG nothing gains from the large
 * pages (QEMU reaches guest memory through its own software TLB); a warm
 * start spent its largest share of host kernel time clearing them, and the
 * clone's RSS held the untouched rest of each region (docs/benchmarks.md).
 * Under KVM they map the guest's memory in fewer, larger EPT entries, which
 * helps the guest, so where KVM works the kernel's default stays. What
 * vmgrd's configured accelerator resolves to decides: "tcg" at once, no
 * usable /dev/kvm at once, else the KVM probe's answer (cached; seconds
 * only the first time for a user). It may block, so it runs on the worker
 * pool and libvirtd starts once it is known. */
static int thp_decide(Virt *v) {
        AccelJob *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j || !(j->cache_dir = strdup(v->manager->cache_dir))) {
                free(j);
                return -ENOMEM;
        }
        j->virt = v;
        j->requested = v->manager->config.accelerator;
        r = worker_submit(v->manager->workers, accel_work, accel_done, j);
        if (r < 0) {
                free(j->cache_dir);
                free(j);
                return r;
        }
        v->accel_job = j;
        return 0;
}

int virt_start(Virt *v) {
        if (v->pidfd >= 0 || v->timer_source || v->accel_job)
                return 0;
        if (!v->thp_decided)
                return thp_decide(v);
        return libvirtd_spawn(v);
}

/* --- calls ------------------------------------------------------------ */

static int call_work(void *userdata) {
        VirtCall *c = userdata;

        return c->work(c->conn, c->userdata);
}

static void call_done(int result, void *userdata) {
        VirtCall *c = userdata;

        virConnectClose(c->conn);
        c->done(result, c->userdata);
        free(c);
}

int virt_call(Virt *v, virt_work_t work, worker_done_t done, void *userdata) {
        VirtCall *c;
        int r;

        if (v->stopping)
                return -ESHUTDOWN;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->virt = v;
        c->work = work;
        c->done = done;
        c->userdata = userdata;

        if (v->conn) {
                submit_call(v, c);
                return 0;
        }

        /* Not connected yet: wait for it, starting libvirtd if needed. */
        if (v->waiting_tail)
                v->waiting_tail->next = c;
        else
                v->waiting_head = c;
        v->waiting_tail = c;
        r = virt_start(v);
        if (r < 0) {
                fail_waiting(v, r);
                return 0; /* done was called */
        }
        return 0;
}
