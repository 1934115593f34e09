"""IMAP ENVELOPE data (RFC 9051 §7.5.2, RFC 3501 §7.4.2) from header fields.

One job: ``envelope(fields)`` -> a JSON-serialisable dict
``{"date", "subject", "from", "sender", "reply_to", "to", "cc", "bcc",
"in_reply_to", "message_id"}``.  String members are the raw header values,
unfolded and with surrounding whitespace removed, decoded as UTF-8 (else
Latin-1) but not RFC 2047-decoded: None (NIL) when the field is absent,
"" when present but empty.  Address members are lists of
``[name, adl, mailbox, host]`` with group markers ``[None, None, name,
None]`` ... ``[None, None, None, None]``, or None when absent or empty.
Sender and Reply-To default to From when absent or empty.  The first
instance of each string field is used; the addresses of repeated address
fields are joined.

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .addresses import envelope_addresses, parse_address_list
from .headers import HeaderField, unfold

__all__ = ["envelope"]

_STRINGS = {"date": "date", "subject": "subject", "in-reply-to": "in_reply_to", "message-id": "message_id"}
_ADDRESSES = {"from": "from", "sender": "sender", "reply-to": "reply_to", "to": "to", "cc": "cc", "bcc": "bcc"}


def envelope(fields: Iterable[HeaderField]) -> dict[str, Any]:
    first: dict[str, bytes] = {}
    for f in fields:
        key = f.name.lower()
        if key in _ADDRESSES and key in first:
            # A repeated address field (RFC 5322 §3.6 allows one): its addresses are
            # added, so no recipient is lost (as Dovecot does).
            first[key] += b"," + f.value
        elif (key in _STRINGS or key in _ADDRESSES) and key not in first:
            first[key] = f.value
    env: dict[str, Any] = {}
    for key, out in _STRINGS.items():
        env[out] = unfold(first[key]).strip() if key in first else None
    for key, out in _ADDRESSES.items():
        env[out] = envelope_addresses(parse_address_list(unfold(first[key]))) if key in first else None
    if env["sender"] is None:
        env["sender"] = env["from"]
    if env["reply_to"] is None:
        env["reply_to"] = env["from"]
    return {
        "date": env["date"],
        "subject": env["subject"],
        "from": env["from"],
        "sender": env["sender"],
        "reply_to": env["reply_to"],
        "to": env["to"],
        "cc": env["cc"],
        "bcc": env["bcc"],
        "in_reply_to": env["in_reply_to"],
        "message_id": env["message_id"],
    }
