"""The vacation responder (RFC 8621 §8, RFC 3834) called as the LMTP server
calls it after a delivery (``after_delivery``), with what the smarthost
(aiosmtpd) receives checked."""

from __future__ import annotations

import email
import email.policy
from types import SimpleNamespace

import pytest
import pytest_twisted

from dualmail.store import outbox
from dualmail.submission.config import Limits
from dualmail.submission.relay import OutboxRunner
from dualmail.submission.vacation import after_delivery
from tests.jmap_mail.jmap_mail_util import add
from tests.submission.submission_util import Smarthost, SubmissionClient, config

NOW = 1_800_000_000


@pytest.fixture
def smarthost():
    host = Smarthost().start()
    yield host
    host.stop()


def vacation(client, **props):
    result = client.call("VacationResponse/set", {"accountId": "A1", "update": {"singleton": {
        "isEnabled": True, **props}}})
    assert result["updated"] == {"singleton": None}, result


def incoming(subject="Meeting", sender="joe@example.com", to="alice@example.org", extra="", msgid="m1@example.com"):
    return (f"From: Joe <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n"
            f"References: <m0@example.com>\r\n{extra}\r\nHello\r\n").encode()


def deliver(store, a, service, raw, mail_from="joe@example.com", now=NOW):
    e = add(store, a, raw)
    return after_delivery(service, a, e, raw, mail_from, now=now)


@pytest.fixture
def service(store, alice, clock, smarthost):
    from twisted.internet import reactor

    runner = OutboxRunner(store, config(smarthost.port), reactor, clock=clock)
    runner.startService()
    yield SimpleNamespace(store=store, outbox=runner)
    runner.stopService()


@pytest_twisted.ensureDeferred
async def test_reply_sent_once_per_sender_per_period(store, alice, clock, smarthost, service):
    client = SubmissionClient(store, clock, config(smarthost.port))
    vacation(client, subject="Out of office", textBody="Back on Monday.", htmlBody="<p>Back on Monday.</p>")
    assert deliver(store, alice, service, incoming()) is True
    await service.outbox.drain()
    [got] = smarthost.messages
    # RFC 3834 §3.3: null envelope sender; §4: to the Return-Path (envelope sender)
    assert got.mail_from == "<>" and got.rcpt_tos == ["joe@example.com"]  # aiosmtpd shows <> so
    msg = email.message_from_bytes(got.content, policy=email.policy.default)
    assert msg["Auto-Submitted"] == "auto-replied"  # RFC 3834 §5
    assert msg["In-Reply-To"] == "<m1@example.com>"
    assert msg["References"].split() == ["<m0@example.com>", "<m1@example.com>"]
    assert msg["Subject"] == "Out of office" and msg["To"] == "joe@example.com"
    assert msg["From"] == "alice@example.org"
    assert msg.get_body(("plain",)).get_content().strip() == "Back on Monday."
    assert msg.get_body(("html",)).get_content().strip() == "<p>Back on Monday.</p>"
    assert all(len(line) <= 78 for line in got.content.split(b"\r\n"))
    # the same sender again, within the period: no second reply (remembered in the store)
    assert deliver(store, alice, service, incoming(msgid="m2@example.com"), "JOE@example.com",
                   now=NOW + 3600) is False
    # another sender gets one
    assert deliver(store, alice, service, incoming(sender="ann@example.com"), "ann@example.com") is True
    # after the period (7 days) the first sender gets one again
    assert deliver(store, alice, service, incoming(msgid="m3@example.com"), now=NOW + 7 * 86400) is True
    clock.advance(7 * 86400)  # the runner's clock: the reply is due at that time
    await service.outbox.drain()
    assert sorted(m.rcpt_tos[0] for m in smarthost.messages) == ["ann@example.com", "joe@example.com",
                                                                "joe@example.com"]


