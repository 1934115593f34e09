"""SORT (RFC 5256 §3, RFC 5957), JMAP sorts and collapseThreads (RFC 8621 §4.4.2-3),
and THREAD=ORDEREDSUBJECT / THREAD=REFERENCES (RFC 5256 §3)."""

from __future__ import annotations

import pytest

from dualmail.imap.wire.commands import SortCriterion
from dualmail.mail.ops import prepare, store_prepared
from dualmail.search import (
    JMAP, MailboxScope, collapse_threads, format_threads, query, search, sort, thread,
)
from dualmail.search.query import ALL, InMailbox, SortKey, from_imap_sort, from_jmap_sort
from dualmail.search.thread import ThreadNode, is_reply_or_forward
from tests.search.corpus import INBOX, msg


def imap_sort(store, account, *criteria):
    keys = from_imap_sort(SortCriterion(c.removeprefix("REVERSE "), c.startswith("REVERSE ")) for c in criteria)
    with store.read(account) as r:
        found = search(r, MailboxScope(INBOX), ALL)
        return [u for u, _e in sort(r, MailboxScope(INBOX), found, keys)]


SORTS = [
    (("SUBJECT",), [7, 11, 12, 9, 10, 1, 3, 8, 2, 5, 4, 6]),
    # REVERSE reverses the criterion, not the implicit sequence-number tie-break
    (("REVERSE SUBJECT",), [6, 4, 5, 2, 1, 3, 8, 10, 9, 12, 11, 7]),
    (("SUBJECT", "REVERSE DATE"), [7, 11, 12, 9, 10, 8, 3, 1, 2, 5, 4, 6]),
    (("DATE",), [2, 1, 3, 8, 4, 5, 6, 9, 7, 10, 11, 12]),  # no Date: INTERNALDATE (7)
    (("ARRIVAL",), list(range(1, 13))),
    (("REVERSE ARRIVAL",), list(range(12, 0, -1))),
    (("FROM",), [1, 10, 12, 4, 3, 5, 8, 9, 2, 7, 11, 6]),  # addr-mailbox
    (("CC",), [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 2]),  # absent: "" sorts first
    (("TO",), [7, 2, 3, 4, 6, 8, 9, 11, 1, 12, 10, 5]),
    (("DISPLAYTO",), [7, 3, 8, 2, 4, 6, 9, 11, 1, 12, 10, 5]),  # name, else address
    (("DISPLAYFROM", "REVERSE ARRIVAL"), [12, 10, 1, 4, 3, 5, 8, 9, 2, 7, 11, 6]),
]


@pytest.mark.parametrize("criteria,expected", SORTS, ids=[" ".join(s[0]) for s in SORTS])
def test_imap_sort(store, account, corpus, criteria, expected):
    assert imap_sort(store, account, *criteria) == expected


def test_sort_size(store, account, corpus):
    order = imap_sort(store, account, "SIZE")
    with store.read(account) as r:
        sizes = [r.email(corpus[u])["size"] for u in order]
    assert sizes == sorted(sizes) and order[-1] == 9


def test_jmap_sorts(store, account, corpus):
    back = {e: n for n, e in corpus.items()}

    def run(comparators, collapse=False):
        with store.read(account) as r:
            found = search(r, JMAP, ALL)
            out = sort(r, JMAP, found, from_jmap_sort(comparators))
            if collapse:
                out = collapse_threads(r, out)
        return [back[e] for e in out]

    # the RFC 8621 §4.4.2 example
    assert run([{"property": "someInThreadHaveKeyword", "keyword": "$flagged", "isAscending": False},
                {"property": "subject", "collation": "i;ascii-casemap"},
                {"property": "receivedAt", "isAscending": False}]) == [8, 3, 1, 7, 12, 9, 10, 2, 5, 4, 6]
    assert run([{"property": "receivedAt", "isAscending": False}]) == [12, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert run([{"property": "receivedAt", "isAscending": False}], True) == [12, 10, 9, 8, 7, 6, 5, 4, 2]
    assert run([{"property": "hasKeyword", "keyword": "$seen"}]) == [2, 4, 5, 7, 8, 9, 12, 1, 3, 6, 10]
    assert run([{"property": "allInThreadHaveKeyword", "keyword": "$seen", "isAscending": False}])[:2] == [6, 10]
    assert run([{"property": "from"}]) == [1, 10, 12, 4, 3, 5, 8, 9, 2, 7, 6]
    assert run([{"property": "sentAt"}]) == [2, 1, 3, 8, 4, 5, 6, 9, 7, 10, 12]
    assert run([{"property": "size", "isAscending": False}])[0] == 9
    assert run([]) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]  # ties: by id


