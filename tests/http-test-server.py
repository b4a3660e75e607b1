#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An HTTP server for vmgr's tests that behaves well or badly on request.

Usage: http-test-server.py [ADDRESS [PORT [MODE]]]  (default 127.0.0.1, any port)

It prints the port it listens on, one line, and serves until killed. MODE,
or else the first path component, picks the behaviour (see the mode_*
methods); each request's line and headers go to stderr. A guest
that attacks vmgrd's HTTP client is played by the bad ones. Every endless
answer stops by itself after a bounded time or amount, or when the client
goes away.
"""

import gzip
import os
import socket
import socketserver
import sys
import time

LIMIT_SECONDS = 60
LIMIT_BYTES = 1 << 30


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(8192)
        if not line:
            return
        self.headers = {}
        self.raw_headers = []
        while True:
            h = self.rfile.readline(8192)
            if h in (b"\r\n", b"\n", b""):
                break
            self.raw_headers.append(h)
            k, _, v = h.decode("latin-1").partition(":")
            self.headers[k.strip().lower()] = v.strip()
        parts = line.split()
        self.path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
        sys.stderr.write("REQUEST %r %r\n" % (line, self.raw_headers))
        sys.stderr.flush()
        mode = self.server.mode or self.path.split("?")[0].strip("/").split("/")[0].replace("-", "_")
        try:
            getattr(self, "mode_" + mode, self.mode_notfound)()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send(self, status, headers, body=b""):
        out = "HTTP/1.1 %s\r\n" % status
        for k, v in headers:
            out += "%s: %s\r\n" % (k, v)
        self.wfile.write(out.encode("latin-1") + b"\r\n" + body)
        self.wfile.flush()

    def endless(self, chunk, max_bytes=LIMIT_BYTES):
        """Write chunk again and again until the client goes away or a limit."""
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < LIMIT_SECONDS and sent < max_bytes:
            self.wfile.write(chunk)
            sent += len(chunk)

    def mode_notfound(self):
        self.send("404 Not Found", [("Content-Length", "0")])

    def mode_ok(self):
        """200 with a body that says who asked and what X-Test said."""
        body = ("peer=%s x-test=%s range=%s\n" % (self.client_address[0], self.headers.get("x-test", ""),
                                                  self.headers.get("range", ""))).encode()
        self.send("200 OK", [("Content-Length", str(len(body))), ("X-Served-By", "http-test-server")], body)

    def mode_status503(self):
        self.send("503 Service Unavailable", [("Content-Length", "4")], b"busy")

    def mode_redirect(self):
        """A redirect that must not be followed."""
        self.send("302 Found", [("Location", "http://127.0.0.1:1/ok"), ("Content-Length", "5")], b"moved")

    def mode_chunked(self):
        """A streamed body in ten chunks with pauses between them."""
        self.send("200 OK", [("Transfer-Encoding", "chunked")])
        for i in range(10):
            data = b"chunk %d\n" % i
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(0.05)
        self.wfile.write(b"0\r\n\r\n")

    def mode_gzip(self):
        """A compressed body the client did not ask to be decoded."""
        body = gzip.compress(b"x" * 100000)
        self.send("200 OK", [("Content-Encoding", "gzip"), ("Content-Length", str(len(body)))], body)

    def mode_bigheaders(self):
        """Header lines without end."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self.endless(b"X-Junk: " + b"a" * 1000 + b"\r\n")

    def mode_endless(self):
        """A body without end."""
        self.send("200 OK", [("Content-Type", "application/octet-stream")])
        self.endless(b"z" * 65536)

    def mode_stall(self):
        """Headers, then nothing at all for a long time."""
        self.send("200 OK", [("Content-Length", "100")])
        time.sleep(LIMIT_SECONDS)

    def mode_journal_garbage(self):
        """Export-format-looking garbage without end: long names, binary
        sizes out of step, lines that never end."""
        self.send("200 OK", [("Content-Type", "application/vnd.fdo.journal")])
        junk = (b"MESSAGE=" + b"m" * 70000 + b"\n" + b"A" * 5000 + b"\n" + b"BIN\n" + b"\xff" * 8 + b"\n" +
                b"__CURSOR=" + b"c" * 4000 + b"\n\n" + os.urandom(4096) + b"\n\n")
        self.endless(junk)

    def mode_journal_flood(self):
        """Valid entries as fast as the client takes them."""
        self.send("200 OK", [("Content-Type", "application/vnd.fdo.journal")])
        start, i = time.monotonic(), 0
        while time.monotonic() - start < LIMIT_SECONDS:
            batch = b"".join(b"__CURSOR=s=flood;i=%x\n__REALTIME_TIMESTAMP=1\nSYSLOG_IDENTIFIER=flood\n"
                             b"MESSAGE=flood line %d padding padding padding padding padding\n\n" % (n, n)
                             for n in range(i, i + 200))
            self.wfile.write(batch)
            i += 200

    def mode_journal_bigbinary(self):
        """One entry whose MESSAGE is a 64 MiB binary field, then a good one."""
        self.send("200 OK", [("Content-Type", "application/vnd.fdo.journal")])
        size = 64 * 1024 * 1024
        self.wfile.write(b"__CURSOR=s=big;i=1\nMESSAGE\n" + size.to_bytes(8, "little"))
        self.endless(b"\x00" * 65536, size)
        self.wfile.write(b"\n\n__CURSOR=s=big;i=2\nSYSLOG_IDENTIFIER=after\nMESSAGE=after the big one\n\n")
        time.sleep(LIMIT_SECONDS)


    def mode_journal_badcursor(self):
        """An entry with a good cursor, then one whose cursor (a binary
        field) would add a header to the next request; then the end."""
        self.send("200 OK", [("Content-Type", "application/vnd.fdo.journal"), ("Connection", "close")])
        bad = b"s=bad;i=2\r\nX-Injected: yes"
        self.wfile.write(b"__CURSOR=s=good;i=1\nSYSLOG_IDENTIFIER=t\nMESSAGE=good cursor\n\n" +
                         b"__CURSOR\n" + len(bad).to_bytes(8, "little") + bad +
                         b"\nSYSLOG_IDENTIFIER=t\nMESSAGE=bad cursor\n\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    mode = None


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    Server.mode = sys.argv[3].replace("-", "_") if len(sys.argv) > 3 else None
    if ":" in address:
        Server.address_family = socket.AF_INET6
    with Server((address, port), Handler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
