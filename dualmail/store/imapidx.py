"""Per-membership IMAP indexes: what listing FETCH, SEARCH UNSEEN and SORT read instead of
decoding the JSON email record of every message.

Three tables, all keyed by the membership (account, mailbox, UID), all changed in the
transaction that changes the membership (and so under its one modseq):

=============  ==========================================  ======================================
table          key                                         value
=============  ==========================================  ======================================
imapm          A M U                                       ``_ROW``: E u64, modseq u64, size u32,
                                                           recv i64, sent date i64, deleted u8,
                                                           then the keywords (lowercase, sorted,
                                                           joined by one space, UTF-8)
unseen         A M U                                       E u64 -- the memberships whose Email
                                                           lacks ``$seen`` (SEARCH UNSEEN)
imaps          A M kind(1) value(u64, +2**63) U            E u64 -- SORT orders: kind ``D`` the
                                                           RFC 5256 §2.2 sent date, ``A`` arrival
                                                           (receivedAt), ``Z`` size
=============  ==========================================  ======================================

``MailTxn._imapidx_put`` writes a membership's rows from its email record each time the
record is written (``_put_email``: a row equal to the stored one is not rewritten), and
``MailTxn._imapidx_drop`` removes them with the membership (``remove_membership``).  The
sent date is taken from the search record when the membership is first indexed (it never
changes) and kept in the ``imapm`` row.

A mailbox whose record has ``"ix": 1`` has a complete index (every new mailbox; an older
one after ``dualmail check --upgrade``, ``MailTxn.upgrade_imap_index``).  Readers use the
index only then (``ready``) and fall back to the email records otherwise.  ``verify``
(``dualmail check``) compares the rows of an indexed mailbox with a recount.

Pure key/value code: imports nothing from twisted, lmdb or dualmail.mime.
"""

from __future__ import annotations

import struct
from typing import Any, Iterator, NamedTuple

from . import keys as K
from .kv import prefix_end

TABLES = ("imapm", "unseen", "imaps")

_ROW = struct.Struct(">QQIqqB")
ROW = _ROW  # read in place by the listing FETCH
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_BIAS = 2**63
SORT_KINDS = {"date": b"D", "received": b"A", "size": b"Z"}


class Row(NamedTuple):
    email: int
    modseq: int
    size: int
    recv: int
    date: int
    deleted: bool
    keywords: bytes  # b"$seen $flagged" (sorted, lowercase)


def pack(e: int, rec: dict[str, Any], ms: list[Any], date: int) -> bytes:
    kw = " ".join(rec["kw"]).encode("utf-8", "surrogateescape")
    return _ROW.pack(e, int(ms[2]), int(rec["size"]), int(rec["recv"]), int(date), 1 if ms[1] else 0) + kw


def unpack(value: bytes) -> Row:
    e, s, size, recv, date, deleted = _ROW.unpack_from(value)
    return Row(e, s, size, recv, date, bool(deleted), value[_ROW.size:])


def has_seen(value: bytes) -> bool:
    return b"$seen" in value[_ROW.size:].split(b" ")


def sort_key(a: int, m: int, kind: bytes, value: int, u: int) -> bytes:
    return K.mailbox(a, m) + kind + K.u64(min(max(int(value) + _BIAS, 0), 2**64 - 1)) + K.u32(u)


def _sort_rows(a: int, m: int, row: Row, u: int) -> list[bytes]:
    return [sort_key(a, m, b"D", row.date, u), sort_key(a, m, b"A", row.recv, u),
            sort_key(a, m, b"Z", row.size, u)]


def sent_date(srch: dict[str, Any] | None, recv: int) -> int:
    """RFC 5256 §2.2: the Date field in UTC, else the internal date (``engine._sent_date``)."""
    d = srch.get("d") if srch else None
    return int(recv) if d is None else int(d)


# -- writing (called by MailTxn in the membership's transaction) -------------------------


def put(w: Any, a: int, e: int, rec: dict[str, Any], m: int, date_of: Any) -> None:
    """Index membership ``m`` of Email ``e`` as ``rec`` now has it.  ``date_of()``: the
    sent date, asked only when the membership is not indexed yet."""
    ms = rec["mbx"][str(m)]
    u = int(ms[0])
    k = K.uid(a, m, u)
    old = w.get("imapm", k)
    date = _ROW.unpack_from(old)[4] if old is not None else date_of()
    new = pack(e, rec, ms, date)
    if old is not None and bytes(old) == new:
        return
    w.put("imapm", k, new)
    seen = "$seen" in rec["kw"]
    if old is None or has_seen(old) != seen:
        if seen:
            w.delete("unseen", k)
        else:
            w.put("unseen", k, K.u64(e))
    row = unpack(new)
    if old is None:
        for sk in _sort_rows(a, m, row, u):
            w.put("imaps", sk, K.u64(e))
    else:
        was = unpack(old)
        if (was.email, was.recv, was.size, was.date) != (row.email, row.recv, row.size, row.date):
            for sk in _sort_rows(a, m, was, u):
                w.delete("imaps", sk)
            for sk in _sort_rows(a, m, row, u):
                w.put("imaps", sk, K.u64(e))


