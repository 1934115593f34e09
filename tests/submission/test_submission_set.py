"""EmailSubmission/set (RFC 8621 §7.5) over the real JMAP app (StubTreq):
the envelope derived or given, the queue entry written in the same
transaction, onSuccessUpdateEmail / onSuccessDestroyEmail as an implicit
Email/set, and every SetError of §7.5 leaving nothing changed."""

from __future__ import annotations

import pytest

from dualmail.store import outbox
from dualmail.submission.config import Limits
from tests.jmap_mail.jmap_mail_util import add
from tests.submission.submission_util import SubmissionClient, config, draft, snapshot

DRAFTS, SENT = 2, 3


def identity(client) -> str:
    return client.call("Identity/get", {"accountId": "A1"})["list"][0]["id"]


def create(client, email_id: str, **props) -> dict:
    obj = {"identityId": identity(client), "emailId": email_id, **props}
    return client.call("EmailSubmission/set", {"accountId": "A1", "create": {"k": obj}})


def refused(client, store, alice, email_id: str, **props) -> dict:
    """The SetError of one create; asserts nothing else changed."""
    ident = identity(client)  # may create the default Identity: before the snapshot
    before = snapshot(store, alice)
    obj = {"identityId": ident, "emailId": email_id, **props}
    result = client.call("EmailSubmission/set", {"accountId": "A1", "create": {"k": obj}})
    assert result["created"] is None
    assert result["oldState"] == result["newState"]
    assert snapshot(store, alice) == before
    return result["notCreated"]["k"]


def queued(store, alice) -> list[tuple[dict, bytes]]:
    with store.read(alice) as r:
        return [(entry, outbox.load(r, q)[1]) for q, entry in outbox.entries(r)]


# -- success -------------------------------------------------------------------------


def test_send_moves_draft_to_sent_like_the_rfc_example(client, store, alice):
    """RFC 8621 §7.5.1: the implicit Email/set follows, with the same call id."""
    e = add(store, alice, draft(), mailbox=DRAFTS, flags=("\\Draft",))
    responses = client.api([["EmailSubmission/set", {
        "accountId": "A1",
        "create": {"k1490": {"identityId": identity(client), "emailId": e, "envelope": {
            "mailFrom": {"email": "alice@example.org", "parameters": None},
            "rcptTo": [{"email": "jane@example.com", "parameters": None}]}}},
        "onSuccessUpdateEmail": {"#k1490": {"mailboxIds/M2": None, "mailboxIds/M3": True,
                                            "keywords/$draft": None}},
    }, "0"]])
    assert [(name, call_id) for name, _r, call_id in responses] == [("EmailSubmission/set", "0"),
                                                                     ("Email/set", "0")]
    created = responses[0][1]["created"]["k1490"]
    assert created["undoStatus"] == "final" and created["threadId"].startswith("T")
    assert "envelope" not in created  # given by the client
    assert responses[1][1]["updated"] == {e: None}
    [email] = client.call("Email/get", {"accountId": "A1", "ids": [e], "properties": ["mailboxIds", "keywords"]})[
        "list"]
    assert email["mailboxIds"] == {"M3": True} and email["keywords"] == {}
    [(entry, _data)] = queued(store, alice)
    assert entry["from"] == "alice@example.org"
    assert [r["email"] for r in entry["rcpt"]] == ["jane@example.com"]


def test_envelope_derived_from_sender_to_cc_bcc(client, store, alice):
    """RFC 8621 §7: mailFrom from Sender (else From), rcptTo = To+Cc+Bcc deduplicated."""
    e = add(store, alice, draft(to="Bob <bob@example.net>, carol@example.com", cc="BOB@example.net",
                                bcc="dave@example.com", extra="Sender: alice@example.org"), mailbox=DRAFTS)
    created = create(client, e)["created"]["k"]
    assert created["envelope"] == {
        "mailFrom": {"email": "alice@example.org", "parameters": None},
        "rcptTo": [{"email": a, "parameters": None} for a in ("bob@example.net", "carol@example.com",
                                                               "dave@example.com")]}
    [(_entry, data)] = queued(store, alice)
    assert b"dave@example.com" not in data  # Bcc removed from the copy sent
    with store.read(alice) as r:  # the stored message keeps it
        assert b"Bcc: dave@example.com" in r.raw_message(1)


