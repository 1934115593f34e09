"""JMAP: open HTTP connections per non-loopback address are capped (issue 17); past the
cap a connection gets 503 with Retry-After and is closed, the others go on."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from dualmail.jmap.service import JMAPSite, UploadJanitor


def connect(site: JMAPSite, host: str):
    addr = IPv4Address("TCP", host, 40000)
    proto = site.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def test_http_connections_per_ip_capped(store) -> None:
    site = JMAPSite(Resource(), UploadJanitor(store, MemoryReactorClock()), max_per_ip=2)
    a, _ = connect(site, "192.0.2.1")
    connect(site, "192.0.2.1")
    _, refused = connect(site, "192.0.2.1")
    head = refused.value().split(b"\r\n")
    assert head[0] == b"HTTP/1.1 503 Service Unavailable" and b"Retry-After: 10" in head
    assert refused.disconnecting
    _, other = connect(site, "198.51.100.3")
    assert other.value() == b"" and not other.disconnecting
    for _ in range(5):  # loopback (a local proxy) is not capped
        _, local = connect(site, "127.0.0.1")
        assert not local.disconnecting
    a.connectionLost(None)
    _, again = connect(site, "192.0.2.1")
    assert again.value() == b"" and not again.disconnecting
