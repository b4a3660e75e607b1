/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"
#include "macro.h"

static const char *const type_names[_VMGR_AGENT_TYPE_MAX] = {
        [VMGR_AGENT_HELLO] = "HELLO",
        [VMGR_AGENT_INFO] = "INFO",
        [VMGR_AGENT_EXEC] = "EXEC",
        [VMGR_AGENT_DATA] = "DATA",
        [VMGR_AGENT_WINDOW] = "WINDOW",
        [VMGR_AGENT_EOF] = "EOF",
        [VMGR_AGENT_EXIT] = "EXIT",
        [VMGR_AGENT_KILL] = "KILL",
        [VMGR_AGENT_FILE_PUT] = "FILE_PUT",
        [VMGR_AGENT_FILE_GET] = "FILE_GET",
        [VMGR_AGENT_DONE] = "DONE",
        [VMGR_AGENT_ERROR] = "ERROR",
        [VMGR_AGENT_SHUTDOWN] = "SHUTDOWN",
        [VMGR_AGENT_REBOOT] = "REBOOT",
        [VMGR_AGENT_PING] = "PING",
        [VMGR_AGENT_PONG] = "PONG",
        [VMGR_AGENT_LOG] = "LOG",
        [VMGR_AGENT_IDENTITY] = "IDENTITY",
};

const char *vmgr_agent_type_to_string(unsigned type) {
        return type < ELEMENTSOF(type_names) ? type_names[type] : NULL;
}

/* --- rules ---------------------------------------------------------------- */

/* Whether s is a string of at most max bytes (NULL is not). */
static bool string_ok(const char *s, size_t max) {
        return s && strnlen(s, max + 1) <= max;
}

/* Whether s is a name of at most max bytes without control characters: names
 * (hostname, kernel release, interface names, software) end up in D-Bus
 * properties and on users' terminals, where a guest's escape sequences must
 * not go. Returns true if so. */
static bool name_ok(const char *s, size_t max) {
        if (!string_ok(s, max))
                return false;
        for (const unsigned char *c = (const unsigned char *) s; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return false;
        return true;
}

static bool path_ok(const char *p) {
        return string_ok(p, VMGR_AGENT_PATH_MAX) && p[0] == '/';
}

static int validate_info(const struct vmgr_agent_info *in, const char **why) {
        if (in->version < VMGR_AGENT_VERSION_MIN)
                return *why = "INFO version is 0", -EINVAL;
        if (!name_ok(in->hostname, VMGR_AGENT_NAME_MAX) || !name_ok(in->kernel, VMGR_AGENT_NAME_MAX) ||
            !name_ok(in->boot_id, VMGR_AGENT_NAME_MAX))
                return *why = "INFO string missing, too long or with control characters", -EINVAL;
        if (in->n_links > VMGR_AGENT_LINKS_MAX)
                return *why = "INFO has too many links", -EINVAL;
        if (in->n_addrs > VMGR_AGENT_ADDRS_MAX)
                return *why = "INFO has too many addresses", -EINVAL;
        for (size_t i = 0; i < in->n_links; i++) {
                const struct vmgr_agent_link *l = &in->links[i];
                if (l->index == 0)
                        return *why = "INFO link index is 0", -EINVAL;
                if (l->hwaddr_len > VMGR_AGENT_HWADDR_MAX)
                        return *why = "INFO link hardware address too long", -EINVAL;
                if (!name_ok(l->name, VMGR_AGENT_NAME_MAX) || !l->name[0])
                        return *why = "INFO link name missing, too long or with control characters", -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (in->links[j].index == l->index)
                                return *why = "INFO link index repeated", -EINVAL;
        }
        for (size_t i = 0; i < in->n_addrs; i++) {
                const struct vmgr_agent_addr *a = &in->addrs[i];
                bool known = false;

                for (size_t j = 0; j < in->n_links && !known; j++)
                        known = in->links[j].index == a->ifindex;
                if (!known)
                        return *why = "INFO address on a link that is not listed", -EINVAL;
                if (a->family == VMGR_AGENT_FAMILY_IPV4) {
                        static const uint8_t zero[12];
                        if (a->prefixlen > 32)
                                return *why = "INFO IPv4 prefix length above 32", -EINVAL;
                        if (memcmp(a->address + 4, zero, sizeof(zero)) != 0)
                                return *why = "INFO IPv4 address not zero-padded", -EINVAL;
                } else if (a->family == VMGR_AGENT_FAMILY_IPV6) {
                        if (a->prefixlen > 128)
                                return *why = "INFO IPv6 prefix length above 128", -EINVAL;
                } else
                        return *why = "INFO address family is neither 4 nor 6", -EINVAL;
        }
        return 0;
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* Whether s is a hostname as RFC 1123 has it: dot-separated labels of 1..63
 * letters, digits and hyphens, neither starting nor ending with a hyphen;
 * at most 64 bytes in all, Linux's limit. It goes into sethostname(),
 * /etc/hosts and a DHCP option, where anything else would break or mislead. */
static bool hostname_ok(const char *s) {
        size_t label = 0, n = 0;

        if (!s || !s[0])
                return false;
        for (const char *c = s;; c++, n++) {
                if (n > VMGR_AGENT_HOSTNAME_MAX)
                        return false;
                if (*c == '.' || *c == 0) {
                        if (label == 0 || c[-1] == '-')
                                return false;
                        if (*c == 0)
                                return true;
                        label = 0;
                        continue;
                }
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      (*c == '-' && label > 0)))
                        return false;
                if (++label > 63)
                        return false;
        }
}

