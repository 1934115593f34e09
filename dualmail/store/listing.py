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
HEAD = _HEAD  # read in place by the listing FETCH
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


def bodystructure_of(static: bytes) -> bytes:
    """The BODYSTRUCTURE of ``static_parts`` bytes (the ``imapb`` value)."""
    le, lb = _STATIC.unpack_from(static)
    return static[_STATIC.size + le:_STATIC.size + le + lb]


def bodystructure_of_record(value: bytes) -> bytes | None:
    """The BODYSTRUCTURE of an ``imapw`` value (None: not of this version)."""
    if not value or value[0] != VERSION:
        return None
    _v, _recv, li, le, lb = _HEAD.unpack_from(value)
    c = _HEAD.size + li + le
    return value[c:c + lb]


def record(recv: int, static: bytes) -> bytes:
    """The stored value for an Email received at ``recv`` with ``static_parts``."""
    idate = b'"' + internal_date(recv).encode("ascii") + b'"'
    return _HEAD.pack(VERSION, int(recv), len(idate), *_STATIC.unpack_from(static)) + idate + static[8:]


def record_of(lst: Listing) -> bytes:
    """The stored value form of a rendered ``Listing`` (``record`` of its parts)."""
    idate = lst.internaldate
    return (_HEAD.pack(VERSION, lst.recv, len(idate), len(lst.envelope), len(lst.bodystructure))
            + idate + lst.envelope + lst.bodystructure + lst.body)


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


# -- stored header fields (table ``imaph``, key A E, write-once) ------------------------
#
# ``BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID References)]`` is what mail
# clients send for every new message (Thunderbird, mutt, Apple Mail ask for a few more
# fields).  The fields of ``HEADER_FIELDS`` are cut out of the message's header block when
# it is stored, each exactly as ``imap_body`` would cut it (the field's lines, a CRLF added
# when the message ends inside it), with the blank line that ends the block; a
# HEADER.FIELDS whose names are all in the set is then a join of stored bytes.
#
# Value layout: 0x01 | len(blank) u8 (0xFF: no blank line) | blank | entries, each
# id u8 (index in ``HEADER_FIELDS``) | len u32 | the field's bytes.  ``HEADER_FIELDS`` is
# append-only: stored ids name its entries.

HEADER_FIELDS = (
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "references", "in-reply-to",
    "reply-to", "sender", "content-type", "priority", "x-priority", "importance", "newsgroups",
    "content-description", "lines", "list-post", "x-label", "list-id", "content-transfer-encoding",
    "mime-version", "x-mailer", "user-agent", "disposition-notification-to", "return-path",
    "delivered-to", "x-original-to", "list-unsubscribe", "x-spam-flag", "x-spam-status",
)
HEADER_IDS = {name: i for i, name in enumerate(HEADER_FIELDS)}
_ENTRY = struct.Struct(">BI")

# raw message -> ([(lowercase name, field bytes)...], blank line bytes or None); set by
# dualmail.mail.listing
Splitter = Callable[[bytes], "tuple[list[tuple[str, bytes]], bytes | None]"]
_splitter: Splitter | None = None


def register_headers(fn: Splitter) -> None:
    global _splitter
    _splitter = fn


def header_record(raw: bytes) -> bytes:
    """The ``imaph`` value of a message (b"": no splitter registered or it failed)."""
    if _splitter is None:
        return b""
    try:
        fields, blank = _splitter(raw)
    except Exception:
        return b""
    out = [b"\x01", b"\xff" if blank is None else bytes([len(blank)]) + blank]
    for name, chunk in fields:
        i = HEADER_IDS.get(name)
        if i is not None:
            out.append(_ENTRY.pack(i, len(chunk)) + chunk)
    return b"".join(out)


def header_ids(names: Any) -> frozenset[int] | None:
    """The ids of HEADER.FIELDS ``names``; None when one is not stored (read the message)."""
    out = set()
    for n in names:
        i = HEADER_IDS.get(str(n).lower())
        if i is None:
            return None
        out.add(i)
    return frozenset(out)


def header_fields(value: bytes, ids: frozenset[int]) -> bytes | None:
    """``HEADER.FIELDS`` of the fields ``ids`` from an ``imaph`` value (None: unreadable)."""
    if not value or value[0] != 1:
        return None
    n = value[1]
    if n == 0xFF:
        blank = b""
        pos = 2
    else:
        blank = value[2:2 + n]
        pos = 2 + n
    out = []
    end = len(value)
    unpack = _ENTRY.unpack_from
    while pos < end:
        i, ln = unpack(value, pos)
        pos += 5
        if i in ids:
            out.append(value[pos:pos + ln])
        pos += ln
    out.append(blank)
    return b"".join(out)
