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

import re
import sys
from array import array
import time
from typing import Any, Iterable, Sequence

from ..store import codec, keys as K
from ..store.kv import KVRead, Scan, prefix_end, scan_complete
from ..store.txn import search_record
from ..model.terms import email_terms, text_terms, unpack_terms
from .collate import MAX_TOKEN, query_runs

__all__ = ["CHUNK", "SUBJECT", "candidates", "grams_ready", "index_all", "index_pending", "index_slice",
           "subject_watermark", "unindexed", "upgrade_grams", "upgrade_subjects", "watermark"]

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


#: The table of subject postings: the terms of each Email's Subject alone, in ``fts``'s
#: layout, so a SUBJECT search (IMAP, JMAP's ``subject`` filter) reads the few Emails
#: whose subject holds the word, not every Email whose text does.
SUBJECT = "ftss"
_SUBJECTS = b"s"  # ftsmeta A + this: E(u64), every Email at or below it is in ftss

_GRAMS_READY = b"g"  # ftsmeta A + this: ftsgram holds every term of fts
_GRAMS_CURSOR = b"G"  # ftsmeta A + this: the upgrade's last term so far
GRAM = 3  # characters per gram of the term dictionary
# English letters by frequency: a gram of rare letters is tried first (a short list)
_COMMON = {c: i for i, c in enumerate("etaoinshrdlcumwfgypbvkjxqz")}


def subject_watermark(kv: KVRead, account: int) -> int:
    """Every Email numbered at or below this has its subject terms in ``ftss`` (0:
    none).  Equal to the watermark, the subject postings are complete and move with it;
    below it (an index made before ``ftss``), ``upgrade_subjects`` fills them in."""
    raw = kv.get("ftsmeta", K.acct(account) + _SUBJECTS)
    return K.un64(raw) if raw else 0


def grams_ready(kv: KVRead, account: int) -> bool:
    """Does ``ftsgram`` hold every term of the account's index?"""
    return kv.get("ftsmeta", K.acct(account) + _GRAMS_READY) is not None


def term_grams(term: str) -> set[bytes]:
    """The ``ftsgram`` entries of a term: its 3-character grams (b"" for a cut term)."""
    out = {term[i:i + GRAM].encode("utf-8", "surrogatepass") for i in range(len(term) - GRAM + 1)}
    if len(term) >= MAX_TOKEN:
        out.add(b"")
    return out


def _put_grams(w: Any, account: int, term: str, tb: bytes) -> None:
    for g in term_grams(term):
        w.put("ftsgram", K.ftsgram(account, g, tb), b"")


def _terms_of(r: Any, account: int, e: int) -> Iterable[str]:
    """An Email's index terms: its term record (made at ingest), else from its text."""
    raw = r.kv.get("ftstok", K.email(account, e))
    if raw is not None:
        joined = unpack_terms(raw)
        return joined[1:-1].split("\n") if len(joined) > 2 else ()
    h, b = r.text(e)
    return email_terms(h, b)


def _subject_terms(r: Any, account: int, e: int) -> set[str]:
    """The index terms of an Email's decoded Subject, from its search record (what a
    SUBJECT search checks, ``search.engine``)."""
    raw = r.kv.get("srch", K.email(account, e))
    if raw is not None:
        s = codec.loads(raw)
    else:  # stored before search records: as the engine makes it
        summary = dict(r.summary(e) or {})
        summary["header_text"] = r.text(e)[0]
        s = search_record(summary)
    return text_terms(str(s["h"].get("subject", "")))


def _append(w: Any, account: int, table: str, term: str, es: list[int]) -> None:
    """Append ascending Email numbers to a term's postings in ``table`` (``fts`` or
    ``ftss``); a term new to the table goes into the gram dictionary."""
    tb = term.encode("utf-8", "surrogatepass")
    p = K.fts(account, tb)
    tail = next(iter(w.range(table, p, prefix_end(p), reverse=True)), None)
    if tail is None:  # a new term: into the gram dictionary
        _put_grams(w, account, term, tb)
    elif len(tail[1]) // 8 < CHUNK:
        room = CHUNK - len(tail[1]) // 8
        w.put(table, tail[0], bytes(tail[1]) + _pack(es[:room]))
        es = es[room:]
    for i in range(0, len(es), CHUNK):
        part = es[i : i + CHUNK]
        w.put(table, p + K.u64(part[0]), _pack(part))


