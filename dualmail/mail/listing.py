"""Hands the IMAP listing renderer (``dualmail.mime.imap_body``) to the store's listing
records (``dualmail.store.listing``), which may not import ``dualmail.mime`` itself.
Imported by ``dualmail.mail``; nothing else to call."""

from __future__ import annotations

from typing import Any

from dualmail.mime import imap_body
from dualmail.store import listing


def render(summary: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """ENVELOPE, BODYSTRUCTURE and BODY (RFC 9051 §7.5.2) of a parsed summary."""
    structure = summary["structure"]
    return (imap_body.envelope_bytes(summary["envelope"]),
            imap_body.bodystructure_bytes(structure, True),
            imap_body.bodystructure_bytes(structure, False))


listing.register(render)
