"""Migration benchmark: ``dualmail migrate`` from a local Debian Dovecot.

    python bench/migrate_bench.py [--sizes 10000,100000]

For each size: a throwaway Dovecot (tests/dovecot_util.py) whose account holds that many
bench/mailgen.py messages (written as a Maildir, then indexed by Dovecot before timing);
a full migration into a fresh store (synced commits, as in production) reports
messages/s and MB/s; then 10 changes on Dovecot (4 new messages, 4 flag changes, 2
expunges) and the incremental rerun's seconds, and a rerun with nothing changed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import mailgen  # noqa: E402

from dualmail.migrate.names import parse_url  # noqa: E402
from dualmail.migrate.source import Source  # noqa: E402
from dualmail.migrate.sync import migrate_account  # noqa: E402
from dualmail.store.store import open_store  # noqa: E402
from tests.dovecot_util import Dovecot  # noqa: E402

USER, PW = "bench@example.org", "bench"


class SourceTimer:
    """Time spent waiting on the source (Dovecot's work and the network) in a run."""

    METHODS = ("mailboxes", "status", "examine", "uids_from", "all_uids", "changed_since",
               "changes_since", "_bodies")

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        for name in self.METHODS:
            real = getattr(Source, name)
            setattr(Source, name, self._wrap(name, real))

    def _wrap(self, name, real):
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return real(*a, **kw)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - t
        return timed

    def take(self) -> str:
        out = ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.spent.items(), key=lambda x: -x[1]) if v >= 0.005)
        total = sum(self.spent.values())
        self.spent.clear()
        return f"{total:.2f} s waiting on the source ({out})"


def run(n: int, workdir: str) -> dict[str, float]:
    dv = Dovecot(os.path.join(workdir, f"dovecot-{n}"), {USER: PW})
    try:
        maildir = os.path.join(dv.root, "mail", USER)
        t = time.time()
        mailgen.write_maildir(maildir, mailgen.generate_records(n, seed=1))
        dv.give_to_mail_user(maildir)
        c = dv.client()
        c.enable("CONDSTORE")
        total_bytes = 0
        for flags, _d, name in c.list_folders():
            if b"\\Noselect" in flags:
                continue
            c.select_folder(name, readonly=True)
            uids = c.search(["ALL"])
            for i in range(0, len(uids), 5000):
                for d in c.fetch(uids[i:i + 5000], ["RFC822.SIZE", "FLAGS"]).values():
                    total_bytes += int(d[b"RFC822.SIZE"])
        print(f"{n} messages: seeded and indexed by Dovecot in {time.time() - t:.1f} s "
              f"({total_bytes / 1e6:.1f} MB)", flush=True)
        data = os.path.join(workdir, f"data-{n}")
        store = open_store(data)
        a = store.create_account("alice@example.org", "x")
        src = Source(parse_url(dv.url()), PW)
        timer = SourceTimer()
        t = time.perf_counter()
        res = migrate_account(store, a, src)
        full = time.perf_counter() - t
        assert not res.failures, res.failures
        print(f"  full migration: {res.messages} messages, {res.bytes / 1e6:.1f} MB in {full:.1f} s: "
              f"{res.messages / full:.0f} msg/s, {res.bytes / 1e6 / full:.1f} MB/s; {timer.take()}",
              flush=True)
        # 10 changes on Dovecot
        c.select_folder("INBOX")
        uids = c.search(["ALL"])
        c.add_flags(uids[:4], [b"\\Flagged"])
        c.delete_messages(uids[-2:])
        c.expunge(uids[-2:])
        for i in range(4):
            c.append("INBOX", f"Subject: new {i}\r\nMessage-ID: <b{i}@x>\r\n\r\nx\r\n".encode(), [],
                     datetime.now(timezone.utc))
        timer.take()
        t = time.perf_counter()
        res2 = migrate_account(store, a, src)
        incr = time.perf_counter() - t
        assert not res2.failures and res2.messages == 4 and res2.expunges == 2, res2.summary_line()
        print(f"  rerun after 10 changes: {incr:.2f} s, of which {timer.take()}; {res2.summary_line()}",
              flush=True)
        t = time.perf_counter()
        res3 = migrate_account(store, a, src)
        idle = time.perf_counter() - t
        print(f"  rerun with no change: {idle:.2f} s, of which {timer.take()}", flush=True)
        src.close()
        c.logout()
        store.close()
        return {"n": n, "full": full, "msgs": res.messages / full, "mbs": res.bytes / 1e6 / full,
                "incr": incr, "idle": idle, "res3": float(res3.messages)}
    finally:
        dv.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dualmail-migrate-bench-")
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            run(n, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
