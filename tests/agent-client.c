/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmgr-agent-client: a host-side driver for tests/integration/test-agent.sh.
 * It connects to the unix socket QEMU made for the agent's port and speaks
 * the protocol through lib/agent-proto, one command per run:
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
 *   shutdown | reboot
 *
 * Options before the command: --socket PATH (required), --timeout SEC
 * (whole run, default 60), --window BYTES (our receive window), --versions
 * MIN:MAX (what our HELLO offers), --stats (print our peak RSS on stderr at
 * the end).
 *
 * Every command checks the LOG messages it receives on the way: a text with
 * a control character (a newline, say) ends the run with an error.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent-proto.h"
#include "macro.h"

#define JOBS_MAX 256

static const char *opt_socket;
static double opt_timeout = 60;
static uint32_t opt_window = 256 * 1024;
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

/* --- connection ----------------------------------------------------------- */

static struct {
        int fd;
        struct vmgr_agent_decoder *dec;
        uint8_t *out;
        size_t out_len, out_cap;
        bool established;
        uint64_t nonce;
        uint32_t agent_window;
        bool eof;
} C = { .fd = -EBADF };

static void send_bytes(const void *p, size_t n) {
        if (C.out_len + n > C.out_cap) {
                C.out_cap = (C.out_len + n) * 2;
                C.out = realloc(C.out, C.out_cap);
                if (!C.out)
                        die("out of memory");
        }
        memcpy(C.out + C.out_len, p, n);
        C.out_len += n;
}

static void send_msg(const struct vmgr_agent_msg *m) {
        static uint8_t buf[VMGR_AGENT_WIRE_MAX];
        int n = vmgr_agent_msg_encode(m, buf, sizeof(buf));
        if (n < 0)
                die("cannot encode %s: %s", vmgr_agent_type_to_string(m->type), strerror(-n));
        send_bytes(buf, (size_t) n);
}

static void send_hello(void) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_HELLO };
        uint8_t zero = 0;

        if (getrandom(&C.nonce, sizeof(C.nonce), 0) != sizeof(C.nonce))
                die("getrandom: %m");
        C.nonce |= 1; /* never 0, the agent's announcement */
        m.hello = (struct vmgr_agent_hello) { (uint16_t) opt_version_min, (uint16_t) opt_version_max, opt_window,
                                              C.nonce, "vmgr-agent-client" };
        send_bytes(&zero, 1);
        send_msg(&m);
}

