"""COMPRESS=DEFLATE (RFC 4978) through the real listener, with a zlib-wrapped socket."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from deflate_client import DeflateClient
from imap_e2e import PASSWORD, USER, running
from imap_util import message

pytestmark = pytest.mark.e2e


def _session(port: int) -> None:
    cl = DeflateClient(port)
    try:
        out = cl.command("a", "COMPRESS DEFLATE")  # not before authentication
        assert out.startswith(b"a BAD"), out
        caps = cl.command("b", f"LOGIN {USER} {PASSWORD}")
        assert b"COMPRESS=DEFLATE" in caps, caps
        assert cl.command("c", "COMPRESS GZIP").startswith(b"c BAD")  # §3: unknown argument
        assert cl.command("d", "COMPRESS DEFLATE") == b"d OK DEFLATE active\r\n"
        cl.start_compress()  # §3: everything after the tagged OK's CRLF is compressed
        assert cl.command("e", "NOOP").endswith(b"e OK NOOP completed\r\n")
        out = cl.command("f", "COMPRESS DEFLATE")
        assert out.startswith(b"f NO [COMPRESSIONACTIVE]"), out
        body = message("compressed").decode()
        cl.send(f"g APPEND INBOX {{{len(body)}+}}\r\n{body}\r\n".encode())
        out = cl.read_until(b"\r\n")
        assert out.startswith(b"g OK"), out
        assert b"* 1 EXISTS" in cl.command("h", "SELECT INBOX")
        before = cl.wire_in
        out = cl.command("i", "FETCH 1:* (ENVELOPE BODY.PEEK[])")
        assert b'"compressed"' in out and b"Hello world" in out, out
        assert cl.wire_in - before < len(out)  # it really was compressed on the wire
        assert cl.command("z", "LOGOUT").startswith(b"* BYE")
    finally:
        cl.close()


@pytest_twisted.ensureDeferred
async def test_compress_deflate_over_the_listener(tmp_path) -> None:
    async with running(tmp_path) as srv:
        await deferToThread(_session, srv.imap_port)


def _bomb(port: int) -> bytes:
    import zlib

    cl = DeflateClient(port)
    try:
        cl.command("b", f"LOGIN {USER} {PASSWORD}")
        assert cl.command("d", "COMPRESS DEFLATE").startswith(b"d OK")
        cl.start_compress()
        z = cl.deflate
        assert z is not None
        # a line that never ends: ~60 MB inflated from well under 100 KB on the wire
        cl.sock.sendall(z.compress(b"x NOOP ") + z.flush(zlib.Z_SYNC_FLUSH))
        chunk = z.compress(b"a" * (1 << 20)) + z.flush(zlib.Z_SYNC_FLUSH)
        try:
            for _ in range(60):
                cl.sock.sendall(chunk)
            while True:  # the server answers TOOBIG or closes; reads are bounded
                cl._recv()
        except (ConnectionError, OSError):
            return cl.buf
    finally:
        cl.close()


@pytest_twisted.ensureDeferred
async def test_compressed_flood_is_refused(tmp_path) -> None:
    """A small DEFLATE stream inflating past the line limit gets BAD [TOOBIG] and a close,
    like plain input (no unbounded inflation in memory)."""
    async with running(tmp_path) as srv:
        out = await deferToThread(_bomb, srv.imap_port)
        assert b"BAD [TOOBIG]" in out, out[:200]
