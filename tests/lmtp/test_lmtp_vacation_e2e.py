"""End to end: a message delivered over LMTP (smtplib) to an account whose
VacationResponse is on (set over JMAP/HTTP) makes the running service send one
auto-reply to the smarthost (aiosmtpd) — RFC 8621 §8, RFC 3834 §2 (once per
sender per period), §3.3 (null envelope sender), §5 (Auto-Submitted) — and a
second message from the same sender makes none.  Without ``--smarthost`` nothing
is queued (nothing could be sent)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import urllib.request

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.store import outbox
from lmtp_util import PASSWORD, TIMEOUT, USER, running, send
from tests.submission.submission_util import Smarthost

pytestmark = pytest.mark.e2e

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:vacationresponse"]


def incoming(msgid: str) -> bytes:
    return (f"From: Joe <joe@example.com>\r\nTo: {USER}\r\nSubject: Lunch\r\n"
            f"Message-ID: <{msgid}>\r\n\r\nAre you there?\r\n").encode()


def vacation_on(port: int) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    session = json.load(urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{port}/.well-known/jmap", headers=auth), timeout=TIMEOUT))
    account = session["primaryAccounts"]["urn:ietf:params:jmap:vacationresponse"]
    body = {"using": USING, "methodCalls": [["VacationResponse/set", {"accountId": account, "update": {
        "singleton": {"isEnabled": True, "subject": "Away", "textBody": "Back on Monday."}}}, "0"]]}
    req = urllib.request.Request(session["apiUrl"], data=json.dumps(body).encode(),
                                 headers={**auth, "Content-Type": "application/json"})
    [[name, result, _c]] = json.load(urllib.request.urlopen(req, timeout=TIMEOUT))["methodResponses"]
    assert name == "VacationResponse/set" and result["updated"] == {"singleton": None}, result


def deliver(run, msgid: str) -> list:
    c = run.lmtp()
    try:
        return send(c, "joe@example.com", [USER], incoming(msgid))
    finally:
        c.quit()


@pytest_twisted.ensureDeferred
async def test_lmtp_delivery_sends_one_vacation_reply_through_the_smarthost(tmp_path):
    smarthost = Smarthost().start()
    try:
        async with running(tmp_path, extra=["--smarthost", f"tcp:127.0.0.1:{smarthost.port}"]) as run:
            await deferToThread(vacation_on, run.jmap_port)
            replies = await deferToThread(deliver, run, "m1@example.com")
            assert [code for code, _text in replies] == [250, 250, 250]
            await run.service.outbox.drain()
            [got] = smarthost.messages
            assert got.mail_from == "<>" and got.rcpt_tos == ["joe@example.com"]
            msg = email.message_from_bytes(got.content, policy=email.policy.default)
            assert msg["Auto-Submitted"] == "auto-replied" and msg["Subject"] == "Away"
            assert msg["In-Reply-To"] == "<m1@example.com>"
            # the same sender within the period: delivered, but no second reply
            replies = await deferToThread(deliver, run, "m2@example.com")
            assert [code for code, _text in replies] == [250, 250, 250]
            await run.service.outbox.drain()
            assert len(smarthost.messages) == 1
    finally:
        smarthost.stop()


@pytest_twisted.ensureDeferred
async def test_without_a_smarthost_no_vacation_reply_is_queued(tmp_path):
    async with running(tmp_path) as run:
        await deferToThread(vacation_on, run.jmap_port)
        replies = await deferToThread(deliver, run, "m1@example.com")
        assert [code for code, _text in replies] == [250, 250, 250]
        with run.store.read(run.store.require_account(USER)) as view:
            assert outbox.entries(view) == []
