"""The store's migration operations (dualmail/store/txn.py, "migration" section):
source UIDVALIDITY/UIDs/UIDNEXT kept, source MODSEQs carried under the rule written in
docs/operating.md (account counter above every carried modseq; HIGHESTMODSEQ never
backwards), and the store's recount (store/check.py) still agrees."""

from __future__ import annotations

import pytest

from dualmail.model import errors
from dualmail.store.check import verify
from tests.conftest import summary

RAW = b"Message-ID: <a@x>\r\nSubject: x\r\n\r\nbody\r\n"


def _ok(store, a):
    with store.read(a) as r:
        assert verify(r) == []


def test_mailbox_keeps_source_uidvalidity_uids_and_uidnext(store, account):
    with store.write(account) as tx:
        tx.raise_modseq(500)
        m = tx.create_mailbox_as("Old", uidvalidity=1234567)
        e, uids = tx.create_email(RAW, summary("a@x"), [m], ["$seen"], 1000, at_uids={m: 7})
        tx.carry_modseq(e, m, 42)
        tx.raise_uidnext(m, 20)
        tx.carry_highest_modseq(m, 450)
        s = tx.modseq
    assert uids == {m: 7}
    assert s == 501  # above the source's highest modseq (RFC 7162 §3.1.1: never backwards)
    with store.read(account) as r:
        box = r.mailbox(m)
        assert (box["uidvalidity"], box["uidnext"], box["hms"]) == (1234567, 20, 450)
        assert list(r.uids(m)) == [7]
        assert r.changed_since(m, 41) == [(7, 42)]
        assert r.changed_since(m, 42) == []
        assert r.highest_modseq == 501
        assert r.state("Email") == 501  # JMAP states are the transaction's own modseq
    _ok(store, account)
    # the next ordinary write is above every carried modseq
    with store.write(account) as tx:
        tx.set_keywords(e, [])
    with store.read(account) as r:
        assert r.changed_since(m, 450) == [(7, 502)]
        assert r.mailbox(m)["hms"] == 502


def test_uid_below_uidnext_is_refused_and_nothing_changes(store, account):
    with store.write(account) as tx:
        m = tx.create_mailbox_as("Old", uidvalidity=9)
        tx.create_email(RAW, summary("a@x"), [m], [], 1000, at_uids={m: 5})
    with store.read(account) as r:
        before = (r.highest_modseq, r.mailbox(m))
    for bad in (5, 3, 0):
        with pytest.raises(errors.CannotError):
            with store.write(account) as tx:
                tx.create_email(RAW, summary("b@x"), [m], [], 1000, at_uids={m: bad})
    with pytest.raises(errors.LimitError):
        with store.write(account) as tx:
            tx.create_email(RAW, summary("b@x"), [m], [], 1000, at_uids={m: 0xFFFFFFFF})
    with store.read(account) as r:
        assert (r.highest_modseq, r.mailbox(m)) == before
    _ok(store, account)


def test_uidvalidity_range(store, account):
    for bad in (0, -1, 2**32, True):
        with pytest.raises(errors.LimitError):
            with store.write(account) as tx:
                tx.create_mailbox_as("X", uidvalidity=bad)


def test_highest_modseq_never_goes_backwards(store, account):
    with store.write(account) as tx:
        tx.raise_modseq(100)
        m = tx.create_mailbox_as("Old", uidvalidity=9)
        tx.carry_highest_modseq(m, 80)
    with pytest.raises(errors.CannotError):
        with store.write(account) as tx:
            tx.raise_modseq(100)
            tx.carry_highest_modseq(m, 79)
    with pytest.raises(errors.CannotError):  # nor above the transaction's own modseq
        with store.write(account) as tx:
            tx.carry_highest_modseq(m, 10**6)
    with store.read(account) as r:
        assert r.mailbox(m)["hms"] == 80


def test_raise_modseq_must_come_first(store, account):
    with pytest.raises(errors.CannotError):
        with store.write(account) as tx:
            tx.create_mailbox("X")
            tx.raise_modseq(1000)
    with store.write(account) as tx:
        tx.raise_modseq(1)  # already above: the next value, as always
        tx.create_mailbox("Y")
        assert tx.modseq == 2
    with store.write(account) as tx:
        tx.raise_modseq(100)  # a transaction that changes nothing takes no modseq
    with store.read(account) as r:
        assert r.highest_modseq == 2


def test_carried_modseq_above_transaction_is_refused(store, account):
    with store.write(account) as tx:
        m = tx.create_mailbox_as("Old", uidvalidity=9)
        e, _ = tx.create_email(RAW, summary("a@x"), [m], [], 1000, at_uids={m: 1})
        with pytest.raises(errors.CannotError):
            tx.carry_modseq(e, m, tx.modseq + 1)


