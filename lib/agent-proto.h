/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest agent protocol (docs/agent-protocol.md), shared by vmgr-agent in
 * the guest and by whatever talks to it on the host (vmgrd, tests).
 *
 * The transport is a byte stream: the virtio-serial port "org.vmgr.agent.0"
 * in the guest, a unix socket on the host. On it, every frame is COBS-encoded
 * and ends with one 0x00 byte, which appears nowhere else: a receiver that
 * lost track (a peer that went away mid-frame, bytes left over from an
 * earlier connection) is back in step at the next 0x00. Each side writes a
 * lone 0x00 before its HELLO, so that nothing left over can swallow it.
 *
 * A decoded frame is a 12-byte header (magic "vmAG", type, three zero bytes,
 * a 32-bit id) and a body whose layout the type fixes. Integers are
 * little-endian; strings are a 16-bit length, the bytes and a NUL (checked,
 * so decoded strings are C strings in place). Every field is checked on
 * decode and on encode by the same rules (vmgr_agent_msg_validate()).
 *
 * Streams carry bytes one way (stdin, stdout, stderr, file contents) and are
 * flow-controlled per stream by credit: a sender may have at most as many
 * DATA bytes in flight as the receiver granted (the initial window from the
 * receiver's HELLO plus its WINDOW increments), so neither side buffers more
 * than the windows it granted.
 *
 * This library does no I/O and no logging, and needs nothing but libc, so
 * that the static agent can link it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMGR_AGENT_PORT_NAME "org.vmgr.agent.0"

#define VMGR_AGENT_VERSION_MIN 1
#define VMGR_AGENT_VERSION_MAX 2
/* The first version with IDENTITY (and INFO's generation): a host must not
 * send IDENTITY in a session of an older version. */
#define VMGR_AGENT_VERSION_IDENTITY 2

#define VMGR_AGENT_MAGIC "vmAG"
#define VMGR_AGENT_HEADER_SIZE 12
/* Largest decoded frame, header included. */
#define VMGR_AGENT_FRAME_MAX 65536
/* Largest DATA payload. */
#define VMGR_AGENT_DATA_MAX (VMGR_AGENT_FRAME_MAX - VMGR_AGENT_HEADER_SIZE)
/* Largest encoded frame on the wire: COBS adds one byte per 254 and one at
 * the start, then the 0x00 delimiter. */
#define VMGR_AGENT_WIRE_MAX (VMGR_AGENT_FRAME_MAX + VMGR_AGENT_FRAME_MAX / 254 + 2)
/* Largest window a receiver may grant on one stream (like HTTP/2). */
#define VMGR_AGENT_WINDOW_MAX UINT32_C(0x7fffffff)

/* Limits that bound every decoded message. */
#define VMGR_AGENT_ARGS_MAX 256     /* EXEC argv entries */
#define VMGR_AGENT_ENV_MAX 256      /* EXEC env entries */
#define VMGR_AGENT_LINKS_MAX 64     /* INFO interfaces */
#define VMGR_AGENT_ADDRS_MAX 256    /* INFO addresses */
#define VMGR_AGENT_HWADDR_MAX 32
#define VMGR_AGENT_GENERATION_SIZE 16 /* IDENTITY's generation id, echoed in INFO */
#define VMGR_AGENT_NAME_MAX 255     /* hostname, kernel release, interface name, software */
#define VMGR_AGENT_PATH_MAX 4095    /* paths: FILE_PUT, FILE_GET, EXEC cwd */
#define VMGR_AGENT_MESSAGE_MAX 1024 /* ERROR text */
#define VMGR_AGENT_LOG_MAX 4096     /* LOG text */
#define VMGR_AGENT_SIGNAL_MAX 64

enum vmgr_agent_type {
        VMGR_AGENT_HELLO = 1,     /* both ways: version negotiation, session start */
        VMGR_AGENT_INFO = 2,      /* agent: hostname, kernel, interfaces, addresses */
        VMGR_AGENT_EXEC = 3,      /* host: start a process; id = process id */
        VMGR_AGENT_DATA = 4,      /* both: bytes on stream id */
        VMGR_AGENT_WINDOW = 5,    /* both: more credit on stream id */
        VMGR_AGENT_EOF = 6,       /* both: no more DATA on stream id */
        VMGR_AGENT_EXIT = 7,      /* agent: process id ended */
        VMGR_AGENT_KILL = 8,      /* host: signal process id */
        VMGR_AGENT_FILE_PUT = 9,  /* host: write a file from a stream; id = request */
        VMGR_AGENT_FILE_GET = 10, /* host: read a file into a stream; id = request */
        VMGR_AGENT_DONE = 11,     /* agent: request id completed */
        VMGR_AGENT_ERROR = 12,    /* agent: request id failed (0: the session) */
        VMGR_AGENT_SHUTDOWN = 13, /* host: power the guest off; id = request */
        VMGR_AGENT_REBOOT = 14,   /* host: reboot the guest; id = request */
        VMGR_AGENT_PING = 15,     /* both: id and payload come back in a PONG */
        VMGR_AGENT_PONG = 16,
        VMGR_AGENT_LOG = 17,      /* agent: a line of the guest's log (kernel, journal, agent) */
        VMGR_AGENT_IDENTITY = 18, /* host: become this machine (after a restore); id = request, DONE or ERROR */
        _VMGR_AGENT_TYPE_MAX,
};

/* EXEC flags */
#define VMGR_AGENT_EXEC_ENV_REPLACE UINT32_C(1) /* env is the whole environment, not additions */
#define _VMGR_AGENT_EXEC_FLAGS_ALL UINT32_C(1)

/* KILL flags */
#define VMGR_AGENT_KILL_GROUP UINT32_C(1)       /* signal the process group (every EXEC is a session leader) */
#define _VMGR_AGENT_KILL_FLAGS_ALL UINT32_C(1)

/* INFO address families (wire values, not AF_*). */
#define VMGR_AGENT_FAMILY_IPV4 4
#define VMGR_AGENT_FAMILY_IPV6 6

/* LOG sources */
enum vmgr_agent_log_source {
        VMGR_AGENT_LOG_KERNEL = 1,
        VMGR_AGENT_LOG_JOURNAL = 2,
        VMGR_AGENT_LOG_AGENT = 3,
};

struct vmgr_agent_hello {
        uint16_t version_min, version_max; /* the agent's reply has min == max == the chosen version */
        uint32_t initial_window;           /* credit the sender grants each stream it receives */
        uint64_t nonce;                    /* host: random; agent: the host's, or 0 when announcing itself */
        const char *software;              /* e.g. "vmgr-agent 0.1.0", may be empty */
};

struct vmgr_agent_link {
        uint32_t index;
        uint32_t flags; /* IFF_* */
        uint32_t mtu;
        uint8_t hwaddr_len;
        uint8_t hwaddr[VMGR_AGENT_HWADDR_MAX];
        const char *name;
};

struct vmgr_agent_addr {
        uint32_t ifindex; /* one of the INFO's links */
        uint8_t family;   /* VMGR_AGENT_FAMILY_* */
        uint8_t prefixlen;
        uint8_t scope;    /* RT_SCOPE_* */
        uint32_t flags;   /* IFA_F_*, e.g. IFA_F_TENTATIVE */
        uint8_t address[16]; /* IPv4: the first 4 bytes, the rest zero */
};

struct vmgr_agent_info {
        uint16_t version;
        const char *hostname;
        const char *kernel;  /* uname -r */
        const char *boot_id; /* /proc/sys/kernel/random/boot_id, or "" */
        uint8_t generation[VMGR_AGENT_GENERATION_SIZE]; /* the last IDENTITY's, all zero before one
                                                         * (then not on the wire: INFO ends after the addresses) */
        size_t n_links;
        struct vmgr_agent_link links[VMGR_AGENT_LINKS_MAX];
        size_t n_addrs;
        struct vmgr_agent_addr addrs[VMGR_AGENT_ADDRS_MAX];
};

struct vmgr_agent_exec {
        uint32_t stdin_stream, stdout_stream, stderr_stream; /* 0: /dev/null */
        uint32_t flags;                                      /* VMGR_AGENT_EXEC_* */
        const char *cwd;                                     /* "" or absolute */
        size_t argc;
        const char *argv[VMGR_AGENT_ARGS_MAX + 1];           /* NULL-terminated */
        size_t envc;
        const char *env[VMGR_AGENT_ENV_MAX + 1];             /* "NAME=VALUE", NULL-terminated */
};

struct vmgr_agent_data {
        const uint8_t *data;
        size_t size; /* 1..VMGR_AGENT_DATA_MAX */
};

struct vmgr_agent_exit {
        int32_t status; /* exit status 0..255, or -1 if killed */
        int32_t signal; /* 0, or the signal that killed it */
        bool core_dumped;
};

struct vmgr_agent_kill {
        uint32_t signal;
        uint32_t flags; /* VMGR_AGENT_KILL_* */
};

struct vmgr_agent_file {
        uint32_t stream;
        uint32_t mode;  /* FILE_PUT: permission bits (07777 at most); FILE_GET: 0 */
        uint32_t flags; /* none defined: 0 */
        const char *path;
};

struct vmgr_agent_done {
        uint64_t size; /* bytes written or read; 0 for SHUTDOWN/REBOOT */
        uint32_t mode; /* FILE_GET: the file's permission bits; else 0 */
};

struct vmgr_agent_error {
        int32_t error; /* a positive Linux errno */
        const char *message;
};

struct vmgr_agent_ping {
        uint64_t payload;
};

struct vmgr_agent_log {
        uint8_t source;   /* enum vmgr_agent_log_source */
        uint8_t priority; /* 0 (emerg) .. 7 (debug) */
        uint64_t realtime_usec;
        const char *text;
};

#define VMGR_AGENT_IDENTITY_NICS_MAX 8
#define VMGR_AGENT_HOSTNAME_MAX 64 /* IDENTITY's hostname: Linux's HOST_NAME_MAX */
#define VMGR_AGENT_ENTROPY_MIN 32
#define VMGR_AGENT_ENTROPY_MAX 512

/* IDENTITY: what a VM restored from a snapshot must change to be its own
 * machine (docs/agent-protocol.md). Each NIC is found by its PCI slot
 * (enp1s0 is slot "0000:01:00.0") so that a name the template gave it does
 * not matter; the agent sets its MAC, drops the addresses and routes the
 * template had, and configures the ones given here. */
struct vmgr_agent_identity_nic {
        const char *pci_slot;       /* "0000:01:00.0" */
        uint8_t mac[6];
        uint8_t family;             /* VMGR_AGENT_FAMILY_IPV6 (SLAAC link) or _IPV4 (DHCPv4 link) */
        uint8_t prefixlen;          /* 64 or 24 */
        uint8_t address[16];        /* the derived address (IPv4: first 4 bytes) */
        uint8_t gateway[16];        /* the bridge's address on that link */
        uint8_t service_prefixlen;  /* IPv6: 48, the group's service addresses route via gateway; else 0 */
};

struct vmgr_agent_identity {
        uint8_t generation[VMGR_AGENT_GENERATION_SIZE]; /* random, new for every start; INFO echoes it */
        uint64_t realtime_nsec;     /* host CLOCK_REALTIME when sent: the guest sets its clock */
        const char *hostname;
        size_t n_nics;
        struct vmgr_agent_identity_nic nics[VMGR_AGENT_IDENTITY_NICS_MAX];
        size_t entropy_size;        /* VMGR_AGENT_ENTROPY_MIN..MAX bytes from the host's getrandom() */
        const uint8_t *entropy;
};

struct vmgr_agent_msg {
        enum vmgr_agent_type type;
        uint32_t id;
        union {
                struct vmgr_agent_hello hello;
                struct vmgr_agent_info info;
                struct vmgr_agent_exec exec;
                struct vmgr_agent_data data;
                uint32_t window; /* WINDOW: increment, 1..VMGR_AGENT_WINDOW_MAX */
                struct vmgr_agent_exit exit;
                struct vmgr_agent_kill kill;
                struct vmgr_agent_file file; /* FILE_PUT, FILE_GET */
                struct vmgr_agent_done done;
                struct vmgr_agent_error error;
                struct vmgr_agent_ping ping; /* PING, PONG */
                struct vmgr_agent_log log;
                struct vmgr_agent_identity identity;
        };
};

/* Name of a message type ("HELLO"), or NULL if unknown. */
const char *vmgr_agent_type_to_string(unsigned type);

/* Check a message against the protocol's rules (the ones decoding applies).
 * Returns 0, or -EINVAL with *reason set to what is wrong. */
int vmgr_agent_msg_validate(const struct vmgr_agent_msg *m, const char **reason);

/* Encode m as one wire frame, delimiter included, into buf (size bytes;
 * VMGR_AGENT_WIRE_MAX is always enough). Returns the number of bytes
 * written, -EINVAL if m breaks a rule (see vmgr_agent_msg_validate()), or
 * -ENOBUFS if buf is too small. */
int vmgr_agent_msg_encode(const struct vmgr_agent_msg *m, void *buf, size_t size);

/* Parse one decoded frame (header and body, no COBS) of len bytes into *m.
 * Strings and DATA in *m point into frame, which must stay unchanged while
 * *m is used. Returns 0, or -EBADMSG with *reason set. */
int vmgr_agent_frame_parse(const void *frame, size_t len, struct vmgr_agent_msg *m, const char **reason);

/* COBS-decode len bytes (one frame, without its delimiter) into out (size
 * bytes). Returns the decoded length, -EBADMSG for a malformed encoding or
 * -ENOBUFS if it does not fit. */
int vmgr_agent_cobs_decode(const void *in, size_t len, void *out, size_t size);

/*
 * Streaming decoder. It owns a read buffer: read into
 * vmgr_agent_decoder_space(), report with vmgr_agent_decoder_advance(), then
 * call vmgr_agent_decoder_next() until it returns 0. Its memory is bounded
 * (about 3 x VMGR_AGENT_WIRE_MAX) whatever it is fed.
 */
struct vmgr_agent_decoder;

/* Allocate a decoder. Returns 0 or -ENOMEM. */
int vmgr_agent_decoder_new(struct vmgr_agent_decoder **ret);
/* Free a decoder (NULL is fine). Returns NULL. */
struct vmgr_agent_decoder *vmgr_agent_decoder_free(struct vmgr_agent_decoder *d);
/* Forget all buffered bytes (a new connection); the next frame starts after the next 0x00. */
void vmgr_agent_decoder_reset(struct vmgr_agent_decoder *d);
/* Where the next bytes go. Returns the buffer; *size is its free room, never 0. */
void *vmgr_agent_decoder_space(struct vmgr_agent_decoder *d, size_t *size);
/* Account n bytes written into the space. */
void vmgr_agent_decoder_advance(struct vmgr_agent_decoder *d, size_t n);
/* Decode the next frame. Returns 1 with *ret set (valid until the next call
 * on d), 0 when no complete frame is buffered, or -EBADMSG when a frame was
 * dropped, with *reason saying why; call again after an error. */
int vmgr_agent_decoder_next(struct vmgr_agent_decoder *d, const struct vmgr_agent_msg **ret, const char **reason);

/*
 * Flow control accounting for one stream.
 *
 * The sender keeps a send window: the credit it may still use. The
 * receiver keeps a receive window of a fixed size: bytes that are either
 * still credited to the sender, buffered (received, not consumed) or
 * consumed but not yet granted back always add up to that size, so the
 * receiver never buffers more than the size.
 */
struct vmgr_agent_send_window {
        uint32_t credit;
};

struct vmgr_agent_recv_window {
        uint32_t size;
        uint32_t credit;   /* what the sender may still send */
        uint32_t buffered; /* received, not yet consumed */
        uint32_t consumed; /* consumed, not yet granted back */
};

/* Start with the peer's initial window. */
void vmgr_agent_send_window_init(struct vmgr_agent_send_window *w, uint32_t initial);
/* Add a WINDOW increment. Returns 0, or -EOVERFLOW if the credit would pass
 * VMGR_AGENT_WINDOW_MAX (a protocol error). */
int vmgr_agent_send_window_grant(struct vmgr_agent_send_window *w, uint32_t increment);
/* Take credit for up to want bytes (at most VMGR_AGENT_DATA_MAX). Returns
 * how many bytes may be sent now; 0 when the credit is used up. */
size_t vmgr_agent_send_window_take(struct vmgr_agent_send_window *w, size_t want);

/* Start with our own initial window (what our HELLO announced). */
void vmgr_agent_recv_window_init(struct vmgr_agent_recv_window *w, uint32_t size);
/* Account n received DATA bytes. Returns 0, or -EPROTO if the sender
 * exceeded its credit. */
int vmgr_agent_recv_window_receive(struct vmgr_agent_recv_window *w, size_t n);
/* Account n buffered bytes as consumed (written on, or dropped). Returns the
 * WINDOW increment to send now, or 0 to wait: credit goes back in batches of
 * at least half the window, not one WINDOW per DATA. */
uint32_t vmgr_agent_recv_window_consume(struct vmgr_agent_recv_window *w, size_t n);