def drop(w: Any, a: int, m: int, u: int) -> None:
    """Forget the rows of membership (``m``, ``u``)."""
    k = K.uid(a, m, u)
    old = w.get("imapm", k)
    w.delete("unseen", k)
    if old is None:
        return
    w.delete("imapm", k)
    for sk in _sort_rows(a, m, unpack(old), u):
        w.delete("imaps", sk)


# -- reading ------------------------------------------------------------------------------


def ready(box: dict[str, Any] | None) -> bool:
    """The mailbox's index is complete (see the module text)."""
    return bool(box and box.get("ix"))


def row_items(kv: Any, a: int, m: int, lo: int = 1, hi: int = 0xFFFFFFFF,
              expect: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(key, packed row) of UIDs ``lo``..``hi``, ascending: one range read (the UID is
    ``K.un32(key, 8)``; ``expect``: about how many rows, ``kv.range``)."""
    stop = K.uid(a, m, hi + 1) if hi < 0xFFFFFFFF else prefix_end(K.mailbox(a, m))
    return kv.range("imapm", K.uid(a, m, lo), stop, expect=expect)


def rows(kv: Any, a: int, m: int, lo: int = 1, hi: int = 0xFFFFFFFF) -> Iterator[tuple[int, bytes]]:
    """(UID, packed row) of UIDs ``lo``..``hi``, ascending: one range read."""
    for k, v in row_items(kv, a, m, lo, hi):
        yield K.un32(k, 8), v


def unseen(kv: Any, a: int, m: int, expect: int | None = None) -> list[tuple[int, int]]:
    """(UID, Email) of the memberships without ``$seen``, ascending UID (``expect``: the
    mailbox's unseen count, if the caller has it)."""
    p = K.mailbox(a, m)
    u32, u64 = _U32.unpack_from, _U64.unpack_from  # (no call of K.un32 per row)
    return [(u32(k, 8)[0], u64(v)[0]) for k, v in kv.range("unseen", p, prefix_end(p), expect=expect)]


def first_unseen(kv: Any, a: int, m: int) -> int | None:
    """The lowest UID of ``m`` without ``$seen``: one cursor step."""
    p = K.mailbox(a, m)
    for k, _v in kv.range("unseen", p, prefix_end(p), expect=1):
        return K.un32(k, 8)
    return None


def ordered(kv: Any, a: int, m: int, name: str, reverse: bool) -> list[tuple[int, int]]:
    """(UID, Email) of every membership by sort key ``name`` (``SORT_KINDS``), ties by
    ascending UID in both directions (a stable sort of the UID order, as ``engine.sort``)."""
    p = K.mailbox(a, m) + SORT_KINDS[name]
    u32, u64 = _U32.unpack_from, _U64.unpack_from  # (no call of K.un32 per row)
    if not reverse:
        return [(u32(k, 17)[0], u64(v)[0]) for k, v in kv.range("imaps", p, prefix_end(p))]
    items = list(kv.range("imaps", p, prefix_end(p)))
    out: list[tuple[int, int]] = []
    run: list[tuple[int, int]] = []
    current = None
    for k, v in reversed(items):
        key = k[9:17]
        if key != current:
            out.extend(reversed(run))
            run = []
            current = key
        run.append((u32(k, 17)[0], u64(v)[0]))
    out.extend(reversed(run))
    return out


# -- checking -----------------------------------------------------------------------------


def expected(a: int, m: int, emails: dict[int, dict[str, Any]],
             dates: dict[int, int]) -> tuple[dict[bytes, bytes], dict[bytes, bytes], dict[bytes, bytes]]:
    """The rows an indexed mailbox ``m`` must have, recounted from the email records
    (``dates``: each Email's sent date)."""
    mk = str(m)
    rows_: dict[bytes, bytes] = {}
    unseen_: dict[bytes, bytes] = {}
    sort_: dict[bytes, bytes] = {}
    for e, rec in emails.items():
        ms = rec["mbx"].get(mk)
        if ms is None:
            continue
        u = int(ms[0])
        k = K.uid(a, m, u)
        v = pack(e, rec, ms, dates[e])
        rows_[k] = v
        if "$seen" not in rec["kw"]:
            unseen_[k] = K.u64(e)
        for sk in _sort_rows(a, m, unpack(v), u):
            sort_[sk] = K.u64(e)
    return rows_, unseen_, sort_


def stored(kv: Any, a: int, m: int) -> tuple[dict[bytes, bytes], dict[bytes, bytes], dict[bytes, bytes]]:
    p = K.mailbox(a, m)
    return tuple({bytes(k): bytes(v) for k, v in kv.range(t, p, prefix_end(p))}  # type: ignore[return-value]
                 for t in TABLES)