/* Connect, retrying while the socket is not there yet (QEMU starting). */
static void conn_open(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(opt_socket) >= sizeof(sa.sun_path))
                die("socket path too long");
        strcpy(sa.sun_path, opt_socket);
        for (;;) {
                C.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (C.fd < 0)
                        die("socket: %m");
                if (connect(C.fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        break;
                if ((errno != ENOENT && errno != ECONNREFUSED) || now() > deadline)
                        die("cannot connect to %s: %m", opt_socket);
                close(C.fd);
                usleep(50000);
        }
        if (vmgr_agent_decoder_new(&C.dec) < 0)
                die("out of memory");
        send_hello();
}

static void conn_flush(void) {
        size_t off = 0;
        while (off < C.out_len) {
                ssize_t n = write(C.fd, C.out + off, C.out_len - off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        die("write: %m");
                }
                off += (size_t) n;
        }
        memmove(C.out, C.out + off, C.out_len - off);
        C.out_len -= off;
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
        fprintf(f, "version %u\nhostname %s\nkernel %s\nboot-id %s\n", in->version, in->hostname, in->kernel,
                in->boot_id);
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

/* --- jobs: one EXEC, FILE_PUT or FILE_GET each ---------------------------- */

struct job {
        uint32_t id;
        enum { JOB_EXEC, JOB_PUT, JOB_GET } kind;
        uint32_t in_stream, out_stream, err_stream;
        struct vmgr_agent_send_window in_w;
        struct vmgr_agent_recv_window out_w, err_w;
        int in_fd;          /* our source for stdin / FILE_PUT, or -1 */
        bool in_done;       /* EOF sent */
        int out_fd;         /* where stdout / FILE_GET goes, or -1 (hash only) */
        bool out_eof, err_eof, exited, done;
        int status, sig;
        int error;
        uint64_t out_bytes, in_bytes;
        struct sha256_ctx out_hash, in_hash;
        double started, finished;
        /* --rate: bytes received but not yet "consumed" */
        double rate;
        double rate_t0;
        uint64_t rate_consumed;
        uint64_t disconnect_after, stall_after;
        double kill_at;
        int kill_sig;
};

static struct job *jobs[JOBS_MAX];
static size_t n_jobs;
static uint32_t next_id = 1;
static struct vmgr_agent_info last_info;
static bool have_info;
static char info_strings[65536];
static unsigned info_count;

/* logs: what to print and when to stop */
static bool logs_print;
static const char *logs_until;
static bool logs_until_seen;
static unsigned logs_seen;
static double logs_last;

static struct job *job_new(int kind) {
        struct job *j = calloc(1, sizeof(*j));
        if (!j || n_jobs >= JOBS_MAX)
                die("too many jobs");
        j->kind = kind;
        j->id = next_id++;
        j->in_fd = j->out_fd = -1;
        j->started = now();
        sha256_init(&j->out_hash);
        sha256_init(&j->in_hash);
        vmgr_agent_send_window_init(&j->in_w, C.agent_window);
        vmgr_agent_recv_window_init(&j->out_w, opt_window);
        vmgr_agent_recv_window_init(&j->err_w, opt_window);
        jobs[n_jobs++] = j;
        return j;
}

static bool job_finished(const struct job *j) {
        if (j->error)
                return true;
        if (j->kind == JOB_EXEC)
                return j->exited && (!j->out_stream || j->out_eof) && (!j->err_stream || j->err_eof);
        return j->done;
}

static struct job *job_by_stream(uint32_t stream, int *which) {
        for (size_t i = 0; i < n_jobs; i++) {
                struct job *j = jobs[i];
                if (stream == j->out_stream)
                        return *which = 1, j;
                if (stream == j->err_stream)
                        return *which = 2, j;
                if (stream == j->in_stream)
                        return *which = 0, j;
        }
        return NULL;
}

static struct job *job_by_id(uint32_t id) {
        for (size_t i = 0; i < n_jobs; i++)
                if (jobs[i]->id == id)
                        return jobs[i];
        return NULL;
}

static void start_exec(struct job *j, char **argv, bool with_stdin, bool with_output) {
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_EXEC, .id = j->id };
        size_t argc = 0;

        while (argv[argc])
                argc++;
        if (argc > VMGR_AGENT_ARGS_MAX)
                die("too many arguments");
        /* Stream ids: job id * 4 + 1..3, never reused within a session. */
        if (with_stdin)
                j->in_stream = j->id * 4 + 1;
        if (with_output) {
                j->out_stream = j->id * 4 + 2;
                j->err_stream = j->id * 4 + 3;
        }
        m.exec.stdin_stream = j->in_stream;
        m.exec.stdout_stream = j->out_stream;
        m.exec.stderr_stream = j->err_stream;
        m.exec.cwd = "";
        m.exec.argc = argc;
        for (size_t i = 0; i < argc; i++)
                m.exec.argv[i] = argv[i];
        send_msg(&m);
}

/* Send DATA from j's input fd while there is credit; EOF at its end. */
static void job_feed(struct job *j) {
        static uint8_t buf[VMGR_AGENT_DATA_MAX];

        while (j->in_fd >= 0 && !j->in_done && C.out_len < 4 * VMGR_AGENT_WIRE_MAX) {
                size_t want = vmgr_agent_send_window_take(&j->in_w, sizeof(buf));
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_DATA, .id = j->in_stream };
                ssize_t n;

                if (want == 0)
                        return;
                n = read(j->in_fd, buf, want);
                if (n < 0) {
                        j->in_w.credit += (uint32_t) want;
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        die("reading input: %m");
                }
                j->in_w.credit += (uint32_t) (want - (size_t) n);
                if (n == 0) {
                        struct vmgr_agent_msg eof = { .type = VMGR_AGENT_EOF, .id = j->in_stream };
                        send_msg(&eof);
                        j->in_done = true;
                        return;
                }
                sha256_update(&j->in_hash, (size_t) n, buf);
                j->in_bytes += (uint64_t) n;
                m.data = (struct vmgr_agent_data) { buf, (size_t) n };
                send_msg(&m);
        }
}

static void grant(uint32_t stream, uint32_t inc) {
        struct vmgr_agent_msg w = { .type = VMGR_AGENT_WINDOW, .id = stream, .window = inc };
        if (inc > 0)
                send_msg(&w);
}

