"""The full-text index: an inverted index in LMDB, filled behind the writers.

Layout (``store/keys.py``): ``fts`` maps ``A + term + NUL + first-email`` to a chunk of
postings (ascending little-endian u64 email numbers, at most ``CHUNK`` per value);
``ftsmeta`` holds the account's *watermark*: every Email numbered at or below it is in
the index (or has been destroyed since).  Terms are ``collate.tokens`` of the folded
decoded header text and body text the store keeps for each Email (``text`` table), so
indexing never parses MIME.

Indexing is not part of the mail write transaction (imports must stay fast).
``index_pending(store, account, budget)`` indexes the next ``budget`` Emails above the
watermark: it reads and tokenises them in a *read* transaction, then takes a short write
transaction that appends their postings and moves the watermark (if another indexer
moved it meanwhile, it does nothing).  It takes no modseq and publishes nothing: the
index is invisible to clients.  Email numbers only grow, so appending keeps postings
sorted.  Destroyed Emails leave stale postings behind; they are harmless because the
engine verifies every candidate against the stored text.

Queries (``candidates``) use postings for Emails at or below the watermark and add every
Email above it (the engine verifies those by scanning their stored text), so results
never depend on how far the indexer has got.

Imports no twisted; speaks to the store only through its KV interface.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

from ..store import keys as K
from ..store.kv import KVRead, prefix_end
from .collate import MAX_TOKEN, fold, query_runs, tokens

__all__ = ["CHUNK", "candidates", "index_all", "index_pending", "unindexed", "watermark"]

#: Postings per LMDB value; a frequent term spans several chunks.
CHUNK = 4096
_BIG = sys.byteorder == "big"


def _pack(es: list[int]) -> bytes:
    a = array("Q", es)
    if _BIG:
        a.byteswap()
    return a.tobytes()


def _unpack(data: bytes) -> "array[int]":
    a = array("Q")
    a.frombytes(data)
    if _BIG:
        a.byteswap()
    return a


def watermark(kv: KVRead, account: int) -> int:
    """The highest Email number indexed (0: none)."""
    raw = kv.get("ftsmeta", K.acct(account))
    return K.un64(raw) if raw else 0


def unindexed(kv: KVRead, account: int, wm: int | None = None) -> list[int]:
    """Emails above the watermark (not in the index yet), ascending."""
    if wm is None:
        wm = watermark(kv, account)
    stop = prefix_end(K.acct(account))
    return [K.un64(k, 4) for k, _v in kv.range("email", K.email(account, wm + 1), stop)]


def email_terms(header_text: str, body_text: str) -> set[str]:
    return tokens(fold(header_text)) | tokens(fold(body_text))


def index_pending(store: Any, account: int, budget: int = 200) -> int:
    """Index up to ``budget`` Emails above the watermark; the number indexed (0: the
    index has caught up).  Call it after commits and when idle, e.g. from the service::

        while index_pending(store, account, 200):   # ~ tens of ms per call
            yield cooperate()                       # let the reactor breathe

    Safe to call from several places: a call that loses a race does nothing.
    """
    adds: dict[str, list[int]] = {}
    with store.read(account) as r:
        wm = watermark(r.kv, account)
        stop = prefix_end(K.acct(account))
        last = wm
        n = 0
        for k, _v in r.kv.range("email", K.email(account, wm + 1), stop):
            e = K.un64(k, 4)
            h, b = r.text(e)
            for t in email_terms(h, b):
                adds.setdefault(t, []).append(e)
            last = e
            n += 1
            if n >= budget:
                break
    if n == 0:
        return 0

    def run(w: Any) -> int:
        if watermark(w, account) != wm:
            return 0
        for term, es in adds.items():
            p = K.fts(account, term.encode("utf-8", "surrogatepass"))
            tail = next(iter(w.range("fts", p, prefix_end(p), reverse=True)), None)
            if tail is not None and len(tail[1]) // 8 < CHUNK:
                room = CHUNK - len(tail[1]) // 8
                w.put("fts", tail[0], bytes(tail[1]) + _pack(es[:room]))
                es = es[room:]
            for i in range(0, len(es), CHUNK):
                part = es[i : i + CHUNK]
                w.put("fts", p + K.u64(part[0]), _pack(part))
        w.put("ftsmeta", K.acct(account), K.u64(last))
        return n

    result: int = store.kv.run_write(run, account)
    return result


def index_all(store: Any, account: int, budget: int = 500) -> int:
    """Index everything pending (tests, ``dualmail`` admin commands); the count."""
    total = 0
    while True:
        n = index_pending(store, account, budget)
        if not n:
            return total
        total += n


def _postings(kv: KVRead, account: int, term: str) -> set[int]:
    p = K.fts(account, term.encode("utf-8", "surrogatepass"))
    out: set[int] = set()
    for _k, v in kv.range("fts", p, prefix_end(p)):
        out.update(_unpack(v))
    return out


def _scan_terms(kv: KVRead, account: int, run: str, mode: str) -> set[int]:
    """Postings of every term with ``run`` as prefix ("prefix"), suffix ("suffix") or
    inside it ("infix").  Terms cut to MAX_TOKEN may have lost the matching part, so for
    suffix/infix every cut term is included too (verification sorts it out)."""
    rb = run.encode("utf-8", "surrogatepass")
    out: set[int] = set()
    if mode == "prefix":
        p = K.acct(account) + rb
        for _k, v in kv.range("fts", p, prefix_end(p)):
            out.update(_unpack(v))
        return out
    p = K.acct(account)
    for k, v in kv.range("fts", p, prefix_end(p)):
        term = k[4:-9]
        if (term.endswith(rb) if mode == "suffix" else rb in term) or (
                len(term) >= MAX_TOKEN and len(term.decode("utf-8", "replace")) >= MAX_TOKEN):
            out.update(_unpack(v))
    return out


def candidates(kv: KVRead, account: int, folded_query: str, *, scan_terms: int = 1) -> set[int] | None:
    """A superset of the Emails whose folded text contains ``folded_query`` (postings at
    or below the watermark, plus every Email above it); None when the query has no word
    run to look up (the caller then scans).  A suffix/infix run shorter than
    ``scan_terms`` characters gives None rather than a scan of the whole term dictionary
    that would match most terms anyway -- the caller passes 3 when checking each Email is
    cheap (From/To/Subject read only the small search record)."""
    runs = query_runs(folded_query)
    if not runs:
        return None
    wm = watermark(kv, account)
    if wm == 0:
        return None
    exact = [r for r, left, right in runs if left and right]
    found: set[int] | None = None
    if exact:
        for r in sorted(exact, key=len, reverse=True):
            got = _postings(kv, account, r[:MAX_TOKEN])
            found = got if found is None else found & got
            if not found:
                break
    else:
        last, left, right = runs[-1]
        if left:  # bounded on the left only: a prefix of a term
            if len(last) >= MAX_TOKEN:
                found = _postings(kv, account, last[:MAX_TOKEN])
            else:
                found = _scan_terms(kv, account, last, "prefix")
        else:
            first, _l, right = runs[0]  # one run (infix), or bounded on the right (suffix)
            if len(first) > MAX_TOKEN or len(first) < scan_terms:
                return None
            found = _scan_terms(kv, account, first, "suffix" if right else "infix")
    assert found is not None
    found.update(unindexed(kv, account, wm))
    return found
