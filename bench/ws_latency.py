"""Push latency and fan-out with the server in its own process: commit -> listener.

    .venv/bin/python bench/ws_latency.py --imap 500 --es 500 [--ws 0] [--accounts 1] [--rounds 5]
    .venv/bin/python bench/ws_latency.py --imap 0 --es 0 --ws 1000
    .venv/bin/python bench/ws_latency.py --imap 500 --es 500 --accounts 500
    .venv/bin/python bench/ws_latency.py --imap 500 --es 500 --accounts 500 --rate 200

``twistd -n dualmail`` runs in a child process (IMAP, JMAP, LMTP on tcp:0 loopback); the
listeners live in ``--procs`` other processes (``bench/push_listener.py``: plain sockets
and one epoll loop, no client framework), so neither the server's reactor nor the
committing process parses notifications: IMAP sessions in IDLE on INBOX, EventSource
streams and JMAP WebSockets (RFC 8887, ``WebSocketPushEnable``), spread
round-robin over ``--accounts`` accounts. Each round makes one commit of each kind in
every account, all at once:

- LMTP delivery: one LMTP transaction with a RCPT per account, 100 (RCPTMAX) at most
  per transaction (the clock starts when that transaction's final "." is written);
- IMAP STORE: one writer connection per account, the STOREs written back to back;
- JMAP Email/set (a keyword): one HTTP connection per account, the POSTs written back
  to back.

With ``--rate R`` the commits of a round are not written all at once but spread evenly,
R per second, account after account (LMTP: one transaction per account): what a
listener waits for is then its own commit and its push, not the commits of the 499
other accounts queued in front of it.  Without it a round is a burst, which measures
how long 500 simultaneous writers take to be served.

Latency is from writing the committing command (per account; this process, which makes
the commits) to the listener process reading the notification (``* n EXISTS``/``FETCH``,
``event: state``, a StateChange message), both stamped with ``time.monotonic()``
(CLOCK_MONOTONIC, one clock across the machine's processes): p50 / p99 / max. All the
processes share the machine's cores.
"""

from __future__ import annotations

import argparse
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