/* Whether s is a PCI function address "DDDD:BB:SS.F" as sysfs spells it:
 * lower-case hex, slot 00..1f, function 0..7. */
static bool pci_slot_ok(const char *s) {
        static const char pattern[] = "xxxx:xx:xx.f";

        if (!string_ok(s, sizeof(pattern) - 1) || strlen(s) != sizeof(pattern) - 1)
                return false;
        for (size_t i = 0; pattern[i]; i++) {
                char c = s[i];
                switch (pattern[i]) {
                case 'x':
                        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                                return false;
                        break;
                case 'f':
                        if (c < '0' || c > '7')
                                return false;
                        break;
                default:
                        if (c != pattern[i])
                                return false;
                }
        }
        /* Slot: 5 bits. */
        return s[8] <= '1';
}

/* Whether a and b share their first prefixlen bits. */
static bool same_prefix(const uint8_t *a, const uint8_t *b, unsigned prefixlen) {
        unsigned bytes = prefixlen / 8, bits = prefixlen % 8;

        if (memcmp(a, b, bytes) != 0)
                return false;
        return bits == 0 || ((a[bytes] ^ b[bytes]) & (0xff00u >> bits) & 0xff) == 0;
}

static int validate_identity_nic(const struct vmgr_agent_identity_nic *n, const char **why) {
        unsigned alen = n->family == VMGR_AGENT_FAMILY_IPV4 ? 4 : 16;

        if (!pci_slot_ok(n->pci_slot))
                return *why = "IDENTITY NIC PCI slot is not DDDD:BB:SS.F", -EINVAL;
        if ((n->mac[0] & 1) || all_zero(n->mac, sizeof(n->mac)))
                return *why = "IDENTITY NIC MAC is zero or multicast", -EINVAL;
        if (n->family == VMGR_AGENT_FAMILY_IPV4) {
                if (n->prefixlen < 1 || n->prefixlen > 30)
                        return *why = "IDENTITY IPv4 prefix length out of range 1..30", -EINVAL;
                if (!all_zero(n->address + 4, 12) || !all_zero(n->gateway + 4, 12))
                        return *why = "IDENTITY IPv4 address not zero-padded", -EINVAL;
                if (n->service_prefixlen != 0)
                        return *why = "IDENTITY IPv4 NIC has a service prefix", -EINVAL;
        } else if (n->family == VMGR_AGENT_FAMILY_IPV6) {
                if (n->prefixlen < 1 || n->prefixlen > 126)
                        return *why = "IDENTITY IPv6 prefix length out of range 1..126", -EINVAL;
                if (n->address[0] == 0xff || n->gateway[0] == 0xff)
                        return *why = "IDENTITY IPv6 address is multicast", -EINVAL;
                if (n->service_prefixlen >= n->prefixlen)
                        return *why = "IDENTITY service prefix is not shorter than the link's", -EINVAL;
        } else
                return *why = "IDENTITY NIC family is neither 4 nor 6", -EINVAL;
        if (all_zero(n->address, alen) || all_zero(n->gateway, alen))
                return *why = "IDENTITY NIC address or gateway is zero", -EINVAL;
        if (memcmp(n->address, n->gateway, alen) == 0)
                return *why = "IDENTITY NIC address is its gateway", -EINVAL;
        if (!same_prefix(n->address, n->gateway, n->prefixlen))
                return *why = "IDENTITY NIC gateway is not on the NIC's prefix", -EINVAL;
        return 0;
}

static int validate_identity(const struct vmgr_agent_identity *id, const char **why) {
        int r;

        if (all_zero(id->generation, sizeof(id->generation)))
                return *why = "IDENTITY generation is zero", -EINVAL;
        if (id->realtime_nsec == 0)
                return *why = "IDENTITY time is 0", -EINVAL;
        if (!hostname_ok(id->hostname))
                return *why = "IDENTITY hostname is not a valid host name", -EINVAL;
        if (id->n_nics < 1 || id->n_nics > VMGR_AGENT_IDENTITY_NICS_MAX)
                return *why = "IDENTITY NIC count out of range", -EINVAL;
        for (size_t i = 0; i < id->n_nics; i++) {
                r = validate_identity_nic(&id->nics[i], why);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++) {
                        if (strcmp(id->nics[j].pci_slot, id->nics[i].pci_slot) == 0)
                                return *why = "IDENTITY names a PCI slot twice", -EINVAL;
                        if (memcmp(id->nics[j].mac, id->nics[i].mac, sizeof(id->nics[i].mac)) == 0)
                                return *why = "IDENTITY gives two NICs one MAC", -EINVAL;
                }
        }
        if (id->entropy_size < VMGR_AGENT_ENTROPY_MIN || id->entropy_size > VMGR_AGENT_ENTROPY_MAX || !id->entropy)
                return *why = "IDENTITY entropy size out of range", -EINVAL;
        return 0;
}

