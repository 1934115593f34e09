"""``twistd dualmail`` options and the service's listeners, on a MemoryReactor."""

from __future__ import annotations

import pytest
import trustme
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage

from dualmail.service import with_shared_tls
from dualmail.tap import DEFAULT_IMAP, DEFAULT_JMAP, Options, makeService


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
        # TLS over tcp: with the service's own context (issue 10: Twisted's ssl: parser hands
        # pyOpenSSL deprecated X509/PKey objects)
        assert reactor.sslServers == []
        jmap = [(p, f, iface) for p, f, _b, iface in reactor.tcpServers if p == 8443]
        assert [(p, iface) for p, _f, iface in jmap] == [(8443, "127.0.0.1")]
        assert isinstance(jmap[0][1], TLSMemoryBIOFactory)
    finally:
        svc.stopService()


def test_imaps_takes_a_tcp_endpoint(tmp_path):
    with pytest.raises(usage.UsageError, match="tcp:"):
        Options().parseOptions(["--imaps", "ssl:993", "--tls-cert", "c.pem", "--tls-key", "k.pem"])


def test_a_test_cannot_start_the_service_on_a_default_port(tmp_path):
    """The guard in tests/conftest.py (issue 10: the jmapc helper bound 1143): a service on
    the real reactor with a fixed port fails the test instead of colliding with a running
    server."""
    from twisted.internet import reactor as real_reactor

    from tests.conftest import fixed_port

    assert fixed_port(DEFAULT_IMAP) == 1143 and fixed_port(DEFAULT_JMAP) == 8080
    assert fixed_port("tcp:0:interface=127.0.0.1") is None
    assert fixed_port("ssl:port=8443:privateKey=k.pem") == 8443
    assert fixed_port(r"unix:/tmp/x\:1") is None
    opts = Options()
    opts.parseOptions(["--data", str(tmp_path / "d"), "--no-first-account"])
    svc = makeService(opts, reactor=real_reactor)
    with pytest.raises(AssertionError, match="fixed port 1143"):
        svc.privilegedStartService()
    if svc.store is not None:
        svc.store.close()


def test_tls_split_keeps_escapes():
    from dualmail.service import _split_endpoint, tls_over_tcp

    assert _split_endpoint(r"ssl:8443:privateKey=C\:/k.pem:interface=\:\:1") == [
        "ssl", "8443", r"privateKey=C\:/k.pem", r"interface=\:\:1"]
    f = object()
    assert tls_over_tcp("tcp:8080", f) == ("tcp:8080", f)
    assert tls_over_tcp("ssl:8443:privateKey=k.pem:extraCertChain=c.pem", f)[1] is f


def test_tls_contexts_use_no_deprecated_pyopenssl_api(tmp_path):
    """Issue 10: pyOpenSSL warned "Passing pyOpenSSL X509/PKey objects is deprecated" in
    every TLS test; both the --tls-cert context and ssl: listeners now pass cryptography
    objects (checked with DeprecationWarning as an error)."""
    import warnings

    from dualmail.imap.protocol import tls_context_factory
    from dualmail.service import tls_over_tcp

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    both, kpath = tmp_path / "both.pem", tmp_path / "k.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(both))
    cert.private_key_pem.write_to_path(str(kpath))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        tls_context_factory(str(both), str(kpath)).getContext()
        desc, factory = tls_over_tcp(f"ssl:0:privateKey={both}", object())
        assert desc == "tcp:0"
        assert isinstance(factory, TLSMemoryBIOFactory)  # handshakes: the jmapc e2e tests


@pytest.mark.parametrize("arg,size", [(None, 52428800), ("1000", 1000), ("20M", 20 * 1024**2),
                                      ("512k", 512 * 1024)])
def test_one_message_size_limit_for_imap_and_jmap(tmp_path, arg, size):
    """Issue 10: APPENDLIMIT (52428800) and maxSizeUpload (50000000) disagreed; one option
    now sets both (RFC 7889 APPENDLIMIT, RFC 8620 §2 maxSizeUpload)."""
    from dualmail.jmap.service import make_site
    from dualmail.imap.protocol import make_factories
    from dualmail.store.store import open_store

    opts = Options()
    opts.parseOptions(["--data", str(tmp_path / "d")] + (["--max-message-size", arg] if arg else []))
    assert opts["max-message-size"] == size
    store = open_store(str(tmp_path / "d"), sync=False)
    try:
        reactor = MemoryReactorClock()
        [(_kind, imap)] = make_factories(store, opts, reactor)
        assert imap.config.appendlimit == size
        site = make_site(store, opts, reactor)
        assert site.requestFactory.max_upload == size
    finally:
        store.close()


def test_max_message_size_must_be_a_size():
    for bad in ("0", "-5", "big", "10X"):
        with pytest.raises(usage.UsageError, match="max-message-size"):
            Options().parseOptions(["--max-message-size", bad])
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
