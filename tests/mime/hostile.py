"""Hypothesis strategies for hostile text in messages: any charset label (known,
unknown, odd Python codecs), encoded-words (RFC 2047) and RFC 2231 parameters in
those charsets, and body parts holding arbitrary octets, including UTF-7 sequences
that decode to lone surrogates (``+2AA-`` is U+D800).

Shared by the mime, store and protocol tests (import as ``tests.mime.hostile``)."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

# Octets that trip decoders: lone surrogates in UTF-7 and CESU-8, a BOM, broken UTF-8,
# an ISO-2022 escape, NUL and controls.
NASTY = [b"+2AA-", b"+2D3cAA-", b"+3AA-", b"+AGE-", b"+", b"+-", b"\xed\xa0\x80", b"\xef\xbb\xbf",
         b"\xff\xfe\x00\xd8", b"\x00\xd8", b"\xc3", b"\x1b$B", b"\x00", b"\x1f", b"~{", b"\\ud800"]
CHARSETS = ["utf-7", "unicode-1-1-utf-7", "UTF-7", "utf-16", "utf-16-le", "utf-16be", "utf-32",
            "utf-8", "utf8", "us-ascii", "iso-8859-1", "cp1252", "iso-2022-jp", "shift_jis",
            "euc-kr", "gb2312", "gb18030", "hz", "big5", "koi8-r", "iso-8859-8-i", "utf-8-sig",
            "cp65001", "punycode", "idna", "rot13", "base64", "hex", "zlib", "unicode_escape",
            "raw_unicode_escape", "undefined", "x-unknown", "", "\"utf-7\""]

# Weighted towards the decoders that yield surrogates, so a few dozen examples find them.
octets = st.lists(st.just(b"+2AA-") | st.sampled_from(NASTY) | st.binary(max_size=12), max_size=6).map(b"".join)
charsets = (st.just("utf-7") | st.sampled_from(CHARSETS)
            | st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=12))


@st.composite
def encoded_word(draw: Any) -> str:
    """``=?charset?Q|B?...?=`` of arbitrary octets (RFC 2047 §2), sometimes malformed."""
    cs, data = draw(charsets), draw(octets)
    if draw(st.booleans()):
        text = "".join(f"={b:02X}" for b in data)
        kind = "Q"
    else:
        text = base64.b64encode(data).decode()
        kind = "B"
    if draw(st.booleans()):
        text = text.rstrip("=")
    return f"=?{cs}?{kind}?{text}?="


@st.composite
def header_text(draw: Any) -> str:
    parts = draw(st.lists(encoded_word() | st.sampled_from(["x", " ", "\u00e9", "(c)", '"q"']), min_size=1,
                          max_size=4))
    return " ".join(parts)


def _quote_2231(data: bytes) -> str:
    return "".join(f"%{b:02X}" for b in data)


@st.composite
def hostile_message(draw: Any) -> bytes:
    """A multipart message whose every decoded text is in a drawn charset."""
    body_cs, html_cs = draw(charsets), draw(charsets)
    cte = draw(st.sampled_from(["8bit", "base64", "quoted-printable", "x-unknown"]))
    body, html = draw(octets), draw(octets)

    def encode(data: bytes) -> bytes:
        if cte == "base64":
            return base64.encodebytes(data)
        if cte == "quoted-printable":
            return "".join(f"={b:02X}" for b in data).encode()
        return data

    name = draw(header_text())
    ext_cs, ext = draw(charsets), draw(octets)
    lines = [
        b"From: " + draw(header_text()).encode() + b" <bob@example.org>",
        b"To: " + draw(encoded_word()).encode() + b" <a@example.org>, g: " + draw(encoded_word()).encode()
        + b" <b@x.org>;",
        b"Subject: " + draw(header_text()).encode(),
        b"Message-ID: <" + draw(octets).replace(b">", b"").replace(b"\n", b"").replace(b"\r", b"") + b"@x>",
        b"X-Hostile: " + draw(header_text()).encode() + b" " + draw(octets).replace(b"\n", b"").replace(b"\r", b""),
        b"Content-Type: multipart/mixed; boundary=b",
        b"",
        b"--b",
        b"Content-Type: multipart/alternative; boundary=a",
        b"",
        b"--a",
        b"Content-Type: text/plain; charset=\"" + body_cs.encode() + b"\"",
        b"Content-Transfer-Encoding: " + cte.encode(),
        b"",
        encode(body),
        b"--a",
        b"Content-Type: text/html; charset=" + html_cs.encode(),
        b"",
        b"<p>" + html + b"&#xD800;&#55296;</p>",
        b"--a--",
        b"--b",
        b"Content-Type: application/octet-stream; name=\"" + name.encode() + b"\"",
        b"Content-Disposition: attachment; filename*=" + ext_cs.encode() + b"''" + _quote_2231(ext).encode(),
        b"Content-Description: " + draw(header_text()).encode(),
        b"",
        b"xx",
        b"--b",
        b"Content-Type: text/plain; charset=" + draw(charsets).encode() + b"; name*0*=" + ext_cs.encode()
        + b"''" + _quote_2231(ext).encode() + b"; name*1=" + draw(encoded_word()).encode(),
        b"Content-Disposition: inline",
        b"",
        draw(octets),
        b"--b--",
        b"",
    ]
    return b"\r\n".join(lines)


def assert_valid_unicode(value: Any) -> None:
    """Every string in ``value`` (keys too) can be UTF-8 encoded: no lone surrogates."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")
