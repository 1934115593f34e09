"""The stored IMAP listing record (``store.listing``, tables ``imapw`` and ``imapb``) and
the listing FETCH fast path (``ops.fetch._listing``).

A FETCH of UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY and
MODSEQ (RFC 9051 §6.4.5, §7.5.2; RFC 7162 §3.1.4) joins bytes rendered at ingest.  The
answer must be byte-identical to what the general renderer makes from the parsed summary,
and a store written before the table existed (no ``imapw`` rows: the old record form)
must be answered byte-identically too; so must one written before ``imapb`` (the
BODYSTRUCTURE alone, read by a FETCH of BODYSTRUCTURE without the other listing parts),
which ``dualmail check --upgrade`` then completes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from dualmail.imap.ops import fetch as fetch_op
from dualmail.mime.parse import summarize
from dualmail.store import keys as K
from dualmail.store import listing
from dualmail.store.check import verify
from dualmail.store.kv import prefix_end

from imap_util import PASSWORD, USER, Client, logged_in

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench"))
import mailgen  # noqa: E402

COMMANDS = [
    "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)",
    "FETCH 1:* (BODYSTRUCTURE)",
    "UID FETCH 1:* (BODYSTRUCTURE)",
    "UID FETCH 3:20 (BODYSTRUCTURE FLAGS)",
    "FETCH 1,3,7:9,40 (FLAGS BODY UID)",
    "UID FETCH 2:12 (FLAGS MODSEQ)",
    "FETCH 2:* (ENVELOPE INTERNALDATE RFC822.SIZE FLAGS)",
    "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
]


def _fill(store: Any, account: int) -> None:
    from dualmail.mail.ops import deliver

    with store.read(account) as v:
        inbox = v.mailbox_by_path(["INBOX"])
    for i, m in enumerate(mailgen.generate_records(40, seed=3)):
        flags = tuple(sorted(m.flags - {"\\Recent"})) + (("$Label1",) if i % 7 == 0 else ())
        deliver(store, account, m.raw, inbox, flags, received=m.date)


def _answers(store: Any) -> list[str]:
    c, other = logged_in(store)
    c.ok("s1 SELECT INBOX")
    other.ok("o1 SELECT INBOX")
    # keywords set elsewhere: the FETCH must first send an updated * FLAGS (RFC 9051 §7.3.5)
    other.ok("o2 STORE 5:9 +FLAGS (\\Deleted NewKeyword)")
    out: list[str] = []
    for i, cmd in enumerate(COMMANDS):
        out.append(c.ok(f"f{i + 1} {cmd}"))
    return out


def _drop_listing_rows(store: Any, account: int, table: str = "imapw") -> int:
    p = K.acct(account)

    def run(w: Any) -> int:
        keys = [k for k, _v in w.range(table, p, prefix_end(p))]
        for k in keys:
            w.delete(table, k)
        return len(keys)

    return store.kv.run_write(run, account)


def test_ingest_writes_the_listing_record(store: Any, account: int) -> None:
    _fill(store, account)
    with store.read(account) as v:
        inbox = v.mailbox_by_path(["INBOX"])
        for _u, e in v.uid_items(inbox):
            rec = v.email(e)
            raw = v.kv.get("imapw", K.email(account, e))
            assert raw is not None and raw[0] == listing.VERSION
            assert listing.parse(raw) == listing.render(v.summary(e), int(rec["recv"]))
            assert v.kv.get("imapb", K.email(account, e)) == listing.parse(raw).bodystructure


def _twin(tmp_path: Any) -> tuple[Any, int]:
    from dualmail.store.store import open_store

    s = open_store(str(tmp_path / "twin"), sync=False)
    a = s.create_account(USER, PASSWORD)
    _fill(s, a)
    return s, a


def test_fast_path_is_byte_identical_to_the_renderer(store: Any, account: int, tmp_path: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store, account)
    twin, _a = _twin(tmp_path)
    try:
        fast = _answers(store)
        monkeypatch.setattr(fetch_op, "_LISTING", frozenset())  # every FETCH through _render
        assert _answers(twin) == fast
    finally:
        twin.close()
    assert any("* FLAGS (" in a and "NewKeyword" in a for a in fast)
    assert fast[0].count(" FETCH (") == 40


def test_old_records_are_served_byte_identically(store: Any, account: int, tmp_path: Any) -> None:
    """A store written before ``imapw`` existed: the rows are rendered from the summary."""
    _fill(store, account)
    twin, a2 = _twin(tmp_path)
    try:
        assert _drop_listing_rows(twin, a2) == 40
        assert _answers(twin) == _answers(store)
    finally:
        twin.close()


def _structures(store: Any) -> list[str]:
    c = Client(store)
    c.login()
    c.ok("b1 SELECT INBOX")
    return [c.ok("b2 UID FETCH 1:* (BODYSTRUCTURE)"), c.ok("b3 FETCH 1:* (BODYSTRUCTURE)")]


def test_older_bodystructure_rows_are_served_byte_identically_and_upgraded(
        store: Any, account: int, tmp_path: Any) -> None:
    """A store written before ``imapb`` existed (imapw rows only): the BODYSTRUCTURE-only
    FETCH reads imapw as before, byte-identically; ``check --upgrade`` writes the rows,
    which ``verify`` checks against imapw."""
    from dualmail.store.check import upgrade

    _fill(store, account)
    twin, a2 = _twin(tmp_path)
    try:
        assert _drop_listing_rows(twin, a2, "imapb") == 40
        expect = _answers(store)
        assert _answers(twin) == expect
        with twin.read(a2) as v:
            assert verify(v) == []
        assert upgrade(twin, a2) == ["40 emails: BODYSTRUCTURE stored"]
        assert upgrade(twin, a2) == []
        p = K.acct(a2)
        with twin.kv.read() as r:
            assert len(list(r.range("imapb", p, prefix_end(p)))) == 40
        assert _structures(twin) == _structures(store)
        with twin.read(a2) as v:
            assert verify(v) == []
            e = next(iter(v.uid_items(v.mailbox_by_path(["INBOX"]))))[1]
        twin.kv.run_write(lambda w: w.put("imapb", K.email(a2, e), b"NIL"), a2)
        with twin.read(a2) as v:
            assert verify(v) == [f"stored BODYSTRUCTURE of email {e} is not its listing record's"]
    finally:
        twin.close()


def test_copy_and_expunge_keep_the_table_consistent(store: Any, account: int) -> None:
    _fill(store, account)
    c = Client(store)
    c.login()
    c.ok("c1 SELECT INBOX")
    c.ok("c2 CREATE Other")
    c.ok("c3 UID COPY 1:5 Other")
    c.ok("c4 UID COPY 1:3 INBOX")  # onto itself: new Emails (CONTRACT §2)
    listing_before = c.ok("c5 UID FETCH 41:* (ENVELOPE BODYSTRUCTURE INTERNALDATE)")
    assert listing_before.count(" FETCH (") == 3
    with store.read(account) as v:
        assert verify(v) == []
    c.ok("c6 STORE 1:* +FLAGS.SILENT (\\Deleted)")
    c.ok("c7 EXPUNGE")
    c.ok("c8 SELECT Other")
    c.ok("c9 STORE 1:* +FLAGS.SILENT (\\Deleted)")
    c.ok("c10 EXPUNGE")
    p = K.acct(account)
    with store.kv.read() as r:
        assert list(r.range("imapw", p, prefix_end(p))) == []
        assert list(r.range("imapb", p, prefix_end(p))) == []


def _out_of_step(store: Any) -> list[str]:
    """A mailbox whose Emails are not in UID order (COPY of older messages after newer
    ones), between whose Emails lie Emails of another mailbox, with a ghost (expunged by
    another session, not yet told): every step of ``_listing_indexed``'s lookups that is
    not the plain in-step range read."""
    c, other = logged_in(store)
    c.ok("s1 CREATE Other")
    c.ok("s2 SELECT INBOX")
    c.ok("s3 COPY 30:40 Other")
    c.ok("s4 COPY 1,3,5,7,9 Other")  # Emails 1..9 after 30..40: out of step
    c.ok("s5 SELECT Other")
    other.ok("o1 SELECT Other")
    other.ok("o2 STORE 4 +FLAGS.SILENT (\\Deleted)")
    other.ok("o3 EXPUNGE")  # c still has it: a ghost
    # a FETCH by number may not announce the expunge (RFC 9051 §7.5.1): the ghost stays
    out = [c.cmd("g0 FETCH 1:* (UID BODYSTRUCTURE ENVELOPE)")]
    out += [c.cmd(f"f{i} {cmd}") for i, cmd in enumerate(COMMANDS[:5])]
    c.ok("g4 SELECT INBOX")
    out.append(c.ok("g5 FETCH 2,4,6,8,10,30:33 (UID BODYSTRUCTURE)"))  # sparse: looked up by key
    c.ok("h1 CREATE Swapped")
    for seq in (1, 3, 2, 4):  # Emails 1 3 2 4: the range read holds as many, out of step
        c.ok(f"h{seq + 1} COPY {seq} Swapped")
    c.ok("h9 CREATE Spread")
    c.ok("h10 COPY 1,3 Spread")  # the range read holds Emails 1..3: more than the mailbox
    for box in ("Swapped", "Spread"):
        c.ok(f"i1 SELECT {box}")
        out.append(c.ok("i2 FETCH 1:* (UID ENVELOPE BODYSTRUCTURE)"))
    for box in ("Swapped", "Spread"):  # BODYSTRUCTURE alone: the imapb rows
        c.ok(f"j1 SELECT {box}")
        out.append(c.ok("j2 FETCH 1:* (UID BODYSTRUCTURE)"))
        out.append(c.ok("j3 UID FETCH 1:* (BODYSTRUCTURE)"))
    return out


def test_out_of_step_listing_is_byte_identical_to_the_renderer(
        store: Any, account: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store, account)
    twin, _a = _twin(tmp_path)
    try:
        looked_up: list[int] = []
        by_email = fetch_op._by_email
        monkeypatch.setattr(fetch_op, "_by_email", lambda items: looked_up.append(len(items)) or by_email(items))
        fast = _out_of_step(store)
        # Swapped (out of step), Spread (rows of other mailboxes); then BODYSTRUCTURE alone:
        # Swapped's imapb rows out of step, Spread's more than the mailbox (imapw then)
        assert looked_up == [4, 3, 4, 4, 3, 3]
        monkeypatch.setattr(fetch_op, "_LISTING", frozenset())
        assert _out_of_step(twin) == fast
    finally:
        twin.close()
    assert "* 4 EXPUNGE" not in fast[0] and fast[0].count(" FETCH (") == 15
    assert "[EXPUNGEISSUED]" in fast[0]
    assert fast[1].count(" FETCH (") == 15 and "* 4 EXPUNGE" in fast[1]
    assert fast[-7].count(" FETCH (") == 9
    assert fast[-6].count(" FETCH (") == 4 and fast[-5].count(" FETCH (") == 2
    assert [a.count(" FETCH (") for a in fast[-4:]] == [4, 4, 2, 2]


@settings(max_examples=60, deadline=None)
@given(recv=st.integers(0, 253402300799), subject=st.text(max_size=40),
       name=st.text(max_size=20))
def test_record_round_trip(recv: int, subject: str, name: str) -> None:
    raw = (f"From: {name} <a@example.org>\r\nSubject: {subject}\r\n\r\nbody\r\n"
           .encode("utf-8", "surrogateescape"))
    s = summarize(raw)
    rec = listing.record(recv, listing.static_parts(s))
    assert listing.parse(rec) == listing.render(s, recv)


def test_unrenderable_summary_stores_nothing() -> None:
    assert listing.static_parts({}) == b""
    assert listing.parse(b"") is None and listing.parse(b"\x09junk") is None