static int validate_exec(const struct vmgr_agent_exec *e, const char **why) {
        uint32_t s[3] = { e->stdin_stream, e->stdout_stream, e->stderr_stream };

        for (size_t i = 0; i < 3; i++)
                for (size_t j = i + 1; j < 3; j++)
                        if (s[i] != 0 && s[i] == s[j])
                                return *why = "EXEC uses one stream twice", -EINVAL;
        if (e->flags & ~_VMGR_AGENT_EXEC_FLAGS_ALL)
                return *why = "EXEC has unknown flags", -EINVAL;
        if (!string_ok(e->cwd, VMGR_AGENT_PATH_MAX) || (e->cwd[0] && e->cwd[0] != '/'))
                return *why = "EXEC working directory is not empty or absolute", -EINVAL;
        if (e->argc < 1 || e->argc > VMGR_AGENT_ARGS_MAX)
                return *why = "EXEC argument count out of range", -EINVAL;
        if (e->envc > VMGR_AGENT_ENV_MAX)
                return *why = "EXEC environment too large", -EINVAL;
        for (size_t i = 0; i < e->argc; i++)
                if (!string_ok(e->argv[i], VMGR_AGENT_DATA_MAX))
                        return *why = "EXEC argument missing", -EINVAL;
        if (!e->argv[0][0])
                return *why = "EXEC program name is empty", -EINVAL;
        if (e->argv[e->argc])
                return *why = "EXEC argv is not NULL-terminated", -EINVAL;
        for (size_t i = 0; i < e->envc; i++) {
                const char *eq;
                if (!string_ok(e->env[i], VMGR_AGENT_DATA_MAX))
                        return *why = "EXEC environment entry missing", -EINVAL;
                eq = strchr(e->env[i], '=');
                if (!eq || eq == e->env[i])
                        return *why = "EXEC environment entry is not NAME=VALUE", -EINVAL;
        }
        if (e->env[e->envc])
                return *why = "EXEC env is not NULL-terminated", -EINVAL;
        return 0;
}

int vmgr_agent_msg_validate(const struct vmgr_agent_msg *m, const char **reason) {
        const char *why = NULL;
        int r = 0;

        switch (m->type) {
        case VMGR_AGENT_HELLO:
                if (m->id != 0)
                        why = "HELLO id is not 0";
                else if (m->hello.version_min < 1 || m->hello.version_min > m->hello.version_max)
                        why = "HELLO version range is empty";
                else if (m->hello.initial_window < 1 || m->hello.initial_window > VMGR_AGENT_WINDOW_MAX)
                        why = "HELLO initial window out of range";
                else if (!name_ok(m->hello.software, VMGR_AGENT_NAME_MAX))
                        why = "HELLO software name missing, too long or with control characters";
                break;
        case VMGR_AGENT_INFO:
                if (m->id != 0)
                        why = "INFO id is not 0";
                else
                        r = validate_info(&m->info, &why);
                break;
        case VMGR_AGENT_EXEC:
                if (m->id == 0)
                        why = "EXEC process id is 0";
                else
                        r = validate_exec(&m->exec, &why);
                break;
        case VMGR_AGENT_DATA:
                if (m->id == 0)
                        why = "DATA stream id is 0";
                else if (m->data.size < 1 || m->data.size > VMGR_AGENT_DATA_MAX || !m->data.data)
                        why = "DATA size out of range";
                break;
        case VMGR_AGENT_WINDOW:
                if (m->id == 0)
                        why = "WINDOW stream id is 0";
                else if (m->window < 1 || m->window > VMGR_AGENT_WINDOW_MAX)
                        why = "WINDOW increment out of range";
                break;
        case VMGR_AGENT_EOF:
                if (m->id == 0)
                        why = "EOF stream id is 0";
                break;
        case VMGR_AGENT_EXIT:
                if (m->id == 0)
                        why = "EXIT process id is 0";
                else if (m->exit.signal == 0 ? (m->exit.status < 0 || m->exit.status > 255 || m->exit.core_dumped)
                                             : (m->exit.status != -1 || m->exit.signal < 1 ||
                                                m->exit.signal > VMGR_AGENT_SIGNAL_MAX))
                        why = "EXIT status is neither an exit code nor a signal";
                break;
        case VMGR_AGENT_KILL:
                if (m->id == 0)
                        why = "KILL process id is 0";
                else if (m->kill.signal < 1 || m->kill.signal > VMGR_AGENT_SIGNAL_MAX)
                        why = "KILL signal out of range";
                else if (m->kill.flags & ~_VMGR_AGENT_KILL_FLAGS_ALL)
                        why = "KILL has unknown flags";
                break;
        case VMGR_AGENT_FILE_PUT:
        case VMGR_AGENT_FILE_GET:
                if (m->id == 0)
                        why = "file request id is 0";
                else if (m->file.stream == 0)
                        why = "file request stream id is 0";
                else if (m->type == VMGR_AGENT_FILE_PUT ? m->file.mode > 07777 : m->file.mode != 0)
                        why = "file request mode out of range";
                else if (m->file.flags != 0)
                        why = "file request has unknown flags";
                else if (!path_ok(m->file.path))
                        why = "file request path is not absolute or too long";
                break;
        case VMGR_AGENT_DONE:
                if (m->id == 0)
                        why = "DONE request id is 0";
                else if (m->done.mode > 07777)
                        why = "DONE mode out of range";
                break;
        case VMGR_AGENT_ERROR:
                if (m->error.error <= 0 || m->error.error > 4095)
                        why = "ERROR errno out of range";
                else if (!string_ok(m->error.message, VMGR_AGENT_MESSAGE_MAX))
                        why = "ERROR message missing or too long";
                break;
        case VMGR_AGENT_SHUTDOWN:
        case VMGR_AGENT_REBOOT:
                if (m->id == 0)
                        why = "power request id is 0";
                break;
        case VMGR_AGENT_PING:
        case VMGR_AGENT_PONG:
                break;
        case VMGR_AGENT_LOG:
                if (m->id != 0)
                        why = "LOG id is not 0";
                else if (m->log.source < VMGR_AGENT_LOG_KERNEL || m->log.source > VMGR_AGENT_LOG_AGENT)
                        why = "LOG source unknown";
                else if (m->log.priority > 7)
                        why = "LOG priority above 7";
                else if (!string_ok(m->log.text, VMGR_AGENT_LOG_MAX))
                        why = "LOG text missing or too long";
                break;
        case VMGR_AGENT_IDENTITY:
                if (m->id == 0)
                        why = "IDENTITY request id is 0";
                else
                        r = validate_identity(&m->identity, &why);
                break;
        default:
                why = "unknown message type";
        }
        if (why || r < 0) {
                if (reason)
                        *reason = why;
                return -EINVAL;
        }
        return 0;
}

