/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/agent-session.c's entry points for clients other than vmgrd (the
 * agent's test client and the benchmark), against a fake agent on the
 * other end of a socketpair: attach() greets at once with what
 * set_hello() offers and vmgrd's defaults stay as they were; the message
 * handler sees every message, also an ERROR before the session is up that
 * the session itself ignores; ping() sends a PING whose PONG reaches the
 * handler; REBOOT goes out as asked; a FILE_PUT whose source cannot be
 * read fails and never sends the EOF that would put a partial file in
 * place; when an attached connection ends,
 * its jobs fail and nothing connects again; an agent that answers
 * HELLO with a version it was not offered gets no session; IDENTITY goes
 * out as given, completes on DONE, ERROR or the session's loss, is refused
 * in a version 1 session, and the next INFO's generation is kept.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-session.h"
#include "macro.h"
#include "test.h"

static sd_event *event;
static int agent_fd = -EBADF; /* the fake agent's end */
/* A socket listening at the sessions' path: were an attached session to
 * connect again by itself, it would get through. */
static struct sockaddr_un listen_addr = { .sun_family = AF_UNIX };
static int listen_fd = -EBADF;
static struct vmgr_agent_decoder *decoder;

static unsigned n_messages, n_changed;
static struct vmgr_agent_msg last_message; /* type, id and the fixed fields only */
static bool job_done;
static int job_error;

static void on_message(AgentSession *s, const struct vmgr_agent_msg *m, void *userdata) {
        n_messages++;
        last_message = *m;
}

static void on_changed(AgentSession *s, void *userdata) {
        n_changed++;
}

static void on_job_done(AgentJob *j, void *userdata) {
        job_done = true;
        job_error = agent_job_result(j)->error;
}

/* Turn the loop for about usec. */
static void run_for(uint64_t usec) {
        uint64_t start, t;

        CHECK(sd_event_now(event, CLOCK_MONOTONIC, &start) >= 0);
        for (;;) {
                CHECK(sd_event_run(event, usec / 10) >= 0);
                CHECK(sd_event_now(event, CLOCK_MONOTONIC, &t) >= 0);
                if (t - start >= usec)
                        return;
        }
}

/* The next message the session sent the fake agent (the loop turns meanwhile). */
static const struct vmgr_agent_msg *agent_receive(void) {
        for (int i = 0; i < 200; i++) {
                const struct vmgr_agent_msg *m;
                const char *why;
                size_t size;
                void *space;
                ssize_t n;
                int r = vmgr_agent_decoder_next(decoder, &m, &why);

                if (r > 0)
                        return m;
                if (r < 0)
                        continue;
                CHECK(sd_event_run(event, 10000) >= 0);
                space = vmgr_agent_decoder_space(decoder, &size);
                n = read(agent_fd, space, size);
                if (n > 0)
                        vmgr_agent_decoder_advance(decoder, (size_t) n);
                else
                        CHECK(n < 0 && errno == EAGAIN);
        }
        CHECK(!"the session sent nothing");
        return NULL;
}

/* Check that the session sends the fake agent nothing for about 100 ms. */
static void agent_expect_nothing(void) {
        const struct vmgr_agent_msg *m;
        const char *why;

        run_for(100000);
        for (;;) {
                size_t size;
                void *space = vmgr_agent_decoder_space(decoder, &size);
                ssize_t n = read(agent_fd, space, size);

                if (n < 0 && errno == EAGAIN)
                        break;
                CHECK(n > 0);
                vmgr_agent_decoder_advance(decoder, (size_t) n);
        }
        CHECK(vmgr_agent_decoder_next(decoder, &m, &why) == 0);
}

static void agent_send(const struct vmgr_agent_msg *m) {
        static uint8_t buf[VMGR_AGENT_WIRE_MAX];
        int n = vmgr_agent_msg_encode(m, buf, sizeof(buf));

        CHECK(n > 0);
        CHECK(write(agent_fd, buf, (size_t) n) == n);
        run_for(20000);
}

/* A session attached to a new socketpair; its HELLO, as the agent got it, in *hello. */
static AgentSession *attach_new(bool offer, struct vmgr_agent_hello *hello, uint64_t *nonce) {
        const struct vmgr_agent_msg *m;
        AgentSession *s;
        int sv[2];

        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        agent_fd = safe_close(agent_fd);
        agent_fd = sv[1];
        CHECK(fcntl(agent_fd, F_SETFL, O_NONBLOCK) == 0);
        vmgr_agent_decoder_reset(decoder);
        CHECK(agent_session_new(event, listen_addr.sun_path, on_changed, NULL, &s) == 0);
        if (offer)
                agent_session_set_hello(s, 1, 1, 65536, "test-client");
        agent_session_set_message_handler(s, on_message);
        CHECK(!agent_session_has_connection(s));
        CHECK(agent_session_attach(s, sv[0]) == 0);
        CHECK(agent_session_has_connection(s));
        CHECK(!agent_session_is_connected(s));
        /* As the agent does: a lone 0x00 first, which puts a reader in step. */
        CHECK(write(agent_fd, "", 1) == 1);
        m = agent_receive();
        CHECK(m->type == VMGR_AGENT_HELLO);
        *hello = m->hello;
        *nonce = m->hello.nonce;
        return s;
}

