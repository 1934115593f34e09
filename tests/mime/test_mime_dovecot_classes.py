"""The MIME classes the Dovecot differential test (tests/dovecot) found, as sans-I/O units.

Each is also compared with Dovecot end to end; here the rule is pinned down byte for byte.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from dualmail.mime import summarize
from dualmail.mime.imap_body import bodystructure_bytes, envelope_bytes, section_bytes
from dualmail.mime.structure import count_lines
from mime_helpers import check_offsets

REUSED = (
    b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\npreamble\r\n"
    b"--B\r\nContent-Type: multipart/alternative; boundary=\"B\"\r\n\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"--B\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"--B--\r\n"
    b"--B\r\nContent-Type: application/octet-stream\r\n\r\nAAEC\r\n"
    b"--B--\r\n"
)


def test_nested_multipart_reusing_the_parent_boundary():
    """A nested multipart with its parent's boundary (RFC 2046 §5.1.1 forbids it; Outlook
    Express did it) takes the delimiters up to its own close delimiter, as Dovecot and
    Thunderbird read it: mixed(alternative(plain, html), octet-stream)."""
    s = summarize(REUSED)
    root = s["structure"]
    assert [c["type"] + "/" + c["subtype"] for c in root["parts"]] == ["multipart/alternative", "application/octet-stream"]
    alt = root["parts"][0]
    assert [(c["part"], c["subtype"]) for c in alt["parts"]] == [("1.1", "plain"), ("1.2", "html")]
    assert section_bytes(REUSED, root, "1.1") == b"plain"
    assert section_bytes(REUSED, root, "1.2") == b"<p>html</p>"
    assert section_bytes(REUSED, root, "2") == b"AAEC"
    check_offsets(root, 0, len(REUSED))


def test_content_type_text_without_subtype_keeps_its_charset():
    """RFC 2045 §5.2: an invalid Content-Type is taken as text/plain; the charset it names is kept."""
    raw = b"Content-Type: text; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n"
    s = summarize(raw)
    assert (s["structure"]["type"], s["structure"]["subtype"], s["structure"]["charset"]) == ("text", "plain", "iso-8859-1")
    assert "café" in s["body_text"]
    assert bodystructure_bytes(s["structure"], False) == \
        b'("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 8 1)'


def test_default_charset_comes_after_the_other_parameters():
    raw = b"Content-Type: text/plain; name=a.txt\r\n\r\nx\r\n"
    assert bodystructure_bytes(summarize(raw)["structure"], False) == \
        b'("TEXT" "PLAIN" ("NAME" "a.txt" "CHARSET" "us-ascii") NIL NIL "7BIT" 3 1)'


def test_repeated_address_fields_are_joined_in_the_envelope():
    raw = b"From: a@x.example\r\nCc: b@x.example\r\nCC: c@x.example, d@x.example\r\nSubject: s\r\n\r\nbody\r\n"
    env = summarize(raw)["envelope"]
    assert [a[2] for a in env["cc"]] == ["b", "c", "d"]
    assert b'((NIL NIL "b" "x.example")(NIL NIL "c" "x.example")(NIL NIL "d" "x.example"))' in envelope_bytes(env)


def test_an_attached_message_header_is_body_text():
    """RFC 9051 §6.4.4: BODY/TEXT search the body, which holds the attached message's header."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nsee below\r\n--b\r\n"
           b"Content-Type: message/rfc822\r\n\r\nSubject: =?utf-8?q?m=C3=A9ssage?=\r\nFrom: x@y.example\r\n\r\n"
           b"inner text\r\n--b--\r\n")
    text = summarize(raw)["body_text"]
    assert "Subject: méssage" in text and "inner text" in text and "see below" in text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_lines_are_line_ends(data):
    """BODYSTRUCTURE lines = the number of LFs in the part (the last, unterminated line of
    a part, whose CRLF belongs to the delimiter, is not counted), as Dovecot counts."""
    assert count_lines(data, 0, len(data)) == data.count(b"\n")
