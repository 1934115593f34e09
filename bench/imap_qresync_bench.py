"""QRESYNC / CONDSTORE benchmark: resynchronising after 10 changes on big mailboxes.

    python bench/imap_qresync_bench.py [--sizes 1000,10000,100000] [--repeat 7]

For each size a fresh store gets an INBOX of that many messages, built straight through
the store API (``store.transact`` + ``tx.create_email`` with one parsed template message;
no IMAP APPEND).  A client session (the sans-I/O ``Session``, no sockets) selects INBOX
with QRESYNC enabled and notes HIGHESTMODSEQ; then 10 changes are committed by "someone
else" (5 keyword changes, 5 expunges, one transaction each).  Timed, median of
``--repeat`` runs:

* ``QRESYNC SELECT``: ``SELECT INBOX (QRESYNC (uidvalidity modseq))`` from that modseq,
  the whole command through the session layer;
* of which ``seq map``: the sequence-number map from ``Store.uid_maps`` (kept in memory
  and brought up to date from the O(changes) indexes; a copy of the UID array), and
  ``cold seq map``: the same read from the store's UID index (``ReadView.uids``, O(n)),
  what the first SELECT of a mailbox after a restart pays; ``plain SELECT``, the same
  command without QRESYNC;
* ``change report``: the QRESYNC part alone (VANISHED (EARLIER) + FETCH of the changed
  messages, ``ops.select._qresync``), which should be O(changes);
* ``UID FETCH CHANGEDSINCE``: ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`` in the selected
  mailbox, and the same with ``VANISHED``.

The 100k/1k ratio of each column shows what grows with the mailbox.  Figures are
recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from dualmail.imap.config import ImapConfig  # noqa: E402
from dualmail.imap.ops import select as select_op  # noqa: E402
from dualmail.imap.session import CheckPassword, Session  # noqa: E402
from dualmail.imap.wire import commands as c  # noqa: E402
from dualmail.mime.parse import summarize  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402
from dualmail.store.txn import encode_summary  # noqa: E402

TEMPLATE = (b"From: Bench <bench@example.org>\r\nTo: you@example.org\r\nSubject: benchmark\r\n"
            b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <template@example.org>\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHello, this is a benchmark.\r\n")
BATCH = 5000
CHANGES = 10


class Driver:
    """Feeds command lines to a Session and collects its output (no sockets)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.session = Session(store, ImapConfig(failed_login_delay=0), loopback=True)

    def cmd(self, line: str) -> bytes:
        self.session.feed(line.encode() + b"\r\n")
        out: list[bytes] = []
        while (it := self.session.step()) is not None:
            self._run(it, out)
        data = b"".join(out)
        tag = line.split(" ", 1)[0].encode()
        assert (b"\r\n" + data).rfind(b"\r\n" + tag + b" OK") >= 0, data[-300:]
        return data

    def _run(self, it: Any, out: list[bytes]) -> None:
        for item in it:
            if isinstance(item, bytes):
                out.append(item)
            elif isinstance(item, CheckPassword):
                account = self.store.authenticate(item.user, item.password)
                self._run(self.session.login_result(item, account), out)


