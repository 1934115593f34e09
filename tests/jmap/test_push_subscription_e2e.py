"""End to end: ``twistd dualmail`` (``tap.makeService``) on loopback, a JMAP
client over real HTTP, and a push service run by the test (RFC 8030's role)
that receives the PushVerification and the StateChanges, decrypted here with
the subscription's private key (RFC 8291) and checked with the server's
VAPID key (RFC 8292, RFC 9749)."""

from __future__ import annotations

import base64
import json
import os

import pytest
import pytest_twisted
from py_vapid import Vapid02
from treq.client import HTTPClient
from twisted.internet import task
from twisted.web.client import Agent, HTTPConnectionPool

from dualmail.push.webpush import TOPIC, VAPID_CAPABILITY
from dualmail.store.store import open_store
from dualmail.tap import Options, makeService
from tests.jmap.push_util import UserAgent, listen_push_service

pytestmark = pytest.mark.e2e

AUTH = {b"Authorization": [b"Basic " + base64.b64encode(b"alice@example.org:secret")],
        b"Content-Type": [b"application/json"]}
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


async def wait_until(predicate, timeout: float = 10.0) -> None:
    """Poll ``predicate`` (an async callable) every 20 ms, for at most ``timeout``."""
    from twisted.internet import reactor

    for _ in range(int(timeout / 0.02)):
        if await predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not met in time")


@pytest_twisted.ensureDeferred
async def test_push_subscription_verification_state_change_and_410(tmp_path):
    from twisted.internet import reactor

    data = str(tmp_path / "data")
    setup = open_store(data, sync=False)
    alice = setup.create_account("alice@example.org", "secret")
    setup.close()
    options = Options()
    options.parseOptions(["--data", data, "--jmap", "tcp:0:interface=127.0.0.1", "--imap",
                          "tcp:0:interface=127.0.0.1", "--lmtp", "tcp:0:interface=127.0.0.1",
                          "--no-first-account", "--push-allow-http-loopback"])
    service = makeService(options, reactor)
    service.startService()
    push, push_port, push_base = listen_push_service(reactor)
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    try:
        [port] = await service.bound_ports("jmap")
        base = f"http://127.0.0.1:{port.getHost().port}"
        session = json.loads(await (await http.get(base + "/.well-known/jmap", headers=AUTH)).content())
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

        async def api(*calls):
            body = json.dumps({"using": USING, "methodCalls": [[n, a, str(i)] for i, (n, a) in enumerate(calls)]})
            response = await http.post(session["apiUrl"], data=body.encode(), headers=AUTH)
            assert response.code == 200
            return [r[1] if r[0] != "error" else {"error": r[1]} for r in
                    json.loads(await response.content())["methodResponses"]]

        # RFC 9749 §3: the key is advertised, uncompressed P-256, base64url; it is the data dir's key
        key = session["capabilities"][VAPID_CAPABILITY]["applicationServerKey"]
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        assert len(raw) == 65 and raw[0] == 4
        assert os.stat(os.path.join(data, "vapid-private.pem")).st_mode & 0o077 == 0

        # RFC 8620 §7.2: https only; http to loopback passes only because of the test option
        [bad] = await api(("PushSubscription/set", {"create": {"x": {
            "deviceClientId": "d0", "url": "http://example.com/push"}}}))
        assert bad["notCreated"]["x"]["type"] == "invalidProperties"
        assert bad["notCreated"]["x"]["properties"] == ["url"]
        assert push.received == []

        ua = UserAgent()
        [made] = await api(("PushSubscription/set", {"create": {"k1": {
            "deviceClientId": "phone-1", "url": push_base + "/sub/1", "keys": ua.keys(), "types": ["Mailbox"]}}}))
        sid = made["created"]["k1"]["id"]
        assert made["created"]["k1"]["verificationCode"] is None and "expires" in made["created"]["k1"]

        # the PushVerification: encrypted for the subscription, signed with the advertised key
        first = await push.nth(1)
        assert first.path == "/sub/1"
        verification = first.json(ua)
        assert verification["@type"] == "PushVerification" and verification["pushSubscriptionId"] == sid
        assert len(verification["verificationCode"]) >= 32
        assert int(first.headers["ttl"]) > 0 and first.headers["content-type"] == "application/json"
        scheme, _, params = first.headers["authorization"].partition(" ")
        assert scheme == "vapid" and Vapid02.verify(first.headers["authorization"])
        parts = dict(p.split("=", 1) for p in params.split(","))
        assert parts["k"] == key  # RFC 9749 §4: the advertised key signs
        claims = json.loads(base64.urlsafe_b64decode(parts["t"].split(".")[1] + "=="))
        assert claims["aud"] == push_base and claims["sub"].startswith("mailto:")

        # a change before verification is never pushed (RFC 8620 §7.2)
        [early] = await api(("Mailbox/set", {"accountId": account, "create": {"m": {"name": "Early"}}}))
        [wrong] = await api(("PushSubscription/set", {"update": {sid: {"verificationCode": "0" * 32}}}))
        assert wrong["notUpdated"][sid]["type"] == "invalidProperties"
        [ok] = await api(("PushSubscription/set", {"update": {sid: {
            "verificationCode": verification["verificationCode"]}}}))
        assert sid in ok["updated"]
        [late] = await api(("Mailbox/set", {"accountId": account, "create": {"m": {"name": "Late"}}}))
        second = await push.nth(2)
        change = second.json(ua)
        assert change == {"@type": "StateChange", "changed": {account: {"Mailbox": late["newState"]}}}
        assert int(late["newState"]) > int(early["newState"])
        assert second.headers["topic"] == TOPIC and second.headers["urgency"] == "normal"

        # an Email/set changes Email, Thread and Mailbox: only Mailbox is pushed (the types filter)
        [_email] = await api(("Email/set", {"accountId": account, "create": {"e": {
            "mailboxIds": {late["created"]["m"]["id"]: True}, "subject": "hi",
            "bodyStructure": {"type": "text/plain", "partId": "1"}, "bodyValues": {"1": {"value": "x"}}}}}))
        third = await push.nth(3)
        assert set(third.json(ua)["changed"][account]) == {"Mailbox"}  # types: ["Mailbox"] only

        [got] = await api(("PushSubscription/get", {"ids": None}))
        assert got["list"] == [{"id": sid, "deviceClientId": "phone-1", "types": ["Mailbox"],
                                "verificationCode": verification["verificationCode"],
                                "expires": made["created"]["k1"]["expires"]}]
        [forbidden] = await api(("PushSubscription/get", {"ids": None, "properties": ["url"]}))
        assert forbidden["error"]["type"] == "forbidden"

        # RFC 8030 §7.3: 410 Gone from the push service deletes the subscription
        push.codes = [410]
        await api(("Mailbox/set", {"accountId": account, "create": {"m": {"name": "Gone"}}}))
        await push.nth(4)

        async def gone():
            [g] = await api(("PushSubscription/get", {"ids": [sid]}))
            return g["notFound"] == [sid]

        await wait_until(gone)
        await api(("Mailbox/set", {"accountId": account, "create": {"m": {"name": "After"}}}))
        [_g] = await api(("PushSubscription/get", {"ids": None}))
        assert len(push.received) == 4
    finally:
        await push_port.stopListening()
        await service.stopService()
    assert alice
