"""End to end: ``twistd dualmail --smarthost`` (``tap.makeService`` on tcp:0
loopback ports), a JMAP client over real HTTP creates a draft and sends it
with EmailSubmission/set + onSuccessUpdateEmail (RFC 8621 §7.5.1); the
smarthost (aiosmtpd) gets the message, IMAP sees it moved from Drafts to Sent
without \\Draft, and the delivery status change is pushed."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from dualmail.store.store import open_store
from dualmail.tap import Options, makeService
from tests.cross.cross_util import AUTH, JMAP, PASSWORD, USER, close, in_thread
from tests.submission.submission_util import Smarthost

pytestmark = pytest.mark.e2e

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]


class SubmissionJMAP(JMAP):
    async def request(self, calls: list) -> list:
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        response = await self.http.post(self.session["apiUrl"], data=body,
                                        headers={**AUTH, b"Content-Type": [b"application/json"]})
        text = await response.content()
        assert response.code == 200, text
        return json.loads(text)["methodResponses"]


@pytest_twisted.ensureDeferred
async def test_send_draft_over_http_seen_by_smarthost_and_imap(tmp_path):
    from imapclient import IMAPClient
    from twisted.internet import reactor

    smarthost = Smarthost().start()
    data = str(tmp_path / "data")
    setup = open_store(data, sync=False)
    setup.create_account(USER, PASSWORD)
    setup.close()
    options = Options()
    options.parseOptions(["--data", data, "--imap", "tcp:0:interface=127.0.0.1",
                          "--jmap", "tcp:0:interface=127.0.0.1", "--no-first-account",
                          "--smarthost", f"tcp:127.0.0.1:{smarthost.port}", "--smarthost-helo", "mx.test"])
    service = makeService(options, reactor)
    service.startService()
    pool = HTTPConnectionPool(reactor, persistent=False)
    try:
        [imap_port] = await service.bound_ports("imap")
        [jmap_port] = await service.bound_ports("jmap")
        jmap = SubmissionJMAP(HTTPClient(Agent(reactor, pool=pool)), f"http://127.0.0.1:{jmap_port.getHost().port}")
        await jmap.start()
        boxes = await jmap.mailboxes()
        drafts, sent = boxes["Drafts"]["id"], boxes["Sent"]["id"]
        identity = (await jmap.call("Identity/get", {}))["list"][0]
        events = await jmap.events("EmailSubmission")
        responses = await jmap.request([
            ["Email/set", {"accountId": jmap.account, "create": {"d": {
                "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
                "from": [{"email": USER}], "to": [{"name": "Bob", "email": "bob@example.net"}],
                "bcc": [{"email": "hidden@example.net"}], "subject": "Sent over HTTP",
                "bodyValues": {"b": {"value": "Hello Bob"}}, "textBody": [{"partId": "b", "type": "text/plain"}],
            }}}, "0"],
            ["EmailSubmission/set", {"accountId": jmap.account, "create": {"s": {
                "identityId": identity["id"], "emailId": "#d"}},
                "onSuccessUpdateEmail": {"#s": {f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True,
                                                "keywords/$draft": None}}}, "1"],
        ])
        assert [name for name, _r, _c in responses] == ["Email/set", "EmailSubmission/set", "Email/set"]
        sub_id = responses[1][1]["created"]["s"]["id"]
        state = responses[1][1]["newState"]  # the submission's creation

        await service.outbox.drain()
        [got] = smarthost.messages
        assert got.rcpt_tos == ["bob@example.net", "hidden@example.net"]
        assert b"Subject: Sent over HTTP" in got.content and b"hidden@example.net" not in got.content
        assert got.content.startswith(b"Received: from [127.0.0.1] (authenticated user alice@example.org) by")
        # the deliveryStatus change is a state change, pushed
        await events.wait_for(lambda e: e[0] == "state" and int(e[1]["changed"].get(jmap.account, {}).get(
            "EmailSubmission", state)) > int(state))
        events.close()
        [sub] = (await jmap.call("EmailSubmission/get", {"ids": [sub_id]}))["list"]
        assert sub["deliveryStatus"]["bob@example.net"]["delivered"] == "unknown"

        def imap_view() -> tuple:
            client = IMAPClient("127.0.0.1", port=imap_port.getHost().port, ssl=False, timeout=10)
            client.login(USER, PASSWORD)
            try:
                client.select_folder("Drafts")
                in_drafts = client.search("ALL")
                client.select_folder("Sent")
                found = client.search("ALL")
                fetched = client.fetch(found, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT BCC)]"])
                return in_drafts, fetched
            finally:
                close(client)

        in_drafts, fetched = await in_thread(imap_view)
        assert in_drafts == []
        [(_uid, item)] = fetched.items()
        assert b"\\Draft" not in item[b"FLAGS"]
        header = item[b"BODY[HEADER.FIELDS (SUBJECT BCC)]"]
        assert b"Subject: Sent over HTTP" in header and b"hidden@example.net" in header  # the stored copy
    finally:
        await pool.closeCachedConnections()
        await service.stopService()
        smarthost.stop()
