"""HTML to text for preview and the search text (docs/dependencies.md "nh3"): block
elements are word boundaries, script/style/title are not text, references are decoded;
JMAP ``text`` filters and IMAP-equivalent searches find words of HTML parts; previews
and search text are stored at ingest, so a message ingested by an older converter keeps
serving what was stored; a document nested deeper than browsers build is read in linear
time (``text.too_deep``)."""

from __future__ import annotations

import time

import dualmail.mime.parse as parse
from dualmail.mime.sanitize import sanitize_html
from dualmail.mime.text import MAX_OPEN_ELEMENTS, html_to_text, too_deep
from tests.jmap_mail.jmap_mail_util import add

HTML_MAIL = ("From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: html only\r\n"
             "Message-ID: <h1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
             "<html><head><title>TitleWord</title><style>p{color:red}</style></head><body>"
             "<script>scriptword()</script><p>first</p><p>second&nbsp;&amp;&#x20AC;</p>"
             "<div>zebra<br>quagga</div><!-- commentword --></body></html>\r\n").encode()


def test_html_to_text_units():
    assert html_to_text("<p>a</p><p>b</p>").split() == ["a", "b"]
    assert html_to_text("<div>x<br>y</div>").split() == ["x", "y"]
    assert html_to_text("<script>s()</script><style>p{}</style><title>t</title>v").strip() == "v"
    assert html_to_text("&lt;b&gt; &amp; &eacute; &#x20AC;") == "<b> & é €"
    assert html_to_text("<!-- c -->x<![CDATA[y]]>") == "x"
    assert html_to_text("abc", limit=2) == "ab"
    assert html_to_text("<p>unclosed <b>bold <i>it") .split() == ["unclosed", "bold", "it"]


def test_deep_documents_are_linear():
    deep = "<div>" * 100_000 + "deepword" + "</div>" * 100_000
    assert too_deep(deep) and not too_deep("<div>" * MAX_OPEN_ELEMENTS)
    assert not too_deep("<p>" * 10_000 + "<br>" * 10_000 + "<div></div>" * 10_000)
    start = time.perf_counter()
    assert html_to_text(deep).strip() == "deepword"
    clean = sanitize_html(deep)
    assert clean == "<pre>deepword</pre>" and sanitize_html(clean) == clean
    formatting = "".join(f"<b x{i}>" for i in range(20_000)) + "<p>w</p>" * 20_000
    assert html_to_text(formatting).split() == ["w"] * 20_000
    assert time.perf_counter() - start < 20  # seconds on a loaded CI machine; quadratic takes minutes


def test_preview_and_search_of_html(client, store, alice):
    e = add(store, alice, HTML_MAIL)
    [email] = client.call("Email/get", {"ids": [e], "properties": ["preview"]}, alice)["list"]
    assert email["preview"] == "first second &€ zebra quagga"  # whitespace (nbsp too) collapsed
    for word, found in (("zebra", True), ("quagga", True), ("second", True), ("scriptword", False),
                        ("TitleWord", False), ("commentword", False)):
        ids = client.call("Email/query", {"filter": {"text": word}}, alice)["ids"]
        assert (ids == [e]) is found, word
        ids = client.call("Email/query", {"filter": {"body": word}}, alice)["ids"]
        assert (ids == [e]) is found, word


def test_stored_preview_and_text_of_old_messages_serve(client, store, alice, monkeypatch):
    """A message ingested when the converter gave other text keeps that stored text:
    preview and search never re-parse the message."""
    monkeypatch.setattr(parse, "html_to_text", lambda html, limit=1 << 20: "oldconverter output")
    e = add(store, alice, HTML_MAIL)
    monkeypatch.undo()
    [email] = client.call("Email/get", {"ids": [e], "properties": ["preview"]}, alice)["list"]
    assert email["preview"] == "oldconverter output"
    assert client.call("Email/query", {"filter": {"body": "oldconverter"}}, alice)["ids"] == [e]
    new = add(store, alice, HTML_MAIL.replace(b"<h1@", b"<h2@"))
    assert client.call("Email/query", {"filter": {"body": "zebra"}}, alice)["ids"] == [new]