@pytest_twisted.ensureDeferred
async def test_changed_vacation_starts_a_new_period(store, alice, clock, smarthost, service):
    client = SubmissionClient(store, clock, config(smarthost.port))
    vacation(client, textBody="one")
    assert deliver(store, alice, service, incoming()) is True
    vacation(client, textBody="two")
    assert deliver(store, alice, service, incoming(msgid="m2@example.com")) is True
    await service.outbox.drain()
    assert len(smarthost.messages) == 2
    msg = email.message_from_bytes(smarthost.messages[0].content, policy=email.policy.default)
    assert msg["Subject"] == "Auto: Meeting"  # RFC 3834 §3.1.5 default


@pytest.mark.parametrize("raw, mail_from", [
    (incoming(extra="List-Id: <team.example.com>\r\n"), "joe@example.com"),
    (incoming(extra="List-Unsubscribe: <mailto:u@example.com>\r\n"), "joe@example.com"),
    (incoming(extra="Precedence: bulk\r\n"), "joe@example.com"),
    (incoming(extra="Precedence: list\r\n"), "joe@example.com"),
    (incoming(extra="Precedence: junk\r\n"), "joe@example.com"),
    (incoming(extra="Auto-Submitted: auto-replied\r\n"), "joe@example.com"),
    (incoming(extra="Auto-Submitted: auto-generated; type=dsn\r\n"), "joe@example.com"),
    (incoming(), ""),
    (incoming(), None),
    (incoming(), "MAILER-DAEMON@example.com"),
    (incoming(), "owner-team@example.com"),
    (incoming(), "team-request@example.com"),
    (incoming(), "alice@example.org"),
    (incoming(), "alice+lists@example.org"),
    (incoming(to="team@example.com"), "joe@example.com"),  # not explicitly addressed (RFC 3834 §2)
])
def test_never_replies_to(store, alice, clock, raw, mail_from):
    client = SubmissionClient(store, clock, config())
    vacation(client)
    before = None
    with store.read(alice) as r:
        before = outbox.entries(r)
    assert deliver(store, alice, store, raw, mail_from) is False
    with store.read(alice) as r:
        assert outbox.entries(r) == before == []


def test_auto_submitted_no_and_plus_address_get_a_reply(store, alice, clock):
    client = SubmissionClient(store, clock, config())
    vacation(client)
    raw = incoming(to="Alice <alice+work@example.org>", extra="Auto-Submitted: no\r\n")
    # a bare Store: queued for the runner (started later), nothing to wake now
    assert deliver(store, alice, store, raw) is True
    with store.read(alice) as r:
        [(q, entry)] = outbox.entries(r)
        data = outbox.load(r, q)[1]
    assert entry["kind"] == "vacation" and entry["from"] == "" and entry["sub"] is None
    assert b"I am away" in data  # RFC 8621 §8: a default body when both are null


@pytest.mark.parametrize("props, ok", [
    ({"isEnabled": False}, False),
    ({"fromDate": "2027-01-16T00:00:00Z"}, False),  # NOW is 2027-01-15T08:00:00Z
    ({"toDate": "2027-01-15T08:00:00Z"}, False),
    ({"fromDate": "2027-01-15T00:00:00Z", "toDate": "2027-01-16T00:00:00Z"}, True),
])
def test_dates_and_enabled(store, alice, clock, props, ok):
    client = SubmissionClient(store, clock, config())
    vacation(client, **props)
    assert deliver(store, alice, store, incoming()) is ok


def test_sending_limits_apply_to_vacation_replies(store, alice, clock):
    client = SubmissionClient(store, clock, config())
    vacation(client)
    limited = SimpleNamespace(store=store, outbox=SimpleNamespace(
        config=config(limits=Limits(max_messages_per_hour=1)), wake=lambda: None))
    assert deliver(store, alice, limited, incoming(sender="a@example.com"), "a@example.com") is True
    assert deliver(store, alice, limited, incoming(sender="b@example.com"), "b@example.com") is False
    with store.read(alice) as r:
        assert len(outbox.entries(r)) == 1