def index_pending(store: Any, account: int, budget: int = 200, seconds: float | None = None) -> int:
    """Index up to ``budget`` Emails above the watermark (reading stops early once
    ``seconds`` have gone by); the number indexed (0: the index has caught up).  Call
    it after commits and when idle, e.g. from the service::

        while index_pending(store, account, 256, 0.02):   # ~ tens of ms per call
            yield cooperate()                              # let the reactor breathe

    Safe to call from several places: a call that loses a race does nothing.
    """
    return index_slice(store, account, budget, seconds)[0]


def index_slice(store: Any, account: int, budget: int, seconds: float | None = None) -> tuple[int, bool]:
    """``index_pending``, and whether its reading reached the last Email (else it stopped
    at ``budget`` or ``seconds``, or lost a race, and more may be left).  The subject
    postings move with the index once they are complete (``subject_watermark``)."""
    adds: dict[str, list[int]] = {}
    sadds: dict[str, list[int]] = {}
    t0 = time.monotonic()
    with store.read(account) as r:
        wm = watermark(r.kv, account)
        subjects = subject_watermark(r.kv, account) == wm
        fresh = wm == 0 and not grams_ready(r.kv, account)
        stop = prefix_end(K.acct(account))
        last = wm
        n = 0
        complete = True
        for k, _v in r.kv.range("email", K.email(account, wm + 1), stop):
            if n >= budget or (seconds is not None and time.monotonic() - t0 >= seconds):
                complete = False
                break
            e = K.un64(k, 4)
            for t in _terms_of(r, account, e):
                adds.setdefault(t, []).append(e)
            if subjects:
                for t in _subject_terms(r, account, e):
                    sadds.setdefault(t, []).append(e)
            last = e
            n += 1
    if n == 0:
        return 0, complete

    def run(w: Any) -> int:
        if watermark(w, account) != wm:
            return 0
        for term, es in adds.items():
            _append(w, account, "fts", term, es)
        w.put("ftsmeta", K.acct(account), K.u64(last))
        if subjects and subject_watermark(w, account) == wm:
            for term, es in sadds.items():
                _append(w, account, SUBJECT, term, es)
            w.put("ftsmeta", K.acct(account) + _SUBJECTS, K.u64(last))
        if fresh:  # a new index has its grams from the start
            w.put("ftsmeta", K.acct(account) + _GRAMS_READY, b"1")
        return n

    done: int = store.kv.run_write(run, account)
    return done, complete and done == n


def upgrade_subjects(store: Any, account: int, budget: int = 2000) -> int:
    """Give the Emails of an index made before ``ftss`` their subject postings, up to
    ``budget`` Emails per call (its own write transaction, from the subject watermark
    up to the index's watermark); the number of Emails read (0: done, the subject
    postings complete).  The indexer calls it when idle, ``dualmail check --upgrade``
    until it returns 0."""
    sadds: dict[str, list[int]] = {}
    with store.read(account) as r:
        wm = watermark(r.kv, account)
        swm = subject_watermark(r.kv, account)
        if swm >= wm:
            return 0
        last = wm  # every Email up to wm read, unless the budget stops it
        n = 0
        for k, _v in r.kv.range("email", K.email(account, swm + 1), K.email(account, wm + 1)):
            if n >= budget:
                last = K.un64(k, 4) - 1
                break
            for t in _subject_terms(r, account, K.un64(k, 4)):
                sadds.setdefault(t, []).append(K.un64(k, 4))
            n += 1

    def run(w: Any) -> int:
        if subject_watermark(w, account) != swm:
            return 1  # another upgrade moved it: look again
        for term, es in sadds.items():
            _append(w, account, SUBJECT, term, es)
        w.put("ftsmeta", K.acct(account) + _SUBJECTS, K.u64(last))
        return max(n, 1)

    result: int = store.kv.run_write(run, account)
    return result


def upgrade_grams(store: Any, account: int, budget: int = 20000) -> int:
    """Give the terms of an index made before ``ftsgram`` their grams, ``budget`` keys of
    ``fts`` per call (its own write transaction, resuming where the last call
    stopped); the number of keys read (0: done, ``grams_ready``).  The indexer calls it
    when idle, ``dualmail check --upgrade`` until it returns 0."""
    with store.read(account) as r:
        if grams_ready(r.kv, account):
            return 0

    def run(w: Any) -> int:
        meta = K.acct(account)
        if w.get("ftsmeta", meta + _GRAMS_READY) is not None:
            return 0
        after = w.get("ftsmeta", meta + _GRAMS_CURSOR)
        start = K.fts(account, bytes(after)) + b"\xff" * 9 if after is not None else meta
        n = 0
        term = None
        for k, _v in w.range("fts", start, prefix_end(meta)):
            tb = bytes(k[4:-9])
            n += 1
            if tb != term:
                term = tb
                _put_grams(w, account, tb.decode("utf-8", "surrogatepass"), tb)
            if n >= budget:
                break
        if n < budget:
            w.put("ftsmeta", meta + _GRAMS_READY, b"1")
            w.delete("ftsmeta", meta + _GRAMS_CURSOR)
        elif term is not None:
            w.put("ftsmeta", meta + _GRAMS_CURSOR, term)
        return n

    result: int = store.kv.run_write(run, account)
    return result


