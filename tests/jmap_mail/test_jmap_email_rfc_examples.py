"""The RFC 8621 examples as tests: Email/get (§4.2.1), the first-screen
Email/query + result references (§4.10), saving drafts with Email/set (§4.10)
and SearchSnippet/get (§5.2)."""

from __future__ import annotations

from email import message_from_bytes, policy

from dualmail.mime.sanitize import sanitize_html
from dualmail.model import ids
from tests.jmap_mail.jmap_mail_util import DRAFTS, INBOX, add, aid, eid, message, mid


def test_email_get_example(client, store, alice):
    """§4.2.1: properties incl. header:List-POST:asURLs, htmlBody with four body
    properties, fetchHTMLBodyValues and maxBodyValueBytes truncation."""
    html = "<html><body><p>Hello " + "x" * 400 + "</p></body></html>"
    raw = ("From: Joe Bloggs <joe@example.com>\r\nTo: party@lists.example.com\r\nSubject: Dinner on Thursday?\r\n"
           "List-POST: <mailto:partytime@lists.example.com>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n" + html +
           "\r\n--b\r\nContent-Type: text/plain\r\n\r\n-- Sent by your friendly mailing list ...\r\n--b--\r\n"
           ).encode()
    e = add(store, alice, raw, received=1381673520)  # 2013-10-13T14:12:00Z
    result = client.call("Email/get", {
        "ids": ["Enotthere", e],
        "properties": ["threadId", "mailboxIds", "from", "subject", "receivedAt", "header:List-POST:asURLs",
                       "htmlBody", "bodyValues"],
        "bodyProperties": ["partId", "blobId", "size", "type"],
        "fetchHTMLBodyValues": True,
        "maxBodyValueBytes": 256,
    }, alice)
    assert result["notFound"] == ["Enotthere"]
    [email] = result["list"]
    assert email["mailboxIds"] == {mid(INBOX): True}
    assert email["from"] == [{"name": "Joe Bloggs", "email": "joe@example.com"}]
    assert email["subject"] == "Dinner on Thursday?"
    assert email["receivedAt"] == "2013-10-13T14:12:00Z"
    assert email["header:List-POST:asURLs"] == ["mailto:partytime@lists.example.com"]
    assert [p["type"] for p in email["htmlBody"]] == ["text/html", "text/plain"]
    assert all(set(p) == {"partId", "blobId", "size", "type"} for p in email["htmlBody"])
    first, second = (email["bodyValues"][p["partId"]] for p in email["htmlBody"])
    assert first["isTruncated"] is True and len(first["value"].encode()) <= 256
    # sanitised (RFC 8621 §9.1, docs/security.md): the fragment, without <html><body>
    assert first["value"].startswith("<p>Hello xxx")
    assert second == {"value": "-- Sent by your friendly mailing list ...", "isEncodingProblem": False,
                      "isTruncated": False}
    assert set(email) == {"id", "threadId", "mailboxIds", "from", "subject", "receivedAt",
                          "header:List-POST:asURLs", "htmlBody", "bodyValues"}


def test_first_screen_example(client, store, alice):
    """§4.10: Email/query (inMailbox, receivedAt desc, collapseThreads) ->
    Email/get threadId -> Thread/get -> Email/get, all by result references."""
    a = add(store, alice, message("Plans", message_id="a@x"), received=100)
    b = add(store, alice, message("Re: Plans", message_id="b@x", extra="In-Reply-To: <a@x>\r\n"), received=200)
    c = add(store, alice, message("Other", message_id="c@x"), received=150)
    add(store, alice, message("Elsewhere"), mailbox=DRAFTS, received=300)
    account = aid(alice)
    responses = client.api([
        ["Email/query", {"accountId": account, "filter": {"inMailbox": mid(INBOX)},
                         "sort": [{"isAscending": False, "property": "receivedAt"}], "collapseThreads": True,
                         "position": 0, "limit": 30, "calculateTotal": True}, "0"],
        ["Email/get", {"accountId": account, "#ids": {"resultOf": "0", "name": "Email/query", "path": "/ids"},
                       "properties": ["threadId"]}, "1"],
        ["Thread/get", {"accountId": account,
                        "#ids": {"resultOf": "1", "name": "Email/get", "path": "/list/*/threadId"}}, "2"],
        ["Email/get", {"accountId": account,
                       "#ids": {"resultOf": "2", "name": "Thread/get", "path": "/list/*/emailIds"},
                       "properties": ["threadId", "mailboxIds", "keywords", "hasAttachment", "from", "subject",
                                      "receivedAt", "size", "preview"]}, "3"],
    ])
    query, get1, threads, get2 = (r[1] for r in responses)
    assert query["ids"] == [b, c] and query["total"] == 2 and query["position"] == 0
    assert query["queryState"] == get1["state"]
    assert [t["emailIds"] for t in threads["list"]] == [[a, b], [c]]
    assert [e["id"] for e in get2["list"]] == [a, b, c]
    assert get2["list"][1]["preview"] == "Hi there"
    assert get2["list"][0]["threadId"] == get2["list"][1]["threadId"] != get2["list"][2]["threadId"]


