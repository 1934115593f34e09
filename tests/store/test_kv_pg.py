"""The PostgreSQL engine itself (issue 18), against a real server: memcmp key order,
streamed range scans, one writer per account across nodes (separate engines = separate
nodes), no lost update, one snapshot per read view, temporary errors that leave nothing
half-applied, and the NOTIFY commit signal."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from dualmail.model import errors
from dualmail.store.keys import TABLES
from dualmail.store.kv_pg import PgKV
from dualmail.store.store import Store
from tests.conftest import summary


@pytest.fixture
def url(pg_server):
    return pg_server.fresh_url()


@pytest.fixture
def kv(url):
    k = PgKV(url, TABLES)
    yield k
    k.close()


def _terminate_others(url: str) -> int:
    """Kill every other session on this database (a lost connection, for the engine)."""
    with psycopg.connect(url, autocommit=True) as c:
        return len(c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


def test_keys_are_in_memcmp_order_and_scans_are_bounded(kv):
    keys = [b"", b"\x00", b"\x00\x00", b"\x01", b"a", b"ab", b"b", b"\x7f", b"\x80", b"\xff", b"\xff\x00"]
    with kv.write() as w:
        for k in keys:
            w.put("meta", k, k + b"!")
    with kv.read() as r:
        assert [k for k, _ in r.range("meta", b"")] == sorted(keys)  # bytes sort = memcmp
        assert [k for k, _ in r.range("meta", b"a", b"b")] == [b"a", b"ab"]
        assert [k for k, _ in r.range("meta", b"\x00", b"\x80", reverse=True)] == \
            [b"\x7f", b"b", b"ab", b"a", b"\x01", b"\x00\x00", b"\x00"]
        assert r.get("meta", b"ab") == b"ab!"
        assert r.get("meta", b"zz") is None


def test_long_scans_page_through_every_key_both_ways(kv):
    n = 2500  # more than the first pages (16, 64, 256, 1000, 1000 ...)
    with kv.write(1) as w:
        for i in range(n):
            w.put("uid", i.to_bytes(4, "big"), b"v%d" % i)
    with kv.read() as r:
        got = [int.from_bytes(k, "big") for k, _ in r.range("uid", b"")]
        assert got == list(range(n))
        got = [int.from_bytes(k, "big") for k, _ in r.range("uid", (5).to_bytes(4, "big"),
                                                            (2400).to_bytes(4, "big"), reverse=True)]
        assert got == list(range(2399, 4, -1))
        first = next(iter(r.range("uid", (77).to_bytes(4, "big"))))
        assert first == ((77).to_bytes(4, "big"), b"v77")
    with kv.write(1) as w:
        assert w.delete("uid", (3).to_bytes(4, "big")) is True
        assert w.delete("uid", (3).to_bytes(4, "big")) is False


def test_one_writer_per_account_across_nodes_other_accounts_go_on(url):
    node1, node2 = PgKV(url, TABLES), PgKV(url, TABLES)
    try:
        holding, release, order = threading.Event(), threading.Event(), []

        def long_writer():
            with node1.write(7) as w:
                w.put("account", b"\x00\x00\x00\x07", b"first")
                holding.set()
                release.wait(10)
                order.append("first")

        t = threading.Thread(target=long_writer)
        t.start()
        assert holding.wait(10)
        # Another account on the other node: does not wait for account 7.
        with node2.write(8) as w:
            w.put("account", b"\x00\x00\x00\x08", b"other")
        # The same account on the other node waits until the first writer commits.
        done = threading.Event()

        def second_writer():
            with node2.write(7) as w:
                order.append("second sees " + w.get("account", b"\x00\x00\x00\x07").decode())
                w.put("account", b"\x00\x00\x00\x07", b"second")
            done.set()

        t2 = threading.Thread(target=second_writer)
        t2.start()
        assert not done.wait(0.3), "the second writer of account 7 did not wait"
        release.set()
        t.join(10)
        t2.join(10)
        assert order == ["first", "second sees first"]
        with node1.read() as r:
            assert r.get("account", b"\x00\x00\x00\x07") == b"second"
    finally:
        node1.close()
        node2.close()


def test_two_nodes_adding_keywords_to_one_email_lose_no_update(url):
    nodes = [Store(PgKV(url, TABLES)) for _ in range(3)]
    try:
        a = nodes[0].create_account("a@x.org", "pw")
        with nodes[0].write(a) as tx:
            e, _ = tx.create_email(b"Subject: x\r\n\r\nb\r\n", summary("m@x"), [1], [], 1000)
        with nodes[0].read(a) as r:
            before = r.highest_modseq
        rounds = 15

        def adder(i: int) -> None:
            for n in range(rounds):
                with nodes[i].write(a) as tx:
                    kw = sorted(set(tx.email(e)["kw"]) | {f"k{i}x{n}"})
                    tx.set_keywords(e, kw)

        threads = [threading.Thread(target=adder, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with nodes[1].read(a) as r:
            assert set(r.email(e)["kw"]) == {f"k{i}x{n}" for i in range(3) for n in range(rounds)}
            assert r.highest_modseq == before + 3 * rounds  # one modseq per write, none shared
    finally:
        for s in nodes:
            s.close()


def test_a_read_view_is_one_snapshot(url):
    node1, node2 = PgKV(url, TABLES), PgKV(url, TABLES)
    try:
        with node1.write() as w:
            w.put("meta", b"x", b"1")
        with node1.read() as r:
            assert r.get("meta", b"x") == b"1"
            with node2.write() as w:
                w.put("meta", b"x", b"2")
                w.put("meta", b"y", b"2")
            assert r.get("meta", b"x") == b"1"
            assert r.get("meta", b"y") is None
        with node1.read() as r:
            assert r.get("meta", b"y") == b"2"
    finally:
        node1.close()
        node2.close()


def test_a_lost_connection_mid_write_applies_nothing_and_is_a_temporary_error(url, kv):
    with kv.write(1) as w:
        w.put("account", b"k", b"before")
    with pytest.raises(errors.UnavailableError):
        with kv.write(1) as w:
            w.put("account", b"k", b"half")
            w.put("mailbox", b"k", b"half")
            _terminate_others(url)
            w.put("email", b"k", b"half")  # the connection is gone
    with kv.read() as r:  # the pool replaced the dead connection
        assert r.get("account", b"k") == b"before"
        assert r.get("mailbox", b"k") is None and r.get("email", b"k") is None


def test_run_write_is_retried_after_a_lost_connection(url, kv):
    calls = []

    def fn(w):
        calls.append(1)
        w.put("account", b"r", b"%d" % len(calls))
        if len(calls) == 1:
            _terminate_others(url)
            w.get("account", b"r")  # fails: this attempt is rolled back, then re-run
        return len(calls)

    assert kv.run_write(fn, 1) == 2
    with kv.read() as r:
        assert r.get("account", b"r") == b"2"


def test_commits_of_another_node_are_signalled_and_a_lost_listener_reconnects(url, kv):
    other = PgKV(url, TABLES)
    calls: list[float] = []
    signalled = threading.Condition()

    def on_change():
        with signalled:
            calls.append(time.monotonic())
            signalled.notify_all()

    stop = kv.listen(on_change)
    try:
        with signalled:  # once at connection: the caller catches up
            assert signalled.wait_for(lambda: len(calls) >= 1, 10)
        n = len(calls)
        with other.write(3) as w:
            w.put("account", b"n", b"1")
        with signalled:
            assert signalled.wait_for(lambda: len(calls) > n, 10)
        n = len(calls)
        with other.read() as r:  # a read commits nothing and signals nothing
            r.get("account", b"n")
        _terminate_others(url)  # the listener's session too
        with signalled:  # it reconnects and calls back once to catch up
            assert signalled.wait_for(lambda: len(calls) > n, 10)
        n = len(calls)
        with other.write(3) as w:
            w.put("account", b"n", b"2")
        with signalled:
            assert signalled.wait_for(lambda: len(calls) > n, 10)
    finally:
        stop()
        other.close()


# -- round trips (2026-12-07): lazy BEGIN, no ping, get_latest, range(expect=) ------------


class _Statements:
    """Counts the statements the engine sends, and the pipelines that carry them (a
    pipeline is one round trip however many statements it holds)."""

    def __init__(self, monkeypatch):
        self.sent: list[str] = []
        self.trips = 0
        self._depth = 0
        execute, pipeline = psycopg.Cursor.execute, psycopg.Connection.pipeline
        stats = self

        def counted_execute(cur, query, *a, **k):
            stats.sent.append(query if isinstance(query, str) else query.as_string(cur))
            if not stats._depth:
                stats.trips += 1
            return execute(cur, query, *a, **k)

        from contextlib import contextmanager

        @contextmanager
        def counted_pipeline(conn):
            stats._depth += 1
            try:
                with pipeline(conn) as p:
                    yield p
            finally:
                stats._depth -= 1
                if not stats._depth:
                    stats.trips += 1

        monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
        monkeypatch.setattr(psycopg.Connection, "execute",
                            lambda conn, q, *a, **k: counted_execute(conn.cursor(), q, *a, **k))
        monkeypatch.setattr(psycopg.Connection, "pipeline", counted_pipeline)

    def reset(self):
        self.sent.clear()
        self.trips = 0


def test_a_read_view_of_one_get_is_one_round_trip_and_an_unused_one_none(kv, monkeypatch):
    with kv.write(1) as w:
        w.put("account", b"k", b"v")
    stats = _Statements(monkeypatch)
    with kv.read():
        pass
    assert stats.sent == [] and stats.trips == 0  # no connection, no BEGIN
    with kv.read() as r:
        assert r.get("account", b"k") == b"v"
    assert stats.trips == 1  # BEGIN + the get in one pipeline; COMMIT sent, not waited for
    assert stats.sent[0].startswith("BEGIN ISOLATION LEVEL REPEATABLE READ") and len(stats.sent) == 2
    assert len(kv._settling) == 1
    stats.reset()
    assert kv.get_latest("account", b"k") == b"v"
    assert stats.trips == 1 and len(stats.sent) == 1 and "BEGIN" not in stats.sent[0]


def test_a_write_sends_begin_and_its_lock_with_its_first_statement_and_notify_with_commit(kv, monkeypatch):
    stats = _Statements(monkeypatch)
    with kv.write(7) as w:
        w.put("account", b"a", b"1")
        w.put("account", b"b", b"2")
    assert stats.trips == 3  # BEGIN + lock + put; put; NOTIFY + COMMIT
    assert stats.sent[0] == "BEGIN ISOLATION LEVEL READ COMMITTED"
    assert "pg_advisory_xact_lock" in stats.sent[1]
    assert "pg_notify" in stats.sent[-2] and stats.sent[-1] == "COMMIT"
    stats.reset()
    with kv.write(7) as w:
        assert w.get("account", b"a") == b"1"
    assert not any("pg_notify" in q for q in stats.sent)  # nothing changed: no signal


def test_get_latest_sees_every_commit_and_never_a_rolled_back_write(kv):
    assert kv.get_latest("account", b"x") is None
    with kv.write(1) as w:
        w.put("account", b"x", b"1")
    assert kv.get_latest("account", b"x") == b"1"
    with pytest.raises(RuntimeError):
        with kv.write(1) as w:
            w.put("account", b"x", b"2")
            assert kv.get_latest("account", b"x") == b"1"  # not committed yet
            raise RuntimeError("roll back")
    assert kv.get_latest("account", b"x") == b"1"


def test_a_range_with_expect_reads_its_rows_in_one_statement(kv, monkeypatch):
    with kv.write(1) as w:
        for i in range(300):
            w.put("uid", i.to_bytes(4, "big"), b"v%d" % i)
    stats = _Statements(monkeypatch)
    with kv.read() as r:
        plain = list(r.range("uid", b"", (250).to_bytes(4, "big")))
    paged = sum("ORDER BY" in q for q in stats.sent)
    stats.reset()
    with kv.read() as r:
        hinted = list(r.range("uid", b"", (250).to_bytes(4, "big"), expect=250))
    assert sum("ORDER BY" in q for q in stats.sent) == 1
    with kv.read() as r:
        short = list(r.range("uid", b"", expect=10))  # a hint too small still reads everything
    assert hinted == plain and len(plain) == 250 and len(short) == 300
    assert paged == 3  # 16, 64, 256


def test_dead_pooled_connections_are_replaced_without_an_error(url, kv):
    """Pooled connections are not pinged before use: the first statement of a read view,
    a write and ``get_latest`` each find theirs dead and go on with a new one."""
    with kv.write(1) as w:
        w.put("account", b"k", b"v")
    for use in (lambda: kv.get_latest("account", b"k"),
                lambda: _read_one(kv),
                lambda: _write_one(kv)):
        with kv.read() as r:  # several idle connections in the pool
            r.get("account", b"k")
        assert _terminate_others(url) >= 1
        assert use() == b"v"


def _read_one(kv):
    with kv.read() as r:
        return r.get("account", b"k")


def _write_one(kv):
    with kv.write(1) as w:
        w.put("account", b"k", b"v")
        return w.get("account", b"k")


def test_a_read_views_commit_is_read_by_the_next_user_and_ends_its_snapshot(url, kv):
    """The deferred COMMIT of a read view (``PgKV._settle``): the server ends that
    transaction at once (no session is left idle in a transaction, holding a snapshot),
    the next view on the connection sees later commits, and a connection that died while
    set aside is replaced."""
    with kv.write(1) as w:
        w.put("account", b"k", b"1")
    with kv.read() as r:
        assert r.get("account", b"k") == b"1"
    assert len(kv._settling) == 1
    with psycopg.connect(url, autocommit=True) as c:
        deadline = time.monotonic() + 5
        while c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state LIKE 'idle in transaction%'").fetchone()[0]:
            assert time.monotonic() < deadline, "a read view's transaction was left open"
            time.sleep(0.01)
    other = PgKV(url, TABLES)
    try:
        with other.write(1) as w:
            w.put("account", b"k", b"2")
    finally:
        other.close()
    with kv.read() as r:  # the set-aside connection, its COMMIT answer read first
        assert r.get("account", b"k") == b"2"
    _terminate_others(url)  # the set-aside connection dies
    with kv.read() as r:
        assert r.get("account", b"k") == b"2"
    assert kv.get_latest("account", b"k") == b"2"


def test_scan_many_sends_every_scan_in_one_round_trip(kv, monkeypatch):
    """A search's independent lookups (grams, the index's tail, postings) cost one round
    trip together, also as a read view's first statements (with its BEGIN)."""
    with kv.write(1) as w:
        for i in range(50):
            w.put("uid", i.to_bytes(4, "big"), b"v%d" % i)
    stats = _Statements(monkeypatch)
    reqs = [("uid", (i * 10).to_bytes(4, "big"), ((i + 1) * 10).to_bytes(4, "big"), 3) for i in range(5)]
    with kv.read() as r:
        got = r.scan_many(reqs)
        assert stats.trips == 1 and stats.sent[0].startswith("BEGIN")
        assert got == [[((i * 10 + j).to_bytes(4, "big"), b"v%d" % (i * 10 + j)) for j in range(3)]
                       for i in range(5)]
        stats.reset()
        assert r.scan_many(reqs[:2]) == got[:2] and stats.trips == 1


def test_get_many_each_is_one_round_trip(kv, monkeypatch):
    with kv.write(1) as w:
        for i in range(10):
            w.put("email", b"%d" % i, b"e")
            w.put("srch", b"%d" % i, b"s")
    stats = _Statements(monkeypatch)
    with kv.read() as r:
        got = r.get_many_each([("email", [b"%d" % i for i in range(10)]), ("srch", [b"1", b"x"])])
    assert got == [[b"e"] * 10, [b"s", None]] and stats.trips == 1
