"""LMTP delivery benchmark against the real server over loopback sockets.

    python bench/lmtp_bench.py [--size 10000] [--messages 400] [--conns 1,10]

An account is filled with ``--size`` realistic messages (bench/mailgen.py, through the
store API, as bench/imap_bench.py does), then ``twistd -n dualmail`` is started on it in a
child process (LMTP on port 0, the port read from its log; synced LMDB commits, as in
production) and ``--messages`` 10 KB messages are delivered with Python's smtplib.LMTP,
from 1 and from 10 concurrent connections (each its own thread, one recipient per
message).  Every delivery is a synced commit before its 250 reply, so this measures
fsyncs as much as code.  Prints deliveries/s with the mailbox size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from imap_bench import USER, Server, build  # noqa: E402


def message(i: int, size: int = 10_000) -> bytes:
    head = (f"From: Sender {i % 97} <sender{i % 97}@example.net>\r\nTo: {USER}\r\n"
            f"Subject: LMTP bench message {i}\r\nMessage-ID: <lmtp-bench-{i}@example.net>\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = "The quick brown fox jumps over the lazy dog, message %d.\r\n" % i
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body).encode()[:size - 2] + b"\r\n"


def deliver(port: int, conns: int, total: int, first: int) -> float:
    """Deliveries/s of ``total`` messages spread over ``conns`` connections."""
    per = total // conns
    errors: list[BaseException] = []
    ready = threading.Barrier(conns + 1)

    def worker(k: int) -> None:
        try:
            c = smtplib.LMTP("127.0.0.1", port)
            c.ehlo("bench.example")
            msgs = [message(first + k * per + j) for j in range(per)]
            ready.wait()
            for m in msgs:
                c.sendmail("sender@example.net", [USER], m)
            c.quit()
        except BaseException as e:  # reported below
            errors.append(e)
            ready.abort()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    ready.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return per * conns / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10_000,
                    help="messages already in the account (at least 1,000: the run starts once the "
                         "server logs that its search index caught up, which it does from 1,000)")
    ap.add_argument("--messages", type=int, default=400, help="deliveries per run")
    ap.add_argument("--conns", default="1,10")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dualmail-lmtp-bench-")
    try:
        data = os.path.join(tmp, "data")
        t0 = time.perf_counter()
        build(data, args.size)
        print(f"account of {args.size} messages built in {time.perf_counter() - t0:.1f} s")
        server = Server(data, "LMTP")
        try:
            first = 0
            for conns in [int(c) for c in args.conns.split(",")]:
                deliver(server.port, conns, conns * 5, 10_000_000 + first)  # warm up
                first += conns * 5
                rate = deliver(server.port, conns, args.messages, first)
                first += args.messages
                print(f"LMTP, {args.size + first:,}-message INBOX, 10 KB messages, {conns} connection(s): "
                      f"{rate:,.0f} deliveries/s")
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
