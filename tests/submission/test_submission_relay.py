"""The queue runner against a real SMTP server (aiosmtpd on 127.0.0.1, port
chosen by the OS): bytes and envelope as received, per-recipient replies in
``deliveryStatus`` (RFC 8621 §7), retries with backoff on an injected clock,
a smarthost that is down and then up gets the message exactly once, a
restarted runner resumes the queue."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from dualmail.store import outbox
from dualmail.submission.relay import OutboxRunner
from tests.jmap_mail.jmap_mail_util import add
from tests.submission.submission_util import ScriptedServer, Sink, Smarthost, SubmissionClient, config, draft

DRAFTS, SENT = 2, 3


@pytest.fixture
def smarthost():
    host = Smarthost().start()
    yield host
    host.stop()


def submit(client: SubmissionClient, email_id: str, envelope=None) -> dict:
    ident = client.call("Identity/get", {"accountId": "A1"})["list"][0]["id"]
    create = {"identityId": ident, "emailId": email_id}
    if envelope is not None:
        create["envelope"] = envelope
    result = client.call("EmailSubmission/set", {"accountId": "A1", "create": {"k": create}})
    assert result["created"], result
    return result["created"]["k"]


def status(client: SubmissionClient, sub_id: str) -> dict:
    [obj] = client.call("EmailSubmission/get", {"accountId": "A1", "ids": [sub_id]})["list"]
    return obj["deliveryStatus"]


def runner_for(store, port: int, clock: Clock) -> OutboxRunner:
    from twisted.internet import reactor

    runner = OutboxRunner(store, config(port), reactor, clock=clock)
    runner.startService()
    return runner


@pytest_twisted.ensureDeferred
async def test_relay_bytes_envelope_and_delivery_status(store, alice, clock, smarthost):
    client = SubmissionClient(store, clock, config(smarthost.port))
    raw = draft(cc="Carol <carol@example.com>", bcc="Dave <dave@example.com>",
                extra="X-Long: " + "word " * 30)
    e = add(store, alice, raw, mailbox=DRAFTS)
    sub = submit(client, e)
    runner = runner_for(store, smarthost.port, clock)
    try:
        await runner.drain()
        [got] = smarthost.messages
        assert got.mail_from == "alice@example.org"
        assert got.rcpt_tos == ["bob@example.net", "carol@example.com", "dave@example.com"]
        # RFC 8621 §7.5: Bcc removed from what is sent; a Received field first (§9)
        assert got.content.startswith(b"Received: from [127.0.0.1] (authenticated user alice@example.org)")
        assert b"\nBcc:" not in got.content and b"dave@example.com" not in got.content
        sent_without_trace = got.content.split(b"\r\n", 2)[2]
        assert sent_without_trace == raw.replace(b"Bcc: Dave <dave@example.com>\r\n", b"")
        # the stored Email is untouched (byte-exact)
        with store.read(alice) as r:
            assert r.raw_message(int(e[1:], 32)) == raw
            assert outbox.entries(r) == []  # done: the queue is empty
        ds = status(client, sub["id"])
        assert set(ds) == {"bob@example.net", "carol@example.com", "dave@example.com"}
        for value in ds.values():
            # relayed to an external machine: "unknown" (RFC 8621 §7), the RCPT reply
            assert value == {"smtpReply": "250 2.1.5 Ok", "delivered": "unknown", "displayed": "unknown"}
    finally:
        await runner.stopService()


@pytest_twisted.ensureDeferred
async def test_refused_and_deferred_recipients(store, alice, clock):
    sink = Sink(rcpt_replies={"gone@example.net": "550 5.1.1 <gone@example.net>: no such user",
                              "later@example.net": "451 4.2.0 try later"})
    host = Smarthost(sink).start()
    client = SubmissionClient(store, clock, config(host.port))
    e = add(store, alice, draft(to="bob@example.net, gone@example.net, later@example.net"), mailbox=DRAFTS)
    sub = submit(client, e)
    runner = runner_for(store, host.port, clock)
    try:
        await runner.drain()
        assert [m.rcpt_tos for m in host.messages] == [["bob@example.net"]]
        ds = status(client, sub["id"])
        assert ds["bob@example.net"]["delivered"] == "unknown"
        assert ds["gone@example.net"] == {"smtpReply": "550 5.1.1 <gone@example.net>: no such user",
                                          "delivered": "no", "displayed": "unknown"}
        assert ds["later@example.net"]["delivered"] == "queued"
        assert ds["later@example.net"]["smtpReply"] == "451 4.2.0 try later"
        # the permanent failure is bounced into the INBOX (RFC 3464), listed in dsnBlobIds
        [obj] = client.call("EmailSubmission/get", {"accountId": "A1", "ids": [sub["id"]]})["list"]
        [dsn_blob] = obj["dsnBlobIds"]
        [inbox_id] = client.call("Email/query", {"accountId": "A1", "filter": {"inMailbox": "M1"}})["ids"]
        [dsn] = client.call("Email/get", {"accountId": "A1", "ids": [inbox_id], "properties": [
            "blobId", "subject", "mailboxIds", "from"]})["list"]
        assert dsn["blobId"] == dsn_blob and dsn["mailboxIds"] == {"M1": True}
        assert dsn["subject"] == "Undelivered Mail Returned to Sender"
        with store.read(alice) as r:
            report = r.blob(dsn_blob[1:])
        assert b"Content-Type: multipart/report; report-type=delivery-status" in report
        assert b"Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1" in report
        assert b"later@example.net>:" not in report.split(b"message/delivery-status")[0]
        assert b"Subject: Lunch?" in report  # the original header (text/rfc822-headers)
        # the retry is due after the first backoff (60 s), for the deferred recipient only
        with store.read(alice) as r:
            [(q, entry)] = outbox.entries(r)
        assert entry["due"] == int(clock.seconds()) + 60 and entry["tries"] == 1
        sink.rcpt_replies.clear()
        await runner.drain()
        assert len(host.messages) == 1  # not due yet
        clock.advance(60)
        await runner.drain()
        assert [m.rcpt_tos for m in host.messages] == [["bob@example.net"], ["later@example.net"]]
        assert status(client, sub["id"])["later@example.net"]["delivered"] == "unknown"
        with store.read(alice) as r:
            assert outbox.entries(r) == []
    finally:
        await runner.stopService()
        host.stop()


@pytest_twisted.ensureDeferred
async def test_smarthost_down_then_up_delivers_exactly_once(store, alice, clock):
    host = Smarthost().start()
    port = host.port
    host.stop()  # the smarthost is down: connections are refused
    client = SubmissionClient(store, clock, config(port))
    e = add(store, alice, draft(), mailbox=DRAFTS)
    sub = submit(client, e)
    runner = runner_for(store, port, clock)
    try:
        await runner.drain()
        ds = status(client, sub["id"])["bob@example.net"]
        assert ds["delivered"] == "queued"
        assert ds["smtpReply"].startswith("451 4.4.1 smarthost not reachable")
        for backoff in (60, 120):  # still down: the backoff doubles
            clock.advance(backoff)
            await runner.drain()
            with store.read(alice) as r:
                [(_q, entry)] = outbox.entries(r)
            assert entry["due"] == int(clock.seconds()) + 2 * backoff
        host = Smarthost(port=port).start()  # up again
        clock.advance(240)
        await runner.drain()
        clock.advance(10_000)
        await runner.drain()
        assert len(host.messages) == 1
        assert status(client, sub["id"])["bob@example.net"]["delivered"] == "unknown"
    finally:
        await runner.stopService()
        host.stop()


@pytest_twisted.ensureDeferred
async def test_restarted_runner_resumes_the_queue(store, alice, clock, smarthost):
    client = SubmissionClient(store, clock, config(smarthost.port))
    submit(client, add(store, alice, draft(subject="one"), mailbox=DRAFTS))
    submit(client, add(store, alice, draft(subject="two"), mailbox=DRAFTS))
    # a runner that was stopped before sending (a restart): the queue is in the store
    runner = runner_for(store, smarthost.port, clock)
    await runner.drain()
    await runner.stopService()
    assert sorted(m.content.split(b"Subject: ")[1][:3] for m in smarthost.messages) == [b"one", b"two"]
    again = runner_for(store, smarthost.port, clock)
    await again.drain()
    await again.stopService()
    assert len(smarthost.messages) == 2  # nothing sent twice


@pytest_twisted.ensureDeferred
async def test_gives_up_after_the_queue_lifetime(store, alice, clock):
    host = Smarthost().start()
    port = host.port
    host.stop()
    client = SubmissionClient(store, clock, config(port, lifetime=600))
    sub = submit(client, add(store, alice, draft(), mailbox=DRAFTS))
    from twisted.internet import reactor

    runner = OutboxRunner(store, config(port, lifetime=600), reactor, clock=clock)
    runner.startService()
    try:
        for _ in range(6):
            await runner.drain()
            clock.advance(3600)
        ds = status(client, sub["id"])["bob@example.net"]
        assert ds["delivered"] == "no"
        assert "given up" in ds["smtpReply"]
        [obj] = client.call("EmailSubmission/get", {"accountId": "A1", "ids": [sub["id"]]})["list"]
        assert len(obj["dsnBlobIds"]) == 1
        with store.read(alice) as r:
            assert outbox.entries(r) == []
    finally:
        await runner.stopService()


@pytest.mark.parametrize("greeting, replies", [
    # the smarthost goes away in the middle of DATA: nothing is marked sent
    (b"220 hi\r\n", [b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"", b""]),
    # it answers garbage
    (b"220 hi\r\n", [b"hello there\r\n"]),
    # it refuses the connection at the greeting, temporarily
    (b"421 4.3.2 shutting down\r\n", []),
    # AUTH-less relay refused at MAIL FROM, temporarily
    (b"220 hi\r\n", [b"250 hi\r\n", b"451 4.3.0 later\r\n", b"250 ok\r\n", b"221 bye\r\n"]),
])
@pytest_twisted.ensureDeferred
async def test_misbehaving_smarthost_then_a_good_one_delivers_once(store, alice, clock, greeting, replies):
    bad = ScriptedServer(greeting, replies)
    client = SubmissionClient(store, clock, config(bad.port))
    sub = submit(client, add(store, alice, draft(body="line one\r\n.\r\n.. two dots"), mailbox=DRAFTS))
    runner = runner_for(store, bad.port, clock)
    try:
        await runner.drain()
        ds = status(client, sub["id"])["bob@example.net"]
        assert ds["delivered"] == "queued" and ds["smtpReply"].startswith("4"), ds
        with store.read(alice) as r:
            [(_q, entry)] = outbox.entries(r)
        assert entry["tries"] == 1
    finally:
        await runner.stopService()
        bad.stop()
    good = Smarthost().start()
    runner = runner_for(store, good.port, clock)
    try:
        clock.advance(60)
        await runner.drain()
        [got] = good.messages
        # dot-stuffing undone by the receiver: the body arrives as stored
        assert got.content.endswith(b"line one\r\n.\r\n.. two dots\r\n")
        assert status(client, sub["id"])["bob@example.net"]["delivered"] == "unknown"
    finally:
        await runner.stopService()
        good.stop()


@pytest_twisted.ensureDeferred
async def test_bare_lf_and_nul_bytes_are_sent_with_crlf(store, alice, clock, smarthost):
    raw = b"From: alice@example.org\nTo: bob@example.net\nSubject: bare LF\n\nNUL \x00 here\n.\nend"
    client = SubmissionClient(store, clock, config(smarthost.port))
    submit(client, add(store, alice, raw, mailbox=DRAFTS))
    runner = runner_for(store, smarthost.port, clock)
    try:
        await runner.drain()
    finally:
        await runner.stopService()
    [got] = smarthost.messages
    body = got.content.split(b"\r\n", 2)[2]  # after our Received field
    assert body == raw.replace(b"\n", b"\r\n") + b"\r\n"


@pytest_twisted.ensureDeferred
async def test_starttls_and_auth(store, alice, clock):
    """STARTTLS required, then AUTH with the --smarthost-auth credentials (RFC 3207, RFC 4954)."""
    import ssl

    import trustme
    from aiosmtpd.smtp import AuthResult
    from twisted.internet import reactor
    from twisted.internet.ssl import Certificate, optionsForClientTLS

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("smarthost.test").configure_cert(server_ctx)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, session.ssl is not None))
        return AuthResult(success=auth_data.login == b"relay" and auth_data.password == b"pw")

    host = Smarthost(tls_context=server_ctx, require_starttls=True, auth_required=True, auth_require_tls=True,
                     authenticator=authenticator).start()
    cfg = config(host.port, username="relay", password="pw", starttls="require", timeout=30)
    client = SubmissionClient(store, clock, cfg)
    sub = submit(client, add(store, alice, draft(), mailbox=DRAFTS))
    trust = Certificate.loadPEM(ca.cert_pem.bytes())
    runner = OutboxRunner(store, cfg, reactor, clock=clock,
                          tls_context=lambda: optionsForClientTLS("smarthost.test", trustRoot=trust))
    runner.startService()
    try:
        await runner.drain()
    finally:
        await runner.stopService()
        host.stop()
    assert logins and all(tls for _m, _l, tls in logins)  # AUTH only inside TLS
    ds = status(client, sub["id"])["bob@example.net"]
    assert len(host.messages) == 1 and ds["delivered"] == "unknown"


@pytest_twisted.ensureDeferred
async def test_auth_refused_is_retried_with_the_reply(store, alice, clock):
    bad = ScriptedServer(b"220 hi\r\n", [b"250-hi\r\n250 AUTH LOGIN PLAIN\r\n", b"334 VXNlcm5hbWU6\r\n",
                                         b"334 UGFzc3dvcmQ6\r\n", b"535 5.7.8 Authentication failed\r\n",
                                         b"221 bye\r\n"])
    cfg = config(bad.port, username="relay", password="wrong")
    client = SubmissionClient(store, clock, cfg)
    sub = submit(client, add(store, alice, draft(), mailbox=DRAFTS))
    from twisted.internet import reactor

    runner = OutboxRunner(store, cfg, reactor, clock=clock)
    runner.startService()
    try:
        await runner.drain()
    finally:
        await runner.stopService()
        bad.stop()
    assert status(client, sub["id"])["bob@example.net"] == {
        "smtpReply": "535 5.7.8 Authentication failed", "delivered": "queued", "displayed": "unknown"}
    assert b"AUTH LOGIN" in b"".join(bad.received)


@pytest_twisted.ensureDeferred
async def test_queue_of_a_deleted_account_is_dropped(store, alice, clock, smarthost):
    client = SubmissionClient(store, clock, config(smarthost.port))
    submit(client, add(store, alice, draft(), mailbox=DRAFTS))
    store.delete_account("alice@example.org")  # its queue goes with it; the due index key stays
    runner = runner_for(store, smarthost.port, clock)
    try:
        await runner.drain()
        from dualmail.store import keys as K

        with store.kv.read() as r:
            assert outbox.due(r, clock.seconds()) == []  # the stale index key is gone too
            assert list(r.range("outq", K.outq(alice), None)) == []
        assert smarthost.messages == []
    finally:
        await runner.stopService()
