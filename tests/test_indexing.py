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
    real = indexing.index_slice

    def recording(store_, a, budget, seconds=None):
        n, complete = real(store_, a, budget, seconds)
        slices.append(n)
        return n, complete

    monkeypatch.setattr(indexing, "index_slice", recording)
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
        assert slices == [64, 64, 22]
        assert not clock.getDelayedCalls()
    finally:
        idx.stopService()


def test_a_stream_of_commits_is_indexed_in_few_slices_and_never_held_back(store, account, monkeypatch):
    """While commits keep coming, new mail is indexed at most INTERVAL + LAG after its
    commit (a commit does not push the indexer's timer back), in one slice per INTERVAL
    rather than one per commit (each slice is a synced write rewriting term tails)."""
    import dualmail.indexing as indexing

    slices = []
    real = indexing.index_slice

    def recording(store_, a, budget, seconds=None):
        n, complete = real(store_, a, budget, seconds)
        slices.append(n)
        return n, complete

    monkeypatch.setattr(indexing, "index_slice", recording)
    clock = MemoryReactorClock()
    idx = SearchIndexer(store, clock)
    idx.startService()
    try:
        clock.advance(0)
        slices.clear()
        step = indexing.INTERVAL / 10
        committed = []
        for i in range(30):  # a commit every INTERVAL/10 for 3 INTERVALs
            with store.write(account) as tx:
                store_prepared(tx, prepare(f"Subject: s{i}\r\n\r\nword{i}\r\n".encode()), [1])
            committed.append(clock.seconds())
            clock.advance(step)
            with store.read(account) as r:
                wm = watermark(r.kv, account)
            late = [j for j, t in enumerate(committed) if clock.seconds() - t > indexing.INTERVAL + indexing.LAG]
            if late:  # everything committed more than INTERVAL + LAG ago is in the index
                assert wm >= late[-1] + 1
        clock.advance(indexing.INTERVAL + indexing.LAG)
        assert pending(store, account) == 0
        assert sum(slices) == 30
        assert len(slices) <= 3 + 2  # one per INTERVAL (and the first, LAG after its commit)
        assert not clock.getDelayedCalls()
    finally:
        idx.stopService()


def test_a_slice_runs_on_the_offload_and_a_failure_is_logged_not_fatal(store, account):
    """The service hands slices to the reactor's thread pool; a failing slice is logged
    and the next commit schedules the account again."""
    import dualmail.indexing as indexing
    from twisted.internet import defer

    runs = []
    fail = [True]

    def offload(fn, *args):
        runs.append(args)
        if fail[0]:
            return defer.fail(RuntimeError("disk on fire"))
        return defer.maybeDeferred(fn, *args)

    clock = MemoryReactorClock()
    idx = SearchIndexer(store, clock, offload=offload)
    idx.startService()
    try:
        clock.advance(0)
        with store.write(account) as tx:
            store_prepared(tx, prepare(b"Subject: a\r\n\r\nfirst\r\n"), [1])
        clock.advance(indexing.INTERVAL + indexing.LAG)
        assert pending(store, account) == 1  # the slice failed; nothing is retried in a loop
        fail[0] = False
        with store.write(account) as tx:
            store_prepared(tx, prepare(b"Subject: b\r\n\r\nsecond\r\n"), [1])
        clock.advance(indexing.INTERVAL + indexing.LAG)
        assert pending(store, account) == 0
        assert all(a == (account,) for a in runs)
        assert not clock.getDelayedCalls()
    finally:
        idx.stopService()


def test_stopping_waits_for_the_slice_in_flight(store, account):
    """The store is closed after the indexer stops: stopService's Deferred fires only once
    the slice running on the thread pool has finished."""
    from twisted.internet import defer

    pending_slices = []

    def offload(fn, *args):
        d = defer.Deferred()
        pending_slices.append((d, fn, args))
        return d

    clock = MemoryReactorClock()
    idx = SearchIndexer(store, clock, offload=offload)
    idx.startService()
    clock.advance(0)
    assert len(pending_slices) == 1
    stopped = idx.stopService()
    assert isinstance(stopped, defer.Deferred) and not stopped.called
    d, fn, args = pending_slices.pop()
    d.callback(fn(*args))
    assert stopped.called
    assert not clock.getDelayedCalls() and not pending_slices


def test_an_index_older_than_the_subject_postings_is_given_them_when_idle(store, account, monkeypatch):
    """An index made before ``ftss`` (no subject watermark): once caught up, the
    indexer fills the subject postings in, ``SUBJECT_SLICE`` Emails a slice, then stops."""
    import dualmail.indexing as indexing
    from dualmail.search import fts
    from dualmail.store import keys as K
    from dualmail.store.kv import prefix_end

    monkeypatch.setattr(indexing, "SUBJECT_SLICE", 40)
    with store.write(account) as tx:
        for i in range(100):
            store_prepared(tx, prepare(f"Subject: m{i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody {i}\r\n".encode()), [1])
    fts.index_all(store, account)

    def older(w):  # as an index made before ftss
        p = K.acct(account)
        for k, _v in list(w.range("ftss", p, prefix_end(p))):
            w.delete("ftss", k)
        w.delete("ftsmeta", p + b"s")
    store.kv.run_write(older)
    calls = []
    real = indexing.upgrade_subjects
    monkeypatch.setattr(indexing, "upgrade_subjects", lambda *a: calls.append(real(*a)) or calls[-1])
    clock = MemoryReactorClock()
    idx = SearchIndexer(store, clock)
    idx.startService()
    try:
        for _ in range(20):
            clock.advance(indexing.INTERVAL)
        with store.read(account) as r:
            assert fts.subject_watermark(r.kv, account) == fts.watermark(r.kv, account) > 0
        assert calls[:4] == [40, 40, 20, 0]
        assert not clock.getDelayedCalls()
    finally:
        idx.stopService()
