"""Email/set update and destroy (RFC 8621 §4.6) and what IMAP sees of them
(CONTRACT §2): keywords are the IMAP flags of every membership, removing a
mailbox is an expunge there, adding one a new UID, destroy expunges all; and
every SetError leaves the store unchanged."""

from __future__ import annotations

import pytest

from dualmail.mail.ops import apply_flags, imap_flags
from tests.jmap_mail.jmap_mail_util import (
    ARCHIVE, DRAFTS, INBOX, TRASH, add, aid, eid, message, mid, snapshot,
)


def flags(store, account, e, m):
    with store.read(account) as r:
        return sorted(imap_flags(r.email(eid(e)), m))


def test_keywords_patch_is_imap_flags(client, store, alice):
    e = add(store, alice, message(), flags=["\\Flagged"])
    result = client.call("Email/set", {"update": {e: {"keywords/$seen": True, "keywords/$flagged": None}}}, alice)
    assert result["updated"] == {e: None}
    assert flags(store, alice, e, INBOX) == ["\\Seen"]
    with store.read(alice) as r:
        # the Email state is the modseq of the change, which IMAP reports as MODSEQ/HIGHESTMODSEQ
        assert result["newState"] == str(r.state("Email")) == str(r.mailbox(INBOX)["hms"])
        assert r.mailbox(INBOX)["counts"]["unread"] == 0
    client.call("Email/set", {"update": {e: {"keywords": {"$answered": True, "Custom": True}}}}, alice)
    assert flags(store, alice, e, INBOX) == ["\\Answered", "custom"]


def test_move_to_trash_is_expunge_and_new_uid(client, store, alice):
    e = add(store, alice, message())
    with store.read(alice) as r:
        before = r.highest_modseq
        [old_uid] = r.uids(INBOX)
    client.call("Email/set", {"update": {e: {"mailboxIds": {mid(TRASH): True}}}}, alice)
    with store.read(alice) as r:
        assert list(r.uids(INBOX)) == []
        assert r.expunged_since(INBOX, before) == [old_uid]
        assert list(r.uids(TRASH)) == [1]
        assert r.mailbox(TRASH)["counts"]["total"] == 1 and r.mailbox(INBOX)["counts"]["total"] == 0
    client.call("Email/set", {"update": {e: {f"mailboxIds/{mid(ARCHIVE)}": True}}}, alice)
    got = client.call("Email/get", {"ids": [e], "properties": ["mailboxIds"]}, alice)["list"][0]
    assert got["mailboxIds"] == {mid(TRASH): True, mid(ARCHIVE): True}


def test_adding_mailbox_with_hidden_deleted_membership(client, store, alice):
    """An IMAP \\Deleted membership is invisible; adding that mailbox through JMAP
    expunges it and gives a new UID there."""
    e = add(store, alice, message())
    with store.write(alice) as tx:
        tx.add_membership(eid(e), ARCHIVE)
        apply_flags(tx, ARCHIVE, eid(e), "+", ["\\Deleted"])
    got = client.call("Email/get", {"ids": [e], "properties": ["mailboxIds"]}, alice)["list"][0]
    assert got["mailboxIds"] == {mid(INBOX): True}
    client.call("Email/set", {"update": {e: {f"mailboxIds/{mid(ARCHIVE)}": True}}}, alice)
    with store.read(alice) as r:
        assert list(r.uids(ARCHIVE)) == [2]
        assert r.email(eid(e))["mbx"][str(ARCHIVE)][1] == 0


def test_destroy_expunges_every_membership(client, store, alice):
    e = add(store, alice, message())
    with store.write(alice) as tx:
        tx.add_membership(eid(e), ARCHIVE)
        apply_flags(tx, ARCHIVE, eid(e), "+", ["\\Deleted"])
        before = tx.modseq
    result = client.call("Email/set", {"destroy": [e]}, alice)
    assert result["destroyed"] == [e]
    with store.read(alice) as r:
        assert r.email(eid(e)) is None
        assert r.expunged_since(INBOX, before) == [1] and r.expunged_since(ARCHIVE, before) == [1]
    changes = client.call("Email/changes", {"sinceState": str(before)}, alice)
    assert changes["destroyed"] == [e]


