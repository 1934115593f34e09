"""The IMAP per-membership indexes (``store.imapidx``) and what reads them
(``search.imap_index``): every answer equals the general engine's, after random flag
changes, \\Deleted, copies, moves and expunges; ``dualmail check`` sees a broken row;
a store from before the indexes is served by the engine and upgraded by ``check --upgrade``."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.search import MailboxScope, engine, imap_index, search
from dualmail.search.query import (
    ALL, And, Context, Deleted, Keyword, ModSeq, Not, Or, Received, Recent, Size, SortKey, UidIn,
)
from dualmail.store import imapidx, keys as K
from dualmail.store.check import upgrade, verify
from tests.old_store import make_old
from tests.search.corpus import ARCHIVE, BASE, INBOX, MESSAGES, load

RECENT = frozenset({2, 5, 11})
days = st.integers(-1, 13).map(lambda d: BASE + d * 86400 + 1800)
bound = st.none() | days
flag_leaf = st.one_of(
    st.sampled_from(["$seen", "$flagged", "$answered", "$draft", "$label1", "foo"]).map(Keyword),
    st.just(Deleted()), st.just(Recent()), st.builds(Received, bound, bound),
    st.builds(Size, st.none() | st.integers(0, 30000), st.none() | st.integers(0, 30000)),
    st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=3).map(UidIn.of),
    st.integers(1, 30).map(ModSeq),
)
flag_conds = st.recursive(flag_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=3).map(lambda xs: And(tuple(xs))),
    st.lists(kids, max_size=3).map(lambda xs: Or(tuple(xs))),
    kids.map(Not)), max_leaves=6)
KEYWORDS = ["$seen", "$flagged", "$answered", "$label1"]
SORTS = [SortKey(n, rev) for n in ("date", "received", "size") for rev in (False, True)]

# one random change to the store: (kind, email position, keywords / flag)
changes = st.tuples(st.sampled_from(["kw", "del", "copy", "move", "expunge", "destroy"]),
                    st.integers(1, len(MESSAGES)), st.sets(st.sampled_from(KEYWORDS)), st.booleans())


def _apply(store, account, ids, change) -> None:
    kind, pos, kws, flag = change
    e = ids.get(pos)
    with store.read(account) as r:
        rec = r.email(e) if e is not None else None
    if rec is None:
        return
    boxes = [int(m) for m in rec["mbx"]]
    with store.write(account) as tx:
        if kind == "kw":
            tx.set_keywords(e, sorted(kws))
        elif kind == "del":
            tx.set_deleted(e, boxes[0], flag)
        elif kind == "copy" and ARCHIVE not in boxes:
            tx.add_membership(e, ARCHIVE)
        elif kind == "move" and len(boxes) > 1:
            tx.remove_membership(e, boxes[0])
        elif kind == "expunge":
            tx.expunge(boxes[0])
        elif kind == "destroy" and flag:
            tx.destroy_email(e)
            del ids[pos]


def _same_as_engine(store, account, cond=None) -> None:
    with store.read(account) as r:
        for m in (INBOX, ARCHIVE):
            for c in ([cond] if cond is not None else [ALL, Not(Keyword("$seen")), Keyword("$seen")]):
                got = imap_index.search(r, m, c, Context(RECENT))
                assert got is not None
                assert got == search(r, MailboxScope(m), c, context=Context(RECENT)), c
            everything = list(r.uid_items(m))
            some = everything[::2]
            for key in SORTS:
                assert imap_index.sort_all(r, m, ALL, [key]) == engine.sort(r, MailboxScope(m), everything, [key])
                assert imap_index.sort(r, m, some, [key]) == engine.sort(r, MailboxScope(m), some, [key])


def test_flag_searches_and_sorts_equal_the_engine(store, account):
    ids = load(store, account)
    with store.write(account) as tx:
        tx.set_keywords(ids[2], ["$flagged"])
        tx.set_deleted(ids[3], INBOX, True)
        tx.add_membership(ids[4], ARCHIVE)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(flag_conds)
    def check(c):
        _same_as_engine(store, account, c)

    check()


def test_index_equals_brute_force_after_random_changes(store, account):
    ids = load(store, account)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(changes, max_size=6))
    def check(seq):
        for ch in seq:
            _apply(store, account, ids, ch)
        with store.read(account) as r:
            assert verify(r) == []  # the rows against a recount from the email records
        _same_as_engine(store, account)

    check()


def test_check_reports_a_broken_row(store, account):
    ids = load(store, account)
    with store.read(account) as r:
        (u, _e), *_ = imapidx.unseen(r.kv, account, INBOX)
    with store.kv.write(account) as w:
        w.delete("unseen", K.uid(account, INBOX, u))
    with store.read(account) as r:
        problems = verify(r)
    assert any("unseen" in p and "1 missing" in p for p in problems), problems
    assert ids


def test_old_store_is_served_by_the_engine_then_upgraded(store, account):
    ids = load(store, account)
    with store.write(account) as tx:
        tx.set_keywords(ids[2], ["$flagged"])
    with store.read(account) as r:
        before = r.highest_modseq
        want = search(r, MailboxScope(INBOX), Not(Keyword("$seen")))
    make_old(store, account)
    with store.read(account) as r:
        assert imap_index.search(r, INBOX, Not(Keyword("$seen"))) is None  # not trusted: the engine
        assert imap_index.sort_all(r, INBOX, ALL, [SORTS[0]]) is None
        assert verify(r) == []
    done = upgrade(store, account)
    assert any("IMAP indexes built" in x for x in done) and any("header fields" in x for x in done)
    with store.read(account) as r:
        assert verify(r) == []
        assert r.highest_modseq == before  # derived data: no modseq taken
        assert imap_index.search(r, INBOX, Not(Keyword("$seen"))) == want
    _same_as_engine(store, account)
    assert upgrade(store, account) == []  # nothing left to do
