"""RFC 8621 §4.1.2-4.1.4: EmailBodyPart, body lists, body values, header forms."""

from __future__ import annotations

import itertools

from mime_helpers import load
from dualmail.mime import summarize
from dualmail.mime.bodylists import body_lists
from dualmail.mime.jmap_body import (
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_raw,
    as_text,
    as_urls,
    body_part,
    body_parts,
    body_value,
    find_part,
    header_property,
    part_blob,
)

_counter = itertools.count()


def _mime(ctype: str, label: str = "", disp: str | None = None, kids: list[bytes] | None = None) -> bytes:
    head = b"Content-Type: " + ctype.encode()
    if kids is not None:
        boundary = b"b%d" % next(_counter)
        head += b"; boundary=" + boundary
    head += b"\r\nContent-Description: " + label.encode() + b"\r\n"
    if disp:
        head += b"Content-Disposition: " + disp.encode() + b"\r\n"
    if kids is None:
        body = b"Subject: inner\r\n\r\nx" if ctype == "message/rfc822" else b"body " + label.encode()
        return head + b"\r\n" + body
    return head + b"\r\n" + b"".join(b"--" + boundary + b"\r\n" + k + b"\r\n" for k in kids) + b"--" + boundary + b"--"


# The RFC 8621 §4.1.4 example structure.
RFC8621_EXAMPLE = _mime(
    "multipart/mixed",
    kids=[
        _mime("text/plain", "A", "inline"),
        _mime(
            "multipart/mixed",
            kids=[
                _mime(
                    "multipart/alternative",
                    kids=[
                        _mime(
                            "multipart/mixed",
                            kids=[
                                _mime("text/plain", "B", "inline"),
                                _mime("image/jpeg", "C", "inline"),
                                _mime("text/plain", "D", "inline"),
                            ],
                        ),
                        _mime("multipart/related", kids=[_mime("text/html", "E"), _mime("image/jpeg", "F")]),
                    ],
                ),
                _mime("image/jpeg", "G", "attachment"),
                _mime("application/x-excel", "H"),
                _mime("message/rfc822", "J"),
            ],
        ),
        _mime("text/plain", "K", "inline"),
    ],
)


def test_rfc8621_body_lists_example():
    """RFC 8621 §4.1.4: textBody [A B C D K], htmlBody [A E K], attachments [C F G H J]."""
    st = summarize(RFC8621_EXAMPLE)["structure"]
    text, html, att = body_lists(st)
    label = lambda nodes: "".join(n["description"] for n in nodes)  # noqa: E731
    assert (label(text), label(html), label(att)) == ("ABCDK", "AEK", "CFGHJ")


def test_alternative_html_only_is_used_for_text_body_too():
    """RFC 8621 §4.1.4 pseudo-code: "Found HTML part only" copies it to textBody."""
    raw = _mime("multipart/alternative", kids=[_mime("text/html", "H")])
    text, html, att = body_lists(summarize(raw)["structure"])
    assert [n["description"] for n in text] == ["H"] == [n["description"] for n in html] and att == []


def test_body_structure_part():
    raw = load("alternative_in_mixed.eml")
    st = summarize(raw)["structure"]
    part = body_part(raw, st, blob_id=lambda pid: "G" + pid.replace(".", "_"))
    assert part["partId"] is None and part["blobId"] is None and part["type"] == "multipart/mixed"
    assert part["headers"][0] == {"name": "From", "value": ' "Doe, John" <john.doe@example.com>'}
    alt, pdf = part["subParts"]
    assert [p["partId"] for p in alt["subParts"]] == ["1.1", "1.2"]
    assert pdf == {
        "partId": "2",
        "blobId": "G2",
        "size": 19,  # decoded size (RFC 8621 §4.1.4 "size")
        "name": "report.pdf",
        "type": "application/pdf",
        "charset": None,
        "disposition": "attachment",
        "cid": None,
        "language": None,
        "location": None,
        "headers": [
            {"name": "Content-Type", "value": ' application/pdf; name="report.pdf"'},
            {"name": "Content-Disposition", "value": ' attachment; filename="report.pdf"'},
            {"name": "Content-Transfer-Encoding", "value": " base64"},
            {"name": "Content-Description", "value": " Weekly report"},
        ],
        "subParts": None,
    }
    plain = alt["subParts"][0]
    assert plain["charset"] == "utf-8" and plain["size"] == len("Status: all green. Café opens at 9.".encode())
    lists = body_parts(raw, st)
    assert [p["partId"] for p in lists["textBody"]] == ["1.1"]
    assert [p["partId"] for p in lists["htmlBody"]] == ["1.2"]
    assert [p["partId"] for p in lists["attachments"]] == ["2"]
    assert body_part(raw, alt["subParts"] and st["parts"][1], properties=["partId", "header:Content-Type:asRaw"]) == {
        "partId": "2",
        "header:Content-Type:asRaw": ' application/pdf; name="report.pdf"',
    }


def test_charset_rules():
    """RFC 8621 §4.1.4 "charset": us-ascii when implicit, null for non-text."""
    st = summarize(load("no_content_type.eml"))["structure"]
    assert st["charset"] == "us-ascii"
    raw = load("alternative_in_mixed.eml")
    assert summarize(raw)["structure"]["parts"][1]["charset"] is None