def test_deleted_membership_invisible(client, store, alice):
    """CONTRACT §2: an Email whose every membership is \\Deleted is not there for JMAP."""
    e = add(store, alice, message())
    other = add(store, alice, message("Other"))
    with store.write(alice) as tx:
        apply_flags(tx, INBOX, eid(e), "+", ["\\Deleted"])
    got = client.call("Email/get", {"ids": [e, other], "properties": ["id"]}, alice)
    assert got["notFound"] == [e] and [x["id"] for x in got["list"]] == [other]
    assert client.call("Email/query", {"filter": {"inMailbox": mid(INBOX)}}, alice)["ids"] == [other]
    assert client.call("Email/query", {}, alice)["ids"] == [other]
    box = client.call("Mailbox/get", {"ids": [mid(INBOX)]}, alice)["list"][0]
    assert box["totalEmails"] == 1 and box["totalThreads"] == 1
    set_result = client.call("Email/set", {"update": {e: {"keywords/$seen": True}}, "destroy": [e]}, alice)
    assert set_result["notUpdated"][e]["type"] == "notFound"
    assert set_result["notDestroyed"][e]["type"] == "notFound"
    assert client.call("SearchSnippet/get", {"emailIds": [e], "filter": None}, alice)["notFound"] == [e]


BAD_UPDATES = [
    ({"subject": "new"}, "invalidProperties"),
    ({"keywords/$seen": False}, "invalidProperties"),
    ({"keywords": {"bad(kw": True}}, "invalidProperties"),
    ({"mailboxIds": {}}, "invalidProperties"),
    ({"mailboxIds": {"M99": True}}, "invalidProperties"),
    ({"mailboxIds/M99": True}, "invalidProperties"),
    ({"keywords/a/b": True}, "invalidPatch"),
    ({"nosuch": 1}, "invalidProperties"),
    ({"id": "Eother"}, "invalidProperties"),
]


@pytest.mark.parametrize("patch,error", BAD_UPDATES)
def test_bad_update_changes_nothing(client, store, alice, patch, error):
    e = add(store, alice, message())
    before = snapshot(store, alice)
    result = client.call("Email/set", {"update": {e: patch}}, alice)
    assert result["notUpdated"][e]["type"] == error
    assert result["oldState"] == result["newState"]
    assert snapshot(store, alice) == before


