"""PostgreSQL engine benchmark (issue 18): LMDB vs PostgreSQL on one node, 1-3 nodes on
different accounts, and the cross-node push latency.

    python bench/pg_bench.py [--messages 2000] [--appends 300] [--pushes 200]

A throw-away PostgreSQL cluster (Debian's binaries, ``fsync=on`` as in production, unix
socket in a temporary directory: tests/pg/server.py) and real ``twistd dualmail`` child
processes driven with imaplib over loopback (and JMAP over HTTP with urllib):

1. one node, the same workloads on LMDB (``--data``) and PostgreSQL (``--store``), on a
   store of ``--messages`` messages built through the store API: SELECT, UID FETCH of every
   envelope, UID SEARCH on a header, JMAP Email/query + Email/get (50 ids), APPEND; the
   ratio PostgreSQL / LMDB per operation;
2. APPEND throughput with 1, 2 and 3 nodes, one client per node, each on its own account,
   with the CPU seconds the nodes, PostgreSQL and the clients used meanwhile (so a run on
   a machine with too few cores says that the cores were the limit);
3. cross-node push: a client IDLEs on node 1, another APPENDs through node 2; the time
   from the APPEND's tagged OK to the untagged EXISTS on node 1 (p50, p99).
"""

from __future__ import annotations

import argparse
import base64
import imaplib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from imap_bench import PASSWORD, USER, Server, build, client, timed  # noqa: E402

from dualmail.search.fts import index_pending  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402
from tests.pg.server import PgServer  # noqa: E402

MSG = b"From: a@example.org\r\nSubject: append\r\n\r\nhello\r\n"
_LISTEN = re.compile(r"(IMAP|JMAP) listening on 127\.0\.0\.1:(\d+)")


class Node:
    def __init__(self, data: str, store: str | None) -> None:
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        cmd = [twistd] if os.path.exists(twistd) else [sys.executable, "-m", "twisted"]
        extra = ["--store", store] if store else []
        self.proc = subprocess.Popen(
            [*cmd, "-n", "--pidfile=", "--logfile=-", "dualmail", "--data", data, *extra, "--no-first-account",
             "--imap", "tcp:0:interface=127.0.0.1", "--jmap", "tcp:0:interface=127.0.0.1",
             "--lmtp", "tcp:0:interface=127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"})
        self.ports: dict[str, int] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = _LISTEN.search(line)
            if m:
                self.ports[m.group(1)] = int(m.group(2))
            if {"IMAP", "JMAP"} <= self.ports.keys():
                break
        assert {"IMAP", "JMAP"} <= self.ports.keys(), "the node did not report its ports"
        threading.Thread(target=lambda: [None for _line in self.proc.stdout], daemon=True).start()

    @property
    def port(self) -> int:
        return self.ports["IMAP"]

    stop = Server.stop


