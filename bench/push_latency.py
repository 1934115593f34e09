"""Push latency and fan-out: N IMAP sessions in IDLE on INBOX and N EventSource streams on
one account; time from a commit (LMTP delivery, IMAP STORE, JMAP Email/set) to each
listener's notification: p50 / p99 / max.

    .venv/bin/python bench/push_latency.py [--sessions 500] [--rounds 10]

The service (``tap.makeService``, IMAP / JMAP / LMTP on tcp:0 loopback) and every listener
share one process and reactor, so the figures include the listeners' own parsing; the
clock starts when the committing request is written and stops when a listener's
notification line is read.  For figures of the server alone use ``bench/ws_latency.py``
(server, committing client and listeners in separate processes)."""

from __future__ import annotations

import argparse
import base64
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from twisted.internet import defer, protocol, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402
from twisted.internet.threads import deferToThread  # noqa: E402

USER, PASSWORD = "alice@example.org", "secret"
AUTH = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class Listener(protocol.Protocol):
    """Either an IMAP session that ends in IDLE on INBOX, or an EventSource stream; on
    each notification calls ``bench.arrived(self)``."""

    def __init__(self, bench: "Bench", kind: str) -> None:
        self.bench, self.kind, self.buf = bench, kind, b""
        self.ready: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        if self.kind == "jmap":
            self.transport.write(f"GET {self.bench.es_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 f"Authorization: Basic {AUTH}\r\n\r\n".encode())

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.line(line.rstrip(b"\r"))

    def line(self, line: bytes) -> None:
        if self.kind == "jmap":
            if line.startswith(b"HTTP/1.1 200") and not self.ready.called:
                self.ready.callback(None)
            elif line.startswith(b"event: state"):
                self.bench.arrived(self)
            return
        if line.startswith(b"* OK") and not self.ready.called and not hasattr(self, "step"):
            self.step = 0
            self.transport.write(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
        elif line.startswith(b"a OK"):
            self.transport.write(b"b SELECT INBOX\r\n")
        elif line.startswith(b"b OK"):
            self.transport.write(b"c IDLE\r\n")
        elif line.startswith(b"+ ") and not self.ready.called:
            self.ready.callback(None)
        elif self.ready.called and line.startswith(b"* ") and (line.endswith(b"EXISTS") or b"FETCH" in line):
            self.bench.arrived(self)


class Bench:
    def __init__(self) -> None:
        self.t0 = 0.0
        self.pending: set = set()
        self.samples: dict[str, list[float]] = {}
        self.done: defer.Deferred | None = None
        self.label = ""

    def arrived(self, listener: Listener) -> None:
        if listener in self.pending:
            self.pending.discard(listener)
            self.samples.setdefault(f"{self.label} -> {listener.kind}", []).append(time.perf_counter() - self.t0)
            if not self.pending and self.done is not None and not self.done.called:
                self.done.callback(None)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


async def main(reactor, args) -> None:
    from tests.fleet.fleet import JMAP, message
    from tests.lmtp.lmtp_util import running

    bench = Bench()
    async with running(pathlib.Path(tempfile.mkdtemp(prefix="push-bench-"))) as srv:
        jmap = await deferToThread(JMAP, srv.jmap_port)
        url = jmap.session["eventSourceUrl"].format(types="Email", closeafter="no", ping="0")
        bench.es_path = "/" + url.split("://", 1)[1].split("/", 1)[1]
        listeners = []
        for kind, port in (("imap", srv.imap_port), ("jmap", srv.jmap_port)):
            for _ in range(args.sessions):
                lst = Listener(bench, kind)
                await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), lst)
                listeners.append(lst)
        await defer.gatherResults([lst.ready for lst in listeners])
        import smtplib

        lmtp = await deferToThread(smtplib.LMTP, "127.0.0.1", srv.lmtp_port)
        await deferToThread(lmtp.ehlo, "bench")
        from imapclient import IMAPClient

        writer = await deferToThread(IMAPClient, "127.0.0.1", srv.imap_port, ssl=False)
        await deferToThread(writer.login, USER, PASSWORD)
        await deferToThread(writer.select_folder, "INBOX")
        n = 0
        for r in range(args.rounds):
            for label in ("LMTP delivery", "IMAP STORE", "JMAP Email/set"):
                n += 1
                bench.label, bench.pending = label, set(listeners)
                bench.done = defer.Deferred()
                if label == "LMTP delivery":
                    job = lambda: (setattr(bench, "t0", time.perf_counter()),
                                   lmtp.sendmail("bob@example.org", [USER], message(n, "push")))
                elif label == "IMAP STORE":
                    job = lambda: (writer.noop(), setattr(bench, "t0", time.perf_counter()),
                                   writer.add_flags([1], [f"$k{n}"]))
                else:
                    eid = (await deferToThread(jmap.emails))[1]
                    first = sorted(eid)[0]
                    job = lambda: (setattr(bench, "t0", time.perf_counter()),
                                   jmap.call("Email/set", {"update": {first: {f"keywords/$j{n}": True}}}))
                await deferToThread(job)
                try:
                    await bench.done.addTimeout(30, reactor)
                except defer.TimeoutError:
                    raise SystemExit(f"{label}: {len(bench.pending)} listeners never notified: "
                                     f"{sorted({x.kind for x in bench.pending})}")
        for lst in listeners:
            lst.transport.loseConnection()
        await deferToThread(writer.logout)
    print(f"one account, {args.sessions} IMAP IDLE sessions + {args.sessions} EventSource streams,"
          f" {args.rounds} rounds of each commit kind (INBOX grows to {args.rounds} messages)")
    for key, xs in sorted(bench.samples.items()):
        print(f"{key:28s} n={len(xs):6d}  p50 {pct(xs, .5):7.1f} ms  p99 {pct(xs, .99):7.1f} ms"
              f"  max {max(xs) * 1000:7.1f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--rounds", type=int, default=10)
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, p.parse_args())))
