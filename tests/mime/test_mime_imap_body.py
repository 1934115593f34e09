"""IMAP FETCH rendering: ENVELOPE, BODY/BODYSTRUCTURE, BODY[section], BINARY[]."""

from __future__ import annotations

import pytest

from mime_helpers import load
from dualmail.mime import summarize
from dualmail.mime.imap_body import (
    SectionError,
    UnknownCTEError,
    binary_section,
    binary_size,
    bodystructure_bytes,
    envelope_bytes,
    parse_section,
    section_bytes,
)


def _bs(name: str, ext: bool = True) -> bytes:
    return bodystructure_bytes(summarize(load(name))["structure"], ext)


# -- BODYSTRUCTURE / BODY: hand-checked strings --------------------------------------


def test_simple_text_plain():
    """RFC 9051 §7.5.2: type, subtype, params, id, description, encoding, size, lines;
    then md5, disposition, language, location.  Body is 54 octets in 5 lines."""
    assert _bs("simple.eml") == b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 54 5 NIL NIL NIL NIL)'
    assert _bs("simple.eml", ext=False) == b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 54 5)'


def test_missing_content_type_defaults():
    """RFC 2045 §5.2 default, 39 octets in 2 lines."""
    assert _bs("no_content_type.eml", ext=False) == b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 39 2)'


def test_alternative_inside_mixed():
    """RFC 9051 §7.5.2 / RFC 3501 §7.4.2: nested multiparts are concatenated
    bodies followed by the subtype; multipart extension data is params,
    disposition, language, location.  QP plain part: 40 octets, 0 line ends; HTML
    part: 148 octets, 1 line end (the CRLF before a delimiter belongs to it,
    RFC 2046 §5.1.1, so a part's last line has none and is not counted, as in Dovecot); base64 PDF: 28 octets, no line count (not text)."""
    assert _bs("alternative_in_mixed.eml") == (
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 40 0 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 148 1 NIL NIL NIL NIL)'
        b' "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "report.pdf") NIL "Weekly report" "BASE64" 28 NIL'
        b' ("ATTACHMENT" ("FILENAME" "report.pdf")) NIL NIL)'
        b' "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)'
    )
    assert _bs("alternative_in_mixed.eml", ext=False) == (
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 40 0)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 148 1) "ALTERNATIVE")'
        b'("APPLICATION" "PDF" ("NAME" "report.pdf") NIL "Weekly report" "BASE64" 28) "MIXED")'
    )


def test_message_rfc822_part():
    """RFC 9051 §7.5.2: MESSAGE/RFC822 adds envelope, body structure and line
    count (370 octets, 15 line ends) of the encapsulated message."""
    assert _bs("rfc822_attachment.eml", ext=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 25 0)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 370'
        b' ("Wed, 2 Jul 2003 09:00:00 +0000" "original"'
        b' (("Original Sender" NIL "orig" "example.org")) (("Original Sender" NIL "orig" "example.org"))'
        b' (("Original Sender" NIL "orig" "example.org")) ((NIL NIL "forwarder" "example.com"))'
        b' NIL NIL NIL "<orig-1@example.org>")'
        b' (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 0)'
        b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 21 0) "ALTERNATIVE") 15)'
        b' "MIXED")'
    )


def test_rfc2231_params_reencoded_for_the_wire():
    """RFC 9051 §7.5.2 asks servers to decode RFC 2231; non-ASCII results are
    sent as NAME* in RFC 2231 §4 form so 7-bit clients can still read them."""
    assert _bs("encoded_headers.eml") == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME*" "utf-8\'\'%E6%97%A5%E6%9C%AC%E8%AA%9E.txt") NIL NIL "BASE64" 8 NIL'
        b' ("ATTACHMENT" ("FILENAME*" "utf-8\'\'%C2%A3%20rates.txt")) NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME" "=?utf-8?q?r=C3=A9sum=C3=A9.doc?=") NIL NIL "7BIT" 2 NIL'
        b' ("ATTACHMENT" ("FILENAME" "longname.doc")) NIL NIL)'
        b' "MIXED" ("BOUNDARY" "enc") NIL NIL NIL)'
    )


def test_language_location_and_digest():
    raw = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: x\r\n\r\ny\r\n--d\r\n"
        b"Content-Type: text/plain\r\nContent-Language: en, de (German)\r\nContent-Location: http://e.x/\r\n"
        b" a.txt\r\n\r\nz\r\n--d--\r\n"
    )
    assert bodystructure_bytes(summarize(raw)["structure"]) == (
        b'(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 15 (NIL "x" NIL NIL NIL NIL NIL NIL NIL NIL)'
        b' ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 1 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)'
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 1 0 NIL NIL ("en" "de") "http://e.x/a.txt")'
        b' "DIGEST" ("BOUNDARY" "d") NIL NIL NIL)'
    )