def test_save_draft_examples(client, store, alice):
    """§4.10: a plain-text draft from bodyStructure with header:Content-Language,
    then an updated multipart/alternative draft replacing it in one /set."""
    account = aid(alice)
    first = client.call("Email/set", {"accountId": account, "create": {"k192": {
        "mailboxIds": {mid(DRAFTS): True},
        "keywords": {"$seen": True, "$draft": True},
        "from": [{"name": "Joe Bloggs", "email": "joe@example.com"}],
        "subject": "World domination",
        "receivedAt": "2018-07-10T01:03:11Z",
        "sentAt": "2018-07-10T11:03:11+10:00",
        "bodyStructure": {"type": "text/plain", "partId": "bd48", "header:Content-Language": "en"},
        "bodyValues": {"bd48": {"value": "I have the most brilliant plan.  Let me tell you all about it.  "
                                         "What we do is, we", "isTruncated": False}},
    }}})
    created = first["created"]["k192"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    with store.read(alice) as r:
        raw = r.raw_message(eid(created["id"]))
        rec = r.email(eid(created["id"]))
    assert created["size"] == len(raw) and created["blobId"] == ids.blob_id(rec["blob"])
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Date"] == "Tue, 10 Jul 2018 11:03:11 +1000"
    assert parsed["From"] == "Joe Bloggs <joe@example.com>"
    assert parsed["Subject"] == "World domination"
    assert parsed["Content-Language"].strip() == "en"
    assert parsed["Message-ID"].endswith("@example.org>")
    assert parsed.get_content_type() == "text/plain"
    assert rec["kw"] == ["$draft", "$seen"]
    get = client.call("Email/get", {"ids": [created["id"]], "properties": [
        "receivedAt", "sentAt", "keywords", "mailboxIds", "bodyValues", "textBody"], "fetchTextBodyValues": True},
        alice)["list"][0]
    assert get["receivedAt"] == "2018-07-10T01:03:11Z" and get["sentAt"] == "2018-07-10T11:03:11+10:00"
    assert get["bodyValues"]["1"]["value"] == ("I have the most brilliant plan.  Let me tell you all about it.  "
                                               "What we do is, we")
    assert get["textBody"][0]["language"] == ["en"]

    html = ('<!DOCTYPE html><html><head><title></title><style type="text/css">div{font-size:16px}</style></head>'
            "<body><div>I have the most <b>brilliant</b> plan.</div></body></html>")
    second = client.call("Email/set", {"accountId": account, "create": {"k1546": {
        "mailboxIds": {mid(DRAFTS): True},
        "keywords": {"$seen": True, "$draft": True},
        "from": [{"name": "Joe Bloggs", "email": "joe@example.com"}],
        "to": [{"name": "John", "email": "john@example.com"}],
        "subject": "World domination",
        "receivedAt": "2018-07-10T01:05:08Z",
        "sentAt": "2018-07-10T11:05:08+10:00",
        "bodyStructure": {"type": "multipart/alternative", "subParts": [
            {"partId": "a49d", "type": "text/html", "header:Content-Language": "en"},
            {"partId": "bd48", "type": "text/plain", "header:Content-Language": "en"}]},
        "bodyValues": {"bd48": {"value": "I have the most brilliant plan.", "isTruncated": False},
                       "a49d": {"value": html, "isTruncated": False}},
    }}, "destroy": [created["id"]]})
    assert second["destroyed"] == [created["id"]]
    new = second["created"]["k1546"]["id"]
    got = client.call("Email/get", {"ids": [new, created["id"]], "properties": [
        "bodyStructure", "textBody", "htmlBody", "bodyValues", "to"], "fetchAllBodyValues": True}, alice)
    assert got["notFound"] == [created["id"]]
    email = got["list"][0]
    assert email["to"] == [{"name": "John", "email": "john@example.com"}]
    assert email["bodyStructure"]["type"] == "multipart/alternative"
    assert [p["type"] for p in email["bodyStructure"]["subParts"]] == ["text/html", "text/plain"]
    assert [p["type"] for p in email["textBody"]] == ["text/plain"]
    assert [p["type"] for p in email["htmlBody"]] == ["text/html"]
    # the stored part is the value as given; its bodyValue comes back sanitised (§9.1)
    assert sorted(v["value"] for v in email["bodyValues"].values()) == sorted(
        [sanitize_html(html), "I have the most brilliant plan."])
    with store.read(alice) as r:
        assert html.encode() in r.raw_message(eid(new))


def test_search_snippet_example(client, store, alice):
    """§5.2: snippets for a text search; subject and preview marked, the rest
    HTML-escaped; null where nothing matches."""
    none = add(store, alice, message("Nothing here", "No match at all"))
    both = add(store, alice, message("The Foosball competition",
                                     "This year the foosball competition will be held in the Stadium de ..."))
    body = add(store, alice, message("Results", "the Foo/bar method results often returns <1 widget rather "
                                                "than the complete..."))
    result = client.call("SearchSnippet/get", {"filter": {"text": "foo"}, "emailIds": [none, both, body, "Ex"]},
                         alice)
    snippets = {s["emailId"]: s for s in result["list"]}
    assert result["notFound"] == ["Ex"]
    assert snippets[none] == {"emailId": none, "subject": None, "preview": None}
    assert snippets[both]["subject"] == "The <mark>Foo</mark>sball competition"
    assert snippets[both]["preview"].startswith("This year the <mark>foo</mark>sball competition")
    assert snippets[body]["subject"] is None
    assert "the <mark>Foo</mark>/bar method results often returns &lt;1 widget" in snippets[body]["preview"]
    assert all(len((s["preview"] or "").encode()) <= 255 for s in result["list"])