/* --rate: consume what the rate allows so far, granting it back. */
static void job_rate_consume(struct job *j) {
        uint64_t allowed;
        size_t n;

        if (j->rate <= 0)
                return;
        allowed = (uint64_t) ((now() - j->rate_t0) * j->rate);
        if (allowed <= j->rate_consumed)
                return;
        n = j->out_w.buffered;
        if (n > allowed - j->rate_consumed)
                n = (size_t) (allowed - j->rate_consumed);
        j->rate_consumed += n;
        grant(j->out_stream, vmgr_agent_recv_window_consume(&j->out_w, n));
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

static void on_data(const struct vmgr_agent_msg *m) {
        int which;
        struct job *j = job_by_stream(m->id, &which);
        struct vmgr_agent_recv_window *w;

        if (!j || which == 0)
                die("DATA on unknown stream %u", m->id);
        w = which == 1 ? &j->out_w : &j->err_w;
        if (vmgr_agent_recv_window_receive(w, m->data.size) < 0)
                die("agent sent beyond its credit on stream %u", m->id);
        if (which == 2) {
                write_all(STDERR_FILENO, m->data.data, m->data.size);
                grant(m->id, vmgr_agent_recv_window_consume(w, m->data.size));
                return;
        }
        j->out_bytes += m->data.size;
        sha256_update(&j->out_hash, m->data.size, m->data.data);
        if (j->out_fd >= 0)
                write_all(j->out_fd, m->data.data, m->data.size);
        if (j->rate > 0)
                job_rate_consume(j);
        else
                grant(m->id, vmgr_agent_recv_window_consume(w, m->data.size));
        if (j->stall_after && j->out_bytes >= j->stall_after) {
                /* Stop reading with a large window granted: QEMU's writes to
                 * the socket back up. Then hang up. */
                sleep(2);
                close(C.fd);
                printf("stalled and disconnected after %" PRIu64 " bytes\n", j->out_bytes);
                exit(0);
        }
        if (j->disconnect_after && j->out_bytes >= j->disconnect_after) {
                /* Hang up mid-stream, with half a frame on the wire. */
                static const uint8_t half[] = { 0x05, 'v', 'm', 'A' };
                conn_flush();
                (void) write(C.fd, half, sizeof(half));
                close(C.fd);
                printf("disconnected after %" PRIu64 " bytes\n", j->out_bytes);
                exit(0);
        }
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

static void on_log(const struct vmgr_agent_log *l) {
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

static void handle(const struct vmgr_agent_msg *m) {
        struct job *j;
        int which;

        if (!C.established) {
                if (m->type == VMGR_AGENT_ERROR && m->id == 0 && m->error.error == EPROTONOSUPPORT)
                        die("agent refused the session: %s", m->error.message);
                if (m->type != VMGR_AGENT_HELLO)
                        return; /* left over from an earlier session */
                if (m->hello.nonce == 0) {
                        /* The agent (re)started after our HELLO went out: again. */
                        send_hello();
                        return;
                }
                if (m->hello.nonce != C.nonce)
                        return;
                if (m->hello.version_min != m->hello.version_max)
                        die("agent did not choose a version");
                C.established = true;
                C.agent_window = m->hello.initial_window;
                return;
        }

        switch (m->type) {
        case VMGR_AGENT_HELLO:
                die("agent restarted (HELLO with nonce %" PRIu64 ")", m->hello.nonce);
        case VMGR_AGENT_INFO: {
                /* Keep a copy: strings point into the decoder's frame. */
                size_t off = 0;
                last_info = m->info;
#define KEEP(p)                                                                  \
        do {                                                                     \
                size_t _n = strlen(p) + 1;                                       \
                if (off + _n > sizeof(info_strings))                             \
                        die("INFO too large");                                   \
                memcpy(info_strings + off, (p), _n);                             \
                (p) = info_strings + off;                                        \
                off += _n;                                                       \
        } while (0)
                KEEP(last_info.hostname);
                KEEP(last_info.kernel);
                KEEP(last_info.boot_id);
                for (size_t i = 0; i < last_info.n_links; i++)
                        KEEP(last_info.links[i].name);
#undef KEEP
                have_info = true;
                info_count++;
                return;
        }
        case VMGR_AGENT_DATA:
                return on_data(m);
        case VMGR_AGENT_WINDOW:
                j = job_by_stream(m->id, &which);
                if (j && which == 0 && vmgr_agent_send_window_grant(&j->in_w, m->window) < 0)
                        die("WINDOW overflow on stream %u", m->id);
                return;
        case VMGR_AGENT_EOF:
                j = job_by_stream(m->id, &which);
                if (!j)
                        die("EOF on unknown stream %u", m->id);
                if (which == 1)
                        j->out_eof = true;
                else if (which == 2)
                        j->err_eof = true;
                if (job_finished(j))
                        j->finished = now();
                return;
        case VMGR_AGENT_EXIT:
                j = job_by_id(m->id);
                if (!j)
                        die("EXIT for unknown process %u", m->id);
                j->exited = true;
                j->status = m->exit.status;
                j->sig = m->exit.signal;
                if (job_finished(j))
                        j->finished = now();
                return;
        case VMGR_AGENT_DONE:
                j = job_by_id(m->id);
                if (!j)
                        die("DONE for unknown request %u", m->id);
                j->done = true;
                j->finished = now();
                return;
        case VMGR_AGENT_ERROR:
                if (m->id == 0)
                        die("agent ended the session: %s", m->error.message);
                j = job_by_id(m->id);
                fprintf(stderr, "vmgr-agent-client: request %u failed: %s\n", m->id, m->error.message);
                if (j) {
                        j->error = m->error.error;
                        j->finished = now();
                }
                return;
        case VMGR_AGENT_LOG:
                return on_log(&m->log);
        case VMGR_AGENT_PONG:
        default:
                return;
        }
}

/* One round of I/O: wait up to timeout_ms for the socket, read and handle
 * what came, feed inputs, flush. */
static void conn_step(int timeout_ms) {
        struct pollfd p = { .fd = C.fd, .events = POLLIN };
        int r;

        for (size_t i = 0; i < n_jobs; i++) {
                if (C.established)
                        job_feed(jobs[i]);
                job_rate_consume(jobs[i]);
                if (jobs[i]->kill_at > 0 && now() >= jobs[i]->kill_at) {
                        struct vmgr_agent_msg k = { .type = VMGR_AGENT_KILL, .id = jobs[i]->id,
                                                    .kill = { (uint32_t) jobs[i]->kill_sig, 0 } };
                        send_msg(&k);
                        jobs[i]->kill_at = 0;
                }
                if (jobs[i]->rate > 0 || jobs[i]->kill_at > 0)
                        timeout_ms = timeout_ms < 0 || timeout_ms > 10 ? 10 : timeout_ms;
        }
        conn_flush();
        if (C.out_len > 0)
                p.events |= POLLOUT;
        if (now() > deadline)
                die("timed out");
        r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno != EINTR)
                die("poll: %m");
        if (r <= 0)
                return;
        if (p.revents & POLLOUT)
                conn_flush();
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                for (;;) {
                        size_t room;
                        void *s = vmgr_agent_decoder_space(C.dec, &room);
                        ssize_t n = read(C.fd, s, room);
                        const struct vmgr_agent_msg *m;
                        const char *why;

                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        break;
                                die("read: %m");
                        }
                        if (n == 0)
                                die("the agent's socket closed");
                        vmgr_agent_decoder_advance(C.dec, (size_t) n);
                        while ((r = vmgr_agent_decoder_next(C.dec, &m, &why)) != 0) {
                                if (r < 0) {
                                        if (C.established)
                                                die("bad frame from the agent: %s", why);
                                        continue;
                                }
                                handle(m);
                        }
                }
        }
}

