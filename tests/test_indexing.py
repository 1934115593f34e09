"""The service keeps the full-text index caught up after commits (docs/search.md)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from dualmail.indexing import SearchIndexer
from dualmail.mail.ops import prepare, store_prepared
from dualmail.search.fts import watermark


def pending(store, a) -> int:
    with store.read(a) as r:
        wm = watermark(r.kv, a)
        return sum(1 for e in r.received_order(None) if e > wm)


def test_indexer_catches_up_after_commits_in_slices(store, account, monkeypatch):
    import dualmail.indexing as indexing

    slices = []
    real = indexing.index_pending

    def recording(store_, a, budget):
        n = real(store_, a, budget)
        slices.append(n)
        return n

    monkeypatch.setattr(indexing, "index_pending", recording)
    clock = MemoryReactorClock()
    idx = SearchIndexer(store, clock)
    idx.startService()
    try:
        msgs = [prepare(f"Subject: m{i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody number {i}\r\n".encode())
                for i in range(150)]
        with store.write(account) as tx:
            for p in msgs:
                store_prepared(tx, p, [1])
        assert pending(store, account) == 150
        slices.clear()
        clock.advance(0.5)
        assert slices == []  # waits for the account to be quiet (QUIET)
        for _ in range(40):
            clock.advance(indexing.GAP if slices else indexing.QUIET)
        assert pending(store, account) == 0
        # small slices, each its own reactor call: never the whole backlog at once
        assert slices == [16] * 9 + [6, 0]
        assert not clock.getDelayedCalls()
    finally:
        idx.stopService()
