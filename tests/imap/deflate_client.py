"""A minimal blocking IMAP client that can turn on COMPRESS=DEFLATE (RFC 4978): imaplib
and imapclient cannot.  Raw DEFLATE (wbits -15) both ways, a sync flush after each
command; every read is bounded by the socket timeout."""

from __future__ import annotations

import socket
import zlib


class DeflateClient:
    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.deflate: "zlib._Compress | None" = None
        self.inflate: "zlib._Decompress | None" = None
        self.buf = b""
        self.wire_in = 0  # octets received on the socket (compressed or not)
        self.greeting = self.read_until(b"\r\n")

    def start_compress(self) -> None:
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.wire_in += len(chunk)
        self.buf += self.inflate.decompress(chunk) if self.inflate is not None else chunk

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._recv()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def command(self, tag: str, line: str) -> bytes:
        """Send ``tag line`` and return everything up to the tagged response's CRLF."""
        self.send(f"{tag} {line}\r\n".encode())
        out = b""
        while True:
            ln = self.read_until(b"\r\n")
            out += ln
            if ln.startswith(tag.encode() + b" "):
                return out

    def close(self) -> None:
        self.sock.close()