static void handshake(void) {
        conn_open();
        while (!C.established || !have_info)
                conn_step(1000);
}

static bool all_finished(void) {
        for (size_t i = 0; i < n_jobs; i++)
                if (!job_finished(jobs[i]))
                        return false;
        return true;
}

static void hash_hex(struct sha256_ctx *ctx, char out[65]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_digest(ctx, sizeof(d), d);
        for (size_t i = 0; i < sizeof(d); i++)
                sprintf(out + 2 * i, "%02x", d[i]);
}

static int job_exit_code(const struct job *j) {
        if (j->error)
                return 127;
        return j->sig ? 128 + j->sig : j->status;
}

/* --- commands ------------------------------------------------------------- */

static int cmd_hello(void) {
        print_info(stdout, &last_info);
        return 0;
}

static int cmd_wait_addr(const char *ifname, const char *prefix, char **argv) {
        unsigned seen = 0;
        double t0 = now();

        if (argv) {
                /* Change something first (ip addr add ...), in this session. */
                struct job *j = job_new(JOB_EXEC);
                start_exec(j, argv, false, true);
                while (!job_finished(j))
                        conn_step(1000);
                if (job_exit_code(j) != 0)
                        die("%s failed", argv[0]);
                seen = info_count;
        }
        for (;;) {
                for (size_t i = 0; i < last_info.n_addrs; i++) {
                        const struct vmgr_agent_addr *a = &last_info.addrs[i];
                        char t[80];
                        addr_text(a, t, sizeof(t));
                        if (streq(link_name(&last_info, a->ifindex), ifname) && strncmp(t, prefix, strlen(prefix)) == 0 &&
                            !(a->flags & 0x40)) {
                                printf("%s %s (%u INFO updates, %.0f ms)\n", ifname, t, info_count - seen,
                                       (now() - t0) * 1000);
                                return 0;
                        }
                }
                conn_step(1000);
        }
}

