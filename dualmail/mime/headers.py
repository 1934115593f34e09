"""Header blocks and the structured header values MIME needs.

One job: find the header fields of a message or body part in the raw bytes
(with byte offsets, so IMAP BODY[HEADER.FIELDS] can return them exactly) and
parse the small structured values: Content-Type / Content-Disposition with
parameters (RFC 2045 §5.1, RFC 2183, RFC 2231 continuations and charsets),
msg-id lists (RFC 5322 §3.6.4), dates (RFC 5322 §3.3), Content-Language
and RFC 2369 URL lists.  Addresses live in ``addresses.py``.

Header block rules (the same as the stdlib ``email`` feed parser):
a field starts with a name of printable ASCII without colon; lines starting
with SP/HTAB continue it; an empty line ends the block and belongs to it;
any other line ends the block and starts the body (no blank line consumed).
A leading mbox ``From `` line and an orphan continuation line are skipped.

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from email.utils import parsedate_tz
from urllib.parse import unquote_to_bytes

from .text import codec_for, raw_header_str, valid_text

__all__ = [
    "HeaderBlock",
    "HeaderField",
    "parse_bare_text_type",
    "parse_content_type",
    "parse_date",
    "parse_disposition",
    "parse_language",
    "parse_msg_ids",
    "parse_urls",
    "split_header_block",
    "strip_comments",
    "unfold",
]

_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: ``raw[start:end]`` is the whole field incl. its line end."""

    name: str
    value: bytes  # after the colon, up to (excluding) the final line end
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    fields: tuple[HeaderField, ...]
    body_start: int  # == end of the header block, blank line included
    blank_start: int | None  # offset of the blank separator line, if any


# One field: name, colon, value up to the line end, and its continuation lines.  Group 2
# is the value including the last line's CR (when CRLF) and its internal line breaks.
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|\Z)")


def split_header_block(raw: bytes, start: int, end: int) -> HeaderBlock:
    """Split the header block beginning at ``start`` (bounded by ``end``).

    A line starting with a field name and ":" opens a field; lines starting with space
    or tab continue it (or are skipped when no field is open); an empty line ends the
    block; so does any other line, except a leading mbox "From " line, which is skipped.
    """
    fields: list[HeaderField] = []
    match = _FIELD.match
    pos = start
    while pos < end:
        m = match(raw, pos, end)
        if m is not None:
            vstart, vend = m.span(2)
            if vend > vstart and raw[vend - 1] == 0x0D and vend < end:
                vend -= 1  # the CR of the last line's CRLF
            fields.append(HeaderField(m.group(1).decode("ascii"), raw[vstart:vend], pos, m.end()))
            pos = m.end()
            continue
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        if nl >= 0 and (nl == pos or (nl == pos + 1 and raw[pos] == 0x0D)):
            return HeaderBlock(tuple(fields), line_end, pos)  # blank line: end of header
        if raw[pos] in (0x20, 0x09) or (pos == start and raw.startswith(b"From ", pos)):
            # A field's continuation lines went with its match: this one has no field
            # to continue; or the block starts with an mbox separator line.
            pos = line_end
            continue
        return HeaderBlock(tuple(fields), pos, None)
    return HeaderBlock(tuple(fields), end, None)


def unfold(value: bytes) -> str:
    """RFC 5322 §2.2.3 unfolding, then decoding as UTF-8 (else Latin-1)."""
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return raw_header_str(value)


def strip_comments(text: str) -> str:
    """Remove RFC 5322 comments (nested, quoted-pair aware) outside quoted strings."""
    if "(" not in text:
        return text
    out: list[str] = []
    depth = 0
    in_quote = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and (in_quote or depth):
            if not depth:
                out.append(text[i : i + 2])
            i += 2
            continue
        if depth:
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if not depth:
                    out.append(" ")
        elif c == '"':
            in_quote = not in_quote
            out.append(c)
        elif c == "(" and not in_quote:
            depth = 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


# -- parameters (RFC 2045 §5.1, RFC 2183 §2, RFC 2231) -------------------------

_TOKEN_CHARS = r"[^\s()<>@,;:\\\"/\[\]?=]+"
_TYPE_RE = re.compile(r"\s*(" + _TOKEN_CHARS + r")\s*/\s*(" + _TOKEN_CHARS + r")\s*")
_DISP_RE = re.compile(r"\s*(" + _TOKEN_CHARS + r")\s*")
_ATTR_RE = re.compile(r"[^\s=;()\"]+")
_QS_ESCAPE = re.compile(r"\\(.)", re.S)
_SECTION_RE = re.compile(r"(.+?)(?:\*(\d{1,4}))?(\*)?")


def _raw_params(text: str, pos: int) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    n = len(text)
    while pos < n:
        c = text[pos]
        if c in " \t;\r\n":
            pos += 1
            continue
        if c == "(":  # comment where whitespace may appear
            depth = 0
            while pos < n:
                if text[pos] == "\\":
                    pos += 2
                    continue
                if text[pos] == "(":
                    depth += 1
                elif text[pos] == ")":
                    depth -= 1
                    if not depth:
                        pos += 1
                        break
                pos += 1
            continue
        m = _ATTR_RE.match(text, pos)
        semi = text.find(";", pos)
        if m is None:
            pos = n if semi < 0 else semi + 1
            continue
        attr = m.group(0).lower()
        pos = m.end()
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos >= n or text[pos] != "=":
            semi = text.find(";", pos)
            pos = n if semi < 0 else semi + 1
            continue
        pos += 1
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == '"':
            j = pos + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            value = _QS_ESCAPE.sub(r"\1", text[pos + 1 : min(j, n)])
            pos = j + 1
        else:
            semi = text.find(";", pos)
            stop = n if semi < 0 else semi
            value = text[pos:stop].strip()
            cut = value.find(" (")
            if cut >= 0:
                value = value[:cut].rstrip()
            pos = stop
        params.append((attr, value))
    return params


