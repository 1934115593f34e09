"""The JMAP listing record: an Email's convenience properties rendered once, at ingest.

RFC 8621 §4.1.3 convenience properties (``from``, ``to``, ``subject``, ``sentAt``, ...)
plus ``preview`` and ``hasAttachment`` come from the parsed summary alone and never
change, so ``record(summary)`` renders them all at ingest (``mail.ops.prepare``, the
importer's parsing processes) into a small JSON record (table ``jmapw``, written in the
Email's creating transaction).  Email/get for listing properties reads it instead of the
whole summary with its MIME tree.  An Email stored without one (stores older than the
table, Email/set create) is rendered from its summary by the same ``from_summary``, so
both give the same values; ``dualmail check --upgrade`` writes the missing records.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..store import codec
from ..store.listing import header_record_ahead
from ..store.txn import EncodedSummary, encode_summary
from .jmap_body import format_date

__all__ = ["CONVENIENCE", "FROM_SUMMARY", "encode", "from_summary", "record", "values"]

FROM_SUMMARY = frozenset({
    "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
    "sentAt", "hasAttachment", "preview",
})
#: Convenience property -> (header field, parsed form), RFC 8621 §4.1.3.
CONVENIENCE = {
    "messageId": ("Message-ID", "MessageIds"),
    "inReplyTo": ("In-Reply-To", "MessageIds"),
    "references": ("References", "MessageIds"),
    "sender": ("Sender", "Addresses"),
    "from": ("From", "Addresses"),
    "to": ("To", "Addresses"),
    "cc": ("Cc", "Addresses"),
    "bcc": ("Bcc", "Addresses"),
    "replyTo": ("Reply-To", "Addresses"),
    "subject": ("Subject", "Text"),
    "sentAt": ("Date", "Date"),
}
_SUMMARY_KEY = {"messageId": "message_id", "inReplyTo": "in_reply_to", "references": "references",
                "sender": "sender", "from": "from", "to": "to", "cc": "cc", "bcc": "bcc", "replyTo": "reply_to"}
_ORDER = sorted(FROM_SUMMARY)


def _present(summary: Mapping[str, Any], field: str) -> bool:
    names = summary.get("header_names")
    if names is None:  # a summary without header names: trust the values
        return True
    return field.lower() in names


def from_summary(prop: str, summary: Mapping[str, Any]) -> Any:
    """A §4.1.3 convenience property, ``preview`` or ``hasAttachment``."""
    if prop == "preview":
        return str(summary.get("preview") or "")
    if prop == "hasAttachment":
        return bool(summary.get("has_attachment"))
    field, _form = CONVENIENCE[prop]
    if prop == "subject":
        return summary.get("subject")
    if prop == "sentAt":
        sent = summary.get("sent_at")
        if sent is None:
            return None
        try:
            return format_date(int(sent), int(summary.get("sent_at_offset") or 0))
        except (OverflowError, ValueError):
            return None
    if not _present(summary, field):
        return None
    value = summary.get(_SUMMARY_KEY[prop])
    if prop in ("messageId", "inReplyTo", "references"):
        return list(value) if value else None
    return [dict(a) for a in value] if isinstance(value, list) else None


def values(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Every FROM_SUMMARY property of a summary."""
    return {p: from_summary(p, summary) for p in _ORDER}


def record(summary: Mapping[str, Any]) -> bytes:
    """The stored listing record (JSON) of a summary."""
    return codec.dumps(values(summary))


def encode(summary: dict[str, Any], raw: bytes | None = None) -> EncodedSummary:
    """``store.txn.encode_summary`` plus the listing record (``EncodedSummary.jmap``) and,
    given the message, its stored header fields (``EncodedSummary.headers``), so the
    write transaction cuts nothing out of the message."""
    if raw is None:
        return replace(encode_summary(summary), jmap=record(summary))
    return replace(encode_summary(summary), jmap=record(summary), headers=header_record_ahead(raw))