def index_all(store: Any, account: int, budget: int = 500) -> int:
    """Index everything pending (tests, ``dualmail`` admin commands); the count."""
    while upgrade_grams(store, account):
        pass
    while upgrade_subjects(store, account):
        pass
    total = 0
    while True:
        n = index_pending(store, account, budget)
        if not n:
            return total
        total += n


def _postings(kv: KVRead, account: int, term: str, table: str = "fts") -> set[int]:
    p = K.fts(account, term.encode("utf-8", "surrogatepass"))
    out: set[int] = set()
    for _k, v in kv.range(table, p, prefix_end(p)):
        out.update(_unpack(v))
    return out


def _postings_of(kv: KVRead, account: int, terms: Sequence[bytes], table: str = "fts") -> set[int]:
    """The union of the postings of ``terms``: their first chunks in one look."""
    out: set[int] = set()
    reqs = []
    for tb in terms:
        p = K.fts(account, tb)
        reqs.append((table, p, prefix_end(p)))
    for rows in scan_complete(kv, reqs, _POSTINGS_PAGE):
        for _k, v in rows:
            out.update(_unpack(v))
    return out


_POSTINGS_PAGE = 4  # chunks of a term's postings read in the first look (CHUNK each)


_GRAM_PAGE = 64  # terms of a gram (and cut terms) read in the first, batched look
_FIRST_GRAMS = 3  # grams read in the first look


def _grams(run: str) -> list[str]:
    """The grams of ``run``, the rarest-looking first."""
    return sorted({run[i:i + GRAM] for i in range(len(run) - GRAM + 1)},
                  key=lambda g: -sum(_COMMON.get(c, 26) for c in g))


def _gram_prefix(account: int, g: str) -> bytes:
    return K.ftsgram(account, g.encode("utf-8", "surrogatepass"))


def _gram_scans(account: int, run: str, table: str = "fts") -> list[Scan]:
    """The first look of a suffix/infix run: up to ``_GRAM_PAGE`` terms of each of its
    ``_FIRST_GRAMS`` rarest-looking grams and of the cut terms, and the first postings of
    the run as a whole term (usually the only term holding it: then the look is all)."""
    ps = [_gram_prefix(account, g) for g in _grams(run)[:_FIRST_GRAMS]] + [K.ftsgram(account, b"")]
    whole = K.fts(account, run.encode("utf-8", "surrogatepass"))
    return [("ftsgram", p, prefix_end(p), _GRAM_PAGE) for p in ps] + [
        (table, whole, prefix_end(whole), _POSTINGS_PAGE)]


def _gram_terms(kv: KVRead, account: int, run: str,
                first: list[list[tuple[bytes, bytes]]]) -> list[bytes]:
    """A superset of the terms holding ``run`` (len >= GRAM): the terms of its rarest
    gram.  ``first``: the rows of the first look's gram scans (``_gram_scans``, without
    the cut terms).  After it, each gram's list is read only up to the length of the
    shortest complete list so far, so the cost is about (number of grams) x (terms of
    the rarest gram)."""
    prefixes = [_gram_prefix(account, g) for g in _grams(run)]
    best: list[bytes] | None = None
    rest: list[bytes] = []
    for p, rows in zip(prefixes, first):
        if len(rows) < _GRAM_PAGE:  # the whole list
            if best is None or len(rows) < len(best):
                best = [bytes(k[len(p):]) for k, _v in rows]
        else:
            rest.append(p)
    rest += prefixes[len(first):]
    for p in rest:
        if best is not None and len(best) <= 1:
            break
        terms: list[bytes] = []
        for k, _v in kv.range("ftsgram", p, prefix_end(p)):
            if best is not None and len(terms) >= len(best):
                break
            terms.append(bytes(k[len(p):]))
        else:
            best = terms
    return best or []


