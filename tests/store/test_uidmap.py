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
