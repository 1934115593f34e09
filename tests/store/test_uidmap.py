"""The in-memory UID lists behind IMAP SELECT stay equal to the store's UID index while
messages arrive, move and are expunged, also across an expunge-log compaction."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.store.uidmap import UidMaps
from tests.conftest import summary

INBOX, ARCHIVE = 1, 6

ops = st.lists(st.tuples(st.sampled_from(["add", "expunge", "move", "compact"]), st.integers(0, 50)),
               min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_uid_lists_follow_the_store(store, account, steps):
    maps = UidMaps(min_size=0)
    with store.write(account) as tx:
        for i in range(30):
            tx.create_email(b"m", summary(f"{i}@x"), [INBOX])
    for op, n in steps:
        with store.write(account) as tx:
            uids = list(tx.uids(INBOX))
            if op == "add":
                for i in range(n % 7 + 1):
                    tx.create_email(b"n", summary(), [INBOX])
            elif op == "expunge" and uids:
                for u in uids[n % len(uids)::3][:5]:
                    tx.set_deleted(tx.email_at(INBOX, u), INBOX, True)
                tx.expunge(INBOX)
            elif op == "move" and uids:
                e = tx.email_at(INBOX, uids[n % len(uids)])
                tx.add_membership(e, ARCHIVE)
                tx.remove_membership(e, INBOX)
            elif op == "compact":
                tx.compact_expunges(INBOX, tx.mailbox(INBOX)["hms"])
        with store.read(account) as r:
            for _twice in range(2):
                assert list(maps.uids(r, INBOX)) == list(r.uids(INBOX))
                assert list(maps.uids(r, ARCHIVE)) == list(r.uids(ARCHIVE))
    assert maps.hits >= len(steps) * 2


def test_small_mailboxes_are_not_cached(store, account):
    maps = UidMaps(min_size=10)
    with store.read(account) as r:
        assert list(maps.uids(r, INBOX)) == []
        assert list(maps.uids(r, INBOX)) == []
    assert maps.hits == 0 and maps.misses == 2


unseen_ops = st.lists(st.tuples(st.sampled_from(["add", "add_seen", "seen", "unseen", "expunge", "move",
                                                 "compact", "old_view"]),
                                st.integers(0, 50)), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=unseen_ops, max_changes=st.sampled_from([2, 2000]))
def test_unseen_sets_follow_the_store(store, account, steps, max_changes):
    """``UnseenSets`` (SEARCH UNSEEN from memory) equals the ``unseen`` index after every
    change: arrivals seen or not, \\Seen set and cleared, expunges, moves, a compacted
    expunge log, a view older than the entry, and a reload past ``max_changes``.  So does
    ``first`` (SELECT's [UNSEEN n]), with a set kept and without one (remembered per
    HIGHESTMODSEQ)."""
    from dualmail.store import imapidx
    from dualmail.store.uidmap import UnseenSets

    sets = UnseenSets(min_size=0, max_changes=max_changes)
    firsts = UnseenSets(min_size=10**9)  # keeps no set: ``first`` from the index row

    def first_of(pairs):
        return pairs[0][0] if pairs else None
    with store.write(account) as tx:
        for i in range(30):
            tx.create_email(b"m", summary(f"{i}@x"), [INBOX], ["$seen"] if i % 3 else [])
    old = None
    for op, n in steps:
        if op == "old_view":
            old = store.read(account)
            old_view = old.__enter__()
            continue
        with store.write(account) as tx:
            uids = list(tx.uids(INBOX))
            pick = tx.email_at(INBOX, uids[n % len(uids)]) if uids else None
            if op in ("add", "add_seen"):
                for i in range(n % 4 + 1):
                    tx.create_email(b"n", summary(), [INBOX], ["$seen"] if op == "add_seen" else [])
            elif op in ("seen", "unseen") and pick is not None:
                tx.set_keywords(pick, ["$seen"] if op == "seen" else [])
            elif op == "expunge" and uids:
                for u in uids[n % len(uids)::3][:5]:
                    tx.set_deleted(tx.email_at(INBOX, u), INBOX, True)
                tx.expunge(INBOX)
            elif op == "move" and pick is not None:
                tx.add_membership(pick, ARCHIVE)
                tx.remove_membership(pick, INBOX)
            elif op == "compact":
                tx.compact_expunges(INBOX, tx.mailbox(INBOX)["hms"])
        if old is not None:  # a view from before this change: answered as of that view
            want = imapidx.unseen(old_view.kv, account, INBOX)
            assert sets.pairs(old_view, INBOX, old_view.mailbox(INBOX)) == want
            assert firsts.first(old_view, INBOX, old_view.mailbox(INBOX)) == first_of(want)
            old.__exit__(None, None, None)
            old = None
        with store.read(account) as r:
            for m in (INBOX, ARCHIVE):
                want = imapidx.unseen(r.kv, account, m)
                assert want == sorted(want)
                for _twice in range(2):
                    got = sets.pairs(r, m, r.mailbox(m))
                    assert got == want
                    got.append((0, 0))  # the caller's own list: the entry is not touched
                    assert sets.first(r, m, r.mailbox(m)) == first_of(want)
                    assert firsts.first(r, m, r.mailbox(m)) == first_of(want)
    if old is not None:
        old.__exit__(None, None, None)
    assert sets.hits >= sum(1 for op, _n in steps if op != "old_view")  # each second read at least
    assert firsts.hits >= sum(1 for op, _n in steps if op != "old_view")
    assert not firsts._sets
