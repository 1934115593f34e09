"""PushSubscription/get and /set over the real app (StubTreq): every bad input
gets the error RFC 8620 §5.1/§5.3/§7.2 names and changes nothing; users see
only their own subscriptions; the server caps ``expires``."""

from __future__ import annotations

import pytest

from dualmail.jmap.types.email_props import utc_date
from dualmail.model.dates import parse_utc_date
from dualmail.store import pushsubs
from tests.jmap.jmap_store_util import BOB, CORE, Client
from tests.jmap.push_util import UserAgent

URL = "https://push.example.net/p/1"
NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
SOON = utc_date(NOW + 3 * 86400)


@pytest.fixture
def api(store, alice, clock):
    clock.advance(NOW)
    return Client(store, clock)


def create(api, **props):
    obj = {"deviceClientId": "dev", "url": URL, **props}
    return api.call("PushSubscription/set", {"create": {"k": obj}})


def stored(store, a):
    with store.kv.read() as r:
        return pushsubs.listing(r, a), pushsubs.due(r, 10**15)


def test_create_defaults_cap_and_get(api, store, alice):
    ua = UserAgent()
    result = create(api, keys=ua.keys(), types=["Email"])
    assert result.keys() >= {"created"} and "oldState" not in result and "newState" not in result
    created = result["created"]["k"]
    assert created["verificationCode"] is None and "keys" not in created and "types" not in created
    assert parse_utc_date(created["expires"]) == NOW + 7 * 86400  # the cap, set when omitted
    sid = created["id"]
    got = api.call("PushSubscription/get", {"ids": [sid, "Pnope"]})
    assert got == {"list": [{"id": sid, "deviceClientId": "dev", "verificationCode": None,
                             "expires": created["expires"], "types": ["Email"]}], "notFound": ["Pnope"]}
    assert api.call("PushSubscription/get", {"ids": [sid], "properties": ["types"]})["list"] == [
        {"id": sid, "types": ["Email"]}]
    # a verification is queued with the subscription, in the same transaction
    subs, due = stored(store, alice)
    assert len(subs) == 1 and len(due) == 1


def test_expires_is_shortened_to_the_cap_and_kept_when_shorter(api):
    far = create(api, expires="2099-01-01T00:00:00Z")["created"]["k"]
    assert parse_utc_date(far["expires"]) == NOW + 7 * 86400
    soon = api.call("PushSubscription/set", {"create": {"s": {
        "deviceClientId": "d2", "url": URL, "expires": SOON}}})["created"]["s"]
    assert soon["expires"] == SOON
    # extending needs no new verification; the server answers the value it set
    updated = api.call("PushSubscription/set", {"update": {soon["id"]: {"expires": "2099-01-01T00:00:00Z"}}})
    assert parse_utc_date(updated["updated"][soon["id"]]["expires"]) == NOW + 7 * 86400


@pytest.mark.parametrize("props, bad", [
    ({"url": "http://push.example.net/p"}, ["url"]),  # jmap-test-suite reject-non-https
    ({"url": "http://127.0.0.1:9/p"}, ["url"]),  # loopback http only with the server option
    ({"url": None}, ["url"]),
    ({"url": "https://user:pw@push.example.net/"}, ["url"]),
    ({"deviceClientId": ""}, ["deviceClientId"]),
    ({"deviceClientId": 7}, ["deviceClientId"]),
    ({"keys": {"p256dh": "AAAA", "auth": "AAAA"}}, ["keys"]),
    ({"keys": "x"}, ["keys"]),
    ({"verificationCode": "abc"}, ["verificationCode"]),
    ({"expires": "tomorrow"}, ["expires"]),
    ({"expires": "2001-01-01T00:00:00Z"}, ["expires"]),
    ({"types": "Email"}, ["types"]),
    ({"types": [1]}, ["types"]),
    ({"id": "P1"}, ["id"]),
    ({"color": "red"}, ["color"]),
    ({"url": "ftp://x/", "keys": {}}, ["url", "keys"]),
])
def test_create_rejects_bad_properties(api, store, alice, props, bad):
    result = create(api, **props)
    assert result["created"] is None
    error = result["notCreated"]["k"]
    assert error["type"] == "invalidProperties" and error["properties"] == bad
    assert stored(store, alice) == ([], [])  # nothing written, nothing queued


def test_not_an_object_and_missing_required(api, store, alice):
    result = api.call("PushSubscription/set", {"create": {"a": "x", "b": {"url": URL}, "c": {"deviceClientId": "d"}}})
    assert result["notCreated"]["a"]["type"] == "invalidProperties"
    assert result["notCreated"]["b"]["properties"] == ["deviceClientId"]
    assert result["notCreated"]["c"]["properties"] == ["url"]
    assert stored(store, alice) == ([], [])


def test_no_account_id_no_if_in_state(api):
    # RFC 8620 §7.2.1-§7.2.2: neither method takes accountId; /set takes no ifInState
    for name, args in (("PushSubscription/get", {"accountId": "A1"}),
                       ("PushSubscription/set", {"accountId": "A1"}),
                       ("PushSubscription/set", {"ifInState": "1"}),
                       ("PushSubscription/get", {"ids": "P1"}),
                       ("PushSubscription/get", {"properties": ["nope"]})):
        assert api.error(name, args)["type"] == "invalidArguments", (name, args)
    for prop in ("url", "keys"):  # RFC 8620 §7.2.1: never returned, asking is forbidden
        assert api.error("PushSubscription/get", {"properties": ["id", prop]})["type"] == "forbidden"


