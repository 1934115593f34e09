"""Store benchmark: import throughput and the cost of "changes since M".

    python bench/store_bench.py [--sizes 1000,10000,100000] [--workers N]

For each mailbox size: generate realistic mail (bench/mailgen.py, cached in bench/out/),
import it with ``dualmail import``'s code path into a fresh store (synced commits, as in
production), print messages/s and the store's size on disk; then make 10 flag changes and
time "changes since M" (JMAP Email/changes, IMAP CHANGEDSINCE and VANISHED reads) for that
M (best of 7 rounds).  The ratio of the 100k to the 1k cost shows whether the cost grows with the mailbox.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import mailgen  # noqa: E402

from dualmail.importer_run import run_import  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402


def mbox_for(n: int) -> str:
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"mail-{n}.mbox")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            mailgen.write_mbox(f, mailgen.generate_records(n, seed=1))
        os.rename(tmp, path)
    return path


def disk_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def bench(n: int, workers: int | None) -> dict[str, float]:
    src = mbox_for(n)
    d = tempfile.mkdtemp(prefix="dualmail-bench-")
    try:
        store = open_store(os.path.join(d, "data"))
        a = store.create_account("bench@localhost", "pw")
        t0 = time.perf_counter()
        res = run_import(store, a, src, workers=workers)
        dt = time.perf_counter() - t0
        assert res.imported == n, res.summary_line()
        size = store.kv.disk_size()
        with store.read(a) as r:
            inbox = r.mailbox_by_path(["INBOX"])
            uids = list(r.uid_items(inbox))
            m0 = r.highest_modseq
        step = max(1, len(uids) // 10)
        for u, e in uids[::step][:10]:
            with store.write(a) as tx:
                tx.set_keywords(e, tx.email(e)["kw"] + ["benchmark"])
        # Best of several rounds: the figure is the cost of the read, not of whatever
        # else the machine did during one round.
        reps, rounds = 400, 7
        t_changes = t_imap = float("inf")
        with store.read(a) as r:
            for _round in range(rounds):
                t1 = time.perf_counter()
                for _ in range(reps):
                    ch = r.changes("Email", m0)
                t_changes = min(t_changes, (time.perf_counter() - t1) / reps)
                t1 = time.perf_counter()
                for _ in range(reps):
                    cs = r.changed_since(inbox, m0)
                    vs = r.expunged_since(inbox, m0)
                t_imap = min(t_imap, (time.perf_counter() - t1) / reps)
        assert len(ch.updated) == 10 and len(cs) == 10 and vs == [], (len(ch.updated), len(cs), vs[:5])
        store.close()
        return {"n": n, "rate": n / dt, "seconds": dt, "size_mb": size / 1e6,
                "changes_us": t_changes * 1e6, "changedsince_us": t_imap * 1e6}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        r = bench(n, args.workers)
        rows.append(r)
        sys.stdout.write(
            f"{r['n']:>7} msgs  import {r['rate']:7.0f} msg/s ({r['seconds']:6.1f} s)  "
            f"store {r['size_mb']:8.1f} MB  Email/changes(10) {r['changes_us']:7.1f} us  "
            f"CHANGEDSINCE+VANISHED(10) {r['changedsince_us']:7.1f} us\n")
        sys.stdout.flush()
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        sys.stdout.write(
            f"ratio {hi['n']}/{lo['n']}: Email/changes {hi['changes_us'] / lo['changes_us']:.2f}, "
            f"CHANGEDSINCE {hi['changedsince_us'] / lo['changedsince_us']:.2f}\n")


if __name__ == "__main__":
    main()
