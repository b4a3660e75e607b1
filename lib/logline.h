/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Turning a byte stream meant for a terminal (a VM's serial console) into
 * plain log lines: split at newlines, keep a partial line until its end
 * arrives, cut lines that never end at VMGR_LINE_MAX, and strip what only a
 * terminal understands (ANSI escape and control sequences, carriage returns,
 * other control characters). Pure: no I/O, no allocation.
 */

#include <stddef.h>

#define VMGR_LINE_MAX 4096

typedef void (*vmgr_line_cb)(const char *line, size_t len, void *userdata);

struct vmgr_line_splitter {
        char buf[VMGR_LINE_MAX];
        size_t len;
};

/* Feed bytes; cb gets every line completed by them, stripped (see
 * vmgr_line_strip), without its newline. A line longer than VMGR_LINE_MAX
 * comes out in pieces of that size. */
void vmgr_line_feed(struct vmgr_line_splitter *s, const char *p, size_t n, vmgr_line_cb cb, void *userdata);

/* Emit what is buffered as a line (the stream ended without a newline). */
void vmgr_line_flush(struct vmgr_line_splitter *s, vmgr_line_cb cb, void *userdata);

/* Strip one line in place and return its new length:
 *   - ESC [ ... final byte (CSI: colours, cursor movement), ESC ] ... BEL or
 *     ESC \ (OSC: titles), ESC P/X/^/_ ... ESC \ (DCS and other strings),
 *     ESC followed by intermediates and one final byte (charset selection,
 *     keypad modes), and a lone ESC at the end;
 *   - a carriage return: what came before it on the line is what a terminal
 *     would overwrite, so it goes (a trailing one, as in "\r\n", is dropped);
 *   - every other C0 control character and DEL, except TAB.
 * Bytes from 0x80 up are left alone (UTF-8). */
size_t vmgr_line_strip(char *line, size_t len);
