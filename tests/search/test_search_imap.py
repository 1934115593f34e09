"""Every IMAP SEARCH key (RFC 9051 §6.4.4, RFC 5032, RFC 7162 §3.1.5, RFC 8474) through
the real wire parser, ``from_imap_keys`` and the engine, on the hand-written corpus."""

from __future__ import annotations

import pytest

from dualmail.model import ids
from dualmail.search import MailboxScope, search
from dualmail.search.imap_keys import BadCharsetError, from_imap_keys, uses_modseq
from dualmail.imap.wire.commands import Key
from dualmail.search.collate import fold
from dualmail.search.query import Contains, Context, ModSeq

from tests.search.corpus import BASE, INBOX, NOW, imap_cond

ALLN = list(range(1, 13))


def uids(store, account, text, recent=frozenset()):
    with store.read(account) as r:
        return [u for u, _e in search(r, MailboxScope(INBOX), imap_cond(text), context=Context(recent))]


CASES = [
    ("ALL", ALLN),
    ("SEEN", [1, 3, 6, 10]),
    ("UNSEEN", [2, 4, 5, 7, 8, 9, 11, 12]),
    ("ANSWERED", [3]),
    ("UNANSWERED", [n for n in ALLN if n != 3]),
    ("FLAGGED", [3]),
    ("UNFLAGGED", [n for n in ALLN if n != 3]),
    ("DRAFT", [12]),
    ("UNDRAFT", list(range(1, 12))),
    ("DELETED", [11]),
    ("UNDELETED", [n for n in ALLN if n != 11]),
    ("KEYWORD $label1", [5, 12]),
    ("KEYWORD $LABEL1", [5, 12]),
    ("UNKEYWORD $label1", [n for n in ALLN if n not in (5, 12)]),
    ("KEYWORD nothing", []),
    # INTERNALDATE is the day's 01:00 UTC: message n arrived on Jan 1 + day
    ("BEFORE 3-Jan-2024", [1, 2]),
    ("ON 3-Jan-2024", [3]),
    ("SINCE 11-Jan-2024", [11, 12]),
    ("SINCE 1-Jan-2024 BEFORE 2-Jan-2024", [1]),
    # the Date field's own calendar date: message 2 was sent on Dec 31 in -0800
    ("SENTBEFORE 1-Jan-2024", [2]),
    ("SENTON 1-Jan-2024", [1]),
    ("SENTON 31-Dec-2023", [2]),
    ("SENTON 3-Jan-2024", [4, 8]),
    ("SENTON 5-Jan-2024", [6]),
    ("SENTSINCE 8-Jan-2024", [11, 12]),
    # no Date field: the INTERNALDATE's day (Jan 7) stands in, as for SORT (DATE) (RFC 5256 §2.2)
    ("SENTON 7-Jan-2024", [7, 10]),
    ("NOT SENTSINCE 1-Jan-2000", []),
    ("LARGER 5000", [9]),
    ("SMALLER 5000", [n for n in ALLN if n != 9]),
    ("UID 2:4", [2, 3, 4]),
    ("UID 10:*", [10, 11, 12]),
    ("UID 4:2,12", [2, 3, 4, 12]),
    ("1,3", [1, 3]),
    ("2:3 UID 3:5", [3]),
    ("FROM alice", [1, 10, 12]),
    ("FROM ALICE", [1, 10, 12]),
    ("FROM \"Alice Example\"", [1, 10, 12]),
    ("FROM j\u00f6rg", [2]),  # RFC 2047 Q in ISO-8859-1
    ("FROM J\u00d6RG", [2]),
    ("FROM m\u00fcller", [2]),
    ("FROM @example.org", [1, 7, 8, 9, 10, 12]),
    ("TO alice", [2, 3, 4, 6, 8, 9, 11]),
    ("CC carol", [2]),
    ("BCC secret", [4]),
    ("BCC alice", []),
    ("SUBJECT report", [1, 3, 8]),
    ("SUBJECT R\u00c9UNION", [2]),  # RFC 2047 B in UTF-8, case-insensitive
    ("SUBJECT \u4f1a\u8b70", [6]),
    ("SUBJECT \"\"", ALLN),
    ("SUBJECT fwd:", [5]),
    ("BODY m\u00fcnchen", [2]),  # quoted-printable ISO-8859-1 body
    ("BODY STRASSE", [2]),  # full case folding: ß = ss
    ("BODY Stra\u00dfe", [2]),
    ("BODY 4711", [4]),  # HTML-only body, as text
    ("BODY color", []),  # CSS is not text
    ("BODY \"42 EUR\"", [4]),  # &nbsp; is a space
    ("BODY \u8b70\u4e8b\u9332", [6]),  # CJK substring, base64 body
    ("BODY abc", [6]),  # full-width ＡＢＣ (NFKD)
    ("BODY quarterly", [1, 3]),
    ("BODY uarterl", [1, 3]),  # inside a word
    ("BODY \"numbers attached. revenue\"", [1]),  # across a line break
    ("BODY z\u00fcrich", [5]),
    ("BODY itinerary", [5]),
    ("BODY secret", []),
    ("TEXT x-priority", [5]),
    ("TEXT lists.example.org", [5]),
    ("TEXT quarterly", [1, 3, 8]),
    ("TEXT headerless", [7]),
    ("HEADER X-Priority \"\"", [5]),
    ("HEADER x-priority 1", [5]),
    ("HEADER X-Priority 2", []),
    ("HEADER Message-ID m1@", [1]),
    ("HEADER List-Id \"\"", [5]),
    ("HEADER Subject \"\"", [n for n in ALLN if n != 7]),
    ("HEADER In-Reply-To m1", [3]),
    ("OR FROM bob SUBJECT lunch", [3, 10]),
    ("NOT SEEN", [2, 4, 5, 7, 8, 9, 11, 12]),
    ("(FLAGGED SEEN)", [3]),
    ("OR (SEEN FLAGGED) DRAFT", [3, 12]),
    ("NOT (OR SEEN DELETED)", [2, 4, 5, 7, 8, 9, 12]),
    ("OR OR FROM eve FROM dave NOT OR LARGER 100 SEEN", [7, 8, 9]),  # 7 is tiny
    ("SUBJECT report NOT FROM bob", [1, 8]),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0] for c in CASES])
