"""The SMTP client (``RelaySender``) over an in-memory transport: the
command sequence with XCLIENT (Postfix XCLIENT_README: after EHLO, only the
attributes offered, xtext-encoded, then EHLO again), its refusal falling
back to a plain session, and the outcome reported once."""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from dualmail.submission.relay import RelayFactory
from tests.submission.submission_util import config


def session(xclient_offer: bytes | None, xclient_reply: bytes = b"220 new greeting"):
    factory = RelayFactory(config(), "alice@example.org", ["bob@example.net"], b"Subject: x\r\n\r\nhi\r\n",
                           [("NAME", "[UNAVAILABLE]"), ("ADDR", "192.0.2.7"), ("LOGIN", "al+ce=x@example.org")])
    outcomes = []
    factory.result.addCallback(outcomes.append)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)

    def server(line: bytes) -> list[bytes]:
        transport.clear()
        proto.dataReceived(line + b"\r\n")
        for _ in range(100):  # the DATA payload is a pull producer (FileSender)
            if transport.producer is None:
                break
            transport.producer.resumeProducing()
        return [x for x in transport.value().split(b"\r\n") if x]

    assert server(b"220 smarthost ESMTP") == [b"EHLO dualmail.test"]
    ehlo = b"250-smarthost\r\n250-PIPELINING\r\n" + (b"250-XCLIENT " + xclient_offer + b"\r\n"
                                                      if xclient_offer is not None else b"") + b"250 8BITMIME"
    return server, ehlo, outcomes


def test_xclient_after_ehlo_then_ehlo_again():
    server, ehlo, outcomes = session(b"ADDR LOGIN PROTO")
    # NAME is not offered: not sent; "+" and "=" are xtext-encoded (RFC 3461 §4)
    assert server(ehlo) == [b"XCLIENT ADDR=192.0.2.7 LOGIN=al+2Bce+3Dx@example.org"]
    assert server(b"220 smarthost ESMTP") == [b"EHLO dualmail.test"]
    assert server(ehlo) == [b"MAIL FROM:<alice@example.org>"]  # XCLIENT only once
    assert server(b"250 2.1.0 Ok") == [b"RCPT TO:<bob@example.net>"]
    assert server(b"250 2.1.5 Ok") == [b"DATA"]
    assert server(b"354 go")[-1] == b"."
    assert outcomes == []
    server(b"250 2.0.0 Ok: queued")
    [attempt] = outcomes
    assert attempt.transaction and attempt.code == 250 and attempt.rcpt == {"bob@example.net": (250, "250 2.1.5 Ok")}


def test_xclient_refused_goes_on_without_it():
    server, ehlo, outcomes = session(b"NAME ADDR LOGIN")
    assert server(ehlo) == [b"XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.7 LOGIN=al+2Bce+3Dx@example.org"]
    assert server(b"550 5.7.0 not authorized") == [b"MAIL FROM:<alice@example.org>"]
    assert outcomes == []


def test_no_xclient_when_not_offered():
    server, ehlo, outcomes = session(None)
    assert server(ehlo) == [b"MAIL FROM:<alice@example.org>"]
    server(b"550 5.7.1 relay denied")
    [attempt] = outcomes
    assert attempt.transaction and attempt.code == 550 and attempt.text == "550 5.7.1 relay denied"
