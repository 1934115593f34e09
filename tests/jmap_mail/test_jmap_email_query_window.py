"""Email/query windowing over the receivedAt fast path (``search.engine.query_page``):
the type builds only ``position + limit`` ids when it can (no anchor, position >= 0)
and counts ``calculateTotal`` without decoding Email records.  Hypothesis: every
combination of filter (bare inMailbox / none), sort direction, collapseThreads,
position, anchor/anchorOffset, limit and calculateTotal answers exactly as the general
path (fast path disabled) does; Email/queryChanges too.  The first screen decodes no
Email record."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.model import ids
from dualmail.search import engine
from dualmail.store.txn import ReadView
from tests.conftest import summary
from tests.jmap_mail.jmap_mail_util import ARCHIVE, INBOX, TRASH, mid

N = 40


@pytest.fixture
def emails(store, alice):
    """N Emails in threads (replies to earlier ones), in INBOX/Archive/Trash, some
    memberships IMAP \\Deleted (hidden from JMAP), receivedAt ties."""
    made = []
    with store.write(alice) as tx:
        for n in range(N):
            boxes = [INBOX] if n % 3 else [INBOX, ARCHIVE]
            if n % 7 == 0:
                boxes = [TRASH]
            refs = [f"{n * 5 // 7}@x"] if n % 4 else []
            e, _ = tx.create_email(f"Subject: m{n}\r\n\r\n".encode(), summary(f"{n}@x", "t", references=refs),
                                   boxes, ["$seen"] if n % 2 else [], received=1_700_000_000 + n // 3)
            made.append(e)
        for e in made[::5]:
            tx.set_deleted(e, INBOX, True) if str(INBOX) in tx.require_email(e)["mbx"] else None
    return [ids.format_id(ids.EMAIL, e) for e in made]


def without_fast_path(monkeypatch_ctx):
    monkeypatch_ctx.setattr(engine, "_receivedat_only", lambda scope, cond, keys: False)


def call(client, alice, args):
    return client.api([["Email/query", {"accountId": ids.format_id(ids.ACCOUNT, alice), **args}, "q"]])


filters = st.sampled_from([None, {"inMailbox": mid(INBOX)}, {"inMailbox": mid(ARCHIVE)},
                           {"inMailbox": mid(TRASH)}, {"inMailbox": mid(5)}])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter_=filters, asc=st.booleans(), collapse=st.sampled_from([None, False, True]),
       position=st.none() | st.integers(-45, 45), anchor=st.none() | st.integers(0, N + 2),
       offset=st.none() | st.integers(-4, 4), limit=st.none() | st.integers(0, 12),
       total=st.none() | st.booleans())
def test_windows_equal_general_path(client, alice, emails, filter_, asc, collapse, position, anchor, offset,
                                    limit, total):
    args = {"filter": filter_, "sort": [{"property": "receivedAt", "isAscending": asc}]}
    for name, value in (("collapseThreads", collapse), ("position", position), ("limit", limit),
                        ("calculateTotal", total)):
        if value is not None:
            args[name] = value
    if anchor is not None:
        args.pop("position", None)
        args["anchor"] = emails[anchor] if anchor < N else "Mnosuch"
        if offset is not None:
            args["anchorOffset"] = offset
    fast = call(client, alice, args)
    with pytest.MonkeyPatch.context() as mp:
        without_fast_path(mp)
        slow = call(client, alice, args)
    assert fast == slow


def test_default_sort_and_first_screen(client, alice, emails, monkeypatch):
    """No sort: receivedAt descending (the fast path too); the first screen (inMailbox,
    collapseThreads, limit, calculateTotal) reads no Email record for the query."""
    with pytest.MonkeyPatch.context() as mp:
        without_fast_path(mp)
        want = client.call("Email/query", {"filter": {"inMailbox": mid(INBOX)}, "collapseThreads": True,
                                           "calculateTotal": True}, alice)
    calls = []
    real = ReadView.email

    def counting(self, e):
        calls.append(e)
        return real(self, e)
    monkeypatch.setattr(ReadView, "email", counting)
    for total in (True, False):
        got = client.call("Email/query", {"filter": {"inMailbox": mid(INBOX)}, "collapseThreads": True,
                                          "position": 0, "limit": 5, "calculateTotal": total}, alice)
        assert got["ids"] == want["ids"][:5] and got["position"] == 0
        assert got.get("total") == (want["total"] if total else None)
    assert calls == []
    assert 5 < want["total"] < N


def test_query_changes_unchanged(client, alice, emails):
    q = {"filter": {"inMailbox": mid(INBOX)}, "sort": [{"property": "receivedAt", "isAscending": False}],
         "collapseThreads": True}
    state = client.call("Email/query", {**q, "limit": 3}, alice)["queryState"]
    client.call("Email/set", {"update": {emails[10]: {"mailboxIds": {mid(ARCHIVE): True}},
                                         emails[N - 1]: {"keywords": {"$flagged": True}}}}, alice)
    args = {**q, "sinceQueryState": state, "calculateTotal": True}
    fast = client.call("Email/queryChanges", args, alice)
    with pytest.MonkeyPatch.context() as mp:
        without_fast_path(mp)
        slow = client.call("Email/queryChanges", args, alice)
    assert fast == slow and fast["removed"] and fast["total"] == len(
        client.call("Email/query", q, alice)["ids"])
