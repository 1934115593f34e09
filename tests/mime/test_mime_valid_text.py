"""Decoded text is always valid Unicode (issue 10): what a charset decoder yields
that UTF-8 cannot carry (a lone surrogate, RFC 3629 §3 — UTF-7 ``+2AA-`` is U+D800)
becomes U+FFFD where the text is produced: RFC 2047 words, text parts, RFC 2231
parameters, filenames, addresses, preview, search text, base subject and every
RFC 8621 header form and body value made at /get time."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dualmail.mime import summarize
from dualmail.mime.bodylists import body_lists
from dualmail.mime.headers import parse_content_type
from dualmail.mime.imap_body import bodystructure_bytes, envelope_bytes
from dualmail.mime.jmap_body import HEADER_FORMS, body_part, body_value, header_property
from dualmail.mime.rfc2047 import decode_words
from dualmail.mime.structure import iter_nodes
from dualmail.mime.text import decode_text, valid_text
from dualmail.search.imap_keys import _decode as search_decode
from tests.mime.hostile import assert_valid_unicode, hostile_message, octets

SUBJECT = b"From: a@b.c\r\nSubject: =?utf-7?q?+2AA-?=\r\n\r\nhi\r\n"
BODY = b"From: a@b.c\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nhi +2AA- there\r\n"
NAME = (b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"hi\r\n--b\r\nContent-Type: application/octet-stream; name=\"=?utf-7?q?+2AA-?=\"\r\n\r\nxx\r\n--b--\r\n")
RFC2231 = NAME.replace(b'name="=?utf-7?q?+2AA-?="', b"name*=utf-7''%2B2AA-")
ADDRESS = b"From: =?utf-7?q?+2AA-?= <a@b.c>\r\nTo: =?utf-7?b?KzJBQS0=?= <d@e.f>\r\n\r\nhi\r\n"


def test_valid_text():
    assert valid_text("a\ud800b\udfff") == "a\ufffdb\ufffd"
    text = "caf\u00e9 \U0001f600"
    assert valid_text(text) is text


def test_decoders_make_valid_text():
    assert decode_words("=?utf-7?q?+2AA-?=") == "\ufffd"
    assert decode_words("x =?utf-7?q?a+2AA-b?= y") == "x a\ufffdb y"
    assert decode_text(b"+2AA-", "utf-7") == ("\ufffd", True)  # malformed: isEncodingProblem
    assert decode_text(b"+AGE-", "utf-7") == ("a", False)
    assert parse_content_type("a/b; name*=utf-7''%2B2AA-")[2] == [["name", "\ufffd"]]
    assert search_decode(b"+2AA-", "utf-7") == "\ufffd"  # IMAP SEARCH CHARSET UTF-7


@pytest.mark.parametrize("raw, key, expected", [
    (SUBJECT, "subject", "\ufffd"),
    (SUBJECT, "base_subject", "\ufffd"),
    (BODY, "preview", "hi \ufffd there"),
    (BODY, "body_text", "hi \ufffd there\n"),
])
def test_summary_fields(raw, key, expected):
    s = summarize(raw)
    assert s[key] == expected
    assert_valid_unicode(s)


def test_summary_names_and_addresses():
    s = summarize(NAME)
    assert s["structure"]["parts"][1]["name"] == "\ufffd"
    assert_valid_unicode(s)
    s = summarize(RFC2231)
    assert s["structure"]["parts"][1]["name"] == "\ufffd"
    assert_valid_unicode(s)
    s = summarize(ADDRESS)
    assert s["from"] == [{"name": "\ufffd", "email": "a@b.c"}]
    assert s["to"] == [{"name": "\ufffd", "email": "d@e.f"}]
    assert "\ufffd" in s["header_text"]
    assert_valid_unicode(s)


def _everything(raw: bytes) -> list:
    """The summary and every form RFC 8621 /get makes from the raw message."""
    s = summarize(raw)
    structure = s["structure"]
    out: list = [s]
    for node in iter_nodes(structure):
        props = ["partId", "blobId", "size", "headers", "name", "type", "charset", "disposition", "cid",
                 "language", "location", "subParts", "header:Content-Type:asText",
                 "header:Content-Description:asText:all"]
        out.append(body_part(raw, node, lambda p: "B" + p, props))
        if node["type"] == "text":
            out.append(body_value(raw, node))
            out.append(body_value(raw, node, 7))
    for name in ("From", "To", "Subject", "X-Hostile", "Message-ID", "Content-Type"):
        for form in HEADER_FORMS:
            out.append(header_property(raw, structure, name, form, all=True))
    for lst in body_lists(structure):
        out.append([n.get("name") for n in lst])
    bodystructure_bytes(structure, True)
    envelope_bytes(s["envelope"])
    return out


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_message())
def test_hostile_charsets_give_valid_unicode(raw):
    assert_valid_unicode(_everything(raw))


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(octets, st.sampled_from(["utf-7", "utf-16", "utf-32", "utf-16-le", "hz", "iso-2022-jp"]))
def test_any_octets_in_surrogate_prone_charsets(data, charset):
    assert_valid_unicode([decode_text(data, charset)[0], decode_words(
        "=?" + charset + "?Q?" + "".join(f"={b:02X}" for b in data) + "?=")])
