"""COMPRESS=DEFLATE (RFC 4978): the octets a full ``UID FETCH 1:* (ENVELOPE)`` puts on the
wire, plain and compressed, against the real server over loopback.

    python bench/compress_bench.py [--messages 10000]

The store is built as in bench/imap_bench.py (mailgen messages through the store API), a
``twistd -n dualmail`` child serves it, and tests/imap/deflate_client.py (a zlib-wrapped
socket: imaplib cannot compress) fetches every ENVELOPE once without and once with
COMPRESS DEFLATE.  Prints the octets received, the ratio and the wall time of each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "imap"))
sys.path.insert(0, HERE)

from imap_bench import PASSWORD, USER, Server, build  # noqa: E402
from deflate_client import DeflateClient  # noqa: E402


def fetch_all(port: int, compress: bool) -> tuple[int, int, float]:
    """(octets on the wire, octets of IMAP text, seconds) of one full ENVELOPE fetch."""
    cl = DeflateClient(port, timeout=600)
    try:
        cl.command("a", f"LOGIN {USER} {PASSWORD}")
        if compress:
            assert cl.command("b", "COMPRESS DEFLATE").startswith(b"b OK")
            cl.start_compress()
        cl.command("c", "SELECT INBOX")
        before = cl.wire_in
        t0 = time.perf_counter()
        text = cl.command("d", "UID FETCH 1:* (ENVELOPE)")
        took = time.perf_counter() - t0
        assert text.endswith(b"OK FETCH completed\r\n") or b"d OK" in text[-100:], text[-200:]
        return cl.wire_in - before, len(text), took
    finally:
        cl.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=10000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dualmail-compress-")
    try:
        data = os.path.join(tmp, "data")
        build(data, args.messages)
        server = Server(data)
        try:
            plain_wire, plain_text, plain_s = fetch_all(server.port, False)
            z_wire, z_text, z_s = fetch_all(server.port, True)
        finally:
            server.stop()
        assert plain_text == z_text
        print(f"UID FETCH 1:* (ENVELOPE), {args.messages} messages")
        print(f"  plain:    {plain_wire:>12,} octets  {plain_s:6.2f} s")
        print(f"  DEFLATE:  {z_wire:>12,} octets  {z_s:6.2f} s  "
              f"({100 * z_wire / plain_wire:.1f}% of plain, {plain_wire - z_wire:,} octets saved)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
