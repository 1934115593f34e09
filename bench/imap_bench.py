"""IMAP benchmark against the real server over loopback sockets.

    python bench/imap_bench.py [--sizes 1000,10000,100000] [--idle 1000]

For each size a store is built straight through the store API (200 realistic messages
from bench/mailgen.py, parsed once and cycled with fresh Message-IDs), then ``twistd -n
dualmail`` is started on it in a child process (port 0; the port is read from its log)
and driven with Python's imaplib:

* SELECT INBOX: the first one after start (reads every UID once) and later ones;
* ``UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)``: messages/s;
* ``UID SEARCH HEADER Subject <word>`` on a header field;
* APPEND of 1,000 small messages into a new mailbox: messages/s.

Then, on the smallest account, ``--idle`` connections log in, SELECT INBOX and IDLE; the
server's resident memory before and after gives the memory per idle connection.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import mailgen  # noqa: E402

import dualmail.mail  # noqa: E402,F401  (registers the IMAP listing renderer: listing rows are written)
from dualmail.mime.parse import summarize  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402
from dualmail.mime.jmap_listing import encode as encode_summary  # noqa: E402  (with the JMAP listing record, as ingest writes it)

USER, PASSWORD = "bench@localhost", "bench-password"
BATCH = 5000


def build(data: str, n: int) -> None:
    store = open_store(data)
    a = store.create_account(USER, PASSWORD)
    with store.read(a) as v:
        inbox = v.mailbox_by_path(["INBOX"])
    samples = []
    for raw in mailgen.generate(200, seed=5):
        s = summarize(raw)
        samples.append((raw, s, encode_summary(s)))
    made = 0
    while made < n:
        k = min(BATCH, n - made)

        def fill(tx: Any, start: int = made, k: int = k) -> None:
            for i in range(start, start + k):
                raw, s, enc = samples[i % len(samples)]
                tx.create_email(raw, dict(s, message_id=[f"{i}@bench.example.org"]), [inbox],
                                ["$seen"] if i % 3 else [], 1_600_000_000 + i, encoded=enc)

        store.transact(a, fill)
        made += k
    store.close()


class Server:
    """``twistd -n dualmail`` on ``data`` in a child process, every listener on port 0;
    ``port`` is the ``kind`` listener's (IMAP, JMAP or LMTP)."""

    def __init__(self, data: str, kind: str = "IMAP", wait_index: bool = True) -> None:
        """``wait_index``: return once the full-text index has caught up (else once the
        port is known; ``caught_up`` is set when the server logs a catch-up)."""
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        cmd = [twistd] if os.path.exists(twistd) else [sys.executable, "-m", "twisted"]
        self.proc = subprocess.Popen(
            [*cmd, "-n", "--pidfile=", "--logfile=-", "dualmail", "--data", data, "--no-first-account",
             "--imap", "tcp:0:interface=127.0.0.1", "--jmap", "tcp:0:interface=127.0.0.1",
             "--lmtp", "tcp:0:interface=127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"})
        self.port = 0
        self.caught_up = threading.Event()
        assert self.proc.stdout is not None
        # measure an idle server: wait for its port and for the full-text index to catch up
        for line in self.proc.stdout:
            if f"{kind} listening on" in line:
                self.port = int(line.rsplit(":", 1)[1])
                if not wait_index:
                    break
            if "search index caught up" in line:
                self.caught_up.set()
                break
        assert self.port, f"the server did not report its {kind} port"

        def drain() -> None:  # a full pipe would stop the server at its next log line
            for line in self.proc.stdout:  # type: ignore[union-attr]
                if "search index caught up" in line:
                    self.caught_up.set()

        threading.Thread(target=drain, daemon=True).start()

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def client(port: int) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", port)
    # imaplib sends an APPEND literal and its CRLF in two writes: without NODELAY the
    # client's own Nagle waits for the server's delayed ACK, which measures nothing of ours
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.login(USER, PASSWORD)
    return c


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def per_size(n: int) -> dict[str, float]:
    d = tempfile.mkdtemp(prefix="dualmail-imapbench-")
    try:
        data = os.path.join(d, "data")
        build(data, n)
        srv = Server(data)
        try:
            c = client(srv.port)
            first = timed(lambda: c.select("INBOX"))
            again = statistics.median(timed(lambda: c.select("INBOX")) for _ in range(5))
            t = timed(lambda: c.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"))
            search = statistics.median(
                timed(lambda: c.uid("SEARCH", "HEADER", "Subject", "quarterly")) for _ in range(3))
            c.create("Bench")
            msg = b"From: a@example.org\r\nSubject: append\r\n\r\nhello\r\n"
            appends = 1000
            ta = timed(lambda: [c.append("Bench", None, None, msg) for _ in range(appends)])
            c.logout()
            return {"n": n, "select_first_ms": first * 1e3, "select_ms": again * 1e3,
                    "fetch_rate": n / t, "search_ms": search * 1e3, "append_rate": appends / ta}
        finally:
            srv.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def idle_memory(n_msgs: int, conns: int) -> tuple[int, float]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, conns * 2 + 100)), hard))
    d = tempfile.mkdtemp(prefix="dualmail-imapidle-")
    socks: list[socket.socket] = []
    try:
        data = os.path.join(d, "data")
        build(data, n_msgs)
        srv = Server(data)
        try:
            warm = client(srv.port)
            warm.select("INBOX")
            before = srv.rss_kb()
            for i in range(conns):
                s = socket.create_connection(("127.0.0.1", srv.port))
                f = s.makefile("rb")
                f.readline()
                s.sendall(f'a LOGIN "{USER}" "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
                while True:
                    line = f.readline()
                    if not line:
                        raise RuntimeError(f"connection {i} closed before IDLE")
                    if line.startswith(b"+"):
                        break
                socks.append(s)
                if (i + 1) % 100 == 0:
                    sys.stderr.write(f"  {i + 1} connections idle\n")
            after = srv.rss_kb()
            warm.logout()
            return conns, (after - before) / conns
        finally:
            for s in socks:
                s.close()
            srv.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--idle", type=int, default=1000)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    out = sys.stdout
    out.write(f"{'messages':>9} {'SELECT first':>13} {'SELECT':>9} {'UID FETCH ENVELOPE':>19} "
              f"{'UID SEARCH HEADER':>18} {'APPEND':>11}\n")
    rows = []
    for n in sizes:
        r = per_size(n)
        rows.append(r)
        out.write(f"{n:>9} {r['select_first_ms']:>10.1f} ms {r['select_ms']:>6.2f} ms "
                  f"{r['fetch_rate']:>12.0f} msg/s {r['search_ms']:>15.1f} ms {r['append_rate']:>7.0f} msg/s\n")
        out.flush()
    if len(rows) > 1:
        out.write(f"SELECT ratio {sizes[-1]}/{sizes[0]}: {rows[-1]['select_ms'] / rows[0]['select_ms']:.2f}\n")
    if args.idle:
        conns, kb = idle_memory(1000, args.idle)
        out.write(f"{conns} connections in IDLE on a 1000-message INBOX: {kb:.1f} KiB each\n")


if __name__ == "__main__":
    main()