/* --- encoding ------------------------------------------------------------- */

/*
 * COBS encoder writing straight into the output buffer: every byte goes
 * through put(), which splits the input into blocks of at most 254 non-zero
 * bytes, each led by a code byte (block length + 1). A zero byte ends a
 * block and is implied by it.
 */
struct cobs_writer {
        uint8_t *out;
        size_t size, pos;
        size_t code_pos;
        uint8_t code;
        bool overflow;
        size_t raw; /* decoded bytes so far, to enforce VMGR_AGENT_FRAME_MAX */
};

static void cw_open_block(struct cobs_writer *w) {
        w->code_pos = w->pos++;
        w->code = 1;
}

static void cw_close_block(struct cobs_writer *w) {
        if (w->code_pos < w->size)
                w->out[w->code_pos] = w->code;
}

static void cw_init(struct cobs_writer *w, void *out, size_t size) {
        *w = (struct cobs_writer) { .out = out, .size = size };
        cw_open_block(w);
}

static void cw_put(struct cobs_writer *w, const void *data, size_t n) {
        const uint8_t *p = data;

        w->raw += n;
        while (n > 0) {
                size_t room, run;

                /* Runs of zeros (all-zero data is COBS's worst case): one
                 * code byte each, without the general path. */
                while (n > 0 && *p == 0 && w->pos < w->size) {
                        w->out[w->code_pos] = w->code;
                        w->code_pos = w->pos++;
                        w->code = 1;
                        p++;
                        n--;
                }
                if (n == 0)
                        break;
                if (w->pos >= w->size) {
                        w->overflow = true;
                        return;
                }
                room = 0xff - w->code;
                run = n < room ? n : room;
                const uint8_t *z = memchr(p, 0, run);
                size_t k = z ? (size_t) (z - p) : run;

                if (w->pos + k > w->size) {
                        w->overflow = true;
                        return;
                }
                memcpy(w->out + w->pos, p, k);
                w->pos += k;
                w->code += k;
                p += k;
                n -= k;
                if (z) {
                        /* The zero ends this block; the next one starts here. */
                        cw_close_block(w);
                        cw_open_block(w);
                        p++;
                        n--;
                } else if (w->code == 0xff) {
                        cw_close_block(w);
                        cw_open_block(w);
                }
        }
}

static void cw_u8(struct cobs_writer *w, uint8_t v) {
        cw_put(w, &v, 1);
}

static void cw_u16(struct cobs_writer *w, uint16_t v) {
        uint8_t b[2] = { v & 0xff, v >> 8 };
        cw_put(w, b, sizeof(b));
}

