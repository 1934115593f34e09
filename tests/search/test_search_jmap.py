"""Every RFC 8621 §4.4.1 FilterCondition and FilterOperator through ``from_jmap_filter``
and the engine, and the same questions asked the IMAP way giving the same Emails."""

from __future__ import annotations

import pytest

from dualmail.search import JMAP, MailboxScope, search
from dualmail.search.query import (
    ALL, And, Contains, Header, InvalidFilterError, Keyword, Not, UnsupportedFilter,
    UnsupportedSortError, from_jmap_filter, from_jmap_sort, jmap_text_terms,
)
from tests.search.corpus import INBOX, imap_cond

VISIBLE = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]  # 11's only membership is \Deleted


def emails(store, account, corpus, f):
    back = {e: n for n, e in corpus.items()}
    with store.read(account) as r:
        return [back[e] for e in search(r, JMAP, from_jmap_filter(f))]


CASES = [
    (None, VISIBLE),
    ({}, VISIBLE),
    ({"inMailbox": "M1"}, VISIBLE),
    ({"inMailbox": "M6"}, [10]),
    ({"inMailbox": "Mzz"}, []),
    ({"inMailbox": "not-an-id"}, []),
    ({"inMailboxOtherThan": ["M1"]}, [10]),
    ({"inMailboxOtherThan": ["M1", "M6"]}, []),
    ({"inMailboxOtherThan": []}, VISIBLE),
    ({"before": "2024-01-03T00:00:00Z"}, [1, 2]),
    ({"after": "2024-01-11T00:00:00Z"}, [12]),
    ({"after": "2024-01-01T01:00:00Z", "before": "2024-01-02T01:00:00Z"}, [1]),  # after is >=
    ({"after": "2024-01-01T01:00:01Z", "before": "2024-01-02T01:00:01Z"}, [2]),
    ({"minSize": 5000}, [9]),
    ({"maxSize": 5000}, [n for n in VISIBLE if n != 9]),
    ({"hasKeyword": "$seen"}, [1, 3, 6, 10]),
    ({"hasKeyword": "$SEEN"}, [1, 3, 6, 10]),
    ({"notKeyword": "$seen"}, [2, 4, 5, 7, 8, 9, 12]),
    ({"hasKeyword": "$label1"}, [5, 12]),
    ({"allInThreadHaveKeyword": "$seen"}, [6, 10]),
    ({"someInThreadHaveKeyword": "$seen"}, [1, 3, 6, 8, 10]),
    ({"noneInThreadHaveKeyword": "$seen"}, [2, 4, 5, 7, 9, 12]),
    ({"someInThreadHaveKeyword": "$flagged"}, [1, 3, 8]),
    ({"hasAttachment": True}, [5]),
    ({"hasAttachment": False}, [n for n in VISIBLE if n != 5]),
    ({"text": "quarterly"}, [1, 3, 8]),
    ({"text": "x-priority"}, []),  # JMAP text: From/To/Cc/Bcc/Subject and body only
    ({"text": "secret"}, [4]),  # ... Bcc included
    ({"text": "grew revenue"}, [1]),  # separate terms, all present
    ({"text": '"grew revenue"'}, []),  # a phrase
    ({"text": '"revenue grew"'}, [1]),
    ({"from": "bob"}, [3]),
    ({"to": "bob"}, [1, 12]),
    ({"cc": "carol"}, [2]),
    ({"bcc": "secret"}, [4]),
    ({"subject": "r\u00e9union"}, [2]),
    ({"subject": "\u4f1a\u8b70"}, [6]),
    ({"body": "m\u00fcnchen"}, [2]),
    ({"body": "4711"}, [4]),
    ({"header": ["X-Priority"]}, [5]),
    ({"header": ["x-priority", "1"]}, [5]),
    ({"header": ["X-Note", "HEADERLESS"]}, [7]),
    ({"header": ["Subject"]}, [n for n in VISIBLE if n != 7]),
    ({"operator": "OR", "conditions": [{"from": "bob"}, {"subject": "lunch"}]}, [3, 10]),
    ({"operator": "AND", "conditions": [{"subject": "report"}, {"hasKeyword": "$seen"}]}, [1, 3]),
    ({"operator": "NOT", "conditions": [{"hasKeyword": "$seen"}, {"minSize": 1000}]}, [2, 4, 5, 7, 8, 12]),
    ({"operator": "AND", "conditions": []}, VISIBLE),
    ({"operator": "OR", "conditions": []}, []),
    ({"operator": "NOT", "conditions": [
        {"operator": "OR", "conditions": [{"text": "quarterly"}, {"inMailbox": "M6"}]}]},
     [2, 4, 5, 6, 7, 9, 12]),
]


