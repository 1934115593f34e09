"""LMTP delivery over a real store: the core with ``StoreDelivery`` as its handler.

Address -> account rules (no way into another account), plus-addressing, the trace
fields, one Email per account per message, per-recipient replies (RFC 2033 §4.2), the
``after_delivery`` hook, and that refused input changes nothing (modseq, counts, check)."""

from __future__ import annotations

import pytest

from dualmail.lmtp.core import Address, Limits, LMTPSession
from dualmail.lmtp.delivery import StoreDelivery, find_tagged_mailbox
from dualmail.store.check import all_emails, verify

from lmtp_util import OTHER, PASSWORD, USER

MSG = (b"From: Carol <carol@example.net>\r\nTo: alice@example.org\r\nSubject: Lunch\r\n"
       b"Message-ID: <lunch-1@example.net>\r\n\r\nAt noon?\r\n")


@pytest.fixture
def accounts(store):
    return store.create_account(USER, PASSWORD), store.create_account(OTHER, PASSWORD)


@pytest.fixture
def hooks():
    return []


@pytest.fixture
def lmtp(store, accounts, hooks):
    def make(**limits):
        handler = StoreDelivery(store, hostname="mx.test", peer="127.0.0.1:4321",
                                after_delivery=lambda *a: hooks.append(a), now=lambda: 1_700_000_000)
        s = LMTPSession(handler, "mx.test", Limits(**limits))
        s.receive(b"LHLO postfix.test\r\n")
        return s
    return make


def transaction(sender: str, rcpts: list[str], data: bytes) -> bytes:
    out = f"MAIL FROM:<{sender}>\r\n".encode()
    out += b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
    return out + b"DATA\r\n" + data + b".\r\n"


def replies(out: bytes) -> list[str]:
    return [ln for ln in out.decode().split("\r\n") if ln and not ln.startswith(("354", "250 2.1."))]


def snapshot(store, a):
    with store.read(a) as v:
        return v.account()["modseq"], {m["name"]: m["counts"] for m in v.mailboxes()}, sorted(all_emails(v))


def emails(store, a):
    with store.read(a) as v:
        out = {}
        for e, rec in all_emails(v).items():
            boxes = {v.mailbox(int(m))["name"] for m in rec["mbx"]}
            out[e] = (boxes, v.blob(rec["blob"]))
        return out


def mailbox_id(store, a, name):
    with store.read(a) as v:
        return next(int(m["id"]) for m in v.mailboxes() if m["name"] == name)


def test_delivery_prepends_trace_fields_and_lands_in_inbox(store, accounts, lmtp, hooks):
    a, _b = accounts
    before = snapshot(store, a)[0]
    out = lmtp().receive(transaction("carol@example.net", [USER], MSG))
    assert replies(out) == ["250 2.0.0 <alice@example.org> delivered"]
    [(e, (boxes, raw))] = emails(store, a).items()
    assert boxes == {"INBOX"}
    assert raw == (b"Return-Path: <carol@example.net>\r\nDelivered-To: alice@example.org\r\n"
                   b"Received: from postfix.test (127.0.0.1:4321)\r\n\tby mx.test (dualmail) with LMTP;\r\n"
                   b"\tTue, 14 Nov 2023 22:13:20 -0000\r\n") + MSG
    with store.read(a) as v:
        acct = v.account()
        inbox = v.mailbox(mailbox_id(store, a, "INBOX"))
        assert acct["modseq"] == before + 1  # one transaction, one modseq
        assert inbox["counts"]["msgs"] == 1 and inbox["counts"]["unseen"] == 1
        assert v.changes("Email", before).created == [e]
        assert verify(v) == []
    assert hooks == [(a, e, raw, "carol@example.net")]


def test_null_sender_gives_empty_return_path(store, accounts, lmtp, hooks):
    lmtp().receive(transaction("", [USER], MSG))
    [(_e, (_b, raw))] = emails(store, accounts[0]).items()
    assert raw.startswith(b"Return-Path: <>\r\n")
    assert hooks[0][3] == ""


def test_threading_joins_a_reply_to_its_parent(store, accounts, lmtp):
    s = lmtp()
    s.receive(transaction("carol@example.net", [USER], MSG))
    reply = (b"From: Carol <carol@example.net>\r\nSubject: Re: Lunch\r\nMessage-ID: <lunch-2@example.net>\r\n"
             b"In-Reply-To: <lunch-1@example.net>\r\n\r\nOr one?\r\n")
    s.receive(transaction("carol@example.net", [USER], reply))
    with store.read(accounts[0]) as v:
        threads = {rec["thread"] for rec in all_emails(v).values()}
    assert len(threads) == 1


@pytest.mark.parametrize("rcpt", ["ALICE@EXAMPLE.ORG", "alice@Example.Org", '"alice"@example.org',
                                  "<@relay.example:alice@example.org"])
def test_case_quoting_and_source_routes_reach_the_same_account(store, accounts, lmtp, rcpt):
    path = rcpt[1:] if rcpt.startswith("<") else rcpt
    out = lmtp().receive(transaction("x@y.z", [path], MSG))
    assert "250 2.0.0" in replies(out)[0]
    assert len(emails(store, accounts[0])) == 1 and emails(store, accounts[1]) == {}