static void cw_u32(struct cobs_writer *w, uint32_t v) {
        uint8_t b[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
        cw_put(w, b, sizeof(b));
}

static void cw_u64(struct cobs_writer *w, uint64_t v) {
        cw_u32(w, (uint32_t) v);
        cw_u32(w, (uint32_t) (v >> 32));
}

static void cw_str(struct cobs_writer *w, const char *s) {
        size_t n = strlen(s);
        cw_u16(w, (uint16_t) n);
        cw_put(w, s, n + 1); /* with its NUL */
}

/* Close the frame and append the delimiter. Returns the wire length or -ENOBUFS. */
static int cw_finish(struct cobs_writer *w) {
        if (w->overflow || w->pos + 1 > w->size)
                return -ENOBUFS;
        cw_close_block(w);
        w->out[w->pos++] = 0;
        return (int) w->pos;
}

static void encode_body(struct cobs_writer *w, const struct vmgr_agent_msg *m) {
        switch (m->type) {
        case VMGR_AGENT_HELLO:
                cw_u16(w, m->hello.version_min);
                cw_u16(w, m->hello.version_max);
                cw_u32(w, m->hello.initial_window);
                cw_u64(w, m->hello.nonce);
                cw_str(w, m->hello.software);
                break;
        case VMGR_AGENT_INFO:
                cw_u16(w, m->info.version);
                cw_str(w, m->info.hostname);
                cw_str(w, m->info.kernel);
                cw_str(w, m->info.boot_id);
                cw_u16(w, (uint16_t) m->info.n_links);
                for (size_t i = 0; i < m->info.n_links; i++) {
                        const struct vmgr_agent_link *l = &m->info.links[i];
                        cw_u32(w, l->index);
                        cw_u32(w, l->flags);
                        cw_u32(w, l->mtu);
                        cw_u8(w, l->hwaddr_len);
                        cw_put(w, l->hwaddr, l->hwaddr_len);
                        cw_str(w, l->name);
                }
                cw_u16(w, (uint16_t) m->info.n_addrs);
                for (size_t i = 0; i < m->info.n_addrs; i++) {
                        const struct vmgr_agent_addr *a = &m->info.addrs[i];
                        cw_u32(w, a->ifindex);
                        cw_u8(w, a->family);
                        cw_u8(w, a->prefixlen);
                        cw_u8(w, a->scope);
                        cw_u8(w, 0);
                        cw_u32(w, a->flags);
                        cw_put(w, a->address, 16);
                }
                /* Only after an IDENTITY: an agent that never had one
                 * sends what version 1 had, byte for byte. */
                if (!all_zero(m->info.generation, sizeof(m->info.generation)))
                        cw_put(w, m->info.generation, sizeof(m->info.generation));
                break;
        case VMGR_AGENT_EXEC:
                cw_u32(w, m->exec.stdin_stream);
                cw_u32(w, m->exec.stdout_stream);
                cw_u32(w, m->exec.stderr_stream);
                cw_u32(w, m->exec.flags);
                cw_str(w, m->exec.cwd);
                cw_u16(w, (uint16_t) m->exec.argc);
                for (size_t i = 0; i < m->exec.argc; i++)
                        cw_str(w, m->exec.argv[i]);
                cw_u16(w, (uint16_t) m->exec.envc);
                for (size_t i = 0; i < m->exec.envc; i++)
                        cw_str(w, m->exec.env[i]);
                break;
        case VMGR_AGENT_DATA:
                cw_put(w, m->data.data, m->data.size);
                break;
        case VMGR_AGENT_WINDOW:
                cw_u32(w, m->window);
                break;
        case VMGR_AGENT_EXIT:
                cw_u32(w, (uint32_t) m->exit.status);
                cw_u32(w, (uint32_t) m->exit.signal);
                cw_u8(w, m->exit.core_dumped);
                break;
        case VMGR_AGENT_KILL:
                cw_u32(w, m->kill.signal);
                cw_u32(w, m->kill.flags);
                break;
        case VMGR_AGENT_FILE_PUT:
        case VMGR_AGENT_FILE_GET:
                cw_u32(w, m->file.stream);
                cw_u32(w, m->file.mode);
                cw_u32(w, m->file.flags);
                cw_str(w, m->file.path);
                break;
        case VMGR_AGENT_DONE:
                cw_u64(w, m->done.size);
                cw_u32(w, m->done.mode);
                break;
        case VMGR_AGENT_ERROR:
                cw_u32(w, (uint32_t) m->error.error);
                cw_str(w, m->error.message);
                break;
        case VMGR_AGENT_PING:
        case VMGR_AGENT_PONG:
                cw_u64(w, m->ping.payload);
                break;
        case VMGR_AGENT_LOG:
                cw_u8(w, m->log.source);
                cw_u8(w, m->log.priority);
                cw_u16(w, 0);
                cw_u64(w, m->log.realtime_usec);
                cw_str(w, m->log.text);
                break;
        case VMGR_AGENT_IDENTITY:
                cw_put(w, m->identity.generation, sizeof(m->identity.generation));
                cw_u64(w, m->identity.realtime_nsec);
                cw_str(w, m->identity.hostname);
                cw_u8(w, (uint8_t) m->identity.n_nics);
                for (size_t i = 0; i < m->identity.n_nics; i++) {
                        const struct vmgr_agent_identity_nic *n = &m->identity.nics[i];
                        cw_str(w, n->pci_slot);
                        cw_put(w, n->mac, sizeof(n->mac));
                        cw_u8(w, n->family);
                        cw_u8(w, n->prefixlen);
                        cw_u8(w, n->service_prefixlen);
                        cw_u8(w, 0);
                        cw_put(w, n->address, 16);
                        cw_put(w, n->gateway, 16);
                }
                cw_u16(w, (uint16_t) m->identity.entropy_size);
                cw_put(w, m->identity.entropy, m->identity.entropy_size);
                break;
        case VMGR_AGENT_EOF:
        case VMGR_AGENT_SHUTDOWN:
        case VMGR_AGENT_REBOOT:
        default:
                break;
        }
}

int vmgr_agent_msg_encode(const struct vmgr_agent_msg *m, void *buf, size_t size) {
        struct cobs_writer w;
        const char *why;
        int r;

        r = vmgr_agent_msg_validate(m, &why);
        if (r < 0)
                return r;

        cw_init(&w, buf, size);
        cw_put(&w, VMGR_AGENT_MAGIC, 4);
        cw_u8(&w, (uint8_t) m->type);
        cw_put(&w, (const uint8_t[3]) { 0, 0, 0 }, 3);
        cw_u32(&w, m->id);
        encode_body(&w, m);
        /* Lists and strings are each bounded, but not their sum. */
        if (w.raw > VMGR_AGENT_FRAME_MAX)
                return -EINVAL;
        return cw_finish(&w);
}

/* --- decoding ------------------------------------------------------------- */

int vmgr_agent_cobs_decode(const void *in, size_t len, void *out, size_t size) {
        const uint8_t *p = in, *end = p + len;
        uint8_t *o = out;
        size_t n = 0;

        while (p < end) {
                uint8_t code = *p++;
                size_t run = code - 1u;

                if (code == 0)
                        return -EBADMSG;
                if (run > (size_t) (end - p))
                        return -EBADMSG;
                if (memchr(p, 0, run))
                        return -EBADMSG;
                if (n + run > size)
                        return -ENOBUFS;
                memcpy(o + n, p, run);
                n += run;
                p += run;
                /* A block shorter than 254 bytes implies a zero, except at the end. */
                if (code != 0xff && p < end) {
                        if (n + 1 > size)
                                return -ENOBUFS;
                        o[n++] = 0;
                }
        }
        return (int) n;
}

struct reader {
        const uint8_t *p;
        size_t left;
        const char *why;
};

static bool rd_take(struct reader *r, size_t n, const uint8_t **ret) {
        if (r->why)
                return false;
        if (n > r->left) {
                r->why = "frame ends inside a field";
                return false;
        }
        *ret = r->p;
        r->p += n;
        r->left -= n;
        return true;
}

static uint8_t rd_u8(struct reader *r) {
        const uint8_t *b;
        return rd_take(r, 1, &b) ? b[0] : 0;
}

static uint16_t rd_u16(struct reader *r) {
        const uint8_t *b;
        return rd_take(r, 2, &b) ? (uint16_t) (b[0] | b[1] << 8) : 0;
}

static uint32_t rd_u32(struct reader *r) {
        const uint8_t *b;
        return rd_take(r, 4, &b) ? (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 |
                                           (uint32_t) b[3] << 24
                                 : 0;
}

static uint64_t rd_u64(struct reader *r) {
        uint64_t lo = rd_u32(r);
        return lo | (uint64_t) rd_u32(r) << 32;
}

/* A string: u16 length, bytes without NUL, then a NUL. Points into the frame. */
static const char *rd_str(struct reader *r) {
        const uint8_t *b;
        uint16_t n = rd_u16(r);

        if (!rd_take(r, (size_t) n + 1, &b))
                return "";
        if (b[n] != 0 || memchr(b, 0, n)) {
                r->why = "string is not NUL-terminated or contains a NUL";
                return "";
        }
        return (const char *) b;
}

/* The INFO body: host facts, then the links and the addresses, each list
 * led by its count. Sets r->why on the first fault. */
static void parse_info(struct reader *r, struct vmgr_agent_msg *m) {
        size_t n;

        m->info.version = rd_u16(r);
        m->info.hostname = rd_str(r);
        m->info.kernel = rd_str(r);
        m->info.boot_id = rd_str(r);
        n = rd_u16(r);
        if (n > VMGR_AGENT_LINKS_MAX) {
                r->why = "INFO has too many links";
                return;
        }
        m->info.n_links = n;
        for (size_t i = 0; i < n && !r->why; i++) {
                struct vmgr_agent_link *l = &m->info.links[i];
                const uint8_t *b;
                l->index = rd_u32(r);
                l->flags = rd_u32(r);
                l->mtu = rd_u32(r);
                l->hwaddr_len = rd_u8(r);
                if (l->hwaddr_len > VMGR_AGENT_HWADDR_MAX) {
                        r->why = "INFO link hardware address too long";
                        return;
                }
                memset(l->hwaddr, 0, sizeof(l->hwaddr));
                if (rd_take(r, l->hwaddr_len, &b))
                        memcpy(l->hwaddr, b, l->hwaddr_len);
                l->name = rd_str(r);
        }
        n = rd_u16(r);
        if (n > VMGR_AGENT_ADDRS_MAX) {
                r->why = "INFO has too many addresses";
                return;
        }
        m->info.n_addrs = n;
        for (size_t i = 0; i < n && !r->why; i++) {
                struct vmgr_agent_addr *a = &m->info.addrs[i];
                const uint8_t *b;
                a->ifindex = rd_u32(r);
                a->family = rd_u8(r);
                a->prefixlen = rd_u8(r);
                a->scope = rd_u8(r);
                if (rd_u8(r) != 0 && !r->why)
                        r->why = "INFO address reserved byte is not 0";
                a->flags = rd_u32(r);
                if (rd_take(r, 16, &b))
                        memcpy(a->address, b, 16);
        }
        /* The generation follows only once the agent had an IDENTITY
         * (never all zero then, so that each INFO has one encoding). */
        memset(m->info.generation, 0, sizeof(m->info.generation));
        if (!r->why && r->left > 0) {
                const uint8_t *b;
                if (rd_take(r, sizeof(m->info.generation), &b)) {
                        if (all_zero(b, sizeof(m->info.generation)))
                                r->why = "INFO generation present but zero";
                        memcpy(m->info.generation, b, sizeof(m->info.generation));
                }
        }
}

/* The IDENTITY body: generation, time, hostname, the NICs led by their
 * count, the entropy led by its size. Sets r->why on the first fault. */
static void parse_identity(struct reader *r, struct vmgr_agent_msg *m) {
        struct vmgr_agent_identity *id = &m->identity;
        const uint8_t *b;
        size_t n;

        if (rd_take(r, sizeof(id->generation), &b))
                memcpy(id->generation, b, sizeof(id->generation));
        id->realtime_nsec = rd_u64(r);
        id->hostname = rd_str(r);
        n = rd_u8(r);
        if (n > VMGR_AGENT_IDENTITY_NICS_MAX) {
                if (!r->why)
                        r->why = "IDENTITY has too many NICs";
                return;
        }
        id->n_nics = n;
        for (size_t i = 0; i < n && !r->why; i++) {
                struct vmgr_agent_identity_nic *nic = &id->nics[i];
                nic->pci_slot = rd_str(r);
                if (rd_take(r, sizeof(nic->mac), &b))
                        memcpy(nic->mac, b, sizeof(nic->mac));
                nic->family = rd_u8(r);
                nic->prefixlen = rd_u8(r);
                nic->service_prefixlen = rd_u8(r);
                if (rd_u8(r) != 0 && !r->why)
                        r->why = "IDENTITY NIC reserved byte is not 0";
                if (rd_take(r, 16, &b))
                        memcpy(nic->address, b, 16);
                if (rd_take(r, 16, &b))
                        memcpy(nic->gateway, b, 16);
        }
        id->entropy_size = rd_u16(r);
        if (!rd_take(r, id->entropy_size, &id->entropy))
                id->entropy = NULL;
}

/* The EXEC body: streams, flags, cwd, then argv and env, each led by its
 * count and NULL-terminated here. Sets r->why on the first fault. */
static void parse_exec(struct reader *r, struct vmgr_agent_msg *m) {
        size_t n;

        m->exec.stdin_stream = rd_u32(r);
        m->exec.stdout_stream = rd_u32(r);
        m->exec.stderr_stream = rd_u32(r);
        m->exec.flags = rd_u32(r);
        m->exec.cwd = rd_str(r);
        n = rd_u16(r);
        if (n > VMGR_AGENT_ARGS_MAX) {
                r->why = "EXEC has too many arguments";
                return;
        }
        m->exec.argc = n;
        for (size_t i = 0; i < n; i++)
                m->exec.argv[i] = rd_str(r);
        m->exec.argv[n] = NULL;
        n = rd_u16(r);
        if (n > VMGR_AGENT_ENV_MAX) {
                r->why = "EXEC environment too large";
                return;
        }
        m->exec.envc = n;
        for (size_t i = 0; i < n; i++)
                m->exec.env[i] = rd_str(r);
        m->exec.env[n] = NULL;
}

static void parse_body(struct reader *r, struct vmgr_agent_msg *m) {
        size_t n;

        switch (m->type) {
        case VMGR_AGENT_HELLO:
                m->hello.version_min = rd_u16(r);
                m->hello.version_max = rd_u16(r);
                m->hello.initial_window = rd_u32(r);
                m->hello.nonce = rd_u64(r);
                m->hello.software = rd_str(r);
                break;
        case VMGR_AGENT_INFO:
                parse_info(r, m);
                break;
        case VMGR_AGENT_EXEC:
                parse_exec(r, m);
                break;
        case VMGR_AGENT_DATA:
                m->data.size = r->left;
                rd_take(r, r->left, &m->data.data);
                break;
        case VMGR_AGENT_WINDOW:
                m->window = rd_u32(r);
                break;
        case VMGR_AGENT_EXIT:
                m->exit.status = (int32_t) rd_u32(r);
                m->exit.signal = (int32_t) rd_u32(r);
                n = rd_u8(r);
                if (n > 1 && !r->why)
                        r->why = "EXIT core flag is neither 0 nor 1";
                m->exit.core_dumped = n;
                break;
        case VMGR_AGENT_KILL:
                m->kill.signal = rd_u32(r);
                m->kill.flags = rd_u32(r);
                break;
        case VMGR_AGENT_FILE_PUT:
        case VMGR_AGENT_FILE_GET:
                m->file.stream = rd_u32(r);
                m->file.mode = rd_u32(r);
                m->file.flags = rd_u32(r);
                m->file.path = rd_str(r);
                break;
        case VMGR_AGENT_DONE:
                m->done.size = rd_u64(r);
                m->done.mode = rd_u32(r);
                break;
        case VMGR_AGENT_ERROR:
                m->error.error = (int32_t) rd_u32(r);
                m->error.message = rd_str(r);
                break;
        case VMGR_AGENT_PING:
        case VMGR_AGENT_PONG:
                m->ping.payload = rd_u64(r);
                break;
        case VMGR_AGENT_LOG:
                m->log.source = rd_u8(r);
                m->log.priority = rd_u8(r);
                if (rd_u16(r) != 0 && !r->why)
                        r->why = "LOG reserved field is not 0";
                m->log.realtime_usec = rd_u64(r);
                m->log.text = rd_str(r);
                break;
        case VMGR_AGENT_IDENTITY:
                parse_identity(r, m);
                break;
        case VMGR_AGENT_EOF:
        case VMGR_AGENT_SHUTDOWN:
        case VMGR_AGENT_REBOOT:
        default:
                break;
        }
}

int vmgr_agent_frame_parse(const void *frame, size_t len, struct vmgr_agent_msg *m, const char **reason) {
        struct reader r = { .p = frame, .left = len };
        const uint8_t *h;
        const char *why;

        if (len < VMGR_AGENT_HEADER_SIZE)
                why = "frame shorter than its header";
        else if (len > VMGR_AGENT_FRAME_MAX)
                why = "frame longer than the maximum";
        else {
                rd_take(&r, VMGR_AGENT_HEADER_SIZE, &h);
                if (memcmp(h, VMGR_AGENT_MAGIC, 4) != 0)
                        why = "bad magic";
                else if (h[5] != 0 || h[6] != 0 || h[7] != 0)
                        why = "reserved header bytes are not 0";
                else if (!vmgr_agent_type_to_string(h[4]))
                        why = "unknown message type";
                else {
                        memset(m, 0, offsetof(struct vmgr_agent_msg, hello));
                        m->type = h[4];
                        m->id = (uint32_t) h[8] | (uint32_t) h[9] << 8 | (uint32_t) h[10] << 16 |
                                (uint32_t) h[11] << 24;
                        parse_body(&r, m);
                        why = r.why;
                        if (!why && r.left > 0)
                                why = "trailing bytes after the message";
                        if (!why && vmgr_agent_msg_validate(m, &why) < 0 && !why)
                                why = "invalid message";
                }
        }
        if (why) {
                if (reason)
                        *reason = why;
                return -EBADMSG;
        }
        return 0;
}

/* --- streaming decoder ---------------------------------------------------- */

#define DECODER_BUFFER (2 * VMGR_AGENT_WIRE_MAX)

struct vmgr_agent_decoder {
        uint8_t buf[DECODER_BUFFER]; /* encoded bytes read, [start, end) pending */
        size_t start, end;
        size_t scanned;              /* bytes after start known to hold no delimiter */
        bool discarding;             /* inside an oversized frame: drop up to the next delimiter */
        uint8_t frame[VMGR_AGENT_FRAME_MAX];
        struct vmgr_agent_msg msg;
};

int vmgr_agent_decoder_new(struct vmgr_agent_decoder **ret) {
        struct vmgr_agent_decoder *d = malloc(sizeof(*d));
        if (!d)
                return -ENOMEM;
        vmgr_agent_decoder_reset(d);
        *ret = d;
        return 0;
}

struct vmgr_agent_decoder *vmgr_agent_decoder_free(struct vmgr_agent_decoder *d) {
        free(d);
        return NULL;
}

void vmgr_agent_decoder_reset(struct vmgr_agent_decoder *d) {
        d->start = d->end = d->scanned = 0;
        /* Whatever comes first may be the tail of an older frame. */
        d->discarding = true;
}

void *vmgr_agent_decoder_space(struct vmgr_agent_decoder *d, size_t *size) {
        /* Pending bytes are always fewer than VMGR_AGENT_WIRE_MAX (next()
         * drops longer ones), so moving them to the front leaves room. */
        if (d->end == sizeof(d->buf) || (d->start > 0 && d->start == d->end)) {
                memmove(d->buf, d->buf + d->start, d->end - d->start);
                d->end -= d->start;
                d->start = 0;
        }
        if (d->end == sizeof(d->buf)) {
                /* Only if next() was not called in between: start over. */
                d->start = d->end = d->scanned = 0;
                d->discarding = true;
        }
        *size = sizeof(d->buf) - d->end;
        return d->buf + d->end;
}

void vmgr_agent_decoder_advance(struct vmgr_agent_decoder *d, size_t n) {
        if (n > sizeof(d->buf) - d->end)
                n = sizeof(d->buf) - d->end;
        d->end += n;
}

int vmgr_agent_decoder_next(struct vmgr_agent_decoder *d, const struct vmgr_agent_msg **ret, const char **reason) {
        for (;;) {
                size_t pending = d->end - d->start;
                uint8_t *p = d->buf + d->start, *z;
                size_t len;
                int n;

                z = memchr(p + d->scanned, 0, pending - d->scanned);
                if (!z) {
                        d->scanned = pending;
                        if (pending < VMGR_AGENT_WIRE_MAX)
                                return 0;
                        /* No delimiter within the longest frame: drop it all. */
                        d->start = d->end;
                        d->scanned = 0;
                        if (d->discarding)
                                return 0;
                        d->discarding = true;
                        if (reason)
                                *reason = "frame longer than the maximum";
                        return -EBADMSG;
                }

                len = (size_t) (z - p);
                d->start += len + 1;
                d->scanned = 0;
                if (d->discarding) {
                        /* The tail of something we could not read: quietly gone. */
                        d->discarding = false;
                        continue;
                }
                if (len == 0)
                        continue; /* a lone delimiter: a sender resynchronising */

                n = vmgr_agent_cobs_decode(p, len, d->frame, sizeof(d->frame));
                if (n < 0) {
                        if (reason)
                                *reason = n == -ENOBUFS ? "frame longer than the maximum" : "bad COBS encoding";
                        return -EBADMSG;
                }
                if (vmgr_agent_frame_parse(d->frame, (size_t) n, &d->msg, reason) < 0)
                        return -EBADMSG;
                *ret = &d->msg;
                return 1;
        }
}

/* --- flow control --------------------------------------------------------- */

void vmgr_agent_send_window_init(struct vmgr_agent_send_window *w, uint32_t initial) {
        w->credit = initial > VMGR_AGENT_WINDOW_MAX ? VMGR_AGENT_WINDOW_MAX : initial;
}

int vmgr_agent_send_window_grant(struct vmgr_agent_send_window *w, uint32_t increment) {
        if (increment > VMGR_AGENT_WINDOW_MAX - w->credit)
                return -EOVERFLOW;
        w->credit += increment;
        return 0;
}

size_t vmgr_agent_send_window_take(struct vmgr_agent_send_window *w, size_t want) {
        size_t n = want;

        if (n > w->credit)
                n = w->credit;
        if (n > VMGR_AGENT_DATA_MAX)
                n = VMGR_AGENT_DATA_MAX;
        w->credit -= (uint32_t) n;
        return n;
}

void vmgr_agent_recv_window_init(struct vmgr_agent_recv_window *w, uint32_t size) {
        if (size > VMGR_AGENT_WINDOW_MAX)
                size = VMGR_AGENT_WINDOW_MAX;
        *w = (struct vmgr_agent_recv_window) { .size = size, .credit = size };
}

int vmgr_agent_recv_window_receive(struct vmgr_agent_recv_window *w, size_t n) {
        if (n > w->credit)
                return -EPROTO;
        w->credit -= (uint32_t) n;
        w->buffered += (uint32_t) n;
        return 0;
}

uint32_t vmgr_agent_recv_window_consume(struct vmgr_agent_recv_window *w, size_t n) {
        uint32_t inc;

        if (n > w->buffered)
                n = w->buffered;
        w->buffered -= (uint32_t) n;
        w->consumed += (uint32_t) n;
        if (w->consumed == 0 || w->consumed < w->size / 2)
                return 0;
        inc = w->consumed;
        w->consumed = 0;
        w->credit += inc;
        return inc;
}
