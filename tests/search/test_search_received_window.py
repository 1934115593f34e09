"""The receivedAt fast path of ``query``/``query_page`` (a bare ``inMailbox`` or no
filter, sorted by receivedAt, JMAP scope): lazy, thread-collapsing from the receivedAt
index values, stopping at ``limit_hint``.  Hypothesis: on random accounts (threads,
``\\Deleted`` memberships, several mailboxes, receivedAt ties, index values of an older
store left empty) it gives exactly what the general path (search + sort +
collapse_threads over the Email records) gives, for every window; and it decodes no
Email record."""

from __future__ import annotations

import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.search import JMAP, MailboxScope, collapse_threads, engine, query, query_page, search, sort
from dualmail.search.query import ALL, And, InMailbox, Keyword, SortKey
from dualmail.store import keys as K
from dualmail.store.check import verify
from dualmail.store.kv import prefix_end
from dualmail.store.store import open_store
from dualmail.store.txn import ReadView
from tests.conftest import summary

BOXES = (1, 2, 3)
CONDS = [InMailbox(1), InMailbox(2), InMailbox(3), InMailbox(9), InMailbox(0), ALL]
HINTS = [None, 0, 1, 2, 3, 5, 8, 50]

# one message: mailboxes, deleted flag, reply to an earlier message (index), receivedAt
messages = st.lists(st.tuples(
    st.sets(st.sampled_from(BOXES), min_size=1, max_size=3),
    st.booleans(),
    st.none() | st.integers(0, 40),
    st.integers(0, 5),
), min_size=0, max_size=25)
# afterwards: (message index, mailbox, op) with op "del" / "undel" / "remove"
edits = st.lists(st.tuples(st.integers(0, 40), st.sampled_from(BOXES), st.sampled_from(["del", "undel", "remove"])),
                 max_size=8)


def build(store, a, msgs, ops) -> list[int]:
    made: list[int] = []
    with store.write(a) as tx:
        for n, (boxes, deleted, reply, recv) in enumerate(msgs):
            refs = [f"{reply}@x"] if reply is not None and reply < n else []
            e, _uids = tx.create_email(f"Subject: m{n}\r\n\r\n".encode(), summary(f"{n}@x", "t", references=refs),
                                       sorted(boxes), [], received=1_000 + recv, deleted=deleted)
            made.append(e)
    for i, m, op in ops:
        if not made:
            break
        e = made[i % len(made)]
        with store.write(a) as tx:
            rec = tx.require_email(e)
            if str(m) not in rec["mbx"]:
                continue
            if op == "remove":
                if len(rec["mbx"]) > 1:
                    tx.remove_membership(e, m)
            else:
                tx.set_deleted(e, m, op == "del")
    return made


def general(r, cond, reverse, collapse):
    items = sort(r, JMAP, search(r, JMAP, cond), [SortKey("received", reverse)])
    return collapse_threads(r, items) if collapse else items


def blank_index_values(store, a) -> None:
    """What a store written before the thread was kept in the index would hold."""
    with store.write(a) as tx:
        for table in ("recv", "recvall"):
            p = K.acct(a)
            for k, _v in list(tx.w.range(table, p, prefix_end(p))):
                tx.w.put(table, k, b"")


def check_all(r) -> None:
    for cond in CONDS:
        for reverse in (True, False):
            for collapse in (False, True):
                want = general(r, cond, reverse, collapse)
                assert query(r, JMAP, cond, [SortKey("received", reverse)], collapse=collapse) == want
                for hint in HINTS:
                    for need_total in (True, False):
                        page = query_page(r, JMAP, cond, [SortKey("received", reverse)], collapse=collapse,
                                          limit_hint=hint, need_total=need_total)
                        assert page.items == (want if hint is None else want[:hint]), (cond, reverse, hint)
                        if need_total or hint is None:
                            assert page.total == len(want), (cond, reverse, collapse, hint)
                        else:
                            assert page.total in (None, len(want))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=messages, ops=edits, blank=st.booleans())
