/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libFuzzer target for lib/agent-proto: whatever bytes arrive, the decoder
 * must neither crash nor grow, and every message it accepts must encode
 * again to a frame that decodes to the same encoding. docs/agent-protocol.md
 * says how to build and run it.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t wire1[VMGR_AGENT_WIRE_MAX], wire2[VMGR_AGENT_WIRE_MAX], frame[VMGR_AGENT_FRAME_MAX];
static struct vmgr_agent_msg again;

/* Encode m, decode that, encode again: both encodings must be equal. */
static void check_roundtrip(const struct vmgr_agent_msg *m) {
        const char *why;
        int n1, n2, f;

        n1 = vmgr_agent_msg_encode(m, wire1, sizeof(wire1));
        if (n1 < 0)
                abort(); /* the decoder accepted what the encoder refuses */
        f = vmgr_agent_cobs_decode(wire1, (size_t) n1 - 1, frame, sizeof(frame));
        if (f < 0)
                abort();
        if (vmgr_agent_frame_parse(frame, (size_t) f, &again, &why) < 0)
                abort();
        n2 = vmgr_agent_msg_encode(&again, wire2, sizeof(wire2));
        if (n2 != n1 || memcmp(wire1, wire2, (size_t) n1) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct vmgr_agent_decoder *d;
        static struct vmgr_agent_msg m;
        const struct vmgr_agent_msg *got;
        const char *why;
        size_t chunk, off = 0;
        int r;

        if (!d && vmgr_agent_decoder_new(&d) < 0)
                abort();

        /* The input as one decoded frame. */
        if (vmgr_agent_frame_parse(data, size, &m, &why) == 0)
                check_roundtrip(&m);

        /* The input as a byte stream, in chunks the first byte chooses. */
        if (size == 0)
                return 0;
        chunk = (size_t) data[0] * 97 + 1;
        vmgr_agent_decoder_reset(d);
        while (off < size) {
                size_t room, k;
                void *space = vmgr_agent_decoder_space(d, &room);

                if (room == 0)
                        abort();
                k = size - off < chunk ? size - off : chunk;
                if (k > room)
                        k = room;
                memcpy(space, data + off, k);
                vmgr_agent_decoder_advance(d, k);
                off += k;
                while ((r = vmgr_agent_decoder_next(d, &got, &why)) != 0)
                        if (r > 0)
                                check_roundtrip(got);
        }
        return 0;
}
