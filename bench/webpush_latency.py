"""Web Push latency: time from a commit to its StateChange reaching a local
push service, for every verified PushSubscription of the committing account:
p50 / p99 / max.

    .venv/bin/python bench/webpush_latency.py [--subs 1000] [--per-account 10] [--commits 300]
                                              [--rate 0]

The server is the real service (``tap.makeService``, JMAP on tcp:0 loopback, the push
runner started with it); subscriptions carry RFC 8291 keys (every message is encrypted
with a fresh ECDH key) and every POST is VAPID-signed. The push service is a separate
process (twisted.web on 127.0.0.1:0) that stamps each POST's arrival with the shared
monotonic clock and answers 201; it does not decrypt. Commits are mailbox creations
made through the store in the server process, round-robin over the accounts; the
clock starts when the commit has returned (durably committed) and stops at the push
service's arrival stamp. ``--rate 0``: one commit at a time (the next once the last
one's pushes have all arrived); ``--rate R``: R commits per second regardless.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from twisted.internet import defer, protocol, task  # noqa: E402

PUSH_SERVICE = r"""
import sys, time
from twisted.internet import reactor
from twisted.web import resource, server

class R(resource.Resource):
    isLeaf = True
    def render_POST(self, request):
        t = time.monotonic_ns()
        request.content.read()
        sys.stdout.write("%s %d\n" % (request.path.decode(), t))
        sys.stdout.flush()
        request.setResponseCode(201)
        return b""

site = server.Site(R())
site.noisy = False
def log_nothing(request):
    pass
site.log = log_nothing
port = reactor.listenTCP(0, site, interface="127.0.0.1")
sys.stdout.write("PORT %d\n" % port.getHost().port)
sys.stdout.flush()
reactor.run()
"""


class PushService(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.buf = b""
        self.port: defer.Deferred[int] = defer.Deferred()
        self.on_arrival = lambda path, t: None

    def outReceived(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            a, b = line.decode().split()
            if a == "PORT":
                self.port.callback(int(b))
            else:
                self.on_arrival(a, int(b))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def main(reactor, args) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from dualmail.push.webpush import b64url
    from dualmail.store import pushsubs
    from dualmail.store.store import open_store
    from dualmail.tap import Options, makeService

    push = PushService()
    reactor.spawnProcess(push, sys.executable, [sys.executable, "-c", PUSH_SERVICE], env=os.environ)
    push_port = await push.port
    base = f"http://127.0.0.1:{push_port}"

    data = tempfile.mkdtemp(prefix="webpush-bench-")
    accounts = max(1, args.subs // args.per_account)
    setup = open_store(data)
    numbers = [setup.create_account(f"user{i}@example.org", "x") for i in range(accounts)]
    subs: dict[int, list[str]] = {a: [] for a in numbers}
    made = 0
    for a in numbers:
        with setup.kv.write(a) as w:
            for k in range(args.per_account):
                if made >= args.subs:
                    break
                ua = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
                path = f"/s/{a}/{k}"
                rec = {"deviceClientId": f"d{k}", "url": base + path,
                       "keys": {"p256dh": b64url(ua), "auth": b64url(os.urandom(16))}, "code": "c",
                       "verified": True, "expires": None, "types": None, "states": {}, "vapid": None,
                       "created": 0}
                p = pushsubs.create(w, a, rec, 0)
                pushsubs.delivered(w, a, p, "verify", 1)  # as if verified already
                subs[a].append(path)
                made += 1
    setup.close()

    options = Options()
    options.parseOptions(["--data", data, "--jmap", "tcp:0:interface=127.0.0.1", "--imap",
                          "tcp:0:interface=127.0.0.1", "--lmtp", "tcp:0:interface=127.0.0.1",
                          "--no-first-account", "--push-allow-http-loopback"])
    service = makeService(options, reactor)
    service.startService()
    await service.bound_ports("jmap")
    store = service.store

    latencies: list[float] = []
    waiting: dict[str, int] = {}  # path -> commit time (ns) awaited
    done: list[defer.Deferred[None]] = []

    def arrival(path: str, t: int) -> None:
        t0 = waiting.pop(path, None)
        if t0 is not None:
            latencies.append((t - t0) / 1e6)
        if not waiting and done:
            done.pop().callback(None)

    push.on_arrival = arrival
    live = [a for a in numbers if subs[a]]
    warm = min(len(live), 20)
    for i in range(args.commits + warm):
        a = live[i % len(live)]
        with store.write(a) as tx:
            tx.create_mailbox(f"m{i}", 0)
        t0 = time.monotonic_ns()
        if i == warm:
            latencies.clear()
        for path in subs[a]:
            waiting[path] = t0
        if args.rate:
            await task.deferLater(reactor, 1.0 / args.rate, lambda: None)
        else:
            d: defer.Deferred[None] = defer.Deferred()
            done.append(d)
            await d.addTimeout(30, reactor)
    if waiting:
        d = defer.Deferred()
        done.append(d)
        await d.addTimeout(30, reactor)
    await service.stopService()
    push.transport.signalProcess("TERM")
    print(json.dumps({
        "subscriptions": made, "accounts": accounts, "per_account": args.per_account,
        "commits": args.commits, "rate": args.rate or "sequential", "deliveries": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2), "p99_ms": round(pct(latencies, 99), 2),
        "max_ms": round(max(latencies), 2)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--per-account", type=int, default=10)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args)))
