"""The IMAP commands of bench/vs_dovecot.py, sans I/O: a ``Session`` driven in-process.

    python bench/imap_inproc.py [--sizes 1000,10000] [--rounds 5] [--profile N]

A store is built through the store API (``imap_bench.build``: 200 mailgen messages cycled,
every third unseen), then a logged-in ``Session`` (tests/imap/imap_util.Client) runs each
command; the figure is the median of the rounds.  ``--profile N``: cProfile of command N
(0-based, in the order printed), top lines by tottime.  No sockets: this is the server's
own cost per command, what vs_dovecot.py adds socket work to.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "imap"))

import imap_bench  # noqa: E402
from dualmail.imap.config import ImapConfig  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402

import imap_util  # noqa: E402


def commands(n: int) -> list[tuple[str, str]]:
    newest = f"{max(1, n - 500)}:{n}"
    return [
        ("listing", "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"),
        ("bodystructure", "UID FETCH 1:* (BODYSTRUCTURE)"),
        ("header.fields 500", f"UID FETCH {newest} (BODY.PEEK[HEADER.FIELDS (From To Subject Date "
                              f"Message-ID References)])"),
        ("tb new mail 500", f"UID FETCH {newest} (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc "
                            f"Bcc Subject Date Message-ID Priority X-Priority References Newsgroups "
                            f"In-Reply-To Content-Type Reply-To)])"),
        ("search unseen", "UID SEARCH UNSEEN"),
        ("sort reverse date", "UID SORT (REVERSE DATE) UTF-8 ALL"),
        ("sort arrival", "UID SORT (ARRIVAL) UTF-8 ALL"),
        ("search subject", "UID SEARCH SUBJECT quarterly"),
        ("select condstore", "SELECT INBOX (CONDSTORE)"),
    ]


def run(c: imap_util.Client, tag: str, line: str) -> bytes:
    """The server's answer to one command: the session's output, nothing decoded."""
    c.session.feed(f"{tag} {line}\r\n".encode())
    out: list[bytes] = []
    while (it := c.session.step()) is not None:
        c._run(it, out)
    data = b"".join(out)
    assert data.rsplit(b"\r\n", 2)[-2].startswith(f"{tag} OK".encode()), data[-300:]
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", type=int, default=None)
    args = ap.parse_args()
    print(f"imap_inproc: load average {os.getloadavg()[0]:.1f} "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    for n in [int(x) for x in args.sizes.split(",") if x]:
        d = tempfile.mkdtemp(prefix="imapinproc-")
        try:
            imap_bench.build(d, n)
            store = open_store(d)
            imap_util.USER, imap_util.PASSWORD = imap_bench.USER, imap_bench.PASSWORD
            c = imap_util.Client(store, ImapConfig(failed_login_delay=0))
            c.login()
            c.ok("s SELECT INBOX")
            for i, (name, line) in enumerate(commands(n)):
                run(c, "w", line)  # warm-up
                times = []
                for _r in range(args.rounds):
                    t0 = time.perf_counter()
                    run(c, "t", line)
                    times.append(time.perf_counter() - t0)
                dt = statistics.median(times)
                print(f"{n:>7} {name:<20} {dt * 1e3:9.2f} ms  {n / dt:12,.0f} msg/s")
                if args.profile == i:
                    prof = cProfile.Profile()
                    prof.enable()
                    run(c, "p", line)
                    prof.disable()
                    pstats.Stats(prof).sort_stats("tottime").print_stats(14)
            store.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
