"""IMAP SEARCH and SORT answered from the per-membership indexes (``store.imapidx``).

Used by ``imap/ops/search.py`` before the general engine, for a mailbox whose index is
complete (``imapidx.ready``); every function returns None when it cannot answer, and the
caller then runs ``engine.search`` / ``engine.sort``, whose answers these equal exactly
(tested against it):

* ``UNSEEN`` (``Not(Keyword("$seen"))``) is one range read of the ``unseen`` table;
  ``ALL`` one of the UID index;
* a condition made only of flags, ``\\Deleted``, ``\\Recent``, sizes, internal dates,
  MODSEQ and UID sets (with AND/OR/NOT) is tested on the packed ``imapm`` rows: no JSON
  email record is decoded;
* SORT by one key among DATE (RFC 5256 §2.2 sent date), ARRIVAL and SIZE, either
  direction, reads the key's ordered ``imaps`` rows; ties stay in ascending UID order.

Imports no twisted.
"""

from __future__ import annotations

from typing import Any, Callable

from ..store import imapidx
from .engine import _bounds, _in_ranges, _uid_ranges
from .query import (
    ALL, And, Cond, Context, Deleted, Keyword, ModSeq, Not, Or, Received, Recent, Size, SortKey, UidIn,
)

RowPred = Callable[[int, tuple[Any, ...], bytes], bool]
_UNSEEN = Not(Keyword("$seen"))


def _unwrap(c: Cond) -> Cond:
    while isinstance(c, And) and len(c.conds) == 1:
        c = c.conds[0]
    return c


def is_unseen(cond: Cond) -> bool:
    """``cond`` is UNSEEN alone (``store.uidmap.UnseenSets`` answers it)."""
    return _unwrap(cond) == _UNSEEN


def search(view: Any, m: int, cond: Cond, context: Context | None = None) -> list[tuple[int, int]] | None:
    """(uid, email) pairs of mailbox ``m`` matching ``cond``, ascending UID; None: use the
    engine."""
    c = _unwrap(cond)
    pred = None
    if c != _UNSEEN and c != ALL:
        # (before the mailbox is read: a condition the index cannot answer costs no read)
        pred = _compile(c, context.recent if context is not None else frozenset())
        if pred is None:
            return None
    if not imapidx.ready(view.mailbox(m)):
        return None
    if c == _UNSEEN:
        return imapidx.unseen(view.kv, view.a, m)
    if c == ALL:
        return list(view.uid_items(m))
    assert pred is not None
    ranges = _uid_ranges(c)
    spans = ranges if ranges is not None else ((1, 0xFFFFFFFF),)
    unpack = imapidx.ROW.unpack_from
    size = imapidx.ROW.size
    out = []
    for lo, hi in spans:
        for u, v in imapidx.rows(view.kv, view.a, m, lo, min(hi, 0xFFFFFFFF)):
            t = unpack(v)
            if pred(u, t, v[size:]):
                out.append((u, t[0]))
    return out


def _compile(c: Cond, recent: frozenset[int]) -> RowPred | None:
    """A test on (uid, unpacked row, keyword bytes), or None if ``c`` needs more than
    the row."""
    if isinstance(c, (And, Or)):
        parts = [_compile(x, recent) for x in c.conds]
        if any(p is None for p in parts):
            return None
        ps = [p for p in parts if p is not None]
        join = all if isinstance(c, And) else any
        return lambda u, t, kw: join(p(u, t, kw) for p in ps)
    if isinstance(c, Not):
        inner = _compile(c.cond, recent)
        if inner is None:
            return None
        return lambda u, t, kw: not inner(u, t, kw)
    if isinstance(c, Keyword):
        k = c.keyword.lower().encode("utf-8", "surrogateescape")
        return lambda u, t, kw: k in kw.split(b" ")
    if isinstance(c, Deleted):
        return lambda u, t, kw: bool(t[5])
    if isinstance(c, Recent):
        return lambda u, t, kw: u in recent
    if isinstance(c, Size):
        lo, hi = _bounds(c.lo, c.hi)
        return lambda u, t, kw: lo <= t[2] < hi
    if isinstance(c, Received):
        lo, hi = _bounds(c.lo, c.hi)
        return lambda u, t, kw: lo <= t[3] < hi
    if isinstance(c, ModSeq):
        n = c.modseq
        return lambda u, t, kw: t[1] >= n
    if isinstance(c, UidIn):
        ranges = c.ranges
        return lambda u, t, kw: _in_ranges(ranges, u)
    return None


def cheap(cond: Cond, keys: list[SortKey] | None = None) -> bool:
    """``search`` (or, with sort ``keys``, ``sort_all``) can answer ``cond`` from the
    index rows alone, at a cost of one range read (valid once ``imapidx.ready``)."""
    c = _unwrap(cond)
    if keys is not None:
        return c == ALL and len(keys) == 1 and keys[0].name in imapidx.SORT_KINDS
    return c == _UNSEEN or c == ALL or _compile(c, frozenset()) is not None


def sort_all(view: Any, m: int, cond: Cond, keys: list[SortKey]) -> list[tuple[int, int]] | None:
    """SORT of every message of ``m`` (``cond`` is ALL) by one indexed key, straight off
    the key's rows; None: not that case."""
    if _unwrap(cond) != ALL or len(keys) != 1 or keys[0].name not in imapidx.SORT_KINDS \
            or not imapidx.ready(view.mailbox(m)):
        return None
    return imapidx.ordered(view.kv, view.a, m, keys[0].name, keys[0].reverse)


def sort(view: Any, m: int, items: list[tuple[int, int]], keys: list[SortKey]) -> list[tuple[int, int]] | None:
    """``items`` (search results of mailbox ``m``) ordered by one indexed key; None: use
    the engine."""
    if len(keys) != 1 or keys[0].name not in imapidx.SORT_KINDS or not imapidx.ready(view.mailbox(m)):
        return None
    order = imapidx.ordered(view.kv, view.a, m, keys[0].name, keys[0].reverse)
    want = dict(items)
    return [(u, e) for u, e in order if want.get(u) == e]