def test_fast_path_equals_general_path(msgs, ops, blank):
    d = tempfile.mkdtemp()
    store = open_store(d, sync=False)
    try:
        a = store.create_account("m@x", "pw")
        build(store, a, msgs, ops)
        with store.read(a) as r:
            assert verify(r) == []
        if blank:
            blank_index_values(store, a)
        with store.read(a) as r:
            check_all(r)
    finally:
        store.close()
        shutil.rmtree(d, ignore_errors=True)


def test_verify_checks_index_values(store, account):
    build(store, account, [({1}, False, None, 0), ({1, 2}, False, 0, 1)], [])
    with store.read(account) as r:
        assert verify(r) == []
    blank_index_values(store, account)
    with store.read(account) as r:
        problems = verify(r)
    assert len(problems) == 5 and all("is not its thread" in p for p in problems)  # 2 + 1 + 2 entries


@pytest.fixture
def big(store, account):
    """200 Emails in threads of 4 (receivedAt ties included), INBOX and mailbox 2."""
    msgs = [({1} if n % 3 else {1, 2}, n % 11 == 0, n - 1 if n % 4 else None, n // 3) for n in range(200)]
    build(store, account, msgs, [])
    return account


def test_fast_path_decodes_no_email_record(store, big, monkeypatch):
    calls = []
    real, real_many = ReadView.email, ReadView.emails

    def counting(self, e):
        calls.append(e)
        return real(self, e)

    def counting_many(self, es):  # the general path reads records in batches
        calls.extend(es)
        return real_many(self, es)
    monkeypatch.setattr(ReadView, "email", counting)
    monkeypatch.setattr(ReadView, "emails", counting_many)
    with store.read(big) as r:
        for cond in (InMailbox(1), InMailbox(2), ALL):
            for collapse in (False, True):
                for need_total in (False, True):
                    page = query_page(r, JMAP, cond, [SortKey("received", True)], collapse=collapse,
                                      limit_hint=10, need_total=need_total)
                    assert len(page.items) == 10 and (page.total is not None) == need_total
        assert calls == []
        # ... and the general path does (the wrapper sees it)
        query(r, JMAP, And((InMailbox(1), Keyword("$seen"))), [SortKey("received", True)], collapse=True)
        assert calls


def test_fast_path_stops_early(store, big, monkeypatch):
    """Without a total (or with a bare inMailbox's exact counter) only the window's
    index entries are read."""
    read = []
    real = ReadView.received_threads

    def counting(self, m, *, reverse=True, expect=None):
        for x in real(self, m, reverse=reverse, expect=expect):
            read.append(x)
            yield x
    monkeypatch.setattr(ReadView, "received_threads", counting)
    with store.read(big) as r:
        box = r.mailbox(1)["counts"]
        page = query_page(r, JMAP, InMailbox(1), [SortKey("received", True)], collapse=True, limit_hint=5,
                          need_total=True)
        assert page.total == box["threads"] and len(read) < 40
        read.clear()
        page = query_page(r, JMAP, InMailbox(1), [SortKey("received", True)], limit_hint=5, need_total=True)
        assert page.total == box["total"] and len(read) < 10
        read.clear()
        page = query_page(r, JMAP, ALL, [SortKey("received", False)], collapse=True, limit_hint=5,
                          need_total=False)
        assert page.total is None and len(read) < 40
        read.clear()
        # the account-wide total needs every entry (but still no record)
        page = query_page(r, JMAP, ALL, [SortKey("received", False)], collapse=True, limit_hint=5)
        assert page.total == len(general(r, ALL, False, True)) and len(read) > 150


def test_general_path_unchanged_when_fast_path_disabled(store, big, monkeypatch):
    with store.read(big) as r:
        fast = {(c, rev, col): query(r, JMAP, c, [SortKey("received", rev)], collapse=col)
                for c in (InMailbox(1), ALL) for rev in (True, False) for col in (True, False)}
    monkeypatch.setattr(engine, "_receivedat_only", lambda scope, cond, keys: False)
    with store.read(big) as r:
        for (c, rev, col), got in fast.items():
            assert query(r, JMAP, c, [SortKey("received", rev)], collapse=col) == got
        # IMAP scope never takes it
        imap = query(r, MailboxScope(1), InMailbox(1), [SortKey("received", True)])
    assert imap and all(isinstance(x, tuple) for x in imap)