def test_one_email_in_two_mailboxes_at_source_uids_then_split(store, account):
    with store.write(account) as tx:
        tx.raise_modseq(50)
        a = tx.create_mailbox_as("A", uidvalidity=1)
        b = tx.create_mailbox_as("B", uidvalidity=2)
        e, _ = tx.create_email(RAW, summary("a@x"), [a], ["$seen"], 1000, at_uids={a: 3})
        tx.add_membership_as(e, b, 9, deleted=True)
        tx.carry_modseq(e, a, 10)
        tx.carry_modseq(e, b, 11)
    with store.read(account) as r:
        rec = r.email(e)
        assert rec["mbx"] == {str(a): [3, 0, 10], str(b): [9, 1, 11]}
        assert r.mailbox(b)["counts"]["deleted"] == 1
    _ok(store, account)
    # the source changes the flags in B only: B's membership gets an Email of its own,
    # same UID, same bytes
    with store.write(account) as tx:
        tx.raise_modseq(60)
        e2 = tx.split_membership(e, b, ["$flagged"])
        tx.carry_modseq(e2, b, 60)
        tx.carry_highest_modseq(b, 60)
    with store.read(account) as r:
        assert r.email(e)["mbx"] == {str(a): [3, 0, 10]}
        rec2 = r.email(e2)
        assert rec2["mbx"] == {str(b): [9, 1, 60]} and rec2["kw"] == ["$flagged"]
        assert r.raw_message(e2) == RAW
        assert r.email_at(b, 9) == e2
        assert r.expunged_since(b, 0) == []  # not an expunge for IMAP
        assert r.changed_since(b, 11) == [(9, 60)]
    _ok(store, account)


def test_carried_expunge_tombstone(store, account):
    with store.write(account) as tx:
        tx.raise_modseq(20)
        m = tx.create_mailbox_as("Old", uidvalidity=9)
        e, _ = tx.create_email(RAW, summary("a@x"), [m], [], 1000, at_uids={m: 4})
        tx.carry_modseq(e, m, 15)
        tx.carry_highest_modseq(m, 15)
    with store.write(account) as tx:
        tx.raise_modseq(30)
        tx.carry_expunge(e, m, 30)
        tx.carry_highest_modseq(m, 30)
    with store.read(account) as r:
        assert r.expunged_since(m, 15) == [4]
        assert r.expunged_since(m, 30) == []
        assert r.email(e) is None
    _ok(store, account)


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

OPS = st.lists(st.tuples(st.sampled_from(["new", "merge", "flags", "split", "expunge", "uidnext", "native"]),
                         st.integers(0, 3), st.integers(1, 5), st.integers(0, 7)), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_migration_writes_keep_the_store_consistent(tmp_path_factory, ops):
    """Any sequence of migration writes (and ordinary ones between them) leaves counters
    and indexes equal to a recount (store/check.py), UIDs ascending and never reused,
    HIGHESTMODSEQ never lower than before, the account counter above every modseq."""
    from dualmail.store.store import open_store

    store = open_store(str(tmp_path_factory.mktemp("s")), sync=False)
    a = store.create_account("p@x", "pw")
    src_modseq = 10
    with store.write(a) as tx:
        tx.raise_modseq(src_modseq)
        boxes = [tx.create_mailbox_as(f"B{i}", uidvalidity=100 + i) for i in range(2)]
    used: dict[int, set[int]] = {m: set() for m in boxes}
    hms_seen = {m: 0 for m in boxes}
    n = 0
    for op, which, step, flag in ops:
        m = boxes[which % 2]
        src_modseq += step
        try:
            with store.write(a) as tx:
                tx.raise_modseq(src_modseq)
                rec = tx.require_mailbox(m)
                live = [e for _u, e in tx.uid_items(m)]
                if op == "new":
                    u = int(rec["uidnext"]) + flag
                    n += 1
                    raw = f"Message-ID: <{n}@x>\r\n\r\n{n}\r\n".encode()
                    e, _ = tx.create_email(raw, summary(f"{n}@x"), [m], ["$seen"] if flag % 2 else [],
                                           1000, deleted=flag == 3, at_uids={m: u})
                    tx.carry_modseq(e, m, src_modseq)
                    used[m].add(u)
                elif op == "merge":
                    other = boxes[(which + 1) % 2]
                    cand = [e for _u, e in tx.uid_items(other) if str(m) not in tx.email(e)["mbx"]]
                    if not cand:
                        continue
                    u = int(rec["uidnext"]) + flag
                    tx.add_membership_as(cand[0], m, u, deleted=flag == 3)
                    tx.carry_modseq(cand[0], m, src_modseq)
                    used[m].add(u)
                elif op == "flags" and live:
                    e = live[flag % len(live)]
                    tx.set_keywords(e, ["$flagged"] if flag % 2 else [])
                    for mk in tx.email(e)["mbx"]:
                        tx.carry_modseq(e, int(mk), src_modseq)
                elif op == "split" and live:
                    e = live[flag % len(live)]
                    if len(tx.email(e)["mbx"]) > 1:
                        e2 = tx.split_membership(e, m, ["$answered"])
                        tx.carry_modseq(e2, m, src_modseq)
                elif op == "expunge" and live:
                    tx.carry_expunge(live[flag % len(live)], m, src_modseq)
                elif op == "uidnext":
                    tx.raise_uidnext(m, int(rec["uidnext"]) + flag)
                elif op == "native" and live:
                    tx.set_deleted(live[flag % len(live)], m, bool(flag % 2))
                    continue  # an ordinary write: its own modseq, no carrying
                for mm in tx.touched_mailboxes:  # the mailbox now shows the source's HIGHESTMODSEQ
                    tx.carry_highest_modseq(mm, max(hms_seen[mm], src_modseq))
        finally:
            with store.read(a) as r:
                assert verify(r) == []
                top = r.highest_modseq
                for mm in boxes:
                    box = r.mailbox(mm)
                    assert box["hms"] >= hms_seen[mm]
                    hms_seen[mm] = box["hms"]
                    uids = list(r.uids(mm))
                    assert uids == sorted(uids) and set(uids) <= used[mm]
                    assert all(u < box["uidnext"] for u in used[mm])
                    assert all(ms <= top for _u, ms in r.changed_since(mm, 0))
    store.close()
