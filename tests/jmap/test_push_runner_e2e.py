"""The push runner with its real HTTP client against a push service on
loopback (plain and TLS): retries with backoff on the real clock, 404
deletes, certificates are checked."""

from __future__ import annotations

import json
import time

import pytest
import pytest_twisted
from twisted.internet import ssl
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import server
from twisted.web.client import BrowserLikePolicyForHTTPS

from dualmail.imap.protocol import tls_context_factory
from dualmail.push.runner import PushRunner
from dualmail.push.webpush import subscription_id
from dualmail.store import pushsubs
from tests.conftest import write_tls_files
from tests.jmap.jmap_store_util import ALICE
from tests.jmap.push_util import PushService, UserAgent, listen_push_service

pytestmark = pytest.mark.e2e


def subscribe(store, a, url, keys=None):
    rec = {"deviceClientId": "d", "url": url, "keys": keys, "code": "c0de", "verified": False,
           "expires": None, "types": None, "states": {}, "vapid": None, "created": 0}
    with store.kv.write(a) as w:
        return pushsubs.create(w, a, rec, int(time.time() * 1000))


@pytest_twisted.ensureDeferred
async def test_retry_with_backoff_then_delivered_then_404(store):
    from twisted.internet import reactor

    push, port, base = listen_push_service(reactor)
    push.codes = [500, 503]
    a = store.create_account(*ALICE)
    ua = UserAgent()
    runner = PushRunner(store, reactor, None, allow_http_loopback=True, backoff_base=0.2, backoff_max=5)
    runner.start()
    try:
        p = subscribe(store, a, base + "/x", ua.keys())
        runner.wake()
        await push.nth(3)
        t = [r for r in push.received]
        assert all(r.json(ua)["pushSubscriptionId"] == subscription_id(p) for r in t)
        stamps = push.stamps
        assert stamps[1] - stamps[0] >= 0.19 and stamps[2] - stamps[1] >= 0.39  # 0.2 s doubling
        await runner.idle()
        with store.kv.read() as r:
            assert pushsubs.entry_of(r, a, p) is None  # the third try was accepted
        with store.kv.write(a) as w:
            pushsubs.put(w, a, p, {**pushsubs.get(w, a, p), "verified": True})
        push.codes = [404]
        with store.write(a) as tx:
            tx.create_mailbox("new", 0)
        change = await push.nth(4)
        assert change.json(ua)["@type"] == "StateChange"
        await runner.idle()
        with store.kv.read() as r:
            assert pushsubs.get(r, a, p) is None
    finally:
        await runner.stop()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_https_push_service_certificate_is_checked(store, tmp_path):
    from twisted.internet import reactor

    key_pem, cert_pem, ca_pem = write_tls_files(tmp_path)
    push = PushService()
    tls = TLSMemoryBIOFactory(tls_context_factory(str(cert_pem), str(key_pem)), False, server.Site(push))
    port = reactor.listenTCP(0, tls, interface="127.0.0.1")
    url = f"https://127.0.0.1:{port.getHost().port}/tls"
    a = store.create_account(*ALICE)
    trusted = PushRunner(store, reactor, None, backoff_base=0.1, max_tries=2,
                         https_policy=BrowserLikePolicyForHTTPS(ssl.Certificate.loadPEM(ca_pem.read_text())))
    untrusted = PushRunner(store, reactor, None, backoff_base=0.1, max_tries=2)
    try:
        untrusted.start()
        p = subscribe(store, a, url)
        untrusted.wake()
        for _ in range(200):  # the two tries fail the certificate check, then it gives up
            await untrusted.idle()
            with store.kv.read() as r:
                if pushsubs.entry_of(r, a, p) is None:
                    break
            from twisted.internet import task
            await task.deferLater(reactor, 0.02, lambda: None)
        assert push.received == []
        await untrusted.stop()
        with store.kv.write(a) as w:  # queue the verification again
            pushsubs.destroy(w, a, p)
        q = subscribe(store, a, url)
        trusted.start()
        got = await push.nth(1)
        assert json.loads(got.body)["pushSubscriptionId"] == subscription_id(q)
    finally:
        await trusted.stop()
        await port.stopListening()
