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

import re
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
# Value layout, version 2 (written since 2026-12-07): 0x02 | entries, each 0x00 | id + 1
# (u8, never 0; id: index in ``HEADER_FIELDS``) | the field's bytes | 0x00 0x00 | the
# blank line (nothing when there is none).  The fields a HEADER.FIELDS asks for are then
# found by one compiled regular expression per set of ids, in C, not by a Python loop
# over the entries (~0.2 ms less per 500 messages).  A message whose fields or blank line
# hold a NUL byte (which would read as a marker) is stored as version 1: 0x01 |
# len(blank) u8 (0xFF: no blank line) | blank | entries, each id u8 | len u32 | the
# field's bytes.
#
# Version 3 (written since 2026-12-08, store format 3): 0x03 | n u8 | n lengths u32 |
# the answers to the first n sets of ``PRESETS``, each exactly what the version 2 value
# gives for that set | the version 2 value.  The sets mail clients send for every new
# message are then a slice (0.4 µs) instead of a regular-expression scan of the whole
# value (4-5 µs: 2 ms of a 500-message FETCH); any other set is found in the version 2
# part.  A message that keeps version 1 has no answers stored.
#
# All versions are read; ``dualmail check --upgrade`` rewrites older values as version 3
# where it can.  ``HEADER_FIELDS`` and ``PRESETS`` are append-only: stored ids and
# answer positions name their entries.

HEADER_FIELDS = (
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "references", "in-reply-to",
    "reply-to", "sender", "content-type", "priority", "x-priority", "importance", "newsgroups",
    "content-description", "lines", "list-post", "x-label", "list-id", "content-transfer-encoding",
    "mime-version", "x-mailer", "user-agent", "disposition-notification-to", "return-path",
    "delivered-to", "x-original-to", "list-unsubscribe", "x-spam-flag", "x-spam-status",
)
HEADER_IDS = {name: i for i, name in enumerate(HEADER_FIELDS)}
_ENTRY = struct.Struct(">BI")


def _ids(names: str) -> frozenset[int]:
    return frozenset(HEADER_IDS[n] for n in names.lower().split())


# The sets of fields whose answers version 3 stores: what clients send for each new message.
PRESETS = (
    # the short set many clients send for a message list (and bench/vs_dovecot.py)
    _ids("From To Subject Date Message-ID References"),
    # Thunderbird's new-mail FETCH with its default headers (``mailnews.customDBHeaders``
    # adds names, which makes another set: found in the version 2 part)
    _ids("From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups "
         "In-Reply-To Content-Type Reply-To"),
)
_PRESET_AT = {ids: k for k, ids in enumerate(PRESETS)}
# the answers' lengths of a version 3 value holding n of them (a later dualmail may store
# more presets than this one knows: up to 255)
_LENS = [struct.Struct(">%dI" % n) for n in range(256)]

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
    entries = [(i, chunk) for name, chunk in fields if (i := HEADER_IDS.get(name)) is not None]
    return _record(entries, blank)


def header_record_ahead(raw: bytes) -> bytes | None:
    """``header_record`` made before the write transaction (in a parser process); None
    where no splitter is registered (the process never imported ``dualmail.mail``), so
    the transaction makes it, as without."""
    return None if _splitter is None else header_record(raw)


def _record(entries: list[tuple[int, bytes]], blank: bytes | None) -> bytes:
    """The ``imaph`` value of ``entries`` (id, field bytes) and ``blank``: version 3, or
    version 1 when a NUL byte would read as a marker."""
    if b"\x00" in (blank or b"") or any(b"\x00" in chunk for _i, chunk in entries):
        return record_v1(entries, blank)
    return _with_presets(record_v2(entries, blank))


def record_v2(entries: list[tuple[int, bytes]], blank: bytes | None) -> bytes:
    """The version 2 ``imaph`` value (stores of format 2; the tail of version 3)."""
    return b"".join([b"\x02", *[b"\x00" + bytes([i + 1]) + chunk for i, chunk in entries],
                     b"\x00\x00", blank or b""])


def _with_presets(v2: bytes) -> bytes:
    """Version 3: the answers to ``PRESETS`` from version 2 value ``v2``, then ``v2``."""
    answers = [_fields_v2(v2, 1, ids) for ids in PRESETS]
    return b"".join([b"\x03", bytes([len(answers)]), _LENS[len(answers)].pack(*map(len, answers)),
                     *answers, v2])


