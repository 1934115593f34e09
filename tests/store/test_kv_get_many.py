"""``get_many`` on both KV engines (issue 18): the batched read behind FETCH, SEARCH and
Email/get windows.  Same answers as one ``get`` per key, in the order asked, with None
for missing keys, more keys than one PostgreSQL statement takes (``_MAX_PAGE``), inside
read and write transactions."""

from __future__ import annotations

import pytest

from dualmail.store.keys import TABLES
from dualmail.store.kv_lmdb import LmdbKV


@pytest.fixture
def kv(engine, tmp_path, request):
    if engine == "postgresql":
        from dualmail.store.kv_pg import PgKV

        k = PgKV(request.getfixturevalue("pg_server").fresh_url(), TABLES)
    else:
        k = LmdbKV(str(tmp_path / "kv"), TABLES, sync=False)
    yield k
    k.close()


def _key(i: int) -> bytes:
    return b"\x00\x00\x00\x01" + i.to_bytes(8, "big")


def test_get_many_is_get_per_key_in_the_order_asked(kv):
    with kv.write(1) as w:
        for i in range(0, 40, 2):  # even keys only
            w.put("email", _key(i), b"v%d" % i)
        w.put("email", _key(99), b"")  # an empty value is a value, not a missing key
    asked = [_key(i) for i in (7, 4, 0, 99, 38, 3, 4, 1000)]  # unordered, a repeat, missing
    with kv.read() as r:
        got = r.get_many("email", asked)
        assert got == [r.get("email", k) for k in asked]
        assert got == [None, b"v4", b"v0", b"", b"v38", None, b"v4", None]
        assert r.get_many("email", []) == []
        assert r.get_many("email", [_key(2)]) == [b"v2"]
        assert r.get_many("summary", asked) == [None] * len(asked)  # another table


def test_get_many_past_one_statement_and_inside_a_write(kv):
    n = 2600  # more than PostgreSQL's 1,000 keys per statement, not a multiple of it
    with kv.write(1) as w:
        for i in range(n):
            w.put("uid", _key(i), i.to_bytes(4, "big"))
    asked = [_key(i) for i in range(n + 5)][::-1]  # descending, the last 5 missing
    with kv.read() as r:
        got = r.get_many("uid", asked)
    assert got[:5] == [None] * 5
    assert [int.from_bytes(v, "big") for v in got[5:]] == list(range(n - 1, -1, -1))
    with kv.write(1) as w:  # a write transaction sees its own puts and deletes
        w.put("uid", _key(n + 1), b"new")
        assert w.delete("uid", _key(0)) is True
        assert w.get_many("uid", [_key(0), _key(n + 1), _key(1)]) == [None, b"new", (1).to_bytes(4, "big")]


def test_scan_many_is_range_per_scan_cut_to_its_limit(kv):
    """``scan_many``: each (table, start, stop, limit) as ``range`` would give it, at most
    ``limit`` pairs; ``scan_complete`` reads on where a scan filled its page."""
    from dualmail.store.kv import scan_complete

    with kv.write(1) as w:
        for i in range(0, 300, 3):
            w.put("email", _key(i), b"e%d" % i)
            w.put("uid", _key(i), b"u%d" % i)
    reqs = [("email", _key(0), _key(30), 5), ("uid", _key(10), None, 1000), ("email", _key(31), _key(32), 3),
            ("uid", _key(299), _key(1000), 2), ("email", _key(290), _key(10), 4)]  # empty, and an inverted window
    for view in (kv.read, lambda: kv.write(1)):
        with view() as r:
            got = r.scan_many(reqs)
            want = [list(r.range(t, a, b))[:n] for t, a, b, n in reqs]
            assert got == want
            assert [len(x) for x in got] == [5, 96, 0, 0, 0]
            assert r.scan_many([]) == []
            full = scan_complete(r, [(t, a, b) for t, a, b, _n in reqs], page=4)
            assert full == [list(r.range(t, a, b)) for t, a, b, _n in reqs]
            assert r.get("email", _key(3)) == b"e3"  # the view goes on after the batch


def test_get_many_each_is_get_many_per_table(kv):
    """``get_many_each``: one ``get_many`` per (table, keys), also past one statement's
    ``_MAX_PAGE`` keys on PostgreSQL."""
    with kv.write(1) as w:
        for i in range(0, 1200, 2):
            w.put("email", _key(i), b"e%d" % i)
            w.put("srch", _key(i + 1), b"s%d" % i)
    many = [_key(i) for i in range(1100, -1, -1)]
    reqs = [("email", [_key(4), _key(5), _key(4)]), ("srch", [_key(5), _key(4)]), ("email", []), ("srch", many)]
    with kv.read() as r:
        assert r.get_many_each(reqs) == [r.get_many(t, keys) for t, keys in reqs]
        assert r.get_many_each(reqs)[:2] == [[b"e4", None, b"e4"], [b"s4", None]]
        assert r.get_many_each([]) == []


def test_get_many_of_keys_of_mixed_lengths(kv):
    """Keys of one length travel packed on PostgreSQL, others as a list: both answer alike
    (a key that is a prefix of another is not confused with it)."""
    with kv.write(1) as w:
        for k in (b"a", b"ab", b"abc", b"b" * 12, b"c" * 12):
            w.put("meta", k, k.upper())
    with kv.read() as r:
        assert r.get_many("meta", [b"ab", b"a", b"abcd", b"abc"]) == [b"AB", b"A", None, b"ABC"]
        assert r.get_many("meta", [b"c" * 12, b"b" * 12, b"d" * 12]) == [b"C" * 12, b"B" * 12, None]
