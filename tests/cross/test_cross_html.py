"""HTML mail end to end (RFC 8621 §9.1, docs/security.md "HTML"): on the real service
a hostile HTML message, APPENDed over IMAP, comes back from JMAP Email/get and
Email/parse (fetchHTMLBodyValues, fetchAllBodyValues) sanitised, with isTruncated and
maxBodyValueBytes right; the blob download, the part blob and IMAP BODY[] stay
byte-exact; ``--no-html-sanitize`` serves the value as sent."""

from __future__ import annotations

import re

import pytest
import pytest_twisted

from dualmail.mime.sanitize import sanitize_html
from tests.cross.cross_util import AUTH, USER, close, in_thread, running

pytestmark = pytest.mark.e2e

HTML = ('<html><head><base href="http://evil.example/"><style>@import "http://t.example/x.css";</style>'
        '<script>alert(1)</script></head><body onload="alert(2)">'
        '<p style="background:url(http://t.example/p.gif)">Hello <b>world</b></p>'
        '<a href="javascript:alert(3)">bad</a> <a href="https://example.org/ok">good</a>'
        '<img src="cid:logo@example.org"><img src="data:text/html,x" onerror="alert(4)">'
        '<form action="http://phish.example/"><input name="pw"></form>'
        '<iframe src="http://x.example/"></iframe>' + "<p>pad " + "é" * 200 + "</p></body></html>")
RAW = ("From: Bob <bob@example.org>\r\nTo: " + USER + "\r\nSubject: html\r\n"
       "Message-ID: <html1@example.org>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
       "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello world\r\n"
       "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
       + HTML + "\r\n--b--\r\n").encode()
HANDLERS = re.compile(r"<[^>]*\son\w+=|<script|javascript:|<iframe|<form|<base|url\(|@import", re.I)


def _append_and_fetch(svc) -> bytes:
    client = svc.imap()
    try:
        client.append("INBOX", RAW)
        client.select_folder("INBOX")
        [uid] = client.search(["ALL"])
        return client.fetch([uid], ["BODY.PEEK[]", "BODY.PEEK[2]"])[uid]
    finally:
        close(client)


async def _download(svc, blob_id: str) -> bytes:
    jmap = svc.jmap
    url = (jmap.session["downloadUrl"].replace("{accountId}", jmap.account).replace("{blobId}", blob_id)
           .replace("{name}", "m.eml").replace("{type}", "application/octet-stream"))
    response = await jmap.http.get(url, headers=AUTH)
    assert response.code == 200
    return await response.content()


@pytest_twisted.ensureDeferred
async def test_html_sanitised_and_bytes_exact(tmp_path):
    async with running(tmp_path) as svc:
        fetched = await in_thread(_append_and_fetch, svc)
        assert fetched[b"BODY[]"] == RAW  # IMAP stays byte-exact
        assert HTML.encode() in fetched[b"BODY[2]"]
        jmap = svc.jmap
        [email_id] = (await jmap.call("Email/query", {}))["ids"]
        props = ["blobId", "htmlBody", "textBody", "bodyValues"]
        for flags in ({"fetchHTMLBodyValues": True}, {"fetchAllBodyValues": True}):
            [email] = (await jmap.call("Email/get", {"ids": [email_id], "properties": props, **flags}))["list"]
            [html_part] = email["htmlBody"]
            value = email["bodyValues"][html_part["partId"]]
            assert value == {"value": sanitize_html(HTML), "isEncodingProblem": False, "isTruncated": False}
            assert not HANDLERS.search(value["value"]), value["value"]
            assert '<a href="https://example.org/ok" rel="noopener noreferrer">good</a>' in value["value"]
            assert '<img src="cid:logo@example.org">' in value["value"]
        # maxBodyValueBytes: the sanitised text, cut on a UTF-8 boundary, never inside a tag
        [email] = (await jmap.call("Email/get", {"ids": [email_id], "properties": ["bodyValues"],
                                                 "fetchHTMLBodyValues": True, "maxBodyValueBytes": 301}))["list"]
        [value] = email["bodyValues"].values()
        assert value["isTruncated"] is True and len(value["value"].encode()) <= 301
        assert sanitize_html(HTML).startswith(value["value"])
        assert value["value"].rfind("<") < value["value"].rfind(">") or "<" not in value["value"]
        # the text part is not HTML: untouched
        [email] = (await jmap.call("Email/get", {"ids": [email_id], "properties": ["bodyValues", "textBody"],
                                                 "fetchTextBodyValues": True}))["list"]
        assert email["bodyValues"][email["textBody"][0]["partId"]]["value"] == "Hello world"
        # Email/parse sanitises the same way
        email_blob = (await jmap.call("Email/get", {"ids": [email_id], "properties": ["blobId"]})
                                      )["list"][0]["blobId"]
        parsed = (await jmap.call("Email/parse", {"blobIds": [email_blob], "properties": ["bodyValues", "htmlBody"],
                                                  "fetchHTMLBodyValues": True}))["parsed"][email_blob]
        assert parsed["bodyValues"][parsed["htmlBody"][0]["partId"]]["value"] == sanitize_html(HTML)
        # blob downloads are byte-exact: the message and the HTML part
        assert await _download(svc, email_blob) == RAW
        part = await _download(svc, html_part["blobId"])
        assert part.rstrip(b"\r\n") == HTML.encode()


@pytest_twisted.ensureDeferred
async def test_no_html_sanitize_option(tmp_path):
    async with running(tmp_path, ("--no-html-sanitize",)) as svc:
        await in_thread(_append_and_fetch, svc)
        jmap = svc.jmap
        [email_id] = (await jmap.call("Email/query", {}))["ids"]
        [email] = (await jmap.call("Email/get", {"ids": [email_id], "properties": ["bodyValues", "htmlBody"],
                                                 "fetchHTMLBodyValues": True}))["list"]
        assert email["bodyValues"][email["htmlBody"][0]["partId"]]["value"] == HTML