@pytest.mark.parametrize("f,expected", CASES, ids=[repr(c[0]) for c in CASES])
def test_filter(store, account, corpus, f, expected):
    assert emails(store, account, corpus, f) == expected


PAIRS = [  # (IMAP search keys, JMAP filter): the same question
    ("SEEN", {"hasKeyword": "$seen"}),
    ("UNSEEN", {"notKeyword": "$seen"}),
    ("KEYWORD $label1", {"hasKeyword": "$label1"}),
    ("FROM alice", {"from": "alice"}),
    ("TO \"alice example\"", {"to": '"alice example"'}),
    ("CC carol", {"cc": "carol"}),
    ("BCC secret", {"bcc": "secret"}),
    ("SUBJECT report", {"subject": "report"}),
    ("BODY uarterl", {"body": "uarterl"}),
    ("HEADER X-Priority \"\"", {"header": ["X-Priority"]}),
    ("HEADER Message-ID m1@", {"header": ["Message-ID", "m1@"]}),
    ("LARGER 4999", {"minSize": 5000}),
    ("SMALLER 5000", {"maxSize": 5000}),
    ("SINCE 3-Jan-2024", {"after": "2024-01-03T00:00:00Z"}),
    ("BEFORE 3-Jan-2024", {"before": "2024-01-03T00:00:00Z"}),
    ("OR FROM bob SUBJECT lunch", {"operator": "OR", "conditions": [{"from": "bob"}, {"subject": "lunch"}]}),
    ("NOT (SEEN LARGER 999)", {"operator": "NOT", "conditions": [{"hasKeyword": "$seen", "minSize": 1000}]}),
]


@pytest.mark.parametrize("keys,f", PAIRS, ids=[p[0] for p in PAIRS])
def test_imap_and_jmap_agree(store, account, corpus, keys, f):
    with store.read(account) as r:
        via_imap = [e for _u, e in search(r, MailboxScope(INBOX), And((imap_cond(keys), imap_cond("UNDELETED"))))]
        via_jmap = search(r, JMAP, And((from_jmap_filter(f), from_jmap_filter({"inMailbox": "M1"}))))
    assert via_imap == via_jmap
    assert via_imap or keys.startswith("BCC") is False


def test_compiled_shapes():
    assert from_jmap_filter(None) == ALL
    assert from_jmap_filter({"hasKeyword": "$Seen"}) == Keyword("$seen")
    assert from_jmap_filter({"notKeyword": "x"}) == Not(Keyword("x"))
    assert from_jmap_filter({"text": "a b"}) == And((Contains("jmaptext", "a"), Contains("jmaptext", "b")))
    assert from_jmap_filter({"header": ["X-A"]}) == Header("X-A", "")
    assert jmap_text_terms('foo "bar \\" baz" \'q\'  x') == ["foo", 'bar " baz', "q", "x"]
    assert jmap_text_terms('"unclosed phrase') == ['"unclosed', "phrase"]


@pytest.mark.parametrize("bad", [
    [], "x", {"minSize": -1}, {"minSize": "1"}, {"hasAttachment": 1}, {"before": "yesterday"},
    {"before": "2024-13-01T00:00:00Z"}, {"hasKeyword": "a(b"}, {"header": []},
    {"header": ["a", "b", "c"]}, {"header": ["bad name"]}, {"inMailboxOtherThan": "M1"},
    {"operator": "XOR", "conditions": []}, {"operator": "AND"},
    {"operator": "AND", "conditions": [], "extra": 1}, {"text": 5},
])
def test_invalid_filters(bad):
    with pytest.raises(InvalidFilterError):
        from_jmap_filter(bad)


def test_unsupported_filter():
    with pytest.raises(UnsupportedFilter) as info:
        from_jmap_filter({"operator": "AND", "conditions": [{"isFlagged": True}]})
    assert info.value.jmap_type == "unsupportedFilter"


def test_sort_parsing():
    keys = from_jmap_sort([{"property": "receivedAt", "isAscending": False},
                           {"property": "hasKeyword", "keyword": "$Flagged"},
                           {"property": "subject", "collation": "i;unicode-casemap"}])
    assert [(k.name, k.reverse, k.keyword) for k in keys] == [
        ("received", True, None), ("hasKeyword", False, "$flagged"), ("subject", False, None)]
    with pytest.raises(UnsupportedSortError):
        from_jmap_sort([{"property": "id"}])
    with pytest.raises(UnsupportedSortError):
        from_jmap_sort([{"property": "subject", "collation": "i;octet"}])
    with pytest.raises(InvalidFilterError):
        from_jmap_sort([{"property": "hasKeyword"}])
    with pytest.raises(InvalidFilterError):
        from_jmap_sort([{"property": "size", "isAscending": "no"}])
