/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-agent-client: a host-side driver for tests/integration/test-agent.sh.
 * It connects to the unix socket QEMU made for the agent's port and drives
 * the agent through vmgrd's own session code (daemon/agent-session.c: the
 * handshake, jobs and their streams, flow control), so that the test tests
 * what vmgrd ships. One command per run:
 *
 *   hello                       handshake, print INFO
 *   wait-addr IFNAME TEXT [-- ARGV...]
 *                               (run ARGV, then) wait for an INFO with an
 *                               address on IFNAME whose text starts with
 *                               TEXT and is not tentative
 *   exec [OPTS] -- ARGV...      run ARGV; stdout/stderr to ours; exit with its
 *                               status (128+signal if killed)
 *       -i                      forward our stdin
 *       --hash                  print "BYTES SHA256" of stdout instead of it
 *       --rate BYTES_PER_SEC    consume stdout at most this fast (credit test)
 *       --kill-after MS:SIG     send KILL after MS milliseconds
 *       --disconnect-after N    drop the connection mid-stream after N bytes
 *       --stall-after N         after N bytes stop reading for 2 s, then
 *                               drop the connection
 *   parallel N -- ARGV...       N concurrent runs; all must exit 0
 *   bench N                     N sequential, then N in flights of 20, runs of
 *                               "true"; prints latency median/p99 and runs/s
 *   put LOCAL REMOTE MODE       file transfer; prints "BYTES SHA256"
 *   get REMOTE LOCAL            file transfer; prints "BYTES SHA256"
 *   garbage                     handshake, start "sleep 1000", send half a
 *                               frame and hang up
 *   ping N                      N round trips; prints the median
 *   logs [OPTS] [-- ARGV...]    print the LOG messages of this session as
 *                               "SOURCE PRIORITY REALTIME_USEC TEXT" lines
 *                               (SOURCE kernel, journal or agent), after
 *                               running ARGV if given (its output to our
 *                               stderr), until one of:
 *       --until TEXT            a line whose text contains TEXT was printed
 *                               (and ARGV exited 0)
 *       --count N               N lines were printed
 *       --idle MS               no LOG came for MS milliseconds
 *                               (and the run's timeout fails it otherwise)
 *       --info FILE             also write the session's INFO to FILE, as
 *                               hello prints it
 *   identity [OPTS] HOSTNAME NIC...
 *                               send IDENTITY and wait for its DONE and the
 *                               INFO with its generation, then print "done
 *                               MS" and that INFO; on ERROR print "error
 *                               ERRNO MESSAGE" and exit 1. NIC is
 *                               SLOT,MAC,ADDRESS/PREFIXLEN,GATEWAY[,SERVICE_PREFIXLEN]
 *                               (e.g. 0000:01:00.0,52:54:00:00:00:01,
 *                               fd00::5054:ff:fe00:1/64,fd00::1,48)
 *       --generation HEX        32 hex digits (default: random)
 *       --entropy-hex HEX       the entropy (default: 64 random bytes)
 *       --time-offset SEC       the time sent is the host's plus SEC
 *   shutdown | reboot
 *
 * Options before the command: --socket PATH (required), --timeout SEC
 * (whole run, default 60), --window BYTES (our receive window), --versions
 * MIN:MAX (what our HELLO offers), --stats (print our peak RSS on stderr at
 * the end).
 *
 * Every command checks the LOG messages it receives on the way: a text with
 * a control character (a newline, say) ends the run with an error.
 *
 * What stays raw: garbage and --disconnect-after write half a frame on the
 * session's socket, --stall-after stops the whole loop, and all three then
 * hang up and exit at once. Hooks in the session to corrupt its own stream
 * would be code that vmgrd ships only for this client.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent-session.h"
#include "macro.h"

#define JOBS_MAX 256

static const char *opt_socket;
static double opt_timeout = 60;
static uint32_t opt_window = AGENT_SESSION_WINDOW;
static unsigned opt_version_min = VMGR_AGENT_VERSION_MIN, opt_version_max = VMGR_AGENT_VERSION_MAX;
static bool opt_stats;

_noreturn_ _printf_(1, 2) static void die(const char *fmt, ...) {
        va_list ap;
        fputs("vmgr-agent-client: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double deadline;

/* --- the session ---------------------------------------------------------- */

static sd_event *event;
static AgentSession *session;
/* The connection's socket. The session owns it; only the hang-up modes
 * write on it (and close it) themselves, and then exit. */
static int conn_fd = -EBADF;
static unsigned info_count;
static uint32_t ping_id;
static bool pong_seen;

/* logs: what to print and when to stop */
static bool logs_print;
static const char *logs_until;
static bool logs_until_seen;
static unsigned logs_seen;
static double logs_last;

/* One turn of the loop, waiting up to timeout_ms for something to happen.
 * Ends the run past the deadline or once the connection is gone (the
 * session does not reconnect an attached socket). */
static void step(int timeout_ms) {
        int r;

        if (now() > deadline)
                die("timed out");
        r = sd_event_run(event, (uint64_t) timeout_ms * 1000U);
        if (r < 0)
                die("event loop: %s", strerror(-r));
        if (!agent_session_has_connection(session))
                die("the agent's socket closed");
}

static const char *log_source_to_string(uint8_t source) {
        switch (source) {
        case VMGR_AGENT_LOG_KERNEL:
                return "kernel";
        case VMGR_AGENT_LOG_JOURNAL:
                return "journal";
        case VMGR_AGENT_LOG_AGENT:
                return "agent";
        }
        return "?";
}

static void on_log(AgentSession *s, const struct vmgr_agent_log *l, void *userdata) {
        for (const char *p = l->text; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        die("LOG text with control character 0x%02x: %s", (unsigned char) *p, l->text);
        if (!logs_print)
                return;
        printf("%s %u %" PRIu64 " %s\n", log_source_to_string(l->source), l->priority, l->realtime_usec, l->text);
        fflush(stdout);
        logs_seen++;
        logs_last = now();
        if (logs_until && strstr(l->text, logs_until))
                logs_until_seen = true;
}

/* What the session takes in its stride but this client reports: a refused
 * or odd handshake, the session's end, failed requests, PONGs. */
static void on_message(AgentSession *s, const struct vmgr_agent_msg *m, void *userdata) {
        if (!agent_session_is_connected(s)) {
                if (m->type == VMGR_AGENT_ERROR && m->id == 0 && m->error.error == EPROTONOSUPPORT)
                        die("agent refused the session: %s", m->error.message);
                if (m->type == VMGR_AGENT_HELLO && m->hello.nonce != 0 &&
                    m->hello.version_min != m->hello.version_max)
                        die("agent did not choose a version");
                return;
        }
        switch (m->type) {
        case VMGR_AGENT_HELLO:
                die("agent restarted (HELLO with nonce %" PRIu64 ")", m->hello.nonce);
        case VMGR_AGENT_INFO:
                info_count++;
                return;
        case VMGR_AGENT_ERROR:
                if (m->id == 0)
                        die("agent ended the session: %s", m->error.message);
                fprintf(stderr, "vmgr-agent-client: request %u failed: %s\n", m->id, m->error.message);
                return;
        case VMGR_AGENT_PONG:
                if (m->id == ping_id && m->ping.payload == 42)
                        pong_seen = true;
                return;
        default:
                return;
        }
}

static void on_violation(AgentSession *s, const char *why, void *userdata) {
        die("%s", why);
}

/* Connect (retrying while QEMU has not made the socket yet), hand the
 * socket to a session and wait for it and the first INFO. */
static void handshake(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        if (strlen(opt_socket) >= sizeof(sa.sun_path))
                die("socket path too long");
        strcpy(sa.sun_path, opt_socket);
        for (;;) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        die("socket: %m");
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        break;
                if ((errno != ENOENT && errno != ECONNREFUSED) || now() > deadline)
                        die("cannot connect to %s: %m", opt_socket);
                close(fd);
                usleep(50000);
        }
        r = sd_event_new(&event);
        if (r >= 0)
                r = agent_session_new(event, opt_socket, NULL, NULL, &session);
        if (r < 0)
                die("cannot make a session: %s", strerror(-r));
        agent_session_set_hello(session, (uint16_t) opt_version_min, (uint16_t) opt_version_max, opt_window,
                                "vmgr-agent-client");
        agent_session_set_log_handler(session, on_log);
        agent_session_set_message_handler(session, on_message);
        agent_session_set_violation_handler(session, on_violation);
        conn_fd = fd;
        r = agent_session_attach(session, fd);
        if (r < 0)
                die("cannot start a session: %s", strerror(-r));
        while (!agent_session_is_connected(session) || !agent_session_info(session))
                step(1000);
}

/* --- INFO ----------------------------------------------------------------- */

static void addr_text(const struct vmgr_agent_addr *a, char *buf, size_t size) {
        char s[64];
        inet_ntop(a->family == VMGR_AGENT_FAMILY_IPV4 ? AF_INET : AF_INET6, a->address, s, sizeof(s));
        snprintf(buf, size, "%s/%u", s, a->prefixlen);
}

static const char *link_name(const struct vmgr_agent_info *in, uint32_t index) {
        for (size_t i = 0; i < in->n_links; i++)
                if (in->links[i].index == index)
                        return in->links[i].name;
        return "?";
}

static void print_info(FILE *f, const struct vmgr_agent_info *in) {
        fprintf(f, "version %u\nhostname %s\nkernel %s\nboot-id %s\ngeneration ", in->version, in->hostname,
                in->kernel, in->boot_id);
        for (size_t i = 0; i < sizeof(in->generation); i++)
                fprintf(f, "%02x", in->generation[i]);
        fprintf(f, "\n");
        for (size_t i = 0; i < in->n_links; i++) {
                const struct vmgr_agent_link *l = &in->links[i];
                fprintf(f, "link %u %s mtu %u flags 0x%x hw ", l->index, l->name, l->mtu, l->flags);
                for (size_t j = 0; j < l->hwaddr_len; j++)
                        fprintf(f, "%s%02x", j ? ":" : "", l->hwaddr[j]);
                fprintf(f, "\n");
        }
        for (size_t i = 0; i < in->n_addrs; i++) {
                const struct vmgr_agent_addr *a = &in->addrs[i];
                char t[80];
                addr_text(a, t, sizeof(t));
                fprintf(f, "addr %s ipv%u %s scope %u flags 0x%x%s\n", link_name(in, a->ifindex), a->family, t,
                        a->scope, a->flags, (a->flags & 0x40) ? " tentative" : "");
        }
        fflush(f);
}

/* --- jobs: one EXEC, FILE_PUT, FILE_GET or SHUTDOWN/REBOOT each ------------ */

/* A process's stdout or stderr: the session writes it into a pipe, as it
 * writes vmgrctl's; we read that, count and hash it, and pass it on. */
struct output {
        int fd;                 /* the pipe's read end; -EBADF once at its end */
        sd_event_source *io;
        int dest;               /* where it goes, or -1 (dropped) */
        uint64_t bytes;
        struct sha256_ctx hash;
};

struct job {
        AgentJob *aj;
        bool done;              /* the session finished it; result is valid */
        bool finished;          /* and its outputs are at their end */
        AgentJobResult result;
        struct output out, err;
        double started, finished_at;
        /* --rate: stdout is read no faster than this many bytes per second */
        double rate, rate_t0;
        sd_event_source *rate_timer;
        uint64_t disconnect_after, stall_after;
        sd_event_source *kill_timer;
        int kill_sig;
        int in_keep;            /* garbage: stdin's write end, held open and never written */
};

static struct job *jobs[JOBS_MAX];
static size_t n_jobs;

static void job_check_finished(struct job *j) {
        if (j->finished || !j->done || j->out.fd >= 0 || j->err.fd >= 0)
                return;
        j->finished = true;
        j->finished_at = now();
}

static void on_job_done(AgentJob *aj, void *userdata) {
        struct job *j = userdata;

        j->done = true;
        j->result = *agent_job_result(aj);
        job_check_finished(j);
}

static struct job *job_new(AgentJobKind kind) {
        struct job *j = calloc(1, sizeof(*j));
        int r;

        if (!j || n_jobs >= JOBS_MAX)
                die("too many jobs");
        j->out = j->err = (struct output) { .fd = -EBADF, .dest = -1 };
        sha256_init(&j->out.hash);
        j->in_keep = -EBADF;
        r = agent_job_new(session, kind, on_job_done, j, &j->aj);
        if (r < 0)
                die("cannot make a job: %s", strerror(-r));
        j->started = now();
        jobs[n_jobs++] = j;
        return j;
}

/* Forget the last job made. */
static void job_free_last(void) {
        struct job *j = jobs[--n_jobs];

        agent_job_free(j->aj);
        for (struct output *o = &j->out; o <= &j->err; o++) {
                sd_event_source_disable_unref(o->io);
                safe_close(o->fd);
        }
        sd_event_source_disable_unref(j->rate_timer);
        sd_event_source_disable_unref(j->kill_timer);
        safe_close(j->in_keep);
        free(j);
}

static bool all_finished(void) {
        for (size_t i = 0; i < n_jobs; i++)
                if (!jobs[i]->finished)
                        return false;
        return true;
}

static int job_exit_code(const struct job *j) {
        if (j->result.error < 0)
                return 127;
        return j->result.signal ? 128 + j->result.signal : j->result.status;
}

static void write_all(int fd, const void *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        die("write: %m");
                }
                p = (const uint8_t *) p + k;
                n -= (size_t) k;
        }
}

/* --disconnect-after, --stall-after: leave the session in a way vmgrd never
 * does, then exit at once. */
static void maybe_hang_up(struct job *j) {
        if (j->stall_after && j->out.bytes >= j->stall_after) {
                /* Stop reading with a window granted: QEMU's writes to the
                 * socket back up. Then hang up. */
                sleep(2);
                close(conn_fd);
                printf("stalled and disconnected after %" PRIu64 " bytes\n", j->out.bytes);
                exit(0);
        }
        if (j->disconnect_after && j->out.bytes >= j->disconnect_after) {
                /* Hang up mid-stream, with half a frame on the wire. */
                static const uint8_t half[] = { 0x05, 'v', 'm', 'A' };
                if (write(conn_fd, half, sizeof(half)) < 0)
                        fprintf(stderr, "writing the half frame: %m\n");
                close(conn_fd);
                printf("disconnected after %" PRIu64 " bytes\n", j->out.bytes);
                exit(0);
        }
}

static int on_rate_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct job *j = userdata;

        if (j->out.io)
                (void) sd_event_source_set_enabled(j->out.io, SD_EVENT_ON);
        return 0;
}

