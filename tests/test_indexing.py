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

    monkeypatch.setattr(indexing, "SLICE", 64)
    slices = []
    real = indexing.index_pending

    def recording(store_, a, budget, seconds=None):
        n = real(store_, a, budget, seconds)
        slices.append(n)
        return n

    monkeypatch.setattr(indexing, "index_pending", recording)
    clock = MemoryReactorClock()
    idx = SearchIndexer(store, clock)
    idx.startService()
    try:
        clock.advance(0)
        slices.clear()
        msgs = [prepare(f"Subject: m{i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody number {i}\r\n".encode())
                for i in range(150)]
        with store.write(account) as tx:
            for p in msgs:
                store_prepared(tx, p, [1])
        assert pending(store, account) == 150
        clock.advance(indexing.LAG / 2)
        assert slices == []  # gathers the burst for LAG
        for _ in range(10):
            clock.advance(indexing.LAG)
        assert pending(store, account) == 0
        # slices, each its own reactor call: never the whole backlog at once
        assert slices == [64, 64, 22, 0]
        assert not clock.getDelayedCalls()
    finally:
        idx.stopService()


def test_a_stream_of_commits_does_not_hold_the_indexer_back(store, account):
    """New mail is indexed LAG after its commit even while commits keep coming (the
    indexer's timer is not pushed back by each commit)."""
    import dualmail.indexing as indexing

    clock = MemoryReactorClock()
    idx = SearchIndexer(store, clock)
    idx.startService()
    try:
        clock.advance(0)
        steps = 0
        for i in range(30):  # a commit every LAG/3 for 10 LAGs
            with store.write(account) as tx:
                store_prepared(tx, prepare(f"Subject: s{i}\r\n\r\nword{i}\r\n".encode()), [1])
            steps += 1
            clock.advance(indexing.LAG / 3)
            clock.advance(0)
            if i >= 3:  # everything committed more than LAG + a slice ago is indexed
                with store.read(account) as r:
                    assert watermark(r.kv, account) >= i - 3
        clock.advance(indexing.LAG)
        assert pending(store, account) == 0
    finally:
        idx.stopService()