def login(port: int, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", port)
    import socket

    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.login(user, PASSWORD)
    return c


def jmap_rate(node: Node, rounds: int = 30) -> float:
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    base = f"http://127.0.0.1:{node.ports['JMAP']}"
    with urllib.request.urlopen(urllib.request.Request(base + "/.well-known/jmap",
                                                       headers={"Authorization": auth})) as r:
        session = json.loads(r.read())
    acct = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
    body = json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": [
        ["Email/query", {"accountId": acct, "limit": 50, "sort": [{"property": "receivedAt", "isAscending": False}]}, "q"],
        ["Email/get", {"accountId": acct, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["subject", "from", "receivedAt", "keywords", "preview"]}, "g"]]}).encode()
    t0 = time.perf_counter()
    for _ in range(rounds):
        req = urllib.request.Request(session["apiUrl"], data=body, method="POST",
                                     headers={"Authorization": auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            r.read()
    return rounds / (time.perf_counter() - t0)


def single_node(n: int, appends: int, store: str | None, data: str) -> dict[str, float]:
    build(store or data, n)
    s = open_store(store or data)  # index here, so the server starts idle at any size
    a = s.account_id(USER)
    assert a is not None
    while index_pending(s, a, 500):
        pass
    s.close()
    node = Node(data, store)
    try:
        c = client(node.port)
        c.select("INBOX")
        select = statistics.median(timed(lambda: c.select("INBOX")) for _ in range(41))
        fetch = statistics.median(
            timed(lambda: c.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"))
            for _ in range(3))
        search = statistics.median(timed(lambda: c.uid("SEARCH", "HEADER", "Subject", "quarterly")) for _ in range(21))
        jmap = jmap_rate(node, 100)
        c.create("Bench")
        ta = timed(lambda: [c.append("Bench", None, None, MSG) for _ in range(appends)])
        c.logout()
        return {"SELECT (ms)": select * 1e3, "UID FETCH envelopes (msg/s)": n / fetch,
                "UID SEARCH HEADER (ms)": search * 1e3, "JMAP query+get 50 (req/s)": jmap,
                "APPEND (msg/s)": appends / ta}
    finally:
        node.stop()


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and of its children it has reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / _TICK  # utime stime cutime cstime


def tree_cpu(root: int) -> float:
    """CPU seconds used by ``root`` and every live descendant (and the ones they reaped)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None:
            stats[int(name)] = st
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += [p for p, (parent, _c) in stats.items() if parent == pid]
    return total


def postmaster(pg: PgServer) -> int:
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        return int(f.readline())


def multi_node(pg: PgServer, tmp: str, k: int, appends: int) -> float:
    url = pg.fresh_database("mn")
    s = open_store(url)
    users = [f"user{i}@localhost" for i in range(k)]
    for u in users:
        s.create_account(u, PASSWORD)
    s.close()
    nodes = [Node(os.path.join(tmp, f"mn{k}-{i}"), url) for i in range(k)]
    try:
        clients = [login(node.port, users[i]) for i, node in enumerate(nodes)]
        barrier = threading.Barrier(k + 1)

        def run(c: imaplib.IMAP4) -> None:
            barrier.wait()
            for _ in range(appends):
                c.append("INBOX", None, None, MSG)

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        cpu0 = ([tree_cpu(n.proc.pid) for n in nodes], tree_cpu(postmaster(pg)), time.process_time())
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu1 = ([tree_cpu(n.proc.pid) for n in nodes], tree_cpu(postmaster(pg)), time.process_time())
        rate = k * appends / wall
        used_nodes = sum(cpu1[0]) - sum(cpu0[0])
        used_pg, used_client = cpu1[1] - cpu0[1], cpu1[2] - cpu0[2]
        print(f"  {k} node(s): {rate:8.1f} msg/s; CPU over {wall:.1f} s: dualmail {used_nodes:.1f} s, "
              f"PostgreSQL {used_pg:.1f} s, clients {used_client:.1f} s = "
              f"{(used_nodes + used_pg + used_client) / wall:.2f} of {os.cpu_count()} cores busy")
        for c in clients:
            c.logout()
        return rate
    finally:
        for node in nodes:
            node.stop()


def push_latency(pg: PgServer, tmp: str, samples: int) -> list[float]:
    url = pg.fresh_database("push")
    s = open_store(url)
    s.create_account(USER, PASSWORD)
    s.close()
    n1, n2 = Node(os.path.join(tmp, "p1"), url), Node(os.path.join(tmp, "p2"), url)
    try:
        idle = login(n1.port, USER)
        idle.select("INBOX")
        writer = login(n2.port, USER)
        sock = idle.sock
        f = sock.makefile("rb")
        sock.sendall(b"i1 IDLE\r\n")
        assert f.readline().startswith(b"+")
        out = []
        for _ in range(samples):
            writer.append("INBOX", None, None, MSG)
            t_ok = time.perf_counter()
            while b"EXISTS" not in f.readline():
                pass
            out.append(time.perf_counter() - t_ok)
        sock.sendall(b"DONE\r\n")
        writer.logout()
        return out
    finally:
        n1.stop()
        n2.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--appends", type=int, default=300)
    ap.add_argument("--pushes", type=int, default=200)
    args = ap.parse_args()
    pg = PgServer(fsync=True).start()
    tmp = tempfile.mkdtemp(prefix="dualmail-pgbench-")
    try:
        lm = single_node(args.messages, args.appends, None, os.path.join(tmp, "lmdb"))
        pgr = single_node(args.messages, args.appends, pg.fresh_database("one"), os.path.join(tmp, "pgnode"))
        print(f"one node, INBOX of {args.messages} messages ({args.appends} APPENDs)")
        print(f"{'operation':<30} {'LMDB':>10} {'PostgreSQL':>11} {'PG time / LMDB time':>20}")
        for key in lm:
            ratio = pgr[key] / lm[key] if "(ms)" in key else lm[key] / pgr[key]
            print(f"{key:<30} {lm[key]:>10.1f} {pgr[key]:>11.1f} {ratio:>19.2f}x")
        print(f"\nAPPEND throughput on PostgreSQL, one client per node on its own account "
              f"({args.appends} each)")
        for k in (1, 2, 3):
            multi_node(pg, tmp, k, args.appends)
        lat = sorted(push_latency(pg, tmp, args.pushes))
        p50 = lat[len(lat) // 2] * 1e3
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
        print(f"\ncross-node push (APPEND OK on node 2 -> EXISTS on node 1, {len(lat)} samples): "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat[-1] * 1e3:.2f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        pg.stop()


if __name__ == "__main__":
    main()
