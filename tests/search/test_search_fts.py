"""The full-text index (``fts``): watermark, indexer, candidates, and results that never
depend on how far the indexer has got."""

from __future__ import annotations

import random
import sys

import pytest

from dualmail.mail.ops import prepare, store_prepared
from dualmail.search import MailboxScope, fts, index_pending, search
from dualmail.search.collate import MAX_TOKEN, fold, query_runs, tokens
from dualmail.search.query import ALL, Contains, Header, Or
from dualmail.store import keys as K
from dualmail.store.kv import prefix_end
from tests.search.corpus import INBOX, MESSAGES, load, msg

QUERIES = [
    Contains("body", "quarterly"), Contains("body", "uarterl"), Contains("body", "m\u00fcnchen"),
    Contains("text", "example.org"), Contains("text", "re: quarterly"), Contains("body", " grew"),
    Contains("body", "grew "), Contains("body", "ew strong"), Contains("subject", "\u4f1a\u8b70"),
    Contains("body", "4711"), Contains("body", "STRASSE"), Contains("jmaptext", "alice"),
    Contains("from", "example"), Contains("body", "ABC"), Contains("body", "!"), Contains("text", "@"),
    Header("message-id", "m1@"), Contains("body", "lorem ipsum dolor"), Contains("body", "zzz"),
    Or((Contains("body", "lunch"), Contains("subject", "invoice"))),
]


def run_all(store, account):
    with store.read(account) as r:
        return [search(r, MailboxScope(INBOX), q) for q in QUERIES]


def test_results_do_not_depend_on_the_watermark(store, account):
    load(store, account, indexed=0)
    with store.read(account) as r:
        assert fts.watermark(r.kv, account) == 0
        assert len(fts.unindexed(r.kv, account)) == len(MESSAGES)
    unindexed = run_all(store, account)
    assert index_pending(store, account, 6) == 6  # half indexed, half not
    with store.read(account) as r:
        assert fts.watermark(r.kv, account) == 6
        assert fts.unindexed(r.kv, account) == list(range(7, 13))
    assert run_all(store, account) == unindexed
    assert index_pending(store, account, 100) == 6
    assert index_pending(store, account, 100) == 0
    assert run_all(store, account) == unindexed
    assert [len(x) for x in unindexed][:3] == [2, 2, 1]


def test_new_and_destroyed_emails(store, account):
    ids = load(store, account)
    with store.write(account) as tx:
        tx.destroy_email(ids[1])  # its postings stay behind: harmless
        e, _ = store_prepared(tx, prepare(msg("From: z@z\nSubject: late", "a quarterly addendum\n"), (), 1), [INBOX])
    with store.read(account) as r:
        assert [x[1] for x in search(r, MailboxScope(INBOX), Contains("body", "quarterly"))] == [ids[3], e]


def test_candidates_are_a_superset(store, account):
    """Any substring of any stored text: its candidates include every Email holding it."""
    ids = load(store, account)
    rnd = random.Random(5)
    with store.read(account) as r:
        texts = {e: (fold(r.text(e)[0]), fold(r.text(e)[1])) for e in ids.values()}
        for _ in range(300):
            e = rnd.choice(list(texts))
            t = rnd.choice(texts[e])
            if not t:
                continue
            i = rnd.randrange(len(t))
            q = t[i : i + rnd.randint(1, 20)]
            cands = fts.candidates(r.kv, account, q)
            want = {x for x, (h, b) in texts.items() if q in h or q in b}
            if cands is not None:
                assert want <= cands, q


def test_long_terms_are_cut_but_still_found(store, account):
    word = "".join(chr(ord("a") + (i * 7) % 26) for i in range(150))
    load(store, account, [dict(raw=msg("From: a@b\nSubject: long", f"x {word} y\n"), flags=[], day=0)])
    with store.read(account) as r:
        assert max(len(t) for t in tokens(fold(word))) == MAX_TOKEN
        for q in (word, word[100:120], word[:80], "x " + word[:90], word[90:] + " y", word[5:] + " y"):
            assert len(search(r, MailboxScope(INBOX), Contains("body", q))) == 1, q


def test_query_runs():
    assert query_runs("foo bar baz") == [("foo", False, True), ("bar", True, True), ("baz", True, False)]
    assert query_runs(" x") == [("x", True, False)]
    assert query_runs("--") == []


def test_posting_chunks(store, account, monkeypatch):
    monkeypatch.setattr(fts, "CHUNK", 3)
    load(store, account, [dict(raw=msg("From: a@b", "common word\n"), flags=[], day=i) for i in range(8)],
         indexed=0)
    assert index_pending(store, account, 5) == 5
    assert index_pending(store, account, 5) == 3
    with store.read(account) as r:
        p = K.fts(account, b"common")
        chunks = [fts._unpack(v).tolist() for _k, v in r.kv.range("fts", p, prefix_end(p))]
        assert chunks == [[1, 2, 3], [4, 5, 6], [7, 8]]
        assert len(search(r, MailboxScope(INBOX), Contains("body", "common"))) == 8


def test_copy_onto_itself_keeps_text(store, account):
    from dualmail.mail.ops import copy_messages
    ids = load(store, account)
    with store.write(account) as tx:
        copy_messages(tx, INBOX, [2], INBOX)
    with store.read(account) as r:
        found = search(r, MailboxScope(INBOX), Contains("body", "m\u00fcnchen"))
        assert [u for u, _ in found] == [2, 13]
        assert len(search(r, MailboxScope(INBOX), Contains("from", "j\u00f6rg"))) == 2
    del ids


def test_missing_search_record_is_rebuilt(store, account):
    ids = load(store, account)
    store.kv.run_write(lambda w: w.delete("srch", K.email(account, ids[2])))
    with store.read(account) as r:
        assert [u for u, _ in search(r, MailboxScope(INBOX), Contains("from", "m\u00fcller"))] == [2]


def test_delete_account_removes_the_index(store, account):
    load(store, account)
    store.delete_account("alice@example.org")
    with store.read(account) as r:
        for table in ("fts", "ftsmeta", "srch"):
            assert not list(r.kv.range(table, K.acct(account), prefix_end(K.acct(account))))


def test_search_record_written_and_removed(store, account):
    ids = load(store, account)
    with store.read(account) as r:
        assert r.kv.get("srch", K.email(account, ids[5])) is not None
    with store.write(account) as tx:
        tx.destroy_email(ids[5])
    with store.read(account) as r:
        assert r.kv.get("srch", K.email(account, ids[5])) is None
        assert search(r, MailboxScope(INBOX), ALL)[0] == (1, ids[1])


@pytest.mark.skipif(sys.byteorder != "little", reason="layout check")
def test_postings_are_little_endian_u64():
    assert fts._pack([1, 2]) == b"\x01" + b"\x00" * 7 + b"\x02" + b"\x00" * 7