BODY = {"1": {"value": "x"}}
BAD_CREATES = [
    ({}, "invalidProperties", ["mailboxIds"]),
    ({"mailboxIds": {}}, "invalidProperties", ["mailboxIds"]),
    ({"mailboxIds": {"M99": True}}, "invalidProperties", ["mailboxIds"]),
    ({"keywords": {"$seen": False}}, "invalidProperties", ["keywords"]),
    ({"receivedAt": "yesterday"}, "invalidProperties", ["receivedAt"]),
    ({"id": "E1"}, "invalidProperties", ["id"]),
    ({"size": 3}, "invalidProperties", ["size"]),
    ({"headers": []}, "invalidProperties", ["headers"]),
    ({"from": [{"email": "a@b"}], "header:From:asAddresses": [{"email": "c@d"}]}, "invalidProperties", None),
    ({"header:From:asDate": "2020-01-01T00:00:00Z"}, "invalidProperties", ["header:From:asDate"]),
    ({"header:Content-Type": " text/plain"}, "invalidProperties", ["header:Content-Type"]),
    ({"subject": 42}, "invalidProperties", ["subject"]),
    ({"sentAt": "not a date"}, "invalidProperties", ["sentAt"]),
    ({"from": [{"name": "x"}]}, "invalidProperties", ["from"]),
    ({"bodyStructure": {"partId": "1"}, "textBody": [{"partId": "1"}], "bodyValues": {"1": {"value": "x"}}},
     "invalidProperties", ["bodyStructure"]),
    ({"textBody": [{"partId": "1", "type": "text/html"}], "bodyValues": {"1": {"value": "x"}}},
     "invalidProperties", ["textBody"]),
    ({"textBody": [{"partId": "1"}, {"partId": "2"}], "bodyValues": {"1": {"value": "x"}, "2": {"value": "y"}}},
     "invalidProperties", ["textBody"]),
    ({"htmlBody": [{"partId": "1", "type": "text/plain"}], "bodyValues": {"1": {"value": "x"}}},
     "invalidProperties", ["htmlBody"]),
    ({"textBody": [{"partId": "nope"}]}, "invalidProperties", ["textBody/0/partId"]),
    ({"textBody": [{"partId": "1", "blobId": "G" + "0" * 64}], "bodyValues": {"1": {"value": "x"}}},
     "invalidProperties", ["textBody/0/partId", "textBody/0/blobId"]),
    ({"textBody": [{"partId": "1", "charset": "utf-8"}], "bodyValues": {"1": {"value": "x"}}},
     "invalidProperties", ["textBody/0/charset"]),
    ({"textBody": [{"partId": "1", "header:Content-Transfer-Encoding": " base64"}],
      "bodyValues": {"1": {"value": "x"}}}, "invalidProperties", ["textBody/0/header:Content-Transfer-Encoding"]),
    ({"textBody": [{"partId": "1"}], "bodyValues": {"1": {"value": "x", "isTruncated": True}}},
     "invalidProperties", ["bodyValues/1"]),
    ({"bodyStructure": {"type": "multipart/mixed", "partId": "1"}, "bodyValues": {"1": {"value": "x"}}},
     "invalidProperties", ["bodyStructure/type"]),
    ({"attachments": [{"blobId": "G" + "0" * 64, "type": "image/png"}]}, "blobNotFound", None),
] + [(obj, "invalidProperties", props) for obj, props in [
    # Header field conflicts (RFC 8621 §4.6; RFC 5322 §3.6: fields allowed once), each
    # property named by its path; they used to answer serverFail.
    ({"textBody": [{"partId": "1", "header:Message-Id": "<x2@example.net>"}], "bodyValues": BODY},
     ["textBody/0/header:Message-Id"]),
    ({"textBody": [{"partId": "1"}], "bodyValues": BODY,
      "attachments": [{"partId": "1", "type": "text/plain", "header:Subject:asText": "s"}]},
     ["attachments/0/header:Subject:asText"]),
    ({"messageId": ["a@b"], "bodyStructure": {"partId": "1", "header:Message-ID": " <x2@example.net>"},
      "bodyValues": BODY}, ["bodyStructure/header:Message-ID", "messageId"]),
    ({"header:X-A": " top", "bodyStructure": {"partId": "1", "header:x-a": " part"}, "bodyValues": BODY},
     ["header:X-A", "bodyStructure/header:x-a"]),
    ({"header:Subject:all": [" a", " b"]}, ["header:Subject:all"]),
    ({"header:In-Reply-To:asMessageIds:all": [["a@b"], ["c@d"]]}, ["header:In-Reply-To:asMessageIds:all"]),
    ({"subject": "x", "header:subject:asText:all": ["a"], "sentAt": "2020-01-01T00:00:00Z",
      "header:Date": " Wed, 1 Jan 2020 00:00:00 +0000"},
     ["subject", "header:subject:asText:all", "sentAt", "header:Date"]),
    ({"header:MIME-Version": " 1.0"}, ["header:MIME-Version"]),
    ({"textBody": [{"partId": "1", "header:MIME-Version": " 1.0", "header:Content-Type": " text/plain"}],
      "bodyValues": BODY}, ["textBody/0/header:MIME-Version", "textBody/0/header:Content-Type"]),
    ({"attachments": [{"blobId": "x", "header:Content-Disposition:all": [" inline", " inline"]},
                      {"blobId": "y", "name": "n", "header:Content-Disposition": " inline"}]},
     ["attachments/0/header:Content-Disposition:all", "attachments/1/header:Content-Disposition",
      "attachments/1/name"]),
    ({"bodyStructure": {"type": "multipart/mixed", "subParts": [
        {"partId": "1"}, {"partId": "1", "headers": [], "header:From": " a@b"}]}, "bodyValues": BODY},
     ["bodyStructure/subParts/1/headers"]),
    # RFC 5322 §2.1.1: no line longer than 998 characters
    ({"messageId": ["a" * 1000 + "@b"]}, ["messageId"]),
    ({"header:X-Long": " " + "x" * 1000}, ["header:X-Long"]),
    ({"to": [{"email": "a" * 1000 + "@example.org"}]}, ["to"]),
]]


