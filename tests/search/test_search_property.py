"""Hypothesis: the engine (indexes, planning, cost ordering, half-built full-text index)
agrees with a brute-force evaluator written from the stored data on random condition
trees, in IMAP scope (INBOX, \\Deleted memberships included) and in JMAP scope."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.search import JMAP, MailboxScope, search
from dualmail.search.collate import fold
from dualmail.search.query import (
    And, Contains, Context, Deleted, EmailId, HasAttachment, Header, InMailbox,
    InMailboxOtherThan, Keyword, ModSeq, Not, Or, Received, Recent, SentDay, Size, ThreadId,
    ThreadKeyword, UidIn,
)
from dualmail.store.txn import visible
from tests.search.corpus import BASE, INBOX, load

RECENT = frozenset({2, 5, 11})
WORDS = ["quarterly", "uarterl", "alice", "example", "m\u00fcnchen", "4711", "re:", "lorem ipsum",
         "\u4f1a\u8b70", "abc", "bob", "the", "plans", "zz", "report", "@", " ", "ex", ". re"]
days = st.integers(-1, 13).map(lambda d: BASE + d * 86400 + 1800)
bound = st.none() | days

leaf = st.one_of(
    st.sampled_from(["$seen", "$flagged", "$answered", "$draft", "$label1", "foo"]).map(Keyword),
    st.just(Deleted()), st.just(Recent()),
    st.builds(Received, bound, bound),
    st.builds(SentDay, st.none() | st.integers(19720, 19735), st.none() | st.integers(19720, 19735)),
    st.builds(Size, st.none() | st.integers(0, 30000), st.none() | st.integers(0, 30000)),
    st.lists(st.tuples(st.integers(1, 14), st.integers(1, 14)), min_size=1, max_size=3).map(UidIn.of),
    st.sampled_from([1, 6, 4]).map(InMailbox),
    st.frozensets(st.sampled_from([1, 6, 4]), max_size=2).map(InMailboxOtherThan),
    st.builds(ThreadKeyword, st.sampled_from(["$seen", "$flagged"]), st.sampled_from(["all", "some", "none"])),
    st.booleans().map(HasAttachment),
    st.builds(Contains, st.sampled_from(["from", "to", "cc", "bcc", "subject", "body", "text", "jmaptext"]),
              st.sampled_from(WORDS)),
    st.builds(Header, st.sampled_from(["x-priority", "Subject", "message-id", "List-Id", "to", "From", "cc"]),
              st.sampled_from(["", "1", "m1", "example", "report"])),
    st.integers(1, 4).map(ModSeq), st.integers(1, 13).map(EmailId), st.integers(1, 12).map(ThreadId),
)
conds = st.recursive(leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=3).map(lambda xs: And(tuple(xs))),
    st.lists(kids, max_size=3).map(lambda xs: Or(tuple(xs))),
    kids.map(Not)), max_leaves=8)


def brute(r, e, uid, mailbox, c) -> bool:  # noqa: C901 - a plain evaluator, one branch per leaf
    rec = r.email(e)
    summary = r.summary(e)
    header, body = r.text(e)
    lines = [(n.strip().lower(), v.strip()) for n, s, v in (x.partition(":") for x in header.split("\n")) if s]

    def field(name):
        return fold("\n".join(v for n, v in lines if n == name))

    def ev(c) -> bool:
        if isinstance(c, And):
            return all(ev(x) for x in c.conds)
        if isinstance(c, Or):
            return any(ev(x) for x in c.conds)
        if isinstance(c, Not):
            return not ev(c.cond)
        if isinstance(c, Keyword):
            return c.keyword in rec["kw"]
        if isinstance(c, Deleted):
            return mailbox is not None and bool(rec["mbx"][str(mailbox)][1])
        if isinstance(c, Recent):
            return mailbox is not None and uid in RECENT
        if isinstance(c, Received):
            return (c.lo is None or rec["recv"] >= c.lo) and (c.hi is None or rec["recv"] < c.hi)
        if isinstance(c, SentDay):
            if summary["sent_at"] is None:  # the internal date's day (RFC 5256 §2.2)
                d = rec["recv"] // 86400
            else:
                d = (summary["sent_at"] + summary["sent_at_offset"] * 60) // 86400
            return (c.lo is None or d >= c.lo) and (c.hi is None or d < c.hi)
        if isinstance(c, Size):
            return (c.lo is None or rec["size"] >= c.lo) and (c.hi is None or rec["size"] < c.hi)
        if isinstance(c, UidIn):
            return mailbox is not None and any(lo <= uid <= hi for lo, hi in c.ranges)
        if isinstance(c, InMailbox):
            return str(c.mailbox) in rec["mbx"] and not rec["mbx"][str(c.mailbox)][1]
        if isinstance(c, InMailboxOtherThan):
            return any(int(m) not in c.mailboxes and not v[1] for m, v in rec["mbx"].items())
        if isinstance(c, ThreadKeyword):
            th = r.thread(rec["thread"])
            kws = [r.email(x[1])["kw"] for x in th["emails"] if x[2]]
            has = [c.keyword in k for k in kws]
            return all(has) if c.mode == "all" else any(has) if c.mode == "some" else not any(has)
        if isinstance(c, HasAttachment):
            return bool(summary["has_attachment"]) == c.value
        if isinstance(c, Contains):
            q = fold(c.value)
            if c.field == "body":
                return q in fold(body)
            if c.field == "text":
                return q in fold(header) or q in fold(body)
            if c.field == "jmaptext":
                return q in fold(body) or any(q in field(f) for f in ("from", "to", "cc", "bcc", "subject"))
            return q in field(c.field)
        if isinstance(c, Header):
            q = fold(c.value)
            return any(n == c.name.lower() and q in fold(v) for n, v in lines)
        if isinstance(c, ModSeq):
            ms = rec["mbx"][str(mailbox)][2] if mailbox is not None else rec["modseq"]
            return ms >= c.modseq
        if isinstance(c, EmailId):
            return e == c.email
        if isinstance(c, ThreadId):
            return rec["thread"] == c.thread
        raise AssertionError(c)

    return ev(c)


def test_engine_matches_brute_force(store, account):
    ids = load(store, account, indexed=7)  # the full-text index covers 7 of 12
    with store.write(account) as tx:  # some later modseqs
        tx.set_keywords(ids[2], ["$flagged"])
    with store.write(account) as tx:
        tx.set_deleted(ids[10], 6, True)

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(conds)
    def check(c):
        with store.read(account) as r:
            got = search(r, MailboxScope(INBOX), c, context=Context(RECENT))
            want = [(u, e) for u, e in r.uid_items(INBOX) if brute(r, e, u, INBOX, c)]
            assert got == want
            got = search(r, JMAP, c, context=Context(RECENT))
            want = sorted(e for e in ids.values()
                          if r.email(e) and visible(r.email(e)) and brute(r, e, 0, None, c))
            assert got == want

    check()