def test_search_key(store, account, corpus, text, expected):
    assert uids(store, account, text) == expected


def test_recent_new_old(store, account, corpus):
    recent = frozenset({11, 12})
    assert uids(store, account, "RECENT", recent) == [11, 12]
    assert uids(store, account, "NEW", recent) == [11, 12]
    assert uids(store, account, "OLD", recent) == list(range(1, 11))
    assert uids(store, account, "RECENT") == []


def test_older_younger_rfc5032(store, account, corpus):
    # message 11 arrived at BASE + 10 days + 1 hour; OLDER/YOUNGER both include the target
    n = NOW - (BASE + 10 * 86400 + 3600)
    assert uids(store, account, f"YOUNGER {n}") == [11, 12]
    assert uids(store, account, f"OLDER {n}") == list(range(1, 12))
    assert uids(store, account, f"YOUNGER {n - 1}") == [12]


def test_modseq(store, account, corpus):
    with store.read(account) as r:
        top = r.highest_modseq
    with store.write(account) as tx:
        tx.set_keywords(corpus[4], ["$seen"])
    assert uids(store, account, f"MODSEQ {top + 1}") == [4]
    assert uids(store, account, f'MODSEQ "/flags/\\\\seen" all {top + 1}') == [4]
    assert uids(store, account, "MODSEQ 1") == ALLN
    assert uses_modseq(imap_cond(f"NOT MODSEQ {top}"))
    assert not uses_modseq(imap_cond("SEEN"))


