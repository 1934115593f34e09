"""Search benchmark: TEXT / BODY / FROM searches on 1k and 10k messages, indexed vs not.

    python bench/search_bench.py [--counts 1000,10000] [--seed 1]

Builds a store in a temporary directory from ``mailgen`` messages, then times (median of
5 runs, one read view each):

* IMAP ``UID SEARCH TEXT <rare word>`` / ``BODY <common word>`` / ``FROM <name>`` with
  no full-text index (every candidate's stored text is scanned) and with it;
* a substring inside words (``BODY uarterl``: term-dictionary scan);
* JMAP ``inMailbox`` sorted by receivedAt desc with collapseThreads (the index fast path);
* the indexer's throughput (messages per second).

Prints one line per figure; docs/search.md records a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mailgen import generate_records  # noqa: E402

from dualmail.mail.ops import prepare, store_prepared  # noqa: E402
from dualmail.search import JMAP, MailboxScope, index_all, query, search  # noqa: E402
from dualmail.search.query import And, Contains, InMailbox, Keyword, Not, SortKey  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402


def timed(fn, runs: int = 5, clock=time.perf_counter) -> tuple[float, object]:
    out = None
    times = []
    for _ in range(runs):
        t = clock()
        out = fn()
        times.append(clock() - t)
    return statistics.median(times), out


def build(path: str, n: int, seed: int) -> tuple[object, int, float]:
    store = open_store(path, sync=False)
    a = store.create_account("bench@example.org", "pw")
    msgs = list(generate_records(n, seed))
    prepared = [prepare(m.raw, m.flags, m.date) for m in msgs]
    t = time.perf_counter()
    for i in range(0, n, 500):
        with store.write(a) as tx:
            for p in prepared[i : i + 500]:
                store_prepared(tx, p, [1])
    return store, a, time.perf_counter() - t


def rare_word(store, a) -> str:
    """A word that occurs in only a few messages' bodies."""
    from collections import Counter

    from dualmail.search.collate import fold, tokens
    counts: Counter[str] = Counter()
    with store.read(a) as r:
        for u, e in list(r.uid_items(1))[:300]:
            counts.update(t for t in tokens(fold(r.text(e)[1])) if t.isalpha() and len(t) > 6)
    return min(counts, key=lambda w: (counts[w], w))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    out = sys.stdout
    for n in (int(x) for x in args.counts.split(",")):
        with tempfile.TemporaryDirectory() as d:
            store, a, secs = build(d, n, args.seed)
            out.write(f"== {n} messages (import {n / secs:.0f} msg/s, search records included)\n")
            word = rare_word(store, a)
            with store.read(a) as r:
                name = r.summary(next(iter(r.uid_items(1)))[1])["from"][0]["email"].split("@")[0].split(".")[0]
            box = MailboxScope(1)
            cases = [
                (f"TEXT {word} (rare)", Contains("text", word)),
                ("BODY the (common)", Contains("body", "the")),
                (f"FROM {name}", Contains("from", name)),
                (f"FROM {name[1:4]} (inside a word)", Contains("from", name[1:4])),
                ("BODY uarterl (inside words)", Contains("body", "uarterl")),
                ("UNSEEN NOT FLAGGED FROM a", And((Not(Keyword("$seen")), Not(Keyword("$flagged")),
                                                   Contains("from", "a")))),
            ]
            results: dict[str, list[float]] = {}
            for label, cond in cases:
                with store.read(a) as r:
                    secs, found = timed(lambda: search(r, box, cond))
                results[label] = [secs]
                results[label].append(len(found))  # type: ignore[arg-type]
            t = time.perf_counter()
            index_all(store, a, 500)
            rate = n / (time.perf_counter() - t)
            for label, cond in cases:
                with store.read(a) as r:
                    secs, found = timed(lambda: search(r, box, cond))
                before, hits = results[label]
                out.write(f"{label:34s} hits {int(hits):6d}  unindexed {before * 1000:8.1f} ms"
                          f"  indexed {secs * 1000:8.1f} ms\n")
            out.write(f"{'indexer':34s} {rate:8.0f} msg/s\n")
            with store.read(a) as r:
                secs, found = timed(lambda: query(r, JMAP, InMailbox(1), [SortKey("received", True)],
                                                  collapse=True))
            out.write(f"{'JMAP inMailbox receivedAt desc':34s} collapse {len(found)} threads"  # type: ignore[arg-type]
                      f"  {secs * 1000:8.1f} ms\n")
            store.close()
        out.flush()


if __name__ == "__main__":
    main()
