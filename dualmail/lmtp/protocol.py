"""The thin Twisted adapter for LMTP: bytes -> ``LMTPSession`` -> transport, plus the idle timer.

Everything about the protocol is in the sans-I/O ``core``; everything about addresses and
the store in ``delivery``.  This module only moves bytes, closes after QUIT, logs
connections, and closes an idle connection after ``timeout`` seconds with 421 4.4.2 (RFC
5321 §4.5.3.2.7 asks servers to wait at least 5 minutes).

A client that pipelines commands without reading the replies cannot grow the server's
write buffer without bound: the protocol is its transport's push producer, and while the
transport's buffer is full it stops reading from that client.

``make_factories(store, options, reactor, after_delivery)`` is what ``DualmailService``
calls; ``after_delivery`` is the post-delivery hook documented in ``delivery``.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import interfaces
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer  # type: ignore[import-untyped]

from .core import Limits, LMTPSession
from .delivery import AfterDelivery, StoreDelivery, no_after_delivery


def _peer_text(peer: Any) -> str:
    host = getattr(peer, "host", None)
    if host is not None:
        return f"{host}:{getattr(peer, 'port', '')}"
    return "unix" if getattr(peer, "name", None) in (None, b"", "") else f"unix:{peer.name}"


@implementer(interfaces.IPushProducer)
class LMTPServerProtocol(Protocol):
    log = Logger()
    transport: Any

    def __init__(self, factory: LMTPFactory) -> None:
        self.factory = factory
        self.session: LMTPSession | None = None
        self.peer = ""
        self._timer: Any = None

    def _rearm(self) -> None:
        """(Re)start the idle timer on the factory's (injected) clock."""
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.factory.timeout)
        else:
            self._timer = self.factory.reactor.callLater(self.factory.timeout, self.timeoutConnection)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionMade(self) -> None:
        f = self.factory
        self.peer = _peer_text(self.transport.getPeer())
        handler = StoreDelivery(f.store, hostname=f.hostname, peer=self.peer,
                                after_delivery=f.after_delivery, now=f.reactor.seconds,
                                quota_tempfail=f.quota_tempfail)
        self.session = LMTPSession(handler, f.hostname, f.limits)
        self.transport.registerProducer(self, True)
        self.log.info("LMTP connection from {peer}", peer=self.peer)
        self.transport.write(self.session.greeting())
        self._rearm()

    def dataReceived(self, data: bytes) -> None:
        session = self.session
        if session is None or session.closed:
            return
        self._rearm()
        try:
            out = session.receive(data)
        except Exception:
            self.log.failure("LMTP session failed for {peer}", peer=self.peer)
            session.connection_lost()
            out = b"421 4.3.0 Internal error, closing connection\r\n"
        if out:
            self.transport.write(out)
        if session.closed:
            self._disarm()
            self._close()

    # IPushProducer: the transport's write buffer is full / has drained
    def pauseProducing(self) -> None:
        self.transport.pauseProducing()  # stop reading from the client

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass

    def timeoutConnection(self) -> None:
        self._timer = None
        if self.session is not None and not self.session.closed:
            self.log.info("LMTP connection from {peer} timed out", peer=self.peer)
            self.transport.write(self.session.timeout_reply())
        self._close()

    def _close(self) -> None:
        """Close once the replies are out. The producer goes first: with it registered and
        paused, Twisted's drain path resumes it instead of finishing the close, and the
        connection would stay open forever (a QUIT behind a pipelined flood)."""
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self._disarm()
        self.transport.unregisterProducer()
        if self.session is not None:
            if self.session.envelope is not None and not self.session.closed:
                self.log.info("LMTP connection from {peer} lost mid-transaction: nothing delivered",
                              peer=self.peer)
            self.session.connection_lost()


class LMTPFactory(Factory):
    protocol = LMTPServerProtocol
    noisy = False

    def __init__(self, store: Any, reactor: Any, *, hostname: str | None = None,
                 limits: Limits | None = None, after_delivery: AfterDelivery = no_after_delivery,
                 timeout: float = 300.0, quota_tempfail: bool = False) -> None:
        self.store = store
        self.quota_tempfail = quota_tempfail
        self.reactor = reactor
        self.hostname = hostname or socket.gethostname() or "localhost"
        self.limits = limits or Limits()
        self.after_delivery = after_delivery
        self.timeout = timeout

    def buildProtocol(self, addr: Any) -> LMTPServerProtocol:
        return LMTPServerProtocol(self)


def make_factories(store: Any, options: Any, reactor: Any,
                   after_delivery: AfterDelivery = no_after_delivery) -> list[tuple[str, Any]]:
    size = options.get("max-message-size") if hasattr(options, "get") else None
    limits = Limits(max_message_size=size) if size else Limits()  # one figure: = APPENDLIMIT
    tempfail = bool(options.get("quota-tempfail")) if hasattr(options, "get") else False
    return [("lmtp", LMTPFactory(store, reactor, limits=limits, after_delivery=after_delivery,
                                 quota_tempfail=tempfail))]