def test_emailid_threadid(store, account, corpus):
    with store.read(account) as r:
        t = r.email(corpus[3])["thread"]
    assert uids(store, account, f"EMAILID {ids.format_id(ids.EMAIL, corpus[3])}") == [3]
    assert uids(store, account, "EMAILID Ezzz") == []
    assert uids(store, account, f"THREADID {ids.format_id(ids.THREAD, t)}") == [1, 3, 8]


def test_search_in_other_mailbox_and_deleted_memberships(store, account, corpus):
    with store.read(account) as r:
        assert search(r, MailboxScope(6), imap_cond("ALL")) == [(1, corpus[10])]
        assert search(r, MailboxScope(6), imap_cond("SUBJECT lunch")) == [(1, corpus[10])]
        assert search(r, MailboxScope(6), imap_cond("DELETED")) == []


def test_charset(store, account, corpus):
    key = Key("FROM", ("J\u00f6rg".encode("latin-1"),))  # as the parser gives it
    cond = from_imap_keys(key, uid_set=list, seq_set=list, now=NOW, charset="ISO-8859-1")
    assert cond == Contains("from", "J\u00f6rg")
    with store.read(account) as r:
        assert [u for u, _ in search(r, MailboxScope(INBOX), cond)] == [2]
    with pytest.raises(BadCharsetError):
        from_imap_keys(key, uid_set=list, seq_set=list, now=NOW, charset="X-NO-SUCH")


def test_modseq_condition_is_per_membership(store, account, corpus):
    with store.read(account) as r:
        rec = r.email(corpus[10])
        ms_inbox = rec["mbx"]["1"][2]
    with store.write(account) as tx:
        tx.set_deleted(corpus[10], 6, True)  # changes only the Archive membership
    with store.read(account) as r:
        assert [u for u, _ in search(r, MailboxScope(INBOX), ModSeq(ms_inbox + 1))] == []
        assert [u for u, _ in search(r, MailboxScope(6), ModSeq(ms_inbox + 1))] == [1]


def test_header_of_a_search_field_answers_as_the_header_text_does(store, account):
    """HEADER From/To/Cc/Bcc/Subject is answered from the search record, the other fields
    from the header text: both must give what RFC 9051 §6.4.4 HEADER asks (the field
    present, and its value containing the string), instance by instance."""
    from dualmail.search.engine import _Engine
    from dualmail.search.query import Header
    from tests.search.corpus import load, msg
    load(store, account, [
        dict(raw=msg("Subject: first line\nSubject: second =?UTF-8?Q?M=C3=BCnchen?=\nTo:\nFrom: a@example.org"),
             flags=[], day=0),
        dict(raw=msg("Subject: other\nX-Subject: first line\nFrom: b@example.org"), flags=[], day=1),
        dict(raw=msg("From: c@example.org"), flags=[], day=2),
    ])
    cases = [("Subject", "first", [1]), ("subject", "MÜNCHEN", [1]), ("Subject", "line\nsecond", []),
             ("SUBJECT", "", [1, 2]), ("To", "", [1]), ("to", "x", []), ("From", "example", [1, 2, 3]),
             ("Cc", "", []), ("X-Subject", "first", [2]), ("Subject", "ther", [2])]
    for name, value, want in cases:
        with store.read(account) as r:
            got = [u for u, _e in search(r, MailboxScope(INBOX), Header(name, value))]
        assert got == want, (name, value)
    # the same answers from the header text alone (as for Emails stored without a search record)
    with store.read(account) as r:
        eng = _Engine(r, MailboxScope(INBOX), None)
        docs = list(eng._docs((e, u) for u, e in r.uid_items(INBOX)))
        for name, value, want in cases:
            slow = [d.uid for d in docs if any(
                n == name.lower() and (not value or fold(value) in fold(v)) for n, v in eng.header_lines(d))]
            assert slow == want, (name, value)
