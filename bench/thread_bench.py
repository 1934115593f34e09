"""IMAP THREAD benchmark: ``THREAD REFERENCES`` / ``ORDEREDSUBJECT`` and ``SORT`` over a mailbox.

    python bench/thread_bench.py [--counts 7400] [--seed 1] [--profile]

Builds a store in a temporary directory from ``mailgen`` messages (threads with
References, as real mail), then times (median of 5 runs, one read view each) what a
``UID THREAD REFERENCES UTF-8 ALL`` costs the server: the ALL search plus the threading,
split into the two; ORDEREDSUBJECT and ``SORT (DATE)`` for comparison.  Times are CPU
seconds of this process (``time.process_time``: steady on a shared machine).  ``--profile``
prints the top of a cProfile of one REFERENCES run.  docs/search.md records a run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from search_bench import build, timed as search_timed  # noqa: E402

from dualmail.search import MailboxScope, search  # noqa: E402
from dualmail.search.query import ALL, SortKey  # noqa: E402
from dualmail.search.engine import sort  # noqa: E402
from dualmail.search.thread import thread  # noqa: E402


def timed(fn, runs: int = 5) -> tuple[float, object]:
    return search_timed(fn, runs, clock=time.process_time)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="7400")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    out = sys.stdout
    box = MailboxScope(1)
    for n in (int(x) for x in args.counts.split(",")):
        with tempfile.TemporaryDirectory() as d:
            store, a, _secs = build(d, n, args.seed)
            out.write(f"== {n} messages\n")
            with store.read(a) as r:
                t_search, found = timed(lambda: search(r, box, ALL))
                t_refs, roots = timed(lambda: thread(r, box, found, "REFERENCES"))
                t_subj, _ = timed(lambda: thread(r, box, found, "ORDEREDSUBJECT"))
                t_sort, _ = timed(lambda: sort(r, box, found, [SortKey("date", False)]))
                if args.profile:
                    import cProfile
                    import pstats

                    prof = cProfile.Profile()
                    prof.runcall(thread, r, box, found, "REFERENCES")
                    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(18)
            out.write(f"{'SEARCH ALL':28s} {t_search * 1000:8.1f} ms  ({len(found)} messages)\n")  # type: ignore[arg-type]
            out.write(f"{'THREAD REFERENCES':28s} {t_refs * 1000:8.1f} ms  ({len(roots)} threads)"  # type: ignore[arg-type]
                      f"  with the search {(t_search + t_refs) * 1000:.1f} ms\n")
            out.write(f"{'THREAD ORDEREDSUBJECT':28s} {t_subj * 1000:8.1f} ms\n")
            out.write(f"{'SORT (DATE)':28s} {t_sort * 1000:8.1f} ms\n")
            store.close()
        out.flush()


if __name__ == "__main__":
    main()