static int cmd_exec(int argc, char **argv) {
        bool with_stdin = false, hash = false;
        struct job *j;
        double rate = 0;
        uint64_t disconnect_after = 0, stall_after = 0;
        int kill_ms = 0, kill_sig = 0, i;

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

        j = job_new(JOB_EXEC);
        if (with_stdin) {
                j->in_fd = STDIN_FILENO;
                vmgr_agent_send_window_init(&j->in_w, C.agent_window);
        }
        j->out_fd = hash ? -1 : STDOUT_FILENO;
        j->rate = rate;
        j->rate_t0 = now();
        j->disconnect_after = disconnect_after;
        j->stall_after = stall_after;
        if (kill_ms > 0) {
                j->kill_at = now() + kill_ms / 1000.0;
                j->kill_sig = kill_sig;
        }
        start_exec(j, argv + i + 1, with_stdin, true);
        while (!all_finished())
                conn_step(1000);
        if (j->error)
                return 127;
        if (hash) {
                char hex[65];
                hash_hex(&j->out_hash, hex);
                printf("%" PRIu64 " %s\n", j->out_bytes, hex);
        }
        if (j->sig)
                fprintf(stderr, "vmgr-agent-client: killed by signal %d\n", j->sig);
        return job_exit_code(j);
}

static int cmd_parallel(unsigned n, char **argv) {
        unsigned ok = 0;
        double t0 = now();

        for (unsigned i = 0; i < n; i++)
                start_exec(job_new(JOB_EXEC), argv, false, true);
        while (!all_finished())
                conn_step(1000);
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
        /* Sequential: round-trip latency, EXEC to EXIT. */
        for (unsigned i = 0; i < n; i++) {
                struct job *j = job_new(JOB_EXEC);
                start_exec(j, argv, false, false);
                while (!job_finished(j))
                        conn_step(1000);
                if (job_exit_code(j) != 0)
                        die("true failed");
                lat[i] = (j->finished - j->started) * 1000;
                free(jobs[--n_jobs]);
        }
        qsort(lat, n, sizeof(double), cmp_double);
        printf("exec true latency: median %.1f ms, p99 %.1f ms, min %.1f ms, max %.1f ms (%u runs)\n", lat[n / 2],
               lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], lat[0], lat[n - 1], n);

        /* Throughput: 20 in flight. */
        t0 = now();
        while (done < n) {
                while (started < n && n_jobs < 20) {
                        start_exec(job_new(JOB_EXEC), argv, false, false);
                        started++;
                }
                conn_step(1000);
                for (size_t i = 0; i < n_jobs; i++)
                        if (job_finished(jobs[i])) {
                                if (job_exit_code(jobs[i]) != 0)
                                        die("true failed");
                                free(jobs[i]);
                                jobs[i--] = jobs[--n_jobs];
                                done++;
                        }
        }
        printf("exec true throughput: %.1f runs/s (%u runs, 20 in flight)\n", n / (now() - t0), n);
        free(lat);
        return 0;
}

static int cmd_put(const char *local, const char *remote, const char *mode) {
        struct job *j = job_new(JOB_PUT);
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_FILE_PUT, .id = j->id };
        char hex[65];

        j->in_fd = open(local, O_RDONLY | O_CLOEXEC);
        if (j->in_fd < 0)
                die("cannot open %s: %m", local);
        j->in_stream = j->id * 4 + 1;
        m.file = (struct vmgr_agent_file) { j->in_stream, (uint32_t) strtoul(mode, NULL, 8), 0, remote };
        send_msg(&m);
        while (!all_finished())
                conn_step(1000);
        if (j->error)
                return 1;
        hash_hex(&j->in_hash, hex);
        printf("%" PRIu64 " %s\n", j->in_bytes, hex);
        return 0;
}