class ListenerProcess:
    """One ``bench/push_listener.py`` child holding ``listeners`` ([kind, account,
    address, token] each); talked to one line at a time (blocking: call from a thread)."""

    def __init__(self, ports: dict[str, int], listeners: list[list[Any]]) -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "push_listener.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.count = len(listeners)
        self._send(json.dumps({"imap": ports["IMAP"], "jmap": ports["JMAP"], "listeners": listeners}))

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _expect(self, want: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != want:
            raise SystemExit(f"listener process said {line!r}, not {want!r}")

    def ready(self) -> None:
        self._expect("ready")

    def begin(self, label: str) -> None:
        self._send(f"L {label}")
        self._expect("k")

    def done(self) -> None:
        self._expect("d")

    def finish(self) -> dict[str, list[list[Any]]]:
        self._send("q")
        assert self.proc.stdout is not None
        out = json.loads(self.proc.stdout.readline())
        self.proc.wait(timeout=60)
        return out  # type: ignore[no-any-return]


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
    t0: dict[str, dict[int, float]] = {}  # label -> account -> when its commit was written
    try:
        ports = server.ports

        async def add(make: Any, port: int) -> Any:
            p = make()
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), p)
            return p

        specs: list[list[Any]] = []
        for kind, n in (("IMAP IDLE", args.imap), ("EventSource", args.es), ("WebSocket", args.ws)):
            for i in range(n):
                a = i % args.accounts
                specs.append([kind, a, address(a), tokens[a]])
        procs = [ListenerProcess(ports, specs[k::args.procs]) for k in range(args.procs) if specs[k::args.procs]]
        for lp in procs:
            await deferToThread(lp.ready)
        imap_writers = [await add(lambda a=a: ImapWriter(a), ports["IMAP"]) for a in range(args.accounts)]
        await defer.gatherResults([w.ready for w in imap_writers])
        http_writers = [await add(lambda a=a: HttpWriter(tokens[a]), ports["JMAP"]) for a in range(args.accounts)]
        import smtplib

        lmtp = await deferToThread(smtplib.LMTP, "127.0.0.1", ports["LMTP"])
        await deferToThread(lmtp.ehlo, "bench")
        email_ids: list[str] = []
        print(f"{len(specs)} listeners ready ({args.imap} IMAP IDLE, {args.es} EventSource, {args.ws} WebSocket)"
              f" on {args.accounts} account(s), in {len(procs)} listener process(es)", flush=True)

        gap = 1.0 / args.rate if args.rate > 0 else 0.0

        async def paced(k: int, start: float) -> None:
            """Wait for the k-th commit's turn when ``--rate`` is given."""
            if gap:
                delay = start + k * gap - time.monotonic()
                if delay > 0:
                    await task.deferLater(reactor, delay, lambda: None)

        async def round_(label: str, fire: Any) -> None:
            t0[label] = {}
            await defer.gatherResults([deferToThread(lp.begin, label) for lp in procs])
            await fire(t0[label])
            waits = defer.gatherResults([deferToThread(lp.done) for lp in procs])
            try:
                await waits.addTimeout(120, reactor)
            except defer.TimeoutError:
                raise SystemExit(f"{label}: some listeners were never notified") from None

        for r in range(args.rounds):
            def deliver(stamps: dict[int, float], r: int = r) -> None:
                msg = (f"From: bob@example.org\r\nSubject: round {r}\r\nMessage-ID: <{r}@bench>\r\n\r\n"
                       "hello\r\n").encode()
                per = 1 if gap else RCPTMAX
                start = time.monotonic()
                for first in range(0, args.accounts, per):
                    batch = range(first, min(args.accounts, first + per))
                    if gap and (delay := start + first * gap - time.monotonic()) > 0:
                        time.sleep(delay)  # this runs in a thread: pacing the deliveries
                    lmtp.mail("bob@example.org")
                    for a in batch:
                        code, _text = lmtp.rcpt(address(a))
                        assert code == 250, (code, _text)
                    # smtplib's data() sends the message and the final "." in one write
                    now = time.monotonic()
                    for a in batch:
                        stamps[a] = now
                    lmtp.data(msg)  # reads the first recipient's reply (smtplib knows no LMTP DATA)
                    for _a in batch[1:]:  # RFC 2033 §4.2: one reply per accepted recipient
                        code, _text = lmtp.getreply()
                        assert code == 250, (code, _text)

            label = f"LMTP delivery#{r}"

            async def lmtp_round(stamps: dict[int, float]) -> None:
                await deferToThread(deliver, stamps)

            await round_(label, lmtp_round)

            await defer.gatherResults([w.noop() for w in imap_writers])

            async def store_round(stamps: dict[int, float], r: int = r) -> None:
                waits = []
                start = time.monotonic()
                for k, w in enumerate(imap_writers):
                    await paced(k, start)
                    stamps[w.account] = time.monotonic()
                    waits.append(w.store(r))
                await defer.gatherResults(waits)

            await round_(f"IMAP STORE#{r}", store_round)
            if not email_ids:
                for a, w in enumerate(http_writers):
                    res = await w.post({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                                        "methodCalls": [["Email/query", {"accountId": account_id(a)}, "0"]]})
                    assert "ids" in res["methodResponses"][0][1], res
                    email_ids.append(res["methodResponses"][0][1]["ids"][-1])

            async def jmap_round(stamps: dict[int, float], r: int = r) -> None:
                waits = []
                start = time.monotonic()
                for a, w in enumerate(http_writers):
                    await paced(a, start)
                    body = {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": [
                        ["Email/set", {"accountId": account_id(a), "update": {email_ids[a]: {f"keywords/$j{r}": True}}},
                         "0"]]}
                    stamps[a] = time.monotonic()
                    waits.append(w.post(body))
                await defer.gatherResults(waits)

            await round_(f"JMAP Email/set#{r}", jmap_round)
        samples: dict[str, list[float]] = {}
        for lp in procs:
            for label, arrivals in (await deferToThread(lp.finish)).items():
                for kind, a, when in arrivals:
                    samples.setdefault(f"{label.split('#')[0]} -> {kind}", []).append(when - t0[label][a])
    finally:
        server.stop()
    print(f"{args.imap} IMAP IDLE + {args.es} EventSource + {args.ws} WebSocket listeners on {args.accounts} "
          f"account(s); {args.rounds} rounds of each commit kind, one commit per account per round "
          f"(INBOX grows to {args.rounds} messages); "
          + (f"commits paced at {args.rate:g}/s; " if gap else "each round's commits at once; ")
          + "server in its own process")
    rates: dict[str, list[float]] = {}
    for label, stamps in t0.items():
        if len(stamps) > 1 and (span := max(stamps.values()) - min(stamps.values())) > 0:
            rates.setdefault(label.split("#")[0], []).append((len(stamps) - 1) / span)
    for kind, rs in sorted(rates.items()):
        print(f"{kind:32s} commits written at {sum(rs) / len(rs):8.0f}/s (mean of the rounds)")
    for key, xs in sorted(samples.items()):
        print(f"{key:32s} n={len(xs):6d}  p50 {pct(xs, .5):7.1f} ms  p99 {pct(xs, .99):7.1f} ms"
              f"  max {max(xs) * 1000:7.1f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--imap", type=int, default=500)
    p.add_argument("--es", type=int, default=500)
    p.add_argument("--ws", type=int, default=0)
    p.add_argument("--accounts", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--procs", type=int, default=1, help="listener processes (bench/push_listener.py)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="commits per second across the accounts within a round (default 0: all at once)")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, p.parse_args())))
