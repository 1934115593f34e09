"""MIME for dualmail: parse each message once at ingest, answer IMAP and JMAP from the summary.

Modules, each with one job:

- ``parse``      ``summarize(raw) -> dict``: the JSON-serialisable summary stored
                 with each message (never raises).
- ``structure``  the MIME tree with byte offsets; ``headers``, ``addresses``,
                 ``rfc2047``, ``subject``, ``envelope``, ``text`` are its parts.
- ``bodylists``  RFC 8621 §4.1.4 textBody / htmlBody / attachments.
- ``imap_body``  ENVELOPE, BODY/BODYSTRUCTURE, BODY[section], BINARY[] in wire syntax.
- ``jmap_body``  RFC 8621 EmailBodyPart, bodyValues, ``header:X:asY`` forms.

Must not import: twisted, lmdb, or anything from dualmail outside dualmail.mime.
"""

from .parse import summarize
from .subject import base_subject
from .text import UnknownCTEError

__all__ = ["UnknownCTEError", "base_subject", "summarize"]
