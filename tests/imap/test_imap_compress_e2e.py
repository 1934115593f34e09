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