def _scan_terms(kv: KVRead, account: int, run: str, mode: str, ready: bool | None = None,
                first: list[list[tuple[bytes, bytes]]] | None = None, table: str = "fts") -> set[int]:
    """Postings of every term with ``run`` as prefix ("prefix"), suffix ("suffix") or
    inside it ("infix").  Terms cut to MAX_TOKEN may have lost the matching part, so for
    suffix/infix every cut term is included too (verification sorts it out).  Suffix and
    infix runs of 3 characters or more find their terms in the gram dictionary
    (``ftsgram``) once it is complete (``first``: the rows of ``_gram_scans``, if the
    caller has read them); shorter ones scan the term dictionary.  ``table``: ``fts``,
    or ``ftss`` for the subject postings (every subject term is in the gram dictionary)."""
    rb = run.encode("utf-8", "surrogatepass")
    out: set[int] = set()
    if mode == "prefix":
        p = K.acct(account) + rb
        for _k, v in kv.range(table, p, prefix_end(p)):
            out.update(_unpack(v))
        return out
    if len(run) >= GRAM and (grams_ready(kv, account) if ready is None else ready):
        # the grams and the cut terms in one look; the postings of every term found in another
        if first is None:
            first = kv.scan_many(_gram_scans(account, run, table))
        cut = K.ftsgram(account, b"")
        cut_rows, whole_rows = first[-2], first[-1]
        if len(cut_rows) >= _GRAM_PAGE:
            cut_rows = cut_rows + list(kv.range("ftsgram", cut_rows[-1][0] + b"\x00", prefix_end(cut)))
        terms = {t for t in _gram_terms(kv, account, run, first[:-2])
                 if (t.endswith(rb) if mode == "suffix" else rb in t)}
        terms.update(bytes(k[len(cut):]) for k, _v in cut_rows)
        if rb in terms:  # its postings came with the first look
            terms.discard(rb)
            whole = K.fts(account, rb)
            if len(whole_rows) >= _POSTINGS_PAGE:
                whole_rows = whole_rows + list(kv.range(table, whole_rows[-1][0] + b"\x00", prefix_end(whole)))
            for _k, v in whole_rows:
                out.update(_unpack(v))
        if terms:
            out.update(_postings_of(kv, account, sorted(terms), table))
        return out
    p = K.acct(account)
    for k, v in kv.range(table, p, prefix_end(p)):
        term = k[4:-9]
        if (term.endswith(rb) if mode == "suffix" else rb in term) or (
                len(term) >= MAX_TOKEN and len(term.decode("utf-8", "replace")) >= MAX_TOKEN):
            out.update(_unpack(v))
    return out


# A term of MAX_TOKEN characters or more in ``unpack_terms`` form ("\n"-delimited): one
# compiled search, not a Python pass over every term of every Email checked.
_CUT_TERM = re.compile("\n[^\n]{%d,}\n" % MAX_TOKEN)


class _Match:
    """What ``candidates`` looks up, also applied to one Email's term record."""

    __slots__ = ("exact", "run", "mode")

    def __init__(self, exact: list[str], run: str, mode: str) -> None:
        self.exact = exact  # whole terms that must all occur (cut to MAX_TOKEN)
        self.run = run  # else: one run and how it lies in a term
        self.mode = mode  # "term", "prefix", "suffix", "infix"

    def terms_match(self, joined: str) -> bool:
        """Can an Email with these terms (``unpack_terms``) contain the query?"""
        if self.exact:
            return all("\n" + t + "\n" in joined for t in self.exact)
        r, mode = self.run, self.mode
        if mode == "term":
            return "\n" + r + "\n" in joined
        if mode == "prefix":
            return "\n" + r in joined
        if (r + "\n" if mode == "suffix" else r) in joined:
            return True
        return _CUT_TERM.search(joined) is not None  # a cut term (may hold the run past its cut)

    def first_scans(self, account: int, table: str = "fts") -> list[Scan]:
        """What ``postings`` reads first, to be read with the caller's own first look
        (``scan_many``): the grams of a suffix/infix run; nothing for the other kinds."""
        if not self.exact and self.mode in ("suffix", "infix") and len(self.run) >= GRAM:
            return _gram_scans(account, self.run, table)
        return []

    def postings(self, kv: KVRead, account: int, ready: bool | None = None,
                 first: list[list[tuple[bytes, bytes]]] | None = None, table: str = "fts") -> set[int]:
        """``ready``: ``grams_ready``, if the caller has read it; ``first``: the rows of
        ``first_scans`` (read with ``grams_ready`` true), if the caller has read them;
        ``table``: ``fts`` or ``ftss`` (subject postings)."""
        if self.exact:
            found: set[int] | None = None
            for r in sorted(self.exact, key=len, reverse=True):
                got = _postings(kv, account, r, table)
                found = got if found is None else found & got
                if not found:
                    break
            return found or set()
        if self.mode == "term":
            return _postings(kv, account, self.run, table)
        return _scan_terms(kv, account, self.run, self.mode, ready, first or None, table)


