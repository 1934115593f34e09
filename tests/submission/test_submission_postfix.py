"""Debian's Postfix as the smarthost: XCLIENT (Postfix's XCLIENT_README)
hands it the JMAP client's address and login, which arrive in Postfix's own
``Received:`` field and log (RFC 8621 §9: relays should pass on what they
know of the sender); dualmail's ``Received:`` field is there too. Postfix
relays on to an aiosmtpd sink, where the message is checked."""

from __future__ import annotations


import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.store import outbox
from dualmail.submission.message import outgoing_bytes, received_field
from dualmail.submission.relay import OutboxRunner
from tests.postfix_util import require_postfix, start_postfix, stop_postfix
from tests.submission.submission_util import Smarthost, config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RAW = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: via Postfix\r\n"
       b"Message-ID: <pf1@example.org>\r\n\r\nHello through Postfix\r\n")


# relays everything to the test sink; trusts 127.0.0.1 for XCLIENT (Postfix's XCLIENT_README)
RELAY = """\
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
mynetworks = 127.0.0.0/8 192.0.2.0/24
relayhost = [127.0.0.1]:{relay_port}
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_sasl_authenticated_header = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
"""


@pytest.fixture
def postfix():
    require_postfix()  # never skipped in CI: .ci/run installs postfix and runs as root
    sink = Smarthost().start()
    try:
        instance = start_postfix(RELAY.format(relay_port=sink.port))
        try:
            yield instance, sink
        finally:
            stop_postfix(instance)
    finally:
        sink.stop()


def wait_for_message(sink, timeout: float = 60):
    with sink.sink.changed:
        assert sink.sink.changed.wait_for(lambda: sink.messages, timeout), "Postfix relayed nothing"
    return sink.messages[0]


@pytest_twisted.ensureDeferred
async def test_xclient_address_and_login_reach_postfix(store, alice, clock, postfix):
    from twisted.internet import reactor

    instance, sink = postfix
    now = int(clock.seconds())
    with store.write(alice) as tx:
        trace = received_field(login="alice@example.org", client="192.0.2.77", hostname="dualmail.test",
                               submission_id="S1", now=now)
        outbox.enqueue(tx, {"kind": "submission", "sub": None, "from": "alice@example.org",
                            "rcpt": [{"email": "bob@example.net", "state": "queued", "reply": ""}],
                            "login": "alice@example.org", "client": "192.0.2.77"},
                       outgoing_bytes(RAW, trace), now)
    runner = OutboxRunner(store, config(instance.smtp_port), reactor, clock=clock)
    runner.startService()
    try:
        await runner.drain()
        with store.read(alice) as r:
            assert outbox.entries(r) == [], instance.log()  # Postfix said 250
        got = await deferToThread(wait_for_message, sink)
    finally:
        await runner.stopService()
    assert got.rcpt_tos == ["bob@example.net"]
    headers = got.content.split(b"\r\n\r\n", 1)[0].decode()
    first = headers.split("\r\nReceived:", 1)[0].replace("\r\n\t", " ").replace("\r\n ", " ")
    # Postfix's own trace field: the client address and SASL login came from XCLIENT
    assert first.startswith("Received: from dualmail.test (unknown [192.0.2.77])"), first
    assert "(Authenticated sender: alice@example.org)" in first
    assert "by postfix.test (Postfix)" in first
    # dualmail's trace field below it
    assert "Received: from [192.0.2.77] (authenticated user alice@example.org) by" in headers
    assert got.content.endswith(b"Hello through Postfix\r\n")
    log = instance.log()
    assert "client=unknown[192.0.2.77]" in log and "sasl_username=alice@example.org" in log
