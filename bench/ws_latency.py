"""Push latency and fan-out with the server in its own process: commit -> listener.

    .venv/bin/python bench/ws_latency.py --imap 500 --es 500 [--ws 0] [--accounts 1] [--rounds 5]
    .venv/bin/python bench/ws_latency.py --imap 0 --es 0 --ws 1000
    .venv/bin/python bench/ws_latency.py --imap 500 --es 500 --accounts 500

``twistd -n dualmail`` runs in a child process (IMAP, JMAP, LMTP on tcp:0 loopback); this
process holds every listener on one Twisted reactor: IMAP sessions in IDLE on INBOX,
EventSource streams and JMAP WebSockets (RFC 8887, ``WebSocketPushEnable``), spread
round-robin over ``--accounts`` accounts. Each round makes one commit of each kind in
every account, all at once:

- LMTP delivery: one LMTP transaction with a RCPT per account, 100 (RCPTMAX) at most
  per transaction (the clock starts when that transaction's final "." is written);
- IMAP STORE: one writer connection per account, the STOREs written back to back;
- JMAP Email/set (a keyword): one HTTP connection per account, the POSTs written back
  to back.

Latency is from writing the committing command (per account) to reading the
listener's notification (``* n EXISTS``/``FETCH``, ``event: state``, a StateChange
message): p50 / p99 / max. Both processes share the machine's cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
sys.path.insert(0, ROOT)

from twisted.internet import defer, protocol, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402
from twisted.internet.threads import deferToThread  # noqa: E402

PASSWORD = "secret"
RCPTMAX = 100  # the server's LMTP LIMITS RCPTMAX: more accounts take several transactions


def account_id(i: int) -> str:
    from dualmail.model import ids

    return ids.format_id(ids.ACCOUNT, i + 1)  # accounts are numbered from 1 in creation order


def address(i: int) -> str:
    return f"user{i}@example.org"


class Server:
    """``twistd -n dualmail`` on ``data`` in a child process; its three ports."""

    def __init__(self, data: str) -> None:
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        cmd = [twistd] if os.path.exists(twistd) else [sys.executable, "-m", "twisted"]
        self.proc = subprocess.Popen(
            [*cmd, "-n", "--pidfile=", "--logfile=-", "dualmail", "--data", data, "--no-first-account",
             "--imap", "tcp:0:interface=127.0.0.1", "--jmap", "tcp:0:interface=127.0.0.1",
             "--lmtp", "tcp:0:interface=127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"})
        self.ports: dict[str, int] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            for kind in ("IMAP", "JMAP", "LMTP"):
                if f"{kind} listening on" in line:
                    self.ports[kind] = int(line.rsplit(":", 1)[1])
            if len(self.ports) == 3 and "dualmail ready" in line or len(self.ports) == 3:
                break
        assert len(self.ports) == 3, "the server did not report its ports"
        threading.Thread(target=lambda: [None for _line in self.proc.stdout], daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Bench:
    def __init__(self) -> None:
        self.t0: dict[int, float] = {}  # account index -> when its commit was written
        self.pending: set[Any] = set()
        self.samples: dict[str, list[float]] = {}
        self.done: defer.Deferred | None = None
        self.label = ""

    def arrived(self, listener: Any) -> None:
        if listener in self.pending:
            now = time.perf_counter()
            self.pending.discard(listener)
            self.samples.setdefault(f"{self.label} -> {listener.kind}", []).append(now - self.t0[listener.account])
            if not self.pending and self.done is not None and not self.done.called:
                self.done.callback(None)


class Lines(protocol.Protocol):
    def __init__(self) -> None:
        self.buf = b""

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.line(line.rstrip(b"\r"))

    def line(self, line: bytes) -> None:
        raise NotImplementedError


class ImapIdle(Lines):
    kind = "IMAP IDLE"

    def __init__(self, bench: Bench, account: int) -> None:
        super().__init__()
        self.bench, self.account = bench, account
        self.ready: defer.Deferred = defer.Deferred()

    def line(self, line: bytes) -> None:
        if self.ready.called:
            if line.startswith(b"* ") and (line.endswith(b"EXISTS") or b"FETCH" in line):
                self.bench.arrived(self)
        elif line.startswith(b"* OK"):
            self.transport.write(f"a LOGIN {address(self.account)} {PASSWORD}\r\n".encode())
        elif line.startswith(b"a OK"):
            self.transport.write(b"b SELECT INBOX\r\n")
        elif line.startswith(b"b OK"):
            self.transport.write(b"c IDLE\r\n")
        elif line.startswith(b"+ "):
            self.ready.callback(None)


class EventSource(Lines):
    kind = "EventSource"

    def __init__(self, bench: Bench, account: int, token: str) -> None:
        super().__init__()
        self.bench, self.account, self.token = bench, account, token
        self.ready: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(f"GET /jmap/eventsource/?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             f"Authorization: Bearer {self.token}\r\n\r\n".encode())

    def line(self, line: bytes) -> None:
        if line.startswith(b"HTTP/1.1 200") and not self.ready.called:
            self.ready.callback(None)
        elif line.startswith(b"event: state"):
            self.bench.arrived(self)


class ImapWriter(Lines):
    def __init__(self, account: int) -> None:
        super().__init__()
        self.account = account
        self.ready: defer.Deferred = defer.Deferred()
        self.waiting: defer.Deferred | None = None

    def line(self, line: bytes) -> None:
        if line.startswith(b"* OK") and not self.ready.called and not hasattr(self, "_in"):
            self._in = True
            self.transport.write(f"a LOGIN {address(self.account)} {PASSWORD}\r\n".encode())
        elif line.startswith(b"a OK"):
            self.transport.write(b"b SELECT INBOX\r\n")
        elif line.startswith(b"b OK"):
            self.ready.callback(None)
        elif line[:4] in (b"s OK", b"s NO", b"s BA", b"n OK"):
            d, self.waiting = self.waiting, None
            if d is not None:
                d.callback(line)

    def noop(self) -> defer.Deferred:
        """Learn the messages delivered since (the STORE then names message 1)."""
        self.waiting = defer.Deferred()
        self.transport.write(b"n NOOP\r\n")
        return self.waiting

    def store(self, n: int) -> defer.Deferred:
        self.waiting = defer.Deferred()
        self.transport.write(f"s STORE 1 +FLAGS ($k{n})\r\n".encode())
        return self.waiting


class HttpWriter(protocol.Protocol):
    """One keep-alive HTTP/1.1 connection posting JMAP requests (sized or chunked answers)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.buf = b""
        self.waiting: defer.Deferred | None = None

    def post(self, body: dict) -> defer.Deferred:
        data = json.dumps(body).encode()
        self.waiting = defer.Deferred()
        self.transport.write(b"POST /jmap/api HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             b"Authorization: Bearer " + self.token.encode() +
                             b"\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        return self.waiting

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        length = None
        for h in head.split(b"\r\n"):
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":", 1)[1])
        if length is not None:  # a sized body
            if len(rest) < length:
                return
            body, self.buf = rest[:length], rest[length:]
        else:  # chunked
            body, pos = b"", 0
            while True:
                line_end = rest.find(b"\r\n", pos)
                if line_end < 0:
                    return
                size = int(rest[pos:line_end].split(b";")[0], 16)
                if len(rest) < line_end + 2 + size + 2:
                    return
                body += rest[line_end + 2:line_end + 2 + size]
                pos = line_end + 2 + size + 2
                if size == 0:
                    break
            self.buf = rest[pos:]
        d, self.waiting = self.waiting, None
        if d is not None:
            d.callback(json.loads(body))


