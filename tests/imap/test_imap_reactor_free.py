"""Issue 10: long SEARCH/SORT/THREAD work must not stall the reactor.

The real service on loopback; the search work is made to block on an event the test
controls.  Another client's NOOP is answered while it blocks: the work runs on a worker
thread (``Session.Offload``), not on the reactor.  Were it on the reactor, the NOOP could
not be answered until the event's bounded wait ran out, and the test would see that.
"""

from __future__ import annotations

import imaplib

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from imap_util import deliver, message
from imap_e2e import PASSWORD, USER, Gate, raw_selected, running
from dualmail.imap.ops import search as search_ops

pytestmark = pytest.mark.e2e


def _client(port: int) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    m.login(USER, PASSWORD)
    m.select("INBOX")
    return m


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("command", [("THREAD", "REFERENCES", "UTF-8", "ALL"),
                                     ("SORT", "(SUBJECT)", "UTF-8", "ALL"),
                                     ("SEARCH", "TEXT", "subject")])
async def test_other_clients_are_answered_while_a_search_runs(tmp_path, monkeypatch, command) -> None:
    # the gate is where the work of every SEARCH/SORT/THREAD that is not ``_quick`` (one
    # range read of the IMAP index) starts, whether the IMAP indexes or the engine answer it
    gate = Gate(search_ops._matches)

    async with running(tmp_path) as srv:
        for i in range(3):
            deliver(srv.store, srv.account, raw=message(f"subject {i}"))
        a, b = await deferToThread(_client, srv.imap_port), await deferToThread(_client, srv.imap_port)
        try:
            monkeypatch.setattr(search_ops, "_matches", gate)
            long_one = deferToThread(a.uid, *command)
            assert await deferToThread(gate.started.wait, 20)
            typ, _ = await deferToThread(b.noop)  # answered while the search blocks
            assert typ == "OK"
            gate.release()
            typ, data = await long_one
            assert typ == "OK" and data[0], data
            assert gate.outcome == {"released": True}, gate.outcome
        finally:
            gate.release()
            monkeypatch.undo()
            await deferToThread(a.logout)
            await deferToThread(b.logout)


def _raw(port: int, send: bytes, login: bool) -> bytes:
    """Send ``send`` (after LOGIN if asked) and read until the server closes (bounded)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        f.readline()  # greeting
        if login:
            s.sendall(f"l LOGIN {USER} {PASSWORD}\r\n".encode())
            while not f.readline().startswith(b"l "):
                pass
        s.sendall(send)
        return f.read()  # to EOF: the server must close


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("send,login,first", [
    # just past the limit (64 KiB) and no more: what the server has not read when it closes
    # would make the kernel reset the connection, and the answer could be lost to the test
    (b"a NOOP " + b"x" * (64 * 1024), False, b"a BAD [TOOBIG] Command line too long"),
    (b"a APPEND INBOX {4294967296+}\r\n", True, b"a BAD [TOOBIG] Literal too large"),
])
async def test_too_much_data_is_refused_at_once_and_closed(tmp_path, send, login, first) -> None:
    """Issue 10, over a real socket: a line over the limit without CRLF, or a 4 GiB
    non-synchronising literal, gets BAD [TOOBIG] and BYE at once and the connection closes
    (RFC 7888 §4) -- the client never sends the rest, so the read would time out if the
    server waited for it."""
    async with running(tmp_path) as srv:
        out = await deferToThread(_raw, srv.imap_port, send, login)
        assert out.split(b"\r\n")[:2] == [first, b"* BYE Too much data sent; closing the connection"], out


def _inprogress(port: int, gate: Gate) -> tuple[bytes, bytes]:
    s, f = raw_selected(port)
    with s:
        s.sendall(b"x UID SEARCH TEXT one\r\n")
        first = f.readline()  # bounded by the socket timeout
        gate.release()
        rest = b""
        while not rest.endswith(b"x OK SEARCH completed\r\n"):
            rest += f.readline()
        return first, rest


@pytest_twisted.ensureDeferred
async def test_inprogress_while_a_search_runs(tmp_path, monkeypatch) -> None:
    """RFC 9585 §3: a command still running is reported ``* OK [INPROGRESS ("tag" NIL NIL)]``."""
    from dualmail.imap import protocol

    # the gate is where the work of a SEARCH that is not ``_quick`` starts
    gate = Gate(search_ops._matches)
    monkeypatch.setattr(protocol, "INPROGRESS_INTERVAL", 0.05)
    async with running(tmp_path) as srv:
        deliver(srv.store, srv.account, raw=message("one"))
        monkeypatch.setattr(search_ops, "_matches", gate)
        try:
            first, rest = await deferToThread(_inprogress, srv.imap_port, gate)
        finally:
            gate.release()
            monkeypatch.undo()
        assert first == b'* OK [INPROGRESS ("x" NIL NIL)] Still working\r\n'
        assert rest.endswith(b"* SEARCH 1\r\nx OK SEARCH completed\r\n") or b"x OK" in rest, rest
