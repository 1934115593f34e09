"""Hands the IMAP listing renderer (``dualmail.mime.imap_body``) to the store's listing
records (``dualmail.store.listing``), which may not import ``dualmail.mime`` itself.
Imported by ``dualmail.mail``; nothing else to call."""

from __future__ import annotations

from typing import Any

from dualmail.mime import imap_body
from dualmail.mime.headers import split_header_block
from dualmail.store import listing


def render(summary: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """ENVELOPE, BODYSTRUCTURE and BODY (RFC 9051 §7.5.2) of a parsed summary."""
    structure = summary["structure"]
    return (imap_body.envelope_bytes(summary["envelope"]),
            imap_body.bodystructure_bytes(structure, True),
            imap_body.bodystructure_bytes(structure, False))


listing.register(render)


def split_headers(raw: bytes) -> tuple[list[tuple[str, bytes]], bytes | None]:
    """The top-level header fields of ``raw`` as ``imap_body`` cuts them for HEADER.FIELDS
    (name lowercase, the field's bytes with a CRLF added when the message ends inside it)
    and the blank line ending the block (None if there is none)."""
    block = split_header_block(raw, 0, len(raw))
    block = split_header_block(raw, 0, block.body_start)  # as section_bytes: up to hdr_end
    out = []
    for f in block.fields:
        chunk = raw[f.start:f.end]
        out.append((f.name.lower(), chunk if chunk.endswith(b"\n") else chunk + b"\r\n"))
    blank = None if block.blank_start is None else raw[block.blank_start:block.body_start]
    return out, blank


listing.register_headers(split_headers)
