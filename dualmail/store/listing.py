"""The IMAP listing record: what a mail client's listing FETCH asks for, rendered once.

``UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)`` (and BODYSTRUCTURE, BODY)
is what every full resync sends.  Rendering ENVELOPE and BODYSTRUCTURE from the parsed
summary on each FETCH (JSON decoding, dict walking, string quoting) cost ~90 µs per
message; here they are rendered in IMAP wire form when the message is stored (table
``imapw``, key A E, write-once like ``summary``), so a FETCH joins stored bytes.

Value layout (big-endian)::

    0x01 | recv u64 | len(idate) u16 | len(env) u32 | len(bs) u32 | idate | env | bs | body

``idate`` is the quoted INTERNALDATE for ``recv`` (the Email's receivedAt, immutable),
``env`` the ENVELOPE, ``bs`` the BODYSTRUCTURE and ``body`` the BODY (no extension data):
exactly the bytes ``dualmail.mime.imap_body`` renders from the summary, so a store whose
Emails have no row (written before this table existed) is served byte-identically by
rendering from the summary on read (``render``).

The store may not import ``dualmail.mime`` (layers, setup.cfg): the renderer is handed in
by ``dualmail.mail.listing`` (imported with ``dualmail.mail``, which every writer of
Emails and the IMAP FETCH load).  Imports nothing from twisted or lmdb.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple

_HEAD = struct.Struct(">BQHII")
_STATIC = struct.Struct(">II")
VERSION = 1
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


# summary -> (ENVELOPE, BODYSTRUCTURE, BODY) in wire form; set by dualmail.mail.listing
Renderer = Callable[[dict[str, Any]], "tuple[bytes, bytes, bytes]"]
_renderer: Renderer | None = None


def register(fn: Renderer) -> None:
    global _renderer
    _renderer = fn


class Listing(NamedTuple):
    recv: int
    internaldate: bytes  # quoted, as on the wire
    envelope: bytes
    bodystructure: bytes
    body: bytes


def internal_date(epoch: int) -> str:
    d = datetime.fromtimestamp(int(epoch), timezone.utc)
    return f"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year:04d} {d:%H:%M:%S} +0000"


def static_parts(summary: dict[str, Any]) -> bytes:
    """ENVELOPE, BODYSTRUCTURE and BODY of a parsed summary, packed (pure: the importer
    runs it in its parsing processes).  b"" when the summary cannot be rendered: the
    read path then renders (and fails) as it always did."""
    if _renderer is None:
        return b""
    try:
        env, bs, body = _renderer(summary)
    except Exception:
        return b""
    return _STATIC.pack(len(env), len(bs)) + env + bs + body


def record(recv: int, static: bytes) -> bytes:
    """The stored value for an Email received at ``recv`` with ``static_parts``."""
    idate = b'"' + internal_date(recv).encode("ascii") + b'"'
    return _HEAD.pack(VERSION, int(recv), len(idate), *_STATIC.unpack_from(static)) + idate + static[8:]


def parse(value: bytes) -> Listing | None:
    if not value or value[0] != VERSION:
        return None
    _v, recv, li, le, lb = _HEAD.unpack_from(value)
    a = _HEAD.size
    b = a + li
    c = b + le
    d = c + lb
    return Listing(recv, value[a:b], value[b:c], value[c:d], value[d:])


def render(summary: dict[str, Any], recv: int) -> Listing:
    """The same bytes made from the summary (an Email stored before ``imapw`` existed)."""
    if _renderer is None:
        raise RuntimeError("no IMAP listing renderer registered (import dualmail.mail)")
    env, bs, body = _renderer(summary)
    return Listing(int(recv), b'"' + internal_date(recv).encode("ascii") + b'"', env, bs, body)
