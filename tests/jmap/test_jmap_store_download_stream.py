"""Downloads are streamed (RFC 8620 §6.2): a push producer (``app.BlobProducer``)
writes a blob, or one Range of it, in chunks on successive reactor turns and
stops while the transport's buffer is full, so a client that stops reading
never makes the server copy the whole blob into its buffers."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

from dualmail.jmap import app as app_module
from dualmail.jmap.app import DOWNLOAD_CHUNK, make_site
from dualmail.model import ids
from dualmail.store.store import open_store
from dualmail.tap import Options, makeService
from tests.jmap.jmap_store_util import ALICE, aid, has_result, header, result_of

SIZE = 5 * 1024 * 1024 + 12345  # not a multiple of the chunk size


def blob_data(size: int = SIZE) -> bytes:
    return random.Random(7).randbytes(size)


def put_blob(store, account: int, data: bytes) -> str:
    with store.write(account) as tx:
        sha = tx.put_blob(data, content_type="application/octet-stream", uploaded=0)
    return ids.blob_id(sha)


@pytest.fixture
def producers(monkeypatch) -> list:
    """Every BlobProducer the app makes."""
    made: list = []

    class Recording(app_module.BlobProducer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(app_module, "BlobProducer", Recording)
    return made


def pump(client, d, turns: int = 10_000):
    """Run the injected clock and the StubTreq connection until ``d`` fires."""
    for _ in range(turns):
        client.stub.flush()
        if has_result(d):
            return result_of(d)
        client.clock.advance(0)
    raise AssertionError("the download did not finish")


def download(client, url: str, headers: dict | None = None):
    d = client.request("GET", url, headers={**client.headers, **(headers or {})}, fired=False)
    response = pump(client, d)
    response.body = pump(client, client.stub.content(response))
    return response


# -- through StubTreq (the app on an in-memory connection) ---------------------------------


def test_big_blob_arrives_byte_exact_in_many_chunks(client, alice, store, producers):
    data = blob_data()
    blob = put_blob(store, alice, data)
    response = download(client, f"/jmap/download/{aid(alice)}/{blob}/big%20file.pdf?accept=application/pdf")
    assert response.code == 200
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(data).digest()
    assert response.length == SIZE  # the Content-Length (the client takes it out of the headers)
    assert header(response, "transfer-encoding") is None
    assert header(response, "content-type") == "application/pdf"
    assert header(response, "content-disposition") == (
        "attachment; filename=\"big file.pdf\"; filename*=UTF-8''big%20file.pdf")
    [producer] = producers
    assert producer.writes == -(-SIZE // DOWNLOAD_CHUNK) > 1
    assert not client.clock.getDelayedCalls()


@pytest.mark.parametrize("first, last", [
    (1_000_000, 3_000_123),                        # the middle, across many chunks
    (DOWNLOAD_CHUNK - 3, DOWNLOAD_CHUNK + 2),      # across one chunk boundary
    (SIZE - 1, SIZE - 1),                          # the last octet
])
def test_range_in_the_middle_is_exact(client, alice, store, producers, first, last):
    data = blob_data()
    blob = put_blob(store, alice, data)
    response = download(client, f"/jmap/download/{aid(alice)}/{blob}/b.bin?accept=image/png",
                        {"Range": f"bytes={first}-{last}"})
    assert response.code == 206
    assert response.body == data[first:last + 1]
    assert header(response, "content-range") == f"bytes {first}-{last}/{SIZE}"
    assert response.length == last - first + 1
    assert header(response, "content-type") == "image/png"
    assert header(response, "content-disposition").startswith('attachment; filename="b.bin"')
    [producer] = producers
    assert producer.writes == -(-(last - first + 1) // DOWNLOAD_CHUNK)


def test_suffix_range_and_unsatisfiable_range(client, alice, store, producers):
    data = blob_data()
    blob = put_blob(store, alice, data)
    url = f"/jmap/download/{aid(alice)}/{blob}/b.bin"
    suffix = download(client, url, {"Range": "bytes=-100000"})
    assert suffix.code == 206 and suffix.body == data[-100_000:]
    assert header(suffix, "content-range") == f"bytes {SIZE - 100_000}-{SIZE - 1}/{SIZE}"
    beyond = download(client, url, {"Range": f"bytes={SIZE}-"})
    assert beyond.code == 416
    assert header(beyond, "content-range") == f"bytes */{SIZE}"
    assert header(beyond, "content-disposition") is None
    assert len(producers) == 1  # the 416 streams nothing


def test_empty_blob(client, alice, store, producers):
    blob = put_blob(store, alice, b"")
    response = download(client, f"/jmap/download/{aid(alice)}/{blob}/empty")
    assert response.code == 200 and response.body == b""
    assert response.length == 0
    assert producers == []


# -- backpressure: a real HTTPChannel on a transport whose peer stops reading ------------


class StalledPeerTransport(StringTransport):
    """A TCP transport as ``abstract.FileDescriptor`` behaves when the peer
    stops reading: the data piles up unsent, and once more than ``limit``
    octets wait, the streaming producer (the HTTPChannel, which passes it on
    to the request's producer) is paused. ``drain()`` is the peer reading
    everything: the buffer empties and the producer is resumed."""

    def __init__(self, limit: int = 64 * 1024):
        super().__init__()
        self.limit = limit
        self.full = False
        self.most = 0  # the most octets ever waiting

    def write(self, data: bytes) -> None:
        super().write(data)
        self._check()

    def writeSequence(self, seq) -> None:
        super().writeSequence(seq)
        self._check()

    def _check(self) -> None:
        waiting = len(self.io.getvalue())
        self.most = max(self.most, waiting)
        if waiting > self.limit and not self.full and self.producer is not None:
            self.full = True
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        data = self.value()
        self.clear()
        if self.full:
            self.full = False
            self.producer.resumeProducing()
        return data


def open_channel(client, request: bytes):
    site = make_site(client.app, reactor=client.clock)
    channel = site.buildProtocol(None)
    transport = StalledPeerTransport()
    channel.makeConnection(transport)
    channel.dataReceived(request)
    return channel, transport


def get(url: str, extra: bytes = b"") -> bytes:
    auth = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode())
    return (b"GET " + url.encode() + b" HTTP/1.1\r\nHost: mail.example.org\r\nAuthorization: Basic " + auth
            + b"\r\n" + extra + b"\r\n")


def split_response(raw: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines)}
    return status, headers, body


def test_a_client_that_stops_reading_holds_the_producer(client, alice, store, producers):
    data = blob_data()
    blob = put_blob(store, alice, data)
    channel, transport = open_channel(client, get(f"/jmap/download/{aid(alice)}/{blob}/x.bin"))
    [producer] = producers
    # the client reads nothing: however long the reactor runs, the server
    # writes about one buffer's worth and then waits
    for _ in range(1_000):
        client.clock.advance(0)
    assert transport.full and producer._paused
    assert producer.writes <= 2
    assert transport.most <= transport.limit + DOWNLOAD_CHUNK
    assert not [c for c in client.clock.getDelayedCalls() if c.func == producer._step]
    # now it reads: everything arrives, byte-exact, never more than a chunk
    # beyond the buffer limit waiting
    raw = transport.drain()
    for _ in range(10_000):
        if producer.done.called:
            break
        client.clock.advance(0)
        raw += transport.drain()
    raw += transport.drain()
    status, headers, body = split_response(raw)
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"content-length"] == str(SIZE).encode() and b"transfer-encoding" not in headers
    assert body == data
    assert producer.writes == -(-SIZE // DOWNLOAD_CHUNK)
    assert transport.most <= transport.limit + DOWNLOAD_CHUNK
    channel.connectionLost(Failure(ConnectionDone()))


def test_a_ranged_response_is_held_too(client, alice, store, producers):
    data = blob_data()
    blob = put_blob(store, alice, data)
    channel, transport = open_channel(client, get(f"/jmap/download/{aid(alice)}/{blob}/x.bin",
                                                  b"Range: bytes=100-4000099\r\n"))
    [producer] = producers
    for _ in range(500):
        client.clock.advance(0)
    assert producer._paused and producer.writes <= 2
    raw = b""
    while not producer.done.called:
        raw += transport.drain()
        client.clock.advance(0)
    raw += transport.drain()
    status, headers, body = split_response(raw)
    assert status == b"HTTP/1.1 206 Partial Content"
    assert headers[b"content-range"] == f"bytes 100-4000099/{SIZE}".encode()
    assert body == data[100:4000100]
    channel.connectionLost(Failure(ConnectionDone()))


def test_a_client_that_goes_away_stops_the_producer(client, alice, store, producers):
    data = blob_data()
    blob = put_blob(store, alice, data)
    channel, transport = open_channel(client, get(f"/jmap/download/{aid(alice)}/{blob}/x.bin"))
    [producer] = producers
    transport.drain()
    client.clock.advance(0)
    transport.drain()
    written = producer.writes
    assert 1 < written < SIZE // DOWNLOAD_CHUNK
    # what a TCP transport does when the connection drops
    transport.producer.stopProducing()
    channel.connectionLost(Failure(ConnectionDone()))
    for _ in range(100):
        client.clock.advance(0)
    assert producer.writes == written
    assert producer.done.called  # cancelled by Klein (the request's notifyFinish failed)
    assert not [c for c in client.clock.getDelayedCalls() if c.func == producer._step]


# -- the real service over loopback TCP ------------------------------------------------------


@pytest.mark.e2e
@pytest_twisted.ensureDeferred
async def test_real_server_streams_a_big_download(tmp_path):
    from twisted.internet import reactor

    data_dir = str(tmp_path / "data")
    setup = open_store(data_dir, sync=False)
    alice = setup.create_account(*ALICE)
    data = blob_data()
    blob = put_blob(setup, alice, data)
    setup.close()
    options = Options()
    options.parseOptions(["--data", data_dir, "--jmap", "tcp:0:interface=127.0.0.1",
                          "--imap", "tcp:0:interface=127.0.0.1", "--no-first-account"])
    service = makeService(options, reactor)
    service.startService()
    pool = HTTPConnectionPool(reactor, persistent=False)
    http = HTTPClient(Agent(reactor, pool=pool))
    auth = {b"Authorization": [b"Basic " + base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode())]}
    try:
        [port] = await service.bound_ports("jmap")
        base = f"http://127.0.0.1:{port.getHost().port}/jmap/download/{aid(alice)}/{blob}/big.bin"
        response = await http.get(base + "?accept=application/zip", headers=auth)
        assert response.code == 200
        assert response.length == SIZE
        assert response.headers.getRawHeaders(b"content-type") == [b"application/zip"]
        body = await response.content()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        ranged = await http.get(base, headers={**auth, b"Range": [b"bytes=2000000-2999999"]})
        assert ranged.code == 206
        assert await ranged.content() == data[2_000_000:3_000_000]
    finally:
        await pool.closeCachedConnections()
        await service.stopService()


class BrokenBlob:
    """A ``Blob`` whose storage fails after the first chunks."""

    size = 10 * DOWNLOAD_CHUNK

    def read(self, offset: int, length: int) -> bytes:
        if offset >= 2 * DOWNLOAD_CHUNK:
            raise OSError("the disk went away")
        return b"x" * length


def test_a_blob_that_fails_midway_cuts_the_connection(client, alice, producers, monkeypatch):
    monkeypatch.setattr(client.app.backend, "download", lambda principal, account, blob: BrokenBlob())
    channel, transport = open_channel(client, get(f"/jmap/download/{aid(alice)}/Gany/x.bin"))
    [producer] = producers
    for _ in range(10):
        client.clock.advance(0)
        transport.drain()
    # the headers promised 10 chunks: a short body must not look complete, so
    # the connection is cut instead of being finished
    assert producer.writes == 2
    assert transport.disconnecting and not producer.done.called
    channel.connectionLost(Failure(ConnectionDone()))
    assert producer.done.called  # cancelled: no error response is attempted
    assert not client.clock.getDelayedCalls()
