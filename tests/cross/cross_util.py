"""Helpers for the cross-protocol end-to-end tests: the real service
(``tap.makeService``) on loopback ports chosen by the OS, an IMAP client
(imapclient, run in a thread) and a JMAP client over real HTTP (treq).

Nothing here sleeps: every wait is on a Deferred, an IDLE response or an
EventSource event, bounded by a timeout."""

from __future__ import annotations

import base64
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from imapclient import IMAPClient
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, HTTPConnectionPool

from dualmail.store.store import open_store
from dualmail.tap import Options, makeService

USER = "alice@example.org"
PASSWORD = "secret"
AUTH = {b"Authorization": [b"Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode())]}
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
TIMEOUT = 10  # seconds any single wait may take before the test fails
# Set by tests/cross/conftest.py to run a test on PostgreSQL: () -> a fresh store URL.
STORE_URL_FACTORY: Callable[[], str] | None = None


def message(subject: str = "hello", body: str = "Hello world\r\n", msgid: str | None = None) -> bytes:
    mid = msgid or f"<{abs(hash((subject, body))) % 10**12}@example.org>"
    return (f"From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: {mid}\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}").encode()


def one(value: Any) -> Any:
    """An OBJECTID item answered by imapclient: ``(b'Mxyz',)`` / ``b'(Mxyz)'`` -> ``'Mxyz'``."""
    if isinstance(value, (tuple, list)):
        [value] = value
    if isinstance(value, bytes):
        value = value.decode()
    return str(value).strip("()")


class JMAPError(AssertionError):
    pass


@dataclass
class JMAP:
    """A JMAP client over real HTTP (RFC 8620 §3): one POST per request."""

    http: HTTPClient
    base: str
    session: dict = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

    async def start(self) -> None:
        response = await self.http.get(self.base + "/.well-known/jmap", headers=AUTH)
        assert response.code == 200
        self.session = json.loads(await response.content())

    async def request(self, calls: list) -> list:
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        response = await self.http.post(self.session["apiUrl"], data=body,
                                        headers={**AUTH, b"Content-Type": [b"application/json"]})
        text = await response.content()
        assert response.code == 200, text
        return json.loads(text)["methodResponses"]

    async def call(self, name: str, args: dict) -> dict:
        """One method call in the primary account; a method-level error raises."""
        [[got, result, _]] = await self.request([[name, {"accountId": self.account, **args}, "0"]])
        if got == "error":
            raise JMAPError(f"{name} -> {result}")
        assert got == name, (got, result)
        return result

    async def mailboxes(self) -> dict[str, dict]:
        """name -> Mailbox (all properties)."""
        result = await self.call("Mailbox/get", {"ids": None})
        return {m["name"]: m for m in result["list"]}

    async def state(self, kind: str = "Email") -> str:
        return (await self.call(f"{kind}/get", {"ids": []}))["state"]

    async def events(self, types: str = "*") -> "EventSource":
        url = self.session["eventSourceUrl"].format(types=types, closeafter="no", ping="0")
        source = EventSource(await self.http.get(url, headers=AUTH, unbuffered=True))
        return source


class EventSource:
    """An open EventSource response (RFC 8620 §7.3) read as it streams. The server
    subscribes before it writes its first byte, so once the response headers are here
    every later commit is pushed."""

    def __init__(self, response: Any) -> None:
        import treq

        assert response.code == 200
        assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream"]
        self.response = response
        self.buffer = b""
        self.events: list[tuple[str, Any]] = []
        self.waiters: list[tuple[Callable[[Any], bool], Deferred]] = []
        self.done = treq.collect(response, self._data)
        self.done.addErrback(lambda _: None)  # cancelled at close()

    def _data(self, chunk: bytes) -> None:
        self.buffer += chunk
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            lines = dict(line.split(": ", 1) for line in block.decode().splitlines()
                         if not line.startswith(":"))
            if "event" in lines:
                event = (lines["event"], json.loads(lines["data"]))
                self.events.append(event)
                for pred, d in list(self.waiters):
                    if pred(event):
                        self.waiters.remove((pred, d))
                        d.callback(event)

    def wait_for(self, pred: Callable[[tuple[str, Any]], bool]) -> Deferred:
        """The first event (already received or yet to come) for which ``pred`` holds."""
        from twisted.internet import reactor

        for event in self.events:
            if pred(event):
                d: Deferred = Deferred()
                d.callback(event)
                return d
        d = Deferred()
        self.waiters.append((pred, d))
        return d.addTimeout(TIMEOUT, reactor)

    def close(self) -> None:
        self.done.cancel()
        self.response.original._transport.loseConnection()


@dataclass
class Service:
    service: Any
    imap_port: int
    jmap: JMAP

    def imap(self) -> IMAPClient:
        """A new, logged-in IMAP connection (blocking: use it inside ``in_thread``)."""
        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=TIMEOUT)
        client.login(USER, PASSWORD)
        return client


def in_thread(fn: Callable, *args: Any) -> Deferred:
    """Run blocking imapclient code off the reactor thread, so the reactor keeps serving."""
    return deferToThread(fn, *args)


def close(client: IMAPClient) -> None:
    """LOGOUT, leaving IDLE first if a failed test left the connection in it."""
    try:
        if client._idle_tag is not None:
            client.idle_done()
        client.logout()
    except Exception:
        client.shutdown()


def idle_until(client: IMAPClient, pred: Callable[[list], bool]) -> list:
    """Collect IDLE responses (client already in IDLE) until ``pred(seen)``; bounded."""
    seen: list = []
    for _ in range(TIMEOUT):
        seen.extend(client.idle_check(timeout=1))
        if pred(seen):
            return seen
    raise AssertionError(f"IDLE never showed the expected responses: {seen}")


@asynccontextmanager
async def running(tmp_path: Any, extra: tuple[str, ...] = ()) -> AsyncIterator[Service]:
    """The real service, IMAP and JMAP on ``tcp:0`` loopback, one account;
    ``extra``: more ``twistd dualmail`` options."""
    from twisted.internet import reactor

    data = str(tmp_path / "data")
    target = STORE_URL_FACTORY() if STORE_URL_FACTORY is not None else data
    setup = open_store(target, sync=False)
    setup.create_account(USER, PASSWORD)
    setup.close()
    options = Options()
    options.parseOptions(["--data", data, *(["--store", target] if target != data else []),
                          "--imap", "tcp:0:interface=127.0.0.1",
                          "--jmap", "tcp:0:interface=127.0.0.1", "--no-first-account", *extra])
    service = makeService(options, reactor)
    service.startService()
    pool = HTTPConnectionPool(reactor, persistent=False)
    try:
        [imap_port] = await service.bound_ports("imap")
        [jmap_port] = await service.bound_ports("jmap")
        jmap = JMAP(HTTPClient(Agent(reactor, pool=pool)), f"http://127.0.0.1:{jmap_port.getHost().port}")
        await jmap.start()
        yield Service(service, imap_port.getHost().port, jmap)
    finally:
        await pool.closeCachedConnections()
        await service.stopService()