def test_from_of_another_address_is_forbidden_from(client, store, alice):
    e = add(store, alice, draft(sender="other@example.org"), mailbox=DRAFTS)
    assert create(client, e)["notCreated"]["k"]["type"] == "forbiddenFrom"


def test_on_success_destroy_email_and_creation_reference(client, store, alice):
    e = add(store, alice, draft(), mailbox=DRAFTS)
    responses = client.api([["EmailSubmission/set", {
        "accountId": "A1", "create": {"k": {"identityId": identity(client), "emailId": e}},
        "onSuccessDestroyEmail": ["#k"]}, "0"]])
    assert responses[1][0] == "Email/set" and responses[1][1]["destroyed"] == [e]
    assert client.call("Email/get", {"accountId": "A1", "ids": [e]})["notFound"] == [e]
    # RFC 8621 §7.5: destroying the Email does not cancel the send
    [(entry, data)] = queued(store, alice)
    assert b"Subject: Lunch?" in data


def test_no_implicit_email_set_for_a_failed_create(client, store, alice):
    e = add(store, alice, draft(sender="mallory@evil.example"), mailbox=DRAFTS)
    responses = client.api([["EmailSubmission/set", {
        "accountId": "A1", "create": {"k": {"identityId": identity(client), "emailId": e}},
        "onSuccessUpdateEmail": {"#k": {"keywords/$seen": True}}}, "0"]])
    assert [name for name, _r, _c in responses] == ["EmailSubmission/set"]


def test_on_success_arguments_are_checked(client, store, alice):
    e = add(store, alice, draft(), mailbox=DRAFTS)
    before = snapshot(store, alice)
    for args in ({"onSuccessUpdateEmail": ["#k"]}, {"onSuccessDestroyEmail": {"#k": True}}):
        err = client.error("EmailSubmission/set", {"accountId": "A1", "create": {
            "k": {"identityId": "I1", "emailId": e}}, **args})
        assert err["type"] == "invalidArguments"
    assert snapshot(store, alice)["queue"] == before["queue"] == []


def test_update_and_destroy(client, store, alice):
    e = add(store, alice, draft(), mailbox=DRAFTS)
    sub = create(client, e)["created"]["k"]["id"]
    result = client.call("EmailSubmission/set", {"accountId": "A1", "update": {
        sub: {"undoStatus": "canceled"}}})
    assert result["notUpdated"][sub]["type"] == "cannotUnsend"
    result = client.call("EmailSubmission/set", {"accountId": "A1", "update": {sub: {"emailId": "E99"}}})
    assert result["notUpdated"][sub]["type"] == "invalidProperties"
    result = client.call("EmailSubmission/set", {"accountId": "A1", "update": {sub: {"undoStatus": "final"}}})
    assert result["updated"] == {sub: None}
    result = client.call("EmailSubmission/set", {"accountId": "A1", "destroy": [sub, "S99"]})
    assert result["destroyed"] == [sub] and result["notDestroyed"]["S99"]["type"] == "notFound"
    assert len(queued(store, alice)) == 1  # RFC 8621 §7.5: the delivery is not affected