def build(store: Any, account: int, n: int) -> int:
    summary = summarize(TEMPLATE)
    encoded = encode_summary(summary)
    with store.read(account) as v:
        inbox = v.mailbox_by_path(["INBOX"])
    made = 0
    while made < n:
        k = min(BATCH, n - made)

        def fill(tx: Any, start: int = made, k: int = k) -> None:
            for i in range(start, start + k):
                s = dict(summary, message_id=[f"<{i}@bench.example.org>"])
                tx.create_email(TEMPLATE, s, [inbox], ["$seen"] if i % 3 else [],
                                760000000 + i, encoded=encoded)

        store.transact(account, fill)
        made += k
    return inbox


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm caches (LMDB pages, the interpreter), as a live server would have them
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def bench(n: int, repeat: int) -> dict[str, float]:
    d = tempfile.mkdtemp(prefix="dualmail-qresync-")
    try:
        store = open_store(os.path.join(d, "data"), sync=False)
        account = store.create_account("bench@localhost", "pw")
        t0 = time.perf_counter()
        inbox = build(store, account, n)
        build_s = time.perf_counter() - t0
        client = Driver(store)
        client.cmd("a LOGIN bench@localhost pw")
        client.cmd("b ENABLE IMAP4rev2 QRESYNC")
        client.cmd("c SELECT INBOX")
        with store.read(account) as v:
            rec = v.require_mailbox(inbox)
            uidvalidity, since = int(rec["uidvalidity"]), int(rec["hms"])
            uids = list(v.uids(inbox))
        rng = random.Random(n)
        picked = rng.sample(uids, CHANGES)
        for i, u in enumerate(picked):  # someone else's changes: one transaction each
            with store.write(account) as tx:
                e = tx.email_at(inbox, u)
                if i % 2:
                    tx.remove_membership(e, inbox)
                else:
                    tx.set_keywords(e, ["$flagged", "$seen"])
        client.cmd("d NOOP")  # the session catches up; its map is current
        out = client.cmd(f"e SELECT INBOX (QRESYNC ({uidvalidity} {since}))")
        assert out.count(b"FETCH (") == CHANGES // 2 and b"VANISHED (EARLIER)" in out, out[-500:]
        out = client.cmd(f"f UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since})")
        assert out.count(b"FETCH (") == CHANGES // 2, out

        sel = client.session.selected
        q = c.QResync(uidvalidity, since)

        def report() -> None:
            with store.read(account) as view:
                rec = view.require_mailbox(inbox)
                select_op._qresync(client.session, sel, view, q, int(rec["uidnext"]))

        def seq_map() -> None:
            with store.read(account) as view:
                store.uid_maps.uids(view, inbox)

        def cold_map() -> None:
            with store.read(account) as view:
                view.uids(inbox)

        return {
            "n": n,
            "build_s": build_s,
            "qresync_select": timed(lambda: client.cmd(
                f"g SELECT INBOX (QRESYNC ({uidvalidity} {since}))"), repeat),
            "plain_select": timed(lambda: client.cmd("h SELECT INBOX"), repeat),
            "seq_map": timed(seq_map, repeat),
            "cold_map": timed(cold_map, repeat),
            "change_report": timed(report, repeat),
            "fetch_changedsince": timed(lambda: client.cmd(
                f"i UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since})"), repeat),
            "fetch_vanished": timed(lambda: client.cmd(
                f"j UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)"), repeat),
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


COLUMNS = [
    ("qresync_select", "QRESYNC SELECT"),
    ("plain_select", "plain SELECT"),
    ("seq_map", "seq map"),
    ("cold_map", "cold seq map"),
    ("change_report", "change report"),
    ("fetch_changedsince", "UID FETCH CHANGEDSINCE"),
    ("fetch_vanished", "... + VANISHED"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    rows = [bench(int(x), args.repeat) for x in args.sizes.split(",")]
    head = f"{'messages':>9} " + " ".join(f"{label:>22}" for _k, label in COLUMNS)
    print(f"{CHANGES} changes (5 keyword changes, 5 expunges) since the client's modseq; "
          f"median of {args.repeat}, milliseconds")
    print(head)
    for row in rows:
        print(f"{row['n']:>9} " + " ".join(f"{row[k] * 1000:>22.3f}" for k, _l in COLUMNS))
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        print(f"{'ratio':>9} " + " ".join(f"{hi[k] / lo[k]:>22.2f}" for k, _l in COLUMNS)
              + f"   ({hi['n']}/{lo['n']})")
    for row in rows:
        print(f"built {row['n']} messages in {row['build_s']:.1f} s")


if __name__ == "__main__":
    main()
