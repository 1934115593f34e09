"""How many read views an IMAP command opens (2026-12-07): a read view is two round trips
on PostgreSQL (``BEGIN`` with the first statement, ``COMMIT``), so the per-command check
"did the selected mailbox change?" reads the mailbox's latest record outside any view
(``Store.mailbox_record``: one round trip) and opens a view only when it did; SELECT
answers from one view when there is no \\Recent to claim.  Behaviour is unchanged: what
another session changed is still told at the next command (RFC 9051 §5.2, §7)."""

from __future__ import annotations

from typing import Any

import pytest

from imap_util import Client, deliver


class _Views:
    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = 0
        read = store.read

        def counted(account: int) -> Any:
            self.opened += 1
            return read(account)

        monkeypatch.setattr(store, "read", counted)


def test_a_command_on_an_unchanged_mailbox_opens_no_read_view_of_its_own(store, account, monkeypatch):
    deliver(store, account)
    c = Client(store)
    c.login()
    c.ok("a1 SELECT INBOX")
    views = _Views(store, monkeypatch)
    records = []
    real = store.mailbox_record
    monkeypatch.setattr(store, "mailbox_record", lambda *a: records.append(a) or real(*a))
    c.ok("a2 NOOP")
    c.ok("a3 CHECK")
    assert views.opened == 0  # each "changed?" check answered by mailbox_record
    assert len(records) == 2  # NOOP and CHECK only poll: one check each, after the command


def test_what_another_session_changed_is_still_told_at_the_next_command(store, account, monkeypatch):
    deliver(store, account)
    a, b = Client(store), Client(store)
    for c in (a, b):
        c.login()
        c.ok("s SELECT INBOX")
    views = _Views(store, monkeypatch)
    b.ok("b1 STORE 1 +FLAGS.SILENT (\\Flagged)")
    out = a.ok("a1 NOOP")
    assert "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))" in out
    deliver(store, account)
    out = a.ok("a2 NOOP")
    assert "* 2 EXISTS" in out
    b.ok("b2 STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("b3 EXPUNGE")
    assert "* 1 EXPUNGE" in a.ok("a3 NOOP")
    assert views.opened > 0  # the changes were read in views


def test_select_without_recent_to_claim_opens_one_view(store, account, monkeypatch):
    deliver(store, account)
    c = Client(store)
    c.login()
    c.ok("a1 SELECT INBOX")  # claims \\Recent: a write, then a view
    views = _Views(store, monkeypatch)
    out = c.ok("a2 SELECT INBOX")  # nothing new to claim
    assert "* 1 EXISTS" in out and "* 0 RECENT" in out
    assert views.opened == 1
    views.opened = 0
    out = c.ok("a3 EXAMINE INBOX")
    assert "[READ-ONLY]" in out and views.opened == 1


def test_select_of_an_unchanged_mailbox_does_not_read_its_first_unseen_again(store, account, monkeypatch):
    """[UNSEEN n] (RFC 3501 §7.1) is remembered with the mailbox's HIGHESTMODSEQ: a client
    that reconnects to an unchanged mailbox costs no read of the ``unseen`` index, and any
    change (here \\Seen set by another session on the first unseen message) is seen."""
    from dualmail.store import imapidx
    for _ in range(3):
        deliver(store, account)
    calls = []
    real = imapidx.first_unseen
    monkeypatch.setattr(imapidx, "first_unseen", lambda *a: calls.append(a) or real(*a))
    c, other = Client(store), Client(store)
    for x in (c, other):
        x.login()
    c.ok("a1 SELECT INBOX")
    out = c.ok("a2 SELECT INBOX")
    assert "[UNSEEN 1]" in out and len(calls) <= 1
    n = len(calls)
    assert "[UNSEEN 1]" in c.ok("a3 EXAMINE INBOX") and len(calls) == n
    other.ok("b1 SELECT INBOX")
    other.ok("b2 STORE 1 +FLAGS.SILENT (\\Seen)")
    assert "[UNSEEN 2]" in c.ok("a4 SELECT INBOX") and len(calls) == n + 1


def test_search_checks_the_mailbox_after_from_its_own_view(store, account, monkeypatch):
    """SEARCH opens one read view and reads nothing else: the check for changes is made
    after it, from the mailbox record that view holds.  It answers among the messages the
    session knows (RFC 9051 §7.1: a UID the client was never told of is not in the result)
    and tells what arrived after the result, in the same response, as Dovecot does."""
    deliver(store, account)
    a, b = Client(store), Client(store)
    for c in (a, b):
        c.login()
        c.ok("s SELECT INBOX")
    latest = []
    real = store.mailbox_record
    monkeypatch.setattr(store, "mailbox_record", lambda *x: latest.append(x) or real(*x))
    views = _Views(store, monkeypatch)
    assert "* SEARCH 1\r\n" in a.ok("a1 UID SEARCH ALL")
    assert views.opened == 1 and latest == []
    deliver(store, account)
    out = a.ok("a2 UID SEARCH ALL")
    assert out.index("* SEARCH 1\r\n") < out.index("* 2 EXISTS")
    assert "* SEARCH 1 2\r\n" in a.ok("a3 UID SEARCH ALL")
    b.ok("b2 STORE 1 +FLAGS.SILENT (\\Seen)")
    latest.clear()  # (b's own checks)
    out = a.ok("a4 SEARCH SEEN")
    assert "* SEARCH 1\r\n" in out and "* 1 FETCH (UID 1 FLAGS (\\Seen" in out
    assert latest == []  # never a separate "did it change?" read around SEARCH