def test_get_query_changes_query_changes(client, store, alice):
    e1 = add(store, alice, draft(subject="a"), mailbox=DRAFTS)
    e2 = add(store, alice, draft(subject="b"), mailbox=DRAFTS)
    state0 = client.call("EmailSubmission/get", {"accountId": "A1", "ids": []})["state"]
    s1 = create(client, e1)["created"]["k"]["id"]
    query0 = client.call("EmailSubmission/query", {"accountId": "A1"})
    s2 = create(client, e2)["created"]["k"]["id"]
    changes = client.call("EmailSubmission/changes", {"accountId": "A1", "sinceState": state0})
    assert changes["created"] == [s1, s2]
    q = client.call("EmailSubmission/query", {"accountId": "A1", "filter": {"emailIds": [e2]}})
    assert q["ids"] == [s2]
    q = client.call("EmailSubmission/query", {"accountId": "A1", "sort": [
        {"property": "emailId", "isAscending": False}], "filter": {"undoStatus": "final",
                                                                   "after": "2020-01-01T00:00:00Z"}})
    assert q["ids"] == [s2, s1]
    q = client.call("EmailSubmission/query", {"accountId": "A1", "filter": {"before": "2020-01-01T00:00:00Z"}})
    assert q["ids"] == []
    qc = client.call("EmailSubmission/queryChanges", {"accountId": "A1", "sinceQueryState": query0["queryState"]})
    assert qc["added"] == [{"id": s2, "index": 1}]
    err = client.error("EmailSubmission/query", {"accountId": "A1", "filter": {"before": "yesterday"}})
    assert err["type"] == "invalidArguments"
    err = client.error("EmailSubmission/query", {"accountId": "A1", "filter": {"subject": "x"}})
    assert err["type"] == "unsupportedFilter"


def test_capability_advertises_max_recipients(store, alice, clock):
    client = SubmissionClient(store, clock, config(limits=Limits(max_recipients=7)))
    import json

    session = json.loads(client.request("GET", "/.well-known/jmap").body)
    cap = session["accounts"]["A1"]["accountCapabilities"]["urn:ietf:params:jmap:submission"]
    assert cap == {"maxDelayedSend": 0, "submissionExtensions": {}, "maxRecipients": 7}


# -- every SetError of RFC 8621 §7.5, nothing else changed ------------------------------


def test_unknown_identity_or_email_is_invalid_properties(client, store, alice):
    e = add(store, alice, draft(), mailbox=DRAFTS)
    assert refused(client, store, alice, e, identityId="I99") == {
        "type": "invalidProperties", "description": "no Identity 'I99'", "properties": ["identityId"]}
    err = refused(client, store, alice, "E99")
    assert err["type"] == "invalidProperties" and err["properties"] == ["emailId"]
    err = refused(client, store, alice, e, envelope={"mailFrom": {"email": "alice@example.org"}})
    assert err["properties"] == ["envelope"]
    err = refused(client, store, alice, e, envelope={
        "mailFrom": {"email": "alice@example.org", "parameters": {"SIZE": "10"}}, "rcptTo": []})
    assert err["properties"] == ["envelope"]  # no submissionExtensions
    err = refused(client, store, alice, e, undoStatus="pending")
    assert err["properties"] == ["undoStatus"]


@pytest.mark.parametrize("raw, prop", [
    (b"To: bob@example.net\r\nSubject: no From\r\n\r\nx\r\n", "from"),
    (b"From: alice@example.org\r\nFrom: alice@example.org\r\nTo: bob@example.net\r\n\r\nx\r\n", "from"),
    (b"From: alice@example.org, alice@example.org\r\nTo: bob@example.net\r\n\r\nx\r\n", "sender"),
    (b"From: alice@example.org\r\nSender: a@example.org, b@example.org\r\nTo: bob@example.net\r\n\r\nx\r\n",
     "sender"),
])
def test_invalid_email(client, store, alice, raw, prop):
    e = add(store, alice, raw, mailbox=DRAFTS)
    err = refused(client, store, alice, e)
    assert err["type"] == "invalidEmail" and err["properties"] == [prop]


def test_too_many_recipients(store, alice, clock):
    client = SubmissionClient(store, clock, config(limits=Limits(max_recipients=2)))
    e = add(store, alice, draft(to="a@example.net, b@example.net, c@example.net"), mailbox=DRAFTS)
    err = refused(client, store, alice, e)
    assert err["type"] == "tooManyRecipients" and err["maxRecipients"] == 2