def test_encoded_message_rfc822_is_described_as_octet_stream():
    raw = (
        b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: message/rfc822\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKeQo=\r\n--m--\r\n"
    )
    s = summarize(raw)
    assert s["structure"]["parts"][0]["message"] is None
    assert bodystructure_bytes(s["structure"], False) == b'(("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 20) "MIXED")'


# -- ENVELOPE ---------------------------------------------------------------------


def test_envelope_simple():
    """RFC 9051 §7.5.2: Sender and Reply-To default to From."""
    assert envelope_bytes(summarize(load("simple.eml"))["envelope"]) == (
        b'("Mon, 7 Feb 1994 21:52:25 -0800" "Lunch tomorrow?"'
        b' (("Alice Example" NIL "alice" "example.com")) (("Alice Example" NIL "alice" "example.com"))'
        b' (("Alice Example" NIL "alice" "example.com")) (("Bob" NIL "bob" "example.net"))'
        b' NIL NIL NIL "<B27397-0100000@example.com>")'
    )


def test_envelope_groups_routes_and_quoting():
    """RFC 3501 §7.4.2 group markers; source route in adl; encoded words stay raw."""
    raw = (
        b'From: "Q \\"uote\\"" <@relay.example:user@example.com>\r\n'
        b"To: undisclosed-recipients:;\r\n"
        b"Cc: Friends: a@x.example, =?UTF-8?Q?J=C3=B6?= <b@x.example>;, c@y.example\r\n"
        b"Subject:\r\n\r\n"
    )
    env = summarize(raw)["envelope"]
    assert env["subject"] == ""
    assert envelope_bytes(env) == (
        b'(NIL ""'
        b' (("Q \\"uote\\"" "@relay.example" "user" "example.com"))'
        b' (("Q \\"uote\\"" "@relay.example" "user" "example.com"))'
        b' (("Q \\"uote\\"" "@relay.example" "user" "example.com"))'
        b' ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'
        b' ((NIL NIL "Friends" NIL)(NIL NIL "a" "x.example")("=?UTF-8?Q?J=C3=B6?=" NIL "b" "x.example")'
        b'(NIL NIL NIL NIL)(NIL NIL "c" "y.example"))'
        b" NIL NIL NIL)"
    )


def test_envelope_literal_for_8bit_and_crlf_free_strings():
    env = summarize(load("utf8_headers.eml"))["envelope"]
    out = envelope_bytes(env)
    subject = "Grüße aus München".encode()
    assert b"{%d}\r\n" % len(subject) + subject in out


# -- BODY[section] ----------------------------------------------------------------------

# The RFC 9051 §6.4.5.1 example message; each leaf's body names its part number.
COMPLEX = b"\r\n".join(
    [
        b"Subject: complex",
        b"Content-Type: MULTIPART/MIXED; boundary=top",
        b"",
        b"--top",
        b"Content-Type: TEXT/PLAIN",
        b"",
        b"part 1",
        b"--top",
        b"Content-Type: APPLICATION/OCTET-STREAM",
        b"",
        b"part 2",
        b"--top",
        b"Content-Type: MESSAGE/RFC822",
        b"",
        b"Subject: three",
        b"Content-Type: MULTIPART/MIXED; boundary=three",
        b"",
        b"--three",
        b"Content-Type: TEXT/PLAIN",
        b"",
        b"part 3.1",
        b"--three",
        b"Content-Type: APPLICATION/OCTET-STREAM",
        b"",
        b"part 3.2",
        b"--three--",
        b"--top",
        b"Content-Type: MULTIPART/MIXED; boundary=four",
        b"",
        b"--four",
        b"Content-Type: IMAGE/GIF",
        b"",
        b"part 4.1",
        b"--four",
        b"Content-Type: MESSAGE/RFC822",
        b"",
        b"Subject: four-two",
        b"Content-Type: MULTIPART/MIXED; boundary=fourtwo",
        b"",
        b"--fourtwo",
        b"Content-Type: TEXT/PLAIN",
        b"",
        b"part 4.2.1",
        b"--fourtwo",
        b"Content-Type: MULTIPART/ALTERNATIVE; boundary=alt",
        b"",
        b"--alt",
        b"Content-Type: TEXT/PLAIN",
        b"",
        b"part 4.2.2.1",
        b"--alt",
        b"Content-Type: TEXT/RICHTEXT",
        b"",
        b"part 4.2.2.2",
        b"--alt--",
        b"--fourtwo--",
        b"--four--",
        b"--top--",
        b"",
    ]
)


