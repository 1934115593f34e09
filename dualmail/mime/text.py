"""Bytes to text: Content-Transfer-Encoding, charsets, and HTML to plain text.

One job: turn the encoded octets of one MIME body (or one header word) into
octets or Unicode, best effort, never raising except where a caller must
report a protocol error (``UnknownCTEError``, RFC 3516 UNKNOWN-CTE).

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.  The standard library and nh3 (HTML parsing) only.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from html import unescape
from html.parser import HTMLParser

import nh3

__all__ = [
    "IDENTITY_ENCODINGS",
    "UnknownCTEError",
    "codec_for",
    "decode_cte",
    "decode_text",
    "html_to_text",
    "too_deep",
    "raw_header_str",
    "valid_text",
]

#: Content-Transfer-Encodings that leave the octets unchanged (RFC 2045 §6.2).
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


class UnknownCTEError(Exception):
    """The Content-Transfer-Encoding cannot be decoded (RFC 3516 UNKNOWN-CTE)."""

    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _b64decode(data: bytes) -> tuple[bytes, bool]:
    """Decode base64 leniently; the flag is True if the input was malformed."""
    try:
        return binascii.a2b_base64(data), False
    except binascii.Error:
        clean = _B64_JUNK.sub(b"", data)
        rem = len(clean) % 4
        if rem == 1:
            clean = clean[:-1]
        elif rem:
            clean += b"=" * (4 - rem)
        try:
            return binascii.a2b_base64(clean), True
        except binascii.Error:  # pragma: no cover - cleaned input always decodes
            return b"", True


_QP_LINE = re.compile(rb"([^\r\n]*)(\r?\n|\r(?!\n)|$)")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


# Fast path: when every "=" is an escape or a soft line break and line endings need no
# rewriting, binascii.a2b_qp (C) gives exactly what _qp_decode_lines gives.
_QP_TRAILING_WS = re.compile(rb"[ \t]+(?=\r?\n|$)")
_QP_ODD_EQUALS = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r?\n|$)")


def _qp_decode(data: bytes, crlf: bool = False) -> bytes:
    """Quoted-printable decoding per RFC 2045 §6.7 (see ``_qp_decode_lines``)."""
    cr = data.count(b"\r")
    if cr:
        crlfs = data.count(b"\r\n")
        if cr != crlfs or (crlf and data.count(b"\n") != crlfs):
            return _qp_decode_lines(data, crlf)
    elif crlf and b"\n" in data:
        return _qp_decode_lines(data, crlf)
    if (b" \r" in data or b"\t\r" in data or b" \n" in data or b"\t\n" in data
            or data.endswith((b" ", b"\t"))):
        data = _QP_TRAILING_WS.sub(b"", data)  # transport padding (rule 3)
    if _QP_ODD_EQUALS.search(data) is not None:
        return _qp_decode_lines(data, crlf)
    return binascii.a2b_qp(data)


def _qp_decode_lines(data: bytes, crlf: bool = False) -> bytes:
    """Quoted-printable decoding per RFC 2045 §6.7, line by line.

    Trailing transport whitespace on each encoded line is removed (rule 3),
    a line ending in ``=`` (after that whitespace is dropped) is a soft line
    break (rule 5), and ``=XX`` becomes one octet; any other ``=`` is kept
    as is (lenient, as the RFC recommends).  A hard line break keeps the
    input's line ending, or becomes CRLF when ``crlf`` is set (the canonical
    form a QP line break stands for).
    """
    out: list[bytes] = []
    for m in _QP_LINE.finditer(data):
        line, end = m.group(1), m.group(2)
        if not line and not end:
            break
        line = line.rstrip(b" \t")
        if line.endswith(b"="):
            out.append(_QP_ESCAPE.sub(lambda x: bytes([int(x.group(1), 16)]), line[:-1]))
            continue
        out.append(_QP_ESCAPE.sub(lambda x: bytes([int(x.group(1), 16)]), line))
        if end:
            out.append(b"\r\n" if crlf else end)
    return b"".join(out)


def decode_cte(data: bytes, encoding: str | None, *, strict: bool = False,
               crlf: bool = False) -> tuple[bytes, bool]:
    """Remove a Content-Transfer-Encoding (RFC 2045 §6).

    Returns ``(octets, problem)``; ``problem`` is True when the encoding is
    unknown (the octets are then returned unchanged, as RFC 8621 §4.1.4
    "blobId" asks) or the input was malformed.  With ``strict=True`` an
    unknown encoding raises ``UnknownCTEError`` instead (RFC 3516).
    ``crlf=True`` makes quoted-printable hard line breaks CRLF whatever the
    stored line ending (RFC 2045 §6.7: a QP line break stands for CRLF).
    """
    enc = (encoding or "7bit").strip().lower()
    if enc in IDENTITY_ENCODINGS:
        return data, False
    if enc == "base64":
        return _b64decode(data)
    if enc == "quoted-printable":
        return _qp_decode(data, crlf), False
    if strict:
        raise UnknownCTEError(enc)
    return data, True


# Names Python does not know, or where mail practice (WHATWG Encoding) picks a
# superset so that mislabelled messages still read well.
_CHARSET_ALIASES = {
    "unicode-1-1-utf-7": "utf-7",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "ascii": "ascii",
    "us-ascii": "ascii",
    "ks_c_5601-1987": "cp949",
    "x-mac-roman": "mac-roman",
    "x-sjis": "shift_jis",
    "sjis": "shift_jis",
}
# Text codecs that make no sense for mail and are refused.
_REFUSED = frozenset({"undefined", "unicode_escape", "raw_unicode_escape", "punycode", "idna"})


@functools.lru_cache(maxsize=256)
def codec_for(charset: str | None) -> str | None:
    """The Python codec name for a MIME charset, or None if unknown."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").strip().lower()
    if not name or len(name) > 64:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return info.name


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` with every surrogate code point replaced by U+FFFD.

    Some decoders (UTF-7 above all: ``+2AA-`` is a lone U+D800) yield surrogates,
    which no UTF-8 can carry (RFC 3629 §3) nor I-JSON (RFC 7493 §2.1): each charset
    decoding of message data ends here, so decoded text is always valid Unicode.
    Returns ``text`` itself when it is valid.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def decode_text(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode body or header octets labelled ``charset``; never raises.

    Returns ``(text, problem)`` with RFC 8621 §4.1.4 "isEncodingProblem"
    meaning: malformed octets or an unknown charset.  US-ASCII and an absent
    charset are read as UTF-8 (a superset), since raw UTF-8 labelled as
    nothing is common; invalid UTF-8 there falls back to Windows-1252.
    """
    codec = codec_for(charset)
    if codec is None or codec in ("ascii", "utf-8"):
        try:
            return data.decode("utf-8"), bool(charset) and codec is None
        except UnicodeDecodeError:
            if codec == "utf-8":
                return data.decode("utf-8", "replace"), True
            return data.decode("cp1252", "replace"), True
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return valid_text(data.decode(codec, "replace")), True
    except Exception:  # odd codecs (e.g. utf-7 state errors)
        return data.decode("utf-8", "replace"), True
    valid = valid_text(text)
    return valid, valid is not text  # a lone surrogate (UTF-7) is malformed input


def raw_header_str(value: bytes) -> str:
    """Header octets as text: UTF-8 (RFC 6532) if valid, else Latin-1 as-is."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


# -- HTML to text ------------------------------------------------------------
#
# nh3 (Ammonia, html5ever: the HTML5 parsing algorithm browsers use) keeps only the
# block elements, bare, and drops script/style/title/template/noscript with their
# content and every comment; in its serialisation every other "<" of the text is
# written "&lt;", so each remaining tag is exactly one ``_BARE_TAG`` match, which
# becomes a line break; then the character references are decoded. Measured 2.4x
# faster than the html.parser collector it replaced (docs/dependencies.md).

_SKIP_TAGS = frozenset({"script", "style", "title", "template", "noscript", "textarea", "select", "xmp",
                        "iframe", "noembed", "noframes", "object", "svg", "math"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "table", "hr", "ul", "ol", "dl", "dt", "dd", "section",
        "article", "header", "footer", "address",
    }
)
_TEXT_CLEANER = nh3.Cleaner(tags=set(_BLOCK_TAGS), clean_content_tags=set(_SKIP_TAGS), attributes={},
                            link_rel=None, strip_comments=True)
_BARE_TAG = re.compile(r"</?[a-z0-9]+>")

# -- the nesting guard ---------------------------------------------------------
#
# The HTML5 tree builder (html5ever, as in browsers) is quadratic in the number of
# elements open at once: each block start tag scans the stack of open elements, and
# each text run after unclosed formatting elements rebuilds them all (40,000 nested
# <div> take 3.6 s, 8,000 distinct unclosed <b> before <p>s 3 s). Browsers cap the
# depth (Chromium at 512); dualmail looks first: a document that may hold more than
# MAX_OPEN_ELEMENTS (256) open elements at once is read with the stdlib's html.parser
# (linear, never builds a tree) instead, and sanitised to its text.

#: More open elements than this at once and a document is "deep" (see above).
MAX_OPEN_ELEMENTS = 256
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
                   "source", "track", "wbr", "keygen", "basefont", "bgsound", "frame", "image", "isindex",
                   # closed by the next of their kind (no nesting growth)
                   "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "rb", "rt", "rp"})
_TAG_NAME = re.compile(r"<(/?)([A-Za-z][^\s/>\x00]*)")


def too_deep(html: str, limit: int = MAX_OPEN_ELEMENTS) -> bool:
    """Whether ``html`` may hold more than ``limit`` elements open at once: an upper
    estimate (each start tag opens one element until an end tag of its name) in
    one linear pass, only made when there are more than ``limit`` tags at all."""
    if html.count("<") <= limit:
        return False
    open_by_name: dict[str, int] = {}
    depth = 0
    for m in _TAG_NAME.finditer(html):
        name = m.group(2).lower()
        if name in _VOID:
            continue
        if m.group(1):
            if open_by_name.get(name):
                open_by_name[name] -= 1
                depth -= 1
        else:
            open_by_name[name] = open_by_name.get(name, 0) + 1
            depth += 1
            if depth > limit:
                return True
    return False


class _TextCollector(HTMLParser):
    """Visible text with the stdlib's html.parser: the reader of "deep" documents."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            if self.skip:
                self.skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _flat_text(html: str) -> str:
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return "".join(collector.parts)


def html_to_text(html: str, limit: int = 1 << 20) -> str:
    """Visible text of an HTML document, at most ``limit`` chars; never raises.

    Block elements become line breaks; script, style and title content are
    dropped; character references are decoded.
    """
    try:
        if too_deep(html):
            text = _flat_text(html)
        else:
            text = unescape(_BARE_TAG.sub("\n", _TEXT_CLEANER.clean(html)))
    except Exception:  # pragma: no cover - neither parser raises on a str
        return ""
    return valid_text(text[:limit])
