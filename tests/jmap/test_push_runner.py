"""The push runner on a fake clock with a fake HTTP agent: what is sent when,
retries with exponential backoff, 404/410, giving up, coalescing, expiry,
VAPID key rotation (RFC 8620 §7.2, RFC 8030 §7.3, RFC 9749 §5-§6)."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from dualmail.model import ids
from dualmail.push.runner import PushRunner
from dualmail.push.webpush import subscription_id
from dualmail.store import pushsubs
from tests.jmap.jmap_store_util import ALICE, BOB


class FakeResponse:
    def __init__(self, code: int, headers: dict | None = None):
        self.code = code
        self.phrase = b"X"
        self.headers = Headers({k: [v] for k, v in (headers or {}).items()})

    def deliverBody(self, proto):
        proto.makeConnection(None)
        proto.connectionLost(None)


class FakeAgent:
    """Each request waits in ``pending`` until the test answers it."""

    def __init__(self):
        self.pending: list[tuple[str, dict, bytes, defer.Deferred]] = []
        self.sent: list[tuple[str, dict, bytes]] = []

    def request(self, method, url, headers, producer):
        chunks: list[bytes] = []

        class Consumer:
            def write(self, data):
                chunks.append(data)

        producer.startProducing(Consumer())
        h = {k.decode().lower(): v[0].decode() for k, v in headers.getAllRawHeaders()}
        d: defer.Deferred = defer.Deferred()
        self.pending.append((url.decode(), h, b"".join(chunks), d))
        self.sent.append((url.decode(), h, b"".join(chunks)))
        return d

    def answer(self, code: int, headers: dict | None = None) -> tuple[str, dict, bytes]:
        url, h, body, d = self.pending.pop(0)
        if code < 0:
            d.errback(ConnectionRefusedError("refused"))
        else:
            d.callback(FakeResponse(code, headers))
        return url, h, body


@pytest.fixture
def world(store):
    clock = Clock()
    agent = FakeAgent()
    runner = PushRunner(store, clock, None, clock=clock, agent=agent, backoff_base=5.0, backoff_max=60.0,
                        max_tries=4)
    runner.start()
    alice = store.create_account(*ALICE)
    yield store, clock, agent, runner, alice
    runner.stop()


def subscribe(store, a, now=0, types=None, verified=False, expires=10**9, url="https://push.example/s"):
    rec = {"deviceClientId": "d", "url": url, "keys": None, "code": "c0de", "verified": verified,
           "expires": expires, "types": types, "states": {}, "vapid": None, "created": now}
    with store.kv.write(a) as w:
        p = pushsubs.create(w, a, rec, now * 1000)
    return p


def verify(store, a, p):
    with store.kv.write(a) as w:
        pushsubs.put(w, a, p, {**pushsubs.get(w, a, p), "verified": True})


def change(store, a, name="x"):
    with store.write(a) as tx:
        tx.create_mailbox(name, 0)
    with store.read(a) as r:
        return r.kv


def turn(clock, seconds=0.0):
    clock.advance(seconds)
    clock.advance(0)
    clock.advance(0)


def test_verification_first_then_state_changes_only_when_verified(world):
    store, clock, agent, runner, a = world
    p = subscribe(store, a)
    runner.wake()
    turn(clock)
    url, headers, body = agent.answer(201)
    assert json.loads(body) == {"@type": "PushVerification", "pushSubscriptionId": subscription_id(p),
                                "verificationCode": "c0de"}
    assert "topic" not in headers and headers["ttl"]
    turn(clock)
    change(store, a, "before")  # RFC 8620 §7.2: nothing further until verified
    turn(clock)
    assert agent.pending == []
    with store.kv.read() as r:
        assert pushsubs.entry_of(r, a, p) is None
    verify(store, a, p)
    change(store, a, "after")
    turn(clock)
    _url, headers, body = agent.answer(201)
    msg = json.loads(body)
    assert msg["@type"] == "StateChange" and set(msg["changed"][ids.format_id(ids.ACCOUNT, a)]) == {"Mailbox"}
    assert headers["topic"] and headers["urgency"] == "normal"
    turn(clock)
    with store.kv.read() as r:
        assert pushsubs.entry_of(r, a, p) is None and pushsubs.due(r, 10**15) == []


def test_retries_back_off_exponentially_then_give_up(world):
    store, clock, agent, runner, a = world
    p = subscribe(store, a, verified=True)
    verify(store, a, p)
    with store.kv.write(a) as w:  # no verification pending: only the StateChange
        pushsubs.delivered(w, a, p, "verify", 1)
    change(store, a)
    turn(clock)
    agent.answer(503)
    turn(clock)
    for delay in (5.0, 10.0, 20.0):  # backoff_base doubling
        turn(clock, delay - 0.01)
        assert agent.pending == [], delay
        turn(clock, 0.02)
        assert len(agent.pending) == 1, delay
        agent.answer(-1 if delay == 10.0 else 500)  # a refused connection counts like a 5xx
        turn(clock)
    # max_tries (4) reached: given up, the subscription stays
    turn(clock, 3600)
    assert agent.pending == []
    with store.kv.read() as r:
        assert pushsubs.entry_of(r, a, p) is None and pushsubs.get(r, a, p) is not None
    change(store, a, "later")  # a later change is pushed afresh, carrying every state
    turn(clock)
    assert len(agent.pending) == 1


def test_429_honours_retry_after(world):
    store, clock, agent, runner, a = world
    p = subscribe(store, a)
    runner.wake()
    turn(clock)
    agent.answer(429, {"Retry-After": "30"})
    turn(clock)
    turn(clock, 29)
    assert agent.pending == []
    turn(clock, 1.01)
    assert json.loads(agent.answer(201)[2])["pushSubscriptionId"] == subscription_id(p)


@pytest.mark.parametrize("code", [404, 410])
def test_gone_deletes_the_subscription(world, code):
    store, clock, agent, runner, a = world
    p = subscribe(store, a)
    runner.wake()
    turn(clock)
    agent.answer(code)
    turn(clock)
    with store.kv.read() as r:
        assert pushsubs.get(r, a, p) is None and pushsubs.entry_of(r, a, p) is None
        assert pushsubs.due(r, 10**15) == []


def test_a_refused_verification_is_not_retried(world):
    store, clock, agent, runner, a = world
    p = subscribe(store, a)
    runner.wake()
    turn(clock)
    agent.answer(403)  # RFC 9749 §6: MUST NOT retry
    turn(clock, 3600)
    assert agent.pending == []
    with store.kv.read() as r:
        assert pushsubs.entry_of(r, a, p) is None and not pushsubs.get(r, a, p)["verified"]


def test_changes_during_a_push_coalesce_into_one_more(world):
    store, clock, agent, runner, a = world
    p = subscribe(store, a)
    verify(store, a, p)
    with store.kv.write(a) as w:
        pushsubs.delivered(w, a, p, "verify", 1)
    change(store, a, "one")
    turn(clock)
    assert len(agent.pending) == 1
    for name in ("two", "three", "four"):
        change(store, a, name)
        turn(clock)
    assert len(agent.pending) == 1  # one in flight per subscription
    first = json.loads(agent.answer(201)[2])
    turn(clock)
    assert len(agent.pending) == 1  # the older answer did not clear the newer changes
    last = json.loads(agent.answer(201)[2])
    turn(clock)
    assert agent.pending == []
    account = ids.format_id(ids.ACCOUNT, a)
    assert int(last["changed"][account]["Mailbox"]) > int(first["changed"][account]["Mailbox"])
    assert int(last["changed"][account]["Mailbox"]) == store.account_record(a)["modseq"]


def test_types_filter_and_other_accounts(world):
    store, clock, agent, runner, a = world
    bob = store.create_account(*BOB)
    p = subscribe(store, a, types=["Email"])
    verify(store, a, p)
    with store.kv.write(a) as w:
        pushsubs.delivered(w, a, p, "verify", 1)
    change(store, a)  # Mailbox only: filtered out
    change(store, bob)  # another account: not alice's subscription's business
    turn(clock)
    assert agent.pending == []


def test_expired_subscription_is_deleted_not_pushed(world):
    store, clock, agent, runner, a = world
    p = subscribe(store, a, expires=100)
    clock.advance(100)
    runner.wake()
    turn(clock)
    assert agent.pending == []
    with store.kv.read() as r:
        assert pushsubs.get(r, a, p) is None
    q = subscribe(store, a, expires=5000, now=100)
    verify(store, a, q)
    runner.wake()
    turn(clock)
    agent.answer(201)
    turn(clock, 3600 + 5000)  # the hourly sweep
    with store.kv.read() as r:
        assert pushsubs.get(r, a, q) is None


def test_subscription_under_an_older_vapid_key_is_deleted(store, tmp_path):
    from dualmail.push.webpush import VapidKey

    clock, agent = Clock(), FakeAgent()
    vapid = VapidKey.load_or_create(str(tmp_path / "v.pem"), "mailto:a@example.org")
    runner = PushRunner(store, clock, vapid, clock=clock, agent=agent)
    runner.start()
    a = store.create_account(*ALICE)
    old = subscribe(store, a)
    with store.kv.write(a) as w:
        pushsubs.put(w, a, old, {**pushsubs.get(w, a, old), "vapid": "0123456789abcdef"})
    new = subscribe(store, a)
    with store.kv.write(a) as w:
        pushsubs.put(w, a, new, {**pushsubs.get(w, a, new), "vapid": vapid.fingerprint})
    runner.wake()
    turn(clock)
    [(url, headers, body, _d)] = agent.pending
    assert json.loads(body)["pushSubscriptionId"] == subscription_id(new)
    assert headers["authorization"].startswith("vapid t=")
    with store.kv.read() as r:
        assert pushsubs.get(r, a, old) is None  # RFC 9749 §5, no transitional period
    runner.stop()


def test_a_restart_resumes_the_queue(store):
    clock, agent = Clock(), FakeAgent()
    a = store.create_account(*ALICE)
    p = subscribe(store, a)
    runner = PushRunner(store, clock, None, clock=clock, agent=agent)
    runner.start()
    turn(clock)
    assert len(agent.pending) == 1
    runner.stop()  # stopped while the push is in flight: its answer is not recorded
    agent.answer(201)
    again = PushRunner(store, clock, None, clock=clock, agent=agent)
    again.start()
    turn(clock)
    assert json.loads(agent.answer(201)[2])["pushSubscriptionId"] == subscription_id(p)  # at least once
    turn(clock)
    with store.kv.read() as r:
        assert pushsubs.entry_of(r, a, p) is None
    again.stop()
