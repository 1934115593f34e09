"""The quota model (RFC 9425 / RFC 9208) in the store: usage kept in the same transaction
as the Emails it counts, limits refusing additions before anything is written, and the
Quota change log (RFC 9425 §4.3 updatedProperties)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

import pytest

from dualmail.model import errors
from dualmail.store import codec, keys as K
from dualmail.store.check import verify
from dualmail.store.txn import QUOTA_RESOURCES, recount_usage
from tests.conftest import summary

INBOX, ARCHIVE = 1, 6


def raw(n: int) -> bytes:
    return b"Subject: q\r\n\r\n" + b"x" * n + b"\r\n"


def add(store, a, size=10, mailboxes=(INBOX,)):
    with store.write(a) as tx:
        return tx.create_email(raw(size), summary("", "q"), mailboxes, (), 1000)


def snapshot(store, a):
    with store.read(a) as r:
        return (r.highest_modseq, r.usage(), r.state("Email"), r.state("Quota"),
                sorted((m["id"], tuple(sorted(m["counts"].items())), m["uidnext"]) for m in r.mailboxes()))


def test_usage_counts_each_email_once(store, account):
    e, _ = add(store, account, 100, (INBOX, ARCHIVE))  # one Email in two mailboxes
    size = len(raw(100))
    with store.read(account) as r:
        assert r.usage() == {"octets": size, "count": 1}
    with store.write(account) as tx:  # IMAP COPY: a membership of the same Email
        tx.add_membership(e, 2)
    with store.read(account) as r:
        assert r.usage() == {"octets": size, "count": 1}
    with store.write(account) as tx:  # COPY onto itself makes a second Email (CONTRACT §2)
        tx.duplicate_email(e, INBOX)
    with store.read(account) as r:
        assert r.usage() == {"octets": 2 * size, "count": 2}
    with store.write(account) as tx:
        tx.destroy_email(e)
    with store.read(account) as r:
        assert r.usage() == {"octets": size, "count": 1}
        assert verify(r) == []


def test_limits_refuse_before_anything_is_written(store, account):
    add(store, account, 10)
    store.set_quota("alice@example.org", {"count": 1})
    before = snapshot(store, account)
    with pytest.raises(errors.OverQuotaError):
        add(store, account, 10)
    assert snapshot(store, account) == before  # no modseq, no UID, no counter moved
    store.set_quota("alice@example.org", {"count": None, "octets": len(raw(10)) + len(raw(5))})
    add(store, account, 5)  # exactly at the limit is allowed
    before = snapshot(store, account)
    with pytest.raises(errors.OverQuotaError):
        add(store, account, 0)
    assert snapshot(store, account) == before


def test_refused_create_in_a_larger_transaction_leaves_the_rest(store, account):
    """/set semantics (RFC 8620 §5.3): one refused create leaves the others of the same
    transaction intact, because the check comes before the Email's first write."""
    store.set_quota("alice@example.org", {"count": 1})
    with store.write(account) as tx:
        tx.create_email(raw(1), summary("", "a"), [INBOX], (), 1000)
        with pytest.raises(errors.OverQuotaError):
            tx.create_email(raw(1), summary("", "b"), [INBOX], (), 1000)
    with store.read(account) as r:
        assert r.usage()["count"] == 1
        assert r.mailbox(INBOX)["counts"]["msgs"] == 1
        assert verify(r) == []


def test_removing_mail_is_always_allowed_over_quota(store, account):
    e, _ = add(store, account, 50)
    store.set_quota("alice@example.org", {"octets": 1})  # the admin lowered it below usage
    with store.write(account) as tx:
        tx.set_keywords(e, ["$seen"])
    with store.write(account) as tx:
        tx.destroy_email(e)
    with store.read(account) as r:
        assert r.usage() == {"octets": 0, "count": 0}