def test_body_value_decoding_and_truncation():
    raw = load("alternative_in_mixed.eml")
    st = summarize(raw)["structure"]
    plain = find_part(st, "1.1")
    assert body_value(raw, plain) == {
        "value": "Status: all green. Café opens at 9.",
        "isEncodingProblem": False,
        "isTruncated": False,
    }
    # "é" is 2 octets at offsets 22-23: a cut at 23 must not split it
    assert body_value(raw, plain, 23)["value"] == "Status: all green. Caf"
    assert body_value(raw, plain, 24) == {"value": "Status: all green. Café", "isEncodingProblem": False, "isTruncated": True}
    assert body_value(raw, plain, 0)["isTruncated"] is False


def test_body_value_crlf_and_problems():
    raw = load("bad_charset.eml")
    st = summarize(raw)["structure"]
    unknown = body_value(raw, find_part(st, "1"))
    assert unknown == {"value": "café unknown charset", "isEncodingProblem": True, "isTruncated": False}
    assert body_value(raw, find_part(st, "3"))["isEncodingProblem"] is True  # unknown CTE
    simple = load("simple.eml")
    value = body_value(simple, summarize(simple)["structure"])["value"]
    assert "\r" not in value and value.startswith("Hi Bob,\n\n")


def test_part_blob():
    raw = load("related_inline.eml")
    st = summarize(raw)["structure"]
    assert part_blob(raw, find_part(st, "2")) == b"\x89PNG\r\n\x1a\n"


# -- header forms (RFC 8621 §4.1.2) ---------------------------------------------

EXAMPLE = b' "  James Smythe" <james@example.com>, Friends:\r\n jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?=\r\n <john@example.com>;'


def test_addresses_rfc_example():
    """RFC 8621 §4.1.2.3 example (the RFC text shows "Smith" for Sm=C3=AEth)."""
    assert as_addresses(EXAMPLE) == [
        {"name": "James Smythe", "email": "james@example.com"},
        {"name": None, "email": "jane@example.com"},
        {"name": "John Smîth", "email": "john@example.com"},
    ]


def test_grouped_addresses_rfc_example():
    """RFC 8621 §4.1.2.4 example."""
    assert as_grouped_addresses(EXAMPLE) == [
        {"name": None, "addresses": [{"name": "James Smythe", "email": "james@example.com"}]},
        {
            "name": "Friends",
            "addresses": [
                {"name": None, "email": "jane@example.com"},
                {"name": "John Smîth", "email": "john@example.com"},
            ],
        },
    ]


def test_address_comment_as_name_and_leniency():
    """RFC 8621 §4.1.2.3: a comment after the addr-spec is the name."""
    assert as_addresses(b" john@example.com (John Doe)") == [{"name": "John Doe", "email": "john@example.com"}]
    # an unterminated quote runs to the end: one word, no "@" -> address without domain
    assert as_addresses(b' "unterminated <a@b.c>, , x@y.z') == [{"name": None, "email": '"unterminated <a@b.c>, , x@y.z"'}]
    assert as_addresses(b" <a@b.c>,,nodomain") == [
        {"name": None, "email": "a@b.c"},
        {"name": None, "email": "nodomain"},
    ]
    assert as_addresses(b' "john doe"@example.com') == [{"name": None, "email": '"john doe"@example.com'}]


def test_text_form():
    """RFC 8621 §4.1.2.2: unfold, strip leading SP, decode only well-placed encoded-words, NFC."""
    assert as_text(b" =?utf-8?q?caf=C3=A9?=\r\n =?utf-8?q?_au_lait?=") == "café au lait"
    assert as_text(b" x=?utf-8?q?caf=C3=A9?=") == "x=?utf-8?q?caf=C3=A9?="  # placement violated
    assert as_text(b" =?x-unknown?q?abc?=") == "=?x-unknown?q?abc?="  # unknown charset
    assert as_text(b" =?utf-8?q?e=CC=81?=") == "é"  # NFC
    assert as_text(b" =?utf-8?q?a=00b?=") == "ab"  # control characters dropped


def test_raw_form():
    """RFC 8621 §4.1.2.1: invalid UTF-8 replaced, NUL dropped, folding kept."""
    assert as_raw(b" a\xffb\x00c\r\n d") == " a\ufffdbc\r\n d"


def test_message_ids_date_urls():
    assert as_message_ids(b" <a@b> (comment) <c@d>") == ["a@b", "c@d"]
    assert as_message_ids(b" not an id") is None
    assert as_date(b" Tue, 1 Jul 2003 10:52:37 +0200") == "2003-07-01T10:52:37+02:00"
    assert as_date(b" 1 Jul 2003 10:52:37 GMT") == "2003-07-01T10:52:37Z"
    assert as_date(b" yesterday") is None
    assert as_urls(b" <mailto:list@example.com?subject=help> (List Instructions),\r\n <https://example.com/help>") == [
        "mailto:list@example.com?subject=help",
        "https://example.com/help",
    ]
    assert as_urls(b" none") is None


def test_header_property_last_and_all():
    """RFC 8621 §4.1.3: without :all the last instance; names case-insensitive."""
    raw = b"X-A: one\r\nx-a: two\r\nSubject: s\r\n\r\nbody"
    st = summarize(raw)["structure"]
    assert header_property(raw, st, "X-A") == " two"
    assert header_property(raw, st, "x-A", "Text", all=True) == ["one", "two"]
    assert header_property(raw, st, "Missing") is None
    assert header_property(raw, st, "Missing", all=True) == []
