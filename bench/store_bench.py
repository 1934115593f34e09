"""Store benchmark: import throughput and the cost of "changes since M".

    python bench/store_bench.py [--sizes 1000,10000,100000] [--workers N]

For each mailbox size: generate realistic mail (bench/mailgen.py, cached in bench/out/),
import it with ``dualmail import``'s code path into a fresh store (synced commits, as in
production), print messages/s and the store's size on disk; then make 10 flag changes and
time "changes since M" (JMAP Email/changes, IMAP CHANGEDSINCE and VANISHED reads) for that
M (best of 9 rounds, the sizes' rounds alternating).  The ratio of the 100k to the 1k
cost shows whether the cost grows with the mailbox.
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


class Sized:
    """One imported store, kept open after its import with 10 changes made since ``m0``."""

    def __init__(self, n: int, workers: int | None) -> None:
        self.n = n
        self.dir = tempfile.mkdtemp(prefix="dualmail-bench-")
        self.store = open_store(os.path.join(self.dir, "data"))
        a = self.a = self.store.create_account("bench@localhost", "pw")
        t0 = time.perf_counter()
        res = run_import(self.store, a, mbox_for(n), workers=workers)
        self.seconds = time.perf_counter() - t0
        assert res.imported == n, res.summary_line()
        self.size = self.store.kv.disk_size()
        with self.store.read(a) as r:
            self.inbox = r.mailbox_by_path(["INBOX"])
            uids = list(r.uid_items(self.inbox))
            self.m0 = r.highest_modseq
        step = max(1, len(uids) // 10)
        for _u, e in uids[::step][:10]:
            with self.store.write(a) as tx:
                tx.set_keywords(e, tx.email(e)["kw"] + ["benchmark"])
        self.t_changes = self.t_imap = float("inf")

    def round(self, reps: int = 400) -> None:
        """One timing round; the best round is kept (the cost of the read itself)."""
        with self.store.read(self.a) as r:
            t1 = time.perf_counter()
            for _ in range(reps):
                ch = r.changes("Email", self.m0)
            self.t_changes = min(self.t_changes, (time.perf_counter() - t1) / reps)
            t1 = time.perf_counter()
            for _ in range(reps):
                cs = r.changed_since(self.inbox, self.m0)
                vs = r.expunged_since(self.inbox, self.m0)
            self.t_imap = min(self.t_imap, (time.perf_counter() - t1) / reps)
        assert len(ch.updated) == 10 and len(cs) == 10 and vs == [], (len(ch.updated), len(cs), vs[:5])

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    stores: list[Sized] = []
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            st = Sized(n, args.workers)
            stores.append(st)
            sys.stdout.write(f"{n:>7} msgs  import {n / st.seconds:7.0f} msg/s ({st.seconds:6.1f} s)  "
                             f"store {st.size / 1e6:8.1f} MB\n")
            sys.stdout.flush()
        # The sizes are timed in alternating rounds, so that a change in the machine's
        # speed (this one varies) falls on all of them alike and the ratio stays honest.
        for _round in range(9):
            for st in stores:
                st.round()
        for st in stores:
            sys.stdout.write(f"{st.n:>7} msgs  Email/changes(10) {st.t_changes * 1e6:7.1f} us  "
                             f"CHANGEDSINCE+VANISHED(10) {st.t_imap * 1e6:7.1f} us\n")
        if len(stores) > 1:
            lo, hi = stores[0], stores[-1]
            sys.stdout.write(
                f"ratio {hi.n}/{lo.n}: Email/changes {hi.t_changes / lo.t_changes:.2f}, "
                f"CHANGEDSINCE {hi.t_imap / lo.t_imap:.2f}\n")
    finally:
        for st in stores:
            st.close()


if __name__ == "__main__":
    main()