static const uint8_t test_entropy[VMGR_AGENT_ENTROPY_MIN] = { 42 };

static struct vmgr_agent_identity test_identity(void) {
        return (struct vmgr_agent_identity) {
                .generation = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 },
                .realtime_nsec = 1,
                .hostname = "clone",
                .n_nics = 1,
                .nics = { { .pci_slot = "0000:02:00.0", .mac = { 0x52, 0x54, 0, 0, 0, 2 },
                            .family = VMGR_AGENT_FAMILY_IPV4, .prefixlen = 24, .address = { 10, 0, 0, 2 },
                            .gateway = { 10, 0, 0, 1 } } },
                .entropy_size = sizeof(test_entropy),
                .entropy = test_entropy,
        };
}

/* IDENTITY from the host side: only in a version 2 session, sent as given,
 * finished by DONE, ERROR or the session's loss; INFO's generation kept. */
static void test_identity_jobs(void) {
        struct vmgr_agent_identity id = test_identity();
        struct vmgr_agent_hello hello;
        const struct vmgr_agent_msg *m;
        struct vmgr_agent_msg info = { .type = VMGR_AGENT_INFO };
        AgentSession *s;
        AgentJob *j;
        uint64_t nonce;

        /* A version 1 agent: refused before anything is sent (it would drop
         * the unknown type and never answer). */
        s = attach_new(false, &hello, &nonce);
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_HELLO,
                                              .hello = { 1, 1, 1U << 20, nonce, "old-agent" } });
        CHECK(agent_session_is_connected(s));
        CHECK(agent_session_version(s) == 1);
        CHECK(agent_job_new(s, AGENT_JOB_IDENTITY, on_job_done, NULL, &j) == 0);
        CHECK(agent_job_start_identity(j, &id) == -EOPNOTSUPP);
        j = agent_job_free(j);
        agent_expect_nothing();
        s = agent_session_free(s);

        /* Version 2. */
        s = attach_new(false, &hello, &nonce);
        CHECK(hello.version_max >= VMGR_AGENT_VERSION_IDENTITY);
        CHECK(agent_session_version(s) == 0);
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_HELLO,
                                              .hello = { 2, 2, 1U << 20, nonce, "fake-agent" } });
        CHECK(agent_session_version(s) == 2);
        info.info = (struct vmgr_agent_info) { .version = 2, .hostname = "template", .kernel = "k", .boot_id = "" };
        agent_send(&info);
        CHECK(agent_session_info(s));
        CHECK(memcmp(agent_session_info(s)->generation, (uint8_t[VMGR_AGENT_GENERATION_SIZE]) { 0 },
                     VMGR_AGENT_GENERATION_SIZE) == 0);

        /* A job of another kind, and an identity that breaks a rule: refused. */
        CHECK(agent_job_new(s, AGENT_JOB_SHUTDOWN, on_job_done, NULL, &j) == 0);
        CHECK(agent_job_start_identity(j, &id) == -EINVAL);
        j = agent_job_free(j);
        CHECK(agent_job_new(s, AGENT_JOB_IDENTITY, on_job_done, NULL, &j) == 0);
        id.hostname = "bad name";
        CHECK(agent_job_start_identity(j, &id) == -EINVAL);
        j = agent_job_free(j);
        agent_expect_nothing();
        id = test_identity();

        /* Sent as given; DONE finishes it; the next INFO has the generation. */
        CHECK(agent_job_new(s, AGENT_JOB_IDENTITY, on_job_done, NULL, &j) == 0);
        job_done = false;
        CHECK(agent_job_start_identity(j, &id) == 0);
        m = agent_receive();
        CHECK(m->type == VMGR_AGENT_IDENTITY && m->id != 0);
        CHECK(memcmp(m->identity.generation, id.generation, sizeof(id.generation)) == 0);
        CHECK_STREQ(m->identity.hostname, "clone");
        CHECK(m->identity.n_nics == 1 && m->identity.nics[0].address[3] == 2);
        CHECK(m->identity.entropy_size == sizeof(test_entropy) && m->identity.entropy[0] == 42);
        CHECK(!job_done);
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_DONE, .id = m->id });
        CHECK(job_done && job_error == 0);
        j = agent_job_free(j);
        memcpy(info.info.generation, id.generation, sizeof(id.generation));
        info.info.hostname = "clone";
        agent_send(&info);
        CHECK_STREQ(agent_session_info(s)->hostname, "clone");
        CHECK(memcmp(agent_session_info(s)->generation, id.generation, sizeof(id.generation)) == 0);

        /* ERROR: the job fails with the agent's errno and sentence. */
        CHECK(agent_job_new(s, AGENT_JOB_IDENTITY, on_job_done, NULL, &j) == 0);
        job_done = false;
        CHECK(agent_job_start_identity(j, &id) == 0);
        m = agent_receive();
        CHECK(m->type == VMGR_AGENT_IDENTITY);
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_ERROR, .id = m->id,
                                              .error = { ENODEV, "no NIC in PCI slot 0000:02:00.0" } });
        CHECK(job_done && job_error == -ENODEV);
        CHECK_STREQ(agent_job_result(j)->message, "no NIC in PCI slot 0000:02:00.0");
        j = agent_job_free(j);

        /* The session lost while the agent applies it: the job fails. */
        CHECK(agent_job_new(s, AGENT_JOB_IDENTITY, on_job_done, NULL, &j) == 0);
        job_done = false;
        CHECK(agent_job_start_identity(j, &id) == 0);
        m = agent_receive();
        CHECK(m->type == VMGR_AGENT_IDENTITY);
        agent_fd = safe_close(agent_fd);
        run_for(50000);
        CHECK(job_done && job_error == -ECONNRESET);
        CHECK(!agent_session_info(s) && agent_session_version(s) == 0);
        j = agent_job_free(j);
        s = agent_session_free(s);
}

