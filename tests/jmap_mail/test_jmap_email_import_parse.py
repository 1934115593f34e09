"""Email/import (RFC 8621 §4.8), Email/parse (§4.9), body-part blobs and
downloads, Email/copy with one account per user (§4.7)."""

from __future__ import annotations

import json

from tests.jmap_mail.jmap_mail_util import ARCHIVE, INBOX, add, aid, eid, eml, message, mid, snapshot


def upload(client, account, data: bytes, ctype: str = "message/rfc822") -> str:
    response = client.request("POST", f"/jmap/upload/{aid(account)}/", body=data,
                              headers={**client.headers, "Content-Type": ctype})
    assert response.code == 201
    return json.loads(response.body)["blobId"]


def test_import(client, store, alice):
    raw = message("Imported", extra="Received: from mx by here; Tue, 01 Jul 2003 11:00:00 +0000\r\n")
    blob = upload(client, alice, raw)
    result = client.call("Email/import", {"emails": {
        "a": {"blobId": blob, "mailboxIds": {mid(INBOX): True, mid(ARCHIVE): True}, "keywords": {"$seen": True}},
        "b": {"blobId": blob, "mailboxIds": {mid(INBOX): True}, "receivedAt": "2020-01-02T03:04:05Z"},
    }}, alice)
    a, b = result["created"]["a"], result["created"]["b"]
    assert a["blobId"] == blob and a["size"] == len(raw) and a["id"] != b["id"]  # duplicates allowed
    got = {e["id"]: e for e in client.call("Email/get", {"ids": [a["id"], b["id"]], "properties": [
        "receivedAt", "keywords", "mailboxIds", "subject"]}, alice)["list"]}
    assert got[a["id"]]["receivedAt"] == "2003-07-01T11:00:00Z"  # from the Received field
    assert got[b["id"]]["receivedAt"] == "2020-01-02T03:04:05Z"
    assert got[a["id"]]["keywords"] == {"$seen": True}
    assert got[a["id"]]["mailboxIds"] == {mid(INBOX): True, mid(ARCHIVE): True}
    assert result["newState"] != result["oldState"]
    with store.read(alice) as r:
        assert r.raw_message(eid(a["id"])) == raw


def test_import_errors_change_nothing(client, store, alice):
    blob = upload(client, alice, message())
    text = upload(client, alice, b"just some words, no header\r\n", "text/plain")
    before = snapshot(store, alice)
    result = client.call("Email/import", {"emails": {
        "nomailbox": {"blobId": blob},
        "badmailbox": {"blobId": blob, "mailboxIds": {"M99": True}},
        "badkw": {"blobId": blob, "mailboxIds": {mid(INBOX): True}, "keywords": {"$seen": False}},
        "baddate": {"blobId": blob, "mailboxIds": {mid(INBOX): True}, "receivedAt": "today"},
        "noblob": {"blobId": "G" + "1" * 64, "mailboxIds": {mid(INBOX): True}},
        "notmail": {"blobId": text, "mailboxIds": {mid(INBOX): True}},
        "extra": {"blobId": blob, "mailboxIds": {mid(INBOX): True}, "subject": "x"},
    }}, alice)
    types = {k: (v["type"], v.get("properties")) for k, v in result["notCreated"].items()}
    assert types == {
        "nomailbox": ("invalidProperties", ["mailboxIds"]),
        "badmailbox": ("invalidProperties", ["mailboxIds"]),
        "badkw": ("invalidProperties", ["keywords"]),
        "baddate": ("invalidProperties", ["receivedAt"]),
        "noblob": ("invalidProperties", ["blobId"]),
        "notmail": ("invalidEmail", None),
        "extra": ("invalidProperties", ["subject"]),
    }
    assert result["created"] is None and result["oldState"] == result["newState"]
    assert client.error("Email/import", {"accountId": aid(alice), "ifInState": "999", "emails": {
        "x": {"blobId": blob, "mailboxIds": {mid(INBOX): True}}}})["type"] == "stateMismatch"
    assert snapshot(store, alice) == before