@pytest.mark.parametrize("part", ["1", "2", "3.1", "3.2", "4.1", "4.2.1", "4.2.2.1", "4.2.2.2"])
def test_rfc9051_part_numbers(part):
    """RFC 9051 §6.4.5.1 example: every leaf is found by its part number."""
    st = summarize(COMPLEX)["structure"]
    assert section_bytes(COMPLEX, st, part) == b"part " + part.encode()


def test_rfc9051_header_text_mime_specifiers():
    st = summarize(COMPLEX)["structure"]
    s = lambda sec: section_bytes(COMPLEX, st, sec)  # noqa: E731
    assert s("") == COMPLEX
    assert s("HEADER") == b"Subject: complex\r\nContent-Type: MULTIPART/MIXED; boundary=top\r\n\r\n"
    assert s("TEXT") == COMPLEX[len(s("HEADER")) :]
    assert s("3.HEADER") == b"Subject: three\r\nContent-Type: MULTIPART/MIXED; boundary=three\r\n\r\n"
    assert s("3.TEXT").startswith(b"--three\r\n") and s("3.TEXT").endswith(b"--three--")
    assert s("3") == s("3.HEADER") + s("3.TEXT")
    assert s("4.1.MIME") == b"Content-Type: IMAGE/GIF\r\n\r\n"
    assert s("4.2.HEADER.FIELDS (SUBJECT)") == b"Subject: four-two\r\n\r\n"
    assert s("4.2.2.MIME") == b"Content-Type: MULTIPART/ALTERNATIVE; boundary=alt\r\n\r\n"
    assert s("4.2.2").startswith(b"--alt\r\n")
    # HEADER/TEXT only apply to message parts; non-existent parts are empty
    assert s("1.HEADER") == b"" and s("5") == b"" and s("4.3") == b"" and s("1.1") == b""


def test_single_part_message_has_part_1():
    """RFC 9051 §6.4.5.1: a non-multipart message has only a part 1, its body."""
    raw = load("simple.eml")
    st = summarize(raw)["structure"]
    assert section_bytes(raw, st, "1") == section_bytes(raw, st, "TEXT") == raw[raw.index(b"\r\n\r\n") + 4 :]
    assert section_bytes(raw, st, "2") == b""


def test_header_fields_case_insensitive_with_blank_line():
    """RFC 9051 §6.4.5.1: matching is case-insensitive; the blank line is included."""
    raw = load("alternative_in_mixed.eml")
    st = summarize(raw)["structure"]
    assert section_bytes(raw, st, "HEADER.FIELDS (from sUBJECT x-none)") == (
        b'From: "Doe, John" <john.doe@example.com>\r\nSubject: Re: Fwd: [proj] Status report (fwd)\r\n\r\n'
    )
    # folded fields are returned whole
    assert section_bytes(raw, st, ["HEADER.FIELDS", ["References"]]) == (
        b"References: <root@example.com> (the root)\r\n <orig@example.com>\r\n\r\n"
    )
    assert section_bytes(raw, st, "HEADER.FIELDS (X-NONE)") == b"\r\n"
    not_fields = section_bytes(raw, st, "HEADER.FIELDS.NOT (References Content-Type MIME-Version)")
    assert b"References" not in not_fields and not_fields.endswith(b"\r\n\r\n") and b"From:" in not_fields


def test_header_fields_without_blank_line():
    """RFC 9051 §6.4.5.1: no blank line when the message has none (no body)."""
    raw = load("no_body.eml")
    st = summarize(raw)["structure"]
    assert section_bytes(raw, st, "HEADER") == raw
    assert section_bytes(raw, st, "HEADER.FIELDS (DATE)") == b"Date: Sun, 6 Jul 2003 00:00:00 +0000\r\n"


def test_lf_only_sections_are_raw_slices():
    raw = load("lf_only.eml")
    st = summarize(raw)["structure"]
    assert section_bytes(raw, st, "HEADER").endswith(b"us-ascii\n\n")
    assert section_bytes(raw, st, "HEADER.FIELDS (subject)") == b"Subject: Lunch tomorrow?\n\n"


def test_section_list_form_and_errors():
    assert parse_section([1, 2, "header.fields", ["From"]]) == ([1, 2], "HEADER.FIELDS", ["From"])
    assert parse_section("1.2.MIME") == ([1, 2], "MIME", [])
    assert parse_section('HEADER.FIELDS.NOT ("From" To)') == ([], "HEADER.FIELDS.NOT", ["From", "To"])
    for bad in ["0", "1.0", "MIME", "HEADER.FIELDS", "1.FOO", "TEXT (From)", "HEADER.FIELDS (From"]:
        with pytest.raises(SectionError):
            parse_section(bad)