def record_v1(entries: list[tuple[int, bytes]], blank: bytes | None) -> bytes:
    """The version 1 ``imaph`` value (stores written before 2026-12-07, and NUL bytes)."""
    out = [b"\x01", b"\xff" if blank is None else bytes([len(blank)]) + blank]
    out += [_ENTRY.pack(i, len(chunk)) + chunk for i, chunk in entries]
    return b"".join(out)


def _entries_v1(value: bytes) -> tuple[list[tuple[int, bytes]], bytes | None]:
    n = value[1]
    blank, pos = (None, 2) if n == 0xFF else (value[2:2 + n], 2 + n)
    out = []
    while pos < len(value):
        i, ln = _ENTRY.unpack_from(value, pos)
        out.append((i, value[pos + 5:pos + 5 + ln]))
        pos += 5 + ln
    return out, blank


def upgraded(value: bytes) -> bytes | None:
    """An older ``imaph`` value as version 3, or None: already version 3 with every
    preset, unreadable, or it holds a NUL byte (``dualmail check --upgrade``)."""
    if not value:
        return None
    if value[0] == 1:
        try:
            entries, blank = _entries_v1(value)
        except struct.error:
            return None
        new = _record(entries, blank)
        return new if new[0] == 3 else None
    if value[0] == 2:
        return _with_presets(value) if value.rfind(b"\x00\x00") > 0 else None
    if value[0] == 3 and len(value) > 1 and value[1] < len(PRESETS):  # written before a preset was added
        tail = _tail(value)
        return _with_presets(value[tail:]) if tail is not None else None
    return None


def presets_agree(value: bytes) -> bool:
    """Whether the answers a version 3 ``imaph`` value stores are what its version 2 part
    gives (``dualmail check``); True for the other versions, which store none."""
    if not value or value[0] != 3:
        return True
    tail = _tail(value)
    if tail is None:
        return False
    n = min(value[1], len(PRESETS))  # (presets a later dualmail added: not known here)
    return all(header_fields(value, ids) == _fields_v2(value, tail + 1, ids) for ids in PRESETS[:n])


def _tail(value: bytes) -> int | None:
    """Where the version 2 value inside version 3 ``value`` starts (None: unreadable)."""
    if len(value) < 2:
        return None
    n = value[1]
    try:
        at = 2 + _LENS[n].size + sum(_LENS[n].unpack_from(value, 2))
    except struct.error:
        return None
    return at if at < len(value) and value[at] == 2 else None


def header_ids(names: Any) -> frozenset[int] | None:
    """The ids of HEADER.FIELDS ``names``; None when one is not stored (read the message)."""
    out = set()
    for n in names:
        i = HEADER_IDS.get(str(n).lower())
        if i is None:
            return None
        out.add(i)
    return frozenset(out)


_FIND: dict[frozenset[int], Callable[..., list[bytes]]] = {}


def _finder(ids: frozenset[int]) -> Callable[..., list[bytes]]:
    """``findall`` of the version 2 entries of ``ids`` (their bytes), compiled once per set
    (clients ask for few different sets; the cache is emptied past 256)."""
    f = _FIND.get(ids)
    if f is None:
        if len(_FIND) >= 256:
            _FIND.clear()
        cls = b"".join(re.escape(bytes([i + 1])) for i in sorted(ids)) or b"\x00"
        f = _FIND[ids] = re.compile(b"\\x00[" + cls + b"]([^\\x00]*)").findall
    return f


def _fields_v2(value: bytes, start: int, ids: frozenset[int]) -> bytes | None:
    """HEADER.FIELDS of ``ids`` from the version 2 entries at ``start`` of ``value``."""
    end = value.rfind(b"\x00\x00")
    if end < start - 1:
        return None
    return b"".join(_finder(ids)(value, start, end)) + value[end + 2:]


def header_fields(value: bytes, ids: frozenset[int]) -> bytes | None:
    """``HEADER.FIELDS`` of the fields ``ids`` from an ``imaph`` value (None: unreadable)."""
    if not value:
        return None
    if value[0] == 3:
        k = _PRESET_AT.get(ids)
        if k is not None and len(value) > 1 and k < (n := value[1]):
            try:
                lens = _LENS[n].unpack_from(value, 2)
            except struct.error:  # cut short: unreadable
                return None
            at = 2 + 4 * n + sum(lens[:k])
            return value[at:at + lens[k]]
        tail = _tail(value)
        return None if tail is None else _fields_v2(value, tail + 1, ids)
    if value[0] == 2:
        return _fields_v2(value, 1, ids)
    if value[0] != 1:
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
