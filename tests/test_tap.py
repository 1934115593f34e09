"""``twistd dualmail`` options and the service's listeners, on a MemoryReactor."""

from __future__ import annotations

import pytest
import trustme
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from dualmail.service import with_shared_tls
from dualmail.tap import Options, makeService


def test_defaults_are_loopback_unprivileged(monkeypatch, tmp_path):
    monkeypatch.delenv("DUALMAIL_DATA", raising=False)
    opts = Options()
    opts.parseOptions([])
    assert opts["data"] == "./dualmail-data"
    assert opts["imap"] == ["tcp:1143:interface=127.0.0.1"]
    assert opts["jmap"] == ["tcp:8080:interface=127.0.0.1"]


def test_data_from_environment(monkeypatch):
    monkeypatch.setenv("DUALMAIL_DATA", "/srv/mail")
    opts = Options()
    opts.parseOptions([])
    assert opts["data"] == "/srv/mail"


def test_listeners_bind_what_was_asked(tmp_path):
    opts = Options()
    opts.parseOptions(["--data", str(tmp_path / "d"), "--imap", "tcp:1143:interface=127.0.0.1",
                       "--imap", r"tcp:1144:interface=\:\:1", "--jmap", "tcp:8081:interface=127.0.0.1",
                       "--lmtp", "tcp:2425:interface=127.0.0.1"])
    reactor = MemoryReactorClock()
    svc = makeService(opts, reactor=reactor)
    svc.privilegedStartService()
    svc.startService()
    try:
        bound = sorted((port, iface) for port, _f, _b, iface in reactor.tcpServers)
        assert bound == [(1143, "127.0.0.1"), (1144, "::1"), (2425, "127.0.0.1"), (8081, "127.0.0.1")]
    finally:
        svc.stopService()


def test_tls_options_go_together(tmp_path):
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--tls-cert", "c.pem"])
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--imaps", "ssl:993"])


def test_ssl_endpoints_take_the_shared_certificate(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cpath, kpath = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cpath))
    cert.private_key_pem.write_to_path(str(kpath))
    assert with_shared_tls("ssl:8443", str(cpath), str(kpath)) == f"ssl:8443:certKey={cpath}:privateKey={kpath}"
    assert with_shared_tls("ssl:8443:certKey=x.pem", str(cpath), str(kpath)) == "ssl:8443:certKey=x.pem"
    assert with_shared_tls("tcp:8080", str(cpath), str(kpath)) == "tcp:8080"
    opts = Options()
    opts.parseOptions(["--data", str(tmp_path / "d"), "--jmap", "ssl:8443:interface=127.0.0.1",
                       "--imap", "tcp:0:interface=127.0.0.1",
                       "--tls-cert", str(cpath), "--tls-key", str(kpath)])
    reactor = MemoryReactorClock()
    svc = makeService(opts, reactor=reactor)
    svc.privilegedStartService()
    svc.startService()
    try:
        assert [(p, iface) for p, _f, _ctx, _b, iface in reactor.sslServers] == [(8443, "127.0.0.1")]
    finally:
        svc.stopService()


def test_imaps_takes_a_tcp_endpoint(tmp_path):
    with pytest.raises(usage.UsageError, match="tcp:"):
        Options().parseOptions(["--imaps", "ssl:993", "--tls-cert", "c.pem", "--tls-key", "k.pem"])


def test_lmtp_default_and_repeatable_endpoints(monkeypatch, tmp_path):
    """--lmtp is repeatable, takes tcp: and unix: endpoints, and defaults to loopback
    port 2424 (the test suite's autouse fixture moves that default to port 0)."""
    import dualmail.tap as tap

    monkeypatch.undo()
    assert tap.DEFAULT_LMTP == "tcp:2424:interface=127.0.0.1"
    opts = Options()
    opts.parseOptions([])
    assert opts["lmtp"] == ["tcp:2424:interface=127.0.0.1"]
    sock = str(tmp_path / "lmtp.sock")
    opts = Options()
    opts.parseOptions(["--data", str(tmp_path / "d"), "--imap", "tcp:1143", "--jmap", "tcp:8081",
                       "--lmtp", "tcp:24:interface=127.0.0.1", "--lmtp", f"unix:{sock}"])
    assert opts["lmtp"] == ["tcp:24:interface=127.0.0.1", f"unix:{sock}"]
    reactor = MemoryReactorClock()
    svc = makeService(opts, reactor=reactor)
    svc.privilegedStartService()
    svc.startService()
    try:
        assert (24, "127.0.0.1") in [(port, iface) for port, _f, _b, iface in reactor.tcpServers]
        [(path, factory, _backlog, _mode, _lock)] = reactor.unixServers
        assert path == sock and type(factory).__name__ == "LMTPFactory"
    finally:
        svc.stopService()
