"""The Twisted adapter on in-memory transports: greeting, pipelined bytes, QUIT closes,
the idle timer (RFC 5321 §4.5.3.2.7) on an injected clock, a lost connection mid-DATA,
and the factory ``make_factories`` hands the service."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.testing import MemoryReactorClock, StringTransport

from dualmail.lmtp.protocol import LMTPFactory, make_factories
from dualmail.store.check import all_emails

from lmtp_util import PASSWORD, USER


def connect(store, reactor=None, peer=None, **kw):
    reactor = reactor or MemoryReactorClock()
    factory = LMTPFactory(store, reactor, hostname="mx.test", **kw)
    proto = factory.buildProtocol(None)
    transport = StringTransport(peerAddress=peer or IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(transport)
    return proto, transport, reactor


def test_greeting_pipelined_delivery_and_quit(store):
    a = store.create_account(USER, PASSWORD)
    hooks = []
    proto, t, _r = connect(store, after_delivery=lambda *args: hooks.append(args))
    assert t.value() == b"220 mx.test LMTP dualmail ready\r\n"
    t.clear()
    proto.dataReceived(b"LHLO c\r\nMAIL FROM:<b@c.d>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
    proto.dataReceived(b"Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    assert t.value().endswith(b"250 2.0.0 <alice@example.org> delivered\r\n221 2.0.0 mx.test closing connection\r\n")
    assert t.disconnecting
    with store.read(a) as v:
        [(e, rec)] = all_emails(v).items()
        raw = v.blob(rec["blob"])
    assert b"Received: from c (127.0.0.1:40000)\r\n" in raw
    assert hooks == [(a, e, raw, "b@c.d")]


def test_idle_connection_is_closed_with_421(store):
    proto, t, reactor = connect(store)
    reactor.advance(299)
    proto.dataReceived(b"NOOP\r\n")  # activity resets the timer
    reactor.advance(299)
    assert not t.disconnecting
    t.clear()
    reactor.advance(2)
    assert t.value() == b"421 4.4.2 mx.test idle too long, closing\r\n" and t.disconnecting


def test_lost_mid_data_delivers_nothing_and_stops_the_timer(store):
    a = store.create_account(USER, PASSWORD)
    proto, t, reactor = connect(store)
    proto.dataReceived(b"LHLO c\r\nMAIL FROM:<b@c.d>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: x\r\n\r\nhalf")
    proto.connectionLost(None)
    assert reactor.getDelayedCalls() == []
    proto.dataReceived(b"\r\n.\r\n")  # late bytes are ignored
    with store.read(a) as v:
        assert all_emails(v) == {}


def test_unix_peer_and_a_handler_crash_answers_421(store, monkeypatch):
    proto, t, _r = connect(store, peer=UNIXAddress(None))
    assert proto.peer == "unix"

    def boom(data):
        raise RuntimeError("bug")

    monkeypatch.setattr(proto.session, "receive", boom)
    t.clear()
    proto.dataReceived(b"NOOP\r\n")
    assert t.value() == b"421 4.3.0 Internal error, closing connection\r\n" and t.disconnecting


def test_make_factories_passes_the_service_hook(store):
    hook = object()
    [(kind, factory)] = make_factories(store, {}, MemoryReactorClock(), hook)  # type: ignore[arg-type]
    assert kind == "lmtp" and factory.after_delivery is hook and factory.limits.max_recipients == 100


def test_a_full_write_buffer_stops_reading_from_the_client(store):
    proto, t, _r = connect(store)
    assert t.producer is proto and t.streaming
    proto.pauseProducing()  # what the transport does when its buffer is full
    assert t.producerState == "paused"
    proto.resumeProducing()
    assert t.producerState == "producing"
    proto.connectionLost(None)
    assert t.producer is None
