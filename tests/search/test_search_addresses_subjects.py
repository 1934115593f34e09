"""Regression tests from imaptest `search-addresses`, `sort-addresses` and `sort-subject`:
address matching with comments, SORT FROM/TO/CC on groups (RFC 5256 §3), and the SORT
collation order of letters against punctuation (RFC 5051 / RFC 4790)."""

from __future__ import annotations

from dualmail.imap.wire.commands import SortCriterion
from dualmail.mail.ops import prepare, store_prepared
from dualmail.search import MailboxScope, search, sort
from dualmail.search.collate import sort_key
from dualmail.search.query import ALL, from_imap_sort
from tests.search.corpus import INBOX, imap_cond, msg


def _store(store, account, heads):
    with store.write(account) as tx:
        for i, head in enumerate(heads):
            store_prepared(tx, prepare(msg(head, "b\n"), (), 1000 + i), [INBOX])


def _search(store, account, text):
    with store.read(account) as r:
        return [u for u, _e in search(r, MailboxScope(INBOX), imap_cond(text))]


def _sort(store, account, *criteria):
    keys = from_imap_sort(SortCriterion(c.removeprefix("REVERSE "), c.startswith("REVERSE "))
                          for c in criteria)
    with store.read(account) as r:
        found = search(r, MailboxScope(INBOX), ALL)
        return [u for u, _e in sort(r, MailboxScope(INBOX), found, keys)]


def test_address_search_ignores_comments(store, account):
    _store(store, account, [
        "From: user-from@domain.org",
        "From: RealFrom <user-from@domain.org>",
        "From: <user-from (comment)@ (comment) domain.org>",
        "From: user-from@domain.org (RealFrom)",
        "From: user-from1@domain.org, user-from2@domain.org",
        "To: groupname: groupuser1@domain.org, groupuser2@domain.org;",
    ])
    assert _search(store, account, "FROM user-from@domain.org") == [1, 2, 3, 4]
    assert _search(store, account, "FROM realfrom") == [2, 4]
    assert _search(store, account, "FROM comment") == [3]  # the raw field still matches
    assert _search(store, account, "TO groupuser2@domain.org") == [6]
    assert _search(store, account, "TO groupname") == [6]


def test_sort_address_key_of_a_group_is_its_name(store, account):
    """RFC 5256 §3: the addr-mailbox of the first address; a group's first envelope
    address is its start marker, whose mailbox is the group name."""
    _store(store, account, [
        "Cc: user2@domain2.org (foo bar)",
        "Cc: user2: blah@domain1.org;",
        "Cc: user1@domain1.org",
    ])
    assert _sort(store, account, "CC") == [3, 1, 2]
    assert _sort(store, account, "REVERSE CC") == [1, 2, 3]
    assert _sort(store, account, "CC", "REVERSE ARRIVAL") == [3, 2, 1]


def test_sort_subject_letters_before_punctuation(store, account):
    """i;ascii-casemap / i;unicode-casemap compare upper (title) case, so "[" and "_"
    (between "Z" and "a") sort after every letter; a subject that is only a blob keeps it."""
    _store(store, account, [
        "Subject: a", "Subject: C", "Subject: _", "Subject: [xyz]", "Subject: Re: b",
    ])
    assert _sort(store, account, "SUBJECT") == [1, 5, 2, 4, 3]
    assert sort_key("abc") < sort_key("[") < sort_key("_") and sort_key("A") == sort_key("a")
