"""Large responses leave in large sends: every IMAP connection's socket, plain, after
STARTTLS and under implicit TLS, hands the kernel up to ``protocol._SEND_LIMIT`` per
reactor turn instead of Twisted's 128 KiB, and a message of several of those arrives
byte for byte (RFC 9051 §6.4.5 BODY[])."""

from __future__ import annotations

import imaplib
import os
import ssl
from typing import Any

import pytest_twisted
from twisted.internet import protocol as tproto
from twisted.internet.abstract import FileDescriptor
from twisted.internet.threads import deferToThread
from twisted.protocols import policies

from dualmail.imap import protocol as imap_protocol
from imap_e2e import PASSWORD, USER, running
from test_imap_e2e_clients import _tls_files


def test_the_limit_is_set_on_the_socket_under_a_wrapper() -> None:
    class Socketish:
        SEND_LIMIT = FileDescriptor.SEND_LIMIT

    inner = Socketish()
    wrapper = policies.ProtocolWrapper(policies.WrappingFactory(tproto.Factory()), tproto.Protocol())
    wrapper.transport = inner  # forwards getattr, as Twisted's TLS wrapper does
    imap_protocol._large_sends(wrapper)
    assert inner.SEND_LIMIT == imap_protocol._SEND_LIMIT > FileDescriptor.SEND_LIMIT
    assert Socketish.SEND_LIMIT == FileDescriptor.SEND_LIMIT  # the class is left alone
    imap_protocol._large_sends(object())  # no socket under it (a test transport): nothing


def _connect(port: int, imaps_port: int, ctx: ssl.SSLContext) -> list[imaplib.IMAP4]:
    plain = imaplib.IMAP4("127.0.0.1", port)
    upgraded = imaplib.IMAP4("127.0.0.1", port)
    upgraded.starttls(ctx)
    implicit = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx)
    for c in (plain, upgraded, implicit):
        c.login(USER, PASSWORD)
        c.select("INBOX")
    return [plain, upgraded, implicit]


def _fetch_all(clients: list[imaplib.IMAP4], raw: bytes) -> list[bytes]:
    clients[0].append("INBOX", None, None, raw)
    out = []
    for c in clients:
        c.select("INBOX")
        typ, data = c.uid("FETCH", "1", "(BODY.PEEK[])")
        assert typ == "OK"
        out.append(data[0][1])
        c.logout()
    return out


async def _sockets(service: Any) -> list[Any]:
    """The TCP transport under each IMAP connection the server holds."""
    out = []
    for name in ("imap", "imaps"):
        for port in await service.bound_ports(name):
            f = port.factory
            for conn in getattr(f, "wrappedFactory", f).connections:
                t = conn.transport
                while not isinstance(t, FileDescriptor):
                    t = t.transport
                out.append(t)
    return out


@pytest_twisted.ensureDeferred
async def test_a_large_message_over_plain_starttls_and_implicit_tls(tmp_path: Any) -> None:
    cert, key, ctx = _tls_files(tmp_path)
    async with running(tmp_path, "--tls-cert", cert, "--tls-key", key, imaps=True) as srv:
        clients = await deferToThread(_connect, srv.imap_port, srv.imaps_port, ctx)
        socks = await _sockets(srv.service)
        assert len(socks) == 3
        assert {s.SEND_LIMIT for s in socks} == {imap_protocol._SEND_LIMIT}
        body = os.urandom(3 * imap_protocol._SEND_LIMIT).hex().encode()
        lines = b"\r\n".join(body[i:i + 76] for i in range(0, len(body), 76))
        raw = b"From: a@example.org\r\nSubject: big\r\n\r\n" + lines + b"\r\n"
        got = await deferToThread(_fetch_all, clients, raw)
        assert got == [raw, raw, raw]