def make_ws_class() -> Any:
    from autobahn.twisted.websocket import WebSocketClientProtocol

    class WebSocketListener(WebSocketClientProtocol):  # type: ignore[misc]
        kind = "WebSocket"

        def onOpen(self) -> None:
            self.sendMessage(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None}).encode())
            self.sendMessage(json.dumps({"@type": "Request", "id": "ready", "using": ["urn:ietf:params:jmap:core"],
                                         "methodCalls": [["Core/echo", {}, "0"]]}).encode())

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            f = self.factory
            if b'"StateChange"' in payload[:40]:
                f.bench.arrived(self)
            elif not f.ready.called and b'"requestId":"ready"' in payload:
                f.ready.callback(None)

    return WebSocketListener


def connect_ws(reactor: Any, bench: Bench, port: int, account: int, token: str, cls: Any) -> defer.Deferred:
    from autobahn.twisted.websocket import WebSocketClientFactory, connectWS

    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/jmap/ws", protocols=["jmap"],
                                     headers={"Authorization": f"Bearer {token}"})
    factory.protocol = cls
    factory.bench, factory.ready = bench, defer.Deferred()
    holder: dict[str, Any] = {}
    orig = factory.buildProtocol

    def build(addr: Any) -> Any:
        p = orig(addr)
        p.account = account
        holder["p"] = p
        return p

    factory.buildProtocol = build
    connectWS(factory)
    return factory.ready.addCallback(lambda _: holder["p"])


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