static int cmd_get(const char *remote, const char *local) {
        struct job *j = job_new(JOB_GET);
        struct vmgr_agent_msg m = { .type = VMGR_AGENT_FILE_GET, .id = j->id };
        char hex[65];

        j->out_fd = open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (j->out_fd < 0)
                die("cannot create %s: %m", local);
        j->out_stream = j->id * 4 + 2;
        m.file = (struct vmgr_agent_file) { j->out_stream, 0, 0, remote };
        send_msg(&m);
        while (!all_finished() || !j->out_eof) {
                if (j->error)
                        return 1;
                conn_step(1000);
        }
        hash_hex(&j->out_hash, hex);
        printf("%" PRIu64 " %s\n", j->out_bytes, hex);
        return 0;
}

/* Leave the agent mid-frame with a process running: the next session must
 * come up anyway, and the process must be gone. */
static int cmd_garbage(void) {
        char *argv[] = { "sleep", "1000", NULL };
        static const uint8_t half[] = { 0x07, 'v', 'm', 'A', 'G', 0x03 };

        start_exec(job_new(JOB_EXEC), argv, true, true);
        conn_flush();
        send_bytes(half, sizeof(half));
        conn_flush();
        usleep(200000);
        close(C.fd);
        printf("left a half frame and a running sleep behind\n");
        return 0;
}

static int cmd_ping(unsigned n) {
        double *rtt = calloc(n ? n : 1, sizeof(double));

        for (unsigned i = 0; i < n; i++) {
                struct job *j = job_new(JOB_EXEC); /* just an id and a clock */
                struct vmgr_agent_msg m = { .type = VMGR_AGENT_PING, .id = j->id, .ping = { 42 } };
                send_msg(&m);
                /* A PONG marks the job done through handle(): reuse DONE's path. */
                while (!j->done) {
                        struct pollfd p = { .fd = C.fd, .events = POLLIN };
                        const struct vmgr_agent_msg *r;
                        const char *why;
                        size_t room;
                        void *s;
                        ssize_t k;

                        conn_flush();
                        if (poll(&p, 1, 1000) <= 0) {
                                if (now() > deadline)
                                        die("timed out");
                                continue;
                        }
                        s = vmgr_agent_decoder_space(C.dec, &room);
                        k = read(C.fd, s, room);
                        if (k <= 0)
                                die("read failed");
                        vmgr_agent_decoder_advance(C.dec, (size_t) k);
                        while (vmgr_agent_decoder_next(C.dec, &r, &why) > 0)
                                if (r->type == VMGR_AGENT_PONG && r->id == j->id && r->ping.payload == 42)
                                        j->done = true;
                }
                rtt[i] = (now() - j->started) * 1000;
                free(jobs[--n_jobs]);
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
                print_info(f, &last_info);
        }
        if (i + 1 < argc) {
                j = job_new(JOB_EXEC);
                j->out_fd = STDERR_FILENO;
                start_exec(j, argv + i + 1, false, true);
        }
        for (;;) {
                bool job_done = !j || job_finished(j);

                if (j && job_done && job_exit_code(j) != 0)
                        die("%s failed", argv[i + 1]);
                if (job_done && logs_until && logs_until_seen)
                        return 0;
                if (count > 0 && logs_seen >= count)
                        return 0;
                if (job_done && idle > 0 && now() - logs_last >= idle)
                        return 0;
                conn_step(50);
        }
}

static int cmd_power(bool reboot) {
        struct job *j = job_new(JOB_PUT);
        struct vmgr_agent_msg m = { .type = reboot ? VMGR_AGENT_REBOOT : VMGR_AGENT_SHUTDOWN, .id = j->id };

        send_msg(&m);
        while (!all_finished())
                conn_step(1000);
        return j->error ? 1 : 0;
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
        else if (streq(cmd, "shutdown") || streq(cmd, "reboot"))
                r = cmd_power(streq(cmd, "reboot"));
        else
                die("unknown command or wrong arguments: %s", cmd);
        if (opt_stats)
                print_stats();
        return r;
}