def test_sizes_match_sections():
    """BODYSTRUCTURE size == length of BODY[part] for every leaf."""
    st = summarize(COMPLEX)["structure"]
    for part in ["1", "2", "3", "4.1", "4.2"]:
        node = st["parts"][int(part[0]) - 1]
        if "." in part:
            node = node["parts"][int(part[2]) - 1]
        assert node["body_end"] - node["body_start"] == len(section_bytes(COMPLEX, st, part))


# -- BINARY[] (RFC 3516) --------------------------------------------------------------


def test_binary_decodes_transfer_encoding():
    raw = load("alternative_in_mixed.eml")
    st = summarize(raw)["structure"]
    assert binary_section(raw, st, "2") == b"%PDF-1.4\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n"
    assert binary_size(raw, st, [2]) == 19
    assert binary_section(raw, st, "1.1") == "Status: all green. Café opens at 9.".encode()
    assert binary_section(raw, st, "") == raw


def test_binary_text_uses_crlf():
    """RFC 9051 §7.5.2 BINARY: textual parts are sent with CRLF line ends."""
    raw = load("lf_only.eml")
    st = summarize(raw)["structure"]
    assert binary_section(raw, st, "1") == b"Hi Bob,\r\n\r\nAre you free for lunch tomorrow?\r\n\r\nAlice\r\n"


def test_binary_unknown_cte():
    """RFC 3516 §4.3 / RFC 9051 §7.5.2: unknown encoding -> NO [UNKNOWN-CTE]."""
    raw = load("bad_charset.eml")
    st = summarize(raw)["structure"]
    with pytest.raises(UnknownCTEError) as info:
        binary_section(raw, st, "3")
    assert info.value.encoding == "x-uuencode"
    with pytest.raises(UnknownCTEError):
        binary_size(raw, st, "3")
    with pytest.raises(SectionError):
        binary_section(raw, st, "1.MIME")


# imaptest fetch-binary-mime-qp / -base64 and append-binary, reduced to the engine.

_QP_MIME = (
    b"From: user@domain.org\r\nMime-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/x-myown; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\n"
    b"foo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n"
    b"\r\n--b\r\nContent-Type: text/x-myown; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6\r\n"
    b"\r\n--b--\r\n"
)


def test_binary_quoted_printable_rfc2045_rules():
    """RFC 2045 §6.7: trailing whitespace is transport padding (rule 3), "=" then
    whitespace then a line break is a soft break (rule 5); hard breaks are CRLF."""
    st = summarize(_QP_MIME)["structure"]
    expected = b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n"
    assert binary_section(_QP_MIME, st, "1") == expected
    assert binary_size(_QP_MIME, st, "1") == 65


def test_binary_base64_text_is_not_line_normalised():
    """A base64 body is already canonical (RFC 2045 §6.8): its bare CR and bare LF are
    data, returned as is (size 30, as Dovecot), not rewritten to CRLF."""
    st = summarize(_QP_MIME)["structure"]
    assert binary_section(_QP_MIME, st, "2") == b"abcdefg\rhijkl\r\nmno\npqrstuvqxyz"
    assert binary_size(_QP_MIME, st, [2]) == 30


def test_qp_decode_keeps_line_ends_unless_asked():
    from dualmail.mime.text import decode_cte
    assert decode_cte(b"a=3D1 \nb=\nc\n", "quoted-printable") == (b"a=1\nbc\n", False)
    assert decode_cte(b"a=3D1 \nb=\nc\n", "quoted-printable", crlf=True) == (b"a=1\r\nbc\r\n", False)
    assert decode_cte(b"x=zz=4", "quoted-printable") == (b"x=zz=4", False)  # lenient


def test_nul_parts_to_base64():
    """RFC 3516 §4.4: APPENDed binary parts holding NUL are stored base64, losslessly."""
    from dualmail.mime.imap_body import nul_parts_to_base64
    raw = (b"From: a@b.c\r\nMime-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
           b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
           b"--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
           b"\x00\x01\xff\r\n--x--\r\n")
    out = nul_parts_to_base64(raw, summarize(raw)["structure"])
    assert b"\x00" not in out
    assert b"Content-Transfer-Encoding: base64\r\n\r\nAAH/\r\n--x--" in out
    st = summarize(out)["structure"]
    assert binary_section(out, st, "2") == b"\x00\x01\xff"
    assert section_bytes(out, st, "1") == b"hi"
    plain = b"From: a@b.c\r\n\r\nno nul\r\n"
    assert nul_parts_to_base64(plain, summarize(plain)["structure"]) == plain