def _match(folded_query: str, scan_terms: int) -> _Match | None:
    runs = query_runs(folded_query)
    if not runs:
        return None
    exact = [r[:MAX_TOKEN] for r, left, right in runs if left and right]
    if exact:
        return _Match(exact, "", "")
    last, left, right = runs[-1]
    if left:  # bounded on the left only: a prefix of a term
        if len(last) >= MAX_TOKEN:
            return _Match([], last[:MAX_TOKEN], "term")
        return _Match([], last, "prefix")
    first, _l, right = runs[0]  # one run (infix), or bounded on the right (suffix)
    if len(first) > MAX_TOKEN or len(first) < scan_terms:
        return None
    return _Match([], first, "suffix" if right else "infix")


def _tail_scan(account: int, wm: int) -> Scan:
    """The Emails above ``wm``, first page, as a scan."""
    return ("email", K.email(account, wm + 1), prefix_end(K.acct(account)), _TAIL_PAGE)


def _tail(kv: KVRead, account: int, wm: int, match: _Match,
          rows: list[tuple[bytes, bytes]] | None = None) -> set[int]:
    """The Emails above the watermark that may match: by their term records (made at
    ingest), so catching up never means reading their text; an Email without one (stored
    before term records existed) is a candidate.  ``rows``: the first page of a tail
    scan from at or below ``wm + 1``, if the caller has read it."""
    out: set[int] = set()
    t, start, stop, limit = _tail_scan(account, wm)
    if rows is None:
        rows = kv.scan_many([(t, start, stop, limit)])[0]
    if len(rows) >= limit:
        rows = rows + list(kv.range(t, rows[-1][0] + b"\x00", stop))
    keys = [k for k, _v in rows if k >= start]
    for k, raw in zip(keys, kv.get_many("ftstok", keys)):
        if raw is None or match.terms_match(unpack_terms(raw)):
            out.add(K.un64(k, 4))
    return out


_TAIL_PAGE = 64  # Emails above the watermark read in the first look
# account -> its watermark when last read: where the first look's tail scan starts.  A
# stale hint only costs rows (below: filtered out) or a second read (above: re-read).
_WM_HINT: dict[int, int] = {}


def candidates(kv: KVRead, account: int, folded_query: str, *, scan_terms: int = 1,
               also: Sequence[Scan] = (), also_out: list[Any] | None = None,
               subject: bool = False) -> set[int] | None:
    """A superset of the Emails whose folded text contains ``folded_query`` (postings at
    or below the watermark, plus the Emails above it whose term records allow it); None
    when the query has no word run to look up (the caller then scans).  A suffix/infix
    run shorter than ``scan_terms`` characters gives None rather than a scan of the
    whole term dictionary that would match most terms anyway -- the caller passes 3 when
    checking each Email is cheap (From/To/Subject read only the small search record).
    ``also``: the caller's own scans, read with the first look, their rows appended to
    ``also_out`` (nothing appended when there is no look: the caller reads them).
    ``subject``: the query is of the Subject alone: the postings of subject terms
    (``ftss``) are looked up once they are complete, else those of the whole text."""
    match = _match(folded_query, scan_terms)
    if match is None:
        return None
    # One look (one round trip on PostgreSQL): the watermark and grams_ready, the Emails
    # above the watermark as last seen, and what the match reads first (a run's grams).
    acct = K.acct(account)
    hint = _WM_HINT.get(account, 0)
    table = SUBJECT if subject else "fts"
    first = match.first_scans(account, table)
    got = kv.scan_many([("ftsmeta", acct, acct + b"t", 4), _tail_scan(account, hint), *first, *also])
    if also:
        if also_out is not None:
            also_out.extend(got[len(got) - len(also):])
        got = got[:len(got) - len(also)]
    meta = dict(got[0])
    mark, ready = meta.get(acct), acct + _GRAMS_READY in meta
    wm = K.un64(mark) if mark else 0
    if len(_WM_HINT) > 100_000:
        _WM_HINT.clear()
    _WM_HINT[account] = wm
    if subject and meta.get(acct + _SUBJECTS) != mark:  # an older index, not yet upgraded
        table, got = "fts", got[:2]
    found = match.postings(kv, account, ready, got[2:] if ready else None, table) if wm else set()
    # (a hint below the watermark whose page filled: read again from the watermark, not on)
    tail = got[1] if hint == wm or (hint < wm and len(got[1]) < _TAIL_PAGE) else None
    found |= _tail(kv, account, wm, match, tail)
    return found