/* --rate: how much of stdout may be read now (0: wait a little first). */
static size_t rate_allows(struct job *j, size_t want) {
        uint64_t allowed = (uint64_t) ((now() - j->rate_t0) * j->rate);
        int r;

        if (allowed > j->out.bytes)
                return MIN(want, (size_t) (allowed - j->out.bytes));
        (void) sd_event_source_set_enabled(j->out.io, SD_EVENT_OFF);
        if (!j->rate_timer)
                r = sd_event_add_time_relative(event, &j->rate_timer, CLOCK_MONOTONIC, 10000, 0, on_rate_timer, j);
        else {
                r = sd_event_source_set_time_relative(j->rate_timer, 10000);
                if (r >= 0)
                        r = sd_event_source_set_enabled(j->rate_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                die("cannot arm a timer: %s", strerror(-r));
        return 0;
}

static int on_output(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        static uint8_t buf[65536];
        struct job *j = userdata;
        struct output *o = source == j->out.io ? &j->out : &j->err;
        size_t want = sizeof(buf);
        ssize_t n;

        if (o == &j->out && j->rate > 0) {
                want = rate_allows(j, want);
                if (want == 0)
                        return 0;
        }
        n = read(o->fd, buf, want);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                die("read: %m");
        }
        if (n == 0) {
                o->io = sd_event_source_disable_unref(o->io);
                o->fd = safe_close(o->fd);
                job_check_finished(j);
                return 0;
        }
        o->bytes += (uint64_t) n;
        if (o == &j->out)
                sha256_update(&o->hash, (size_t) n, buf);
        if (o->dest >= 0)
                write_all(o->dest, buf, (size_t) n);
        if (o == &j->out)
                maybe_hang_up(j);
        return 0;
}

/* Let the session write slot into a pipe that we copy to dest (-1: drop). */
static void output_open(struct job *j, AgentStreamSlot slot, int dest) {
        struct output *o = slot == AGENT_STREAM_OUT ? &j->out : &j->err;
        int p[2], r;

        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
                die("pipe: %m");
        o->fd = p[0];
        o->dest = dest;
        r = agent_job_set_fd(j->aj, slot, p[1]);
        if (r >= 0)
                r = sd_event_add_io(event, &o->io, o->fd, EPOLLIN, on_output, j);
        if (r < 0)
                die("cannot set up an output: %s", strerror(-r));
}

/* Our stdin, for the session to read. A pipe or a terminal is opened anew:
 * the session makes its fd non-blocking, which must not change the file
 * description our caller shares. */
static int stdin_fd(void) {
        struct stat st;
        int fd;

        if (fstat(STDIN_FILENO, &st) < 0)
                die("stdin: %m");
        if (!S_ISREG(st.st_mode)) {
                fd = open("/proc/self/fd/0", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                if (fd >= 0)
                        return fd;
        }
        fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                die("stdin: %m");
        return fd;
}

static void start_exec(struct job *j, char **argv) {
        int r = agent_job_start_exec(j->aj, argv, NULL, NULL);

        if (r == -E2BIG)
                die("too many arguments");
        if (r < 0)
                die("cannot start %s: %s", argv[0], strerror(-r));
}

/* A job running argv with stdout to out_dest and stderr to ours. */
static struct job *exec_new(char **argv, int out_dest) {
        struct job *j = job_new(AGENT_JOB_EXEC);

        output_open(j, AGENT_STREAM_OUT, out_dest);
        output_open(j, AGENT_STREAM_ERR, STDERR_FILENO);
        start_exec(j, argv);
        return j;
}

static int on_kill_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct job *j = userdata;

        (void) agent_job_kill(j->aj, j->kill_sig);
        return 0;
}

static void hash_hex(struct sha256_ctx *ctx, char out[65]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_digest(ctx, sizeof(d), d);
        for (size_t i = 0; i < sizeof(d); i++)
                sprintf(out + 2 * i, "%02x", d[i]);
}

/* Print "BYTES SHA256" of a local file (what a transfer sent or got). */
static void print_file_hash(const char *path) {
        static uint8_t buf[65536];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct sha256_ctx ctx;
        uint64_t bytes = 0;
        char hex[65];
        ssize_t n;

        if (fd < 0)
                die("cannot open %s: %m", path);
        sha256_init(&ctx);
        while ((n = read(fd, buf, sizeof(buf))) > 0) {
                sha256_update(&ctx, (size_t) n, buf);
                bytes += (uint64_t) n;
        }
        if (n < 0)
                die("cannot read %s: %m", path);
        hash_hex(&ctx, hex);
        printf("%" PRIu64 " %s\n", bytes, hex);
}

/* --- commands ------------------------------------------------------------- */

static int cmd_hello(void) {
        print_info(stdout, agent_session_info(session));
        return 0;
}

static int cmd_wait_addr(const char *ifname, const char *prefix, char **argv) {
        unsigned seen = 0;
        double t0 = now();

        if (argv) {
                /* Change something first (ip addr add ...), in this session. */
                struct job *j = exec_new(argv, -1);
                while (!j->finished)
                        step(1000);
                if (job_exit_code(j) != 0)
                        die("%s failed", argv[0]);
                seen = info_count;
        }
        for (;;) {
                const struct vmgr_agent_info *info = agent_session_info(session);

                for (size_t i = 0; i < info->n_addrs; i++) {
                        const struct vmgr_agent_addr *a = &info->addrs[i];
                        char t[80];
                        addr_text(a, t, sizeof(t));
                        if (streq(link_name(info, a->ifindex), ifname) && strncmp(t, prefix, strlen(prefix)) == 0 &&
                            !(a->flags & 0x40)) {
                                printf("%s %s (%u INFO updates, %.0f ms)\n", ifname, t, info_count - seen,
                                       (now() - t0) * 1000);
                                return 0;
                        }
                }
                step(1000);
        }
}

static int cmd_exec(int argc, char **argv) {
        bool with_stdin = false, hash = false;
        struct job *j;
        double rate = 0;
        uint64_t disconnect_after = 0, stall_after = 0;
        int kill_ms = 0, kill_sig = 0, i, r;

        for (i = 0; i < argc && !streq(argv[i], "--"); i++) {
                if (streq(argv[i], "-i"))
                        with_stdin = true;
                else if (streq(argv[i], "--hash"))
                        hash = true;
                else if (streq(argv[i], "--rate") && i + 1 < argc)
                        rate = atof(argv[++i]);
                else if (streq(argv[i], "--disconnect-after") && i + 1 < argc)
                        disconnect_after = strtoull(argv[++i], NULL, 10);
                else if (streq(argv[i], "--stall-after") && i + 1 < argc)
                        stall_after = strtoull(argv[++i], NULL, 10);
                else if (streq(argv[i], "--kill-after") && i + 1 < argc) {
                        if (sscanf(argv[++i], "%d:%d", &kill_ms, &kill_sig) != 2)
                                die("--kill-after MS:SIGNAL");
                } else
                        die("unknown exec option %s", argv[i]);
        }
        if (i + 1 >= argc)
                die("exec needs -- ARGV");

        j = job_new(AGENT_JOB_EXEC);
        if (with_stdin) {
                r = agent_job_set_fd(j->aj, AGENT_STREAM_IN, stdin_fd());
                if (r < 0)
                        die("cannot read stdin: %s", strerror(-r));
        }
        output_open(j, AGENT_STREAM_OUT, hash ? -1 : STDOUT_FILENO);
        output_open(j, AGENT_STREAM_ERR, STDERR_FILENO);
        j->rate = rate;
        j->rate_t0 = now();
        j->disconnect_after = disconnect_after;
        j->stall_after = stall_after;
        if (kill_ms > 0) {
                j->kill_sig = kill_sig;
                r = sd_event_add_time_relative(event, &j->kill_timer, CLOCK_MONOTONIC, (uint64_t) kill_ms * 1000U, 0,
                                               on_kill_timer, j);
                if (r < 0)
                        die("cannot arm a timer: %s", strerror(-r));
        }
        start_exec(j, argv + i + 1);
        while (!j->finished)
                step(1000);
        if (j->result.error < 0)
                return 127;
        if (hash) {
                char hex[65];
                hash_hex(&j->out.hash, hex);
                printf("%" PRIu64 " %s\n", j->out.bytes, hex);
        }
        if (j->result.signal)
                fprintf(stderr, "vmgr-agent-client: killed by signal %d\n", j->result.signal);
        return job_exit_code(j);
}

static int cmd_parallel(unsigned n, char **argv) {
        unsigned ok = 0;
        double t0 = now();

        for (unsigned i = 0; i < n; i++)
                exec_new(argv, -1);
        while (!all_finished())
                step(1000);
        for (size_t i = 0; i < n_jobs; i++)
                ok += job_exit_code(jobs[i]) == 0;
        printf("%u of %u exited 0 in %.0f ms\n", ok, n, (now() - t0) * 1000);
        return ok == n ? 0 : 1;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static int cmd_bench(unsigned n) {
        char *argv[] = { "true", NULL };
        double *lat = calloc(n, sizeof(double)), t0;
        unsigned done = 0, started = 0;

        if (!lat || n == 0)
                die("bench N");
        /* Sequential: round-trip latency, EXEC to EXIT (no streams). */
        for (unsigned i = 0; i < n; i++) {
                struct job *j = job_new(AGENT_JOB_EXEC);
                start_exec(j, argv);
                while (!j->finished)
                        step(1000);
                if (job_exit_code(j) != 0)
                        die("true failed");
                lat[i] = (j->finished_at - j->started) * 1000;
                job_free_last();
        }
        qsort(lat, n, sizeof(double), cmp_double);
        printf("exec true latency: median %.1f ms, p99 %.1f ms, min %.1f ms, max %.1f ms (%u runs)\n", lat[n / 2],
               lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], lat[0], lat[n - 1], n);

        /* Throughput: 20 in flight. */
        t0 = now();
        while (done < n) {
                while (started < n && n_jobs < 20) {
                        start_exec(job_new(AGENT_JOB_EXEC), argv);
                        started++;
                }
                step(1000);
                for (size_t i = 0; i < n_jobs; i++)
                        if (jobs[i]->finished) {
                                struct job *j = jobs[i];
                                if (job_exit_code(j) != 0)
                                        die("true failed");
                                /* Swap it last, then forget it. */
                                jobs[i--] = jobs[n_jobs - 1];
                                jobs[n_jobs - 1] = j;
                                job_free_last();
                                done++;
                        }
        }
        printf("exec true throughput: %.1f runs/s (%u runs, 20 in flight)\n", n / (now() - t0), n);
        free(lat);
        return 0;
}

static int cmd_put(const char *local, const char *remote, const char *mode) {
        struct job *j = job_new(AGENT_JOB_PUT);
        int fd, r;

        fd = open(local, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                die("cannot open %s: %m", local);
        r = agent_job_set_fd(j->aj, AGENT_STREAM_IN, fd);
        if (r >= 0)
                r = agent_job_start_file(j->aj, remote, (uint32_t) strtoul(mode, NULL, 8));
        if (r < 0)
                die("cannot send %s: %s", local, strerror(-r));
        while (!j->finished)
                step(1000);
        if (j->result.error < 0)
                return 1;
        print_file_hash(local);
        return 0;
}

static int cmd_get(const char *remote, const char *local) {
        struct job *j = job_new(AGENT_JOB_GET);
        int fd, r;

        fd = open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                die("cannot create %s: %m", local);
        r = agent_job_set_fd(j->aj, AGENT_STREAM_OUT, fd);
        if (r >= 0)
                r = agent_job_start_file(j->aj, remote, 0);
        if (r < 0)
                die("cannot get %s: %s", remote, strerror(-r));
        while (!j->finished)
                step(1000);
        if (j->result.error < 0)
                return 1;
        print_file_hash(local);
        return 0;
}

/* Leave the agent mid-frame with a process running: the next session must
 * come up anyway, and the process must be gone. */
static int cmd_garbage(void) {
        char *argv[] = { "sleep", "1000", NULL };
        static const uint8_t half[] = { 0x07, 'v', 'm', 'A', 'G', 0x03 };
        struct job *j = job_new(AGENT_JOB_EXEC);
        int p[2], r;

        /* A stdin that stays open and empty. */
        if (pipe2(p, O_CLOEXEC) < 0)
                die("pipe: %m");
        j->in_keep = p[1];
        r = agent_job_set_fd(j->aj, AGENT_STREAM_IN, p[0]);
        if (r < 0)
                die("cannot set up stdin: %s", strerror(-r));
        output_open(j, AGENT_STREAM_OUT, -1);
        output_open(j, AGENT_STREAM_ERR, STDERR_FILENO);
        start_exec(j, argv);
        /* The session wrote the EXEC at once; the half frame goes after it,
         * and we leave without the session (which would kill the process). */
        if (write(conn_fd, half, sizeof(half)) < 0)
                fprintf(stderr, "writing the half frame: %m\n");
        usleep(200000);
        close(conn_fd);
        printf("left a half frame and a running sleep behind\n");
        return 0;
}

static int cmd_ping(unsigned n) {
        double *rtt = calloc(n ? n : 1, sizeof(double));

        for (unsigned i = 0; i < n; i++) {
                double t0 = now();
                int r;

                ping_id = i + 1;
                pong_seen = false;
                r = agent_session_ping(session, ping_id, 42);
                if (r < 0)
                        die("cannot send PING: %s", strerror(-r));
                while (!pong_seen)
                        step(1000);
                rtt[i] = (now() - t0) * 1000;
        }
        qsort(rtt, n, sizeof(double), cmp_double);
        if (n)
                printf("ping round trip: median %.2f ms, max %.2f ms (%u)\n", rtt[n / 2], rtt[n - 1], n);
        free(rtt);
        return 0;
}

static struct {
        unsigned count;
        double idle;
        const char *info;
        int end; /* the index of "--", or argc */
} logs_opts;

/* Parse the logs command's options. Before the handshake: LOGs can come in
 * the same read as the INFO that completes it, and are printed then. */
static void logs_parse(int argc, char **argv) {
        int i;

        for (i = 0; i < argc && !streq(argv[i], "--"); i++) {
                if (streq(argv[i], "--until") && i + 1 < argc)
                        logs_until = argv[++i];
                else if (streq(argv[i], "--count") && i + 1 < argc)
                        logs_opts.count = (unsigned) strtoul(argv[++i], NULL, 10);
                else if (streq(argv[i], "--idle") && i + 1 < argc)
                        logs_opts.idle = atof(argv[++i]) / 1000;
                else if (streq(argv[i], "--info") && i + 1 < argc)
                        logs_opts.info = argv[++i];
                else
                        die("unknown logs option %s", argv[i]);
        }
        logs_opts.end = i;
        logs_print = true;
        logs_last = now();
}

static int cmd_logs(int argc, char **argv) {
        unsigned count = logs_opts.count;
        double idle = logs_opts.idle;
        struct job *j = NULL;
        int i = logs_opts.end;

        logs_last = now(); /* --idle counts from the session's start */
        if (logs_opts.info) {
                /* The session's INFO, as hello prints it. */
                _cleanup_fclose_ FILE *f = fopen(logs_opts.info, "we");
                if (!f)
                        die("cannot create %s: %m", logs_opts.info);
                print_info(f, agent_session_info(session));
        }
        if (i + 1 < argc)
                j = exec_new(argv + i + 1, STDERR_FILENO);
        for (;;) {
                bool job_done = !j || j->finished;

                if (j && job_done && job_exit_code(j) != 0)
                        die("%s failed", argv[i + 1]);
                if (job_done && logs_until && logs_until_seen)
                        return 0;
                if (count > 0 && logs_seen >= count)
                        return 0;
                if (job_done && idle > 0 && now() - logs_last >= idle)
                        return 0;
                step(50);
        }
}

static int cmd_power(bool reboot) {
        struct job *j = job_new(AGENT_JOB_SHUTDOWN);
        int r = reboot ? agent_job_start_reboot(j->aj) : agent_job_start_shutdown(j->aj);

        if (r < 0)
                die("cannot send %s: %s", reboot ? "REBOOT" : "SHUTDOWN", strerror(-r));
        while (!j->finished)
                step(1000);
        return j->result.error < 0 ? 1 : 0;
}

/* Parse len bytes of hex from text (exactly 2 * len digits). Returns 0 or -EINVAL. */
static int parse_hex(const char *text, uint8_t *out, size_t len) {
        if (strlen(text) != 2 * len)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned v;
                if (sscanf(text + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                out[i] = (uint8_t) v;
        }
        return 0;
}

/* SLOT,MAC,ADDRESS/PREFIXLEN,GATEWAY[,SERVICE_PREFIXLEN] into *nic
 * (pci_slot points into text, which is changed). Returns 0 or -EINVAL. */
static int parse_nic(char *text, struct vmgr_agent_identity_nic *nic) {
        char *f[5] = {}, *slash, *save = NULL;
        size_t n = 0;
        unsigned m[6], plen;

        for (char *t = strtok_r(text, ",", &save); t && n < 5; t = strtok_r(NULL, ",", &save))
                f[n++] = t;
        if (n < 4)
                return -EINVAL;
        nic->pci_slot = f[0];
        if (sscanf(f[1], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
                return -EINVAL;
        for (size_t i = 0; i < 6; i++)
                nic->mac[i] = (uint8_t) m[i];
        slash = strchr(f[2], '/');
        if (!slash || sscanf(slash + 1, "%u", &plen) != 1)
                return -EINVAL;
        *slash = 0;
        nic->prefixlen = (uint8_t) plen;
        if (inet_pton(AF_INET, f[2], nic->address) == 1 && inet_pton(AF_INET, f[3], nic->gateway) == 1)
                nic->family = VMGR_AGENT_FAMILY_IPV4;
        else if (inet_pton(AF_INET6, f[2], nic->address) == 1 && inet_pton(AF_INET6, f[3], nic->gateway) == 1)
                nic->family = VMGR_AGENT_FAMILY_IPV6;
        else
                return -EINVAL;
        nic->service_prefixlen = f[4] ? (uint8_t) atoi(f[4]) : 0;
        return 0;
}

static int cmd_identity(int argc, char **argv) {
        static struct vmgr_agent_identity id;
        static uint8_t entropy[VMGR_AGENT_ENTROPY_MAX];
        const struct vmgr_agent_info *info;
        double offset = 0, t0;
        struct timespec ts;
        struct job *j;
        int i, r;

        if (getrandom(id.generation, sizeof(id.generation), 0) != sizeof(id.generation) ||
            getrandom(entropy, 64, 0) != 64)
                die("getrandom: %m");
        id.entropy = entropy;
        id.entropy_size = 64;
        for (i = 0; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
                if (streq(argv[i], "--generation") && i + 1 < argc) {
                        if (parse_hex(argv[++i], id.generation, sizeof(id.generation)) < 0)
                                die("--generation wants 32 hex digits");
                } else if (streq(argv[i], "--entropy-hex") && i + 1 < argc) {
                        size_t n = strlen(argv[++i]) / 2;
                        if (n > sizeof(entropy) || parse_hex(argv[i], entropy, n) < 0)
                                die("--entropy-hex wants at most %zu bytes of hex", sizeof(entropy));
                        id.entropy_size = n;
                } else if (streq(argv[i], "--time-offset") && i + 1 < argc)
                        offset = atof(argv[++i]);
                else
                        die("identity: unknown option %s", argv[i]);
        }
        if (argc - i < 2)
                die("usage: identity [OPTS] HOSTNAME NIC...");
        id.hostname = argv[i++];
        for (; i < argc; i++) {
                if (id.n_nics >= VMGR_AGENT_IDENTITY_NICS_MAX)
                        die("too many NICs");
                if (parse_nic(argv[i], &id.nics[id.n_nics++]) < 0)
                        die("cannot parse NIC %s", argv[i]);
        }

        j = job_new(AGENT_JOB_IDENTITY);
        clock_gettime(CLOCK_REALTIME, &ts);
        id.realtime_nsec = (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec +
                           (uint64_t) (int64_t) (offset * 1e9);
        t0 = now();
        r = agent_job_start_identity(j->aj, &id);
        if (r < 0)
                die("cannot send IDENTITY: %s", strerror(-r));
        while (!j->finished)
                step(1000);
        if (j->result.error < 0) {
                printf("error %d %s\n", -j->result.error, j->result.message);
                return 1;
        }
        printf("done %.0f\n", (now() - t0) * 1000);
        for (;;) {
                info = agent_session_info(session);
                if (info && memcmp(info->generation, id.generation, sizeof(id.generation)) == 0)
                        break;
                step(1000);
        }
        print_info(stdout, info);
        return 0;
}

static void print_stats(void) {
        char line[256];
        FILE *f = fopen("/proc/self/status", "re");
        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, "VmHWM:", 6) == 0)
                        fprintf(stderr, "vmgr-agent-client: peak RSS %s", line + 6);
        if (f)
                fclose(f);
}

int main(int argc, char **argv) {
        int i, r;
        const char *cmd;

        for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
                if (streq(argv[i], "--socket") && i + 1 < argc)
                        opt_socket = argv[++i];
                else if (streq(argv[i], "--timeout") && i + 1 < argc)
                        opt_timeout = atof(argv[++i]);
                else if (streq(argv[i], "--window") && i + 1 < argc)
                        opt_window = (uint32_t) strtoul(argv[++i], NULL, 10);
                else if (streq(argv[i], "--versions") && i + 1 < argc) {
                        if (sscanf(argv[++i], "%u:%u", &opt_version_min, &opt_version_max) != 2)
                                die("--versions MIN:MAX");
                } else if (streq(argv[i], "--stats"))
                        opt_stats = true;
                else
                        die("unknown option %s", argv[i]);
        }
        if (!opt_socket || i >= argc)
                die("usage: vmgr-agent-client --socket PATH [--timeout SEC] [--window BYTES] [--stats] COMMAND ...");
        cmd = argv[i++];
        signal(SIGPIPE, SIG_IGN);
        deadline = now() + opt_timeout;

        if (streq(cmd, "logs"))
                logs_parse(argc - i, argv + i);
        handshake();
        if (streq(cmd, "hello"))
                r = cmd_hello();
        else if (streq(cmd, "wait-addr") && i + 2 == argc)
                r = cmd_wait_addr(argv[i], argv[i + 1], NULL);
        else if (streq(cmd, "wait-addr") && i + 3 < argc && streq(argv[i + 2], "--"))
                r = cmd_wait_addr(argv[i], argv[i + 1], argv + i + 3);
        else if (streq(cmd, "exec"))
                r = cmd_exec(argc - i, argv + i);
        else if (streq(cmd, "parallel") && i + 2 < argc && streq(argv[i + 1], "--"))
                r = cmd_parallel((unsigned) atoi(argv[i]), argv + i + 2);
        else if (streq(cmd, "bench") && i + 1 == argc)
                r = cmd_bench((unsigned) atoi(argv[i]));
        else if (streq(cmd, "put") && i + 3 == argc)
                r = cmd_put(argv[i], argv[i + 1], argv[i + 2]);
        else if (streq(cmd, "get") && i + 2 == argc)
                r = cmd_get(argv[i], argv[i + 1]);
        else if (streq(cmd, "garbage"))
                r = cmd_garbage();
        else if (streq(cmd, "ping") && i + 1 == argc)
                r = cmd_ping((unsigned) atoi(argv[i]));
        else if (streq(cmd, "logs"))
                r = cmd_logs(argc - i, argv + i);
        else if (streq(cmd, "identity"))
                r = cmd_identity(argc - i, argv + i);
        else if (streq(cmd, "shutdown") || streq(cmd, "reboot"))
                r = cmd_power(streq(cmd, "reboot"));
        else
                die("unknown command or wrong arguments: %s", cmd);
        if (opt_stats)
                print_stats();
        return r;
}
