"""A real MTA in front: Debian's Postfix, started by the test in a temporary directory,
takes a message over SMTP (smtplib) and delivers it to dualmail's LMTP listener through
``mailbox_transport = lmtp:inet:127.0.0.1:PORT`` (local(8) passes each recipient on by
itself), or through a ``transport_maps`` entry (lmtp(8) sends both recipients in one
transaction and reads one reply per recipient, RFC 2033 §4.2); IMAP IDLE sees it arrive,
IMAP FETCH and JMAP Email/query show it."""

from __future__ import annotations

import smtplib

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.store.check import verify

from lmtp_util import OTHER, TIMEOUT, USER, running
from tests.postfix_util import require_postfix, start_postfix, stop_postfix
from test_lmtp_e2e import fetch_all, idle_start, idle_until_exists, imap_login, jmap_subjects

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = "myhostname = mx.example.org\nmydomain = example.org\nmyorigin = example.org\n" \
        "mynetworks = 127.0.0.0/8\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
ROUTES = {
    # example.org is a local domain; local(8) hands each mailbox to dualmail
    "mailbox_transport": "mydestination = example.org\nmailbox_transport = lmtp:inet:127.0.0.1:{lmtp_port}\n",
    # example.org is relayed straight to dualmail: one LMTP transaction per message
    "transport_maps": "mydestination =\nrelay_domains = example.org\n"
                      "transport_maps = inline:{{example.org=lmtp:inet:127.0.0.1:{lmtp_port}}}\n",
}

MSG = (b"From: Dave <dave@example.net>\r\nTo: alice@example.org, bob@example.org\r\n"
       b"Subject: Through Postfix\r\nMessage-ID: <via-postfix@example.net>\r\n"
       b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nRelayed by a real MTA.\r\n")


@pytest.fixture
def postfix_available():
    require_postfix()


@pytest.mark.parametrize("route", ["mailbox_transport", "transport_maps"])
@pytest_twisted.ensureDeferred
async def test_postfix_delivers_over_lmtp_and_imap_and_jmap_see_it(tmp_path, postfix_available, route):
    async with running(tmp_path) as srv:
        pf = await deferToThread(start_postfix, NAMES + ROUTES[route].format(lmtp_port=srv.lmtp_port))
        try:
            alice = await deferToThread(imap_login, srv.imap_port, USER)
            bob = await deferToThread(imap_login, srv.imap_port, OTHER)
            await deferToThread(idle_start, alice)
            await deferToThread(idle_start, bob)

            def submit():
                with smtplib.SMTP("127.0.0.1", pf.smtp_port, timeout=TIMEOUT) as c:
                    refused = c.sendmail("dave@example.net", [USER, "Bob+Archive@example.org"], MSG)
                    return refused

            assert await deferToThread(submit) == {}
            try:
                assert await deferToThread(idle_until_exists, alice) == b"* 1 EXISTS\r\n"
            except Exception:
                raise AssertionError("Postfix did not deliver:\n" + pf.log())
            [raw] = await deferToThread(fetch_all, alice)
            assert raw.startswith(b"Return-Path: <dave@example.net>\r\nDelivered-To: alice@example.org\r\n")
            assert b"with LMTP" in raw and raw.endswith(MSG.split(b"\r\n\r\n", 1)[1])
            assert b"Subject: Through Postfix\r\n" in raw
            await deferToThread(alice.logout)
            # bob's copy went to his Archive mailbox (plus-addressing), not his INBOX
            bob.send(b"DONE\r\n")
            await deferToThread(bob.readline)
            await deferToThread(bob.logout)
            assert await deferToThread(jmap_subjects, srv.jmap_port, USER) == ["Through Postfix"]
            assert await deferToThread(jmap_subjects, srv.jmap_port, OTHER) == ["Through Postfix"]
            with srv.store.read(2) as v:
                [archive] = [m for m in v.mailboxes() if m["name"] == "Archive"]
                assert archive["counts"]["msgs"] == 1
            for a in (1, 2):
                with srv.store.read(a) as v:
                    assert verify(v) == []
            sent = [line for line in pf.log().splitlines() if "status=sent" in line]
            assert len(sent) == 2 and all("postfix/lmtp[" in line and "250 2.0.0 <" in line for line in sent)
            if route == "transport_maps":  # both recipients went out through one lmtp(8) delivery
                assert len({line.split("postfix/lmtp[")[1].split("]")[0] for line in sent}) == 1
        finally:
            await deferToThread(stop_postfix, pf)