@pytest.mark.parametrize("rcpt", [
    '"alice@example.org"@example.org',  # a quoted "@" names no account
    '"bob@example.org"@example.org',
    '"alice "@example.org', "alice@example.org.example.org", "alice@[127.0.0.1]", "alice@example.org.invalid",
    "+alice@example.org", "nobody+alice@example.org", "alice.@example.org", "postmaster@example.org",
])
def test_no_other_address_reaches_an_account(store, accounts, lmtp, rcpt):
    before = [snapshot(store, a) for a in accounts]
    out = lmtp().receive(transaction("x@y.z", [rcpt], MSG))
    assert replies(out)[0].startswith(("550 5.1.1", "501 5.1.3")), out
    assert [snapshot(store, a) for a in accounts] == before


def test_plus_tag_names_a_mailbox_case_insensitively(store, accounts, lmtp):
    a = accounts[0]
    with store.write(a) as tx:
        lists = tx.create_mailbox("Lists")
        tx.create_mailbox("IETF", lists)
    s = lmtp()
    for tag, want in [("archive", "Archive"), ("lists/ietf", "IETF"), ("LISTS", "Lists"), ("nosuch", "INBOX"),
                      ("", "INBOX"), ("drafts", "INBOX"), ("sent", "INBOX"), ("inbox", "INBOX")]:
        out = s.receive(transaction("x@y.z", [f"alice+{tag}@example.org"], MSG))
        assert replies(out) == [f"250 2.0.0 <alice+{tag}@example.org> delivered"]
    got = sorted(next(iter(b)) for b, _raw in emails(store, a).values())
    assert got == sorted(["Archive", "IETF", "Lists", "INBOX", "INBOX", "INBOX", "INBOX", "INBOX"])
    with store.read(a) as v:
        assert verify(v) == []


def test_an_account_named_with_a_plus_wins_over_plus_addressing(store, accounts, lmtp):
    c = store.create_account("alice+work@example.org", PASSWORD)
    lmtp().receive(transaction("x@y.z", ["alice+work@example.org"], MSG))
    assert len(emails(store, c)) == 1 and emails(store, accounts[0]) == {}


def test_two_addresses_of_one_user_make_one_email_with_a_reply_each(store, accounts, lmtp, hooks):
    a, b = accounts
    out = lmtp().receive(transaction("x@y.z", [USER, "bob@example.org", "Alice+Archive@example.org", USER], MSG))
    assert replies(out) == ["250 2.0.0 <alice@example.org> delivered", "250 2.0.0 <bob@example.org> delivered",
                            "250 2.0.0 <Alice+Archive@example.org> delivered",
                            "250 2.0.0 <alice@example.org> delivered"]
    [(boxes, raw)] = emails(store, a).values()
    assert boxes == {"INBOX", "Archive"}
    assert raw.count(b"Delivered-To: ") == 2
    assert b"Delivered-To: alice@example.org\r\nDelivered-To: Alice+Archive@example.org\r\n" in raw
    [(bboxes, braw)] = emails(store, b).values()
    assert bboxes == {"INBOX"} and b"Delivered-To: bob@example.org\r\n" in braw
    assert b"alice" not in braw.split(b"\r\n\r\n")[0].split(b"Received:")[0]  # no other user's address
    assert [h[0] for h in hooks] == [a, b]


def test_a_failing_account_gets_451_and_the_others_are_delivered(store, accounts, lmtp, monkeypatch):
    """The accounts' parts share one transaction (group commit); one failing inside it
    makes each part run alone, so only that account's recipients get 451."""
    a, b = accounts
    real = StoreDelivery._write_for

    def flaky(self, account, raw, wanted):
        write = real(self, account, raw, wanted)
        if account != a:
            return write

        def fail(tx):
            write(tx)  # its changes are made, then rolled back
            raise OSError("disk on fire")

        return fail

    monkeypatch.setattr(StoreDelivery, "_write_for", flaky)
    before = snapshot(store, a)
    out = lmtp().receive(transaction("x@y.z", [USER, OTHER, USER], MSG))
    assert replies(out) == ["451 4.3.0 Local error in processing; try again later", "250 2.0.0 <bob@example.org> delivered",
                            "451 4.3.0 Local error in processing; try again later"]
    assert snapshot(store, a) == before and len(emails(store, b)) == 1


def test_several_accounts_one_synced_commit(store, accounts, lmtp, monkeypatch):
    """RFC 2033 §4.2 replies per recipient, after ONE store transaction for all the
    accounts (one fsync), each account's modseq moved once; IMAP/JMAP listeners hear of
    every account's commit."""
    a, b = accounts
    heard = []
    store.subscribe(lambda c: heard.append(c.account))
    writes = []
    real = store.kv.run_write
    monkeypatch.setattr(store.kv, "run_write", lambda fn, acct: writes.append(acct) or real(fn, acct))
    modseqs = [snapshot(store, x)[0] for x in (a, b)]
    out = lmtp().receive(transaction("x@y.z", [USER, OTHER], MSG))
    assert replies(out) == ["250 2.0.0 <alice@example.org> delivered", "250 2.0.0 <bob@example.org> delivered"]
    assert writes == [None]  # one transaction, several accounts
    assert [snapshot(store, x)[0] for x in (a, b)] == [m + 1 for m in modseqs]
    assert sorted(heard) == sorted([a, b])