def test_quota_objects_follow_the_limits_in_the_change_log(store, account):
    a = account
    with store.read(a) as r:
        s0 = r.state("Quota")
    store.set_quota("alice@example.org", {"octets": 10_000})
    with store.read(a) as r:
        s1 = r.state("Quota")
        ch = r.changes("Quota", s0)
        assert ch.created == [QUOTA_RESOURCES["octets"]] and not ch.updated
    add(store, a, 10)
    with store.read(a) as r:
        ch = r.changes("Quota", s1)
        # only "used" changed: RFC 9425 §4.3 updatedProperties ["used"]
        assert ch.updated == [QUOTA_RESOURCES["octets"]] and ch.only_counts
        s2 = r.state("Quota")
        assert s2 == r.highest_modseq  # the one modseq (CONTRACT §4)
    store.set_quota("alice@example.org", {"octets": 20_000})
    with store.read(a) as r:
        ch = r.changes("Quota", s2)
        assert ch.updated == [QUOTA_RESOURCES["octets"]] and not ch.only_counts
        s3 = r.state("Quota")
    store.set_quota("alice@example.org", {"octets": None})
    with store.read(a) as r:
        assert r.changes("Quota", s3).destroyed == [QUOTA_RESOURCES["octets"]]
        assert r.quota_limits() == {}
    # without a limit, mail changes do not move the Quota state
    with store.read(a) as r:
        s4 = r.state("Quota")
    add(store, a, 10)
    with store.read(a) as r:
        assert r.state("Quota") == s4


def test_setting_the_same_limit_takes_no_modseq(store, account):
    store.set_quota("alice@example.org", {"count": 5})
    before = snapshot(store, account)
    store.set_quota("alice@example.org", {"count": 5})
    assert snapshot(store, account) == before
    with store.write(account) as tx:
        with pytest.raises(errors.CannotError):
            tx.set_quota("count", -1)
        with pytest.raises(errors.CannotError):
            tx.set_quota("mailboxes", 1)


def test_a_store_from_before_quotas_is_recounted_once(store, account):
    """Accounts written before this version have no usage record: reads recount, and the
    first write that adds or removes an Email stores the exact figure."""
    add(store, account, 10)
    add(store, account, 20)
    with store.write(account) as tx:  # make the account record look like an old one
        rec = tx.account()
        rec.pop("use")
        tx.w.put("account", K.acct(account), codec.dumps(rec))
    with store.read(account) as r:
        assert "use" not in r.account()
        want = recount_usage(r)
        assert r.usage() == want and want["count"] == 2
        assert verify(r) == []
    store.set_quota("alice@example.org", {"count": 3})
    add(store, account, 5)
    with store.read(account) as r:
        assert r.account()["use"] == [want["octets"] + len(raw(5)), 3]
    with pytest.raises(errors.OverQuotaError):
        add(store, account, 5)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["add", "add2", "copy", "dup", "destroy", "expunge", "limit"]),
                          st.integers(0, 400)), max_size=25))
def test_usage_always_equals_a_recount(store, account, ops):
    """Whatever sequence of writes (and refusals), the stored usage is the recount and
    never exceeds a limit set before the additions."""
    for op, n in ops:
        with store.read(account) as r:
            emails = sorted(K.un64(k, 4) for k, _v in r.kv.range("email", K.acct(account),
                                                                  K.acct(account + 1)))
            limits = r.quota_limits()
        refused = False
        try:
            if op == "add":
                add(store, account, n)
            elif op == "add2":
                add(store, account, n, (INBOX, ARCHIVE))
            elif op == "limit":
                store.set_quota("alice@example.org", {"octets": n * 20 if n % 3 else None,
                                                      "count": n % 7 if n % 2 else None})
            elif emails:
                e = emails[n % len(emails)]
                with store.write(account) as tx:
                    if op == "copy" and str(2) not in tx.email(e)["mbx"]:
                        tx.add_membership(e, 2)
                    elif op == "dup":
                        tx.duplicate_email(e, int(next(iter(tx.email(e)["mbx"]))))
                    elif op == "destroy":
                        tx.destroy_email(e)
                    elif op == "expunge":
                        m = int(next(iter(tx.email(e)["mbx"])))
                        tx.set_deleted(e, m, True)
                        tx.expunge(m)
        except errors.OverQuotaError:
            refused = True
        with store.read(account) as r:
            assert r.usage() == recount_usage(r)
            if op in ("add", "add2", "dup") and not refused:  # an addition that was allowed fits every limit
                assert all(r.usage()[res] <= lim for res, lim in limits.items())
    with store.read(account) as r:
        assert verify(r) == []
