"""Parse a message once at ingest into the summary the store keeps.

One job: ``summarize(raw) -> dict``, JSON-serialisable (dict, list, str,
int, bool, None only), never raising on any input.  IMAP FETCH (ENVELOPE,
BODYSTRUCTURE, BODY[section]) and JMAP list properties are answered from
this summary plus slices of the raw bytes, never by parsing again.

Keys::

    message_id, in_reply_to, references   [str]   ids without <> ([] if none)
    subject         str|None  RFC 8621 "Text" form (RFC 2047-decoded, NFC)
    base_subject    str       RFC 5256 §2.1 (see subject.py), not case-folded
    sent_at         int|None  Date as UTC epoch seconds
    sent_at_offset  int|None  the Date's zone offset in minutes
    from sender reply_to to cc bcc   [{"name": str|None, "email": str}]
                              groups flattened; [] if absent (see header_names)
    preview         str       <= 256 chars from the first text part of textBody
    has_attachment  bool      see bodylists.py
    envelope        dict      IMAP ENVELOPE data (see envelope.py)
    structure       dict      MIME tree with byte offsets (see structure.py)
    header_text     str       all top-level fields, "Name: decoded value" lines
    body_text       str       textBody text parts, then text/plain|html
                              attachments, then for each embedded message
                              its header fields ("Name: decoded value") and
                              the same; HTML as text; <= BODY_TEXT_LIMIT chars
    header_names    [str]     lower-cased names of the top-level fields, in
                              order of first appearance (JMAP: absent -> null)
    size            int       len(raw)
    defects         [str]     what best-effort parsing had to repair

The JMAP convenience properties (RFC 8621 §4.1.3) use the *last* instance
of a field; the IMAP ENVELOPE uses the first (as common IMAP servers do).

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

from typing import Any

from .addresses import jmap_addresses, parse_address_list
from .bodylists import body_lists, has_attachment, mime_type
from .envelope import envelope
from .headers import HeaderField, parse_date, parse_msg_ids, split_header_block, unfold
from .rfc2047 import decode_words, nfc
from .structure import build
from .subject import base_subject
from .text import decode_cte, decode_text, html_to_text

__all__ = ["BODY_TEXT_LIMIT", "HEADER_TEXT_LIMIT", "PREVIEW_LENGTH", "base_subject", "header_text_form", "summarize"]

BODY_TEXT_LIMIT = 256 * 1024
HEADER_TEXT_LIMIT = 64 * 1024
PREVIEW_LENGTH = 256
# Encoded octets read per text part: enough for BODY_TEXT_LIMIT characters.
_ENCODED_READ_LIMIT = 4 * BODY_TEXT_LIMIT

_ADDRESS_KEYS = {"from": "from", "sender": "sender", "reply-to": "reply_to", "to": "to", "cc": "cc", "bcc": "bcc"}
_ID_KEYS = {"message-id": "message_id", "in-reply-to": "in_reply_to", "references": "references"}


def header_text_form(value: bytes) -> str:
    """RFC 8621 §4.1.2.2 Text form of a raw header value."""
    text = unfold(value).replace("\x00", "").lstrip(" ")
    return nfc(decode_words(text, strict=True))


def _part_text(raw: bytes, node: dict[str, Any], limit: int) -> str:
    """Decoded text of a text/plain or text/html leaf, HTML converted."""
    start, end = node["body_start"], node["body_end"]
    if limit <= 0 or end <= start:
        return ""
    data = raw[start : min(end, start + _ENCODED_READ_LIMIT)]
    data, _problem = decode_cte(data, node["encoding"])
    text, _problem = decode_text(data, node.get("charset"))
    text = text.replace("\r\n", "\n")
    if node["subtype"] == "html":
        return html_to_text(text, limit)
    return text[:limit]


def _collect_text(raw: bytes, structure: dict[str, Any], out: list[str], budget: int, depth: int = 0,
                  lists: tuple[Any, Any, Any] | None = None) -> int:
    text_body, _html, attachments = lists if lists is not None else body_lists(structure)
    leaves = [n for n in text_body if mime_type(n) in ("text/plain", "text/html")]
    seen = {id(n) for n in leaves}
    leaves += [n for n in attachments if mime_type(n) in ("text/plain", "text/html") and id(n) not in seen]
    for node in leaves:
        if budget <= 0:
            return budget
        text = _part_text(raw, node, budget)
        out.append(text)
        budget -= len(text)
    if depth < 8:
        for node in attachments:
            msg = node.get("message")
            if msg and budget > 0:
                # An embedded message's header is text of the enclosing body too
                # (RFC 9051 §6.4.4 BODY/TEXT search it; so does Dovecot).
                root = msg["structure"]
                head = _header_text(split_header_block(raw, root["hdr_start"], root["hdr_end"]).fields)
                out.append(head[:budget])
                budget -= len(out[-1])
                budget = _collect_text(raw, root, out, budget, depth + 1)
    return budget


_PREVIEW_READ = 16 * 1024


def _preview_of(text: str) -> str:
    """RFC 8621 §4.1.4 preview: the first words of the text, at most 256 characters."""
    # Words have at least one character, so 2 * PREVIEW_LENGTH of them always reach the
    # length: split no further (the last item of a limited split is the rest of the
    # text, not a word).  Most texts reach the length within 64 words: try that first.
    text = text[:_PREVIEW_READ]
    for most in (64, 2 * PREVIEW_LENGTH):
        words = text.split(None, most)
        rest = len(words) > most
        if rest:
            words.pop()
        out: list[str] = []
        size = -1
        for w in words:
            out.append(w)
            size += len(w) + 1
            if size >= PREVIEW_LENGTH:
                return " ".join(out)[:PREVIEW_LENGTH]
        if not rest:
            break
    return " ".join(out)[:PREVIEW_LENGTH]


def _header_text(fields: tuple[HeaderField, ...]) -> str:
    lines: list[str] = []
    size = 0
    for f in fields:
        line = f.name + ": " + " ".join(decode_words(unfold(f.value), strict=False).split())
        lines.append(line)
        size += len(line) + 1
        if size >= HEADER_TEXT_LIMIT:
            break
    return "\n".join(lines)[:HEADER_TEXT_LIMIT]


def _summarize(raw: bytes) -> dict[str, Any]:
    structure, fields, defects = build(raw)
    last: dict[str, bytes] = {}
    names: list[str] = []
    for f in fields:
        key = f.name.lower()
        if key not in last:
            names.append(key)
        last[key] = f.value

    summary: dict[str, Any] = {}
    for key, out in _ID_KEYS.items():
        ids = parse_msg_ids(unfold(last[key])) if key in last else None
        summary[out] = ids or []
    subject = header_text_form(last["subject"]) if "subject" in last else None
    summary["subject"] = subject
    summary["base_subject"] = base_subject(subject or "")
    date = parse_date(unfold(last["date"])) if "date" in last else None
    summary["sent_at"] = date[0] if date else None
    summary["sent_at_offset"] = date[1] if date else None
    for key, out in _ADDRESS_KEYS.items():
        summary[out] = jmap_addresses(parse_address_list(unfold(last[key]))) if key in last else []

    lists = body_lists(structure)
    chunks: list[str] = []
    _collect_text(raw, structure, chunks, BODY_TEXT_LIMIT, lists=lists)
    # The first text leaf of textBody is also the first text collected (with the whole
    # budget), and a part's text for a smaller limit is a prefix of it: decode it once.
    first_text = any(mime_type(n) in ("text/plain", "text/html") for n in lists[0])
    summary["preview"] = _preview_of(chunks[0]) if first_text and chunks else ""
    summary["has_attachment"] = has_attachment(structure, lists[2])
    summary["envelope"] = envelope(fields)
    summary["structure"] = structure
    summary["header_text"] = _header_text(fields)
    summary["body_text"] = "\n".join(chunks)[:BODY_TEXT_LIMIT]
    summary["header_names"] = names
    summary["size"] = len(raw)
    summary["defects"] = defects
    return summary


def _fallback(raw: bytes) -> dict[str, Any]:
    """The summary of an unparseable message: one text/plain body, no header."""
    size = len(raw)
    lines = raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)
    return {
        "message_id": [],
        "in_reply_to": [],
        "references": [],
        "subject": None,
        "base_subject": "",
        "sent_at": None,
        "sent_at_offset": None,
        "from": [],
        "sender": [],
        "reply_to": [],
        "to": [],
        "cc": [],
        "bcc": [],
        "preview": "",
        "has_attachment": False,
        "envelope": {
            "date": None, "subject": None, "from": None, "sender": None, "reply_to": None,
            "to": None, "cc": None, "bcc": None, "in_reply_to": None, "message_id": None,
        },
        "structure": {
            "type": "text", "subtype": "plain", "params": [["charset", "us-ascii"]], "id": None,
            "description": None, "encoding": "7bit", "disposition": None, "language": None,
            "location": None, "md5": None, "hdr_start": 0, "hdr_end": 0, "body_start": 0,
            "body_end": size, "lines": lines, "charset": "us-ascii", "name": None, "cid": None,
            "part": "1",
        },
        "header_text": "",
        "body_text": "",
        "header_names": [],
        "size": size,
        "defects": ["unparseable"],
    }


def summarize(raw: bytes) -> dict[str, Any]:
    """The stored summary of a raw RFC 5322 message; never raises."""
    try:
        data = bytes(raw)
    except Exception:
        data = b""
    try:
        return _summarize(data)
    except Exception:  # RecursionError included; MemoryError is not caught
        return _fallback(data)