def test_no_recipients(client, store, alice):
    e = add(store, alice, b"From: alice@example.org\r\nSubject: to nobody\r\n\r\nx\r\n", mailbox=DRAFTS)
    assert refused(client, store, alice, e)["type"] == "noRecipients"
    e2 = add(store, alice, draft(), mailbox=DRAFTS)
    err = refused(client, store, alice, e2, envelope={
        "mailFrom": {"email": "alice@example.org", "parameters": None}, "rcptTo": []})
    assert err["type"] == "noRecipients"


def test_invalid_recipients(client, store, alice):
    e = add(store, alice, draft(), mailbox=DRAFTS)
    rcpts = ["bob@example.net", "not an address", "x@", "ünï@example.net"]
    err = refused(client, store, alice, e, envelope={
        "mailFrom": {"email": "alice@example.org", "parameters": None},
        "rcptTo": [{"email": a, "parameters": None} for a in rcpts]})
    assert err["type"] == "invalidRecipients"
    assert err["invalidRecipients"] == ["not an address", "x@", "ünï@example.net"]


def test_forbidden_mail_from(client, store, alice):
    e = add(store, alice, draft(), mailbox=DRAFTS)
    err = refused(client, store, alice, e, envelope={
        "mailFrom": {"email": "ceo@example.org", "parameters": None},
        "rcptTo": [{"email": "bob@example.net", "parameters": None}]})
    assert err["type"] == "forbiddenMailFrom"


def test_forbidden_from(client, store, alice):
    e = add(store, alice, draft(sender="CEO <ceo@example.org>"), mailbox=DRAFTS)
    assert refused(client, store, alice, e)["type"] == "forbiddenFrom"


def test_too_large(store, alice, clock):
    client = SubmissionClient(store, clock, config(limits=Limits(max_size=100)))
    e = add(store, alice, draft(body="x" * 200), mailbox=DRAFTS)
    err = refused(client, store, alice, e)
    assert err["type"] == "tooLarge" and err["maxSize"] == 100


def test_forbidden_to_send_without_a_smarthost(store, alice, clock):
    client = SubmissionClient(store, clock, None)
    e = add(store, alice, draft(), mailbox=DRAFTS)
    err = refused(client, store, alice, e)
    assert err["type"] == "forbiddenToSend" and "smarthost" in err["description"]


def test_forbidden_to_send_past_the_hourly_limit(store, alice, clock):
    """RFC 8621 §9: per-account limits; the hour slides with the clock."""
    client = SubmissionClient(store, clock, config(limits=Limits(max_messages_per_hour=2)))
    emails = [add(store, alice, draft(subject=str(i)), mailbox=DRAFTS) for i in range(4)]
    assert create(client, emails[0])["created"] and create(client, emails[1])["created"]
    err = refused(client, store, alice, emails[2])
    assert err["type"] == "forbiddenToSend" and "2 messages per hour" in err["description"]
    clock.advance(3600)
    assert create(client, emails[3])["created"]


def test_forbidden_to_send_past_the_daily_recipient_limit(store, alice, clock):
    client = SubmissionClient(store, clock, config(limits=Limits(max_recipients_per_day=3)))
    e1 = add(store, alice, draft(to="a@example.net, b@example.net"), mailbox=DRAFTS)
    e2 = add(store, alice, draft(to="c@example.net, d@example.net"), mailbox=DRAFTS)
    assert create(client, e1)["created"]
    err = refused(client, store, alice, e2)
    assert err["type"] == "forbiddenToSend" and "3 recipients per day" in err["description"]
    clock.advance(86400)
    assert create(client, e2)["created"]


def test_one_refused_create_does_not_stop_another(client, store, alice):
    good = add(store, alice, draft(), mailbox=DRAFTS)
    bad = add(store, alice, draft(sender="ceo@example.org"), mailbox=DRAFTS)
    ident = identity(client)
    result = client.call("EmailSubmission/set", {"accountId": "A1", "create": {
        "a": {"identityId": ident, "emailId": good}, "b": {"identityId": ident, "emailId": bad}}})
    assert set(result["created"]) == {"a"} and result["notCreated"]["b"]["type"] == "forbiddenFrom"
    assert len(queued(store, alice)) == 1