def test_query_fast_path_matches_general_path(store, account, corpus):
    with store.read(account) as r:
        for rev in (False, True):
            keys = [SortKey("received", rev)]
            general = sort(r, JMAP, search(r, JMAP, InMailbox(INBOX)), keys)
            assert query(r, JMAP, InMailbox(INBOX), keys) == general
            assert query(r, JMAP, ALL, keys) == sort(r, JMAP, search(r, JMAP, ALL), keys)
            assert query(r, JMAP, InMailbox(INBOX), keys, collapse=True) == collapse_threads(r, general)
        assert query(r, JMAP, InMailbox(-1), [SortKey("received")]) == []


def test_equal_receivedat_ties_by_id(store, account):
    raw = msg("From: a@b\nSubject: same", "x\n")
    with store.write(account) as tx:
        es = [store_prepared(tx, prepare(raw, (), 5000), [INBOX])[0] for _ in range(4)]
    with store.read(account) as r:
        assert query(r, JMAP, InMailbox(INBOX), [SortKey("received", True)]) == es
        assert sort(r, JMAP, es[::-1], [SortKey("received", True)]) == es


# -- THREAD -------------------------------------------------------------------------------


def test_format_threads_rfc5256_examples():
    n = ThreadNode
    tree = [n(2), n(3, [n(6, [n(4, [n(23)]), n(44, [n(7, [n(96)])])])])]
    assert format_threads(tree) == "(2)(3 6 (4 23)(44 7 96))"
    assert format_threads([n(None, [n(3), n(5)])]) == "((3)(5))"
    assert format_threads([]) == ""


def test_thread_corpus(store, account, corpus):
    with store.read(account) as r:
        found = search(r, MailboxScope(INBOX), ALL)
        assert format_threads(thread(r, MailboxScope(INBOX), found, "REFERENCES")) == \
            "(2)(1 3 8)(4)(5)(6)(9)(7)(10)(11)(12)"
        assert format_threads(thread(r, MailboxScope(INBOX), found, "ORDEREDSUBJECT")) == \
            "(2)(1 (3)(8))(4)(5)(6)(9)(7)(10)(11)(12)"
        # the thread of a search result only holds the matching messages
        some = [x for x in found if x[0] in (1, 8)]
        assert format_threads(thread(r, MailboxScope(INBOX), some, "REFERENCES")) == "(1 8)"


def _thread(store, account, specs, algorithm="REFERENCES"):
    with store.write(account) as tx:
        for i, (mid, subject, day, refs) in enumerate(specs):
            head = f"From: x@y\nSubject: {subject}\nDate: {day:02d} Feb 2024 10:00:00 +0000"
            if mid:
                head += f"\nMessage-ID: <{mid}>"
            if refs:
                head += "\nReferences: " + " ".join(f"<{x}>" for x in refs)
            store_prepared(tx, prepare(msg(head, "b\n"), (), 1000 + i), [INBOX])
    with store.read(account) as r:
        found = search(r, MailboxScope(INBOX), ALL)
        return format_threads(thread(r, MailboxScope(INBOX), found, algorithm))


def test_references_reply_by_subject_becomes_child(store, account):
    assert _thread(store, account, [("a", "hello", 1, None), ("b", "Re: hello", 2, None)]) == "(1 2)"


def test_references_same_subject_no_replies_get_a_dummy(store, account):
    assert _thread(store, account, [("a", "hello", 1, None), ("b", "hello", 2, None)]) == "((1)(2))"


def test_references_missing_parent_keeps_dummy_at_root(store, account):
    specs = [("x", "Re: topic", 2, ["p"]), ("y", "Re: other", 3, ["p"]), ("z", "alone", 1, None)]
    assert _thread(store, account, specs) == "(3)((1)(2))"


def test_references_loop_and_duplicates(store, account):
    specs = [("a", "s1", 1, ["b"]), ("b", "s2", 2, ["a"]), ("a", "s3", 3, None), (None, "s4", 4, ["a"])]
    # a's References name b, b's name a: the second link would make a loop and is not made;
    # the second "a" gets a unique id; the id-less message replies to the first a
    assert _thread(store, account, specs) == "(2 1 4)(3)"


def test_references_truncated_chain_and_sibling_sort(store, account):
    specs = [("r", "root", 1, None), ("c2", "Re: root", 5, ["r"]), ("c1", "Re: root", 3, ["r"]),
             ("g", "Re: root", 4, ["r", "c1"])]
    assert _thread(store, account, specs) == "(1 (3 4)(2))"


def test_ordered_subject_example(store, account):
    specs = [("a", "Re: apples", 3, None), ("b", "pears", 1, None), ("c", "apples", 2, None),
             ("d", "Fwd: APPLES", 4, None)]
    assert _thread(store, account, specs, "ORDEREDSUBJECT") == "(2)(3 (1)(4))"


@pytest.mark.parametrize("subject,reply", [
    ("Re: x", True), ("RE: [list] x", True), ("[list] Re: x", True), ("Fwd: x", True),
    ("fw: x", True), ("x (fwd)", True), ("[Fwd: x]", True), ("x", False), ("Reply", False),
    ("[list] x", False), ("", False),
])
def test_is_reply_or_forward(subject, reply):
    assert is_reply_or_forward(subject) is reply