def test_a_failing_hook_does_not_undo_the_delivery(store, accounts):
    def boom(*a):
        raise RuntimeError("vacation broke")

    s = LMTPSession(StoreDelivery(store, after_delivery=boom), "mx.test")
    s.receive(b"LHLO c\r\n")
    out = s.receive(transaction("x@y.z", [USER], MSG))
    assert replies(out) == ["250 2.0.0 <alice@example.org> delivered"]
    assert len(emails(store, accounts[0])) == 1


def test_a_mailbox_deleted_between_rcpt_and_data_falls_back_to_inbox(store, accounts, lmtp):
    a = accounts[0]
    with store.write(a) as tx:
        m = tx.create_mailbox("Gone")
    s = lmtp()
    s.receive(b"MAIL FROM:<x@y.z>\r\nRCPT TO:<alice+gone@example.org>\r\n")
    with store.write(a) as tx:
        tx.delete_mailbox(m, remove_emails=True)
    out = s.receive(b"DATA\r\n" + MSG + b".\r\n")
    assert replies(out) == ["250 2.0.0 <alice+gone@example.org> delivered"]
    [(boxes, _raw)] = emails(store, a).values()
    assert boxes == {"INBOX"}


@pytest.mark.parametrize("data, reply", [
    (b"Subject: x\r\n\r\nbare\nLF\r\n", "554 5.6.0 Message contains a bare CR or LF (RFC 5321 section 2.3.8)"),
    (b"Subject: x\r\n\r\nNUL\x00\r\n", "554 5.6.0 Message contains NUL octets (8BITMIME data has none)"),
    (b"Subject: x\r\n\r\n" + b"y" * 1200 + b"\r\n", "554 5.6.0 Message has a line over 1000 octets (RFC 5321 section 4.5.3.1.6)"),
    (b"Subject: x\r\n\r\n" + (b"z" * 900 + b"\r\n") * 3, "552 5.3.4 Message size exceeds fixed maximum message size"),
])
def test_refused_data_changes_nothing(store, accounts, lmtp, hooks, data, reply):
    before = [snapshot(store, a) for a in accounts]
    out = lmtp(max_message_size=2000).receive(transaction("x@y.z", [USER, OTHER], data) + b"NOOP\r\n")
    assert replies(out) == [reply, reply, "250 2.0.0 Ok"]
    assert [snapshot(store, a) for a in accounts] == before and hooks == []
    for a in accounts:
        with store.read(a) as v:
            assert verify(v) == []


def test_size_declared_over_the_limit_is_refused_at_mail(store, accounts, lmtp):
    before = snapshot(store, accounts[0])
    out = lmtp(max_message_size=1000).receive(
        b"MAIL FROM:<x@y.z> SIZE=1001\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
    assert out == (b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"
                   b"503 5.5.1 Need MAIL before RCPT\r\n503 5.5.1 Need MAIL before DATA\r\n")
    assert snapshot(store, accounts[0]) == before


def test_disconnect_mid_data_delivers_nothing(store, accounts, lmtp, hooks):
    before = snapshot(store, accounts[0])
    s = lmtp()
    s.receive(b"MAIL FROM:<x@y.z>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + MSG[:40])
    s.connection_lost()
    assert snapshot(store, accounts[0]) == before and hooks == []


def test_1000_recipients_of_one_user(store, accounts, lmtp):
    # RFC 5321 §4.5.3.1.8: at most RCPTMAX (100) accepted, the rest 452 4.5.3; the
    # accepted ones of one account are one Email.
    rcpts = [f"alice+t{i}@example.org" for i in range(1000)]
    out = lmtp().receive(transaction("x@y.z", rcpts, MSG))
    assert out.count(b"452 4.5.3 Too many recipients") == 900
    assert out.count(b"250 2.0.0 <alice+t") == 100
    [(_boxes, raw)] = emails(store, accounts[0]).values()
    assert raw.count(b"Delivered-To:") == 100


def test_find_tagged_mailbox_ambiguity_goes_to_inbox():
    boxes = [{"id": 1, "name": "INBOX", "parent": 0, "role": "inbox"},
             {"id": 2, "name": "x", "parent": 0, "role": None},
             {"id": 3, "name": "X", "parent": 0, "role": None}]
    assert find_tagged_mailbox(boxes, "x") == 0
    assert find_tagged_mailbox(boxes, "inbox") == 1


def test_resolve_refuses_null_and_literals(store, accounts):
    d = StoreDelivery(store)
    assert d.resolve(Address("", "")) is None
    assert d.resolve(Address("alice", "[1.2.3.4]")) is None
    assert d.resolve(Address("alice", "example.org")).account == accounts[0]