@pytest.mark.parametrize("obj,error,props", BAD_CREATES)
def test_bad_create_changes_nothing(client, store, alice, obj, error, props):
    obj = {"mailboxIds": {mid(DRAFTS): True}, **obj} if "mailboxIds" not in obj and obj != {} else obj
    before = snapshot(store, alice)
    result = client.call("Email/set", {"create": {"c": obj}}, alice)
    failure = result["notCreated"]["c"]
    assert failure["type"] == error, failure
    if props is not None:
        assert failure["properties"] == props
    if error == "blobNotFound":
        assert failure["notFound"] == ["G" + "0" * 64]
    assert result["oldState"] == result["newState"]
    assert snapshot(store, alice) == before


def test_destroy_unknown_and_state_mismatch(client, store, alice):
    e = add(store, alice, message())
    before = snapshot(store, alice)
    result = client.call("Email/set", {"destroy": ["E99", "bogus"]}, alice)
    assert {k: v["type"] for k, v in result["notDestroyed"].items()} == {"E99": "notFound", "bogus": "notFound"}
    error = client.error("Email/set", {"accountId": aid(alice), "ifInState": "1", "destroy": [e]})
    assert error["type"] == "stateMismatch"
    assert snapshot(store, alice) == before


def test_one_set_is_one_transaction(client, store, alice):
    a, b = add(store, alice, message("a")), add(store, alice, message("b"))
    with store.read(alice) as r:
        start = r.highest_modseq
    result = client.call("Email/set", {
        "create": {"n": {"mailboxIds": {mid(DRAFTS): True}, "subject": "new"}},
        "update": {a: {"keywords/$seen": True}},
        "destroy": [b],
    }, alice)
    assert result["newState"] == str(start + 1)
    with store.read(alice) as r:
        assert r.highest_modseq == start + 1
    changes = client.call("Email/changes", {"sinceState": str(start)}, alice)
    assert changes["created"] == [result["created"]["n"]["id"]]
    assert changes["updated"] == [a] and changes["destroyed"] == [b]


def test_create_with_attachments_and_creation_id_mailbox(client, store, alice):
    upload = client.request("POST", f"/jmap/upload/{aid(alice)}/", body=b"\x89PNG fake",
                            headers={**client.headers, "Content-Type": "image/png"})
    blob = __import__("json").loads(upload.body)["blobId"]
    responses = client.api([
        ["Mailbox/set", {"accountId": aid(alice), "create": {"box": {"name": "Outbox"}}}, "0"],
        ["Email/set", {"accountId": aid(alice), "create": {"m": {
            "mailboxIds": {"#box": True},
            "from": [{"name": "Ünïcode Name", "email": "alice@example.org"}],
            "to": [{"name": None, "email": "bob@example.com"}],
            "subject": "Pictures ✓",
            "htmlBody": [{"partId": "h", "type": "text/html"}],
            "bodyValues": {"h": {"value": "<p>See <img src=\"cid:pic1\"></p>"}},
            "attachments": [{"blobId": blob, "type": "image/png", "cid": "pic1", "disposition": "inline",
                             "name": "pic.png"},
                            {"blobId": blob, "type": "image/png", "name": "résumé.png"}],
            "header:X-Mailer:asText": "dualmail tests",
        }}}, "1"],
        ["Email/get", {"accountId": aid(alice), "ids": ["#m"], "properties": [
            "mailboxIds", "from", "subject", "bodyStructure", "attachments", "header:X-Mailer:asText",
            "hasAttachment"]}, "2"],
    ])
    box = responses[0][1]["created"]["box"]["id"]
    email = responses[2][1]["list"][0]
    assert email["mailboxIds"] == {box: True}
    assert email["from"] == [{"name": "Ünïcode Name", "email": "alice@example.org"}]
    assert email["subject"] == "Pictures ✓" and email["header:X-Mailer:asText"] == "dualmail tests"
    assert email["bodyStructure"]["type"] == "multipart/mixed"
    assert [p["type"] for p in email["bodyStructure"]["subParts"]] == ["multipart/related", "image/png"]
    assert [(a["name"], a["cid"]) for a in email["attachments"]] == [("pic.png", "pic1"), ("résumé.png", None)]
    assert email["hasAttachment"] is True
    part = email["attachments"][1]["blobId"]
    download = client.request("GET", f"/jmap/download/{aid(alice)}/{part}/x.png?accept=image/png")
    assert download.code == 200 and download.body == b"\x89PNG fake"
    with store.read(alice) as r:
        raw = r.raw_message(eid(responses[1][1]["created"]["m"]["id"]))
    assert raw.isascii()  # RFC 2047 / RFC 2231 encoded, 7-bit clean