def test_only_core_is_needed(api):
    [[name, result, _]] = api.api([["PushSubscription/get", {}, "0"]], using=[CORE])
    assert name == "PushSubscription/get" and result == {"list": [], "notFound": []}


def test_update_rules(api, store, alice):
    sid = create(api)["created"]["k"]["id"]
    with store.kv.read() as r:
        code = pushsubs.listing(r, alice)[0][1]["code"]
    before = stored(store, alice)
    for patch, bad in (({"verificationCode": "wrong"}, "verificationCode"),
                       ({"verificationCode": None}, "verificationCode"),
                       ({"url": "https://elsewhere.example/"}, "url"),
                       ({"deviceClientId": "other"}, "deviceClientId"),
                       ({"keys": UserAgent().keys()}, "keys"),
                       ({"types/0": "Email"}, "types/0"),
                       ({"expires": "x"}, "expires")):
        result = api.call("PushSubscription/set", {"update": {sid: patch}})
        assert result["notUpdated"][sid] == {**result["notUpdated"][sid], "type": "invalidProperties",
                                             "properties": [bad]}, patch
    assert stored(store, alice) == before
    same = api.call("PushSubscription/set", {"update": {sid: {"url": URL, "deviceClientId": "dev"}}})
    assert same["updated"] == {sid: None}
    ok = api.call("PushSubscription/set", {"update": {sid: {"verificationCode": code, "types": ["Mailbox"]}}})
    assert ok["updated"] == {sid: None}
    got = api.call("PushSubscription/get", {"ids": None})["list"][0]
    assert got["verificationCode"] == code and got["types"] == ["Mailbox"]
    missing = api.call("PushSubscription/set", {"update": {"P99": {"types": None}}, "destroy": ["P99"]})
    assert missing["notUpdated"]["P99"]["type"] == "notFound"
    assert missing["notDestroyed"]["P99"]["type"] == "notFound"


def test_creation_ids_resolve_in_update_and_destroy(api, store, alice):
    responses = api.api([
        ["PushSubscription/set", {"create": {"n": {"deviceClientId": "d", "url": URL}}}, "0"],
        ["PushSubscription/set", {"update": {"#n": {"types": ["Email"]}}}, "1"],
        ["PushSubscription/set", {"destroy": ["#n"]}, "2"],
    ])
    sid = responses[0][1]["created"]["n"]["id"]
    assert responses[1][1]["updated"] == {"#n": None}
    assert responses[2][1]["destroyed"] == ["#n"]
    assert stored(store, alice) == ([], [])  # record and queue entry gone together
    assert api.call("PushSubscription/get", {"ids": [sid]})["notFound"] == [sid]


def test_users_see_only_their_own(api, store, clock):
    sid = create(api)["created"]["k"]["id"]
    bob = Client(store, clock, auth=BOB)
    store.create_account(*BOB)
    assert bob.call("PushSubscription/get", {"ids": None}) == {"list": [], "notFound": []}
    assert bob.call("PushSubscription/get", {"ids": [sid]})["notFound"] == [sid]
    assert bob.call("PushSubscription/set", {"update": {sid: {"types": None}}})["notUpdated"][sid]["type"] == \
        "notFound"
    assert bob.call("PushSubscription/set", {"destroy": [sid]})["notDestroyed"][sid]["type"] == "notFound"
    assert api.call("PushSubscription/get", {"ids": [sid]})["list"][0]["id"] == sid


def test_per_user_cap_is_over_quota(api, store, alice):
    from dualmail.jmap.types.push_subscription import MAX_PER_USER

    result = api.call("PushSubscription/set", {"create": {
        str(i): {"deviceClientId": f"d{i}", "url": URL} for i in range(MAX_PER_USER + 2)}})
    assert len(result["created"]) == MAX_PER_USER
    assert {e["type"] for e in result["notCreated"].values()} == {"overQuota"}
    assert len(stored(store, alice)[0]) == MAX_PER_USER


def test_expired_subscriptions_are_not_found(api, clock):
    sid = api.call("PushSubscription/set", {"create": {"s": {
        "deviceClientId": "d", "url": URL, "expires": SOON}}})["created"]["s"]["id"]
    clock.advance(3 * 86400)
    assert api.call("PushSubscription/get", {"ids": None})["list"] == []
    assert api.call("PushSubscription/get", {"ids": [sid]})["notFound"] == [sid]


def test_session_without_a_key_does_not_advertise_vapid(api):
    response = api.request("GET", "/.well-known/jmap")
    import json

    assert "urn:ietf:params:jmap:webpush-vapid" not in json.loads(response.body)["capabilities"]


def test_a_password_change_ends_the_subscriptions(api, store, alice, clock):
    # RFC 8620 §7.2: tied to the credentials; revoked credentials destroy it
    from dualmail.push.runner import PushRunner
    from tests.jmap.test_push_runner import FakeAgent, turn

    sid = create(api)["created"]["k"]["id"]
    store.set_password("alice@example.org", "new secret")
    fresh = Client(store, clock, auth=("alice@example.org", "new secret"))
    assert fresh.call("PushSubscription/get", {"ids": [sid]})["notFound"] == [sid]
    agent = FakeAgent()
    runner = PushRunner(store, clock, None, clock=clock, agent=agent)
    runner.start()
    turn(clock)
    assert agent.pending == []  # the PushVerification is not sent: the record is gone
    assert stored(store, alice) == ([], [])
    runner.stop()