def _charset_decode(data: bytes, charset: str) -> str:
    codec = codec_for(charset)
    if codec is not None:
        try:
            return valid_text(data.decode(codec))
        except Exception:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_params(raw_params: list[tuple[str, str]]) -> list[list[str]]:
    """Apply RFC 2231: join ``name*N`` continuations, decode ``name*`` charsets.

    Parameter names are lower-cased; values keep their case.  The first
    occurrence of a name wins; an RFC 2231 form wins over the plain one.
    """
    order: list[str] = []
    plain: dict[str, str] = {}
    ext: dict[str, dict[int, tuple[bool, str]]] = {}
    for attr, value in raw_params:
        m = _SECTION_RE.fullmatch(attr)
        if m is None:
            continue
        base, section, star = m.group(1), m.group(2), m.group(3)
        if section is None and star is None:
            if base not in plain:
                plain[base] = value
                if base not in order:
                    order.append(base)
            continue
        sections = ext.setdefault(base, {})
        num = int(section) if section is not None else 0
        if num not in sections:
            sections[num] = (star is not None, value)
        if base not in order:
            order.append(base)
    result: list[list[str]] = []
    for base in order:
        if base not in ext:
            result.append([base, plain[base]])
            continue
        sections = ext[base]
        charset = ""
        chunks: list[bytes] = []
        for i, num in enumerate(sorted(sections)):
            encoded, value = sections[num]
            if encoded:
                if i == 0 and value.count("'") >= 2:
                    charset, _lang, value = value.split("'", 2)
                chunks.append(unquote_to_bytes(value))
            else:
                chunks.append(value.encode("utf-8", "surrogateescape"))
        result.append([base, _charset_decode(b"".join(chunks), charset or "utf-8")])
    return result


def parse_content_type(text: str) -> tuple[str, str, list[list[str]]] | None:
    """``type/subtype; params`` -> (type, subtype, params) lower-cased, or None if invalid."""
    m = _TYPE_RE.match(text)
    if m is None:
        stripped = strip_comments(text)
        if stripped == text:
            return None
        text = stripped
        m = _TYPE_RE.match(text)
        if m is None:
            return None
    return m.group(1).lower(), m.group(2).lower(), decode_params(_raw_params(text, m.end()))


_BARE_TEXT_RE = re.compile(r"\s*text\s*(?:;|$)", re.I)


def parse_bare_text_type(text: str) -> tuple[str, str, list[list[str]]] | None:
    """``text; params`` (a type without subtype) -> ("text", "plain", params), else None."""
    m = _BARE_TEXT_RE.match(text)
    if m is None:
        return None
    return "text", "plain", decode_params(_raw_params(text, m.end()))


def parse_disposition(text: str) -> tuple[str, list[list[str]]] | None:
    """Content-Disposition (RFC 2183 §2) -> (type lower-cased, params) or None."""
    m = _DISP_RE.match(text)
    if m is None:
        return None
    return m.group(1).lower(), decode_params(_raw_params(text, m.end()))


# -- other structured values ---------------------------------------------------

_MSGID_RE = re.compile(r"<([^<>]*)>")


def parse_msg_ids(text: str) -> list[str] | None:
    """msg-id list (RFC 5322 §3.6.4, RFC 8621 §4.1.2.5): ids without ``<>``, or None.

    Lenient: a single bare word containing ``@`` is accepted as one id.
    """
    text = strip_comments(text)
    ids = ["".join(x.split()) for x in _MSGID_RE.findall(text)]
    ids = [x for x in ids if x]
    if ids:
        return ids
    words = text.split()
    if len(words) == 1 and "@" in words[0] and "<" not in words[0] and ">" not in words[0]:
        return [words[0]]
    return None


def parse_urls(text: str) -> list[str] | None:
    """RFC 2369 URL list: the ``<...>`` items without brackets, or None."""
    text = strip_comments(text)
    urls = ["".join(x.split()) for x in _MSGID_RE.findall(text)]
    return urls or None


def parse_language(text: str) -> list[str] | None:
    """Content-Language (RFC 3282): list of tags, or None when empty."""
    tags = [t.strip() for t in strip_comments(text).split(",")]
    tags = [t for t in tags if t]
    return tags or None


def parse_date(text: str) -> tuple[int, int] | None:
    """RFC 5322 §3.3 date-time -> (UTC epoch seconds, offset minutes), or None.

    A missing zone is taken as ``-0000`` (UTC); a leap second 60 as 59.
    """
    if not text or len(text) > 256:
        return None
    try:
        parsed = parsedate_tz(text)
        if parsed is None:
            return None
        year, month, day, hour, minute, second = parsed[:6]
        tz = parsed[9] or 0
        if not (1 <= year <= 9999 and 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
            return None
        if abs(tz) >= 100 * 3600:
            return None
        datetime.date(year, month, day)  # validates month/day
        epoch = calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0)) - tz
        return epoch, tz // 60 if tz >= 0 else -((-tz) // 60)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
