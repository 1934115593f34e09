"""Thread (RFC 8621 §3), Identity (§6) and VacationResponse (§8) against the
real store."""

from __future__ import annotations

import pytest

from dualmail.model import ids
from tests.jmap.jmap_store_util import ARCHIVE, INBOX, Client, BOB, aid, add_email

# -- Thread -------------------------------------------------------------------------


def eid(n):
    return ids.format_id(ids.EMAIL, n)


def tid(n):
    return ids.format_id(ids.THREAD, n)


def test_thread_email_ids_ordered_by_received_at(client, alice, store):
    late = add_email(store, alice, message_id="a@x", received=300)
    early = add_email(store, alice, message_id="b@x", in_reply_to=("a@x",), received=100, mailboxes=(ARCHIVE,))
    middle = add_email(store, alice, message_id="c@x", in_reply_to=("a@x",), received=200)
    with store.read(alice) as r:
        t = r.email(late)["thread"]
        assert r.email(early)["thread"] == r.email(middle)["thread"] == t
    result = client.call("Thread/get", {"ids": [tid(t), "T999"]}, alice)
    assert result["list"] == [{"id": tid(t), "emailIds": [eid(early), eid(middle), eid(late)]}]
    assert result["notFound"] == ["T999"]
    with store.read(alice) as r:
        assert result["state"] == str(r.state("Thread"))
    # ids null: every visible thread (few here)
    assert client.call("Thread/get", {"ids": None}, alice)["list"] == result["list"]


def test_thread_hides_imap_deleted_and_changes(client, alice, store):
    a = add_email(store, alice, message_id="a@x", received=1)
    b = add_email(store, alice, message_id="b@x", in_reply_to=("a@x",), received=2)
    with store.read(alice) as r:
        t = r.email(a)["thread"]
    s0 = client.call("Thread/get", {"ids": [tid(t)]}, alice)["state"]
    with store.write(alice) as tx:  # IMAP STORE +FLAGS (\Deleted)
        tx.set_deleted(b, INBOX, True)
    assert client.call("Thread/get", {"ids": [tid(t)]}, alice)["list"][0]["emailIds"] == [eid(a)]
    changes = client.call("Thread/changes", {"sinceState": s0}, alice)
    assert changes["updated"] == [tid(t)]
    with store.write(alice) as tx:
        tx.set_deleted(a, INBOX, True)
    result = client.call("Thread/get", {"ids": [tid(t)]}, alice)
    assert result["list"] == [] and result["notFound"] == [tid(t)]
    changes = client.call("Thread/changes", {"sinceState": s0}, alice)
    assert changes["destroyed"] == [tid(t)]


def test_thread_has_no_set(client, alice):
    error = client.error("Thread/set", {"accountId": aid(alice), "create": {}})
    assert error["type"] == "unknownMethod"


# -- Identity --------------------------------------------------------------------------


def test_default_identity(client, alice):
    result = client.call("Identity/get", {"ids": None}, alice)
    assert result["list"] == [{
        "id": "I1", "name": "", "email": "alice@example.org", "replyTo": None, "bcc": None,
        "textSignature": "", "htmlSignature": "", "mayDelete": False,
    }]
    # created once
    assert client.call("Identity/get", {"ids": None}, alice)["state"] == result["state"]