def test_parse_attached_message_and_part_downloads(client, store, alice):
    e = add(store, alice, eml("rfc822_attachment"))
    [email] = client.call("Email/get", {"ids": [e], "properties": ["blobId", "attachments", "textBody"]},
                          alice)["list"]
    [attached] = email["attachments"]
    assert attached["type"] == "message/rfc822"
    result = client.call("Email/parse", {"blobIds": [attached["blobId"], email["blobId"], "G" + "2" * 64],
                                         "fetchTextBodyValues": True,
                                         "properties": ["id", "mailboxIds", "subject", "from", "textBody",
                                                        "bodyValues", "blobId", "size", "header:Subject:asText"]},
                         alice)
    assert result["notFound"] == ["G" + "2" * 64] and result["notParsable"] is None
    inner = result["parsed"][attached["blobId"]]
    assert inner["id"] is None and inner["mailboxIds"] is None
    assert inner["subject"] == "original" == inner["header:Subject:asText"]
    assert inner["blobId"] == attached["blobId"] and inner["size"] == attached["size"]
    [text] = inner["textBody"]
    assert inner["bodyValues"][text["partId"]]["value"].startswith("Original text.")
    # every blobId handed out downloads: the message, a part, a part of the attached message
    base = f"/jmap/download/{aid(alice)}"
    with store.read(alice) as r:
        raw = r.raw_message(eid(e))
    assert client.request("GET", f"{base}/{email['blobId']}/m.eml").body == raw
    assert client.request("GET", f"{base}/{email['textBody'][0]['blobId']}/t.txt").body.startswith(b"See the")
    assert client.request("GET", f"{base}/{text['blobId']}/t.txt").body.startswith(b"Original text.")
    assert client.request("GET", f"{base}/{email['blobId']}_9/x").code == 404
    # a part blob imports as a new Email
    imported = client.call("Email/import", {"emails": {"i": {"blobId": attached["blobId"],
                                                             "mailboxIds": {mid(INBOX): True}}}}, alice)
    assert imported["created"]["i"]["size"] == attached["size"]


def test_parse_defaults_and_errors(client, store, alice):
    blob = upload(client, alice, message("Parsed"))
    junk = upload(client, alice, b"\x00\x01 no header", "application/octet-stream")
    result = client.call("Email/parse", {"blobIds": [blob, junk]}, alice)
    assert result["notParsable"] == [junk]
    assert set(result["parsed"][blob]) == {
        "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
        "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments"}
    assert client.error("Email/parse", {"accountId": aid(alice), "blobIds": [blob],
                                        "properties": ["header:From:asDate"]})["type"] == "invalidArguments"
    assert client.error("Email/get", {"accountId": aid(alice), "ids": [],
                                      "properties": ["header:Subject:asAddresses"]})["type"] == "invalidArguments"
    assert client.error("Email/get", {"accountId": aid(alice), "ids": [],
                                      "bodyProperties": ["nosuch"]})["type"] == "invalidArguments"


def test_copy_with_one_account(client, store, alice):
    """One account per user: a copy can only come from the same account, which
    RFC 8620 §5.4 forbids; another account is not found."""
    e = add(store, alice, message())
    before = snapshot(store, alice)
    same = client.error("Email/copy", {"fromAccountId": aid(alice), "accountId": aid(alice),
                                       "create": {"c": {"id": e, "mailboxIds": {mid(INBOX): True}}}})
    assert same["type"] == "invalidArguments"
    other = client.error("Email/copy", {"fromAccountId": "A99", "accountId": aid(alice),
                                        "create": {"c": {"id": e, "mailboxIds": {mid(INBOX): True}}}})
    assert other["type"] == "fromAccountNotFound"
    assert snapshot(store, alice) == before


def test_session_advertises_mail_capability(client):
    session = json.loads(client.request("GET", "/jmap/session").body)
    [account] = session["accounts"].values()
    mail = account["accountCapabilities"]["urn:ietf:params:jmap:mail"]
    assert mail["emailQuerySortOptions"] == ["receivedAt", "sentAt", "size", "from", "to", "subject", "hasKeyword",
                                             "allInThreadHaveKeyword", "someInThreadHaveKeyword"]
    assert mail["maxMailboxesPerEmail"] is None