async def main(reactor: Any, args: Any) -> None:
    from dualmail.store.store import open_store

    tmp = tempfile.mkdtemp(prefix="ws-bench-")
    data = os.path.join(tmp, "data")
    setup = open_store(data, sync=False)
    tokens = []
    for i in range(args.accounts):
        setup.create_account(address(i), PASSWORD)
        tokens.append(setup.create_token(address(i), kind="app"))
    setup.close()
    server = await deferToThread(Server, data)
    bench = Bench()
    try:
        ports = server.ports
        listeners: list[Any] = []

        async def add(make: Any, port: int) -> Any:
            p = make()
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), p)
            return p

        for n in range(args.imap):
            listeners.append(await add(lambda n=n: ImapIdle(bench, n % args.accounts), ports["IMAP"]))
        for n in range(args.es):
            a = n % args.accounts
            listeners.append(await add(lambda a=a: EventSource(bench, a, tokens[a]), ports["JMAP"]))
            listeners[-1].account = a
        await defer.gatherResults([lst.ready for lst in listeners])
        ws_cls = make_ws_class()
        for n in range(args.ws):
            a = n % args.accounts
            listeners.append(await connect_ws(reactor, bench, ports["JMAP"], a, tokens[a], ws_cls))
        imap_writers = [await add(lambda a=a: ImapWriter(a), ports["IMAP"]) for a in range(args.accounts)]
        await defer.gatherResults([w.ready for w in imap_writers])
        http_writers = [await add(lambda a=a: HttpWriter(tokens[a]), ports["JMAP"]) for a in range(args.accounts)]
        import smtplib

        lmtp = await deferToThread(smtplib.LMTP, "127.0.0.1", ports["LMTP"])
        await deferToThread(lmtp.ehlo, "bench")
        email_ids: list[str] = []
        print(f"{len(listeners)} listeners ready ({args.imap} IMAP IDLE, {args.es} EventSource, {args.ws} WebSocket)"
              f" on {args.accounts} account(s)", flush=True)

        async def round_(label: str, fire: Any) -> None:
            bench.label, bench.pending = label, set(listeners)
            bench.done = defer.Deferred()
            await fire()
            try:
                await bench.done.addTimeout(120, reactor)
            except defer.TimeoutError:
                raise SystemExit(f"{label}: {len(bench.pending)} listeners never notified") from None

        for r in range(args.rounds):
            def deliver(r: int = r) -> None:
                msg = (f"From: bob@example.org\r\nSubject: round {r}\r\nMessage-ID: <{r}@bench>\r\n\r\n"
                       "hello\r\n").encode()
                for first in range(0, args.accounts, RCPTMAX):
                    batch = range(first, min(args.accounts, first + RCPTMAX))
                    lmtp.mail("bob@example.org")
                    for a in batch:
                        code, _text = lmtp.rcpt(address(a))
                        assert code == 250, (code, _text)
                    # smtplib's data() sends the message and the final "." in one write
                    now = time.perf_counter()
                    for a in batch:
                        bench.t0[a] = now
                    lmtp.data(msg)  # reads the first recipient's reply (smtplib knows no LMTP DATA)
                    for _a in batch[1:]:  # RFC 2033 §4.2: one reply per accepted recipient
                        code, _text = lmtp.getreply()
                        assert code == 250, (code, _text)

            async def lmtp_round() -> None:
                await deferToThread(deliver)

            await round_("LMTP delivery", lmtp_round)

            await defer.gatherResults([w.noop() for w in imap_writers])

            async def store_round(r: int = r) -> None:
                waits = []
                for w in imap_writers:
                    bench.t0[w.account] = time.perf_counter()
                    waits.append(w.store(r))
                await defer.gatherResults(waits)

            await round_("IMAP STORE", store_round)
            if not email_ids:
                for a, w in enumerate(http_writers):
                    res = await w.post({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                                        "methodCalls": [["Email/query", {"accountId": account_id(a)}, "0"]]})
                    assert "ids" in res["methodResponses"][0][1], res
                    email_ids.append(res["methodResponses"][0][1]["ids"][-1])

            async def jmap_round(r: int = r) -> None:
                waits = []
                for a, w in enumerate(http_writers):
                    body = {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": [
                        ["Email/set", {"accountId": account_id(a), "update": {email_ids[a]: {f"keywords/$j{r}": True}}},
                         "0"]]}
                    bench.t0[a] = time.perf_counter()
                    waits.append(w.post(body))
                await defer.gatherResults(waits)

            await round_("JMAP Email/set", jmap_round)
        for lst in listeners:
            lst.transport.loseConnection()
    finally:
        server.stop()
    print(f"{args.imap} IMAP IDLE + {args.es} EventSource + {args.ws} WebSocket listeners on {args.accounts} "
          f"account(s); {args.rounds} rounds of each commit kind, one commit per account per round "
          f"(INBOX grows to {args.rounds} messages); server in its own process")
    for key, xs in sorted(bench.samples.items()):
        print(f"{key:32s} n={len(xs):6d}  p50 {pct(xs, .5):7.1f} ms  p99 {pct(xs, .99):7.1f} ms"
              f"  max {max(xs) * 1000:7.1f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--imap", type=int, default=500)
    p.add_argument("--es", type=int, default=500)
    p.add_argument("--ws", type=int, default=0)
    p.add_argument("--accounts", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, p.parse_args())))