def test_identity_set(client, alice, store):
    s0 = client.call("Identity/get", {"ids": None}, alice)["state"]
    result = client.call("Identity/set", {"create": {
        "work": {"name": "Alice at work", "email": "Alice@Example.org", "textSignature": "-- \nA",
                 "replyTo": [{"name": "Desk", "email": "alice@example.org"}]},
        "spoof": {"email": "ceo@example.org"},
        "bad": {"email": "alice@example.org", "bcc": "not-a-list", "name": 4},
    }}, alice)
    work = result["created"]["work"]
    assert work["mayDelete"] is True and work["bcc"] is None and work["htmlSignature"] == ""
    assert result["notCreated"]["spoof"]["type"] == "forbiddenFrom"
    assert result["notCreated"]["bad"] == {"type": "invalidProperties", "description": "invalid bcc, name",
                                           "properties": ["bcc", "name"]}
    changes = client.call("Identity/changes", {"sinceState": s0}, alice)
    assert changes["created"] == [work["id"]]
    update = client.call("Identity/set", {"update": {
        work["id"]: {"name": "A.", "replyTo": None},
        "I1": {"email": "other@example.org"},
    }}, alice)
    assert update["updated"] == {work["id"]: None}
    assert update["notUpdated"]["I1"]["type"] == "invalidProperties"
    got = client.call("Identity/get", {"ids": [work["id"]]}, alice)["list"][0]
    assert got["name"] == "A." and got["replyTo"] is None
    destroy = client.call("Identity/set", {"destroy": [work["id"], "I1", "I999"]}, alice)
    assert destroy["destroyed"] == [work["id"]]
    assert {k: v["type"] for k, v in destroy["notDestroyed"].items()} == {"I1": "forbidden", "I999": "notFound"}


def test_identity_needs_submission_capability(client, alice):
    responses = client.api([["Identity/get", {"accountId": aid(alice)}, "0"]],
                           using=["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"])
    assert responses[0][1]["type"] == "unknownMethod"


# -- VacationResponse ---------------------------------------------------------------------


def test_vacation_defaults_and_update(client, alice):
    got = client.call("VacationResponse/get", {"ids": None}, alice)
    assert got["list"] == [{"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
                            "subject": None, "textBody": None, "htmlBody": None}]
    s0 = got["state"]
    result = client.call("VacationResponse/set", {"update": {"singleton": {
        "isEnabled": True, "fromDate": "2024-07-01T00:00:00Z", "subject": "Away", "textBody": "Back soon",
    }}}, alice)
    assert result["updated"] == {"singleton": None}
    assert result["oldState"] == s0 and result["newState"] != s0
    got = client.call("VacationResponse/get", {"ids": ["singleton", "other"]}, alice)
    assert got["list"][0]["isEnabled"] is True and got["list"][0]["fromDate"] == "2024-07-01T00:00:00Z"
    assert got["notFound"] == ["other"] and got["state"] == result["newState"]


@pytest.mark.parametrize("patch, props", [
    ({"isEnabled": "yes"}, ["isEnabled"]),
    ({"fromDate": "2024-07-01"}, ["fromDate"]),
    ({"toDate": "2024-07-01T00:00:00+02:00"}, ["toDate"]),
    ({"subject": 5}, ["subject"]),
    ({"id": "other"}, ["id"]),
])
def test_vacation_bad_update_changes_nothing(client, alice, patch, props):
    s0 = client.call("VacationResponse/get", {}, alice)["state"]
    result = client.call("VacationResponse/set", {"update": {"singleton": patch}}, alice)
    assert result["notUpdated"]["singleton"]["type"] == "invalidProperties"
    assert result["notUpdated"]["singleton"]["properties"] == props
    assert result["newState"] == s0


def test_vacation_is_a_singleton(client, alice):
    result = client.call("VacationResponse/set", {"create": {"k": {"isEnabled": True}}, "destroy": ["singleton"]},
                         alice)
    assert result["notCreated"]["k"]["type"] == "singleton"
    assert result["notDestroyed"]["singleton"]["type"] == "singleton"


def test_accounts_are_separate(client, alice, bob, store):
    """Another user's account is accountNotFound, and its data is never seen."""
    error = client.error("Mailbox/get", {"accountId": aid(bob)})
    assert error["type"] == "accountNotFound"
    bob_client = Client(store, auth=BOB)
    bob_client.call("VacationResponse/set", {"update": {"singleton": {"isEnabled": True}}}, bob)
    assert client.call("VacationResponse/get", {}, alice)["list"][0]["isEnabled"] is False
