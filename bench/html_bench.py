"""HTML benchmark: HTML-to-text at ingest (preview and search text) and the bodyValues
sanitiser, on ``mailgen`` messages and the hostile test corpus.

    python bench/html_bench.py [--count 3000] [--seed 7] [--runs 5]

Prints, median of ``--runs``:

* HTML-to-text throughput of dualmail's ``html_to_text`` (nh3: html5ever) beside the
  stdlib ``html.parser`` reader (what it replaced; still the fallback for deep
  documents), over every text/html part of the generated messages;
* the same over the hostile corpus (tests/mime/hostile_html.py: deep nesting, huge
  attributes, comment floods);
* ``summarize`` (the whole MIME parse at ingest) per message, so the HTML share shows;
* ``sanitize_html`` throughput (JMAP Email/get with fetchHTMLBodyValues).

docs/dependencies.md and docs/benchmarks.md record a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mailgen import generate  # noqa: E402

from dualmail.mime.jmap_body import body_value  # noqa: E402
from dualmail.mime.parse import summarize  # noqa: E402
from dualmail.mime.sanitize import sanitize_html  # noqa: E402
from dualmail.mime.structure import iter_nodes  # noqa: E402
from dualmail.mime.text import _flat_text, html_to_text  # noqa: E402


def stdlib_text(html: str) -> str:
    """The baseline: the stdlib html.parser reader (dualmail's fallback for deep documents,
    and before nh3 its only HTML-to-text)."""
    return _flat_text(html)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from tests.mime.hostile_html import CASES, big_cases

    raws = list(generate(args.count, seed=args.seed))
    docs = []
    for raw in raws:
        for node in iter_nodes(summarize(raw)["structure"], into_messages=False):
            if node.get("type") == "text" and node.get("subtype") == "html":
                docs.append(body_value(raw, node)["value"])
    size = sum(len(d.encode()) for d in docs)
    print(f"{len(raws)} mailgen messages, {len(docs)} text/html parts, {size / 1e6:.2f} MB of HTML")
    hostile = CASES + big_cases()
    hsize = sum(len(d.encode()) for d in hostile)
    for name, fn in (("html_to_text (nh3)", html_to_text), ("html.parser baseline", stdlib_text),
                     ("sanitize_html (nh3)", sanitize_html)):
        t = median_time(lambda: [fn(d) for d in docs], args.runs)
        h = median_time(lambda: [fn(d) for d in hostile], args.runs)
        print(f"{name:24s} mailgen: {t * 1000:7.1f} ms = {size / t / 1e6:5.1f} MB/s, "
              f"{t / len(docs) * 1e6:6.1f} µs/part;  hostile corpus ({hsize / 1e6:.2f} MB): {h * 1000:6.1f} ms")
    t = median_time(lambda: [summarize(r) for r in raws], max(1, args.runs // 2))
    print(f"summarize (whole ingest parse): {t * 1000:.0f} ms for {len(raws)} messages = "
          f"{t / len(raws) * 1e6:.0f} µs/message")


if __name__ == "__main__":
    main()