# -- no input makes the server fail --------------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                max_size=3), max_leaves=8)
_address = st.fixed_dictionaries({"email": st.sampled_from(["alice@example.org", "bob@example.net", "", "x@",
                                                            "a\r\nb@c.d"]) | st.text(max_size=6)},
                                 optional={"parameters": st.none() | _json})
_create = st.fixed_dictionaries({}, optional={
    "identityId": st.sampled_from(["I1", "I2", "#x", ""]) | _json,
    "emailId": st.sampled_from(["E1", "E2", "#x"]) | _json,
    "envelope": st.none() | _json | st.fixed_dictionaries(
        {"mailFrom": _address, "rcptTo": st.lists(_address, max_size=3)}),
    "undoStatus": st.sampled_from(["final", "pending", "canceled"]) | _json,
    "sendAt": _json, "deliveryStatus": _json, "id": _json,
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(creates=st.lists(_create, min_size=1, max_size=3),
       extra=st.fixed_dictionaries({}, optional={"onSuccessUpdateEmail": _json, "onSuccessDestroyEmail": _json}))
def test_no_create_input_makes_the_server_fail(client, store, alice, creates, extra):
    if not hasattr(client, "_drafted"):
        add(store, alice, draft(), mailbox=DRAFTS)
        identity(client)
        client._drafted = True
    responses = client.api([["EmailSubmission/set", {"accountId": "A1", "create": {
        f"c{i}": c for i, c in enumerate(creates)}, **extra}, "0"]])
    for name, result, _call in responses:
        assert not (name == "error" and result["type"] == "serverFail"), result
        if name == "EmailSubmission/set":
            for err in (result["notCreated"] or {}).values():
                assert err["type"] in {"invalidProperties", "invalidEmail", "forbiddenFrom", "forbiddenMailFrom",
                                       "noRecipients", "invalidRecipients", "tooManyRecipients",
                                       "forbiddenToSend", "tooLarge"}, err


def test_a_thousand_recipients_at_the_default_limit(client, store, alice):
    """Issue 19 bad input: 1,000 recipients -> tooManyRecipients (maxRecipients 100), nothing queued."""
    e = add(store, alice, draft(), mailbox=DRAFTS)
    err = refused(client, store, alice, e, envelope={
        "mailFrom": {"email": "alice@example.org", "parameters": None},
        "rcptTo": [{"email": f"r{i}@example.net", "parameters": None} for i in range(1000)]})
    assert err["type"] == "tooManyRecipients" and err["maxRecipients"] == 100


def test_limit_refusal_is_logged_for_the_admin(store, alice, clock):
    from twisted.logger import globalLogPublisher

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        client = SubmissionClient(store, clock, config(limits=Limits(max_messages_per_hour=1)))
        e1, e2 = (add(store, alice, draft(subject=s), mailbox=DRAFTS) for s in "ab")
        assert create(client, e1)["created"]
        assert create(client, e2)["notCreated"]["k"]["type"] == "forbiddenToSend"
    finally:
        globalLogPublisher.removeObserver(events.append)
    [event] = [ev for ev in events if ev.get("send_limit")]
    assert event["address"] == "alice@example.org" and event["log_level"].name == "warn"
    assert "1 messages per hour" in event["reason"]


def test_utf8_account_address_cannot_be_an_smtp_envelope_sender(store, clock):
    """No SMTPUTF8 towards the smarthost: refused at create, not retried for days."""
    a = store.create_account("ålice@example.org", "secret")
    client = SubmissionClient(store, clock, config(), auth=("ålice@example.org", "secret"))
    e = add(store, a, draft(sender="ålice@example.org"), mailbox=DRAFTS)
    ident = client.call("Identity/get", {"accountId": f"A{a}"})["list"][0]["id"]
    result = client.call("EmailSubmission/set", {"accountId": f"A{a}", "create": {
        "k": {"identityId": ident, "emailId": e}}})
    assert result["notCreated"]["k"]["type"] == "forbiddenMailFrom"