int main(void) {
        struct vmgr_agent_hello hello;
        const struct vmgr_agent_msg *m;
        AgentSession *s;
        AgentJob *j;
        uint64_t nonce;
        int sv[2];

        char dir[] = "/tmp/test-agent-session-XXXXXX";

        CHECK(sd_event_new(&event) >= 0);
        CHECK(vmgr_agent_decoder_new(&decoder) == 0);
        CHECK(mkdtemp(dir));
        snprintf(listen_addr.sun_path, sizeof(listen_addr.sun_path), "%s/agent.sock", dir);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CHECK(listen_fd >= 0);
        CHECK(bind(listen_fd, (struct sockaddr *) &listen_addr, sizeof(listen_addr)) == 0);
        CHECK(listen(listen_fd, 8) == 0);

        /* vmgrd's defaults: what its HELLO offered before these entry points. */
        s = attach_new(false, &hello, &nonce);
        CHECK(hello.version_min == VMGR_AGENT_VERSION_MIN);
        CHECK(hello.version_max == VMGR_AGENT_VERSION_MAX);
        CHECK(hello.initial_window == AGENT_SESSION_WINDOW);
        CHECK_STREQ(hello.software, "vmgrd");
        CHECK(nonce & 1);
        s = agent_session_free(s);

        /* What set_hello() offers. */
        s = attach_new(true, &hello, &nonce);
        CHECK(hello.version_min == 1 && hello.version_max == 1);
        CHECK(hello.initial_window == 65536);
        CHECK_STREQ(hello.software, "test-client");

        /* An ERROR about the session before it is up: the session ignores it,
         * the handler sees it. */
        n_messages = 0;
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_ERROR,
                                              .error = { EPROTONOSUPPORT, "not this version" } });
        CHECK(n_messages == 1 && last_message.type == VMGR_AGENT_ERROR && last_message.id == 0);
        CHECK(agent_session_has_connection(s) && !agent_session_is_connected(s));
        CHECK(agent_session_ping(s, 1, 2) == -ENOTCONN);

        /* The agent's answer: up, and changed heard of it. */
        n_changed = 0;
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_HELLO,
                                              .hello = { 1, 1, 1U << 20, nonce, "fake-agent" } });
        CHECK(agent_session_is_connected(s));
        CHECK(n_changed == 1);
        CHECK(last_message.type == VMGR_AGENT_HELLO);

        /* PING on demand; the PONG reaches the handler. */
        CHECK(agent_session_ping(s, 7, 99) == 0);
        m = agent_receive();
        CHECK(m->type == VMGR_AGENT_PING && m->id == 7 && m->ping.payload == 99);
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_PONG, .id = 7, .ping = { 99 } });
        CHECK(last_message.type == VMGR_AGENT_PONG && last_message.id == 7 && last_message.ping.payload == 99);

        /* REBOOT, answered with DONE. */
        CHECK(agent_job_new(s, AGENT_JOB_SHUTDOWN, on_job_done, NULL, &j) == 0);
        CHECK(agent_job_start_reboot(j) == 0);
        m = agent_receive();
        CHECK(m->type == VMGR_AGENT_REBOOT && m->id != 0);
        job_done = false;
        agent_send(&(struct vmgr_agent_msg) { .type = VMGR_AGENT_DONE, .id = m->id });
        CHECK(job_done && job_error == 0);
        j = agent_job_free(j);

        /* A FILE_PUT's source that is a directory or not open for reading:
         * refused before anything goes to the agent. One that fails part-way
         * (a socket whose peer left with bytes unread: ECONNRESET after the
         * data) fails the job, and no EOF follows the data, since EOF makes
         * the agent move its partial file over the target. */
        {
                int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                CHECK(fd >= 0);
                CHECK(agent_job_new(s, AGENT_JOB_PUT, on_job_done, NULL, &j) == 0);
                CHECK(agent_job_set_fd(j, AGENT_STREAM_IN, fd) == -EISDIR);
                CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF); /* taken over, closed */
                j = agent_job_free(j);
                fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                CHECK(fd >= 0);
                CHECK(agent_job_new(s, AGENT_JOB_PUT, on_job_done, NULL, &j) == 0);
                CHECK(agent_job_set_fd(j, AGENT_STREAM_IN, fd) == -EBADF);
                j = agent_job_free(j);
                agent_expect_nothing();

                CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
                CHECK(write(sv[1], "0123456789", 10) == 10);
                CHECK(write(sv[0], "x", 1) == 1);
                safe_close(sv[1]);
                CHECK(agent_job_new(s, AGENT_JOB_PUT, on_job_done, NULL, &j) == 0);
                CHECK(agent_job_set_fd(j, AGENT_STREAM_IN, sv[0]) == 0);
                job_done = false;
                CHECK(agent_job_start_file(j, "/tmp/x", 0644) == 0);
                m = agent_receive();
                CHECK(m->type == VMGR_AGENT_FILE_PUT);
                m = agent_receive();
                CHECK(m->type == VMGR_AGENT_DATA && m->data.size == 10);
                agent_expect_nothing();
                CHECK(job_done && job_error == -ECONNRESET);
                CHECK_STREQ(agent_job_result(j)->message, "cannot read the file to copy: Connection reset by peer");
                j = agent_job_free(j);
        }

        /* A job in flight when the agent's end goes away: it fails, the
         * session ends and nothing is connected again. */
        CHECK(agent_job_new(s, AGENT_JOB_EXEC, on_job_done, NULL, &j) == 0);
        CHECK(agent_job_start_exec(j, (char *[]) { "sleep", "1", NULL }, NULL, NULL) == 0);
        m = agent_receive();
        CHECK(m->type == VMGR_AGENT_EXEC);
        job_done = false;
        n_changed = 0;
        agent_fd = safe_close(agent_fd);
        run_for(50000);
        CHECK(job_done && job_error == -ECONNRESET);
        CHECK(n_changed == 1);
        CHECK(!agent_session_is_connected(s) && !agent_session_has_connection(s));
        run_for(300000); /* longer than start()'s first retry (50 ms) */
        CHECK(!agent_session_has_connection(s));
        CHECK(accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC) < 0 && errno == EAGAIN);
        j = agent_job_free(j);

        /* An agent that answers HELLO with a version it was not offered (or
         * with a range instead of one): no session, and the connection is
         * dropped. */
        {
                static const struct vmgr_agent_hello bad[] = {
                        { 2, 2, 1U << 20, 0, "fake-agent" }, /* not offered (1..1 was) */
                        { 1, 2, 1U << 20, 0, "fake-agent" }, /* not one version */
                        { 3, 3, 1U << 20, 0, "fake-agent" }, /* above */
                };

                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        AgentSession *t = attach_new(true, &hello, &nonce);
                        struct vmgr_agent_msg answer = { .type = VMGR_AGENT_HELLO, .hello = bad[i] };

                        answer.hello.nonce = nonce;
                        n_changed = 0;
                        agent_send(&answer);
                        CHECK(!agent_session_is_connected(t));
                        CHECK(n_changed == 0);
                        CHECK(!agent_session_has_connection(t));
                        agent_session_free(t);
                }
        }

        test_identity_jobs();

        /* Attaching while start() connects: refused, the fd closed. And
         * start() does connect to the path (the check above can fail). */
        agent_session_start(s);
        CHECK(agent_session_has_connection(s));
        sv[0] = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        CHECK(sv[0] >= 0);
        safe_close(sv[0]);
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        CHECK(agent_session_attach(s, sv[0]) == -EBUSY);
        CHECK(fcntl(sv[0], F_GETFD) < 0 && errno == EBADF);
        safe_close(sv[1]);
        s = agent_session_free(s);

        vmgr_agent_decoder_free(decoder);
        sd_event_unref(event);
        safe_close(listen_fd);
        CHECK(unlink(listen_addr.sun_path) == 0 && rmdir(dir) == 0);
        TEST_DONE();
}
